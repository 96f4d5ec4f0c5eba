"""Effective gateway settings: CLI flags over environment over config file over defaults.

Secrets are the exception (flag > config > `OPENCLAW_*` > `CLAWDBOT_*`, as OpenClaw does); that
order lives in secret_sources so the CLI and the client pick the same secret as the server.

This is where every source meets, so it is also where sources are recorded: `config check`
and the startup banner say where each value came from, which is most of debugging
"why is my token wrong".
"""

from __future__ import annotations

import os
import secrets as pysecrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths
from .bind import BindPlan, check_exposure, resolve_bind
from .config import LoadedConfig, load_config
from .errors import ConfigError, RefusalError
from .protocol.constants import DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_PORT, DEFAULT_TICK_INTERVAL_MS
from .secret import Secret
from .secret_sources import pick

PLACEHOLDER_SECRETS = {"change-me-to-a-long-random-token", "change-me-to-a-strong-password"}
GENERATED_TOKEN_FILE = "gateway.token"  # noqa: S105 - a file name, not a secret


@dataclass(frozen=True)
class Overrides:
    """What the command line asked for; None means "not given"."""

    config: str | None = None
    port: int | None = None
    bind: str | None = None
    host: str | None = None
    auth: str | None = None
    token: str | None = None
    password: str | None = None
    tailscale: str | None = None
    reset_on_exit: bool | None = None
    tick_interval_ms: int | None = None


@dataclass(frozen=True)
class RateLimit:
    enabled: bool = True
    max_attempts: int = 10
    window_ms: int = 60_000
    lockout_ms: int = 60_000
    exempt_loopback: bool = False


@dataclass(frozen=True)
class Settings:
    config: LoadedConfig
    port: int
    port_source: str
    bind: BindPlan
    auth_mode: str
    token: Secret | None
    password: Secret | None
    rate_limit: RateLimit
    tailscale_mode: str
    reset_on_exit: bool
    allow_tailscale: bool
    control_ui_enabled: bool
    control_ui_base_path: str
    allowed_origins: tuple[str, ...]
    tick_interval_ms: int
    handshake_timeout_ms: int
    state_dir: Path
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def secret(self) -> Secret | None:
        return self.password if self.auth_mode == "password" else self.token

    def effective(self) -> dict[str, Any]:
        """Settings as data, secrets masked, for `config check` and `status`."""

        def mask(s: Secret | None) -> Any:
            return None if s is None else {"value": s.masked(), "source": s.source}

        return {
            "configFile": str(self.config.path) if self.config.path else None,
            "configSource": self.config.source,
            "port": self.port,
            "portSource": self.port_source,
            "bind": self.bind.mode,
            "listen": list(self.bind.hosts),
            "auth": {
                "mode": self.auth_mode,
                "token": mask(self.token),
                "password": mask(self.password),
                "allowTailscale": self.allow_tailscale,
                "rateLimit": {
                    "enabled": self.rate_limit.enabled,
                    "maxAttempts": self.rate_limit.max_attempts,
                    "windowMs": self.rate_limit.window_ms,
                    "lockoutMs": self.rate_limit.lockout_ms,
                    "exemptLoopback": self.rate_limit.exempt_loopback,
                },
            },
            "tailscale": {"mode": self.tailscale_mode, "resetOnExit": self.reset_on_exit},
            "controlUi": {
                "enabled": self.control_ui_enabled,
                "basePath": self.control_ui_base_path or "/",
                "allowedOrigins": list(self.allowed_origins),
            },
            "tickIntervalMs": self.tick_interval_ms,
            "handshakeTimeoutMs": self.handshake_timeout_ms,
            "stateDir": str(self.state_dir),
            "warnings": list(self.config.warnings),
            "notes": list(self.notes),
        }


def parse_port_env(value: str, var: str) -> int:
    """OPENCLAW_GATEWAY_PORT may be `port`, `host:port` or `[v6]:port`."""
    text = value.strip()
    if text.startswith("["):
        text = text.rsplit("]:", 1)[-1] if "]:" in text else ""
    elif ":" in text:
        text = text.rsplit(":", 1)[1]
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ConfigError(f"{value!r} is not a valid port (1-65535, or host:port)", key=f"env {var}")
    return int(text)


