"""Server side of one gateway connection, as a sans-I/O state machine.

The adapter feeds it text frames and timer expiries; it answers with `Send` and `Close`
actions plus two decisions it cannot make alone: `ConnectRequested` (authentication needs
configuration, rate limits and clocks) and `RequestReceived` (method dispatch). Nothing here
touches a socket or a clock, which is what lets property tests throw arbitrary bytes at it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .constants import (
    CLOSE_POLICY,
    CLOSE_PROTOCOL_ERROR,
    PROTOCOL_MAX,
    PROTOCOL_MIN,
    ROLES,
    DetailCode,
    ErrorCode,
)
from .frames import (
    ConnectParams,
    ErrorShape,
    FrameError,
    ParamsError,
    Request,
    close_reason,
    decode_json,
    event,
    negotiate_protocol,
    parse_connect_params,
    parse_request,
    res_error,
    res_ok,
)


class ConnState(enum.Enum):
    AWAIT_CONNECT = "await-connect"
    AUTHENTICATING = "authenticating"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Send:
    frame: dict[str, Any]


@dataclass(frozen=True)
class Close:
    code: int
    reason: str


@dataclass(frozen=True)
class ConnectRequested:
    req_id: str
    params: ConnectParams
    protocol: int


@dataclass(frozen=True)
class RequestReceived:
    request: Request


Action = Send | Close | ConnectRequested | RequestReceived


class ServerConnection:
    """One client socket from challenge to close."""

    def __init__(self, nonce: str, now_ms: int, capabilities: tuple[str, ...] = ()) -> None:
        self.nonce = nonce
        self.challenge_ts = now_ms
        self.capabilities = capabilities
        self.state = ConnState.AWAIT_CONNECT
        self.protocol: int | None = None
        self.params: ConnectParams | None = None
        self._connect_id: str | None = None

    # -- inputs -------------------------------------------------------------------------------

    def start(self) -> list[Action]:
        """The server speaks first: the challenge carries the nonce a device must sign."""
        payload: dict[str, Any] = {"nonce": self.nonce, "ts": self.challenge_ts}
        if self.capabilities:
            payload["capabilities"] = list(self.capabilities)
        return [Send(event("connect.challenge", payload))]

    def receive(self, data: str | bytes) -> list[Action]:
        if self.state is ConnState.CLOSED:
            return []
        if self.state is ConnState.AWAIT_CONNECT:
            return self._receive_handshake(data)
        if self.state is ConnState.AUTHENTICATING:
            return self._fail_close("invalid handshake: wait for hello-ok before sending requests")
        return self._receive_open(data)

    def handshake_expired(self) -> list[Action]:
        if self.state in (ConnState.AWAIT_CONNECT, ConnState.AUTHENTICATING):
            return self._fail_close("handshake timeout: no valid connect request in time")
        return []

    def peer_closed(self) -> None:
        self.state = ConnState.CLOSED

    # -- decisions from the adapter -----------------------------------------------------------

    def accept(self, hello_payload: dict[str, Any]) -> list[Action]:
        if self.state is not ConnState.AUTHENTICATING or self._connect_id is None:
            raise RuntimeError(f"accept() in state {self.state.value}")
        self.state = ConnState.OPEN
        return [Send(res_ok(self._connect_id, hello_payload))]

    def reject(self, error: ErrorShape, close_code: int = CLOSE_POLICY) -> list[Action]:
        if self.state is not ConnState.AUTHENTICATING or self._connect_id is None:
            raise RuntimeError(f"reject() in state {self.state.value}")
        self.state = ConnState.CLOSED
        return [
            Send(res_error(self._connect_id, error)),
            Close(close_code, close_reason(error.message)),
        ]

    def close(self, code: int, reason: str) -> list[Action]:
        if self.state is ConnState.CLOSED:
            return []
        self.state = ConnState.CLOSED
        return [Close(code, close_reason(reason))]

    # -- internals ----------------------------------------------------------------------------

    def _fail_close(self, message: str, req_id: str | None = None) -> list[Action]:
        self.state = ConnState.CLOSED
        out: list[Action] = []
        if req_id is not None:
            out.append(Send(res_error(req_id, ErrorShape(ErrorCode.INVALID_REQUEST, message))))
        out.append(Close(CLOSE_POLICY, close_reason(message)))
        return out

    def _receive_handshake(self, data: str | bytes) -> list[Action]:
        try:
            req = parse_request(decode_json(data))
        except FrameError as exc:
            return self._fail_close(f"invalid handshake: {exc}", exc.req_id)
        if req.method != "connect":
            return self._fail_close("invalid handshake: first request must be connect", req.id)
        try:
            params = parse_connect_params(req.params)
        except ParamsError as exc:
            return self._fail_close(f"invalid connect params: {exc}", req.id)
        chosen = negotiate_protocol(params.min_protocol, params.max_protocol)
        if chosen is None:
            self.state = ConnState.CLOSED
            err = ErrorShape(
                ErrorCode.INVALID_REQUEST,
                "protocol mismatch",
                details={
                    "code": DetailCode.PROTOCOL_MISMATCH,
                    "clientMinProtocol": params.min_protocol,
                    "clientMaxProtocol": params.max_protocol,
                    "expectedProtocol": PROTOCOL_MAX,
                    "minimumProbeProtocol": PROTOCOL_MIN,
                },
            )
            return [Send(res_error(req.id, err)), Close(CLOSE_PROTOCOL_ERROR, "protocol mismatch")]
        if params.role not in ROLES:
            return self._fail_close("invalid role", req.id)
        self.state = ConnState.AUTHENTICATING
        self.protocol = chosen
        self.params = params
        self._connect_id = req.id
        return [ConnectRequested(req.id, params, chosen)]

    def _receive_open(self, data: str | bytes) -> list[Action]:
        try:
            req = parse_request(decode_json(data))
        except FrameError as exc:
            rid = exc.req_id or "invalid"
            err = ErrorShape(ErrorCode.INVALID_REQUEST, str(exc))
            return [Send(res_error(rid, err))]
        if req.method == "connect":
            err = ErrorShape(ErrorCode.INVALID_REQUEST, "invalid request: already connected")
            return [Send(res_error(req.id, err))]
        return [RequestReceived(req)]
