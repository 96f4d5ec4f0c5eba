"""The supervisor state machine, table-driven over every state and event (no I/O, no clock)."""

from __future__ import annotations

import itertools

import pytest

from clawd_client.engine.machine import (
    EVENT_TYPES,
    TRANSITIONS,
    CancelTimer,
    CloseTunnel,
    Connected,
    ConnectFailed,
    Degraded,
    LinkLost,
    Machine,
    OpenTunnel,
    Policy,
    Probe,
    ProbeFailed,
    ProbeFailure,
    ProbeOk,
    Reachable,
    ReconnectNow,
    SetTimer,
    Snapshot,
    Start,
    State,
    Stop,
    TimerFired,
    Wake,
)

NOW = 100.0


def make_event(cls: type, now: float = NOW):
    if cls is ConnectFailed:
        return ConnectFailed(now, "connection refused")
    if cls is LinkLost:
        return LinkLost(now, "Server not responding to keepalive")
    if cls is ProbeOk:
        return ProbeOk(now, 2.5)
    if cls is ProbeFailed:
        return ProbeFailed(now, ProbeFailure.UNREACHABLE, "nothing listens behind the forward")
    if cls is Wake:
        return Wake(now, "clock jump")
    return cls(now)


def machine(rand: float = 0.5) -> Machine:
    return Machine(Policy(), rand=lambda: rand)


def test_every_state_event_pair_is_defined():
    missing = [(s, e.__name__) for s, e in itertools.product(State, EVENT_TYPES) if (s, e) not in TRANSITIONS]
    assert missing == []


# (state, event) -> expected (new state, actions). One row per meaningful pair; the rest ignore.
EXPECTED = {
    (State.IDLE, Start): (State.CONNECTING, [CancelTimer(), OpenTunnel()]),
    (State.STOPPED, Start): (State.CONNECTING, [CancelTimer(), OpenTunnel()]),
    (State.FATAL, Start): (State.CONNECTING, [CancelTimer(), OpenTunnel()]),
    (State.CONNECTING, Connected): (State.FORWARDING, [Probe()]),
    (State.CONNECTING, ConnectFailed): (State.BACKOFF, [CloseTunnel(), SetTimer(NOW + 0.25)]),
    (State.CONNECTING, LinkLost): (State.BACKOFF, [CloseTunnel(), SetTimer(NOW + 0.25)]),
    (State.FORWARDING, ProbeOk): (State.HEALTHY, [SetTimer(NOW + 15.0)]),
    (State.DEGRADED, ProbeOk): (State.HEALTHY, [SetTimer(NOW + 15.0)]),
    (State.HEALTHY, ProbeOk): (State.HEALTHY, [SetTimer(NOW + 15.0)]),
    (State.FORWARDING, ProbeFailed): (State.DEGRADED, [SetTimer(NOW + 3.0)]),
    (State.HEALTHY, ProbeFailed): (State.DEGRADED, [SetTimer(NOW + 3.0)]),
    (State.DEGRADED, ProbeFailed): (State.DEGRADED, [SetTimer(NOW + 3.0)]),
    (State.FORWARDING, LinkLost): (State.CONNECTING, [CancelTimer(), CloseTunnel(), OpenTunnel()]),
    (State.HEALTHY, LinkLost): (State.CONNECTING, [CancelTimer(), CloseTunnel(), OpenTunnel()]),
    (State.DEGRADED, LinkLost): (State.CONNECTING, [CancelTimer(), CloseTunnel(), OpenTunnel()]),
    (State.BACKOFF, TimerFired): (State.CONNECTING, [CancelTimer(), OpenTunnel()]),
    (State.FORWARDING, TimerFired): (State.FORWARDING, [Probe()]),
    (State.HEALTHY, TimerFired): (State.HEALTHY, [Probe()]),
    (State.DEGRADED, TimerFired): (State.DEGRADED, [Probe()]),
    (State.BACKOFF, Wake): (State.CONNECTING, [CancelTimer(), CloseTunnel(), OpenTunnel()]),
    (State.BACKOFF, Reachable): (State.CONNECTING, [CancelTimer(), OpenTunnel()]),
    (State.HEALTHY, Wake): (State.HEALTHY, [Probe()]),
    (State.DEGRADED, Wake): (State.DEGRADED, [Probe()]),
    (State.FORWARDING, Wake): (State.FORWARDING, [Probe()]),
}
for _s in State:
    EXPECTED[(_s, ReconnectNow)] = (State.CONNECTING, [CancelTimer(), CloseTunnel(), OpenTunnel()])
    if _s is not State.STOPPED:
        EXPECTED[(_s, Stop)] = (State.STOPPED, [CancelTimer(), CloseTunnel()])


