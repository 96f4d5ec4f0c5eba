"""A lean WebSocket handshake load client for gateway_bench.py (bench only, never shipped).

Why it exists: the websockets-based load generator spends about as much CPU per handshake as
clawd-gateway does, so on a 2-core box it saturates first and caps the figure it is meant to
measure. This client does the same exchange with almost no per-connection Python:

    TCP connect -> HTTP upgrade (101, Sec-WebSocket-Accept checked)
    -> text frame `connect.challenge` (checked) -> masked text frame `connect` (token auth)
    -> text frame `res` (parsed: ok, payload.type == "hello-ok") -> close 1000 -> server's close
    frame -> the server closes TCP

Every byte it sends is built once per worker: the upgrade request, the `connect` frame (made by
clawd's own sans-I/O `ClientConnection`, so it is exactly what `openclaw gateway call` sends) and
the close frame. A reply that is not what the protocol requires fails that handshake, and the
failure is counted, never the handshake.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import cast

from clawd_gateway.protocol import client as proto

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class LeanHandshakeFailed(Exception):
    pass


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    full = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(full, "big")).to_bytes(n, "big")


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked, final client frame (RFC 6455 5.2); the mask is random per built frame."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + _mask(payload, key)


@dataclass(frozen=True)
class Plan:
    """The bytes one worker sends on every connection, and what it expects back."""

    request: bytes
    accept: bytes
    connect: bytes
    close: bytes

    @classmethod
    def build(cls, host: str, port: int, token: str) -> Plan:
        key = base64.b64encode(os.urandom(16))
        accept = base64.b64encode(hashlib.sha1(key + _GUID, usedforsecurity=False).digest())  # RFC 6455
        request = (
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            "User-Agent: clawd-bench-lean\r\n\r\n"
        ).encode()
        machine = proto.ClientConnection(token=token, client_id="cli", client_mode="cli", platform="linux")
        challenge = json.dumps(
            {"type": "event", "event": "connect.challenge", "payload": {"nonce": "n", "ts": 0}}
        )
        (out,) = machine.receive(challenge)
        assert isinstance(out, proto.SendText)
        return cls(
            request=request,
            accept=b"Sec-WebSocket-Accept: " + accept,
            connect=client_frame(0x1, out.text.encode()),
            close=client_frame(0x8, struct.pack("!H", 1000)),
        )


def _frame(buf: bytearray) -> tuple[int, bytes] | None:
    """Take one unmasked server frame off the front of `buf`, or None if it is incomplete."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    if b1 & 0x80:
        raise LeanHandshakeFailed("server frame is masked")
    if not b0 & 0x80:
        raise LeanHandshakeFailed("fragmented server frame")
    n = b1 & 0x7F
    at = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n = struct.unpack_from("!H", buf, 2)[0]
        at = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n = struct.unpack_from("!Q", buf, 2)[0]
        at = 10
    if len(buf) < at + n:
        return None
    payload = bytes(buf[at : at + n])
    del buf[: at + n]
    return b0 & 0x0F, payload


class _Handshake(asyncio.Protocol):
    """One connection's exchange, driven from data_received: no task, no reader buffer."""

    def __init__(self, plan: Plan, done: asyncio.Future[None]) -> None:
        self.plan = plan
        self.done = done
        self.buf = bytearray()
        self.stage = 0  # 0: 101, 1: challenge, 2: hello-ok, 3: close frame, 4: waiting for EOF
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports implement asyncio.Transport without subclassing it)
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.plan.request)

    def _fail(self, why: str) -> None:
        if not self.done.done():
            self.done.set_exception(LeanHandshakeFailed(why))
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            self._advance()
        except LeanHandshakeFailed as exc:
            self._fail(str(exc))

    def _advance(self) -> None:
        buf = self.buf
        while True:
            if self.stage == 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buf[:end])
                del buf[: end + 4]
                if not head.startswith(b"HTTP/1.1 101") or self.plan.accept not in head:
                    raise LeanHandshakeFailed(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                self.stage = 1
                continue
            frame = _frame(buf)
            if frame is None:
                return
            opcode, payload = frame
            if self.stage == 1:
                if opcode != 0x1 or b'"connect.challenge"' not in payload:
                    raise LeanHandshakeFailed("first frame is not connect.challenge")
                assert self.transport is not None
                self.transport.write(self.plan.connect)
                self.stage = 2
            elif self.stage == 2:
                if opcode == 0x8:
                    raise LeanHandshakeFailed(f"closed before hello-ok: {payload[2:]!r}")
                msg = json.loads(payload)
                if msg.get("type") == "event":
                    continue
                ok = msg.get("type") == "res" and msg.get("ok") is True
                if not ok or (msg.get("payload") or {}).get("type") != "hello-ok":
                    raise LeanHandshakeFailed(f"connect refused: {msg.get('error')}")
                assert self.transport is not None
                self.transport.write(self.plan.close)
                self.stage = 3
            elif self.stage == 3:
                if opcode == 0x8:
                    self.stage = 4
            else:
                return

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if self.stage == 4:
            self.done.set_result(None)
        else:
            self.done.set_exception(LeanHandshakeFailed(f"connection lost at stage {self.stage}: {exc}"))


async def handshake(host: str, port: int, plan: Plan, timeout: float = 15.0) -> None:
    """One full handshake and close; raises LeanHandshakeFailed (or OSError) if it went wrong."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    transport, _ = await loop.create_connection(lambda: _Handshake(plan, done), host, port)
    try:
        await asyncio.wait_for(done, timeout)
    finally:
        transport.close()
