"""A small synchronous protocol client for tests: real websockets, explicit frames."""

from __future__ import annotations

import json
import uuid
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


def open_ws(url: str, **kwargs: Any) -> ClientConnection:
    kwargs.setdefault("open_timeout", 5)
    kwargs.setdefault("compression", None)
    kwargs.setdefault("max_size", 64 * 1024 * 1024)
    kwargs.setdefault("proxy", None)
    return connect(url, legacy=True, **kwargs)


def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def connect_params(
    token: str | None = None,
    *,
    password: str | None = None,
    min_protocol: int = 4,
    max_protocol: int = 4,
    client_id: str = "cli",
    mode: str = "cli",
    scopes: list[str] | None = None,
    role: str = "operator",
    **extra: Any,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "minProtocol": min_protocol,
        "maxProtocol": max_protocol,
        "client": {
            "id": client_id,
            "version": "test",
            "platform": "linux",
            "mode": mode,
            "instanceId": str(uuid.uuid4()),
        },
        "caps": [],
        "role": role,
        "scopes": scopes if scopes is not None else ["operator.read"],
    }
    auth: dict[str, str] = {}
    if token is not None:
        auth["token"] = token
    if password is not None:
        auth["password"] = password
    if auth:
        params["auth"] = auth
    params.update(extra)
    return params


def send_req(ws: ClientConnection, method: str, params: Any = None, req_id: str | None = None) -> str:
    rid = req_id or str(uuid.uuid4())
    frame: dict[str, Any] = {"type": "req", "id": rid, "method": method}
    if params is not None:
        frame["params"] = params
    ws.send(json.dumps(frame))
    return rid


def wait_res(ws: ClientConnection, rid: str, timeout: float = 5.0) -> dict[str, Any]:
    """Next `res` for rid, skipping events (ticks, presence)."""
    while True:
        frame = recv_json(ws, timeout)
        if frame.get("type") == "res" and frame.get("id") == rid:
            return frame


def handshake(
    url: str, token: str | None, **kwargs: Any
) -> tuple[ClientConnection, dict[str, Any], dict[str, Any]]:
    """Open, read the challenge, connect; returns (ws, challenge, connect response)."""
    ws_kwargs = {k: kwargs.pop(k) for k in ("origin", "additional_headers", "sock") if k in kwargs}
    ws = open_ws(url, **ws_kwargs)
    challenge = recv_json(ws)
    rid = send_req(ws, "connect", connect_params(token, **kwargs))
    return ws, challenge, wait_res(ws, rid)


def close_info(ws: ClientConnection, timeout: float = 5.0) -> tuple[int | None, str | None]:
    """Drain until the server closes; returns its close code and reason."""
    try:
        while True:
            ws.recv(timeout=timeout)
    except ConnectionClosed as exc:
        if exc.rcvd is None:
            return None, None
        return exc.rcvd.code, exc.rcvd.reason
