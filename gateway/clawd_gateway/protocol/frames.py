"""Frame envelopes: parse and validate what arrives, build exactly what real clients accept.

Real OpenClaw clients validate every incoming frame against `additionalProperties: false`
schemas and silently drop frames that do not match, so the builders here never add keys.
Parsing is strict about the envelope and lenient about unknown keys inside params.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .constants import CLIENT_IDS, CLIENT_MODES, CLOSE_REASON_MAX_BYTES, ErrorCode

JSONValue = Any


class FrameError(ValueError):
    """A frame that cannot be understood; `req_id` is set when a reply can still be addressed."""

    def __init__(self, message: str, req_id: str | None = None) -> None:
        super().__init__(message)
        self.req_id = req_id


@dataclass(frozen=True)
class ErrorShape:
    """The `error` object of a failed response."""

    code: str
    message: str
    details: dict[str, Any] | None = None
    retryable: bool | None = None
    retry_after_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            out["details"] = self.details
        if self.retryable is not None:
            out["retryable"] = self.retryable
        if self.retry_after_ms is not None:
            out["retryAfterMs"] = self.retry_after_ms
        return out

    @classmethod
    def from_json(cls, obj: Any) -> ErrorShape:
        if not isinstance(obj, dict):
            return cls(ErrorCode.INVALID_REQUEST, "malformed error object")
        details = obj.get("details")
        retry_after = obj.get("retryAfterMs")
        return cls(
            code=str(obj.get("code") or "UNKNOWN"),
            message=str(obj.get("message") or ""),
            details=details if isinstance(details, dict) else None,
            retryable=obj.get("retryable") if isinstance(obj.get("retryable"), bool) else None,
            retry_after_ms=retry_after if isinstance(retry_after, int) else None,
        )


@dataclass(frozen=True)
class Request:
    """A `req` frame."""

    id: str
    method: str
    params: JSONValue = None


@dataclass(frozen=True)
class Response:
    """A `res` frame as seen by a client."""

    id: str
    ok: bool
    payload: JSONValue = None
    error: ErrorShape | None = None


@dataclass(frozen=True)
class Event:
    """An `event` frame."""

    event: str
    payload: JSONValue = None
    seq: int | None = None
    state_version: dict[str, int] | None = None


Frame = Request | Response | Event


def decode_json(data: str | bytes) -> Any:
    """Decode one text frame; binary or non-UTF-8 data is not part of the protocol."""
    if isinstance(data, bytes | bytearray | memoryview):
        raise FrameError("binary frames are not supported; send JSON text frames")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise FrameError(f"frame is not valid JSON ({type(exc).__name__})") from None


def _req_id_of(obj: dict[str, Any]) -> str | None:
    rid = obj.get("id")
    return rid if isinstance(rid, str) and rid else None


def parse_request(obj: Any) -> Request:
    """Validate a client frame as a `req` envelope."""
    if not isinstance(obj, dict):
        raise FrameError("invalid request frame: expected a JSON object")
    rid = _req_id_of(obj)
    if obj.get("type") != "req":
        raise FrameError('invalid request frame: type must be "req"', rid)
    if rid is None:
        raise FrameError("invalid request frame: id must be a non-empty string")
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise FrameError("invalid request frame: method must be a non-empty string", rid)
    extra = set(obj) - {"type", "id", "method", "params"}
    if extra:
        raise FrameError(f"invalid request frame: unexpected property {sorted(extra)[0]!r}", rid)
    return Request(id=rid, method=method, params=obj.get("params"))


def parse_server_frame(obj: Any) -> Frame:
    """Validate a frame sent by a gateway (client side)."""
    if not isinstance(obj, dict):
        raise FrameError("server frame is not a JSON object")
    kind = obj.get("type")
    if kind == "res":
        rid = obj.get("id")
        if not isinstance(rid, str) or not isinstance(obj.get("ok"), bool):
            raise FrameError("malformed res frame")
        err = ErrorShape.from_json(obj["error"]) if "error" in obj else None
        return Response(id=rid, ok=obj["ok"], payload=obj.get("payload"), error=err)
    if kind == "event":
        name = obj.get("event")
        if not isinstance(name, str) or not name:
            raise FrameError("malformed event frame")
        seq = obj.get("seq")
        sv = obj.get("stateVersion")
        return Event(
            event=name,
            payload=obj.get("payload"),
            seq=seq if isinstance(seq, int) else None,
            state_version=sv if isinstance(sv, dict) else None,
        )
    if kind == "req":
        return parse_request(obj)
    raise FrameError(f"unknown frame type {kind!r}")


# --- builders -------------------------------------------------------------------------------


def res_ok(req_id: str, payload: JSONValue = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "res", "id": req_id, "ok": True}
    if payload is not None:
        frame["payload"] = payload
    return frame


def res_error(req_id: str, error: ErrorShape) -> dict[str, Any]:
    return {"type": "res", "id": req_id, "ok": False, "error": error.to_json()}


def event(
    name: str,
    payload: JSONValue = None,
    seq: int | None = None,
    state_version: dict[str, int] | None = None,
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "event", "event": name}
    if payload is not None:
        frame["payload"] = payload
    if seq is not None:
        frame["seq"] = seq
    if state_version is not None:
        frame["stateVersion"] = {
            "presence": int(state_version.get("presence", 0)),
            "health": int(state_version.get("health", 0)),
        }
    return frame


def request(req_id: str, method: str, params: JSONValue = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "req", "id": req_id, "method": method}
    if params is not None:
        frame["params"] = params
    return frame


def encode(frame: dict[str, Any]) -> str:
    """Serialize compactly; the wire is JSON text, never binary."""
    # ASCII escapes: a lone surrogate smuggled in by a client can never break encoding later.
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=True)


def close_reason(message: str) -> str:
    """Truncate to the 120-byte close reason budget without splitting a UTF-8 sequence."""
    raw = message.encode("utf-8")
    if len(raw) <= CLOSE_REASON_MAX_BYTES:
        return message
    return raw[:CLOSE_REASON_MAX_BYTES].decode("utf-8", errors="ignore")


# --- connect params --------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientInfo:
    id: str
    version: str
    platform: str
    mode: str
    display_name: str | None = None
    device_family: str | None = None
    model_identifier: str | None = None
    instance_id: str | None = None


@dataclass(frozen=True)
class DeviceBlock:
    id: str
    public_key: str
    signature: str
    signed_at: int
    nonce: str | None


@dataclass(frozen=True)
class ConnectParams:
    min_protocol: int
    max_protocol: int
    client: ClientInfo
    role: str = "operator"
    scopes: tuple[str, ...] = ()
    caps: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    auth: dict[str, str] = field(default_factory=dict)
    device: DeviceBlock | None = None
    locale: str | None = None
    user_agent: str | None = None


class ParamsError(ValueError):
    """Invalid connect params; the message names the offending path."""


def _need(obj: dict[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise ParamsError(f"{path}{key} is required")
    return obj[key]


def _str(value: Any, path: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value):
        raise ParamsError(f"{path} must be a non-empty string")
    return value


def _opt_str(obj: dict[str, Any], key: str, path: str) -> str | None:
    if key not in obj or obj[key] is None:
        return None
    return _str(obj[key], f"{path}{key}", allow_empty=True)


def _int(value: Any, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParamsError(f"{path} must be an integer >= {minimum}")
    return value


def _str_list(obj: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParamsError(f"{path}{key} must be an array of strings")
    return tuple(value)


def parse_connect_params(params: Any) -> ConnectParams:
    """Validate `connect` params the way the real gateway's schema does (names the bad path)."""
    if not isinstance(params, dict):
        raise ParamsError("params must be an object")
    min_p = _int(_need(params, "minProtocol", ""), "minProtocol", 1)
    max_p = _int(_need(params, "maxProtocol", ""), "maxProtocol", 1)
    client_obj = _need(params, "client", "")
    if not isinstance(client_obj, dict):
        raise ParamsError("client must be an object")
    cid = _str(_need(client_obj, "id", "client."), "client.id")
    if cid not in CLIENT_IDS:
        raise ParamsError(f"client.id {cid!r} is not a known client id")
    mode = _str(_need(client_obj, "mode", "client."), "client.mode")
    if mode not in CLIENT_MODES:
        raise ParamsError(f"client.mode {mode!r} is not one of {', '.join(sorted(CLIENT_MODES))}")
    client = ClientInfo(
        id=cid,
        version=_str(_need(client_obj, "version", "client."), "client.version"),
        platform=_str(_need(client_obj, "platform", "client."), "client.platform"),
        mode=mode,
        display_name=_opt_str(client_obj, "displayName", "client."),
        device_family=_opt_str(client_obj, "deviceFamily", "client."),
        model_identifier=_opt_str(client_obj, "modelIdentifier", "client."),
        instance_id=_opt_str(client_obj, "instanceId", "client."),
    )
    role = params.get("role", "operator")
    if role is None:
        role = "operator"
    role = _str(role, "role")

    auth_obj = params.get("auth")
    auth: dict[str, str] = {}
    if auth_obj is not None:
        if not isinstance(auth_obj, dict):
            raise ParamsError("auth must be an object")
        for key, value in auth_obj.items():
            if value is None:
                continue
            if not isinstance(value, str):
                raise ParamsError(f"auth.{key} must be a string")
            if value:
                auth[key] = value

    device = None
    dev_obj = params.get("device")
    if dev_obj is not None:
        if not isinstance(dev_obj, dict):
            raise ParamsError("device must be an object")
        nonce = dev_obj.get("nonce")
        device = DeviceBlock(
            id=_str(_need(dev_obj, "id", "device."), "device.id"),
            public_key=_str(_need(dev_obj, "publicKey", "device."), "device.publicKey"),
            signature=_str(_need(dev_obj, "signature", "device."), "device.signature"),
            signed_at=_int(_need(dev_obj, "signedAt", "device."), "device.signedAt", 0),
            nonce=_str(nonce, "device.nonce") if nonce is not None else None,
        )
    return ConnectParams(
        min_protocol=min_p,
        max_protocol=max_p,
        client=client,
        role=role,
        scopes=_str_list(params, "scopes", ""),
        caps=_str_list(params, "caps", ""),
        commands=_str_list(params, "commands", ""),
        auth=auth,
        device=device,
        locale=_opt_str(params, "locale", ""),
        user_agent=_opt_str(params, "userAgent", ""),
    )


def negotiate_protocol(min_p: int, max_p: int) -> int | None:
    """Pick the highest protocol both sides speak, or None."""
    for candidate in (4, 3):
        if min_p <= candidate <= max_p:
            return candidate
    return None
