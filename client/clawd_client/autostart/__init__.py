"""Start clawd at login: one entry that starts the agent, plus the tray's own if wanted.

The agent owns every tunnel and remembers which were up (agent.json); started at login, it brings
them back. So there is one login entry per user, not one per profile as in older versions, whose
`clawd connect NAME` entries `clawd autostart enable` migrates (migrate.py).

Layout, pure apart from I/O:
- names.py      what entries are called on each OS, and which names older versions used
- launcher.py   which interpreter an entry runs (pipx, venv, system; never a temporary one)
- spec.py       the Spec: everything an entry's content depends on
- quoting.py    command-line quoting per format (desktop Exec, systemd, Windows) and its inverse
- render.py     file contents per mechanism, pure, and their readers
- system.py     the machine: commands, the Run key, the running agent (tests substitute it)
- mechanisms.py the I/O base, XDG autostart and the Windows Run key
- launchd.py    macOS LaunchAgents (launchctl)
- systemd_user.py  Linux systemd --user units (systemctl --user)
- core.py       Autostart: enable/disable/status of one entry, legacy discovery
- migrate.py    old per-profile entries → the agent's remembered up-set
- actions.py    what the CLI and the tray's checkbox run

Entries run `<interpreter> -m clawd_client ...` with the interpreter actually running clawd now,
and never contain secrets: the agent reads them from the OS keyring.
"""

from __future__ import annotations

from .actions import disable_login, enable_login, set_tray_autostart, tray_autostart_enabled
from .core import Autostart
from .launchd import LaunchAgent
from .launcher import (
    Launcher,
    console_python,
    detect_launcher,
    install_kind,
    probe_import,
    stable_python,
    temp_reason,
    windowless_python,
)
from .mechanisms import Mechanism, RunKeyValue, XdgAutostart
from .migrate import mark_up, migrate_legacy, profile_notes
from .model import Entry, Migrated, Other, Outcome
from .names import (
    AGENT_DESKTOP,
    AGENT_UNIT,
    DESKTOP_MARKER_KEY,
    ENV_PROGRAM,
    LABEL_PREFIX,
    MARKER,
    MIGRATE_COMMAND,
    MODES,
    PACKAGE,
    RUN_KEY,
    RUN_KEY_DISPLAY,
    TRAY_DESKTOP,
    UNIT_PREFIX,
    Mode,
    check_profile_name,
    launchd_label,
    platform_family,
    run_value_name,
    systemd_unit_name,
    unit_name,
)
from .quoting import (
    desktop_exec,
    display_command,
    parse_desktop_exec,
    parse_systemd_exec,
    split_windows_command,
    systemd_exec,
)
from .render import (
    LAUNCHD_THROTTLE,
    RESTART_SEC,
    RUN_KEY_MAX,
    desktop_entry,
    desktop_entry_argv,
    launchd_plist,
    plist_argv,
    plist_text,
    run_key_command,
    systemd_unit,
    systemd_unit_argv,
)
from .spec import CARRIED_ENV, Spec, carried_env, make_spec
from .system import Host, RunKey, WinregRunKey, home_dir, xdg_config_home
from .systemd_user import SystemdUser

__all__ = [
    "AGENT_DESKTOP",
    "AGENT_UNIT",
    "CARRIED_ENV",
    "DESKTOP_MARKER_KEY",
    "ENV_PROGRAM",
    "LABEL_PREFIX",
    "LAUNCHD_THROTTLE",
    "MARKER",
    "MIGRATE_COMMAND",
    "MODES",
    "PACKAGE",
    "RESTART_SEC",
    "RUN_KEY",
    "RUN_KEY_DISPLAY",
    "RUN_KEY_MAX",
    "TRAY_DESKTOP",
    "UNIT_PREFIX",
    "Autostart",
    "Entry",
    "Host",
    "LaunchAgent",
    "Launcher",
    "Mechanism",
    "Migrated",
    "Mode",
    "Other",
    "Outcome",
    "RunKey",
    "RunKeyValue",
    "Spec",
    "SystemdUser",
    "WinregRunKey",
    "XdgAutostart",
    "carried_env",
    "check_profile_name",
    "console_python",
    "desktop_entry",
    "desktop_entry_argv",
    "desktop_exec",
    "detect_launcher",
    "disable_login",
    "display_command",
    "enable_login",
    "home_dir",
    "install_kind",
    "launchd_label",
    "launchd_plist",
    "make_spec",
    "mark_up",
    "migrate_legacy",
    "parse_desktop_exec",
    "parse_systemd_exec",
    "platform_family",
    "plist_argv",
    "plist_text",
    "probe_import",
    "profile_notes",
    "run_key_command",
    "run_value_name",
    "set_tray_autostart",
    "split_windows_command",
    "stable_python",
    "systemd_exec",
    "systemd_unit",
    "systemd_unit_argv",
    "systemd_unit_name",
    "temp_reason",
    "tray_autostart_enabled",
    "unit_name",
    "windowless_python",
    "xdg_config_home",
]
