"""Running the installed gateway under systemd: a user service with lingering (the default), or a
system unit through sudo (`--system`); and removing either again on purge.

The unit and service command lines are in install_rules.py; the units themselves are written by
the gateway's own `install-service` on the VPS.
"""

from __future__ import annotations

import asyncio
import posixpath
import sys
from collections.abc import Callable

from clawd_gateway.errors import UserError
from clawd_gateway.service.spec import MARKER

from .install_rules import (
    SYSTEM_ENV_FILE,
    UNIT_NAME,
    InstallResult,
    Layout,
    install_service_cmd,
    linger_cmd,
    q,
    uninstall_service_cmd,
    user_manager_up,
    user_runtime,
)
from .remote import Remote
from .runner import wait_ready

Progress = Callable[[str], None]


async def systemd_runs(remote: Remote, lay: Layout, system: bool) -> bool:
    """Does systemd run on the VPS (and, for a user service, can this account reach its manager)?"""
    if not (await remote.run("test -d /run/systemd/system && command -v systemctl >/dev/null")).ok:
        return False
    if system:
        return True
    # The user manager exists once the user is logged in through PAM or lingers.
    res = await remote.run(f"{user_runtime(lay)} systemctl --user is-system-running")
    return user_manager_up(res.stdout.strip()) or (
        (await remote.run("command -v loginctl >/dev/null")).ok and "Failed to connect" in res.stderr
    )


async def _sudo_ok(remote: Remote) -> bool:
    return (await remote.run("sudo -n true")).ok


def _ask(question: str) -> bool:
    if not sys.stdin or not sys.stdin.isatty():
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


async def service_user(
    remote: Remote, lay: Layout, port: int, restart: bool, progress: Progress
) -> InstallResult:
    runtime = user_runtime(lay)
    note: str | None = None
    progress(f"keeping {lay.user}'s services running after logout (loginctl enable-linger)")
    linger = linger_cmd(lay)
    if (
        not (await remote.run(linger, changes=True)).ok
        and not (await remote.run(f"sudo -n {linger}", changes=True)).ok
    ):
        note = (
            f"lingering could not be turned on for {lay.user}: the gateway stops when the last login "
            f"session ends (an admin can run: sudo {linger})"
        )
    if not remote.dry_run:
        for _ in range(40):  # the user manager starts once lingering is on
            if (await remote.run(f"test -S /run/user/{lay.uid}/systemd/private")).ok:
                break
            await asyncio.sleep(0.25)
    progress("installing the systemd user service (clawd-gateway install-service --user --enable)")
    await remote.run(f"{runtime} {install_service_cmd(lay, '--user', '--enable')}", check=True, changes=True)
    if restart:
        await remote.run(f"{runtime} systemctl --user restart {UNIT_NAME}", check=True, changes=True)
    if not remote.dry_run:

        async def journal() -> str:
            res = await remote.run(f"{runtime} journalctl --user -u {UNIT_NAME} -n 15 --no-pager")
            return res.stdout.strip()

        await wait_ready(remote, lay, port, journal)
    return InstallResult(lay.venv, lay.user_env_file, "systemd-user", note)


async def service_system(
    remote: Remote, lay: Layout, port: int, yes: bool, restart: bool, progress: Progress
) -> InstallResult:
    command = install_service_cmd(lay, "--enable")
    if not yes and not _ask(f"Install a system service on {remote.target} with `sudo {command}`?"):
        raise UserError(
            f"--system installs a system unit on {remote.target} through sudo, which was not confirmed",
            fix="answer yes, pass --yes, or leave out --system for a per-user service",
        )
    if not remote.dry_run and not await _sudo_ok(remote):
        raise UserError(
            f"sudo on {remote.target} needs a password, which setup-remote does not ask for",
            fix=f"run on the VPS: sudo {command}; or leave out --system for a per-user service",
        )
    progress("installing the systemd system service through sudo")
    await remote.run(f"sudo -n {command}", check=True, changes=True)
    if restart:
        await remote.run(f"sudo -n systemctl restart {UNIT_NAME}", check=True, changes=True)
    if not remote.dry_run:

        async def journal() -> str:
            res = await remote.run(f"sudo -n journalctl -u {UNIT_NAME} -n 15 --no-pager")
            return res.stdout.strip()

        await wait_ready(remote, lay, port, journal)
    return InstallResult(
        lay.venv,
        SYSTEM_ENV_FILE,
        "systemd-system",
        f"the token file is readable by root only (sudo cat {SYSTEM_ENV_FILE})",
    )


async def purge_services(
    remote: Remote, lay: Layout, *, system: bool, has_venv: bool, progress: Progress
) -> None:
    """Remove the system unit (`system`) and the user unit with its env file: through the venv's
    `uninstall-service` while it is there, else the same files by hand (the unit only if ours)."""
    systemd = await systemd_runs(remote, lay, system)
    runtime = f"{user_runtime(lay)} "
    if system:
        progress("removing the system service through sudo")
        if has_venv:
            cmd = uninstall_service_cmd(lay, user=False, systemd=systemd)
            await remote.run(f"sudo -n {cmd}", check=True, changes=True)
    unit = await remote.read_file(lay.user_unit)
    if unit is not None or await remote.read_file(lay.user_env_file) is not None:
        progress("removing the user service and its env file")
        if has_venv:
            cmd = uninstall_service_cmd(lay, user=True, systemd=systemd)
            await remote.run((runtime if systemd else "") + cmd, check=True, changes=True)
        else:
            # No venv left to ask: remove the same two files by hand, the unit only if it is ours.
            if unit is not None and unit.startswith(MARKER):
                if systemd:
                    await remote.run(f"{runtime}systemctl --user disable --now {UNIT_NAME}", changes=True)
                await remote.run(f"rm -f {q(lay.user_unit)}", changes=True)
            await remote.run(f"rm -f {q(lay.user_env_file)}", changes=True)
            await remote.run(f"rmdir {q(posixpath.dirname(lay.user_env_file))} 2>/dev/null", changes=True)


__all__ = [
    "purge_services",
    "service_system",
    "service_user",
    "systemd_runs",
]
