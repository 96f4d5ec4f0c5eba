"""Runs the steps of `clawd setup-remote` (and of `--undo`) in order, stopping at the first that
fails with what was already done and the fix.

Why the state file is saved after every step that changed something: a failure or Ctrl-C in the
middle must leave a record `--undo` can act on, and a re-run must recognise its own key line and
profile. A re-run that changes nothing says so.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from clawd_gateway.errors import UserError

from .._asyncssh import asyncssh
from ..profiles import Profile, SshTarget, parse_ssh_target
from .discover import Found
from .login import Asker, LoginResult, login
from .plan import STEPS, GatewayAuth
from .progress import Progress
from .state import SetupState, drop_state, load_state, save_state

TITLES = dict(STEPS)


@dataclass
class Options:
    target: str
    name: str | None = None
    identity: str | None = None
    jump: str | None = None
    remote_port: int | None = None
    install: bool | None = None  # None: only when nothing runs there
    source: str | None = None
    system: bool = False
    yes: bool = False
    dry_run: bool = False


@dataclass
class Summary:
    name: str
    changed: bool = False
    vps: list[str] = field(default_factory=list)
    laptop: list[str] = field(default_factory=list)
    local_url: str = ""
    gateway: str = ""
    findings: list[dict[str, Any]] = field(default_factory=list)
    undo: str = ""
    dry_run: bool = False
    would: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class StepFailed(UserError):
    """A step failed: says which, what was already done, and the fix of the underlying error."""

    def __init__(self, step: str, cause: UserError, done: list[str], name: str) -> None:
        already = "; ".join(done) if done else "nothing yet"
        msg = f"setup-remote stopped at '{TITLES.get(step, step)}': {cause}\n  already done: {already}"
        if done:
            msg += f"\n  to remove it: clawd setup-remote --undo {name}"
        super().__init__(msg, fix=cause.fix)
        self.exit_code = cause.exit_code


def as_user_error(exc: BaseException) -> UserError:
    """An SSH or local I/O error a step did not expect, as a message with a fix, never a traceback."""
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return UserError(
            f"{exc.strerror or exc}{where}",
            fix="check that path's owner, mode and free space, then run setup-remote again",
        )
    reason = getattr(exc, "reason", "") or str(exc) or type(exc).__name__
    return UserError(
        f"SSH: {reason}",
        fix="check the connection and the account on the VPS, then run setup-remote again",
    )


def _account(target: SshTarget) -> tuple[str, str, int]:
    """Which VPS account a target logs in to (the key and the jump host may change between runs)."""
    return target.host.lower(), target.user or "", target.port or 22


def default_name(target: SshTarget) -> str:
    return (re.sub(r"[^A-Za-z0-9._-]", "-", target.host).strip("-.") or "vps")[:64]


class Run:
    """One `setup-remote` run; `done` lists what it changed so far, for failure messages."""

    def __init__(self, opts: Options, progress: Progress, asker: Asker) -> None:
        self.opts, self.progress, self.asker = opts, progress, asker
        self.target = parse_ssh_target(opts.target)
        self.target = SshTarget(
            host=self.target.host,
            user=self.target.user,
            port=self.target.port,
            identity=opts.identity,
            jump=opts.jump,
        )
        self.name = opts.name or default_name(self.target)
        previous = load_state(self.name)
        self.ours = previous is not None
        self.state = previous or SetupState(self.name, asdict(self.target))
        self.done: list[str] = []
        self.summary = Summary(self.name, dry_run=opts.dry_run, undo=f"clawd setup-remote --undo {self.name}")

    def _same_account_as_recorded(self) -> None:
        """A re-run of NAME must log in to the account the record is about: the record keeps one
        target, so taking another account's authorized_keys into it would make --undo edit the
        wrong account (and leave the first one's key line behind)."""
        if not self.ours:
            return
        recorded = SshTarget(**self.state.target)
        if _account(recorded) != _account(self.target):
            raise UserError(
                f"setup-remote {self.name} was set up for {recorded.display()}, not {self.target.display()}",
                fix=f"take that one back first: clawd setup-remote --undo {self.name} "
                "(or pass --name OTHER for a second profile)",
            )

    def _changed(self, side: str, what: str) -> None:
        self.done.append(what)
        (self.summary.vps if side == "vps" else self.summary.laptop).append(what)
        self.summary.changed = True
        if not self.opts.dry_run:
            save_state(self.state)

    def _would(self, what: str) -> None:
        self.summary.would.append(what)
        self.progress.note(("would: " if self.opts.dry_run else "remote: ") + what)

    async def execute(self) -> Summary:
        from ..profiles import validate

        validate(Profile(self.name, ssh=self.target))  # a bad --name fails before anything runs
        self._same_account_as_recorded()
        step = "login"
        self.progress.start(step, TITLES[step])
        try:
            logged = await login(
                self.target,
                yes=self.opts.yes,
                asker=self.asker,
                dry_run=self.opts.dry_run,
                on_would=self._would,
            )
        except UserError as exc:
            self.progress.fail(step, str(exc))
            raise StepFailed(step, exc, self.done, self.name) from None
        if logged.accepted_key:
            self.done.append(f"trusted host key {logged.accepted_key}")
            self.summary.laptop.append(f"added the host key {logged.accepted_key} to {logged.known_hosts}")
            self.summary.changed = True
        self.progress.done(
            step, f"{logged.remote.target}" + (" (password, not stored)" if logged.used_password else "")
        )
        try:
            return await self._rest(logged)
        finally:
            await logged.remote.close()

    async def _step(self, step: str, coro: Any) -> Any:
        self.progress.start(step, TITLES[step])
        try:
            return await coro
        except UserError as exc:
            self.progress.fail(step, str(exc))
            raise StepFailed(step, exc, self.done, self.name) from None
        except (asyncssh.Error, asyncssh.KeyImportError, asyncssh.KeyEncryptionError, OSError) as exc:
            cause = as_user_error(exc)
            self.progress.fail(step, str(cause))
            raise StepFailed(step, cause, self.done, self.name) from None

    async def _rest(self, logged: LoginResult) -> Summary:
        from .discover import discover

        remote = logged.remote
        port = self.opts.remote_port or (self.state.remote_port if self.ours else None)
        found: Found = await self._step("discover", discover(remote, port=port))
        self.progress.done("discover", found.describe())
        self.state.remote_port = found.port
        auth = found.auth
        if found.kind == "none" or self.opts.install:
            if self.opts.install is False:
                exc = UserError(
                    f"nothing listens on port {found.port} of the VPS and --no-install was given",
                    fix="start the gateway there, pass --remote-port P, "
                    "or drop --no-install to install clawd-gateway",
                )
                self.progress.fail("install", str(exc))
                raise StepFailed("install", exc, self.done, self.name)
            auth = await self._step("install", self._install(remote, found.port))
            self.summary.gateway = "clawd-gateway (installed by setup-remote)"
        else:
            self.progress.skip("install", TITLES["install"], f"{found.describe()} already")
            self.summary.gateway = found.describe()
            self.state.gateway = self.state.gateway or found.kind
        await self._step("key", self._key(remote, found.port))
        await self._step(
            "audit",
            self._audit(remote, "clawd" if self.state.gateway in ("clawd", "installed") else "openclaw"),
        )
        await self._step("local", self._local(logged, auth))
        await self._step("autostart", self._autostart())
        await self._step("up", self._up())
        if not self.opts.dry_run:
            self.state.complete = True
            save_state(self.state)
        return self.summary

    async def _install(self, remote: Any, port: int) -> GatewayAuth:
        from clawd_gateway.secret_sources import find_env
        from clawd_gateway.service.envfile import parse_env_file

        from .install import install_gateway

        result = await install_gateway(
            remote, port=port, source=self.opts.source, system=self.opts.system, yes=self.opts.yes,
            progress=self.progress.note,
        )  # fmt: skip
        self.state.gateway = "installed"
        self.state.installed = asdict(result)
        self.state.installed_system = self.opts.system
        self._changed("vps", f"installed clawd-gateway ({result.venv}, {result.service})")
        if result.note:
            self.progress.note(result.note)
            self.summary.vps.append(result.note)
        self.progress.done("install", f"clawd-gateway in {result.venv}, run by {result.service}")
        if self.opts.dry_run:
            return GatewayAuth("token", "dry-run", result.token_file)
        if self.opts.system:  # /etc/clawd-gateway/env is root's: read it the way it was written
            import shlex

            res = await remote.run(f"sudo -n cat {shlex.quote(result.token_file)}")
            text = res.stdout if res.exit_status == 0 else ""
        else:
            text = await remote.read_file(result.token_file) or ""
        found = find_env("token", parse_env_file(text))
        token = found[1] if found else None
        if not token:
            raise UserError(
                f"{remote.target}: the installed gateway's token file {result.token_file} holds no token"
            )
        return GatewayAuth("token", token, result.token_file)

    async def _key(self, remote: Any, port: int) -> None:
        from .tunnelkey import ensure_local_key, install_key_line

        path, public, created = ensure_local_key(self.name, dry_run=self.opts.dry_run)
        self.state.key_path = str(path)
        if created:
            self.state.key_created = True
            self._changed("laptop", f"generated the tunnel key {path} (ed25519, 0600)")
        elif self.opts.dry_run and not path.exists():
            self._would(f"generate {path} (ed25519, 0600)")
        line, ak_path, how, newline = await install_key_line(remote, public, self.name, port)
        self.state.authorized_keys = ak_path
        if how == "added":
            self.state.key_line, self.state.line_added, self.state.added_newline = line, True, newline
            self._changed("vps", f"added the tunnel-only key line (clawd-{self.name}) to {ak_path}")
            self.progress.done("key", f"{path.name}: tunnel to port {port} only, no commands")
        elif how == "replaced":  # our line for an older port, rewritten in place: undo removes this one
            self.state.key_line, self.state.line_added = line, True
            self._changed("vps", f"updated the tunnel-only key line (clawd-{self.name}) in {ak_path}")
            self.progress.done("key", f"{path.name}: tunnel to port {port} only, no commands (updated)")
        else:
            if not self.state.key_line:
                self.state.key_line = line
            self.progress.done("key", f"already in {ak_path}")

    async def _audit(self, remote: Any, kind: str) -> None:
        try:
            from .audit import audit_remote

            findings = await audit_remote(remote, kind=kind)
        except (ImportError, UserError) as exc:
            self.progress.done("audit", f"could not audit: {exc}")
            return
        critical = [f for f in findings if getattr(f, "severity", "") == "critical"]
        for f in critical:
            self.progress.note(f"CRITICAL {f.id}: {f.message}" + (f" — fix: {f.fix}" if f.fix else ""))
        self.summary.findings = [
            {"severity": f.severity, "id": f.id, "message": f.message, "fix": f.fix} for f in findings
        ]
        self.progress.done(
            "audit", f"{len(critical)} critical, {len(findings) - len(critical)} other finding(s)"
        )

    async def _local(self, logged: LoginResult, auth: GatewayAuth) -> None:
        from ..engine import default_known_hosts
        from .local import store_secret, tunnel_target, write_profile

        known = None if logged.known_hosts == default_known_hosts() else str(logged.known_hosts)
        target = tunnel_target(self.target, str(self.state.key_path), known)
        kind = auth.mode if auth.mode in ("token", "password") else "token"
        profile = Profile(self.name, ssh=target, remote_port=self.state.remote_port, auth=kind)
        if self.opts.dry_run:
            self.progress.done("local", f"would write profile {self.name} and put the {kind} in the keyring")
            return
        if write_profile(profile, ours=self.ours):
            self.state.profile_written = True
            self._changed(
                "laptop", f"wrote profile {self.name} ({target.display()}, remote port {profile.remote_port})"
            )
        if auth.secret:
            self.state.secret_kind = kind
            if store_secret(self.name, kind, auth.secret):
                self._changed(
                    "laptop",
                    f"stored the gateway {kind} (read from {auth.source or 'the VPS'}) in the keyring",
                )
        self.progress.done("local", f"profile {self.name}, {kind} in the keyring")

    async def _autostart(self) -> None:
        from .local import enable_autostart

        if self.opts.dry_run:
            self.progress.done(
                "autostart", f"would enable the agent's login entry with {self.name} in its up-set"
            )
            return
        changed, created, _lines = enable_autostart(self.name)
        self.state.autostart_entry_created = self.state.autostart_entry_created or created
        if changed:
            self._changed("laptop", f"start at login: the agent brings {self.name} up")
        self.progress.done("autostart", "on" if changed else "already on")

    async def _up(self) -> None:
        from .. import api
        from .local import bring_up

        if self.opts.dry_run:
            self.progress.done("up", f"would bring {self.name} up in the agent and check health")
            return
        was_healthy = False
        client = api.running()
        if client is not None:
            with client:
                try:
                    was_healthy = any(s.state == "healthy" for s in client.statuses((self.name,)))
                except UserError:
                    was_healthy = False
        result = bring_up(self.name)
        self.summary.local_url = result.local_url
        if not was_healthy:
            self._changed("laptop", f"tunnel up: {result.local_url}")
        ms = f" · gateway ok in {result.latency_ms:.1f} ms" if result.latency_ms is not None else ""
        self.progress.done("up", f"healthy {result.local_url}{ms}")


async def undo(name: str, *, purge_gateway: bool, progress: Progress, asker: Asker) -> list[str]:
    """Remove what setup-remote did for NAME; returns what was removed."""
    from .local import bring_down, remove_local
    from .tunnelkey import remove_key_line, remove_local_key

    state = load_state(name)
    if state is None:
        raise UserError(
            f"no setup-remote record for {name!r}",
            fix="clawd profile remove NAME removes a hand-made profile",
        )
    removed: list[str] = []
    progress.start("down", "bring the tunnel down")
    progress.done("down", "brought down" if bring_down(name) else "was not up")
    needs_vps = state.line_added or (purge_gateway and state.installed)
    if needs_vps:
        target = SshTarget(**state.target)
        progress.start("login", "log in to the VPS")
        try:
            logged = await login(target, yes=False, asker=asker, dry_run=False, on_would=lambda _w: None)
        except UserError as exc:
            progress.fail("login", str(exc))
            raise StepFailed("login", exc, removed, name) from None
        progress.done("login", logged.remote.target)
        try:
            if state.line_added:
                progress.start("key", "remove the tunnel key from the VPS")
                gone = await remove_key_line(
                    logged.remote, state.authorized_keys, state.key_line, state.added_newline
                )
                progress.done("key", "removed its line" if gone else "its line was already gone")
                if gone:
                    removed.append(f"the key line in {state.authorized_keys}")
                state.line_added = False
                save_state(state)
            if purge_gateway and state.installed:
                from .install import purge_gateway as purge

                progress.start("purge", "remove the clawd-gateway it installed")
                await purge(logged.remote, system=state.installed_system, progress=progress.note)
                progress.done("purge", "removed")
                removed.append("the clawd-gateway setup-remote installed")
        except (asyncssh.Error, OSError) as exc:
            cause = as_user_error(exc)
            if progress.current:
                progress.fail(progress.current, str(cause))
            raise StepFailed(progress.current or "key", cause, removed, name) from None
        finally:
            await logged.remote.close()
    elif state.installed:
        progress.skip("purge", "remove the clawd-gateway it installed", "kept (--purge-gateway removes it)")
    progress.start("local", "remove the key pair, profile, secret and autostart mark")
    from pathlib import Path

    if state.key_created and state.key_path:
        removed += remove_local_key(Path(state.key_path))
    removed += remove_local(name, secret_kind=state.secret_kind, entry_created=state.autostart_entry_created)
    drop_state(name)
    progress.done("local", f"{len(removed)} item(s) removed")
    return removed


__all__ = ["Options", "Run", "StepFailed", "Summary", "as_user_error", "default_name", "undo"]
