"""`clawd demo`: the whole path on one machine, no VPS needed.

Starts a clawd-gateway on loopback with a fresh token, then checks it end to end over the
gateway protocol exactly as the laptop side does through a tunnel: authenticated handshake
plus a `health` RPC, not merely an open socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clawd_gateway.client import GatewayError, open_session
from clawd_gateway.config import LoadedConfig
from clawd_gateway.log import setup_logging
from clawd_gateway.protocol.constants import DEFAULT_PORT
from clawd_gateway.server import Gateway
from clawd_gateway.settings import Overrides, resolve_settings


def pick_port(preferred: int) -> int:
    """The standard port when free, so copy-pasted OpenClaw commands just work; else any port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DemoResult:
    ok: bool
    url: str
    steps: list[dict[str, Any]]


async def check_gateway(url: str, token: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Hop by hop: TCP+WebSocket, authenticated handshake, health RPC."""
    steps: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        session = await open_session(url, token=token, timeout=timeout)
    except GatewayError as exc:
        steps.append({"step": "handshake", "ok": False, "hop": exc.hop, "error": str(exc)})
        return steps
    steps.append(
        {
            "step": "handshake",
            "ok": True,
            "ms": round((time.perf_counter() - t0) * 1000, 1),
            "protocol": session.protocol,
            "scopes": (session.hello.get("auth") or {}).get("scopes"),
        }
    )
    try:
        t1 = time.perf_counter()
        health = await session.call("health", {}, timeout=timeout)
        ok = isinstance(health, dict) and health.get("ok") is True
        steps.append({"step": "health", "ok": ok, "ms": round((time.perf_counter() - t1) * 1000, 1)})
    except GatewayError as exc:
        steps.append({"step": "health", "ok": False, "hop": exc.hop, "error": str(exc)})
    finally:
        await session.close()
    return steps


async def run_demo(once: bool, port: int | None, out: Any) -> int:
    with tempfile.TemporaryDirectory(prefix="clawd-demo-") as tmp:
        return await _run_demo(once, port, out, Path(tmp))


async def _run_demo(once: bool, port: int | None, out: Any, state: Path) -> int:
    logger = setup_logging("warning")
    token = secrets.token_hex(24)
    chosen = port if port is not None else pick_port(DEFAULT_PORT)
    settings = resolve_settings(
        Overrides(port=chosen, token=token, bind="loopback"),
        env={"CLAWD_STATE_DIR": str(state)},
        loaded=LoadedConfig(None, "demo defaults"),
    )
    gateway = Gateway(settings, logger)
    t0 = time.perf_counter()
    await gateway.start()
    url = f"ws://127.0.0.1:{gateway.port}"
    print(f"clawd demo: gateway up at {url} in {(time.perf_counter() - t0) * 1000:.0f} ms", file=out)
    print(
        f"  bind {settings.bind.mode} ({', '.join(gateway.listening)}) · "
        "auth token (fresh for this run, never written or printed)",
        file=out,
    )
    try:
        steps = await check_gateway(url, token)
        for s in steps:
            mark = "ok " if s["ok"] else "FAIL"
            extra = f"{s.get('ms', '')} ms" if s["ok"] else f"{s.get('hop')}: {s.get('error')}"
            print(f"  [{mark}] {s['step']:<9} {extra}", file=out)
        ok = all(s["ok"] for s in steps) and len(steps) == 2
        print(f"clawd demo: {'gateway reachable and authenticated' if ok else 'check FAILED'}", file=out)
        if once or not ok:
            return 0 if ok else 1
        print("  try: OPENCLAW_GATEWAY_TOKEN=<token> clawd-gateway health --url " + url, file=out)
        print("  (the demo token is not printed; this gateway stops with Ctrl-C)", file=out)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        return 0
    finally:
        await gateway.stop("demo finished")
