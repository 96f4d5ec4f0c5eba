"""Carrying out a plan: writing the env file and the unit/plist, and removing exactly those again.

All file-system effects of install-service/uninstall-service live here: atomic writes, modes,
ownership for a system service's account, and permission errors turned into "run it with sudo".
"""

from __future__ import annotations

import contextlib
import errno
import os
import plistlib
import secrets as pysecrets
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..errors import UserError
from .envfile import env_file_text
from .layout import ServicePaths, default_manager, service_paths
from .plan import InstallPlan
from .spec import LAUNCHD_LABEL, MARKER, ROOT_ENV, UNIT_NAME, Manager, Scope
from .steps import Step, disable_steps, enable_steps, manager_unavailable, needs_sudo, run_steps, systemctl


def _permission_error(path: Path, sp: ServicePaths) -> UserError:
    if sp.scope == "user":
        return UserError(f"cannot write {path}: permission denied", fix="check who owns that directory")
    where = f"; {ROOT_ENV}={sp.root}" if sp.root else ""
    return UserError(
        f"cannot write {path}: permission denied (a system service needs root{where})",
        fix='run it with sudo: sudo "$(command -v clawd-gateway)" install-service (sudo\'s PATH may '
        "miss pipx's ~/.local/bin), or install a per-user service with --user",
    )


def _writable(path: Path) -> bool:
    """Could we create `path`? Checks the nearest directory that exists."""
    probe = path.parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return os.access(probe, os.W_OK | os.X_OK)


def _chown_to(path: Path, user: str) -> None:
    if os.geteuid() != 0:
        return
    import pwd

    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)


@dataclass
class InstallResult:
    plan: InstallPlan
    unit_written: bool
    secret_message: str
    next_steps: list[Step]
    ran: list[str] = field(default_factory=list)


def install(plan: InstallPlan, *, enable: bool = False) -> InstallResult:
    """Write the env file (when needed) and the unit/plist, atomically; then maybe enable it."""
    sp = plan.paths
    unit_path, env_path = sp.real(sp.unit), sp.real(sp.env_file)
    for target in (unit_path, env_path):
        if not _writable(target):
            raise _permission_error(target, sp)
    if enable and manager_unavailable(sp):
        raise UserError(f"--enable: {manager_unavailable(sp)}", fix="install without --enable")
    try:
        secret_message = _write_env_file(plan, env_path)
        dirs = [] if plan.spec.state_dir is None else [sp.real(plan.state_dir)]
        if sp.log_dir is not None:
            dirs.append(sp.real(sp.log_dir))
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            if sp.scope == "system":
                _chown_to(d, plan.run_as)
        written = _write_if_changed(unit_path, plan.content, 0o644)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise _permission_error(Path(exc.filename or unit_path), sp) from None
        raise
    result = InstallResult(plan, written, secret_message, enable_steps(sp, plan.run_as))
    if enable:
        try:
            result.ran = run_steps(sp, result.next_steps)
        except UserError as exc:
            raise UserError(f"{unit_path} is installed, but enabling it failed: {exc}", fix=exc.fix) from None
    return result


def _write_if_changed(path: Path, data: bytes, mode: int) -> bool:
    """Atomic write (temp file + rename); False when the file already had this content and mode."""
    with contextlib.suppress(OSError):
        if path.read_bytes() == data and stat.S_IMODE(path.stat().st_mode) == mode:
            return False
    paths.atomic_write(path, data.decode("utf-8"), mode=mode)
    return True


