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
    "node.pair.approve": nodes.pair_approve,
    "node.pair.reject": nodes.pair_reject,
    "device.pair.list": nodes.device_pair_list,
    "device.pair.approve": nodes.device_pair_approve,
    "device.pair.reject": nodes.device_pair_reject,
    "node.list": nodes.node_list,
    "node.describe": nodes.node_describe,
    "node.rename": nodes.node_rename,
    "node.invoke": nodes.node_invoke,
    "node.invoke.result": nodes.invoke_result,
    "node.event": nodes.node_quiet_ok,
    "node.skills.update": nodes.node_quiet_ok,
    "node.pluginTools.update": nodes.node_quiet_ok,
    "node.runnerInventory.update": nodes.node_quiet_ok,
    "channels.status": nodes.channels_status,
}

EVENTS: tuple[str, ...] = (
    "connect.challenge",
    "tick",
    "presence",
    "shutdown",
    "node.pair.requested",
    "node.pair.resolved",
    "node.invoke.request",
    "device.pair.requested",
    "device.pair.resolved",
)

__all__ = ["EVENTS", "METHODS", "GatewayView", "Handler", "MethodError"]
