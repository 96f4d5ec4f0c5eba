"""Asyncio adapter around the client state machine: connect, authenticate, call, close.

Errors are sorted by which hop failed (unreachable socket, refused credentials, protocol
trouble), because "which hop is broken" is the question our users cannot answer today.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection as WsClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from .protocol import client as proto
from .protocol.constants import MAX_PAYLOAD_BYTES
from .protocol.frames import ErrorShape, Response


class GatewayError(Exception):
    """Base class; `hop` says where the failure is: network, auth, protocol or gateway."""

    hop = "gateway"
    exit_code = 1


class GatewayUnreachable(GatewayError):
    hop = "network"
    exit_code = 3


class GatewayAuthError(GatewayError):
    hop = "auth"
    exit_code = 4

    def __init__(self, error: ErrorShape) -> None:
        super().__init__(error.message)
        self.error = error

    @property
    def detail_code(self) -> str | None:
        return (self.error.details or {}).get("code")


class GatewayProtocolError(GatewayError):
    hop = "protocol"
    exit_code = 5


class GatewayCallError(GatewayError):
    """The gateway answered the RPC with an error."""

    hop = "gateway"
    exit_code = 1

    def __init__(self, error: ErrorShape) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


@dataclass
class Session:
    """An authenticated connection; `hello` is the server's hello-ok payload."""

    ws: WsClient
    machine: proto.ClientConnection
    hello: dict[str, Any]
    protocol: int
    connect_ms: float
    events: list[dict[str, Any]] = field(default_factory=list)

    async def call(self, method: str, params: Any = None, timeout: float = 10.0) -> Any:
        req, send = self.machine.request(method, params)
        try:
            await self.ws.send(send.text)
        except ConnectionClosed as exc:
            raise GatewayProtocolError(
                f"gateway closed the connection before {method}: {_close_text(exc)}"
            ) from None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GatewayProtocolError(f"no reply to {method} within {timeout:g}s")
            try:
                data = await asyncio.wait_for(self.ws.recv(), remaining)
            except asyncio.TimeoutError:
                continue
            except ConnectionClosed as exc:
                raise GatewayProtocolError(
                    f"gateway closed the connection during {method}: {_close_text(exc)}"
                ) from None
            for out in self.machine.receive(data):
                if isinstance(out, proto.ReplyReceived) and out.response.id == req.id:
                    return _result(out.response)
                if isinstance(out, proto.EventReceived):
                    self.events.append({"event": out.event.event, "payload": out.event.payload})

    async def close(self) -> None:
        await self.ws.close()


def _result(res: Response) -> Any:
    if res.ok:
        return res.payload
    raise GatewayCallError(res.error or ErrorShape("UNKNOWN", "request failed"))


def _close_text(exc: ConnectionClosed) -> str:
    rcvd = exc.rcvd
    if rcvd is None:
        return "connection lost without a close frame"
    return f"close {rcvd.code}" + (f" {rcvd.reason}" if rcvd.reason else "")


async def open_session(
    url: str,
    *,
    token: str | None = None,
    password: str | None = None,
    timeout: float = 10.0,
    client_id: str = "cli",
    client_mode: str = "cli",
    scopes: tuple[str, ...] = ("operator.read",),
    display_name: str | None = None,
    origin: str | None = None,
    device_signer: proto.DeviceSigner | None = None,
) -> Session:
    """Open and authenticate; raises a GatewayError subclass naming the failing hop."""
    machine = proto.ClientConnection(
        client_id=client_id,
        client_mode=client_mode,
        token=token,
        password=password,
        scopes=scopes,
        display_name=display_name,
        device_signer=device_signer,
    )
    t0 = time.perf_counter()
    try:
        ws = await asyncio.wait_for(
            connect(
                url,
                max_size=MAX_PAYLOAD_BYTES,
                compression=None,
                open_timeout=timeout,
                origin=origin,  # type: ignore[arg-type]
                proxy=None,
                user_agent_header="clawd",
            ),
            timeout,
        )
    except InvalidURI as exc:
        raise GatewayUnreachable(f"invalid gateway URL {url!r}: {exc}") from None
    except InvalidStatus as exc:
        raise GatewayUnreachable(
            f"{url} answered HTTP {exc.response.status_code} instead of a WebSocket upgrade"
        ) from None
    except (OSError, asyncio.TimeoutError, InvalidHandshake) as exc:
        reason = (
            "timed out"
            if isinstance(exc, asyncio.TimeoutError)
            else (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
        )
        raise GatewayUnreachable(f"gateway not reachable at {url} ({reason})") from None
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GatewayProtocolError(
                    "no hello-ok from the gateway in time"
                    if machine.state is proto.ClientState.AWAIT_HELLO
                    else "no connect.challenge from the gateway in time (is this an OpenClaw gateway?)"
                )
            try:
                data = await asyncio.wait_for(ws.recv(), remaining)
            except asyncio.TimeoutError:
                continue
            for out in machine.receive(data):
                if isinstance(out, proto.SendText):
                    await ws.send(out.text)
                elif isinstance(out, proto.HelloReceived):
                    return Session(ws, machine, out.payload, out.protocol, (time.perf_counter() - t0) * 1000)
                elif isinstance(out, proto.ConnectFailed):
                    await ws.close()
                    raise GatewayAuthError(out.error) if _is_auth(out.error) else GatewayCallError(out.error)
                elif isinstance(out, proto.ProtocolViolation):
                    await ws.close()
                    raise GatewayProtocolError(out.message)
    except ConnectionClosed as exc:
        raise GatewayProtocolError(
            f"gateway closed the connection during the handshake: {_close_text(exc)}"
        ) from None
    except BaseException:
        await ws.close()
        raise


def _is_auth(error: ErrorShape) -> bool:
    code = str((error.details or {}).get("code") or "")
    return (
        error.code == "NOT_PAIRED"
        or code.startswith("AUTH_")
        or code.startswith("DEVICE_")
        or code == "CONTROL_UI_ORIGIN_NOT_ALLOWED"
        or error.message.startswith("unauthorized")
    )


async def call(url: str, method: str, params: Any = None, **kwargs: Any) -> tuple[Any, Session]:
    """One-shot: connect, call, close. Returns the payload and the (closed) session."""
    timeout = kwargs.get("timeout", 10.0)
    session = await open_session(url, **kwargs)
    try:
        return await session.call(method, params, timeout=timeout), session
    finally:
        await session.close()
