"""Plain HTTP on the gateway port: probes and the Control UI. Pure routing, no sockets.

The Origin rule for WebSocket upgrades lives here too, since it is an HTTP-level judgement
about the upgrade request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from .bind import is_loopback

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
PROBE_PATHS = {"/health", "/healthz", "/ready", "/readyz"}


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _json(status: int, obj: Any) -> HttpReply:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return HttpReply(
        status,
        {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"},
        body,
    )


def _ui_file(name: str) -> bytes:
    return resources.files("clawd_gateway.ui").joinpath(name).read_bytes()


_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class RouteContext:
    ready: bool
    uptime_ms: int
    local_caller: bool
    ui_enabled: bool
    base_path: str  # '' for root


def route(method: str, target: str, ctx: RouteContext) -> HttpReply:
    path = urlsplit(target).path or "/"
    if method not in ("GET", "HEAD"):
        reply = HttpReply(405, {"Allow": "GET, HEAD", "Content-Type": "text/plain"}, b"Method Not Allowed\n")
    elif path in ("/health", "/healthz"):
        reply = _json(200, {"ok": True, "status": "live"})
    elif path in ("/ready", "/readyz"):
        body: dict[str, Any] = {"ready": ctx.ready}
        if ctx.local_caller:
            body["failing"] = [] if ctx.ready else ["shutting-down"]
            body["uptimeMs"] = ctx.uptime_ms
        reply = _json(200 if ctx.ready else 503, body)
    else:
        reply = _control_ui(path, ctx)
    if method == "HEAD":
        headers = dict(reply.headers)
        headers["Content-Length"] = str(len(reply.body))
        return HttpReply(reply.status, headers, b"")
    return reply


def _control_ui(path: str, ctx: RouteContext) -> HttpReply:
    not_found = HttpReply(404, {"Content-Type": "text/plain"}, b"Not Found\n")
    if not ctx.ui_enabled:
        return not_found
    base = ctx.base_path
    if base and path == base:
        return HttpReply(302, {"Location": base + "/"}, b"")
    if base and not path.startswith(base + "/"):
        return not_found
    rel = path[len(base) :].lstrip("/")
    if rel and "." in rel.rsplit("/", 1)[-1]:
        name = rel.rsplit("/", 1)[-1]
        ext = "." + name.rsplit(".", 1)[-1]
        if "/" in rel or ext not in _CONTENT_TYPES:
            return not_found
        try:
            data = _ui_file(name)
        except (FileNotFoundError, IsADirectoryError):
            return not_found
        return HttpReply(200, {"Content-Type": _CONTENT_TYPES[ext], **SECURITY_HEADERS}, data)
    # SPA: every other path under the base serves the page.
    page = _ui_file("index.html").replace(b"__BASE_PATH__", base.encode())
    return HttpReply(200, {"Content-Type": _CONTENT_TYPES[".html"], **SECURITY_HEADERS}, page)


def _host_port(netloc: str, default_port: int | None) -> tuple[str, int | None]:
    parsed = urlsplit("//" + netloc)
    try:
        port = parsed.port
    except ValueError:
        return "", None
    return (parsed.hostname or "").lower(), port if port is not None else default_port


def origin_allowed(
    origin: str | None, host_header: str | None, allowed: tuple[str, ...], listen_hosts: tuple[str, ...]
) -> bool:
    """A browser Origin must be listed, or same-origin on a name that cannot be DNS-rebound.

    Same-origin alone is not enough on loopback: a page on evil.example can rebind its name
    to 127.0.0.1, and then Origin and Host agree. So the shared host must be loopback (or the
    address we listen on); any other name has to be listed in controlUi.allowedOrigins.
    """
    if origin is None:
        return True
    norm = origin.strip().rstrip("/").lower()
    if norm in {a.strip().rstrip("/").lower() for a in allowed}:
        return True
    parts = urlsplit(norm)
    if parts.scheme not in ("http", "https") or not host_header:
        return False
    default = 443 if parts.scheme == "https" else 80
    o_host, o_port = _host_port(parts.netloc, default)
    h_host, h_port = _host_port(host_header.strip().lower(), default)
    if not o_host or (o_host, o_port) != (h_host, h_port):
        return False
    return is_loopback(o_host) or o_host in {h.lower() for h in listen_hosts}
