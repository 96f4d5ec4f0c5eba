"""Where clawd-gateway reads config and keeps its own state.

The config file is shared with OpenClaw (and the seeds' Clawdbot layout), so users can point
both at one file; our own state lives apart so we never write into OpenClaw's state dir.
"""

from __future__ import annotations

import contextlib
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


def make_private_dirs(path: Path) -> None:
    """Create `path` and every missing parent with mode 0700.

    `Path.mkdir(parents=True, mode=0o700)` gives only the last directory that mode; the parents get
    the umask default (0755), so a first write to `<state>/run/...` left the state dir itself open to
    other users (and `clawd-gateway audit` then warned about the gateway's own doing). Directories
    that already exist keep their mode.
    """
    missing: list[Path] = []
    cur = path
    while not cur.is_dir() and cur != cur.parent:
        missing.append(cur)
        cur = cur.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)


def atomic_write(path: Path, data: str, mode: int = 0o600) -> None:
    """Write via a temp file in the same directory and rename, so readers never see half a file."""
    make_private_dirs(path.parent)
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
