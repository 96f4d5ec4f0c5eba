"""One profile, several ways in (SSH, tailnet, direct URL): one local URL, failover and failback.

Why a supervisor per path behind one listener: each way in already has everything it needs in
the single-path Supervisor (its own state machine, keepalive, health probe, backoff, wake and
network-change handling), so every path is kept up and checked the same way whether it carries
traffic or stands by. Each path's supervisor listens privately on an ephemeral loopback port,
only for its own health probe; the profile's port belongs to one HeldListener here, whose
opener is switched to the chosen path. Connections that arrive while no path is healthy are
held, exactly as with one path; connections open on a path that dies end with it.

The choice itself (`choose`) is a pure function of the paths' health, so the rules (failover at
once, failback only after `failback` seconds of health, hysteresis for `fastest`) are tested
without sockets.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from clawd_gateway.errors import UserError

from ..profiles import Profile
from . import machine as m
from .listener import HeldListener
from .portguard import take_port
from .runner import Supervisor
from .ssh import TunnelError
from .state import PathState, TunnelStatus

log = logging.getLogger("clawd.multipath")

Listener = Callable[[TunnelStatus], None]
STARTUP_GRACE_S = 3.0  # at start, wait this long for the most preferred path before taking another
HYSTERESIS = 0.4  # fastest: 40 % faster to take over; +-20 % jitter on both sides stays below
# The most advanced state first: what the profile shows while no path is chosen.
_PROGRESS = ("healthy", "degraded", "forwarding", "connecting", "backoff", "idle", "fatal", "stopped")


@dataclass(frozen=True)
class PathView:
    """What the choice needs to know of one path."""

    name: str
    healthy_since: float | None  # monotonic; None while not healthy
    latency_ms: float | None = None


def choose(
    paths: Sequence[PathView],
    active: str | None,
    *,
    prefer: str,
    failback: float,
    now: float,
    pinned: str | None = None,
    started: float = 0.0,
) -> str | None:
    """The path new connections should take, given the paths in preference order."""
    healthy = [p for p in paths if p.healthy_since is not None]
    if not healthy:
        return None  # hold new connections until one comes back
    by_name = {p.name: p for p in healthy}
    if pinned is not None and pinned in by_name:
        return pinned
    current = by_name.get(active) if active is not None else None
    if prefer == "fastest":
        best = min(healthy, key=lambda p: p.latency_ms if p.latency_ms is not None else float("inf"))
        if current is None:
            return best.name
        if best is current or best.latency_ms is None or current.latency_ms is None:
            return current.name
        faster = best.latency_ms < current.latency_ms * (1 - HYSTERESIS)
        settled = best.healthy_since is not None and now - best.healthy_since >= failback
        return best.name if faster and settled else current.name
    best = healthy[0]
    if current is None:
        if best.name != paths[0].name and now - started < STARTUP_GRACE_S and active is None:
            return None  # starting: give the preferred path its chance first
        return best.name
    if best is not current and best.healthy_since is not None and now - best.healthy_since >= failback:
        return best.name  # failback: the preferred path has proved itself for long enough
    return current.name


def failback_due(
    paths: Sequence[PathView], active: str | None, *, failback: float, now: float
) -> float | None:
    """Seconds until a more preferred healthy path would take over (None: nothing pending)."""
    waits = []
    for p in paths:
        if p.name == active:
            break
        if p.healthy_since is not None:
            waits.append(max(0.0, p.healthy_since + failback - now))
    return min(waits) if waits else None


class MultiSupervisor:
    """The Supervisor interface the agent uses, over one Supervisor per way in."""

    def __init__(
        self,
        profile: Profile,
        secret: Callable[[], Any],
        *,
        accept_new: bool = False,
        port_guard: Callable[[Profile], Any] | None = None,
    ) -> None:
        self.profile = profile
        self._port_guard = port_guard
        self.paths: dict[str, Supervisor] = {}
        for way in profile.ways():
            private = replace(way, local_port=0, hold=0)  # a probe-only listener on an ephemeral port
            self.paths[way.method] = Supervisor(private, secret, accept_new=accept_new)
        self.order = list(self.paths)
        self.listener: HeldListener | None = None
        self.local_port = profile.local_port
        self.active: str | None = None
        self.pinned: str | None = None
        self.note: str | None = None
        self._healthy_since: dict[str, float] = {}
        self._last: dict[str, TunnelStatus] = {}
        self._listeners: list[Listener] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = 0.0
        self._since = time.time()
        self._fatal: str | None = None
        self._last_state: str | None = None
        self._retry_bind: asyncio.Event | None = None
        self._quitting = False
        self.switches = 0

    # -- the Supervisor interface the agent uses ----------------------------------------------

    @property
    def accept_new(self) -> bool:
        return any(s.accept_new for s in self.paths.values())

    @accept_new.setter
    def accept_new(self, value: bool) -> None:
        for sup in self.paths.values():
            sup.accept_new = value

    @property
    def last_cause(self) -> Exception | None:
        causes = [s.last_cause for s in self.paths.values() if s.last_cause is not None]
        return causes[0] if causes else None

    @last_cause.setter
    def last_cause(self, value: Exception | None) -> None:
        for sup in self.paths.values():
            if value is None or sup.last_cause is value:
                sup.last_cause = value

    @property
    def snapshot(self) -> m.Snapshot:
        """The chosen path's, or the most advanced one's: `up` restarts a profile only when
        every path is stopped or fatal."""
        if self._fatal is not None:  # the port could not be had: no path runs
            return m.Snapshot(state=m.State.FATAL, last_error=self._fatal)
        name = self.active or self._most_advanced()
        return self.paths[name].snapshot

    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def reconnect(self) -> None:
        if self._fatal is not None and self._retry_bind is not None:
            self._retry_bind.set()  # the port could not be taken: try again now
            return
        for sup in self.paths.values():
            sup.reconnect()

    def quit(self) -> None:
        self._quitting = True
        if self._retry_bind is not None:
            self._retry_bind.set()
        for sup in self.paths.values():
            sup.quit()  # before a path runs, this makes its run() return at once

    def pin(self, path: str | None) -> None:
        """Prefer `path` while it is healthy (None: back to the profile's own preference)."""
        if path is not None and path not in self.paths:
            raise UserError(
                f"{self.profile.name} has no {path} path (it has {', '.join(self.order)})",
                fix=f"pin one of: {', '.join(self.order)}",
            )
        self.pinned = path
        self._switch()
        self._publish()

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()
        while not await self._bind():  # fatal until the port can be had: wait for reconnect/quit
            self._retry_bind = asyncio.Event()
            await self._retry_bind.wait()
            self._retry_bind = None
            if self._quitting:
                self._publish(stopped=True)
                return
            self._fatal = None
        for name, sup in self.paths.items():
            sup.add_listener(functools.partial(self._on_path, name))
        tasks = [asyncio.create_task(sup.run(), name=f"clawd-path-{n}") for n, sup in self.paths.items()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for sup in self.paths.values():  # one path failing must not leave the others running
                sup.quit()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._timer is not None:
                self._timer.cancel()
            if self.listener is not None:
                await self.listener.close()
            self.active = None
            self._publish(stopped=True)

    async def _bind(self) -> bool:
        """Take the profile's port; False (and fatal, with the reason) when it cannot be had."""
        try:
            taken = await take_port(self.profile, self._port_guard, fatal_bind=True)
            if taken.listener is None:
                raise TunnelError(
                    f"127.0.0.1:{taken.port} is served by another working tunnel ({taken.note}); "
                    "a profile with several paths needs the port itself to fail over",
                    fatal=True,
                )
        except TunnelError as exc:
            self._fatal = str(exc)
            self._publish()
            return False
        self.note = taken.note
        self.local_port = taken.port
        taken.listener.on_open_failed = self._open_failed
        self.listener = taken.listener
        return True

    def _open_failed(self, why: str) -> None:
        """A client's connection through the chosen path failed: have that path checked now."""
        if self.active is not None:
            self.paths[self.active].check_now(why)

    def _on_path(self, name: str, status: TunnelStatus) -> None:
        now = self._now()
        self._last[name] = status
        if status.state == "healthy":
            self._healthy_since.setdefault(name, now)
        else:
            self._healthy_since.pop(name, None)
        self._switch()
        self._publish()

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    def _views(self) -> list[PathView]:
        return [
            PathView(n, self._healthy_since.get(n), self._last[n].latency_ms if n in self._last else None)
            for n in self.order
        ]

    def _switch(self) -> None:
        now = self._now()
        views = self._views()
        chosen = choose(
            views,
            self.active,
            prefer=self.profile.prefer,
            failback=self.profile.failback,
            now=now,
            pinned=self.pinned,
            started=self._started,
        )
        if chosen != self.active:
            log.info("%s: new connections go %s (was %s)", self.profile.name, chosen, self.active)
            if chosen is not None and self.active is not None:
                self.switches += 1
            self.active = chosen
        opener = self.paths[chosen].opener if chosen is not None else None
        if self.listener is not None:
            if opener is None:
                self.listener.set_opener(None)
            else:
                self.listener.set_opener(opener[0], f"{chosen}: {opener[1]}")
        self._arm(views, now)

    def _arm(self, views: list[PathView], now: float) -> None:
        """Wake up when a failback (or the end of the start-up grace) is due: time alone changes
        the choice then, with no path event to trigger it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._loop is None or self.pinned is not None:
            return
        due = failback_due(views, self.active, failback=self.profile.failback, now=now)
        if self.active is None and now - self._started < STARTUP_GRACE_S:
            grace = self._started + STARTUP_GRACE_S - now
            due = grace if due is None else min(due, grace)
        if due is not None:
            self._timer = self._loop.call_later(due + 0.01, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._switch()
        self._publish()

    # -- publication --------------------------------------------------------------------------

    def _most_advanced(self) -> str:
        def rank(name: str) -> int:
            st = self._last.get(name)
            return _PROGRESS.index(st.state) if st is not None and st.state in _PROGRESS else len(_PROGRESS)

        return min(self.order, key=rank)

    def status(self, *, stopped: bool = False) -> TunnelStatus:
        lst = self.listener
        paths = tuple(
            PathState(
                path=n,
                state=self._last[n].state if n in self._last else "idle",
                target=self.paths[n].path.target(),
                latency_ms=self._last[n].latency_ms if n in self._last else None,
                last_error=self._last[n].last_error if n in self._last else None,
                active=n == self.active,
            )
            for n in self.order
        )
        name = self.active or self._most_advanced()
        base = self._last.get(name) or self.paths[name].status()
        state = "stopped" if stopped else ("fatal" if self._fatal else base.state)
        public = f"ws://127.0.0.1:{self.local_port}"
        private = self.paths[name].profile.local_url  # ws://127.0.0.1:0: the path's probe-only port
        hops = tuple(replace(h, detail=h.detail.replace(private, public)) for h in base.hops)
        return replace(
            base,
            hops=hops,
            profile=self.profile.name,
            state=state,
            local_url=public,
            since=self._since,
            method=self.profile.method,
            target=base.target,
            active_path=self.active,
            last_error=self._fatal or base.last_error,
            relay=None,
            held=lst.held if lst is not None else 0,
            connections=lst.active if lst is not None else 0,
            note=self.note if not self.pinned else f"pinned to {self.pinned}",
            pid=os.getpid(),
            paths=paths,
            reconnects=sum(s.snapshot.reconnects for s in self.paths.values()),
        )

    def _publish(self, *, stopped: bool = False) -> None:
        status = self.status(stopped=stopped)
        if status.state != self._last_state:
            self._since = time.time()
            status = replace(status, since=self._since)
        self._last_state = status.state
        for fn in list(self._listeners):
            try:
                fn(status)
            except Exception:  # a broken listener (UI) must not stop the engine
                log.exception("status listener failed")


def supervisor_for(
    profile: Profile,
    secret: Callable[[], Any],
    *,
    accept_new: bool = False,
    port_guard: Callable[[Profile], Any] | None = None,
) -> Supervisor | MultiSupervisor:
    """One path: the plain Supervisor; several: the switch over one Supervisor per path."""
    if profile.alternates:
        return MultiSupervisor(profile, secret, accept_new=accept_new, port_guard=port_guard)
    return Supervisor(profile, secret, accept_new=accept_new, port_guard=port_guard)


__all__ = ["MultiSupervisor", "PathView", "choose", "failback_due", "supervisor_for"]
