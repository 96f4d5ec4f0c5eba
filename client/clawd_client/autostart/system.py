"""The machine as autostart sees it: tools, commands, the Run key, the running agent.

Everything here is I/O behind a small object that tests replace (a fake `Host`, an in-memory
`RunKey`), so no test can ever reach the developer's real login session, registry or agent.
"""

from __future__ import annotations

import getpass
import importlib
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from clawd_gateway.errors import UserError

from .names import RUN_KEY, RUN_KEY_DISPLAY


class Host:
    """The real machine: tool lookup, commands, uid, and the running clawd agent."""

    def which(self, name: str) -> str | None:
        return shutil.which(name)

    def run(self, argv: Sequence[str], timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return subprocess.CompletedProcess(list(argv), 127, "", str(exc))

    def uid(self) -> int:
        getuid = getattr(os, "getuid", None)
        return int(getuid()) if getuid else 0

    def user(self) -> str:
        return getpass.getuser()

    def systemd_booted(self) -> bool:
        """sd_booted(3): systemd is the init, so a user manager runs in login sessions.

        Decided from the machine rather than from whether `systemctl --user` answers right now,
        so the same machine always gets the same kind of entry (an ssh shell without a session
        bus still gets the unit, with the commands to run in the login session).
        """
        return os.path.isdir("/run/systemd/system")

    def agent_pid(self) -> int | None:
        """The pid of the clawd agent answering on this user's socket, or None when none does."""
        from .. import api

        try:
            client = api.running()
        except (UserError, OSError):
            return None
        if client is None:
            return None
        try:
            with client:
                pid = client.request("hello")["agent"].get("pid")
        except (UserError, OSError, KeyError, ValueError):
            return None
        return pid if isinstance(pid, int) else None

    def agent_up(self, names: Sequence[str]) -> str | None:
        """Ask the running agent to bring `names` up now (without waiting for them to be healthy),
        so that its own remembered set includes them; None when done, else why not."""
        from .. import api

        try:
            client = api.running()
            if client is None:
                return "no clawd agent is running"
            with client:
                client.request("up", profiles=list(names), wait=False)
        except (UserError, OSError, ValueError) as exc:
            return str(exc)
        return None


class RunKey(Protocol):
    location: str

    def get(self, name: str) -> str | None: ...
    def set(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> bool: ...
    def names(self) -> list[str]: ...


class WinregRunKey:
    """HKCU\\...\\CurrentVersion\\Run through winreg: per user, no elevation needed."""

    location = RUN_KEY_DISPLAY

    @staticmethod
    def _winreg() -> Any:
        return importlib.import_module("winreg")

    def get(self, name: str) -> str | None:
        winreg = self._winreg()
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_READ) as key:
                value, _kind = winreg.QueryValueEx(key, name)
        except FileNotFoundError:
            return None
        return value if isinstance(value, str) else str(value)

    def set(self, name: str, value: str) -> None:
        winreg = self._winreg()
        with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
            winreg.SetValueEx(key, name, 0, winreg.REG_SZ, value)

    def delete(self, name: str) -> bool:
        winreg = self._winreg()
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
                winreg.DeleteValue(key, name)
        except FileNotFoundError:
            return False
        return True

    def names(self) -> list[str]:
        winreg = self._winreg()
        out: list[str] = []
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_READ) as key:
                i = 0
                while True:
                    try:
                        out.append(winreg.EnumValue(key, i)[0])
                    except OSError:
                        break
                    i += 1
        except FileNotFoundError:
            pass
        return out


def home_dir(env: Mapping[str, str]) -> Path:
    return Path(env["HOME"]) if env.get("HOME") else Path.home()


def xdg_config_home(env: Mapping[str, str]) -> Path:
    """$XDG_CONFIG_HOME if absolute (the spec says to ignore a relative one), else ~/.config."""
    value = env.get("XDG_CONFIG_HOME")
    return Path(value) if value and os.path.isabs(value) else home_dir(env) / ".config"


__all__ = ["Host", "RunKey", "WinregRunKey", "home_dir", "xdg_config_home"]
