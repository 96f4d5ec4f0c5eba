"""End-to-end check through the local port: the gateway handshake with our secret plus a
`health` RPC. An open socket proves nothing; this proves the gateway answers and accepts us."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from clawd_gateway.client import (
    GatewayAuthError,
    GatewayCallError,
    GatewayError,
    GatewayUnreachable,
    open_session,
)
from clawd_gateway.secret import Secret

from .machine import ProbeFailure

PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency_ms: float = 0.0
    failure: ProbeFailure | None = None
    message: str = ""
    detail_code: str | None = None
    server: dict[str, Any] | None = None


async def probe_gateway(
    url: str, auth: str, secret: Secret | None, timeout: float = PROBE_TIMEOUT
) -> ProbeResult:
    token = secret.value if secret is not None and auth == "token" else None
    password = secret.value if secret is not None and auth == "password" else None
    t0 = time.perf_counter()
    try:
        session = await open_session(
            url,
            token=token,
            password=password,
            timeout=timeout,
            client_id="cli",
            client_mode="cli",
            display_name="clawd probe",
        )
    except GatewayAuthError as exc:
        hint = "" if secret is not None else " (no secret stored: clawd secret set PROFILE)"
        return ProbeResult(
            False,
            failure=ProbeFailure.AUTH,
            message=f"gateway refused us: {exc}{hint}",
            detail_code=exc.detail_code,
        )
    except GatewayUnreachable as exc:
        return ProbeResult(
            False, failure=ProbeFailure.UNREACHABLE, message=f"gateway unreachable behind the tunnel: {exc}"
        )
    except GatewayCallError as exc:
        return ProbeResult(False, failure=ProbeFailure.UNHEALTHY, message=str(exc))
    except GatewayError as exc:
        # A dropped connection during the handshake means nothing answered at the far end.
        return ProbeResult(
            False, failure=ProbeFailure.UNREACHABLE, message=f"gateway did not complete the handshake: {exc}"
        )
    try:
        health = await session.call("health", {}, timeout=timeout)
    except GatewayError as exc:
        return ProbeResult(False, failure=ProbeFailure.UNHEALTHY, message=f"health call failed: {exc}")
    finally:
        await session.close()
    latency = (time.perf_counter() - t0) * 1000
    if not (isinstance(health, dict) and health.get("ok") is True):
        return ProbeResult(False, latency, ProbeFailure.UNHEALTHY, "gateway reports it is not healthy")
    return ProbeResult(True, latency, server=session.hello.get("server"))
