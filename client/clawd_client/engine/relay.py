"""A loopback TCP relay: ws://127.0.0.1:PORT on this machine, bytes passed to the real gateway.

Why: tools configured for `ws://127.0.0.1:18789` (the SSH tunnel's address) keep working when
the gateway is reached over the tailnet or a public wss:// URL instead. The relay works below
HTTP (it never parses or logs a byte, so secrets in the handshake pass through untouched);
for a wss:// upstream it originates TLS itself, verifying the certificate against the gateway's
name (system trust store, plus a profile CA file if given). Each local connection gets its own
upstream connection, so a dead upstream shows up at the next probe, not as a stuck listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

log = logging.getLogger("clawd.relay")

CONNECT_TIMEOUT_S = 10.0
CHUNK = 256 * 1024


@dataclass(frozen=True)
class Upstream:
    """Where the relay dials: `host` (usually an address), and for TLS the name to verify."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    server_name: str | None = None  # SNI and certificate name; Serve picks its route by SNI

    def describe(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.tls is None:
            return f"{host}:{self.port}"
        return f"{host}:{self.port} (TLS for {self.server_name or self.host})"


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """Certificate and host name always verified: the system store, plus `ca_file` when set."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


async def open_upstream(
    up: Upstream, timeout: float = CONNECT_TIMEOUT_S
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection(
            up.host,
            up.port,
            ssl=up.tls,
            server_hostname=(up.server_name or up.host) if up.tls is not None else None,
            limit=CHUNK,
        ),
        timeout,
    )


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        # Half-close where the transport can (plain TCP); TLS cannot, so close that side.
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


class Relay:
    """Listens on 127.0.0.1:port (and [::1]:port when possible); one upstream per connection."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.local_port = 0
        self.last_error: str | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int) -> int:
        """Bind; raises OSError when 127.0.0.1:port is taken (the port guard runs before this)."""
        first = await asyncio.start_server(self._serve, "127.0.0.1", port, limit=CHUNK)
        self._servers.append(first)
        self.local_port = first.sockets[0].getsockname()[1]
        with contextlib.suppress(OSError):
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(("::1", self.local_port))
            except OSError:
                sock.close()
                raise
            self._servers.append(await asyncio.start_server(self._serve, sock=sock, limit=CHUNK))
        return self.local_port

    def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            try:
                up_reader, up_writer = await open_upstream(self.upstream)
            except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
                self.last_error = f"{self.upstream.describe()}: {describe_error(exc)}"
                log.info("relay: upstream connect failed: %s", self.last_error)
                return
            self.last_error = None
            self._writers.add(up_writer)
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    with contextlib.suppress(Exception):
                        w.close()

    @property
    def connections(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
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


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_S:g}s"
    if isinstance(exc, OSError):
        if exc.errno and not isinstance(exc, socket.gaierror):  # asyncio: "Connect call failed (...)"
            return os.strerror(exc.errno)
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


@contextlib.asynccontextmanager
async def bridge(upstream: Upstream) -> AsyncIterator[tuple[str, Relay]]:
    """A throwaway relay on an ephemeral loopback port: lets the ordinary gateway client (which
    takes a URL, not a TLS context) probe a wss:// gateway verified with the profile's CA file."""
    relay = Relay(upstream)
    await relay.start(0)
    try:
        yield f"ws://127.0.0.1:{relay.local_port}", relay
    finally:
        await relay.close()


__all__ = ["Relay", "Upstream", "bridge", "describe_error", "open_upstream", "tls_context"]
