"""`clawd demo`: the whole path on one machine, no VPS needed.

It plays both sides: a clawd-gateway on loopback (the "VPS"), an embedded SSH endpoint in
front of it, and on the "laptop" side a profile pointing at that endpoint, driven by the real
tunnel supervisor. The tunnel is judged healthy only after an authenticated gateway handshake
and a `health` RPC through the forwarded port, exactly as against a real remote gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from clawd_gateway.config import LoadedConfig
from clawd_gateway.log import setup_logging
from clawd_gateway.protocol.constants import DEFAULT_PORT
from clawd_gateway.secret import Secret
from clawd_gateway.server import Gateway
from clawd_gateway.settings import Overrides, resolve_settings

from .embedded_ssh import start_embedded_ssh
from .engine import Supervisor, TunnelStatus, check_port
from .profiles import Profile, SshTarget

HEALTHY_DEADLINE_S = 20.0


def pick_port(preferred: int) -> int:
    """The standard port when free, so copy-pasted OpenClaw commands just work; else any port.

    "Free" is judged like `clawd connect` judges it (both loopback families, SO_REUSEADDR on POSIX):
    a plain bind fails for a minute after any connection to the port closed (TIME_WAIT), which made
    a second `clawd demo` in a row quietly move off 18789.
    """
    if preferred:
        with contextlib.suppress(OSError, ValueError):
            if check_port(preferred, who=False, suggest=False).free:
                return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def run_demo(once: bool, port: int | None, out: Any) -> int:
    with tempfile.TemporaryDirectory(prefix="clawd-demo-") as tmp:
        return await _run_demo(once, port, out, Path(tmp))


async def _run_demo(once: bool, port: int | None, out: Any, state: Path) -> int:
    def say(text: str) -> None:
        print(text, file=out, flush=True)

    setup_logging("warning")
    token = secrets.token_hex(24)
    settings = resolve_settings(
        Overrides(port=0, token=token, bind="loopback"),
        env={"CLAWD_STATE_DIR": str(state / "gateway")},
        loaded=LoadedConfig(None, "demo defaults"),
    )
    t0 = time.perf_counter()
    gateway = Gateway(settings)
    await gateway.start()
    ssh = await start_embedded_ssh(state / "ssh", gateway.port)
    say(f"clawd demo: the 'VPS' side is up in {(time.perf_counter() - t0) * 1000:.0f} ms")
    say(f"  gateway   ws://127.0.0.1:{gateway.port} (loopback only, token auth; fresh token, never printed)")
    say(
        f"  ssh       127.0.0.1:{ssh.port} (embedded endpoint, ed25519 host key pinned in a demo known_hosts)"
    )
    local_port = pick_port(DEFAULT_PORT if port is None else port)
    profile = Profile(
        name="demo",
        ssh=SshTarget(
            host="127.0.0.1",
            user=ssh.user,
            port=ssh.port,
            identity=str(ssh.client_key_path),
            known_hosts=str(ssh.known_hosts_path),
        ),
        remote_port=gateway.port,
        local_port=local_port,
    )
    target = profile.ssh.display() if profile.ssh else ""
    say(f"  profile   demo: ssh {target} -L {local_port}:127.0.0.1:{gateway.port}")

    healthy = asyncio.Event()
    failed: list[str] = []
    t1 = time.perf_counter()

    def show(st: TunnelStatus) -> None:
        elapsed = (time.perf_counter() - t1) * 1000
        line = f"  [{elapsed:7.1f} ms] {st.state:<10} {st.local_url}"
        if st.state == "healthy":
            line += f" · authenticated health check {st.latency_ms} ms"
            healthy.set()
        elif st.last_error:
            line += f" · {st.last_error}"
        if st.state == "fatal":
            failed.append(st.last_error or "fatal")
            healthy.set()
        say(line)

    supervisor = Supervisor(profile, lambda: Secret(token, "demo"), on_change=show)
    run_task = asyncio.create_task(supervisor.run())
    code = 0
    try:
        try:
            await asyncio.wait_for(healthy.wait(), HEALTHY_DEADLINE_S)
        except asyncio.TimeoutError:
            failed.append(f"not healthy within {HEALTHY_DEADLINE_S:g}s")
        if failed:
            say(f"clawd demo: FAILED: {failed[0]}")
            code = 1
        else:
            url = f"ws://127.0.0.1:{supervisor.local_port}"
            say(f"clawd demo: healthy — {url} reaches the gateway through SSH")
            if not once:
                say("  the tunnel self-heals; Ctrl-C stops everything")
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.add_signal_handler(sig, stop.set)
                await stop.wait()
    finally:
        supervisor.quit()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(run_task, 10)
        ssh.close()
        await ssh.wait_closed()
        await gateway.stop("demo finished")
    return code
