"""Published tunnel state: the running supervisor writes it on every change, `clawd status`
and the tray read it. A file per profile, replaced atomically, with the writer's pid so a
reader can tell a live supervisor from a leftover file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from clawd_gateway.paths import atomic_write

from .paths import client_state_dir


def status_dir() -> Path:
    return client_state_dir() / "status"


def status_path(profile: str) -> Path:
    return status_dir() / f"{profile}.json"


def publish(profile: str, data: dict[str, Any]) -> None:
    atomic_write(status_path(profile), json.dumps(data, indent=2) + "\n", mode=0o600)


def clear(profile: str) -> None:
    status_path(profile).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def read_all() -> list[dict[str, Any]]:
    """Every published tunnel; entries whose supervisor died are marked, not trusted."""
    out: list[dict[str, Any]] = []
    d = status_dir()
    if not d.is_dir():
        return out
    for path in sorted(d.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        pid = data.get("pid")
        data["running"] = isinstance(pid, int) and (pid == os.getpid() or _alive(pid))
        if not data["running"]:
            data["state"] = "not running"
        out.append(data)
    return out
