"""The asyncio driver of the supervisor: feeds events into the pure machine, performs its actions.

Everything that happens (tunnel up, link lost, probe result, timer, wake-up, user command)
becomes an event on one queue, so the machine sees a single ordered history. Results from a
tunnel or probe that has since been replaced carry an old generation number and are dropped.

How the gateway is reached is a pluggable path (engine/paths.py): an SSH forward, a loopback
relay to a tailnet address, or a relay to a direct ws(s):// URL. All share this machine, the
health probe through the local port, backoff, and the wake/network-change re-checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from clawd_gateway.secret import Secret

from ..profiles import Profile
from . import machine as m
from .attention import exit_code, needs_user
from .listener import HeldListener, Opener
from .paths import Opened, SshPath, UrlPath, path_for
from .portguard import take_port
from .probe import ProbeResult, probe_gateway
from .ssh import TunnelError
from .state import Hop, TunnelStatus
from .wakewatch import WakeWatch

log = logging.getLogger("clawd.engine")

SecretProvider = Callable[[], "Secret | None"]
Listener = Callable[[TunnelStatus], None]


class Supervisor:
    def __init__(
        self,
        profile: Profile,
        secret: SecretProvider,
        *,
        accept_new: bool = False,
        policy: m.Policy | None = None,
        on_change: Listener | None = None,
        port_guard: Callable[[Profile], Any] | None = None,
        path: SshPath | UrlPath | None = None,
    ) -> None:
        self.profile = profile
        self.path = path or path_for(profile)
        self._secret = secret
        # The secret read for the current connection (keyed by generation): a Secret Service read
        # costs milliseconds of CPU here and more in the keyring and D-Bus daemons, so a healthy
        # tunnel reads it once per connection, and again after the gateway refuses it.
        self._secret_for_gen: tuple[int, Secret | None] | None = None
        self._quit_early = False
        self.accept_new = accept_new
        pol = policy or m.Policy(probe_interval=profile.probe_interval)
        self.machine = m.Machine(pol)
        self.snapshot = m.Snapshot()
        self._listeners: list[Listener] = [on_change] if on_change else []
        self._port_guard = port_guard
        self._queue: asyncio.Queue[tuple[int | None, m.Event | None]] = asyncio.Queue()
        self._gen = 0
        self._tunnel: Opened | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self.client_url: str | None = None  # set when clients use something else than our port
        # Bound at the first connect and kept until shutdown, across reconnects: the port never
        # goes free during a blip, and clients arriving meanwhile are held (engine/listener.py).
        self.listener: HeldListener | None = None
        self._open_task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._wake_off: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.local_port = profile.local_port
        self.note: str | None = None
        self.server: dict[str, Any] | None = None
        self.detail_code: str | None = None
        self.last_cause: Exception | None = None  # why the last connect failed, for the CLI/tray
        self._reusing = False  # serving through someone else's working tunnel on our port
        self._network_failure = False  # the last connect failed before reaching the server
        self._last_peer: tuple[str, int] | None = None
        self._reach_task: asyncio.Task[None] | None = None
        self._wall_since = time.time()

    @property
    def opener(self) -> tuple[Opener, str] | None:
        """How to open one connection through this path right now (and what it dials), or None
        while it is down: the multi-path switch (engine/multipath.py) hands it to its listener."""
        tunnel = self._tunnel
        if tunnel is None or tunnel.open_stream is None or self._reusing:
            return None
        return tunnel.open_stream, tunnel.dials

    # -- public commands (thread-safe via post) -------------------------------------------------

    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def now(self) -> float:
        return (self._loop or asyncio.get_event_loop()).time()

    def post(self, event: m.Event | None, gen: int | None = None) -> None:
        """Feed an event in from anywhere (thread-safe). Before `run()` has started, only a quit
        counts (run then returns at once); anything else is moot, as run starts connecting."""
        loop = self._loop
        if loop is None:
            if event is None:
                self._quit_early = True
            return
        loop.call_soon_threadsafe(self._queue.put_nowait, (gen, event))

    def reconnect(self) -> None:
        self.post(m.ReconnectNow(self.now()))

    def disconnect(self) -> None:
        self.post(m.Stop(self.now()))

    def connect(self) -> None:
        self.post(m.Start(self.now()))

    def quit(self) -> None:
        self.post(None)

    # -- main loop ------------------------------------------------------------------------------

    async def run(self, start: bool = True) -> m.Snapshot:
        if self._quit_early:  # quit before it ever ran (an `up` at once followed by a `down`)
            return self.snapshot
        self._loop = asyncio.get_running_loop()
        self._wake_off = WakeWatch.of(self._loop).subscribe(self._woke)
        if start:
            self._queue.put_nowait((None, m.Start(self.now())))
        self._publish()
        try:
            while True:
                gen, event = await self._queue.get()
                if event is None:
                    break
                if gen is not None and gen != self._gen:
                    continue  # a result from a tunnel or probe we already replaced
                await self._step(event)
        finally:
            await self._shutdown()
        return self.snapshot

    async def _step(self, event: m.Event) -> None:
        before = self.snapshot
        self.snapshot, actions = self.machine.step(before, event)
        for action in actions:
            await self._perform(action)
        self._update_reach_watch()
        if self.snapshot != before:
            if self.snapshot.state != before.state:
                self._wall_since = time.time()
            self._publish()

    async def _perform(self, action: m.Action) -> None:
        if isinstance(action, m.OpenTunnel):
            await self._close_tunnel()
            self._gen += 1
            self._open_task = asyncio.create_task(self._open(self._gen), name="clawd-open")
        elif isinstance(action, m.CloseTunnel):
            await self._close_tunnel()
        elif isinstance(action, m.Probe):
            if self._probe_task is not None and not self._probe_task.done():
                return  # one probe at a time
            self._probe_task = asyncio.create_task(self._probe(self._gen), name="clawd-probe")
        elif isinstance(action, m.SetTimer):
            self._cancel_timer()
            assert self._loop is not None
            self._timer = self._loop.call_at(
                action.at, lambda: self._queue.put_nowait((None, m.TimerFired(self.now())))
            )
        elif isinstance(action, m.CancelTimer):
            self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _close_tunnel(self) -> None:
        self._gen += 1
        for task in (self._open_task, self._probe_task, self._watch_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._open_task = self._probe_task = self._watch_task = None
        if self.listener is not None:
            self.listener.set_opener(None)  # from now on, new clients wait for the next path
        if self._tunnel is not None:
            tunnel, self._tunnel = self._tunnel, None
            await tunnel.close()

    async def _open(self, gen: int) -> None:
        def lost(reason: str) -> None:
            self._queue.put_nowait((gen, m.LinkLost(self.now(), reason)))

        try:
            unbound = self.listener is None or not self.listener.bound
            if self.path.binds_local_port and unbound and await self._bind_listener(gen):
                return  # serving through someone else's working tunnel on our port
            self._reusing = False
            tunnel = await self.path.open(lost, self.accept_new)
        except TunnelError as exc:
            self.last_cause = exc.cause or exc
            self._network_failure = exc.network
            self._queue.put_nowait((gen, m.ConnectFailed(self.now(), str(exc), fatal=exc.fatal)))
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave the machine waiting for a result that won't come
            log.exception("connect attempt failed unexpectedly")
            self.last_cause = exc
            self._network_failure = False
            message = f"connect failed: {type(exc).__name__}: {exc}"
            self._queue.put_nowait((gen, m.ConnectFailed(self.now(), message, fatal=False)))
            return
        if gen != self._gen:
            await tunnel.close()
            return
        self._tunnel = tunnel
        self._network_failure = False
        if tunnel.peer is not None:
            self._last_peer = tunnel.peer
        if self.listener is not None and self.listener.bound and tunnel.open_stream is not None:
            self.listener.set_opener(tunnel.open_stream, tunnel.dials)
            self.client_url = None
        else:
            self.client_url = tunnel.client_url
        self._watch_task = asyncio.create_task(self._watch_path(gen), name="clawd-path-watch")
        self._queue.put_nowait((gen, m.Connected(self.now())))

    async def _bind_listener(self, gen: int) -> bool:
        """Take the local port (through the port guard: reuse, take over, or move aside); True
        when a working tunnel of someone else's already serves it and we reuse that instead."""
        taken = await take_port(self.profile, self._port_guard)
        if taken.note is not None:
            self.note = taken.note
        self.local_port = taken.port
        if taken.listener is None:
            self._reusing = True
            self._queue.put_nowait((gen, m.Connected(self.now())))
            return True
        taken.listener.on_open_failed = self.check_now
        self.listener = taken.listener
        return False

    def check_now(self, why: str) -> None:
        """A client's connection through the path just failed: probe at once rather than at the
        next interval (one probe at a time; a down path ignores it)."""
        up = (m.State.FORWARDING, m.State.HEALTHY, m.State.DEGRADED)
        if self._loop is not None and self.snapshot.state in up:  # never cut a backoff short
            self.post(m.Wake(self.now(), f"a connection failed: {why}"))

    async def _watch_path(self, gen: int) -> None:
        """The path's own link check (e.g. Tailscale logged out, peer offline) while it is open."""
        try:
            reason = await self.path.watch()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken watcher must not take the tunnel down
            log.exception("path watch failed")
            reason = f"path check failed: {exc}"
        if reason:
            self._queue.put_nowait((gen, m.LinkLost(self.now(), reason)))

    async def _probe(self, gen: int) -> None:
        url = f"ws://127.0.0.1:{self.local_port}"
        if self._tunnel is not None and not self._reusing and self._tunnel.probe_url:
            url = self._tunnel.probe_url
        try:
            cached = self._secret_for_gen
            if cached is not None and cached[0] == gen:
                secret = cached[1]
            else:
                # Off the loop: a locked keyring may block on an unlock prompt; keepalives must not.
                secret = await asyncio.to_thread(self._secret)
                self._secret_for_gen = (gen, secret)
        except Exception as exc:  # a keyring failure must not kill the supervisor
            self._queue.put_nowait(
                (gen, m.ProbeFailed(self.now(), m.ProbeFailure.AUTH, f"cannot read the secret: {exc}"))
            )
            return
        try:
            result: ProbeResult = await probe_gateway(url, self.profile.auth, secret)
        except Exception as exc:  # a probe must always end in a result, or probing stops for good
            log.exception("health probe failed unexpectedly")
            result = ProbeResult(False, failure=m.ProbeFailure.UNHEALTHY, message=f"probe failed: {exc}")
        if result.ok:
            self.server, self.detail_code = result.server, None
            self._queue.put_nowait((gen, m.ProbeOk(self.now(), result.latency_ms)))
        elif self._reusing and result.failure is m.ProbeFailure.UNREACHABLE:
            # The borrowed tunnel died: that is our link lost, so build our own.
            reason = f"the reused tunnel stopped answering: {result.message}"
            self._queue.put_nowait((gen, m.LinkLost(self.now(), reason)))
        else:
            assert result.failure is not None
            if result.failure is m.ProbeFailure.AUTH:
                self._secret_for_gen = None  # refused: read the keyring again next time
            self.detail_code = result.detail_code
            message = result.message
            why = self.listener.last_error if self.listener is not None else None
            if result.failure is m.ProbeFailure.UNREACHABLE and why:
                message += f" ({why})"  # the listener saw why: refused, TLS, ...
            self._queue.put_nowait((gen, m.ProbeFailed(self.now(), result.failure, message)))

    def _update_reach_watch(self) -> None:
        """Poll the far end (the SSH port, the gateway's address, or Tailscale's state) only while
        backing off from a network failure, so the tunnel is back within a poll interval of the
        server returning, and costs nothing when connected."""
        want = self.snapshot.state is m.State.BACKOFF and self._network_failure
        running = self._reach_task is not None and not self._reach_task.done()
        if want and not running:
            self._reach_task = asyncio.create_task(self._watch_reachability(), name="clawd-reach")
        elif not want and running and self._reach_task is not None:
            self._reach_task.cancel()
            self._reach_task = None

    async def _watch_reachability(self) -> None:
        try:
            await self.path.wait_reachable(self._last_peer)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reachability watch failed")
            return
        self._queue.put_nowait((None, m.Reachable(self.now())))

    def _woke(self, reason: str) -> None:
        self._queue.put_nowait((None, m.Wake(self.now(), reason)))

    async def _shutdown(self) -> None:
        self._cancel_timer()
        if self._reach_task is not None:
            self._reach_task.cancel()
        if self._wake_off is not None:
            self._wake_off()
            self._wake_off = None
        await self._close_tunnel()
        if self.listener is not None:
            listener, self.listener = self.listener, None
            await listener.close()
        if self.snapshot.state is not m.State.STOPPED:
            self.snapshot = m.Snapshot(
                state=m.State.STOPPED, since=self.now(), reconnects=self.snapshot.reconnects
            )
            self._wall_since = time.time()
            self._publish()

    # -- publication ----------------------------------------------------------------------------

    def status(self) -> TunnelStatus:
        s = self.snapshot
        p = self.profile
        lst = self.listener
        hops = tuple(Hop(h.name, h.ok, h.detail, h.fix) for h in self.path.hops)
        needs, fp, fix = needs_user(p.name, s, self.last_cause)
        return TunnelStatus(
            needs_user=needs,
            fingerprint=fp,
            fix=fix,
            exit_code=exit_code(self.last_cause) if s.state is m.State.FATAL else None,
            profile=p.name,
            pid=os.getpid(),
            method=p.method,
            target=self.path.target(),
            local_url=self.client_url or f"ws://127.0.0.1:{self.local_port}",
            active_path=p.method if s.state.value in ("forwarding", "healthy", "degraded") else None,
            relay=self.path.binds_local_port if p.method != "ssh" else None,
            upstream=self.path.upstream_json(),
            hops=hops,
            state=s.state.value,
            degraded=s.degraded.value if s.degraded else None,
            since=self._wall_since,
            last_error=s.last_error,
            detail_code=self.detail_code,
            latency_ms=round(s.latency_ms, 1) if s.latency_ms is not None else None,
            reconnects=s.reconnects,
            attempts=s.attempts,
            next_attempt_in_s=round(max(0.0, s.next_attempt_at - self.now()), 1)
            if s.next_attempt_at
            else None,
            note=self.note,
            server=self.server,
            held=lst.held if lst is not None else 0,
            connections=lst.active if lst is not None else 0,
        )

    def _publish(self) -> None:
        data = self.status()
        for fn in list(self._listeners):
            try:
                fn(data)
            except Exception:  # a broken listener (UI) must not stop the engine
                log.exception("status listener failed")

