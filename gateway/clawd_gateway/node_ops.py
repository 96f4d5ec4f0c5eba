"""The operator side of device nodes: list, pending, approve/reject and invoke, over the protocol.

Why apart from the CLI: these are decisions — which scopes to ask for (as few as the OpenClaw CLI
asks; `approve` exactly what the request says it needs), whether a request id names a node or a
device pairing, which node a name or id prefix means. The CLI (cli_nodes) parses, calls these and
prints; failures come back as NodeOpError with a `reason` the CLI turns into an exit code.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from .client import GatewayCallError, Session, open_session
from .target import Target

READ, WRITE, PAIRING = "operator.read", "operator.write", "operator.pairing"
Decision = Literal["approve", "reject"]
Reason = Literal["refused", "usage", "unavailable"]


class NodeOpError(Exception):
    """The request could not be done.

    reason: "refused" — the gateway said no (its error is in `error`); "usage" — the input names
    nothing usable (unknown or ambiguous node, unknown request); "unavailable" — the node could
    not answer (not connected, timed out, disconnected, reported an error).
    """

    def __init__(self, message: str, reason: Reason, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.error = error


async def _session(target: Target, timeout: float, scopes: tuple[str, ...]) -> Session:
    return await open_session(
        target.url, token=target.token, password=target.password, timeout=timeout, scopes=scopes
    )


async def _call(session: Session, method: str, params: Any, timeout: float) -> Any:
    try:
        return await session.call(method, params, timeout=timeout)
    except GatewayCallError as exc:
        err = exc.error
        reason: Reason = "unavailable" if err.code == "UNAVAILABLE" else "refused"
        raise NodeOpError(f"{method} refused: {err.code}: {err.message}", reason, err.to_json()) from None


async def list_nodes(target: Target, timeout: float) -> Any:
    """`node.list` with read scope only."""
    session = await _session(target, timeout, (READ,))
    try:
        return await _call(session, "node.list", {}, timeout)
    finally:
        await session.close()


async def _pending_lists(session: Session, timeout: float) -> dict[str, Any]:
    nodes = await _call(session, "node.pair.list", {}, timeout)
    devices = await _call(session, "device.pair.list", {}, timeout)
    return {"nodes": nodes, "devices": devices}


async def pending(target: Target, timeout: float) -> dict[str, Any]:
    """Node and device pairing requests in one list, oldest first, each tagged with its kind."""
    session = await _session(target, timeout, (PAIRING,))
    try:
        lists = await _pending_lists(session, timeout)
    finally:
        await session.close()
    out = [{"kind": "node", **r} for r in lists["nodes"].get("pending", [])]
    out += [{"kind": "device", **r} for r in lists["devices"].get("pending", [])]
    out.sort(key=lambda r: r.get("ts", 0))
    return {"pending": out}


async def decide(target: Target, request_id: str, decision: Decision, timeout: float) -> dict[str, Any]:
    """Approve or reject a pending request, node or device, whichever the id names.

    A node approval reconnects with the scopes the request lists as required, since the gateway
    refuses to grant a node more than the approver holds.
    """
    session = await _session(target, timeout, (PAIRING,))
    try:
        lists = await _pending_lists(session, timeout)
    finally:
        await session.close()
    node_req = next((r for r in lists["nodes"].get("pending", []) if r.get("requestId") == request_id), None)
    dev_req = next((r for r in lists["devices"].get("pending", []) if r.get("requestId") == request_id), None)
    if node_req is None and dev_req is None:
        raise NodeOpError(
            f"no pending request {request_id!r} (see `clawd-gateway nodes pending`)",
            "refused",
            {
                "code": "INVALID_REQUEST",
                "message": "unknown requestId",
                "details": {"code": "UNKNOWN_REQUEST"},
            },
        )
    kind = "node" if node_req is not None else "device"
    scopes: tuple[str, ...] = (PAIRING,)
    if node_req is not None and decision == "approve":
        scopes = tuple(dict.fromkeys([PAIRING, *node_req.get("requiredApproveScopes", [])]))
    session = await _session(target, timeout, scopes)
    try:
        payload = await _call(session, f"{kind}.pair.{decision}", {"requestId": request_id}, timeout)
    finally:
        await session.close()
    done = {"approve": "approved", "reject": "rejected"}[decision]
    return {"kind": kind, "decision": done, "request": node_req or dev_req, "result": payload}


def resolve_node(nodes: list[dict[str, Any]], wanted: str) -> dict[str, Any]:
    """Exact id, then exact display name (case-insensitive), then a unique id prefix (6+ chars)."""
    exact = [n for n in nodes if n.get("nodeId") == wanted]
    if exact:
        return exact[0]
    named = [n for n in nodes if str(n.get("displayName") or "").lower() == wanted.lower()]
    if len(named) == 1:
        return named[0]
    prefixed = [n for n in nodes if len(wanted) >= 6 and str(n.get("nodeId", "")).startswith(wanted.lower())]
    matches = named or prefixed
    if len(matches) == 1:
        return matches[0]
    if matches:
        ids = ", ".join(f"{n.get('displayName')} ({str(n.get('nodeId'))[:12]})" for n in matches)
        raise NodeOpError(f"{wanted!r} matches several nodes: {ids}; use the node id", "usage")
    known = ", ".join(str(n.get("displayName") or n.get("nodeId")) for n in nodes) or "none"
    raise NodeOpError(f"no node {wanted!r} on this gateway (known: {known})", "usage")


async def invoke(
    target: Target,
    node: str,
    command: str,
    *,
    params: Any = None,
    invoke_timeout_ms: int = 30_000,
    idempotency_key: str | None = None,
    timeout: float = 10.0,
) -> Any:
    """Run one command on a node named by id, id prefix or display name; returns the gateway's reply.

    `params` None means "send none". The RPC may take the node's time plus our own timeout.
    """
    session = await _session(target, timeout, (WRITE,))
    try:
        listed = await _call(session, "node.list", {}, timeout)
        chosen = resolve_node(listed.get("nodes", []), node)
        request: dict[str, Any] = {
            "nodeId": chosen["nodeId"],
            "command": command,
            "timeoutMs": invoke_timeout_ms,
            "idempotencyKey": idempotency_key or str(uuid.uuid4()),
        }
        if params is not None:
            request["params"] = params
        return await _call(session, "node.invoke", request, invoke_timeout_ms / 1000 + timeout)
    finally:
        await session.close()


__all__ = [
    "PAIRING",
    "READ",
    "WRITE",
    "NodeOpError",
    "decide",
    "invoke",
    "list_nodes",
    "pending",
    "resolve_node",
]
