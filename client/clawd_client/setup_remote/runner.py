"""Running the installed gateway without systemd, and seeing that it runs at all: the readiness
check every way of starting it waits on, and the detached start (setsid/nohup, a pid file) for
VPSes where no systemd runs (containers, some images), which will not come back after a reboot.

The command lines (the launch, the starter, the /readyz probe) are in install_rules.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from .install_rules import (
    InstallResult,
    Layout,
    detached_note,
    detached_starter,
    install_service_cmd,
    is_our_gateway,
    q,
    ready_probe,
)
from .remote import Remote, RemoteError

HEALTH_TIMEOUT = 30.0
Progress = Callable[[str], None]


async def gateway_pid(remote: Remote, lay: Layout) -> int | None:
    """The detached gateway's pid, if it is still that process (never a recycled pid)."""
    text = await remote.read_file(lay.pid_file)
    if not text or not text.strip().isdigit():
        return None
    pid = int(text.strip())
    res = await remote.run(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
    return pid if res.ok and is_our_gateway(res.stdout, lay) else None


async def ready(remote: Remote, lay: Layout, port: int) -> bool:
    return (await remote.run(ready_probe(lay, port), timeout=10)).ok


async def wait_ready(
    remote: Remote,
    lay: Layout,
    port: int,
    why_not: Callable[[], Awaitable[str]],
    alive: Callable[[], Awaitable[bool]] | None = None,
) -> None:
    """Wait up to HEALTH_TIMEOUT for /readyz (or until `alive` says the process is gone); else
    fail with what `why_not` shows (the journal, the log)."""
    deadline = time.monotonic() + HEALTH_TIMEOUT
    exited = False
    while time.monotonic() < deadline:
        if await ready(remote, lay, port):
            return
        if alive is not None and not await alive():
            exited = True
            break
        await asyncio.sleep(0.5)
    detail = await why_not()
    what = "exited" if exited else f"did not become ready within {HEALTH_TIMEOUT:g}s"
    raise RemoteError(
        f"{remote.target}: clawd-gateway (127.0.0.1:{port}) {what}" + (f":\n{detail}" if detail else ""),
        fix="read the log shown above; `--install` again after fixing it",
    )


async def stop_pid(remote: Remote, pid: int) -> None:
    await remote.run(f"kill -TERM {pid}", changes=True)
    if remote.dry_run:
        return
    for _ in range(50):
        if not (await remote.run(f"kill -0 {pid} 2>/dev/null")).ok:
            return
        await asyncio.sleep(0.1)
    await remote.run(f"kill -KILL {pid}", changes=True)


async def start_detached(
    remote: Remote, lay: Layout, port: int, restart: bool, system: bool, progress: Progress
) -> InstallResult:
    """Where no systemd runs: the env file and user unit (for later), then the gateway detached,
    restarted when `restart`, kept when it already runs; waits until it is ready."""
    note = detached_note(remote.target, lay, system)
    progress("the gateway's 0600 env file: a generated token, kept on re-runs (install-service --user)")
    # Writes the 0600 env file (generating the token once; a re-run keeps it) and the user unit,
    # which a systemd that appears later (or the user) can use.
    await remote.run(install_service_cmd(lay, "--user"), check=True, changes=True)
    pid = None if remote.dry_run else await gateway_pid(remote, lay)
    if pid is not None and not restart and await ready(remote, lay, port):
        progress(f"clawd-gateway is already running detached (pid {pid})")
        return InstallResult(lay.venv, lay.user_env_file, "detached", note)
    if pid is not None:
        progress(f"stopping the detached gateway (pid {pid}) to restart it")
        await stop_pid(remote, pid)
    elif not remote.dry_run and await ready(remote, lay, port):
        # Something that is not our gateway answers there: starting ours would fail to bind, and
        # the readiness check would be fooled by the other one.
        raise RemoteError(
            f"{remote.target}: port {port} on the VPS is already held by another process",
            fix="stop it, or choose another port with --remote-port",
        )
    progress(f"starting clawd-gateway detached on 127.0.0.1:{port} (no systemd here)")
    await remote.run(detached_starter(lay), check=True, changes=True)
    if not remote.dry_run:

        async def log_tail() -> str:
            res = await remote.run(f"tail -n 15 {q(lay.log)}")
            return res.stdout.strip()

        async def alive() -> bool:
            return await gateway_pid(remote, lay) is not None

        await wait_ready(remote, lay, port, log_tail, alive)
    return InstallResult(lay.venv, lay.user_env_file, "detached", note)


async def stop_detached(remote: Remote, lay: Layout, progress: Progress) -> None:
    """Purge: stop the detached gateway, if one runs."""
    pid = await gateway_pid(remote, lay)
    if pid is not None:
        progress(f"stopping the detached clawd-gateway (pid {pid})")
        await stop_pid(remote, pid)


__all__ = [
    "HEALTH_TIMEOUT",
    "gateway_pid",
    "ready",
    "start_detached",
    "stop_detached",
    "stop_pid",
    "wait_ready",
]
