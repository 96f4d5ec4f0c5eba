"""Node methods (listing, pairing, rename, invoke, what node hosts send) and `channels.status`.

Handlers validate params and translate; the decisions live in clawd_gateway.nodes. Shapes are the
reference gateway's (src/gateway/server-methods/nodes.ts), which the OpenClaw CLI renders.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..nodes.hub import NodeError, NodeHub
from ..presence import ClientRecord
from ..protocol.constants import ErrorCode
from ..protocol.frames import ErrorShape
from .context import GatewayView, MethodError

# Remembered per caller for ten minutes (nodes/router.py); a UUID is 36.
MAX_IDEMPOTENCY_KEY_LEN = 256


def _hub(gw: GatewayView) -> NodeHub:
    hub = getattr(gw, "nodes", None)
    if not isinstance(hub, NodeHub):
        raise MethodError(ErrorShape(ErrorCode.UNAVAILABLE, "nodes are not available on this gateway"))
    return hub


def _invalid(method: str, message: str) -> MethodError:
    return MethodError(ErrorShape(ErrorCode.INVALID_REQUEST, f"invalid {method} params: {message}"))


def _obj(method: str, params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise _invalid(method, "params must be an object")
    return params


def _str(method: str, params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _invalid(method, f"{key} must be a non-empty string")
    return value.strip()


def _translate(fn: Callable[..., Any]) -> Callable[..., Any]:
    """NodeError (decided in the nodes package) -> MethodError (answered by the dispatcher)."""

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except NodeError as exc:
            raise MethodError(exc.error) from None

    return wrapper


def _ts() -> int:
    return int(time.time() * 1000)


@_translate
def pair_list(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
    _obj("node.pair.list", params)
    return _hub(gw).pair_list()


def _request_id(method: str, params: Any) -> str:
    return _str(method, _obj(method, params), "requestId")


def _decision(method: str, decide: Callable[[NodeHub, str, ClientRecord], Any]) -> Callable[..., Any]:
    """node.pair.approve/reject, device.pair.approve/reject: one requestId in, the hub decides
    (approve also weighs the caller's scopes against the request's requiredApproveScopes)."""

    @_translate
    def handler(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
        return decide(_hub(gw), _request_id(method, params), caller)

    return handler


pair_approve = _decision("node.pair.approve", lambda hub, rid, caller: hub.approve(rid, caller))
pair_reject = _decision("node.pair.reject", lambda hub, rid, _caller: hub.reject(rid))
device_pair_approve = _decision("device.pair.approve", lambda hub, rid, _caller: hub.device_approve(rid))
device_pair_reject = _decision("device.pair.reject", lambda hub, rid, _caller: hub.device_reject(rid))


@_translate
def device_pair_list(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
    _obj("device.pair.list", params)
    return _hub(gw).device_pair_list()


@_translate
def node_list(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
    _obj("node.list", params)
    return {"ts": _ts(), "nodes": _hub(gw).list_nodes()}


@_translate
def node_describe(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
    p = _obj("node.describe", params)
    node_id = _str("node.describe", p, "nodeId")
    view = _hub(gw).node_view(node_id)
    if view is None:
        raise MethodError(
            ErrorShape(
                ErrorCode.INVALID_REQUEST,
                "unknown nodeId",
                details={"code": "UNKNOWN_NODE", "nodeId": node_id},
            )
        )
    return {"ts": _ts(), **view}


@_translate
def node_rename(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
    p = _obj("node.rename", params)
    return _hub(gw).rename(_str("node.rename", p, "nodeId"), _str("node.rename", p, "displayName"))


def node_invoke(gw: GatewayView, caller: ClientRecord, params: Any) -> Awaitable[Any]:
    m = "node.invoke"
    p = _obj(m, params)
    clean: dict[str, Any] = {
        "nodeId": _str(m, p, "nodeId"),
        "command": _str(m, p, "command"),
        "idempotencyKey": _str(m, p, "idempotencyKey"),
    }
    if len(clean["idempotencyKey"]) > MAX_IDEMPOTENCY_KEY_LEN:
        raise _invalid(m, f"idempotencyKey must be at most {MAX_IDEMPOTENCY_KEY_LEN} characters")
    timeout = p.get("timeoutMs")
    if timeout is not None:
        # JSON parsing here accepts Infinity and NaN: both are refused, not turned into a crash.
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise _invalid(m, "timeoutMs must be a positive number of milliseconds")
        clean["timeoutMs"] = int(timeout)
    if p.get("params") is not None:
        clean["params"] = p["params"]
    hub = _hub(gw)

    async def run() -> Any:
        try:
            return await hub.invoke(caller, clean)
        except NodeError as exc:
            raise MethodError(exc.error) from None

    return run()


@_translate
def invoke_result(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
    p = _obj("node.invoke.result", params)
    _str("node.invoke.result", p, "id")
    if not isinstance(p.get("ok"), bool):
        raise _invalid("node.invoke.result", "ok must be a boolean")
    return _hub(gw).invoke_result(caller, p)


def node_quiet_ok(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
    """Node host telemetry (node.event stats, inventories): accepted, not used yet."""
    return {"ok": True}


def channels_status(gw: GatewayView, caller: ClientRecord, params: Any) -> Any:
    """clawd-gateway hosts no chat channels: an honest empty listing in the CLI's shape."""
    return {
        "ts": _ts(),
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
