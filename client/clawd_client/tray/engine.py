"""The tunnel engine for the tray, on its own asyncio loop in a worker thread.

Why a worker thread: pystray's loop must own the main thread (macOS requires it; GTK and xorg
are simplest that way), and the engine is asyncio. So the engine gets a private event loop in
one thread, and everything crosses by message:
- UI -> engine: `command()` posts onto the loop with call_soon_threadsafe; the engine thread is
  the only one that touches the Supervisor, the instance lock and the status file;
- engine -> UI: the `on_change` callback runs on the engine thread after every change; the
  adapter computes the presentation there and hands only finished values to pystray.

Like `clawd connect`, the host holds the profile's instance lock while its supervisor runs and
publishes the status file that `clawd status` reads. Unlike `clawd connect`, a fatal stop keeps
the supervisor alive in its FATAL state, so the user can fix the cause and press Reconnect
(or trust an unknown host key) without restarting the tray.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from clawd_gateway.errors import UserError
from clawd_gateway.paths import atomic_write
from clawd_gateway.secret import Secret

from ..paths import client_state_dir
from ..profiles import Profile, ProfileStore
from .presenter import Attention

log = logging.getLogger("clawd.tray")

__all__ = ["EngineHost", "attention_for"]

SHUTDOWN_TIMEOUT_S = 10.0


def _selection_path() -> Path:
    return client_state_dir() / "tray.json"


def load_selection() -> str | None:
    """The profile the tray showed last time, so a restart (or login) comes back to it."""
    try:
        data = json.loads(_selection_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = data.get("profile") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def save_selection(name: str) -> None:
    with contextlib.suppress(OSError):
        atomic_write(_selection_path(), json.dumps({"profile": name}) + "\n", mode=0o600)


def attention_for(status: dict[str, Any], cause: BaseException | None, profile: str) -> Attention | None:
    """Why the engine needs the user, in presenter terms; None while no user action is needed."""
    from ..engine.hostkeys import HostKeyChanged, HostKeyUnknown, fingerprint

    state = status.get("state")
    if state == "degraded" and status.get("degraded") == "gateway-auth-rejected":
        return Attention(
            "gateway-auth",
            f"The gateway refused {profile}'s secret: {status.get('lastError') or 'auth rejected'}",
            fix=f"store the gateway's current secret: clawd secret set {profile}",
        )
    if state != "fatal":
        return None
    if isinstance(cause, HostKeyUnknown):
        return Attention(
            "host-key-unknown",
            f"The SSH host key of {cause.host} is not known yet ({fingerprint(cause.key)}).",
            fingerprint=fingerprint(cause.key),
            fix="compare it with the server's (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then "
            "choose “Trust host key … and connect” in the menu",
        )
    if isinstance(cause, HostKeyChanged):
        return Attention(
            "host-key-changed",
            f"The SSH host key of {cause.host} CHANGED ({fingerprint(cause.key)}); clawd will not connect.",
            fingerprint=fingerprint(cause.key),
            fix=cause.fix,
        )
    message = str(status.get("lastError") or cause or "stopped")
    if "authentication" in message and "refused" in message:
        return Attention(
            "ssh-auth", message, fix="check the profile's --identity and the server's authorized_keys"
        )
    return Attention("setup", message, fix=getattr(cause, "fix", None) or f"run: clawd doctor {profile}")


def _read_secret(profile: Profile) -> tuple[Secret | None, str | None]:
    from ..secrets import get_secret

    try:
        return get_secret(profile), None
    except UserError as exc:
        return None, str(exc)


class EngineHost:
    """Runs one Supervisor at a time (the selected profile) on a private loop in a worker thread."""

    def __init__(
        self,
        *,
        profile: str | None,
        connect: bool = True,
        on_change: Callable[[], None],
        on_finished: Callable[[], None] | None = None,
        store: ProfileStore | None = None,
    ) -> None:
        self._store = store or ProfileStore()
        self._want: str | None = profile
        self._explicit = profile is not None
        self._start_connected = connect
        self._on_change = on_change
        self._on_finished = on_finished
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._thread_main, name="clawd-engine", daemon=True)
        self.finished = threading.Event()
        self.exit_error: BaseException | None = None
        # State below is owned by the engine thread; the presenter reads it there too.
        self.status: dict[str, Any] | None = None
        self.attention: Attention | None = None
        self.blocked: str | None = None
        self.profiles: tuple[str, ...] = ()
        self.profile: Profile | None = None
        self.busy: set[str] = set()
        self._sup: Any = None
        self._quitting = False
        self._retry: asyncio.Event | None = None

    # -- thread plumbing ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def _thread_main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to the UI thread, which then exits non-zero
            log.exception("the tray engine failed")
            self.exit_error = exc
        finally:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()
            self.finished.set()
            if self._on_finished is not None:
                self._on_finished()

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run fn(*args) on the engine thread (from any thread); dropped once the engine has stopped."""
        with contextlib.suppress(RuntimeError):  # loop closed: we are shutting down
            self.loop.call_soon_threadsafe(fn, *args)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def command(self, action: str, arg: str | None = None) -> None:
        """connect | disconnect | reconnect | trust-host-key | profile (arg: name) | quit."""
        self.call(self._command, action, arg)

    def quit(self) -> None:
        self.command("quit")

    def join(self, timeout: float = SHUTDOWN_TIMEOUT_S) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- engine thread --------------------------------------------------------------------------

    def _changed(self) -> None:
        try:
            self._on_change()
        except Exception:
            log.exception("tray update failed")

    def _command(self, action: str, arg: str | None) -> None:
        log.info("command: %s%s", action, f" {arg}" if arg else "")
        sup = self._sup
        if action == "quit":
            self._quitting = True
            if sup is not None:
                sup.quit()
            self._kick()
            return
        if action == "profile" and arg:
            if self.profile is not None and arg == self.profile.name and not self.blocked:
                return
            self._want, self._explicit = arg, True
            self._start_connected = True
            self._restart(sup)
            return
        if sup is None:  # blocked, or between two supervisors: a connect means "try again"
            if action in ("connect", "reconnect"):
                self._start_connected = True
                self._kick()
            return
        if action in ("connect", "reconnect") and self._profile_changed():
            log.info(
                "profile %s changed on disk: restarting its supervisor", self.profile and self.profile.name
            )
            self._start_connected = True
            self._restart(sup)
            return
        if action == "connect":
            sup.connect()
        elif action == "disconnect":
            sup.disconnect()
        elif action == "reconnect":
            sup.reconnect()
        elif action == "trust-host-key":
            self._trust_host_key(sup)

    def _restart(self, sup: Any) -> None:
        if sup is not None:
            sup.quit()  # run() returns; _main's loop starts the (new) profile
        else:
            self._kick()

    def _kick(self) -> None:
        if self._retry is not None:
            self._retry.set()

    def _profile_changed(self) -> bool:
        try:
            fresh = self._store.load()
        except UserError:
            return False
        self.profiles = tuple(sorted(fresh))
        current = self.profile
        return current is not None and fresh.get(current.name) != current

    def _trust_host_key(self, sup: Any) -> None:
        from ..engine.hostkeys import HostKeyUnknown, remember

        cause = sup.last_cause
        if not isinstance(cause, HostKeyUnknown):
            log.warning("trust-host-key: there is no unknown host key to trust")
            return
        remember(cause.known_hosts, cause.host, cause.port, cause.key)
        log.info("trusted the host key of %s:%s; added to %s", cause.host, cause.port, cause.known_hosts)
        sup.last_cause = None
        sup.reconnect()

    def _resolve(self) -> tuple[Profile | None, str | None]:
        """The profile to run, or why none can run (shown in the tray, which stays up)."""
        try:
            profiles = self._store.load()
        except UserError as exc:
            return None, f"cannot read profiles: {exc}"
        self.profiles = tuple(sorted(profiles))
        if not profiles:
            return None, "no gateway profile yet: clawd profile add NAME --ssh user@host"
        name = self._want or load_selection()
        if name not in profiles:
            if self._explicit:
                return None, f"no profile named {name!r} (known: {', '.join(self.profiles)})"
            name = self.profiles[0]
        return profiles[name], None

    async def _main(self) -> None:
        from .. import status as status_file
        from ..engine.lock import AlreadyRunning, InstanceLock
        from ..engine.portguard import make_port_guard
        from ..engine.runner import Supervisor

        self._retry = asyncio.Event()
        while not self._quitting:
            self._retry.clear()
            profile, blocked = self._resolve()
            lock = None
            if profile is not None:
                self.profile = profile
                lock = InstanceLock(profile.name)
                try:
                    lock.acquire()
                except AlreadyRunning as exc:
                    who = f"pid {exc.pid}" if exc.pid else "another clawd process"
                    blocked = f"{profile.name}: already connected by {who}"
                    lock = None
                except UserError as exc:
                    blocked = f"{profile.name}: {exc}"
                    lock = None
            if blocked or profile is None or lock is None:
                self.blocked = blocked
                self.status = None
                self.attention = None
                log.warning("tray engine blocked: %s", blocked)
                self._changed()
                await self._retry.wait()
                continue
            self.blocked = None
            save_selection(profile.name)
            await self._run_supervisor(profile, lock, Supervisor, make_port_guard, status_file)

    async def _run_supervisor(
        self, profile: Profile, lock: Any, supervisor_cls: Any, make_port_guard: Any, status_file: Any
    ) -> None:
        def secret() -> Secret | None:
            return _read_secret(profile)[0]

        sup = supervisor_cls(profile, secret, port_guard=make_port_guard(secret))
        sup.add_listener(lambda st: status_file.publish(profile.name, st))

        def on_status(st: dict[str, Any]) -> None:
            self.status = st
            self.attention = attention_for(st, sup.last_cause, profile.name)
            self._changed()

        sup.add_listener(on_status)
        self._sup = sup
        start = self._start_connected
        log.info("running profile %s (%s)", profile.name, "connecting" if start else "disconnected")
        try:
            task = asyncio.ensure_future(sup.run(start=start))
            if not start:
                await asyncio.sleep(0)  # let run() take the loop before posting into it
                sup.disconnect()
            await task
        finally:
            self._sup = None
            status_file.clear(profile.name)
            lock.release()
            self.status = None
            self.attention = None

    # -- diagnosis ------------------------------------------------------------------------------

    async def diagnose(self) -> Any:
        """`clawd doctor` for the current profile, on the engine loop (separately from the tunnel)."""
        from ..doctor import diagnose

        profile = self.profile
        if profile is None:
            raise UserError("no profile to diagnose")
        secret, why = await asyncio.to_thread(_read_secret, profile)
        return await diagnose(profile, secret, why)
