"""The one sleep/network-change sampler per event loop (engine/wake.py holds the pure comparison).

Why shared: the agent hosts many supervisors (a multi-path profile has one per path), and each
sample costs a thread hop and a walk of the network interfaces every 2 s; one sampler tells all.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import ClassVar

from .wake import detect, take_sample

log = logging.getLogger("clawd.engine")

WAKE_POLL_S = 2.0


class WakeWatch:
    """One sleep/network-change sampler per event loop, shared by every supervisor on it: the
    agent hosts many tunnels (and a multi-path profile one per path), and each sampling costs a
    thread hop and a walk of the interfaces."""

    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WakeWatch]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._subscribers: set[Callable[[str], None]] = set()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> WakeWatch:
        watch = cls._by_loop.get(loop)
        if watch is None:
            watch = cls._by_loop[loop] = cls(loop)
        return watch

    def subscribe(self, fn: Callable[[str], None]) -> Callable[[], None]:
        self._subscribers.add(fn)
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run(), name="clawd-wake")

        def unsubscribe() -> None:
            self._subscribers.discard(fn)
            if not self._subscribers and self._task is not None:
                self._task.cancel()
                self._task = None

        return unsubscribe

    async def _run(self) -> None:
        prev = await asyncio.to_thread(take_sample)
        while True:
            await asyncio.sleep(WAKE_POLL_S)
            cur = await asyncio.to_thread(take_sample)
            reason = detect(prev, cur)
            prev = cur
            if reason:
                log.info("%s: re-checking now", reason)
                for fn in list(self._subscribers):
                    fn(reason)


__all__ = ["WAKE_POLL_S", "WakeWatch"]
