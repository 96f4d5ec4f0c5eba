"""The service's environment file: where the gateway secret lives instead of the unit.

Why a file at all: a unit's `Environment=` shows in `systemctl show` and the unit is world
readable; systemd reads `EnvironmentFile=` as root before dropping privileges, and our launchd
wrapper reads the same file, so one 0600 file serves both. This module knows its syntax (the
subset both readers accept) and reads it; install.py writes it.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

from ..errors import ConfigError

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What a secret copied from the caller's environment may contain: systemd's env-file parser
# gives quotes, backslashes and `$` meaning, and a token never needs them.
SAFE_SECRET = re.compile(r"[A-Za-z0-9._~+/=:@,-]{16,}")


def parse_env_file(text: str) -> dict[str, str]:
    """The KEY=VALUE subset that systemd's EnvironmentFile= and our launchd wrapper both read."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if not _ENV_NAME.fullmatch(key):
            continue
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[key] = value
    return out


def env_file_text(var: str | None, value: str | None, note: str) -> str:
    """A fresh env file: comments that say what it is for, and the secret if there is one."""
    lines = [
        "# clawd-gateway service environment, read by the service manager before the gateway starts.",
        "# Keep it mode 0600: the gateway secret lives here, never in the unit or on the command line.",
        "# Set OPENCLAW_GATEWAY_TOKEN or OPENCLAW_GATEWAY_PASSWORD; ${VAR} references in the config",
        "# file can use any other variable set here.",
        f"# {note}",
    ]
    if var and value:
        lines.append(f"{var}={value}")
    return "\n".join(lines) + "\n"


def env_file_vars(path: Path) -> dict[str, str]:
    """The file's variables, or none when it is missing or unreadable (planning, not launching)."""
    try:
        return parse_env_file(path.read_text(encoding="utf-8"))
    except OSError:
        return {}


def load_env_file_strict(path: Path) -> dict[str, str]:
    """Read the secret file, refusing one that others can read (as ssh does for private keys)."""
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the environment file: {exc.strerror}", file=path) from None
    if st.st_mode & 0o077:
        raise ConfigError(
            f"the environment file is readable by others (mode {stat.S_IMODE(st.st_mode):04o})",
            file=path,
            fix=f"chmod 600 {path}",
        )
    return parse_env_file(text)


__all__ = ["SAFE_SECRET", "env_file_text", "env_file_vars", "load_env_file_strict", "parse_env_file"]