@pytest.mark.parametrize(
    ("state", "event"),
    list(itertools.product(State, EVENT_TYPES)),
    ids=lambda x: getattr(x, "name", getattr(x, "__name__", str(x))),
)
def test_transition_table(state, event):
    snap = Snapshot(state=state, since=NOW - 10, next_attempt_at=NOW - 1 if state is State.BACKOFF else None)
    new, actions = machine().step(snap, make_event(event))
    expected_state, expected_actions = EXPECTED.get((state, event), (state, []))
    assert (new.state, actions) == (expected_state, expected_actions)
    if (state, event) not in EXPECTED:
        assert new == snap  # ignored events change nothing at all


def test_fatal_connect_failure_stops_and_explains():
    m = machine()
    snap, _ = m.step(Snapshot(), Start(0))
    snap, actions = m.step(snap, ConnectFailed(1, "host key for 127.0.0.1 changed", fatal=True))
    assert snap.state is State.FATAL and snap.last_error == "host key for 127.0.0.1 changed"
    assert actions == [CancelTimer(), CloseTunnel()]
    # Nothing but the user brings it back.
    for ev in (TimerFired(50), Wake(60, "network"), LinkLost(70, "x")):
        assert m.step(snap, ev) == (snap, [])
    assert m.step(snap, ReconnectNow(80))[0].state is State.CONNECTING


def test_full_jitter_backoff_grows_to_cap_and_resets_after_stable_period():
    m = Machine(Policy(backoff_base=0.5, backoff_cap=30, stable_after=30), rand=lambda: 1.0)
    snap = Snapshot(state=State.CONNECTING)
    delays = []
    t = 0.0
    for _ in range(9):
        snap, actions = m.step(snap, ConnectFailed(t, "refused"))
        timer = next(a for a in actions if isinstance(a, SetTimer))
        delays.append(round(timer.at - t, 3))
        t = timer.at
        snap, _ = m.step(snap, TimerFired(t))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert snap.attempts == 9
    snap, _ = m.step(snap, Connected(t))
    snap, _ = m.step(snap, ProbeOk(t, 1.0))
    assert snap.attempts == 9  # not yet stable
    snap, _ = m.step(snap, ProbeOk(t + 31, 1.0))
    assert snap.attempts == 0 and snap.healthy_since == t


def test_jitter_is_within_bounds():
    m = Machine(Policy(backoff_base=1, backoff_cap=8), rand=lambda: 0.0)
    assert m.backoff_delay(5) == 0.0
    m = Machine(Policy(backoff_base=1, backoff_cap=8), rand=lambda: 0.999)
    assert 7.9 < m.backoff_delay(5) < 8.0


def test_link_lost_twice_backs_off():
    m = machine(rand=1.0)
    snap = Snapshot(state=State.HEALTHY, attempts=0, was_up=True)
    snap, actions = m.step(snap, LinkLost(0, "reset"))
    assert snap.state is State.CONNECTING and OpenTunnel() in actions
    snap, actions = m.step(snap, LinkLost(0.1, "reset again"))
    assert snap.state is State.BACKOFF


def test_reconnect_counter_and_degraded_reasons():
    m = machine()
    snap, _ = m.step(Snapshot(), Start(0))
    snap, _ = m.step(snap, Connected(1))
    assert snap.reconnects == 0
    snap, _ = m.step(snap, ProbeFailed(2, ProbeFailure.AUTH, "unauthorized: gateway token mismatch"))
    assert snap.state is State.DEGRADED and snap.degraded is Degraded.AUTH
    snap, actions = m.step(snap, ProbeFailed(2, ProbeFailure.AUTH, "again"))
    assert actions == [SetTimer(2 + Policy().auth_retry_interval)]  # never hammer a lockout
    snap, _ = m.step(snap, LinkLost(3, "gone"))
    snap, _ = m.step(snap, Connected(4))
    assert snap.reconnects == 1 and snap.state is State.FORWARDING


def test_early_backoff_timer_rearms():
    m = machine()
    snap = Snapshot(state=State.BACKOFF, next_attempt_at=10.0)
    assert m.step(snap, TimerFired(9.0)) == (snap, [SetTimer(10.0)])


def test_reachable_skips_the_wait_but_keeps_the_backoff_count():
    m = machine()
    snap = Snapshot(state=State.BACKOFF, attempts=5, next_attempt_at=NOW + 20)
    new, actions = m.step(snap, Reachable(NOW))
    assert new.state is State.CONNECTING and new.attempts == 5
    assert actions == [CancelTimer(), OpenTunnel()]
