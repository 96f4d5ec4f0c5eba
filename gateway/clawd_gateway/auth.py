"""Decide whether a `connect` may proceed: shared secret, device signature, rate limit, scopes.

Replies mirror the real OpenClaw gateway word for word (error.code, details.code,
authReason, recommendedNextStep), because real clients branch on them: for example they stop
auto-reconnecting on AUTH_TOKEN_MISSING but not on a network error.
"""

from __future__ import annotations

from dataclasses import dataclass

from .protocol.constants import (
    CLOSE_POLICY,
    OPERATOR_SCOPES,
    ROLE_OPERATOR,
    DetailCode,
    ErrorCode,
)
from .protocol.device import verify_device
from .protocol.frames import ConnectParams, ErrorShape
from .ratelimit import AuthRateLimiter
from .settings import Settings


@dataclass(frozen=True)
class AuthGranted:
    method: str  # "token" | "password" | "none" | "tailscale"
    role: str
    scopes: tuple[str, ...]
    device_id: str | None = None


@dataclass(frozen=True)
class AuthDenied:
    error: ErrorShape
    close_code: int = CLOSE_POLICY
    counted: bool = False


AuthOutcome = AuthGranted | AuthDenied

_HINT = {
    "token": "use this gateway's gateway.auth.token or pair the device",
    "password": "use this gateway's gateway.auth.password",
}


def _auth_error(kind: str, reason: str, next_step: str) -> ErrorShape:
    detail = f"AUTH_{kind.upper()}_{reason.upper()}"
    return ErrorShape(
        ErrorCode.INVALID_REQUEST,
        f"unauthorized: gateway {kind} {reason} ({_HINT[kind]})",
        details={
            "code": detail,
            "authReason": f"{kind}_{reason}",
            "canRetryWithDeviceToken": False,
            "recommendedNextStep": next_step,
        },
    )


def rate_limited_error(retry_after_s: float) -> ErrorShape:
    return ErrorShape(
        ErrorCode.INVALID_REQUEST,
        "unauthorized: too many failed authentication attempts (retry later)",
        details={
            "code": DetailCode.AUTH_RATE_LIMITED,
            "authReason": "rate_limited",
            "canRetryWithDeviceToken": False,
            "recommendedNextStep": "wait_then_retry",
        },
        retryable=True,
        retry_after_ms=max(1, int(retry_after_s * 1000)),
    )


def granted_scopes(params: ConnectParams) -> tuple[str, ...]:
    """A shared-secret operator gets the known scopes it asked for; probes and nodes get none."""
    if params.role != ROLE_OPERATOR or params.client.mode == "probe":
        return ()
    seen: list[str] = []
    for s in params.scopes:
        if s in OPERATOR_SCOPES and s not in seen:
            seen.append(s)
    return tuple(seen)


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        rl = settings.rate_limit
        self.limiter = (
            AuthRateLimiter(rl.max_attempts, rl.window_ms / 1000, rl.lockout_ms / 1000)
            if rl.enabled
            else None
        )

    def _limited(self, loopback: bool) -> bool:
        return self.limiter is not None and not (loopback and self.settings.rate_limit.exempt_loopback)

    def authenticate(
        self,
        params: ConnectParams,
        *,
        remote: str,
        loopback: bool,
        nonce: str,
        now_ms: int,
        now_mono: float,
        tailscale_user: str | None = None,
    ) -> AuthOutcome:
        """`tailscale_user` is a login already verified by tailscale.identity (whois matched)."""
        limited = self._limited(loopback)
        if limited and self.limiter is not None:
            wait = self.limiter.retry_after(remote, now_mono)
            if wait is not None:
                return AuthDenied(rate_limited_error(wait))

        mode = self.settings.auth_mode
        method = mode
        if mode != "none" and tailscale_user is not None and not params.auth.get(mode):
            method = "tailscale"
        elif mode != "none":
            secret = self.settings.secret
            offered = params.auth.get(mode)
            if not offered:
                if params.device is None and not params.auth:
                    return AuthDenied(
                        ErrorShape(
                            ErrorCode.NOT_PAIRED,
                            "device identity required",
                            details={"code": DetailCode.DEVICE_IDENTITY_REQUIRED},
                        )
                    )
                return AuthDenied(_auth_error(mode, "missing", "update_auth_configuration"))
            if secret is None or not secret.matches(offered):
                if limited and self.limiter is not None:
                    lock = self.limiter.record_failure(remote, now_mono)
                    if lock is not None:
                        return AuthDenied(rate_limited_error(lock), counted=True)
                return AuthDenied(_auth_error(mode, "mismatch", "update_auth_credentials"), counted=True)

        rejection = verify_device(params, nonce, now_ms)
        if rejection is not None:
            if limited and self.limiter is not None:
                self.limiter.record_failure(remote, now_mono)
            return AuthDenied(
                ErrorShape(
                    ErrorCode.INVALID_REQUEST,
                    rejection.message,
                    details={"code": rejection.detail_code, "reason": rejection.message},
                ),
                counted=True,
            )
        if self.limiter is not None:
            self.limiter.reset(remote)
        return AuthGranted(
            method=method,
            role=params.role,
            scopes=granted_scopes(params),
            device_id=params.device.id if params.device else None,
        )
