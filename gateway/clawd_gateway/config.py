"""Load the OpenClaw-compatible JSON5 config and validate the `gateway` section we own.

The file may be shared with a real OpenClaw install, so sections other than `gateway` are
ignored, and keys OpenClaw knows but we do not implement are accepted quietly. Keys nobody
knows get a warning that names them; wrong values are errors naming file, key path and the
allowed values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import json5

from . import paths
from .errors import ConfigError

MAX_CONFIG_BYTES = 2 * 1024 * 1024
_VAR = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")

Validator = Callable[[Any, str, "Path | None"], Any]


# --- validators --------------------------------------------------------------------------------


def _enum(*allowed: str) -> Validator:
    def check(value: Any, key: str, file: Path | None) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise ConfigError(f"{value!r} is not allowed (allowed: {', '.join(allowed)})", file=file, key=key)
        return value

    return check


def _int_range(lo: int, hi: int) -> Validator:
    def check(value: Any, key: str, file: Path | None) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(f"{value!r} is not allowed (an integer from {lo} to {hi})", file=file, key=key)
        return value

    return check


def _bool(value: Any, key: str, file: Path | None) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{value!r} is not allowed (true or false)", file=file, key=key)
    return value


def _str(value: Any, key: str, file: Path | None) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{value!r} is not allowed (a string)", file=file, key=key)
    return value


def _secret(value: Any, key: str, file: Path | None) -> str:
    if isinstance(value, dict):
        raise ConfigError(
            "secret references are not supported here",
            file=file,
            key=key,
            fix=f'use a plain string with env substitution, e.g. "{key}": "${{MY_SECRET}}"',
        )
    if not isinstance(value, str):
        raise ConfigError(f"a {type(value).__name__} is not allowed (a string)", file=file, key=key)
    return value


def _str_list(value: Any, key: str, file: Path | None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{value!r} is not allowed (an array of strings)", file=file, key=key)
    return value


def _any(value: Any, key: str, file: Path | None) -> Any:
    return value


BIND_MODES = ("loopback", "lan", "tailnet", "auto", "custom")
AUTH_MODES = ("token", "password", "none")
TAILSCALE_MODES = ("off", "serve", "funnel")

# Nested dict = section; callable = leaf validator. `_any` marks OpenClaw keys we accept but ignore.
SCHEMA: dict[str, Any] = {
    "port": _int_range(1, 65535),
    "mode": _enum("local", "remote"),
    "bind": _enum(*BIND_MODES),
    "customBindHost": _str,
    "auth": {
        "mode": _enum(*AUTH_MODES, "trusted-proxy"),
        "token": _secret,
        "password": _secret,
        "allowTailscale": _bool,
        "rateLimit": {
            "enabled": _bool,
            "maxAttempts": _int_range(1, 1_000_000),
            "windowMs": _int_range(1, 86_400_000),
            "lockoutMs": _int_range(0, 86_400_000),
            "exemptLoopback": _bool,
        },
        "trustedProxy": _any,
    },
    "tailscale": {"mode": _enum(*TAILSCALE_MODES), "resetOnExit": _bool},
    "controlUi": {
        "enabled": _bool,
        "basePath": _str,
        "allowedOrigins": _str_list,
        "root": _any,
        "embedSandbox": _any,
        "allowExternalEmbedUrls": _any,
        "dangerouslyAllowHostHeaderOriginFallback": _any,
        "allowInsecureAuth": _any,
        "dangerouslyDisableDeviceAuth": _any,
    },
    "remote": {
        "enabled": _bool,
        "url": _str,
        "transport": _enum("ssh", "direct"),
        "token": _secret,
        "password": _secret,
        "tlsFingerprint": _str,
        "sshTarget": _str,
        "sshIdentity": _str,
        "sshHostKeyPolicy": _any,
    },
    "trustedProxies": _any,
    "allowRealIpFallback": _any,
    "reload": _any,
    "tls": _any,
    "http": _any,
    "nodes": _any,
    "tools": _any,
    "push": _any,
    "webchat": _any,
    "channelHealthCheckMinutes": _any,
    "channelStaleEventThresholdMinutes": _any,
    "channelMaxRestartsPerHour": _any,
}


# --- loading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedConfig:
    """The validated `gateway` section plus where it came from."""

    path: Path | None
    source: str
    gateway: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    file_secrets: tuple[str, ...] = ()  # key paths whose secret is written literally in the file

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.gateway
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node


def locate_config(explicit: str | Path | None, env: Mapping[str, str]) -> tuple[Path | None, str]:
    """Pick the config file: --config, then env, then the OpenClaw and Clawdbot defaults."""
    if explicit:
        return Path(explicit).expanduser(), "--config"
    from_env = paths.explicit_config(env)
    if from_env:
        return from_env
    for candidate in paths.config_candidates(env):
        if candidate.is_file():
            return candidate, "default location"
    return None, "built-in defaults"


def substitute_env(value: str, env: Mapping[str, str], key: str, file: Path | None) -> str:
    """Expand ${VAR}; $${VAR} stays literal; a missing variable is an error naming it."""

    def repl(m: re.Match[str]) -> str:
        if m.group(1):
            return "${" + m.group(2) + "}"
        name = m.group(2)
        if name not in env:
            raise ConfigError(
                f"environment variable {name} is not set",
                file=file,
                key=key,
                fix=f"export {name}=... before starting, or remove the reference",
            )
        return env[name]

    return _VAR.sub(repl, value)


def _walk(
    schema: dict[str, Any],
    data: Any,
    prefix: str,
    file: Path | None,
    env: Mapping[str, str],
    warnings: list[str],
    literal_secrets: list[str],
) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{type(data).__name__} is not allowed (an object)", file=file, key=prefix)
    out: dict[str, Any] = {}
    unknown = [k for k in data if k not in schema]
    if unknown:
        where = f" in {file}" if file else ""
        warnings.append(
            f"unknown key{'s' if len(unknown) > 1 else ''} ignored{where}: "
            + ", ".join(f"{prefix}.{k}" for k in unknown)
        )
    for key, value in data.items():
        if key not in schema:
            continue
        path = f"{prefix}.{key}"
        spec = schema[key]
        if isinstance(value, str) and spec is not _any:
            original = value
            value = substitute_env(value, env, path, file)
            if spec is _secret and value == original and value:
                literal_secrets.append(path)
        if isinstance(spec, dict):
            out[key] = _walk(spec, value, path, file, env, warnings, literal_secrets)
        else:
            out[key] = spec(value, path, file)
    return out


def parse_config_text(
    text: str, file: Path | None, env: Mapping[str, str], source: str = "text"
) -> LoadedConfig:
    try:
        data = json5.loads(text)
    except ValueError as exc:
        raise ConfigError(f"not valid JSON5: {exc}", file=file) from None
    except RecursionError:
        raise ConfigError("not valid JSON5: nested too deeply", file=file) from None
    if not isinstance(data, dict):
        raise ConfigError("the top level must be an object", file=file)
    warnings: list[str] = []
    secrets: list[str] = []
    gateway = _walk(SCHEMA, data.get("gateway", {}), "gateway", file, env, warnings, secrets)
    return LoadedConfig(file, source, gateway, tuple(warnings), tuple(secrets))


def load_config(explicit: str | Path | None = None, env: Mapping[str, str] | None = None) -> LoadedConfig:
    env = os.environ if env is None else env
    path, source = locate_config(explicit, env)
    if path is None:
        return LoadedConfig(None, source)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"file is {size} bytes; the limit is {MAX_CONFIG_BYTES}", file=path)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found (from {source})",
            file=path,
            fix="create it, or point --config / OPENCLAW_CONFIG_PATH at an existing file",
        ) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", file=path) from None
    except PermissionError:
        raise ConfigError("permission denied reading the config file", file=path) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=path) from None
    return parse_config_text(text, path, env, source)