def normalize_base_path(raw: str) -> str:
    """Leading slash, no trailing slash; the root is ''."""
    text = raw.strip()
    if not text or text == "/":
        return ""
    if any(c in text for c in "?#\\") or ".." in text.split("/"):
        raise ConfigError(
            f"{raw!r} is not a usable URL path",
            key="gateway.controlUi.basePath",
            fix='use something like "/control"',
        )
    return "/" + text.strip("/")


def load_or_create_token(state_dir: Path) -> tuple[Secret, bool]:
    """A loopback gateway with no token gets a random one, kept 0600 in our state dir."""
    path = state_dir / GENERATED_TOKEN_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
        if len(text) >= 24:
            return Secret(text, f"generated, {path}"), False
    except FileNotFoundError:
        pass
    token = pysecrets.token_hex(24)
    paths.atomic_write(path, token + "\n")
    return Secret(token, f"generated, {path}"), True


def resolve_settings(
    overrides: Overrides | None = None,
    env: Mapping[str, str] | None = None,
    loaded: LoadedConfig | None = None,
    *,
    create_token: bool = True,
) -> Settings:
    env = os.environ if env is None else env
    ov = overrides or Overrides()
    conf = loaded if loaded is not None else load_config(ov.config, env)
    notes: list[str] = []

    # Port: flag > env > config > default.
    if ov.port is not None:
        if not 0 <= ov.port <= 65535:
            raise ConfigError(f"{ov.port} is not a valid port", key="--port")
        port, port_source = ov.port, "--port"
    elif env.get("OPENCLAW_GATEWAY_PORT"):
        port = parse_port_env(env["OPENCLAW_GATEWAY_PORT"], "OPENCLAW_GATEWAY_PORT")
        port_source = "env OPENCLAW_GATEWAY_PORT"
    elif env.get("CLAWDBOT_GATEWAY_PORT"):
        port = parse_port_env(env["CLAWDBOT_GATEWAY_PORT"], "CLAWDBOT_GATEWAY_PORT")
        port_source = "env CLAWDBOT_GATEWAY_PORT"
    elif conf.get("port") is not None:
        port, port_source = conf.get("port"), "config gateway.port"
    else:
        port, port_source = DEFAULT_PORT, "default"

    tailscale_mode = ov.tailscale or conf.get("tailscale.mode") or "off"
    if tailscale_mode not in ("off", "serve", "funnel"):
        raise ConfigError(f"{tailscale_mode!r} is not allowed (off, serve, funnel)", key="--tailscale")
    # Funnel is public: unless told otherwise, take it down when the gateway stops.
    reset_on_exit = (
        ov.reset_on_exit
        if ov.reset_on_exit is not None
        else bool(conf.get("tailscale.resetOnExit", tailscale_mode == "funnel"))
    )

    custom_host = ov.host or conf.get("customBindHost")
    bind_mode = ov.bind or ("custom" if ov.host else None) or conf.get("bind") or "loopback"
    if bind_mode not in ("loopback", "lan", "tailnet", "auto", "custom"):
        raise ConfigError(
            f"{bind_mode!r} is not allowed (loopback, lan, tailnet, auto, custom)", key="--bind"
        )
    plan = resolve_bind(bind_mode, custom_host)

    # Secrets: flag > config > OPENCLAW_* > CLAWDBOT_* (secret_sources, shared with every client).
    token = pick("token", env, flag=ov.token, config=conf.get("auth.token"))
    password = pick("password", env, flag=ov.password, config=conf.get("auth.password"))
    for s, key in ((token, "gateway.auth.token"), (password, "gateway.auth.password")):
        if s is not None and s.value in PLACEHOLDER_SECRETS:
            raise RefusalError(
                f"the placeholder value from the documentation is not a secret ({s.source})",
                key=key,
                fix="generate one: python3 -c 'import secrets; print(secrets.token_hex(24))'",
            )

    mode_explicit = ov.auth or conf.get("auth.mode")
    if mode_explicit == "trusted-proxy":
        raise ConfigError(
            "auth mode trusted-proxy is not supported by clawd-gateway",
            key="gateway.auth.mode",
            fix='use "token" or "password" (or Tailscale Serve identity headers)',
        )
    if mode_explicit:
        auth_mode = mode_explicit
    elif token is not None and password is not None and not ov.token and not ov.password:
        raise ConfigError(
            "both a token and a password are set but gateway.auth.mode is not; which one applies "
            f"is ambiguous (token from {token.source}, password from {password.source})",
            key="gateway.auth.mode",
            fix='set gateway.auth.mode to "token" or "password", or pass --auth',
        )
    elif ov.password or (password is not None and not ov.token):
        auth_mode = "password"
    else:
        auth_mode = "token"
    if auth_mode not in ("token", "password", "none"):
        raise ConfigError(f"{auth_mode!r} is not allowed (token, password, none)", key="--auth")

    has_secret = (auth_mode == "token" and token is not None) or (
        auth_mode == "password" and password is not None
    )
    check_exposure(plan, auth_mode, has_secret, tailscale_mode)

    sdir = paths.state_dir(env)
    if auth_mode == "token" and token is None:
        if not create_token:
            pass
        else:
            token, created = load_or_create_token(sdir)
            notes.append(
                ("generated a new token" if created else "using the generated token")
                + f" stored in {sdir / GENERATED_TOKEN_FILE} (mode 0600)"
            )
    if auth_mode == "password" and password is None:
        raise RefusalError(
            "auth mode password but no password is set",
            key="gateway.auth.password",
            fix="export OPENCLAW_GATEWAY_PASSWORD=... (keeps it out of the config file), or pass --password",
        )

    rl_conf = conf.get("auth.rateLimit") or {}
    defaults = RateLimit()
    rate_limit = RateLimit(
        enabled=rl_conf.get("enabled", True),
        max_attempts=rl_conf.get("maxAttempts", defaults.max_attempts),
        window_ms=rl_conf.get("windowMs", defaults.window_ms),
        lockout_ms=rl_conf.get("lockoutMs", defaults.lockout_ms),
        exempt_loopback=rl_conf.get("exemptLoopback", defaults.exempt_loopback),
    )

    allow_ts_conf = conf.get("auth.allowTailscale")
    allow_tailscale = (
        bool(allow_ts_conf)
        if allow_ts_conf is not None
        else (tailscale_mode == "serve" and auth_mode != "password")
    )
    if tailscale_mode == "funnel" and allow_tailscale:
        # Funnel traffic carries no identity; the headers are never a credential in this mode.
        allow_tailscale = False
        notes.append("gateway.auth.allowTailscale is ignored with tailscale.mode funnel")

    hs_env = env.get("OPENCLAW_HANDSHAKE_TIMEOUT_MS")
    handshake_ms = DEFAULT_HANDSHAKE_TIMEOUT_MS
    if hs_env:
        if not hs_env.isdigit() or int(hs_env) < 100:
            raise ConfigError(
                f"{hs_env!r} is not a timeout in ms (>= 100)", key="env OPENCLAW_HANDSHAKE_TIMEOUT_MS"
            )
        handshake_ms = int(hs_env)

    tick = ov.tick_interval_ms or DEFAULT_TICK_INTERVAL_MS
    if tick < 100:
        raise ConfigError(f"{tick} ms is too short (>= 100)", key="--tick-interval")

    return Settings(
        config=conf,
        port=port,
        port_source=port_source,
        bind=plan,
        auth_mode=auth_mode,
        token=token,
        password=password,
        rate_limit=rate_limit,
        tailscale_mode=tailscale_mode,
        reset_on_exit=reset_on_exit,
        allow_tailscale=allow_tailscale,
        control_ui_enabled=conf.get("controlUi.enabled", True),
        control_ui_base_path=normalize_base_path(conf.get("controlUi.basePath", "")),
        allowed_origins=tuple(conf.get("controlUi.allowedOrigins", []) or ()),
        tick_interval_ms=tick,
        handshake_timeout_ms=handshake_ms,
        state_dir=sdir,
        notes=tuple(notes),
    )
