"""Which role and scope each method needs: a table, so that adding a method is one line."""

from __future__ import annotations

from .constants import (
    ROLE_NODE,
    ROLE_OPERATOR,
    SCOPE_ADMIN,
    SCOPE_PAIRING,
    SCOPE_READ,
    SCOPE_WRITE,
    DetailCode,
)
from .frames import ErrorShape

# None: any authenticated connection (health is exempt from role and scope checks).
# Methods not listed here need operator.admin (default-deny, as in the reference gateway).
METHOD_SCOPES: dict[str, str | None] = {
    "health": None,
    "status": SCOPE_READ,
    "system-presence": SCOPE_READ,
    "gateway.identity.get": SCOPE_READ,
    "node.list": SCOPE_READ,
    "node.describe": SCOPE_READ,
    "node.invoke": SCOPE_WRITE,
    "node.pair.list": SCOPE_PAIRING,
    "node.pair.approve": SCOPE_PAIRING,  # plus the request's requiredApproveScopes (nodes/hub.py)
    "node.pair.reject": SCOPE_PAIRING,
    "node.rename": SCOPE_PAIRING,
    "device.pair.list": SCOPE_PAIRING,
    "device.pair.approve": SCOPE_PAIRING,
    "device.pair.reject": SCOPE_PAIRING,
    "channels.status": SCOPE_READ,
}
# Only connections with role "node" may call these (what node hosts send about themselves).
NODE_METHODS: frozenset[str] = frozenset(
    {
        "node.invoke.result",
        "node.event",
        "node.skills.update",
        "node.pluginTools.update",
        "node.runnerInventory.update",
        "node.pending.drain",
        "node.pending.pull",
        "node.pending.ack",
        "node.canvas.capability.refresh",
        "skills.bins",
    }
)


def satisfies(granted: tuple[str, ...] | frozenset[str], needed: str) -> bool:
    held = set(granted)
    if SCOPE_ADMIN in held or needed in held:
        return True
    # Write implies read, as in the reference gateway.
    return needed == SCOPE_READ and SCOPE_WRITE in held


def authorize(method: str, role: str, granted: tuple[str, ...]) -> ErrorShape | None:
    """None when allowed; otherwise the exact error a real client expects."""
    if method in NODE_METHODS:
        return None if role == ROLE_NODE else ErrorShape("INVALID_REQUEST", f"unauthorized role: {role}")
    needed = METHOD_SCOPES.get(method, SCOPE_ADMIN)
    if needed is None:
        return None
    if role != ROLE_OPERATOR:
        return ErrorShape("INVALID_REQUEST", f"unauthorized role: {role}")
    if satisfies(granted, needed):
        return None
    return ErrorShape(
        "FORBIDDEN",
        f"missing scope: {needed}",
        details={"code": DetailCode.MISSING_SCOPE, "missingScope": needed, "requiredScopes": [needed]},
    )
