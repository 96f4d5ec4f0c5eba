"""systemctl/launchctl commands: shown to the user, or run for `--enable` / `--disable`.

Building the list is a pure function of the paths; running it is the only I/O here, and it first
checks that the service manager is really there, so a scratch install (CLAWD_SERVICE_ROOT) or a
container without systemd gets a clear "run these yourself" instead of a confusing failure.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .layout import ServicePaths
from .spec import LAUNCHD_LABEL, ROOT_ENV, UNIT_NAME, Scope


@dataclass(frozen=True)
class Step:
    argv: tuple[str, ...]
    sudo: bool = False
    comment: str = ""
    runnable: bool = True  # False: advice only (loginctl enable-linger)

    def display(self) -> str:
        text = ("sudo " if self.sudo else "") + shlex.join(self.argv)
        return f"{text}   # {self.comment}" if self.comment else text


def needs_sudo(scope: Scope) -> bool:
    return scope == "system" and os.geteuid() != 0


def systemctl(sp: ServicePaths, *args: str) -> Step:
    user = ("--user",) if sp.scope == "user" else ()
    return Step(("systemctl", *user, *args), sudo=needs_sudo(sp.scope))


def _launchd_domain(sp: ServicePaths) -> str:
    return "system" if sp.scope == "system" else f"gui/{os.getuid()}"


def enable_steps(sp: ServicePaths, user: str) -> list[Step]:
    if sp.manager == "systemd":
        steps = [systemctl(sp, "daemon-reload"), systemctl(sp, "enable", "--now", UNIT_NAME)]
        if sp.scope == "user":
            steps.append(
                Step(
                    ("loginctl", "enable-linger", user),
                    comment="keep it running while logged out",
                    runnable=False,
                )
            )
        return steps
    return [Step(("launchctl", "bootstrap", _launchd_domain(sp), str(sp.unit)), sudo=needs_sudo(sp.scope))]


def disable_steps(sp: ServicePaths) -> list[Step]:
    if sp.manager == "systemd":
        return [systemctl(sp, "disable", "--now", UNIT_NAME), systemctl(sp, "daemon-reload")]
    return [
        Step(("launchctl", "bootout", f"{_launchd_domain(sp)}/{LAUNCHD_LABEL}"), sudo=needs_sudo(sp.scope))
    ]


def status_steps(sp: ServicePaths) -> list[Step]:
    if sp.manager == "systemd":
        user = ("--user",) if sp.scope == "user" else ()
        return [
            Step(("systemctl", *user, "status", UNIT_NAME)),
            Step(("journalctl", *user, "-u", UNIT_NAME, "-f")),
        ]
    return [Step(("tail", "-f", f"{sp.log_dir}/gateway.err.log"))]


def manager_unavailable(sp: ServicePaths) -> str | None:
    """None when we can drive the service manager here, else why not."""
    if sp.root is not None:
        return f"{ROOT_ENV} is set, so the files are not where the service manager looks"
    if sp.manager == "launchd":
        return None if shutil.which("launchctl") else "launchctl is not installed here"
    if not shutil.which("systemctl"):
        return "systemctl is not installed here"
    if sp.scope == "system" and not Path("/run/systemd/system").is_dir():
        return "systemd is not running here (no /run/systemd/system)"
    if sp.scope == "user":
        runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")
        if not (runtime / "systemd" / "private").exists():
            return f"no systemd user manager is running for you (no {runtime}/systemd/private)"
    return None


def run_steps(sp: ServicePaths, steps: Sequence[Step]) -> list[str]:
    """Run the runnable steps in order; stop at the first failure with its stderr."""
    why_not = manager_unavailable(sp)
    if why_not:
        raise UserError(
            f"cannot run {steps[0].argv[0]}: {why_not}",
            fix="run the commands shown yourself on the machine where the service manager runs",
        )
    ran: list[str] = []
    for step in steps:
        if not step.runnable:
            continue
        proc = subprocess.run(step.argv, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            raise UserError(
                f"`{shlex.join(step.argv)}` failed (exit {proc.returncode}): {proc.stderr.strip()}"
            )
        ran.append(shlex.join(step.argv))
    return ran


__all__ = [
    "Step",
    "disable_steps",
    "enable_steps",
    "manager_unavailable",
    "needs_sudo",
    "run_steps",
    "status_steps",
    "systemctl",
]
