"""Install clawd-gateway for the VPS account (issue 12, part 4), and remove it again.

What lands on the VPS, all under the account's own data dir (`${XDG_DATA_HOME:-~/.local/share}`):

    clawd-gateway/venv/          a venv with clawd (the same version as this client, or --from's)
    clawd-gateway/openclaw.json  the gateway's config: the port, bind loopback, token auth
    clawd-gateway/gateway.log    the detached gateway's log (only where no systemd runs)
    clawd-gateway/gateway.pid    the detached gateway's pid

plus what `clawd-gateway install-service --user` writes: the unit and its 0600 env file
(`~/.config/clawd-gateway/env`, the generated token: `InstallResult.token_file`), and the gateway's
state dir (`~/.local/state/clawd/gateway`).

Where the packages come from: without `source`, the VPS's own package index (`pip install
clawd==VERSION`). With `source` (`--from`), a wheel, a source dir (built into a wheel here with
`pip wheel --no-deps`), or a directory of wheels: whatever can be gathered here for the VPS's
Python (its version, platform and libc, asked first) is put in a wheelhouse on this machine,
uploaded over SFTP and installed with `pip install --no-index --find-links`, so a VPS without a
package index works. Only when the dependencies cannot be gathered here does the VPS's index fill
them in.

How it runs: a systemd user service with lingering (`--system`: a system unit through sudo) where
systemd runs; elsewhere (containers, some VPS images) detached with setsid/nohup, which
`InstallResult.note` says plainly will not come back after a reboot.

Every command that changes the VPS goes through `Remote.run(..., changes=True)` or
`Remote.would()`, so `--dry-run` lists it and runs nothing.

The parts: install_rules.py (the pure decisions: paths, wheel tags, the package to name, the pip,
unit and launch command lines), vpsenv.py (the account, its python3, the venv, pip there),
wheels.py (the wheelhouse gathered here, uploaded over SFTP), service.py (systemd user or system
service, and their purge), runner.py (the detached start, readiness). This module runs them in
order; its names (InstallResult, install_gateway, purge_gateway and the helpers below) are the
ones the rest of setup_remote and the tests import.
"""

from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Callable
from pathlib import Path

from clawd_gateway.errors import UserError

from .install_rules import (
    LEGACY_MANYLINUX,
    MIN_PYTHON,
    UNIT_NAME,
    InstallResult,
    Layout,
    PythonInfo,
    config_text,
    no_venv_error,
    platform_tags,
    q,
    venv_package_hint,
)
from .remote import Remote
from .runner import HEALTH_TIMEOUT, start_detached, stop_detached
from .service import purge_services, service_system, service_user, systemd_runs
from .vpsenv import installed_version, make_venv, os_release, pip_install, probe_python, remote_layout
from .wheels import build_wheel, build_wheelhouse, source_wheels, wheelhouse

Progress = Callable[[str], None]


async def install_gateway(
    remote: Remote,
    *,
    port: int,
    source: str | None,
    system: bool,
    yes: bool,
    progress: Progress,
) -> InstallResult:
    """Install clawd-gateway for the remote account and start it; see the module docstring."""
    lay = await remote_layout(remote)
    progress(f"checking python3 on {remote.target}")
    release = await os_release(remote)
    py = await probe_python(remote)
    if py is None:
        raise no_venv_error(remote.target, release, None, "")
    if py.version < MIN_PYTHON:
        raise UserError(
            f"{remote.target} has python3 {py.version[0]}.{py.version[1]}; clawd-gateway needs "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer",
            fix="install a newer python3 there (or use a newer distribution release)",
        )

    with tempfile.TemporaryDirectory(prefix="clawd-wheelhouse-") as tmp:
        clawd_wheel, wheels, version = await source_wheels(source, Path(tmp), progress)
        have = await installed_version(remote, lay)
        fresh_install = have != version
        if not fresh_install:
            progress(f"clawd-gateway {have} is already installed in {lay.venv}")
        else:
            if not py.venv_module:
                raise no_venv_error(remote.target, release, py, "its ensurepip module is missing")
            await make_venv(remote, lay, release, py, progress)  # first: a VPS without venv fails fast
            offline = bool(wheels)
            if clawd_wheel is not None:
                wheels, offline = await wheelhouse(clawd_wheel, Path(tmp) / "wheelhouse", py, progress)
            await pip_install(remote, lay, wheels, offline, version, progress)

    old_config = await remote.read_file(lay.config)
    config_changed = old_config != config_text(port)
    if config_changed:
        await remote.run(f"mkdir -p -m 700 {q(lay.data)}", check=True, changes=True)
        await remote.write_file_atomic(lay.config, config_text(port), 0o600)
    restart = fresh_install or config_changed

    if await systemd_runs(remote, lay, system):
        if system:
            return await service_system(remote, lay, port, yes, restart, progress)
        return await service_user(remote, lay, port, restart, progress)
    return await start_detached(remote, lay, port, restart, system, progress)


async def purge_gateway(remote: Remote, *, system: bool, progress: Progress) -> None:
    """Remove what install_gateway made: the service (stopped, disabled, unit and env file), the
    detached process, the venv, its config and log, and the gateway's state. Asks nothing."""
    lay = await remote_layout(remote)
    has_venv = (await remote.run(f"test -x {q(lay.python)}")).ok
    await stop_detached(remote, lay, progress)
    await purge_services(remote, lay, system=system, has_venv=has_venv, progress=progress)
    progress(f"removing {lay.data} (venv, config, log) and the gateway state {lay.state_dir}")
    await remote.run(f"rm -rf {q(lay.data)} {q(lay.state_dir)}", check=True, changes=True)
    await remote.run(f"rmdir {q(posixpath.dirname(lay.state_dir))} 2>/dev/null", changes=True)


__all__ = [
    "HEALTH_TIMEOUT",
    "LEGACY_MANYLINUX",
    "MIN_PYTHON",
    "UNIT_NAME",
    "InstallResult",
    "Layout",
    "PythonInfo",
    "build_wheel",
    "build_wheelhouse",
    "install_gateway",
    "os_release",
    "platform_tags",
    "probe_python",
    "purge_gateway",
    "remote_layout",
    "venv_package_hint",
]
