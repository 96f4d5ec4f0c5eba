"""Method table: name -> handler. Handlers get typed views, never sockets or raw frames."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..presence import ClientRecord
from . import health, nodes, system
from .context import GatewayView, MethodError

# A handler may be a coroutine function (node.invoke waits for the node); the dispatcher awaits it.
Handler = Callable[[GatewayView, ClientRecord, Any], Any | Awaitable[Any]]

METHODS: dict[str, Handler] = {
    "health": health.handle,
    "status": system.status,
    "system-presence": system.system_presence,
    "gateway.identity.get": system.identity,
    "node.pair.list": nodes.pair_list,
    "node.list": nodes.node_list,
    "channels.status": nodes.channels_status,
}

EVENTS: tuple[str, ...] = ("connect.challenge", "tick", "presence", "shutdown")

__all__ = ["EVENTS", "METHODS", "GatewayView", "Handler", "MethodError"]
