"""The tunnel supervisor as a pure state machine: states, events, transitions as a table.

No I/O and no clock: every event carries `now` (monotonic seconds) and randomness for the
backoff jitter is injected, so every transition is a deterministic function that tests can
enumerate. The runner performs the returned actions and feeds back what happened.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeAlias, TypeVar, cast, get_args


class State(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"  # the path is being set up (SSH + forward, or Tailscale check + relay)
    FORWARDING = "forwarding"  # path up, first end-to-end probe pending
    HEALTHY = "healthy"  # forward up, gateway authenticated and healthy
    DEGRADED = "degraded"  # forward up, gateway unreachable / unhealthy / refusing our secret
    BACKOFF = "backoff"  # waiting before the next connect attempt
    FATAL = "fatal"  # stopped: needs the user (auth refused, host key changed, config error)
    STOPPED = "stopped"  # stopped by the user


class Degraded(enum.Enum):
    UNREACHABLE = "gateway-unreachable"
    AUTH = "gateway-auth-rejected"
    UNHEALTHY = "gateway-unhealthy"


class ProbeFailure(enum.Enum):
    UNREACHABLE = "unreachable"  # nothing answers behind the forward
    AUTH = "auth"  # gateway refused our secret
    UNHEALTHY = "unhealthy"  # gateway says not ok, or protocol trouble


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    now: float


@dataclass(frozen=True)
class Stop:
    now: float


@dataclass(frozen=True)
class ReconnectNow:
    now: float


@dataclass(frozen=True)
class Connected:
    """The path is up: SSH with its local forward, or the relay (or direct URL) checked."""

    now: float


@dataclass(frozen=True)
class ConnectFailed:
    now: float
    message: str
    fatal: bool = False


@dataclass(frozen=True)
class LinkLost:
    now: float
    message: str


@dataclass(frozen=True)
class ProbeOk:
    now: float
    latency_ms: float


@dataclass(frozen=True)
class ProbeFailed:
    now: float
    kind: ProbeFailure
    message: str


@dataclass(frozen=True)
class TimerFired:
    now: float


@dataclass(frozen=True)
class Reachable:
    """While backing off after a network-level failure, the SSH port started accepting again."""

    now: float


@dataclass(frozen=True)
class Wake:
    """The machine slept (wall clock jumped past monotonic) or the network changed."""

    now: float
    reason: str


#: Everything the runner may post. The runner's queue and `post()` are typed with it, so an event
#: class left out here is a type error where it is posted (mypy, run by .ci/run), and EVENT_TYPES
#: (what the transition table must cover) is derived from it rather than kept as a second list.
Event: TypeAlias = (
    Start
    | Stop
    | ReconnectNow
    | Connected
    | ConnectFailed
    | LinkLost
    | ProbeOk
    | ProbeFailed
    | TimerFired
    | Reachable
    | Wake
)


# --- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenTunnel:
    pass


@dataclass(frozen=True)
class CloseTunnel:
    pass


@dataclass(frozen=True)
class Probe:
    pass


@dataclass(frozen=True)
class SetTimer:
    at: float


@dataclass(frozen=True)
class CancelTimer:
    pass


Action = OpenTunnel | CloseTunnel | Probe | SetTimer | CancelTimer


# --- state ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    stable_after: float = 30.0  # healthy this long resets the backoff attempts
    flap_guard: float = 1.0  # a link healthy at least this long before it drops resets them too
    probe_interval: float = 15.0  # app-level health check while healthy
    degraded_probe_interval: float = 3.0
    auth_retry_interval: float = 300.0  # a refused secret is retried rarely: never feed a lockout


@dataclass(frozen=True)
class Snapshot:
    state: State = State.IDLE
    since: float = 0.0
    attempts: int = 0  # consecutive failed connects, for the backoff
    reconnects: int = 0  # times the tunnel came back after being up
    healthy_since: float | None = None
    latency_ms: float | None = None
    last_error: str | None = None
    degraded: Degraded | None = None
    next_attempt_at: float | None = None
    was_up: bool = False
    extra: dict[str, str] = field(default_factory=dict)


Result = tuple[Snapshot, list[Action]]
Handler = Callable[["Machine", Snapshot, Event], Result]


class Machine:
    def __init__(self, policy: Policy | None = None, rand: Callable[[], float] | None = None) -> None:
        self.policy = policy or Policy()
        self._rand = rand or random.random

    def backoff_delay(self, attempts: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^attempts)]."""
        ceiling = min(self.policy.backoff_cap, self.policy.backoff_base * (2.0 ** min(attempts, 30)))
        return ceiling * self._rand()

    def step(self, snap: Snapshot, ev: Event) -> Result:
        handler = TRANSITIONS.get((snap.state, type(ev)))
        if handler is None:
            return snap, []
        return handler(self, snap, ev)