def _write_env_file(plan: InstallPlan, env_path: Path) -> str:
    sp, sec = plan.paths, plan.secret
    read_it = ("sudo " if needs_sudo(sp.scope) else "") + shlex.join(["cat", str(sp.env_file)])
    if sec.action == "unreadable":
        raise _permission_error(env_path, sp)
    if sec.existing_text is not None and sec.action in ("keep", "none-needed"):
        if stat.S_IMODE(env_path.stat().st_mode) != 0o600:
            os.chmod(env_path, 0o600)
            return f"{sp.env_file}: kept ({sec.source}); its mode was too open and is now 0600"
        return f"{sp.env_file} (mode 0600): kept ({sec.source})"
    if sec.action == "none-needed" or sec.var is None:
        text = env_file_text(None, None, f"No secret here: {sec.source}.")
        note = f"{sp.env_file} (mode 0600): created without a secret ({sec.source})"
    else:
        password = sec.var.endswith("PASSWORD")
        if sec.source == "generated":
            value = pysecrets.token_urlsafe(32) if password else pysecrets.token_hex(32)
            what = f"generated a new {'password' if password else 'token'}"
        else:
            value = os.environ[sec.var]
            what = f"copied {sec.var} from your environment"
        if sec.action == "append" and sec.existing_text is not None:
            base = sec.existing_text
            text = base + ("\n" if base and not base.endswith("\n") else "") + f"{sec.var}={value}\n"
        else:
            text = env_file_text(sec.var, value, f"{sec.var}: {sec.source} by install-service.")
        note = f"{sp.env_file} (mode 0600): {what} (never printed; read it with: {read_it})"
    env_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths.atomic_write(env_path, text, mode=0o600)
    if sp.manager == "launchd" and sp.scope == "system":
        _chown_to(env_path.parent, plan.run_as)  # our wrapper reads it as the job's user
        _chown_to(env_path, plan.run_as)
    return note


@dataclass
class UninstallResult:
    removed: list[Path]
    missing: list[Path]
    next_steps: list[Step]
    ran: list[str] = field(default_factory=list)


def _ours(path: Path, manager: Manager) -> bool:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return True
    if manager == "systemd":
        return data.startswith(MARKER.encode())
    try:
        return bool(plistlib.loads(data).get("Label") == LAUNCHD_LABEL)
    except Exception:  # an unparsable plist is not one we wrote
        return False


def enabled_links(sp: ServicePaths) -> list[Path]:
    """`systemctl enable` symlinks; removing the unit under them would leave them dangling."""
    if sp.manager != "systemd":
        return []
    base = sp.real(sp.unit).parent
    return sorted(p for kind in ("wants", "requires") for p in base.glob(f"*.{kind}/{UNIT_NAME}"))


def uninstall(
    *,
    scope: Scope,
    manager: Manager | None = None,
    purge: bool = False,
    disable: bool = False,
    env: Mapping[str, str] | None = None,
) -> UninstallResult:
    """Remove exactly what install wrote: the unit/plist, and the env file with `purge`."""
    env = os.environ if env is None else env
    sp = service_paths(manager or default_manager(), scope, env)
    unit_path, env_path = sp.real(sp.unit), sp.real(sp.env_file)
    if not _ours(unit_path, sp.manager):
        raise UserError(
            f"{unit_path} was not written by clawd-gateway install-service; leaving it alone",
            fix="remove it yourself if you are sure",
        )
    ran: list[str] = []
    if disable and unit_path.exists():
        ran = run_steps(sp, disable_steps(sp)[:1])
    links = enabled_links(sp)
    if links:
        raise UserError(
            f"{UNIT_NAME} is still enabled ({', '.join(map(str, links))}); removing the unit now "
            "would leave those links dangling",
            fix=f"run `{disable_steps(sp)[0].display()}` first, or pass --disable",
        )
    removed: list[Path] = []
    missing: list[Path] = []
    try:
        for target in [unit_path, *([env_path] if purge else [])]:
            if target.exists():
                target.unlink()
                removed.append(target)
            else:
                missing.append(target)
        if purge:
            with contextlib.suppress(OSError):
                env_path.parent.rmdir()  # only when empty: never anyone's other files
    except PermissionError as exc:
        raise _permission_error(Path(exc.filename or unit_path), sp) from None
    if sp.manager == "systemd":
        steps = [systemctl(sp, "stop", UNIT_NAME), systemctl(sp, "daemon-reload")]
        if ran:
            ran += run_steps(sp, steps[1:])
    else:
        steps = disable_steps(sp)
    return UninstallResult(removed, missing, steps, ran)


__all__ = ["InstallResult", "UninstallResult", "enabled_links", "install", "uninstall"]
