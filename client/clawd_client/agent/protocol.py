"""The agent's control API, sans I/O: the wire format and the validation of every request.

One JSON object per line, UTF-8, over the agent's Unix socket (same uid only). A client sends
requests `{"v": 1, "id": N, "op": OP, ...}` and gets exactly one reply per request
`{"v": 1, "id": N, "ok": true, ...}` or `{"v": 1, "id": N, "ok": false, "error": {...}}`.
After `subscribe` the connection also carries events `{"v": 1, "event": "state", "tunnel": {...}}`
whenever a tunnel's state changes. Secrets never cross this API: the agent reads the keyring.

Why a home-made line protocol and not HTTP: the socket is local, same-user and tiny; one
request, one line keeps the agent's surface small enough to check in full (below), and any
language can speak it with a socket and a JSON library.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

API_VERSION = 1
EXIT_ALREADY_RUNNING = 75  # `clawd agent` when one already runs (EX_TEMPFAIL): not a crash to retry
MAX_LINE = 64 * 1024  # a request is small; a longer line is a protocol error, not a buffer to grow

OPS = ("hello", "status", "up", "down", "reconnect", "trust", "pin", "diagnose", "subscribe", "shutdown")


class ProtocolError(ValueError):
    """A request the agent cannot take; the message names the field."""


@dataclass(frozen=True)
class Request:
    op: str
    id: int = 0
    profiles: tuple[str, ...] = ()
    all: bool = False  # down: every profile that is up
    wait: bool = True  # up: reply once healthy, or when it is clear why not
    timeout: float = 30.0  # up: how long to wait for healthy
    accept_new: bool = False  # up/reconnect: trust an unknown SSH host key (never a changed one)
    fingerprint: str | None = None  # trust: the key the user saw and accepted
    local_port: int | None = None  # up: override the profile's local port for this run
    path: str | None = None  # pin: the way in new connections should prefer (None: unpin)
    extra: dict[str, Any] = field(default_factory=dict)


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ProtocolError("'profiles' must be a list of profile names")
    return tuple(value)


def parse_request(line: bytes) -> Request:
    """Decode and check one request line."""
    if len(line) > MAX_LINE:
        raise ProtocolError(f"request longer than {MAX_LINE} bytes")
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("a request is a JSON object")
    version = data.get("v", API_VERSION)
    if version != API_VERSION:
        raise ProtocolError(f"API version {version!r} is not supported (this agent speaks {API_VERSION})")
    op = data.get("op")
    if op not in OPS:
        raise ProtocolError(f"'op' must be one of {', '.join(OPS)}")
    rid = data.get("id", 0)
    if isinstance(rid, bool) or not isinstance(rid, int):
        raise ProtocolError("'id' must be an integer")
    timeout = data.get("timeout", 30.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 <= timeout <= 3600:
        raise ProtocolError("'timeout' must be a number of seconds from 0 to 3600")
    port = data.get("local_port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
        raise ProtocolError("'local_port' must be a port (1-65535)")
    path = data.get("path")
    if path is not None and path not in ("ssh", "tailscale", "direct"):
        raise ProtocolError("'path' must be ssh, tailscale, direct or null")
    fp = data.get("fingerprint")
    if fp is not None and not isinstance(fp, str):
        raise ProtocolError("'fingerprint' must be a string")
    flags = {}
    for key in ("all", "wait", "accept_new"):
        value = data.get(key, key == "wait")
        if not isinstance(value, bool):
            raise ProtocolError(f"'{key}' must be true or false")
        flags[key] = value
    return Request(
        op=op,
        id=rid,
        profiles=_names(data.get("profiles")),
        timeout=float(timeout),
        local_port=port,
        fingerprint=fp,
        path=path,
        all=flags["all"],
        wait=flags["wait"],
        accept_new=flags["accept_new"],
    )


def encode_request(op: str, rid: int = 0, **params: Any) -> bytes:
    return (json.dumps({"v": API_VERSION, "id": rid, "op": op, **params}) + "\n").encode()


def reply(rid: int, **payload: Any) -> bytes:
    return (json.dumps({"v": API_VERSION, "id": rid, "ok": True, **payload}) + "\n").encode()


def error_reply(rid: int, code: str, message: str, fix: str | None = None, exit_code: int = 1) -> bytes:
    err = {"code": code, "message": message, "fix": fix, "exit": exit_code}
    return (json.dumps({"v": API_VERSION, "id": rid, "ok": False, "error": err}) + "\n").encode()


def event(tunnel: dict[str, Any], kind: str = "state") -> bytes:
    return (json.dumps({"v": API_VERSION, "event": kind, "tunnel": tunnel}) + "\n").encode()


def stopping_event() -> bytes:
    """Told to subscribers when the agent stops on purpose, so a tray does not restart it."""
    return (json.dumps({"v": API_VERSION, "event": "stopping"}) + "\n").encode()


__all__ = [
    "API_VERSION",
    "EXIT_ALREADY_RUNNING",
    "MAX_LINE",
    "OPS",
    "ProtocolError",
    "Request",
    "encode_request",
    "error_reply",
    "event",
    "parse_request",
    "reply",
    "stopping_event",
]
