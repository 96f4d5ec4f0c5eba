"""The local listeners a tunnel owns from `up` to `down`: accept, hold while the path is down, splice.

Why the agent keeps its own listener instead of asking asyncssh (or the old relay) to listen:
a forward that is torn down and rebuilt on every reconnect closes the port for the length of the
outage, so every client that connects meanwhile gets "connection refused" and any other process
can take the port. Here the port stays bound across reconnects; the path only supplies an
*opener* (a direct-tcpip channel on the current SSH connection, or a TCP/TLS connection to the
tailnet or direct gateway). A client that arrives while there is no opener, or while the opener
fails, is held: nothing is read from its socket, so its bytes wait in the kernel and can be
neither lost nor reordered, and it is spliced through as soon as a working opener exists. Past
the hold deadline it is closed (hold 0 refuses at once: closes right after accept).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger("clawd.listener")

CHUNK = 256 * 1024
RETRY_MIN_S = 0.1  # an opener that fails (e.g. the gateway restarting behind a live SSH link)
RETRY_MAX_S = 1.0  # is retried with a short backoff until the hold deadline


class Reader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def can_write_eof(self) -> bool: ...

    def write_eof(self) -> None: ...

    def close(self) -> None: ...


Opener = Callable[[], Awaitable[tuple[Any, Any]]]
"""Opens one upstream stream pair (reader, writer) to the gateway, or raises."""


async def pump(reader: Reader, writer: Writer) -> None:
    """Copy until EOF or error, then pass the EOF on (half-close) where the transport can."""
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        pass
    except Exception as exc:  # asyncssh's channel errors are not OSError; the splice just ends
        log.debug("splice ended: %s", exc)
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


def describe(exc: BaseException) -> str:
    import os

    if isinstance(exc, OSError) and exc.errno and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


class HeldListener:
    """127.0.0.1:PORT (and [::1]:PORT when the host has IPv6 loopback), bound until `close()`."""

    def __init__(self, hold_s: float = 30.0) -> None:
        self.hold_s = hold_s
        self.port = 0
        self.last_error: str | None = None  # why the latest upstream open failed, for the status
        self.held = 0  # connections waiting for a path right now
        self.active = 0  # connections spliced through right now
        self.expired = 0  # connections closed because no path came back within hold_s
        self.spliced = 0  # connections ever spliced through
        self._opener: Opener | None = None
        self._label = "upstream"
        self._changed = asyncio.Event()
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[Any] = set()
        self.on_open_failed: Callable[[str], None] | None = None

    @property
    def bound(self) -> bool:
        return bool(self._servers)

    async def bind(self, port: int) -> int:
        """Raises OSError when 127.0.0.1:port is taken (the port guard runs before this)."""
        first = await asyncio.start_server(self._accept, "127.0.0.1", port, limit=CHUNK)
        self._servers.append(first)
        self.port = int(first.sockets[0].getsockname()[1])
        with contextlib.suppress(OSError):
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(("::1", self.port))
            except OSError:
                sock.close()
                raise
            self._servers.append(await asyncio.start_server(self._accept, sock=sock, limit=CHUNK))
        return self.port

    def set_opener(self, opener: Opener | None, label: str = "upstream") -> None:
        """A path came up (or went down): held connections retry at once with the new opener.
        `label` names what the opener dials, for the error a failed open leaves in `last_error`."""
        self._opener = opener
        self._label = label
        if opener is not None:
            self.last_error = None
        self._changed.set()
        self._changed = asyncio.Event()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wait_change(self, changed: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)

    async def _upstream(self) -> tuple[Any, Any] | None:
        """An open upstream for one client, or None once its hold deadline has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hold_s
        delay = RETRY_MIN_S
        holding = False
        try:
            while True:
                opener, changed = self._opener, self._changed
                if opener is not None:
                    try:
                        return await opener()
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        self.last_error = f"{self._label}: {describe(exc)}"
                        if self.on_open_failed is not None:
                            self.on_open_failed(self.last_error)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                if not holding:
                    holding = True
                    self.held += 1
                if opener is None:
                    await self._wait_change(changed, remaining)
                else:  # the path is up but the open failed: retry soon, or at once on a new path
                    await self._wait_change(changed, min(delay, remaining))
                    delay = min(RETRY_MAX_S, delay * 2)
        finally:
            if holding:
                self.held -= 1

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        up_writer: Any = None
        try:
            up = await self._upstream()
            if up is None:
                self.expired += 1
                return
            up_reader, up_writer = up
            self._writers.add(up_writer)
            self.spliced += 1
            self.active += 1
            try:
                await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
            finally:
                self.active -= 1
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    with contextlib.suppress(Exception):
                        w.close()

    async def close(self) -> None:
        """Unbind and end every connection, held or spliced."""
        for server in self._servers:
            server.close()
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self._servers.clear()


__all__ = ["HeldListener", "Opener", "pump"]
