"""The startup banner, in the seeds' spirit: where to connect, how auth works, what is exposed."""

from __future__ import annotations

import sys
from typing import Any

from . import __version__
from .settings import Settings


def _url(scheme: str, host: str, port: int) -> str:
    h = f"[{host}]" if ":" in host else host
    return f"{scheme}://{h}:{port}"


def banner_lines(
    settings: Settings, port: int, hosts: list[str], tailscale: dict[str, Any] | None = None
) -> list[str]:
    fancy = (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "") == "utf8"
    icons = ("🚀 ", "📡 ", "🌐 ", "🔒 ", "🧷 ", "⚠️  ") if fancy else ("", "", "", "", "", "! ")
    primary = hosts[0]
    shown = "127.0.0.1" if primary == "0.0.0.0" else primary
    ws = _url("ws", shown, port)
    lines = [f"{icons[0]}clawd-gateway {__version__} started"]
    lines.append(
        f"{icons[1]}WebSocket: {ws}"
        + (f"  (also {', '.join(_url('ws', h, port) for h in hosts[1:])})" if len(hosts) > 1 else "")
    )
    base = settings.control_ui_base_path
    ui = f", Control UI: {_url('http', shown, port)}{base}/" if settings.control_ui_enabled else ""
    lines.append(f"{icons[2]}HTTP: {_url('http', shown, port)}/healthz{ui}")
    secret = settings.secret
    source = f" (secret from {secret.source})" if secret is not None and settings.auth_mode != "none" else ""
    lines.append(f"{icons[3]}Auth mode: {settings.auth_mode}{source}")
    lines.append(f"{icons[4]}Bind: {settings.bind.mode} ({', '.join(hosts)})")
    if tailscale:
        where = "the internet (Funnel)" if tailscale["mode"] == "funnel" else "your tailnet (Serve)"
        lines.append(
            f"{icons[2]}Tailscale {tailscale['mode']}: {tailscale['url']} (WS via {tailscale['wsUrl']})"
        )
        after = (
            "removed when the gateway stops"
            if tailscale["resetOnExit"] and tailscale["owned"]
            else "kept after exit (your own config)"
            if not tailscale["owned"]
            else "kept after exit (gateway.tailscale.resetOnExit is false)"
        )
        lines.append(f"   reachable from {where}; {after}")
        if settings.allow_tailscale and tailscale["mode"] == "serve":
            lines.append("   tailnet users may connect without the secret (verified Serve identity)")
            # Serve reaches us over loopback, so the headers are all a local process has to forge;
            # on Linux the socket owner is checked (tailscale.peeruid), elsewhere it cannot be.
            lines.append(
                "   so may processes of this user or root that forge Serve headers (they can read the token)"
                if sys.platform.startswith("linux")
                else "   so may any process on this machine that forges Serve headers; on a shared host set "
                "gateway.auth.allowTailscale false"
            )
    if settings.auth_mode == "none":
        lines.append(f"{icons[5]}auth is disabled: any local process can use this gateway")
    for w in settings.config.warnings:
        lines.append(f"{icons[5]}{w}")
    return lines
