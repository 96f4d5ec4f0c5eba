"""What clawd calls its login entries on each OS, and which of those names older versions used.

Kept apart from everything else because three readers share them: the renderers (a LaunchAgent's
Label must match its file name), the I/O layer (where to look) and the migration (which names
mean "an old per-profile entry"). A name is the only thing that tells our file from a stranger's
before we open it, so they are spelt once, here.
"""

from __future__ import annotations

import re
import sys
from typing import Literal

from clawd_gateway.errors import UserError

# "agent" and "tray" are what clawd writes now; "headless" is the per-profile `clawd connect NAME`
# entry of older versions, only ever read, stopped and removed (see migrate.py).
Mode = Literal["agent", "tray", "headless"]
MODES: tuple[Mode, ...] = ("agent", "tray")

PACKAGE = "clawd_client"
MARKER = "clawd autostart"  # in every file we write, so `disable` never deletes a hand-made file
DESKTOP_MARKER_KEY = "X-Clawd-Autostart"
LABEL_PREFIX = "ai.clawd"
TRAY_DESKTOP = "clawd-tray.desktop"
AGENT_DESKTOP = "clawd-agent.desktop"
AGENT_UNIT = "clawd-agent.service"
UNIT_PREFIX = "clawd-connect-"  # legacy: clawd-connect-PROFILE.service
RUN_PREFIX = "clawd-connect-"  # legacy: Run value clawd-connect-PROFILE
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
RUN_KEY_DISPLAY = "HKEY_CURRENT_USER\\" + RUN_KEY
ENV_PROGRAM = "/usr/bin/env"
MIGRATE_COMMAND = "clawd autostart enable"

_PROFILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # same rule as profiles.py

# Hand-made launchers from the seed tutorial that also hold the tunnel port: reported, never touched.
LEGACY_DARWIN = ("com.clawdbot.ssh-tunnel",)
LEGACY_LINUX = ("clawdbot-ssh-tunnel.service",)


def platform_family(platform: str | None = None) -> str:
    """'darwin', 'win32' or 'linux' (every other POSIX desktop follows XDG + systemd)."""
    platform = sys.platform if platform is None else platform
    if platform == "darwin":
        return "darwin"
    if platform == "win32":
        return "win32"
    return "linux"


def valid_profile_name(name: str) -> bool:
    return bool(_PROFILE.match(name))


def check_profile_name(profile: str) -> str:
    """Profile names became file, unit, label and registry names, so they must stay this simple."""
    if not valid_profile_name(profile):
        raise UserError(
            f"{profile!r} is not a valid profile name (letters, digits, '.', '_', '-'; up to 64)",
            fix="clawd profile list",
        )
    return profile


def _need_profile(mode: Mode, profile: str | None) -> str:
    if profile is None:
        raise ValueError(f"{mode} entries are per profile; name one")
    return check_profile_name(profile)


def unit_name(profile: str) -> str:
    """The per-profile systemd unit older versions wrote (legacy; migrated away)."""
    return f"{UNIT_PREFIX}{check_profile_name(profile)}.service"


def systemd_unit_name(mode: Mode, profile: str | None = None) -> str:
    if mode == "agent":
        return AGENT_UNIT
    if mode == "headless":
        return unit_name(_need_profile(mode, profile))
    raise ValueError("the tray has no systemd unit (it needs the graphical session: XDG autostart)")


def desktop_name(mode: Mode) -> str:
    if mode == "agent":
        return AGENT_DESKTOP
    if mode == "tray":
        return TRAY_DESKTOP
    raise ValueError("older versions wrote no per-profile XDG autostart entry")


def launchd_label(mode: Mode, profile: str | None = None) -> str:
    if mode in ("agent", "tray"):
        return f"{LABEL_PREFIX}.{mode}"
    return f"{LABEL_PREFIX}.connect.{_need_profile(mode, profile)}"


def run_value_name(mode: Mode, profile: str | None = None) -> str:
    if mode in ("agent", "tray"):
        return f"clawd-{mode}"
    return f"{RUN_PREFIX}{_need_profile(mode, profile)}"


def title(mode: Mode, profile: str | None = None) -> str:
    """How output names an entry: 'agent', 'tray', or 'headless NAME' for a legacy one."""
    return f"headless {profile}" if mode == "headless" else mode


def flag(mode: Mode) -> str:
    """The `clawd autostart enable` flags that (re)write this entry."""
    return " --tray" if mode == "tray" else ""


__all__ = [
    "AGENT_DESKTOP",
    "AGENT_UNIT",
    "DESKTOP_MARKER_KEY",
    "ENV_PROGRAM",
    "LABEL_PREFIX",
    "MARKER",
    "MIGRATE_COMMAND",
    "MODES",
    "PACKAGE",
    "RUN_KEY",
    "RUN_KEY_DISPLAY",
    "TRAY_DESKTOP",
    "UNIT_PREFIX",
    "Mode",
    "check_profile_name",
    "desktop_name",
    "launchd_label",
    "platform_family",
    "run_value_name",
    "systemd_unit_name",
    "unit_name",
    "valid_profile_name",
]
