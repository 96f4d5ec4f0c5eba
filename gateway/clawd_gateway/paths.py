"""Where clawd-gateway reads config and keeps its own state.

The config file is shared with OpenClaw (and the seeds' Clawdbot layout), so users can point
both at one file; our own state lives apart so we never write into OpenClaw's state dir.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import platformdirs


def home(env: Mapping[str, str]) -> Path:
    return Path(env.get("OPENCLAW_HOME") or env.get("HOME") or Path.home())


def config_candidates(env: Mapping[str, str]) -> list[Path]:
    """Implicit config locations, most specific first."""
    h = home(env)
    out: list[Path] = []
    if env.get("OPENCLAW_STATE_DIR"):
        out.append(Path(env["OPENCLAW_STATE_DIR"]) / "openclaw.json")
    out += [h / ".openclaw" / "openclaw.json", h / ".clawdbot" / "clawdbot.json"]
    return out


def explicit_config(env: Mapping[str, str]) -> tuple[Path, str] | None:
    for var in ("OPENCLAW_CONFIG_PATH", "CLAWDBOT_CONFIG_PATH"):
        if env.get(var):
            return Path(env[var]).expanduser(), f"env {var}"
    return None


def state_dir(env: Mapping[str, str]) -> Path:
    if env.get("CLAWD_STATE_DIR"):
        return Path(env["CLAWD_STATE_DIR"]).expanduser()
    return Path(platformdirs.user_state_dir("clawd", appauthor=False)) / "gateway"


def atomic_write(path: Path, data: str, mode: int = 0o600) -> None:
    """Write via a temp file in the same directory and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # POSIX; Windows relies on the per-user profile ACL
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
