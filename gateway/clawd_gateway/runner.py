"""Run a gateway until SIGTERM/SIGINT, with a runtime file so `status` can find it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from .banner import banner_lines
from .paths import atomic_write
from .server import Gateway
from .settings import Settings


def runtime_file(settings: Settings, port: int) -> Path:
    return settings.state_dir / "run" / f"gateway-{port}.json"


async def serve_until_stopped(
    settings: Settings,
    logger: logging.Logger,
    *,
    stop: asyncio.Event | None = None,
    print_banner: bool = True,
) -> int:
    gateway = Gateway(settings, logger)
    t0 = time.perf_counter()
    await gateway.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    rt = runtime_file(settings, gateway.port)
    atomic_write(
        rt,
        json.dumps(
            {
                "pid": os.getpid(),
                "port": gateway.port,
                "listen": gateway.listening,
                "bind": settings.bind.mode,
                "authMode": settings.auth_mode,
                "startedMs": gateway.started_ms,
                "configFile": str(settings.config.path) if settings.config.path else None,
            }
        ),
        mode=0o644,
    )
    if print_banner:
        for line in banner_lines(settings, gateway.port, gateway.listening):
            print(line, flush=True)
        for note in settings.notes:
            print(f"   {note}", flush=True)
        print(f"   ready in {(time.perf_counter() - t0) * 1000:.0f} ms · Ctrl-C to stop", flush=True)
    try:
        await stop.wait()
    finally:
        await gateway.stop("gateway stopping")
        rt.unlink(missing_ok=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
    if print_banner:
        print("clawd-gateway stopped", file=sys.stderr, flush=True)
    return 0
