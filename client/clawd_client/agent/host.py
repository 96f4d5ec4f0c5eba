"""The one host of tunnel supervisors: every profile that is up, concurrently, in the agent.

Why one host: a tray, a terminal and the login autostart each running their own supervisor
fought over the same port and lock and could not see each other. Here every profile that is up
has exactly one Supervisor on the agent's loop, from `up` to `down`; clients only send commands
and read the published TunnelStatus. A fatal stop (host key unknown, auth refused) keeps the
supervisor, its listener and its state, so the user can fix the cause and reconnect or trust.

The set of profiles the user brought up is remembered (`agent.json` in the client state dir)
and restored when the agent starts (login, reboot, crash), for profiles with `autoconnect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clawd_gateway.errors import UserError
from clawd_gateway.paths import atomic_write

from ..engine import (
    AlreadyRunning,
    HostKeyUnknown,
    InstanceLock,
    MultiSupervisor,
    Supervisor,
    TunnelStatus,
    fingerprint,
    make_port_guard,
    remember,
    supervisor_for,
)
from ..paths import client_state_dir
from ..profiles import Profile, ProfileStore

log = logging.getLogger("clawd.agent")

EXIT_FAIL, EXIT_DOWN, EXIT_NEEDS_USER = 1, 3, 4
Subscriber = Callable[[TunnelStatus], None]


class AgentError(UserError):
    """A request the agent cannot carry out; `code` is the API's error code."""

    def __init__(self, code: str, message: str, fix: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message, fix=fix)
        self.code = code
        self.exit_code = exit_code


@dataclass
class Hosted:
    profile: Profile
    sup: Supervisor | MultiSupervisor
    lock: InstanceLock
    task: asyncio.Task[Any] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    last: TunnelStatus | None = None


def remembered_path() -> Path:
    return client_state_dir() / "agent.json"


