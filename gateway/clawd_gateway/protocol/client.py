"""Client side of the gateway handshake and RPC, as a sans-I/O state machine.

Used by `clawd-gateway health`, the tunnel's end-to-end probe and the benchmark, so that one
implementation of the handshake is exercised against both clawd-gateway and real OpenClaw.
"""

from __future__ import annotations

import enum
import itertools
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .constants import PROTOCOL_MAX, PROTOCOL_MIN, ErrorCode
from .frames import (
    ErrorShape,
    Event,
    FrameError,
    Request,
    Response,
    decode_json,
    encode,
    parse_server_frame,
    request,
)

DeviceSigner = Callable[[str, int, dict[str, Any]], dict[str, Any]]


def _own_version() -> str:
    from .. import __version__

    return __version__


class ClientState(enum.Enum):
    AWAIT_CHALLENGE = "await-challenge"
    AWAIT_HELLO = "await-hello"
    OPEN = "open"
    FAILED = "failed"


@dataclass(frozen=True)
class SendText:
    text: str


@dataclass(frozen=True)
class HelloReceived:
    payload: dict[str, Any]
    protocol: int


@dataclass(frozen=True)
class ConnectFailed:
    error: ErrorShape


@dataclass(frozen=True)
class ReplyReceived:
    response: Response


@dataclass(frozen=True)
class EventReceived:
    event: Event


@dataclass(frozen=True)
class ProtocolViolation:
    message: str


ClientOutput = SendText | HelloReceived | ConnectFailed | ReplyReceived | EventReceived | ProtocolViolation


class ClientConnection:
    """Drives connect.challenge -> connect -> hello-ok, then matches replies to requests."""

    def __init__(
        self,
        *,
        client_id: str = "cli",
        client_mode: str = "cli",
        client_version: str = "",
        platform: str = "",
        display_name: str | None = None,
        token: str | None = None,
        password: str | None = None,
        role: str = "operator",
        scopes: tuple[str, ...] = ("operator.read",),
        min_protocol: int = PROTOCOL_MIN,
        max_protocol: int = PROTOCOL_MAX,
        device_signer: DeviceSigner | None = None,
    ) -> None:
        self.state = ClientState.AWAIT_CHALLENGE
        self._client: dict[str, Any] = {
            "id": client_id,
            "version": client_version or _own_version(),
            "platform": platform or sys.platform,
            "mode": client_mode,
            "instanceId": str(uuid.uuid4()),
        }
        if display_name:
            self._client["displayName"] = display_name
        self._auth: dict[str, str] = {}
        if token:
            self._auth["token"] = token
        if password:
            self._auth["password"] = password
        self._role = role
        self._scopes = list(scopes)
        self._min = min_protocol
        self._max = max_protocol
        self._signer = device_signer
        self._counter = itertools.count(1)
        self._connect_id: str | None = None
        self.nonce: str | None = None
        self.hello: dict[str, Any] | None = None

    def _next_id(self) -> str:
        return f"{next(self._counter)}:{uuid.uuid4()}"

    def receive(self, data: str | bytes) -> list[ClientOutput]:
        try:
            frame = parse_server_frame(decode_json(data))
        except FrameError as exc:
            return [ProtocolViolation(str(exc))]
        if self.state is ClientState.AWAIT_CHALLENGE:
            if isinstance(frame, Event) and frame.event == "connect.challenge":
                return self._on_challenge(frame)
            return [ProtocolViolation("expected connect.challenge as the first frame")]
        if self.state is ClientState.AWAIT_HELLO:
            if isinstance(frame, Response) and frame.id == self._connect_id:
                return self._on_hello(frame)
            if isinstance(frame, Event):
                return [EventReceived(frame)]
            return [ProtocolViolation("unexpected frame before hello-ok")]
        if isinstance(frame, Response):
            return [ReplyReceived(frame)]
        if isinstance(frame, Event):
            return [EventReceived(frame)]
        return [ProtocolViolation("unexpected request frame from gateway")]

    def _on_challenge(self, ev: Event) -> list[ClientOutput]:
        payload = ev.payload if isinstance(ev.payload, dict) else {}
        nonce = payload.get("nonce")
        ts = payload.get("ts")
        if not isinstance(nonce, str) or not nonce:
            return [ProtocolViolation("connect.challenge without a nonce")]
        self.nonce = nonce
        params: dict[str, Any] = {
            "minProtocol": self._min,
            "maxProtocol": self._max,
            "client": dict(self._client),
            "caps": [],
            "role": self._role,
            "scopes": list(self._scopes),
        }
        if self._auth:
            params["auth"] = dict(self._auth)
        if self._signer is not None:
            signed_at = ts if isinstance(ts, int) else 0
            params["device"] = self._signer(nonce, signed_at, params)
        self._connect_id = self._next_id()
        self.state = ClientState.AWAIT_HELLO
        return [SendText(encode(request(self._connect_id, "connect", params)))]

    def _on_hello(self, res: Response) -> list[ClientOutput]:
        if not res.ok:
            self.state = ClientState.FAILED
            return [ConnectFailed(res.error or ErrorShape(ErrorCode.INVALID_REQUEST, "connect failed"))]
        payload = res.payload if isinstance(res.payload, dict) else {}
        if payload.get("type") != "hello-ok":
            self.state = ClientState.FAILED
            return [ProtocolViolation("connect succeeded without a hello-ok payload")]
        self.state = ClientState.OPEN
        self.hello = payload
        proto = payload.get("protocol")
        return [HelloReceived(payload, proto if isinstance(proto, int) else 0)]

    def request(self, method: str, params: Any = None) -> tuple[Request, SendText]:
        if self.state is not ClientState.OPEN:
            raise RuntimeError("request() before hello-ok")
        rid = self._next_id()
        return Request(rid, method, params), SendText(encode(request(rid, method, params)))
