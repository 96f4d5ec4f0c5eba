"""`status`, `system-presence` and `gateway.identity.get`."""

from __future__ import annotations

import os
from typing import Any

from .. import __version__
from ..presence import ClientRecord
from .context import GatewayView


def status(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
    s = gw.settings
    return {
        "runtimeVersion": __version__,
        "heartbeat": {"defaultAgentId": "main", "agents": []},
        "channelSummary": [],
        "queuedSystemEvents": [],
        "tasks": {"total": 0, "active": 0},
        "taskAudit": {"findings": []},
        "sessions": {
            "paths": [],
            "count": 0,
            "defaults": {"model": None, "contextTokens": None},
            "recent": [],
            "byAgent": [],
        },
        "gateway": {
            "implementation": "clawd-gateway",
            "version": __version__,
            "pid": os.getpid(),
            "port": s.port,
            "bind": s.bind.mode,
            "listen": list(s.bind.hosts),
            "authMode": s.auth_mode,
            "tailscale": s.tailscale_mode,
            "uptimeMs": gw.uptime_ms(),
            "clients": [c.summary() for c in gw.clients()],
        },
    }


def system_presence(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
    return gw.presence()


def identity(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
    return gw.identity()
