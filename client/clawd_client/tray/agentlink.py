"""The tray's link to the clawd agent: the state stream in, commands out, on worker threads.

Why a link and not an engine: the agent owns every tunnel, so quitting or crashing the tray
drops nothing, and a restarted tray simply shows what is up. All the tray needs is the latest
`TunnelStatus` of every profile that is up, a way to send `up`/`down`/`reconnect`/`trust`/
`pin`/`diagnose`, and to notice when the agent goes away and come back to it.

Threads (none of them the UI thread, which must never block on a socket):
- `clawd-agent-link` attaches (`api.ensure_agent()`: the agent is started when none runs),
  subscribes, and reads the state stream; after each change it calls `on_change()`, which
  computes the presentation and hands finished values to pystray. When the stream ends (the
  agent stopped, crashed or restarted) it attaches again with a short backoff; meanwhile the
  link says "reconnecting" and the tunnels are unknown, not guessed from the last stream.
- `clawd-command` sends commands one at a time, in click order, each on a short connection of
  its own, so a slow reply never stalls the stream or the menu.
While nothing changes the stream is silent; every `idle_s` the link asks `status` on it, which
proves the agent still answers, resynchronises, and picks up profiles added or removed on disk.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clawd_gateway.errors import UserError

from .. import api
from ..engine import TunnelStatus
from ..profiles import ProfileStore
from .presenter import AgentConn

log = logging.getLogger("clawd.tray")

__all__ = ["AgentLink", "LinkView"]

IDLE_S = 5.0
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
COMMAND_TIMEOUT_S = 30.0  # `down` waits for the tunnel to close; everything else answers at once
DIAGNOSE_TIMEOUT_S = 120.0  # the doctor walks every hop, each with its own timeouts


@dataclass(frozen=True)
class LinkView:
    """What the link knows right now, as one consistent value for the presenter."""

    agent: AgentConn
    tunnels: Mapping[str, TunnelStatus] = field(default_factory=dict)
    profiles: tuple[str, ...] = ()
    problem: str | None = None
    prefer: Mapping[str, str] = field(default_factory=dict)  # multi-path profiles: order | fastest


ErrorSink = Callable[[str, str], None]
_NEVER = object()  # the profiles file's stat key before the first read


class AgentLink:
    def __init__(
        self,
        on_change: Callable[[], None],
        *,
        on_error: ErrorSink | None = None,
        store: ProfileStore | None = None,
        bring_up: tuple[str, ...] = (),
        idle_s: float = IDLE_S,
    ) -> None:
        self._on_change = on_change
        self._on_error = on_error
        self._store = store or ProfileStore()
        self._bring_up = bring_up
        self._idle_s = idle_s
        self._lock = threading.Lock()
        self._view = LinkView(AgentConn("starting"))
        self._profiles_key: object = _NEVER
        self._stop = threading.Event()
        self._agent_stopped = False  # the agent said it stops on purpose: do not restart it
        self._client: api.AgentClient | None = None
        self._thread = threading.Thread(target=self._main, name="clawd-agent-link", daemon=True)
        self._commands = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="clawd-command")

    # -- any thread ------------------------------------------------------------------------------

    def view(self) -> LinkView:
        with self._lock:
            return self._view

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Stop reading and sending (the agent and its tunnels stay as they are); True when clean."""
        self._stop.set()
        client = self._client
        if client is not None:
            with contextlib.suppress(OSError):
                client.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader blocked in recv
        self._commands.shutdown(wait=False, cancel_futures=True)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def send(self, op: str, **params: Any) -> concurrent.futures.Future[dict[str, Any]]:
        """Queue one request to the agent; a failure is reported to `on_error` and raised by the
        future. `up` starts the agent when none runs (like `clawd up`); the rest need one."""
        try:
            return self._commands.submit(self._request, op, params)
        except RuntimeError:  # shut down: the tray is quitting
            failed: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
            failed.set_exception(UserError("the tray is quitting"))
            return failed

    def _request(self, op: str, params: dict[str, Any]) -> dict[str, Any]:
        what = " ".join([op, *params.get("profiles", [])])
        if op == "pin":
            what += f" {params.get('path') or 'automatic'}"
        log.info("agent request: %s", what)
        timeout = DIAGNOSE_TIMEOUT_S if op == "diagnose" else COMMAND_TIMEOUT_S
        try:
            client = api.ensure_agent() if op == "up" else api.AgentClient.connect()
            with client:
                return client.request(op, reply_within=timeout, **params)
        except (UserError, OSError, ValueError) as exc:
            text = exc.render() if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            log.warning("agent request %s failed: %s", what, text.replace("\n", " / "))
            if self._on_error is not None:
                self._on_error(f"clawd: {what} failed", text)
            raise

    def diagnose(self, name: str) -> dict[str, Any]:
        """The agent's `clawd doctor` report for one profile (blocking: call it off the UI thread;
        not through the command queue, so a slow diagnosis delays no Connect or Disconnect)."""
        return self._request("diagnose", {"profiles": [name]})["report"]  # type: ignore[no-any-return]

    # -- the link thread ------------------------------------------------------------------------

    def _set(self, **changes: Any) -> None:
        with self._lock:
            view = self._view
            self._view = LinkView(
                agent=changes.get("agent", view.agent),
                tunnels=changes.get("tunnels", view.tunnels),
                profiles=changes.get("profiles", view.profiles),
                problem=changes.get("problem", view.problem),
                prefer=changes.get("prefer", view.prefer),
            )
        try:
            self._on_change()
        except Exception:  # the presentation failing must not stop the link
            log.exception("tray update failed")

    def _load_profiles(self) -> dict[str, Any]:
        """The store's profile names (and the preference of each multi-path one), reread only when
        the file changed (it is stat'ed each idle_s)."""
        try:
            st = self._store.path.stat()
            key: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key == self._profiles_key:
            return {}
        self._profiles_key = key
        try:
            profiles = self._store.load()
        except UserError as exc:
            return {"profiles": (), "problem": f"cannot read profiles: {exc}", "prefer": {}}
        prefer = {name: p.prefer for name, p in profiles.items() if p.alternates}
        return {"profiles": tuple(sorted(profiles)), "problem": None, "prefer": prefer}

    def _main(self) -> None:
        failures = 0
        first = True
        while not self._stop.is_set():
            try:
                # Stopped on purpose (`clawd agent --stop`): wait for one to be started (Connect
                # from the menu does) instead of overruling the user by starting it again.
                client = api.running() if self._agent_stopped else api.ensure_agent()
                if client is None:
                    stopped = "the clawd agent was stopped; Connect starts it again"
                    self._set(agent=AgentConn("reconnecting", error=stopped), tunnels={})
                    self._stop.wait(BACKOFF_S[-1])
                    continue
                self._agent_stopped = False
            except (UserError, OSError) as exc:
                phase = "starting" if first else "reconnecting"
                log.warning("cannot reach the clawd agent: %s", exc)
                self._set(agent=AgentConn(phase, error=str(exc)), tunnels={})
                self._stop.wait(BACKOFF_S[min(failures, len(BACKOFF_S) - 1)])
                failures += 1
                continue
            try:
                with client:
                    self._client = client
                    if self._stop.is_set():
                        return
                    self._attached(client, first)
                    failures = 0
                    first = False
                    self._follow(client)
            except (UserError, OSError, ValueError) as exc:
                if not self._stop.is_set():
                    log.warning("lost the clawd agent: %s", exc)
            finally:
                self._client = None
            if self._stop.is_set():
                return
            log.info("reconnecting to the clawd agent")
            self._set(agent=AgentConn("reconnecting"), tunnels={})
            self._stop.wait(BACKOFF_S[min(failures, len(BACKOFF_S) - 1)])
            failures += 1

    def _attached(self, client: api.AgentClient, first: bool) -> None:
        info = client.request("hello")["agent"]
        current = client.subscribe()
        self._profiles_key = _NEVER
        log.info("attached to the clawd agent (pid %s): %d tunnel(s) up", info.get("pid"), len(current))
        self._set(
            agent=AgentConn("attached", pid=info.get("pid")),
            tunnels={s.profile: s for s in current if s.state != "stopped"},
            **self._load_profiles(),
        )
        if first and self._bring_up:
            self.send("up", profiles=list(self._bring_up), wait=False)

    def _follow(self, client: api.AgentClient) -> None:
        """Read state events until the agent goes away (raises) or the tray stops (returns)."""
        while not self._stop.is_set():
            for st in client.events(timeout=self._idle_s):
                self._apply(st)
            if self._stop.is_set():
                return
            if client.closed:
                self._agent_stopped = client.agent_stopping
                return
            # The stream ended or went quiet: a status request says which (it raises when the
            # agent is gone), and resynchronises what the stream may have carried meanwhile.
            current = {s.profile: s for s in client.statuses() if s.state != "stopped"}
            client.pending_events.clear()  # read before the reply: already part of `current`
            changes = self._load_profiles()
            if current != self.view().tunnels:
                changes["tunnels"] = current
            if changes:
                self._set(**changes)

    def _apply(self, st: TunnelStatus) -> None:
        tunnels = dict(self.view().tunnels)
        old = tunnels.get(st.profile)
        if st.state == "stopped":
            tunnels.pop(st.profile, None)
        else:
            tunnels[st.profile] = st
        if old is None or old.state != st.state:
            log.info("%s: %s -> %s", st.profile, old.state if old else "down", st.state)
        self._set(tunnels=tunnels)
