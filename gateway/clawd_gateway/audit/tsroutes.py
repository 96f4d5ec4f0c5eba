"""What Tailscale Serve/Funnel expose, from `tailscale serve|funnel status --json` (pure).

The JSON is tailscaled's ServeConfig: `TCP` (port -> {HTTPS | TCPForward}), `Web`
("host:port" -> {Handlers: {path: {Proxy | Path | Text}}}), `AllowFunnel` ("host:port" -> true),
and `Foreground` (session -> a nested ServeConfig for `serve` runs without --bg). A node that
never used Serve prints `null`.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from .facts import TailscaleRoute


def _target_port(target: str) -> tuple[int | None, bool]:
    text = target.strip()
    if text.isdigit():
        return int(text), True
    if "://" not in text:
        text = "tcp://" + text
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None and parts.scheme in ("http", "https") and parts.hostname:
        port = 443 if parts.scheme == "https" else 80
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return port, loopback


def routes_from_serve_config(data: Any) -> list[TailscaleRoute]:
    if not isinstance(data, dict):
        return []
    out: list[TailscaleRoute] = []
    funnel = {str(k) for k, v in (data.get("AllowFunnel") or {}).items() if v}
    for hostport, web in (data.get("Web") or {}).items():
        handlers = (web or {}).get("Handlers") or {} if isinstance(web, dict) else {}
        for path, handler in handlers.items():
            if not isinstance(handler, dict):
                continue
            target = handler.get("Proxy") or handler.get("Path") or ("text" if "Text" in handler else "")
            port, loop = _target_port(str(target)) if handler.get("Proxy") else (None, False)
            out.append(
                TailscaleRoute(str(hostport), str(path), str(target), port, loop, str(hostport) in funnel)
            )
    for port_text, tcp in (data.get("TCP") or {}).items():
        if not isinstance(tcp, dict) or not tcp.get("TCPForward"):
            continue
        target = str(tcp["TCPForward"])
        port, loop = _target_port(target)
        public = any(hp.rsplit(":", 1)[-1] == str(port_text) for hp in funnel)
        out.append(TailscaleRoute(f"tcp:{port_text}", "", target, port, loop, public))
    for session in (data.get("Foreground") or {}).values():
        out.extend(routes_from_serve_config(session))
    return out


def merge_routes(*route_lists: list[TailscaleRoute]) -> tuple[TailscaleRoute, ...]:
    """serve and funnel status print the same config; keep each route once, funnel winning."""
    merged: dict[tuple[str, str, str], TailscaleRoute] = {}
    for routes in route_lists:
        for r in routes:
            key = (r.listen, r.path, r.target)
            if key not in merged or r.funnel:
                merged[key] = r
    return tuple(merged.values())
