"""Where the client keeps profiles (config) and live tunnel state (state)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs


def config_dir() -> Path:
    if os.environ.get("CLAWD_CONFIG_DIR"):
        return Path(os.environ["CLAWD_CONFIG_DIR"]).expanduser()
    return Path(platformdirs.user_config_dir("clawd", appauthor=False))


def client_state_dir() -> Path:
    """Live supervisor state: lock files and published status, one per profile."""
    if os.environ.get("CLAWD_STATE_DIR"):
        return Path(os.environ["CLAWD_STATE_DIR"]).expanduser() / "client"
    return Path(platformdirs.user_state_dir("clawd", appauthor=False)) / "client"


def runtime_dir() -> Path:
    """Where the agent's control socket lives (a private 0700 directory).

    CLAWD_RUNTIME_DIR wins; an isolated install (CLAWD_STATE_DIR) keeps its socket beside its
    state; otherwise the OS's per-user runtime dir ($XDG_RUNTIME_DIR on Linux, cleared at logout),
    falling back to the state dir where there is none (containers, cron)."""
    if os.environ.get("CLAWD_RUNTIME_DIR"):
        return Path(os.environ["CLAWD_RUNTIME_DIR"]).expanduser()
    if os.environ.get("CLAWD_STATE_DIR"):
        return Path(os.environ["CLAWD_STATE_DIR"]).expanduser() / "run"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / "clawd"
    if sys.platform == "darwin":
        return Path(platformdirs.user_runtime_dir("clawd", appauthor=False))
    return client_state_dir().parent / "run"


def agent_socket() -> Path:
    """The control socket; a short private path in the temp dir when the natural one is longer
    than a Unix socket address can be (about 104 bytes on macOS, 108 on Linux)."""
    path = runtime_dir() / "agent.sock"
    if len(os.fsencode(path)) < 100:
        return path
    import hashlib
    import tempfile

    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"clawd-{os.getuid()}-{digest}" / "agent.sock"


def agent_log() -> Path:
    """Where a detached agent writes its log (a foreground agent logs to stderr)."""
    return client_state_dir() / "agent.log"
