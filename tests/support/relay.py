"""A loopback TCP relay you can freeze: the "silent dead link" of a sleeping Wi-Fi or a NAT that
dropped its mapping, without network namespaces or root.

Why freezing and not closing: a closed connection is noticed in milliseconds (FIN/RST). The hard
case for a tunnel is a link that just stops carrying bytes while both sockets stay open; only
keepalives find that. `freeze()` stops forwarding in both directions but keeps every socket open
(the kernel still ACKs, so TCP itself sees nothing wrong); `thaw()` resumes, bytes held meanwhile
are delivered in order; `cut()` closes all relayed connections (an abrupt, visible loss).

The relay runs its own asyncio loop in a daemon thread, so synchronous tests can drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(eq=False)  # identity-hashed: kept in a set
class _Pair:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class Relay:
    """Relay 127.0.0.1:<listen_port> <-> target_host:target_port. Start with `start()` or `with`."""

    def __init__(
        self,
        target_port: int,
        target_host: str = "127.0.0.1",
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        delay_s: float = 0.0,
    ) -> None:
        self.target_host = target_host
        self.delay_s = delay_s  # each chunk is passed on this much later, each way (a slow leg)
        self.target_port = target_port
        self.listen_host = listen_host
        self.port = listen_port
        self.bytes_relayed = 0
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-relay", daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._pairs: set[_Pair] = set()
        self._closed = False

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> Relay:
        self._thread.start()

        async def _start() -> None:
            self._flowing = asyncio.Event()
            self._flowing.set()
            self._server = await asyncio.start_server(self._handle, self.listen_host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]

        self._run(_start())
        return self

    @property
    def frozen(self) -> bool:
        return self._flowing is not None and not self._flowing.is_set()

    @property
    def connections(self) -> int:
        """How many relayed connections are open right now."""
        return len(self._pairs)

    def freeze(self) -> None:
        """Stop forwarding bytes both ways; sockets stay open (a silent dead link)."""
        self._run(self._set_flowing(False))

    def thaw(self) -> None:
        """Resume forwarding, including whatever was held while frozen."""
        self._run(self._set_flowing(True))

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    def cut(self) -> int:
        """Close every relayed connection (both sides); the listener stays. Returns how many."""
        return self._run(self._cut())

    async def _cut(self) -> int:
        pairs = list(self._pairs)
        for pair in pairs:
            await self._close_pair(pair)
        return len(pairs)

    async def _close_pair(self, pair: _Pair) -> None:
        self._pairs.discard(pair)
        for task in pair.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for writer in (pair.client, pair.upstream):
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        pair = _Pair(writer)
        self._pairs.add(pair)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            await self._close_pair(pair)
            return
        pair.upstream = up_writer
        pair.tasks = [
            asyncio.ensure_future(self._pump(reader, up_writer, pair)),
            asyncio.ensure_future(self._pump(up_reader, writer, pair)),
        ]

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pair: _Pair) -> None:
        assert self._flowing is not None
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(65536)
                if not data:
                    break
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                # A chunk read just before freeze() is held here, not delivered, until thaw().
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
                self.bytes_relayed += len(data)
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            return
        await self._close_pair(pair)

    def close(self) -> None:
        """Stop listening, close every relayed connection, stop the loop thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():

            async def _close() -> None:
                if self._server is not None:
                    self._server.close()
                await self._cut()
                if self._server is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self._server.wait_closed(), 2)

            with contextlib.suppress(Exception):
                self._run(_close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def relay(target_port: int, target_host: str = "127.0.0.1") -> Iterator[Relay]:
    """`with relay(sshd.port) as r: connect to r.port ... r.freeze()`."""
    r = Relay(target_port, target_host).start()
    try:
        yield r
    finally:
        r.close()
