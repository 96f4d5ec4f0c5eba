"""One client connection's splice: the client socket's protocol (`_Client`), the halves the
upstream plugs into, and the generic stream pump. The HeldListener (listener.py) decides when a
connection is held, released and given an upstream; this module only moves bytes.

Why callbacks: for an SSH channel (which can attach to a protocol directly) each chunk goes from
one `data_received` straight to the other side, with no read buffer and no task wake-up per
read; relays and other stream upstreams use `pump` over an asyncio stream view of the client.
Flow control is the transports' own: a full side pauses reading on the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from .listener import HeldListener

log = logging.getLogger("clawd.listener")

CHUNK = 256 * 1024
HIGH_WATER = 4 * CHUNK  # bytes queued toward a slow side before the other side is paused
HELD_CAP = 64 * 1024  # bytes read from a held client before its reading is paused
COALESCE_MIN = 16 * 1024  # upstream chunks this large are batched into one send() per loop pass


class Reader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def can_write_eof(self) -> bool: ...

    def write_eof(self) -> None: ...

    def close(self) -> None: ...


class Half(Protocol):
    """One end of a callback splice (the data path without a task per read).

    `write`/`write_eof`/`close` send toward that end; `pause_reading`/`resume_reading` stop and
    restart the bytes coming *from* it (flow control: the other end is full)."""

    def write(self, data: bytes) -> None: ...

    def write_eof(self) -> None: ...

    def close(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class Attachable(Protocol):
    """An upstream that can be spliced by callbacks (engine/ssh.py's channel): `attach(peer)`
    makes it call peer.write / write_eof / close for what it receives and peer.pause_reading /
    resume_reading for its own flow control; it returns its own Half."""

    def attach(self, peer: Half) -> Half: ...


Opener = Callable[[], Awaitable[tuple[Any, Any]]]
"""Opens one upstream to the gateway, or raises: a (reader, writer) stream pair, or
(upstream, upstream) where upstream has `attach` (Attachable) for the callback splice."""


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


class _Client(asyncio.Protocol):
    """The accepted client socket. Held: up to HELD_CAP bytes are read and kept in order (the
    rest waits in the kernel), so a client that gives up while held is noticed (EOF/reset) and
    dropped instead of taking a slot when the path returns. Spliced: each
    `data_received` goes straight to the upstream (one call, no task wake-up and no extra
    buffer); a full side pauses reading on the other (asyncio's write-buffer limits, asyncssh's
    channel window)."""

    def __init__(self, owner: HeldListener) -> None:
        self._owner = owner
        self.transport: asyncio.Transport | None = None
        self.peer: Half | None = None  # the upstream, once spliced by callbacks
        self.reader: asyncio.StreamReader | None = None  # the generic (stream) splice instead
        self.done = asyncio.get_running_loop().create_future()  # both directions finished
        self._early: list[bytes] = []  # read while held (up to HELD_CAP), sent first on the splice
        self._early_size = 0
        self._eof_in = False  # the client sent EOF (or is gone)
        self._eof_out = False  # the upstream sent EOF to the client
        self._writable = asyncio.Event()
        self._writable.set()
        # Turn taking, for the listener's release slots: an answer is upstream data that comes
        # after the client spoke (the first answer counts whoever spoke first).
        self.on_turn: Callable[[int], None] | None = None
        self._turns = 0
        self._client_spoke = True
        self._pending: list[bytes] | None = None  # upstream bulk data waiting for _flush

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports implement asyncio.Transport without subclassing it)
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=HIGH_WATER)
        self._owner._spawn(self)

    def data_received(self, data: bytes) -> None:
        self._client_spoke = True
        if self.peer is not None:
            self.peer.write(data)
        elif self.reader is not None:
            self.reader.feed_data(data)
        else:  # held: keep it, in order; past HELD_CAP leave the rest in the kernel
            self._early.append(data)
            self._early_size += len(data)
            if self._early_size >= HELD_CAP:
                self.pause_reading()

    def eof_received(self) -> bool:
        self._eof_in = True
        if self.peer is not None:
            self.peer.write_eof()
        elif self.reader is not None:
            self.reader.feed_eof()
        self._maybe_done()
        return True  # half-close: the answer may still come

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof_in = self._eof_out = True
        self._writable.set()
        if self.peer is not None:
            self.peer.close()
        elif self.reader is not None:
            self.reader.feed_eof()
        if not self.done.done():
            self.done.set_result(None)

    def pause_writing(self) -> None:  # the client reads slower than the upstream sends
        self._writable.clear()
        if self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        self._writable.set()
        if self.peer is not None:
            self.peer.resume_reading()

    def _maybe_done(self) -> None:
        if self._eof_in and self._eof_out and not self.done.done():
            self.done.set_result(None)

    # -- Half: what the upstream calls, toward the client --------------------------------------
    def write(self, data: bytes) -> None:
        tr = self.transport
        if tr is not None and not tr.is_closing():
            if self._pending is not None:
                self._pending.append(data)
            elif len(data) >= COALESCE_MIN:
                # A bulk packet: more usually follow in the same upstream read (sshd sends
                # 32 KiB packets, a read holds several). Send them with one syscall once this
                # callback is done, instead of one send() per packet.
                self._pending = [data]
                asyncio.get_running_loop().call_soon(self._flush)
            else:  # small and alone (an interactive reply): at once, no added latency
                tr.write(data)
        if self._client_spoke and self.on_turn is not None:
            self._client_spoke = False
            self._turns += 1
            self.on_turn(self._turns)

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        tr = self.transport
        if pending and tr is not None and not tr.is_closing():
            tr.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def write_eof(self) -> None:
        self._flush()
        self._eof_out = True
        tr = self.transport
        if tr is not None and not tr.is_closing():
            try:
                if tr.can_write_eof():
                    tr.write_eof()
                else:
                    tr.close()
            except OSError:
                # The client reset its socket and the loop has not read the RST yet: the
                # transport still looks open, and its shutdown() fails (ENOTCONN). That client
                # is gone; the error must not escape into the upstream's callback, where
                # asyncssh would take it as a failure of the whole SSH connection and end every
                # other client's channel with it.
                self.close()
                return
        self._maybe_done()

    def close(self) -> None:
        self._flush()
        self._eof_out = self._eof_in = True
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # -- the generic splice: (reader, writer) streams upstream ---------------------------------
    def as_stream(self) -> tuple[asyncio.StreamReader, _ClientWriter]:
        assert self.transport is not None
        reader = asyncio.StreamReader(limit=CHUNK)
        reader.set_transport(self.transport)  # the reader pauses/resumes the socket by its fill
        self.reader = reader
        for data in self._early:
            reader.feed_data(data)
        self._early.clear()
        if self._eof_in:
            reader.feed_eof()
        return reader, _ClientWriter(self)

    def attach(self, peer: Half) -> None:
        """Splice by callbacks from now on; what was read while held goes first."""
        self.peer = peer
        for data in self._early:
            peer.write(data)
        self._early.clear()
        if self._eof_in:
            peer.write_eof()


class _ClientWriter:
    """The client socket as a stream writer, for `pump` from a stream upstream."""

    def __init__(self, client: _Client) -> None:
        self._c = client

    def write(self, data: bytes) -> None:
        self._c.write(data)

    async def drain(self) -> None:
        if self._c.transport is None or self._c.transport.is_closing():
            raise ConnectionResetError("client gone")
        await self._c._writable.wait()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self._c.write_eof()

    def close(self) -> None:
        self._c.close()


def describe(exc: BaseException) -> str:

    if isinstance(exc, OSError) and exc.errno and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


