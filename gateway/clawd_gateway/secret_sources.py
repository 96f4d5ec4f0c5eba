"""Where a gateway secret comes from, in one order: flag > config > `OPENCLAW_*` > `CLAWDBOT_*`.

Why one module: the gateway, its own CLI (`health`, `status`, `nodes`), the laptop client and the
audit all answer "which token applies here?". When each wrote its own loop they drifted apart
(env before config in one, password before token in another), and a client then sent a different
secret than the server it talks to was using. Everything now asks this module.

The order follows OpenClaw: an explicit flag wins; then the config file (which may itself say
`${VAR}`); then OpenClaw's environment names; then the seeds' Clawdbot names, which only exist
so old setups keep working and must never shadow a current one. Empty values count as unset,
so `export OPENCLAW_GATEWAY_TOKEN=` does not hide the next source.

Pure: no I/O; callers pass the environment mapping they mean (the process's, a service's env file).
This package must never import `clawd_client`, so the client imports this, not the other way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from .secret import Secret

Kind = Literal["token", "password"]
KINDS: tuple[Kind, ...] = ("token", "password")
# Most specific first: OpenClaw's current names, then the seeds' Clawdbot names.
ENV_PREFIXES: tuple[str, ...] = ("OPENCLAW", "CLAWDBOT")


def env_var(prefix: str, kind: str) -> str:
    """`OPENCLAW` + `token` -> `OPENCLAW_GATEWAY_TOKEN`."""
    return f"{prefix}_GATEWAY_{kind.upper()}"


def env_vars(kind: str) -> tuple[str, ...]:
    """The variables that may hold this kind of secret, in precedence order."""
    return tuple(env_var(prefix, kind) for prefix in ENV_PREFIXES)


# Every variable that may hold a gateway secret, in the order secret_from_env tries them.
SECRET_VARS: tuple[str, ...] = tuple(env_var(p, k) for p in ENV_PREFIXES for k in KINDS)


def find_env(kind: str, env: Mapping[str, str]) -> tuple[str, str] | None:
    """(variable, value) of the first non-empty variable for this kind, or None.

    Callers that annotate where a variable came from (the audit names the service env file)
    need the name as well as the value; everyone else wants from_env.
    """
    for var in env_vars(kind):
        value = env.get(var)
        if value:
            return var, value
    return None


def from_env(kind: str, env: Mapping[str, str]) -> Secret | None:
    """The environment's secret for this kind, labelled `env VAR` so messages can say where."""
    found = find_env(kind, env)
    return None if found is None else Secret(found[1], f"env {found[0]}")


def pick(
    kind: str,
    env: Mapping[str, str],
    *,
    flag: str | None = None,
    flag_name: str | None = None,
    config: Any = None,
    config_key: str | None = None,
) -> Secret | None:
    """The secret of one kind: flag > config > OPENCLAW_* > CLAWDBOT_*; None when none is set.

    `config` is the config file's value as loaded (after `${VAR}` substitution); anything but a
    non-empty string counts as unset, so a wrong type falls through instead of becoming a secret.
    """
    if flag:
        return Secret(flag, flag_name or f"--{kind}")
    if isinstance(config, str) and config:
        return Secret(config, f"config {config_key or f'gateway.auth.{kind}'}")
    return from_env(kind, env)


def secret_from_env(env: Mapping[str, str]) -> tuple[Secret, Kind] | None:
    """The environment's secret when the caller does not know the auth kind, with that kind.

    Any OPENCLAW_* variable beats any CLAWDBOT_* one (a leftover seed token must not shadow a
    current password); within one prefix the token comes first, as `token` is the default mode.
    """
    for prefix in ENV_PREFIXES:
        for kind in KINDS:
            var = env_var(prefix, kind)
            value = env.get(var)
            if value:
                return Secret(value, f"env {var}"), kind
    return None


__all__ = [
    "ENV_PREFIXES",
    "KINDS",
    "SECRET_VARS",
    "Kind",
    "env_var",
    "env_vars",
    "find_env",
    "from_env",
    "pick",
    "secret_from_env",
]
