"""Where the client keeps profiles (config) and live tunnel state (state)."""

from __future__ import annotations

import os
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
