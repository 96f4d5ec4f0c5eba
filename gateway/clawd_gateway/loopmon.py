"""Event-loop lag and CPU use, sampled once a second, for `health.eventLoop`.

A gateway that answers its socket but whose loop is stalled is the "connected but nothing
passes" failure users cannot see; this makes it visible in every health check.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

INTERVAL_S = 1.0
DEGRADED_LAG_MS = 250.0


class LoopMonitor:
    def __init__(self, window: int = 60) -> None:
        self._lags: deque[float] = deque(maxlen=window)
        self._cpu: deque[tuple[float, float]] = deque(maxlen=window)
        self._task: asyncio.Task[None] | None = None
        # The summary changes only when a sample lands (once a second), but every hello-ok and
        # health call asks for it: sorting the window each time was a cost per handshake.
        self._summary: dict[str, Any] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="clawd-loopmon")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        wall0, cpu0 = time.monotonic(), time.process_time()
        while True:
            expected = loop.time() + INTERVAL_S
            await asyncio.sleep(INTERVAL_S)
            self._lags.append(max(0.0, (loop.time() - expected) * 1000))
            wall, cpu = time.monotonic(), time.process_time()
            self._cpu.append((wall - wall0, cpu - cpu0))
            self._summary = None
            wall0, cpu0 = wall, cpu

    def summary(self) -> dict[str, Any]:
        if self._summary is None:
            self._summary = self._summarize()
        return dict(self._summary)

    def _summarize(self) -> dict[str, Any]:
        lags = sorted(self._lags)
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else 0.0
        mx = lags[-1] if lags else 0.0
        wall = sum(w for w, _ in self._cpu)
        cpu = sum(c for _, c in self._cpu)
        ratio = round(cpu / wall, 3) if wall > 0 else 0.0
        return {
            "degraded": p99 > DEGRADED_LAG_MS,
            "reasons": ["event-loop-lag"] if p99 > DEGRADED_LAG_MS else [],
            "intervalMs": INTERVAL_S * 1000,
            "delayP99Ms": round(p99, 1),
            "delayMaxMs": round(mx, 1),
            "utilization": ratio,
            "cpuCoreRatio": ratio,
        }
