"""The Spec: everything an entry's content depends on, so that rendering is a pure function of it.

Why a separate value: the same decision (which interpreter, which command, which environment)
must give the same bytes on every run, so `enable` can tell "already up to date" from "changed"
by comparing text, and `status` can tell a stale entry by rendering what it would write now.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from clawd_gateway.errors import UserError

from .launcher import Launcher, windowless_python
from .names import MODES, Mode, platform_family

CARRIED_ENV = ("CLAWD_CONFIG_DIR", "CLAWD_STATE_DIR")  # where profiles/state live; never secrets


@dataclass(frozen=True)
class Spec:
    """One entry clawd writes: the agent's or the tray's."""

    mode: Mode
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """'agent' or 'tray': the stem of log files and the desktop marker's value."""
        return self.mode

    @property
    def title(self) -> str:
        return self.mode


def carried_env(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """CLAWD_CONFIG_DIR / CLAWD_STATE_DIR as set now: the login-started agent must find the same
    profiles and the same remembered up-set as the shell that enabled it. Nothing else is
    carried (never secrets: the agent reads them from the OS keyring)."""
    out = []
    for name in CARRIED_ENV:
        value = env.get(name)
        if value:
            out.append((name, os.path.abspath(os.path.expanduser(value))))
    return tuple(out)


def check_text(value: str, what: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UserError(f"{what} {value!r} contains a control character; no launcher can carry it")


def make_spec(
    mode: Mode,
    launcher: Launcher,
    platform: str | None = None,
    env: Mapping[str, str] | None = None,
    exists: Callable[[str], bool] = os.path.exists,
    *,
    foreground: bool | None = None,
) -> Spec:
    """The entry for `mode` on `platform`.

    `foreground` says whether a service manager runs the agent (systemd, launchd: it gets
    `agent --foreground`); by default that is every OS but Windows, whose Run key starts the
    detached form. On Windows both entries run under pythonw, so no console window opens at
    sign-in, and no environment is carried (a Run value is a bare command line).
    """
    if mode not in MODES:
        raise ValueError(f"clawd writes no {mode!r} entry (only {', '.join(MODES)})")
    family = platform_family(platform)
    if foreground is None:
        foreground = family != "win32"
    python = launcher.python
    if family == "win32":
        python = windowless_python(python, exists)
    argv = Launcher(python, launcher.kind).argv(mode, foreground=foreground)
    carried = () if family == "win32" else carried_env(os.environ if env is None else env)
    for arg in argv:
        check_text(arg, "argument")
    for name, value in carried:
        check_text(value, name)
    return Spec(mode, argv, carried)


__all__ = ["CARRIED_ENV", "Spec", "carried_env", "check_text", "make_spec"]
