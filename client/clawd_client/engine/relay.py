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

from .listener import CHUNK, HeldListener

log = logging.getLogger("clawd.relay")

CONNECT_TIMEOUT_S = 10.0


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


class Relay(HeldListener):
    """Listens on 127.0.0.1:port (and [::1]:port when possible); one upstream per connection.

    The agent's held listener with nothing held (hold 0): a connection whose upstream cannot be
    opened is closed at once, and why is kept in `last_error`."""

    def __init__(self, upstream: Upstream) -> None:
        super().__init__(hold_s=0)
        self.upstream = upstream
        self.set_opener(lambda: open_upstream(upstream), f"relay to {upstream.describe()}")

    @property
    def local_port(self) -> int:
        return self.port

    async def start(self, port: int) -> int:
        """Bind; raises OSError when 127.0.0.1:port is taken (the port guard runs before this)."""
        return await self.bind(port)

    @property
    def connections(self) -> int:
        return self.active


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