# --- transition helpers -----------------------------------------------------------------------


def _enter(snap: Snapshot, state: State, now: float, **changes: object) -> Snapshot:
    if snap.state is state:
        return replace(snap, **changes)  # type: ignore[arg-type]
    return replace(snap, state=state, since=now, **changes)  # type: ignore[arg-type]


def _connect(m: Machine, snap: Snapshot, ev: Event) -> Result:
    return _enter(snap, State.CONNECTING, ev.now, next_attempt_at=None), [CancelTimer(), OpenTunnel()]


def _stop(m: Machine, snap: Snapshot, ev: Event) -> Result:
    new = _enter(snap, State.STOPPED, ev.now, healthy_since=None, latency_ms=None, next_attempt_at=None)
    return new, [CancelTimer(), CloseTunnel()]


def _restart(m: Machine, snap: Snapshot, ev: Event) -> Result:
    """User asked, or we woke up: tear down and connect at once, skipping any backoff."""
    new = _enter(snap, State.CONNECTING, ev.now, attempts=0, next_attempt_at=None, degraded=None)
    return new, [CancelTimer(), CloseTunnel(), OpenTunnel()]


def _backoff(m: Machine, snap: Snapshot, now: float, message: str) -> Result:
    delay = m.backoff_delay(snap.attempts)
    new = _enter(
        snap,
        State.BACKOFF,
        now,
        attempts=snap.attempts + 1,
        last_error=message,
        next_attempt_at=now + delay,
        healthy_since=None,
        latency_ms=None,
        degraded=None,
    )
    return new, [CloseTunnel(), SetTimer(now + delay)]


def _connected(m: Machine, snap: Snapshot, ev: Connected) -> Result:
    reconnects = snap.reconnects + (1 if snap.was_up else 0)
    new = _enter(snap, State.FORWARDING, ev.now, reconnects=reconnects, was_up=True, next_attempt_at=None)
    return new, [Probe()]


def _connect_failed(m: Machine, snap: Snapshot, ev: ConnectFailed) -> Result:
    if ev.fatal:
        new = _enter(snap, State.FATAL, ev.now, last_error=ev.message, healthy_since=None, latency_ms=None)
        return new, [CancelTimer(), CloseTunnel()]
    return _backoff(m, snap, ev.now, ev.message)


def _link_lost(m: Machine, snap: Snapshot, ev: LinkLost) -> Result:
    """The link was up: try again right away; repeated failures then back off.

    A link that was healthy for at least `flap_guard` seconds proves the server works, so its
    loss starts the backoff afresh: a server restarted a few times in a row must not push the
    delay to its cap while every reconnect succeeds. A link dropped sooner than that (a server
    that accepts and drops at once) keeps its failed attempts, and so keeps backing off."""
    attempts = snap.attempts
    if snap.healthy_since is not None and ev.now - snap.healthy_since >= m.policy.flap_guard:
        attempts = 0
    if snap.state in (State.HEALTHY, State.DEGRADED, State.FORWARDING) and attempts == 0:
        new = _enter(
            snap,
            State.CONNECTING,
            ev.now,
            last_error=ev.message,
            healthy_since=None,
            latency_ms=None,
            attempts=0,
        )
        return new, [CancelTimer(), CloseTunnel(), OpenTunnel()]
    return _backoff(m, replace(snap, attempts=attempts), ev.now, ev.message)


def _probe_ok(m: Machine, snap: Snapshot, ev: ProbeOk) -> Result:
    healthy_since = snap.healthy_since if snap.state is State.HEALTHY and snap.healthy_since else ev.now
    attempts = 0 if ev.now - healthy_since >= m.policy.stable_after else snap.attempts
    new = _enter(
        snap,
        State.HEALTHY,
        ev.now,
        latency_ms=ev.latency_ms,
        healthy_since=healthy_since,
        attempts=attempts,
        degraded=None,
        last_error=None if snap.state is not State.HEALTHY else snap.last_error,
    )
    return new, [SetTimer(ev.now + m.policy.probe_interval)]


_DEGRADED_OF = {
    ProbeFailure.UNREACHABLE: Degraded.UNREACHABLE,
    ProbeFailure.AUTH: Degraded.AUTH,
    ProbeFailure.UNHEALTHY: Degraded.UNHEALTHY,
}


