"""What `clawd-gateway health`, `status` and `config check` find out, as data the CLI prints.

Why apart from the CLI: both are decisions about a gateway — which hop failed, which address a
tailnet-bound gateway answers on, what counts as healthy — and they are easier to trust (and to
reuse) as functions returning plain dicts than as print statements.

The dict keys are the `--json` output format, so they are kept as they were.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .bind import is_loopback
from .client import GatewayAuthError, GatewayCallError, GatewayError, call, open_session
from .settings import GENERATED_TOKEN_FILE, Overrides, Settings, resolve_settings
from .target import NO_CREDENTIALS_HINT, Target, local_secret

# --- health --------------------------------------------------------------------------------------


async def check_health(target: Target, timeout: float) -> dict[str, Any]:
    """Handshake, then a `health` RPC. `exitCode` and `hop` say what failed, if anything."""
    out: dict[str, Any] = {"url": target.url}
    try:
        session = await open_session(
            target.url, token=target.token, password=target.password, timeout=timeout
        )
    except GatewayError as exc:
        out.update(ok=False, hop=exc.hop, exitCode=exc.exit_code, message=str(exc))
        if isinstance(exc, (GatewayAuthError, GatewayCallError)):
            out["error"] = exc.error.to_json()
            if target.secret is None:
                out["hint"] = NO_CREDENTIALS_HINT
        return out
    try:
        t0 = time.perf_counter()
        payload = await session.call("health", {}, timeout=timeout)
        rpc_ms = (time.perf_counter() - t0) * 1000
    except GatewayError as exc:
        out.update(ok=False, hop=exc.hop, exitCode=exc.exit_code, message=str(exc))
        return out
    finally:
        await session.close()
    healthy = isinstance(payload, dict) and payload.get("ok") is True
    hello_auth = session.hello.get("auth")
    auth: dict[str, Any] = hello_auth if isinstance(hello_auth, dict) else {}
    out.update(
        ok=healthy,
        exitCode=0 if healthy else 1,
        protocol=session.protocol,
        server=session.hello.get("server", {}),
        handshakeMs=round(session.connect_ms, 2),
        rpcMs=round(rpc_ms, 2),
        auth={"role": auth.get("role"), "scopes": auth.get("scopes"), "method": auth.get("method")},
        health=payload,
    )
    if not healthy:
        out["hop"] = "gateway"
        out["message"] = "gateway reports not ok"
    return out


# --- config check --------------------------------------------------------------------------------


def effective_config(config: str | None = None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`config check`: the effective settings (secrets masked), plus what the first start will do.

    Raises ConfigError/RefusalError when the gateway would refuse to start with this config.
    """
    settings = resolve_settings(
        Overrides(config=config), os.environ if env is None else env, create_token=False
    )
    eff = settings.effective()
    if settings.auth_mode == "token" and settings.token is None:
        eff["notes"].append(
            f"no token configured: one will be generated at first start in "
            f"{settings.state_dir / GENERATED_TOKEN_FILE}"
        )
    return eff


# --- status --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusReport:
    """`report` is the `--json` document; `auth_mode` is the configured one, for the text output."""

    report: dict[str, Any]
    auth_mode: str

    @property
    def running(self) -> bool:
        return bool(self.report["running"])


def _http_get(url: str, timeout: float) -> tuple[int, Any]:
    """GET a JSON endpoint, never through a proxy (the gateway is local or on the tailnet)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None


def status_host(settings: Settings, runtime: Mapping[str, Any] | None) -> str:
    """The address to ask: loopback unless the gateway only listens elsewhere.

    A wildcard or loopback bind answers on 127.0.0.1; a gateway started with --bind tailnet or
    custom listens only on its address, which its runtime file records.
    """
    host = (
        "127.0.0.1"
        if settings.bind.loopback_only or settings.bind.hosts[0] == "0.0.0.0"
        else settings.bind.hosts[0]
    )
    listen = (runtime or {}).get("listen") or []
    if listen and not any(h in ("0.0.0.0", "::") or is_loopback(h) for h in listen):
        host = listen[0]
    return host


def _read_runtime(settings: Settings) -> dict[str, Any] | None:
    from .runner import runtime_file

    try:
        data = json.loads(runtime_file(settings, settings.port).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def gather_status(
    *,
    config: str | None = None,
    token: str | None = None,
    password: str | None = None,
    timeout: float = 3.0,
    env: Mapping[str, str] | None = None,
) -> StatusReport:
    """Is a gateway running here (its /readyz), and what does its `status` RPC say?"""
    env = os.environ if env is None else env
    settings = resolve_settings(Overrides(config=config), env, create_token=False)
    port = settings.port
    runtime = _read_runtime(settings)
    host = status_host(settings, runtime)
    hostpart = f"[{host}]" if ":" in host else host
    report: dict[str, Any] = {"port": port, "url": f"ws://{hostpart}:{port}", "running": False}
    report["runtime"] = runtime
    report["tailscale"] = (runtime or {}).get("tailscale")
    try:
        code, body = _http_get(f"http://{hostpart}:{port}/readyz", timeout)
        report.update(running=True, ready=code == 200, readyz=body)
    except (OSError, ValueError) as exc:
        report["error"] = f"nothing answers on {hostpart}:{port} ({getattr(exc, 'reason', exc)})"
    if report["running"]:
        secret, kind = local_secret(settings, token=token, password=password)
        target = Target(report["url"], secret, kind)
        report["credentials"] = target.source
        try:
            payload, _ = asyncio.run(
                call(target.url, "status", {}, token=target.token, password=target.password, timeout=timeout)
            )
            gw = payload.get("gateway") if isinstance(payload, dict) else None
            report["gateway"] = gw or {
                "implementation": "unknown (not clawd-gateway)",
                "runtimeVersion": (payload or {}).get("runtimeVersion"),
            }
        except GatewayError as exc:
            report["gatewayError"] = {"hop": exc.hop, "message": str(exc)}
    return StatusReport(report, settings.auth_mode)


__all__ = ["StatusReport", "check_health", "effective_config", "gather_status", "status_host"]
