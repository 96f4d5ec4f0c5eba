"""Wire constants of the OpenClaw gateway protocol.

These values are contract facts shared with real OpenClaw clients (protocol 3 and 4); they are
kept in one place so that the gateway and the client cannot drift apart.
"""

from __future__ import annotations

from typing import Final

PROTOCOL_MIN: Final = 3
PROTOCOL_MAX: Final = 4
DEFAULT_PORT: Final = 18789

# Before authentication a peer is a stranger: keep what it can make us buffer small.
MAX_PREAUTH_PAYLOAD_BYTES: Final = 64 * 1024
MAX_PAYLOAD_BYTES: Final = 25 * 1024 * 1024
MAX_BUFFERED_BYTES: Final = 50 * 1024 * 1024
DEFAULT_TICK_INTERVAL_MS: Final = 30_000
DEFAULT_HANDSHAKE_TIMEOUT_MS: Final = 10_000
MAX_PREAUTH_CONNECTIONS_PER_IP: Final = 32
DEVICE_SIGNATURE_SKEW_MS: Final = 2 * 60 * 1000
CLOSE_REASON_MAX_BYTES: Final = 120

# WebSocket close codes used by the gateway.
CLOSE_NORMAL: Final = 1000
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_UNSUPPORTED_DATA: Final = 1003
CLOSE_POLICY: Final = 1008
CLOSE_TOO_BIG: Final = 1009
CLOSE_SERVICE_RESTART: Final = 1012
CLOSE_AUTH_CHANGED: Final = 4001


# error.code values (the coarse class); the fine reason goes in error.details.code.
class ErrorCode:
    """Top-level `error.code` strings."""

    INVALID_REQUEST: Final = "INVALID_REQUEST"
    NOT_PAIRED: Final = "NOT_PAIRED"
    NOT_LINKED: Final = "NOT_LINKED"
    UNAVAILABLE: Final = "UNAVAILABLE"
    FORBIDDEN: Final = "FORBIDDEN"
    AGENT_TIMEOUT: Final = "AGENT_TIMEOUT"


class DetailCode:
    """`error.details.code` strings that clients branch on."""

    AUTH_REQUIRED: Final = "AUTH_REQUIRED"
    AUTH_TOKEN_MISSING: Final = "AUTH_TOKEN_MISSING"
    AUTH_TOKEN_MISMATCH: Final = "AUTH_TOKEN_MISMATCH"
    AUTH_TOKEN_NOT_CONFIGURED: Final = "AUTH_TOKEN_NOT_CONFIGURED"
    AUTH_PASSWORD_MISSING: Final = "AUTH_PASSWORD_MISSING"
    AUTH_PASSWORD_MISMATCH: Final = "AUTH_PASSWORD_MISMATCH"
    AUTH_PASSWORD_NOT_CONFIGURED: Final = "AUTH_PASSWORD_NOT_CONFIGURED"
    AUTH_RATE_LIMITED: Final = "AUTH_RATE_LIMITED"
    PROTOCOL_MISMATCH: Final = "PROTOCOL_MISMATCH"
    MISSING_SCOPE: Final = "MISSING_SCOPE"
    CONTROL_UI_ORIGIN_NOT_ALLOWED: Final = "CONTROL_UI_ORIGIN_NOT_ALLOWED"
    DEVICE_IDENTITY_REQUIRED: Final = "DEVICE_IDENTITY_REQUIRED"
    DEVICE_AUTH_INVALID: Final = "DEVICE_AUTH_INVALID"
    DEVICE_AUTH_DEVICE_ID_MISMATCH: Final = "DEVICE_AUTH_DEVICE_ID_MISMATCH"
    DEVICE_AUTH_SIGNATURE_EXPIRED: Final = "DEVICE_AUTH_SIGNATURE_EXPIRED"
    DEVICE_AUTH_NONCE_REQUIRED: Final = "DEVICE_AUTH_NONCE_REQUIRED"
    DEVICE_AUTH_NONCE_MISMATCH: Final = "DEVICE_AUTH_NONCE_MISMATCH"
    DEVICE_AUTH_SIGNATURE_INVALID: Final = "DEVICE_AUTH_SIGNATURE_INVALID"
    DEVICE_AUTH_PUBLIC_KEY_INVALID: Final = "DEVICE_AUTH_PUBLIC_KEY_INVALID"


# Operator scopes; a shared-secret operator is granted the subset of these it asks for.
SCOPE_ADMIN: Final = "operator.admin"
SCOPE_READ: Final = "operator.read"
SCOPE_WRITE: Final = "operator.write"
SCOPE_APPROVALS: Final = "operator.approvals"
SCOPE_PAIRING: Final = "operator.pairing"
SCOPE_TALK_SECRETS: Final = "operator.talk.secrets"
OPERATOR_SCOPES: Final = frozenset(
    {SCOPE_ADMIN, SCOPE_READ, SCOPE_WRITE, SCOPE_APPROVALS, SCOPE_PAIRING, SCOPE_TALK_SECRETS}
)

ROLE_OPERATOR: Final = "operator"
ROLE_NODE: Final = "node"
ROLES: Final = frozenset({ROLE_OPERATOR, ROLE_NODE})

CLIENT_IDS: Final = frozenset(
    {
        "webchat-ui",
        "openclaw-control-ui",
        "openclaw-tui",
        "webchat",
        "cli",
        "gateway-client",
        "openclaw-macos",
        "openclaw-ios",
        "openclaw-android",
        "node-host",
        "test",
        "fingerprint",
        "openclaw-probe",
    }
)
CLIENT_MODES: Final = frozenset({"webchat", "cli", "ui", "backend", "node", "probe", "test"})
BROWSER_CLIENT_IDS: Final = frozenset({"webchat-ui", "openclaw-control-ui", "webchat"})
