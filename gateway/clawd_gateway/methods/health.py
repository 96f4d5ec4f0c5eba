"""`health`: the HealthSummary every OpenClaw client renders.

`openclaw health` dereferences `sessions.path` and walks `agents`, so every key of the
reference summary is present even though clawd-gateway runs no agents or channels itself.
"""

from __future__ import annotations

import time
from typing import Any

from .. import __version__
from ..presence import ClientRecord
from .context import GatewayView


def health_summary(gw: GatewayView) -> dict[str, Any]:
    t0 = time.perf_counter()
    sessions = {"path": str(gw.settings.state_dir / "sessions.json"), "count": 0, "recent": []}
    summary: dict[str, Any] = {
        "ok": True,
        "ts": int(time.time() * 1000),
        "durationMs": 0,
        "channels": {},
        "channelOrder": [],
        "channelLabels": {},
        "heartbeatSeconds": 0,
        "defaultAgentId": "main",
        "agents": [
            {
                "agentId": "main",
                "isDefault": True,
                "heartbeat": {"enabled": False, "every": "disabled", "everyMs": None},
                "sessions": dict(sessions),
            }
        ],
        "sessions": sessions,
        "eventLoop": gw.event_loop(),
        "gateway": {
            "implementation": "clawd-gateway",
            "version": __version__,
            "uptimeMs": gw.uptime_ms(),
            "clients": gw.client_count(),
            "authMode": gw.settings.auth_mode,
            "bind": gw.settings.bind.mode,
        },
    }
    summary["durationMs"] = round((time.perf_counter() - t0) * 1000)
    return summary


def handle(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
    return health_summary(gw)
