"""The tray's files: its rotating log, stack dumps on SIGUSR1, and the diagnosis report.

Why files: the tray has no terminal (it starts at login), so what it did and what the doctor
found must be somewhere "Open logs" and a text editor can show.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import time
from pathlib import Path
from typing import Any

from ..paths import client_state_dir
from .notify import Notice

__all__ = ["enable_stack_dumps", "log_dir", "log_path", "setup_logging", "write_report"]

LOG_MAX_BYTES = 1_000_000
LOG_BACKUPS = 3

log = logging.getLogger("clawd.tray")


def log_dir() -> Path:
    return client_state_dir() / "logs"


def log_path() -> Path:
    return log_dir() / "tray.log"


def setup_logging(level: int = logging.INFO) -> Path:
    """Log to the file "Open logs" shows, rotated at 1 MB x 3. No secret ever reaches the tray:
    the agent reads the keyring, and its API carries none."""
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger("clawd")
    root.setLevel(level)
    for old in [h for h in root.handlers if getattr(h, "_clawd_tray", False)]:
        root.removeHandler(old)
        old.close()
    handler._clawd_tray = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if path.exists():
        os.chmod(path, 0o600)
    return path


def enable_stack_dumps(path: Path) -> None:
    """`kill -USR1 <pid>` appends every thread's stack to the log: a hung tray can be diagnosed
    without a debugger (the UI, the agent link and pystray's helpers each run in their own thread)."""
    if not hasattr(signal, "SIGUSR1"):
        return
    import faulthandler

    stream = path.open("a", encoding="utf-8")  # kept open for the life of the process
    faulthandler.register(signal.SIGUSR1, file=stream, all_threads=True)


def write_report(report: dict[str, Any]) -> tuple[Path, Notice]:
    """The agent's doctor report (`diagnose`) as a text file, and the notice that sums it up."""
    profile = str(report.get("profile") or "clawd")
    lines = [f"clawd doctor: {profile}  ({time.strftime('%Y-%m-%d %H:%M:%S')})", ""]
    broken: dict[str, Any] | None = None
    for hop in report.get("hops") or []:
        ms = f" ({hop['ms']} ms)" if hop.get("ms") is not None else ""
        lines.append(
            f"[{'ok ' if hop.get('ok') else 'FAIL'}] {hop.get('hop', '?'):<12} {hop.get('detail', '')}{ms}"
        )
        if broken is None and not hop.get("ok"):
            broken = hop
    if broken is not None:
        fix = broken.get("fix")
        lines += ["", f"first broken hop: {broken.get('hop')}"] + ([f"fix: {fix}"] if fix else [])
        title = f"clawd doctor: {profile}: {broken.get('hop')} is broken"
        message = str(broken.get("detail", "")) + (f"\nFix: {fix}" if fix else "")
    else:
        lines += ["", "all hops ok: the gateway is reachable and accepts this profile's secret"]
        title = f"clawd doctor: {profile}: all hops ok"
        message = "The gateway is reachable and accepts this profile's secret."
    path = log_dir() / f"doctor-{profile}.txt"
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError:
        log.exception("cannot write %s", path)
    for line in lines:
        log.info("doctor: %s", line)
    return path, Notice("diagnosis", title, message)
