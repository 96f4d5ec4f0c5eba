"""Plain HTTP on the gateway port: probes and the Control UI. Pure routing, no sockets.

The Origin rule for WebSocket upgrades lives here too, since it is an HTTP-level judgement
about the upgrade request.
"""

from __future__ import annotations

import functools
import html
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from .bind import is_loopback

# The page loads scripts and styles from its own files only (no inline code, no CDN), talks
# only to its own origin (CSP3 'self' covers ws:/wss: to the same host), and refuses framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}
# Scripts and styles carry no secrets but must never be stale after an upgrade: the browser
# keeps them and revalidates (no-cache), it does not reuse them blindly.
ASSET_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",
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


_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_ASSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\.(?:js|css|svg)")
# With the UI at the root, these prefixes still belong to the gateway, never to the SPA.
_RESERVED_AT_ROOT = ("health", "ready", "plugins", "api", "ui")


@functools.cache
def _ui_assets() -> dict[str, tuple[str, bytes]]:
    """Every servable file shipped in the ui package, by bare name.

    Requests are looked up in this table, never joined onto a filesystem path, so no spelling
    of a path (dot segments, encoded slashes, backslashes) can reach a file outside it.
    """
    assets: dict[str, tuple[str, bytes]] = {}
    for entry in resources.files("clawd_gateway.ui").iterdir():
        name = entry.name
        if entry.is_file() and _ASSET_NAME.fullmatch(name):
            assets[name] = (_CONTENT_TYPES["." + name.rsplit(".", 1)[1]], entry.read_bytes())
    return assets


@functools.cache
def _page_template() -> bytes:
    return resources.files("clawd_gateway.ui").joinpath("index.html").read_bytes()


def _page(base: str) -> HttpReply:
    page = _page_template().replace(b"__BASE_PATH__", html.escape(base, quote=True).encode())
    return HttpReply(200, {"Content-Type": _CONTENT_TYPES[".html"], **SECURITY_HEADERS}, page)


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
    not_found = HttpReply(
        404, {"Content-Type": "text/plain", "X-Content-Type-Options": "nosniff"}, b"Not Found\n"
    )
    if not ctx.ui_enabled:
        return not_found
    base = ctx.base_path
    if base and path == base:
        return HttpReply(302, {"Location": base + "/"}, b"")
    if base and not path.startswith(base + "/"):
        return not_found
    rel = path[len(base) + 1 :]
    if not base and rel.startswith(_RESERVED_AT_ROOT):
        return not_found
    if rel in ("", "index.html"):
        return _page(base)
    asset = _ui_assets().get(rel)
    if asset is not None:
        return HttpReply(200, {"Content-Type": asset[0], **ASSET_HEADERS}, asset[1])
    if "." in rel.rsplit("/", 1)[-1]:
        return not_found  # a file we do not ship: never the page in its place
    # SPA: every other path under the base serves the page.
    return _page(base)


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
