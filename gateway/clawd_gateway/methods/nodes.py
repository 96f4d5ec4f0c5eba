"""Node and channel listings. clawd-gateway hosts no device nodes or chat channels yet, so these
answer with honest empty listings in the exact shapes the OpenClaw CLI renders
(`openclaw nodes list`, `openclaw channels status`) instead of "unknown method"."""

from __future__ import annotations

import time
from typing import Any

from ..presence import ClientRecord
from .context import GatewayView


def pair_list(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
    return {"pending": [], "paired": []}


def node_list(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
    return {"ts": int(time.time() * 1000), "nodes": []}


def channels_status(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
    return {
        "ts": int(time.time() * 1000),
        "channelOrder": [],
        "channelLabels": {},
        "channelDetailLabels": {},
        "channelSystemImages": {},
        "channelMeta": [],
        "eventLoop": gw.event_loop(),
        "channels": {},
        "channelAccounts": {},
        "channelDefaultAccountId": {},
        "statusIssues": [],
    }
