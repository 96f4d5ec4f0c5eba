"""Decide whether a `connect` may proceed: shared secret, device signature, rate limit, scopes.

Replies mirror the real OpenClaw gateway word for word (error.code, details.code,
authReason, recommendedNextStep), because real clients branch on them: for example they stop
auto-reconnecting on AUTH_TOKEN_MISSING but not on a network error.
"""

from __future__ import annotations

import ipaddress
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

PROXIED_FACTOR = 10  # shared budget of all Serve/Funnel clients, in multiples of maxAttempts
PROXIED_KEY = "proxied"
TAILNET_V6 = ipaddress.ip_network("fd7a:115c:a1e0::/48")  # one address per node: never grouped


def client_key(remote: str, forwarded: str | None) -> str:
    """Which client this is: the TCP peer, or behind Serve/Funnel the client tailscaled named.

    The one place that decides it, for the auth rate limit and for the gateway's pre-auth socket
    slots alike (`forwarded` is identity.proxied_client's answer, or None outside serve/funnel).

    Behind Tailscale Serve every client's socket comes from 127.0.0.1, so keying on the peer
    would let one client with a stale token lock out the whole tailnet. Serve overwrites
    X-Forwarded-For with the address it accepted the connection from, so through Serve a
    client cannot choose its key. IPv6 outside the tailnet (Funnel clients) is grouped per /64,
    which one attacker owns whole.

    Trade-off: a process on this machine can connect to the loopback port itself and forge the
    headers with a new address per attempt, escaping the per-address lockout. What that buys
    is bounded by the shared `proxied_limiter` (PROXIED_FACTOR x maxAttempts failures per
    window for all proxied clients together), and is worth little anyway: a generated token is
    192 random bits, and a local process that could read the config already has the secret.
    The cost is that such a process can use up the shared budget and lock out proxied
    clients, which it could also do before this change by failing from 127.0.0.1. The same holds
    for pre-auth sockets (server.py): per-client slots, a shared cap for all proxied clients.
    """
    if forwarded is None:
        return remote
    addr = ipaddress.ip_address(forwarded)
    if isinstance(addr, ipaddress.IPv6Address) and addr not in TAILNET_V6:
        return "fwd:" + str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return "fwd:" + str(addr)


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
        # All proxied clients together: caps what rotating forwarded addresses can buy (see client_key).
        self.proxied_limiter = (
            AuthRateLimiter(rl.max_attempts * PROXIED_FACTOR, rl.window_ms / 1000, rl.lockout_ms / 1000)
            if rl.enabled
            else None
        )

    def _limited(self, loopback: bool) -> bool:
        return self.limiter is not None and not (loopback and self.settings.rate_limit.exempt_loopback)

    def _retry_after(self, key: str, forwarded: bool, now: float) -> float | None:
        assert self.limiter is not None and self.proxied_limiter is not None
        waits = [self.limiter.retry_after(key, now)]
        if forwarded:
            waits.append(self.proxied_limiter.retry_after(PROXIED_KEY, now))
        return max((w for w in waits if w is not None), default=None)

    def _record_failure(self, key: str, forwarded: bool, now: float) -> float | None:
        assert self.limiter is not None and self.proxied_limiter is not None
        lock = self.limiter.record_failure(key, now)
        if forwarded:
            lock = self.proxied_limiter.record_failure(PROXIED_KEY, now) or lock
        return lock

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
        forwarded: str | None = None,
    ) -> AuthOutcome:
        """`tailscale_user` is a login already verified by tailscale.identity (whois matched).

        `forwarded` is the client address tailscaled's Serve/Funnel proxy reported, when the
        request came through it (identity.proxied_client); failures are then counted per that
        address instead of per 127.0.0.1 (see client_key).
        """
        limited = self._limited(loopback)
        key = client_key(remote, forwarded)
        via_proxy = forwarded is not None
        if limited:
            wait = self._retry_after(key, via_proxy, now_mono)
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
                if limited:
                    lock = self._record_failure(key, via_proxy, now_mono)
                    if lock is not None:
                        return AuthDenied(rate_limited_error(lock), counted=True)
                return AuthDenied(_auth_error(mode, "mismatch", "update_auth_credentials"), counted=True)

        rejection = verify_device(params, nonce, now_ms)
        if rejection is not None:
            if limited:
                self._record_failure(key, via_proxy, now_mono)
            return AuthDenied(
                ErrorShape(
                    ErrorCode.INVALID_REQUEST,
                    rejection.message,
                    details={"code": rejection.detail_code, "reason": rejection.message},
                ),
                counted=True,
            )
        if self.limiter is not None:
            self.limiter.reset(key)  # never the shared proxied budget: a forger could reset it
        return AuthGranted(
            method=method,
            role=params.role,
            scopes=granted_scopes(params),
            device_id=params.device.id if params.device else None,
        )