def _probe_failed(m: Machine, snap: Snapshot, ev: ProbeFailed) -> Result:
    interval = (
        m.policy.auth_retry_interval if ev.kind is ProbeFailure.AUTH else m.policy.degraded_probe_interval
    )
    new = _enter(
        snap,
        State.DEGRADED,
        ev.now,
        degraded=_DEGRADED_OF[ev.kind],
        last_error=ev.message,
        healthy_since=None,
        latency_ms=None,
    )
    return new, [SetTimer(ev.now + interval)]


def _probe_due(m: Machine, snap: Snapshot, ev: Event) -> Result:
    return snap, [Probe()]


def _timer_backoff(m: Machine, snap: Snapshot, ev: Event) -> Result:
    if snap.next_attempt_at is not None and ev.now < snap.next_attempt_at:
        return snap, [SetTimer(snap.next_attempt_at)]  # early wake-up: re-arm
    return _connect(m, snap, ev)


def _reachable(m: Machine, snap: Snapshot, ev: Event) -> Result:
    """Connect now, skipping the rest of the wait; unlike Wake this keeps `attempts`, so a
    server that accepts TCP but keeps failing SSH still backs off."""
    return _connect(m, snap, ev)


def _ignore(m: Machine, snap: Snapshot, ev: Event) -> Result:
    return snap, []


S = State
TRANSITIONS: dict[tuple[State, type], Handler] = {}

E = TypeVar("E", bound=Event)


def _on(
    states: tuple[State, ...], events: tuple[type[E], ...], handler: Callable[[Machine, Snapshot, E], Result]
) -> None:
    """Register `handler` for each (state, event class) pair.

    Typed so that a handler written for one event class (`ev: LinkLost`) can only be registered for
    that class or its subclasses: registering it for another is a type error. The table itself
    holds plain `Handler`s; the cast is sound because `Machine.step` looks handlers up by
    `type(ev)`, so a handler only ever receives the classes it was registered for."""
    for s in states:
        for e in events:
            TRANSITIONS[(s, e)] = cast(Handler, handler)


_UP = (S.FORWARDING, S.HEALTHY, S.DEGRADED)
_ALL = tuple(State)

# Start: from rest states only.
_on((S.IDLE, S.STOPPED, S.FATAL), (Start,), _connect)
_on((S.CONNECTING, S.BACKOFF, *_UP), (Start,), _ignore)
# Stop: from anywhere but STOPPED.
_on(tuple(s for s in _ALL if s is not S.STOPPED), (Stop,), _stop)
_on((S.STOPPED,), (Stop,), _ignore)
# Reconnect now: the user's explicit command works from every state, FATAL included.
_on(_ALL, (ReconnectNow,), _restart)
# Tunnel outcomes.
_on((S.CONNECTING,), (Connected,), _connected)
_on((S.CONNECTING,), (ConnectFailed,), _connect_failed)
_on(_UP, (LinkLost,), _link_lost)
_on((S.CONNECTING,), (LinkLost,), _link_lost)
# Late reports from a tunnel we already gave up on are ignored.
_on((S.IDLE, S.BACKOFF, S.FATAL, S.STOPPED, *_UP), (Connected, ConnectFailed), _ignore)
_on((S.IDLE, S.BACKOFF, S.FATAL, S.STOPPED), (LinkLost,), _ignore)
# Probes.
_on(_UP, (ProbeOk,), _probe_ok)
_on(_UP, (ProbeFailed,), _probe_failed)
_on((S.IDLE, S.CONNECTING, S.BACKOFF, S.FATAL, S.STOPPED), (ProbeOk, ProbeFailed), _ignore)
# Timers.
_on((S.BACKOFF,), (TimerFired,), _timer_backoff)
_on(_UP, (TimerFired,), _probe_due)
_on((S.IDLE, S.CONNECTING, S.FATAL, S.STOPPED), (TimerFired,), _ignore)
# The server came back while we were waiting: connect now.
_on((S.BACKOFF,), (Reachable,), _reachable)
_on(tuple(s for s in _ALL if s is not S.BACKOFF), (Reachable,), _ignore)
# Wake from sleep / network change: re-probe at once instead of waiting out timers.
_on((S.BACKOFF,), (Wake,), _restart)
_on(_UP, (Wake,), _probe_due)
_on((S.IDLE, S.CONNECTING, S.FATAL, S.STOPPED), (Wake,), _ignore)

#: Every event class, in the order of the `Event` union (the tests check the table covers them all).
EVENT_TYPES: tuple[type[Event], ...] = get_args(Event)
