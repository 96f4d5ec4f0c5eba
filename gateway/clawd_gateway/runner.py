"""Run a gateway until SIGTERM/SIGINT, with a runtime file so `status` can find it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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
from .tailscale import TailscaleExposure


def runtime_file(settings: Settings, port: int) -> Path:
    return settings.state_dir / "run" / f"gateway-{port}.json"


async def serve_until_stopped(
    settings: Settings,
    logger: logging.Logger,
    *,
    stop: asyncio.Event | None = None,
    print_banner: bool = True,
) -> int:
    t0 = time.perf_counter()
    exposure = _tailscale_exposure(settings, logger)
    if exposure is not None:
        await exposure.preflight()  # refusals (exit 78) come before we listen
    gateway = Gateway(settings, logger)
    await gateway.start()
    ts_info: dict[str, object] | None = None
    if exposure is not None:
        try:
            exposed = await exposure.apply(gateway.port)
        except BaseException:
            await gateway.stop("tailscale setup failed")
            raise
        ts_info = exposed.to_json()
        # The Control UI opened through Serve/Funnel has that origin; it is ours, so allow it.
        gateway.settings = dataclasses.replace(
            settings, allowed_origins=(*settings.allowed_origins, exposed.origin)
        )
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
                "tailscale": ts_info,
            }
        ),
        mode=0o644,
    )
    if print_banner:
        for line in banner_lines(settings, gateway.port, gateway.listening, ts_info):
            print(line, flush=True)
        for note in settings.notes:
            print(f"   {note}", flush=True)
        print(f"   ready in {(time.perf_counter() - t0) * 1000:.0f} ms · Ctrl-C to stop", flush=True)
    try:
        await stop.wait()
    finally:
        await gateway.stop("gateway stopping")
        if exposure is not None:
            warning = await exposure.undo()
            if warning:
                logger.warning(warning)
                print(f"clawd-gateway: {warning}", file=sys.stderr, flush=True)
        rt.unlink(missing_ok=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
    if print_banner:
        print("clawd-gateway stopped", file=sys.stderr, flush=True)
    return 0


def _tailscale_exposure(settings: Settings, logger: logging.Logger) -> TailscaleExposure | None:
    if settings.tailscale_mode not in ("serve", "funnel"):
        return None
    return TailscaleExposure(
        settings.tailscale_mode,
        base_path=settings.control_ui_base_path,
        reset_on_exit=settings.reset_on_exit,
        state_dir=settings.state_dir,
        logger=logger,
        configured_port=settings.port,
    )
