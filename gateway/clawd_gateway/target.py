"""Which gateway an operator command (`health`, `status`, `nodes`) talks to, and with which secret.

Why this is not in the CLI: three commands need the same answer, and the answer is a decision —
the local gateway's client must send the secret that gateway itself resolved, or `health` fails
against a server that is fine. So the local case reuses `resolve_settings` (the server's own
precedence, flag > config > `OPENCLAW_*` > `CLAWDBOT_*` via secret_sources) and then the generated
token file, read only.

With an explicit `--url` the config file is *not* a source: it describes the local gateway, and
sending its secret to whatever URL was typed would hand it to someone else. There only the flags
and the environment apply, in the same order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .secret import Secret
from .secret_sources import Kind, secret_from_env
from .settings import GENERATED_TOKEN_FILE, Overrides, Settings, resolve_settings

NO_CREDENTIALS_HINT = "no token or password was given: pass --token/--password or set OPENCLAW_GATEWAY_TOKEN"


@dataclass(frozen=True)
class Target:
    """A URL and the credential to present there (None: connect without one)."""

    url: str
    secret: Secret | None = None
    kind: Kind = "token"

    @property
    def token(self) -> str | None:
        return self.secret.value if self.secret is not None and self.kind == "token" else None

    @property
    def password(self) -> str | None:
        return self.secret.value if self.secret is not None and self.kind == "password" else None

    @property
    def source(self) -> str:
        """Where the credential came from, for output; never the value."""
        return self.secret.source if self.secret is not None else "none"


def local_url(settings: Settings) -> str:
    """The loopback URL of the gateway these settings describe."""
    return f"ws://127.0.0.1:{settings.port}"


def generated_token(state_dir: os.PathLike[str] | str) -> Secret | None:
    """The token a loopback gateway generated for itself, if it has run; never creates one."""
    path = Path(state_dir) / GENERATED_TOKEN_FILE
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return Secret(value, f"generated token {path}") if value else None


def _flag_secret(token: str | None, password: str | None) -> tuple[Secret, Kind] | None:
    if token:
        return Secret(token, "--token"), "token"
    if password:
        return Secret(password, "--password"), "password"
    return None


def local_secret(
    settings: Settings, *, token: str | None = None, password: str | None = None
) -> tuple[Secret | None, Kind]:
    """The credential for the local gateway: flags, else what the gateway resolved, else its
    generated token. The kind follows the gateway's auth mode ("none" sends nothing)."""
    flagged = _flag_secret(token, password)
    if flagged is not None:
        return flagged
    if settings.auth_mode == "password":
        return settings.password, "password"
    if settings.auth_mode == "token":
        return settings.token or generated_token(settings.state_dir), "token"
    return None, "token"


def remote_secret(
    env: Mapping[str, str], *, token: str | None = None, password: str | None = None
) -> tuple[Secret | None, Kind]:
    """The credential for an explicit URL: flags, else the environment; never the config file."""
    found = _flag_secret(token, password) or secret_from_env(env)
    return found if found is not None else (None, "token")


def resolve_target(
    *,
    url: str | None = None,
    token: str | None = None,
    password: str | None = None,
    config: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Target:
    """`--url/--token/--password/--config` as given (None: not given) -> where to connect, with what.

    Raises ConfigError/RefusalError (exit 78) when no URL is given and the local configuration is
    unusable: the gateway would refuse to start with it, so there is no local gateway to ask.
    """
    env = os.environ if env is None else env
    if url:
        secret, kind = remote_secret(env, token=token, password=password)
        return Target(url, secret, kind)
    settings = resolve_settings(Overrides(config=config), env, create_token=False)
    secret, kind = local_secret(settings, token=token, password=password)
    return Target(local_url(settings), secret, kind)


__all__ = [
    "NO_CREDENTIALS_HINT",
    "Target",
    "generated_token",
    "local_secret",
    "local_url",
    "remote_secret",
    "resolve_target",
]
