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
METHOD_SCOPES: dict[str, str | None] = {
    "health": None,
    "status": SCOPE_READ,
    "system-presence": SCOPE_READ,
    "gateway.identity.get": SCOPE_READ,
    "node.list": SCOPE_READ,
    "node.pair.list": SCOPE_PAIRING,
    "channels.status": SCOPE_READ,
}
NODE_METHODS: frozenset[str] = frozenset()


def satisfies(granted: tuple[str, ...] | frozenset[str], needed: str) -> bool:
    held = set(granted)
    if SCOPE_ADMIN in held or needed in held:
        return True
    # Write implies read, as in the reference gateway.
    return needed == SCOPE_READ and SCOPE_WRITE in held


def authorize(method: str, role: str, granted: tuple[str, ...]) -> ErrorShape | None:
    """None when allowed; otherwise the exact error a real client expects."""
    if method not in METHOD_SCOPES:
        return None  # unknown methods are answered as such by the dispatcher
    needed = METHOD_SCOPES[method]
    if needed is None:
        return None
    if method in NODE_METHODS:
        if role != ROLE_NODE:
            return ErrorShape("INVALID_REQUEST", f"unauthorized role: {role}")
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