def load_remembered() -> list[str]:
    try:
        data = json.loads(remembered_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    names = data.get("up") if isinstance(data, dict) else None
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def remember_up(names: Iterable[str]) -> list[str]:
    """Add `names` to the remembered up-set without an agent running; returns those newly added.

    For `clawd autostart enable`, which replaces older per-profile login entries with the agent's
    one: each of those profiles was up at every login, so the agent must bring it back too. The
    agent rewrites this file whenever its own set changes, so while one runs, ask it (`up`)
    rather than rely on this alone. Written like the agent writes it: atomically, mode 0600.
    Raises OSError when the file cannot be written.
    """
    current = load_remembered()
    added = [n for n in dict.fromkeys(names) if n not in current]
    if added:
        merged = sorted({*current, *added})
        atomic_write(remembered_path(), json.dumps({"up": merged}) + "\n", mode=0o600)
    return added


def forget_up(name: str) -> bool:
    """Drop `name` from the remembered up-set without an agent running; False when it was not in it.

    The counterpart of remember_up, for `clawd setup-remote --undo` when no agent runs (one that
    runs is asked to `down` instead). Written like the agent writes it: atomically, mode 0600.
    Raises OSError when the file cannot be written.
    """
    current = load_remembered()
    if name not in current:
        return False
    atomic_write(remembered_path(), json.dumps({"up": [n for n in current if n != name]}) + "\n", mode=0o600)
    return True


def exit_code_for(status: TunnelStatus) -> int:
    """What `clawd up` exits with for a tunnel that did not become healthy (as `connect` did)."""
    if status.state == "fatal":
        return status.exit_code or EXIT_NEEDS_USER
    if status.needs_user:
        return EXIT_NEEDS_USER
    if status.state in ("backoff", "connecting", "stopped", "idle"):
        return EXIT_DOWN
    return EXIT_FAIL


def settled(status: TunnelStatus) -> bool:
    """Healthy, or stuck where only the user can move it on: `up` can answer now."""
    return status.state in ("healthy", "fatal", "stopped") or status.needs_user is not None


class AgentHost:
    def __init__(self, store: Callable[[], ProfileStore] = ProfileStore) -> None:
        self._store = store
        self.tunnels: dict[str, Hosted] = {}
        self._subscribers: set[Subscriber] = set()

    # -- state -------------------------------------------------------------------------------

    def statuses(self, names: tuple[str, ...] = ()) -> list[TunnelStatus]:
        unknown = [n for n in names if n not in self.tunnels]
        if unknown:
            raise AgentError(
                "not-up", f"{', '.join(unknown)} is not up", fix=f"clawd up {unknown[0]}", exit_code=3
            )
        return [self.tunnels[n].sup.status() for n in (names or tuple(sorted(self.tunnels)))]

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subscribers.add(fn)
        return lambda: self._subscribers.discard(fn)

    def _remember(self) -> None:
        names = sorted(self.tunnels)
        with contextlib.suppress(OSError):
            atomic_write(remembered_path(), json.dumps({"up": names}) + "\n", mode=0o600)

    def _published(self, hosted: Hosted, status: TunnelStatus) -> None:
        hosted.last = status
        hosted.changed.set()
        hosted.changed = asyncio.Event()
        for fn in list(self._subscribers):
            try:
                fn(status)
            except Exception:  # a broken subscriber must not stop the engine
                log.exception("subscriber failed")

    # -- commands ----------------------------------------------------------------------------

    def _profiles(self, names: tuple[str, ...]) -> list[Profile]:
        store = self._store()
        if not names:
            return [store.get(None)]
        return [store.get(n) for n in names]

    async def up(
        self, names: tuple[str, ...], *, accept_new: bool = False, local_port: int | None = None
    ) -> list[str]:
        """Start (or restart from a fatal stop) every named profile; returns their names."""
        profiles = self._profiles(names)
        try:
            for profile in profiles:
                if local_port is not None:
                    profile = replace(profile, local_port=local_port)
                hosted = self.tunnels.get(profile.name)
                if hosted is None:
                    self._start(profile, accept_new)
                elif hosted.sup.snapshot.state.value in ("fatal", "stopped"):
                    hosted.sup.accept_new = hosted.sup.accept_new or accept_new
                    hosted.sup.reconnect()
        finally:
            self._remember()  # what did come up is remembered even when a later one failed
        return [p.name for p in profiles]

    def _start(self, profile: Profile, accept_new: bool) -> Hosted:
        from ..secrets import get_secret

        lock = InstanceLock(profile.name)
        try:
            lock.acquire()
        except AlreadyRunning as exc:
            raise AgentError("already-running", str(exc), fix=exc.fix, exit_code=1) from None

        def secret() -> Any:
            return get_secret(profile)

        sup = supervisor_for(profile, secret, accept_new=accept_new, port_guard=make_port_guard(secret))
        hosted = Hosted(profile, sup, lock)
        sup.add_listener(lambda st: self._published(hosted, st))
        self.tunnels[profile.name] = hosted
        hosted.task = asyncio.create_task(self._run(hosted), name=f"clawd-sup-{profile.name}")
        log.info("up: %s", profile.name)
        return hosted

    async def _run(self, hosted: Hosted) -> None:
        try:
            await hosted.sup.run()
        except Exception:
            log.exception("supervisor for %s crashed", hosted.profile.name)
        finally:
            hosted.lock.release()
            if self.tunnels.get(hosted.profile.name) is hosted:
                del self.tunnels[hosted.profile.name]

    async def wait_settled(self, name: str, timeout: float) -> tuple[TunnelStatus, int]:
        """Wait until healthy, or until it is clear why not; (status, exit code; 0 when healthy)."""
        hosted = self.tunnels[name]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            status = hosted.sup.status()
            if settled(status) or loop.time() >= deadline:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(hosted.changed.wait(), deadline - loop.time())
        code = 0 if status.state == "healthy" else exit_code_for(status)
        return status, code

    async def down(self, names: tuple[str, ...], everything: bool = False) -> list[str]:
        if everything:
            names = tuple(sorted(self.tunnels))
        elif not names:
            if len(self.tunnels) == 1:
                names = tuple(self.tunnels)
            elif not self.tunnels:
                return []
            else:
                raise AgentError(
                    "usage",
                    f"several tunnels are up ({', '.join(sorted(self.tunnels))}); name one or use --all",
                    exit_code=2,
                )
        gone: list[str] = []
        for name in names:
            hosted = self.tunnels.get(name)
            if hosted is None:
                continue
            await self._stop(hosted)
            gone.append(name)
        self._remember()
        return gone

    async def _stop(self, hosted: Hosted) -> None:
        hosted.sup.quit()
        if hosted.task is not None:
            with contextlib.suppress(Exception):
                await hosted.task
        self.tunnels.pop(hosted.profile.name, None)
        log.info("down: %s", hosted.profile.name)

    def _hosted(self, name: str | None) -> Hosted:
        if name is None:
            if len(self.tunnels) == 1:
                return next(iter(self.tunnels.values()))
            raise AgentError("usage", "name the profile", exit_code=2)
        hosted = self.tunnels.get(name)
        if hosted is None:
            raise AgentError("not-up", f"{name} is not up", fix=f"clawd up {name}", exit_code=3)
        return hosted

    def reconnect(self, names: tuple[str, ...], accept_new: bool = False) -> list[str]:
        targets = [self._hosted(n) for n in names] if names else list(self.tunnels.values())
        for hosted in targets:
            hosted.sup.accept_new = hosted.sup.accept_new or accept_new
            hosted.sup.reconnect()
        return [h.profile.name for h in targets]

    def trust(self, name: str | None, shown: str | None) -> str:
        """Add the unknown host key the user was shown to known_hosts, then connect."""
        hosted = self._hosted(name)
        cause = hosted.sup.last_cause
        if not isinstance(cause, HostKeyUnknown):
            raise AgentError("no-unknown-key", f"{hosted.profile.name} is not waiting on an unknown host key")
        seen = fingerprint(cause.key)
        if shown is not None and shown != seen:
            raise AgentError(
                "fingerprint-mismatch",
                f"the server now presents {seen}, not the {shown} you accepted; nothing was trusted",
                exit_code=EXIT_NEEDS_USER,
            )
        remember(cause.known_hosts, cause.host, cause.port, cause.key)
        hosted.sup.last_cause = None
        hosted.sup.reconnect()
        return seen

    def pin(self, name: str | None, path: str | None) -> str | None:
        """New connections of a multi-path profile prefer `path` while it is healthy (None: unpin)."""
        hosted = self._hosted(name)
        if not isinstance(hosted.sup, MultiSupervisor):
            only = f"{hosted.profile.name} has one path only; nothing to pin"
            raise AgentError("single-path", only, exit_code=2)
        hosted.sup.pin(path)
        return path

    async def diagnose(self, name: str | None) -> dict[str, Any]:
        from ..doctor import diagnose_paths, report_json
        from ..secrets import get_secret

        profile = self._hosted(name).profile if name is None else self._store().get(name)
        secret, why = None, None
        try:
            secret = await asyncio.to_thread(get_secret, profile)
        except UserError as exc:
            why = str(exc)
        return report_json(profile, await diagnose_paths(profile, secret, why))

    async def restore(self) -> list[str]:
        """Bring back what was up before the agent last stopped (profiles with autoconnect)."""
        store = self._store()
        try:
            profiles = store.load()
        except UserError as exc:
            log.warning("cannot read profiles to restore: %s", exc)
            return []
        restored = []
        for name in load_remembered():
            profile = profiles.get(name)
            if profile is None or not profile.autoconnect or name in self.tunnels:
                continue
            try:
                self._start(profile, accept_new=False)
            except UserError as exc:
                log.warning("cannot bring %s back up: %s", name, exc)
                continue
            restored.append(name)
        return restored

    async def close(self) -> None:
        """The agent is stopping: end every tunnel but keep the remembered set for next time."""
        for hosted in list(self.tunnels.values()):
            await self._stop(hosted)


__all__ = [
    "AgentError",
    "AgentHost",
    "exit_code_for",
    "forget_up",
    "load_remembered",
    "remember_up",
    "remembered_path",
    "settled",
]
