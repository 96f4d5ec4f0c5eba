"""File contents for each launcher, as pure functions of a Spec, and the readers of those files.

- agent, one per user: Linux a systemd --user `clawd-agent.service` (`agent --foreground`,
  Restart=on-failure, logs in the journal), or an XDG autostart `clawd-agent.desktop` (`agent`)
  where systemd is not the init; macOS a LaunchAgent `ai.clawd.agent` (`agent --foreground`,
  KeepAlive on failure); Windows the HKCU Run value `clawd-agent` (pythonw, `agent`).
- tray, optional (the GUI, a client of the agent): XDG autostart `clawd-tray.desktop`,
  LaunchAgent `ai.clawd.tray` (Aqua session only), Run value `clawd-tray`.

Nothing here touches the machine, so every OS's output is produced and validated on any OS
(desktop-file-validate, systemd-analyze verify, plistlib) by the tests.
"""

from __future__ import annotations

import plistlib
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clawd_gateway.errors import UserError
from clawd_gateway.systemd import quote_environment

from .names import AGENT_UNIT, DESKTOP_MARKER_KEY, ENV_PROGRAM, MARKER, launchd_label
from .quoting import desktop_exec, parse_desktop_exec, parse_systemd_exec, strip_env_prefix, systemd_exec
from .spec import Spec

RESTART_SEC = 5
# A crash loop (or an agent that keeps meeting another one already running, which exits 1 like a
# crash) gives up after this many starts in this many seconds instead of retrying forever.
START_LIMIT_BURST = 5
START_LIMIT_INTERVAL_SEC = 120
LAUNCHD_THROTTLE = 30  # s between respawns; the agent heals links itself, so a respawn means a crash
RUN_KEY_MAX = 260  # "The data value for a key is a command line no longer than 260 characters."


def _header(spec: Spec) -> list[str]:
    flag = " --tray" if spec.mode == "tray" else ""
    remove = "clawd autostart disable --tray" if spec.mode == "tray" else "clawd autostart disable"
    return [
        f"# Written by `{MARKER} enable{flag}`; remove it with `{remove}`.",
        "# No secrets here: clawd reads the gateway secret from the OS keyring."
        if spec.mode == "tray"
        else "# No secrets here: the agent reads gateway secrets from the OS keyring.",
    ]


def _full_argv(spec: Spec) -> list[str]:
    """XDG autostart has no environment key, so carried variables go through env(1)."""
    if not spec.env:
        return list(spec.argv)
    return [ENV_PROGRAM, *(f"{k}={v}" for k, v in spec.env), *spec.argv]


def desktop_entry(spec: Spec) -> str:
    """XDG autostart entry (validated with desktop-file-validate in the tests).

    The tray's text is byte for byte what older versions wrote, so their entries stay current.
    The agent's is NoDisplay: it is a background starter, not something for a menu.
    """
    if spec.mode == "tray":
        body = [
            "Name=clawd",
            "GenericName=Gateway tunnel",
            "Comment=Keeps the tunnel to your OpenClaw gateway alive and shows its state",
            f"Exec={desktop_exec(_full_argv(spec))}",
            "Terminal=false",
            "StartupNotify=false",
            "Categories=Network;",
            "X-GNOME-Autostart-enabled=true",
            "X-KDE-autostart-after=panel",
        ]
    elif spec.mode == "agent":
        body = [
            "Name=clawd agent",
            "GenericName=Gateway tunnels",
            "Comment=Starts the clawd agent, which brings back the tunnels that were up",
            f"Exec={desktop_exec(_full_argv(spec))}",
            "Terminal=false",
            "StartupNotify=false",
            "NoDisplay=true",
            "X-GNOME-Autostart-enabled=true",
        ]
    else:
        raise ValueError(f"no XDG autostart entry for {spec.mode}")
    return "\n".join(
        [
            *_header(spec),
            "[Desktop Entry]",
            "Type=Application",
            "Version=1.0",
            *body,
            f"{DESKTOP_MARKER_KEY}={spec.key}",
            "",
        ]
    )


def desktop_entry_argv(text: str) -> list[str] | None:
    """The command an autostart entry runs (without an env(1) prefix), or None if unreadable."""
    in_main = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            in_main = stripped == "[Desktop Entry]"
        elif in_main and stripped.startswith("Exec="):
            try:
                argv = parse_desktop_exec(stripped[len("Exec=") :])
            except ValueError:
                return None
            return strip_env_prefix(argv)
    return None


def systemd_unit(spec: Spec) -> str:
    """systemd --user unit for the agent, the one process that owns every tunnel.

    After=network-online.target only orders: a user manager cannot pull that system target in,
    and the agent retries a missing network itself. Restart=on-failure brings a crashed agent
    back; an agent stopped on purpose (`clawd agent --stop`, SIGTERM) exits 0 and stays stopped.
    Its stderr goes to the journal: `journalctl --user -u clawd-agent.service`.
    """
    if spec.mode != "agent":
        raise ValueError("the systemd user unit is for the agent only")
    lines = [
        *_header(spec),
        "[Unit]",
        "Description=clawd agent: tunnels to OpenClaw gateways",
        "After=network-online.target",
        f"StartLimitIntervalSec={START_LIMIT_INTERVAL_SEC}",
        f"StartLimitBurst={START_LIMIT_BURST}",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={systemd_exec(spec.argv)}",
    ]
    for name, value in spec.env:
        lines.append(f"Environment={quote_environment(name, value)}")
    lines += [
        "Restart=on-failure",
        # 75: another agent already runs (started by `clawd up` or the tray): not a failure to retry.
        "RestartPreventExitStatus=75",
        f"RestartSec={RESTART_SEC}",
        f"SyslogIdentifier={AGENT_UNIT.removesuffix('.service')}",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def systemd_unit_argv(text: str) -> list[str] | None:
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
        elif section == "[Service]" and stripped.startswith("ExecStart="):
            try:
                return parse_systemd_exec(stripped[len("ExecStart=") :])
            except ValueError:
                return None
    return None


def launchd_plist(spec: Spec, log_dir: Path) -> dict[str, Any]:
    """LaunchAgent dict. The tray runs once per login in the GUI (Aqua) session, like XDG
    autostart; the agent is kept alive, respawned only after a failed exit (a `clawd agent
    --stop` exits 0 and stays stopped until the next login)."""
    log = str(log_dir / f"{spec.key}.log")
    plist: dict[str, Any] = {
        "Label": launchd_label(spec.mode),
        "ProgramArguments": list(spec.argv),
        "RunAtLoad": True,
        "StandardOutPath": log,
        "StandardErrorPath": log,
    }
    if spec.mode == "tray":
        plist["LimitLoadToSessionType"] = "Aqua"
        plist["ProcessType"] = "Interactive"
    else:
        plist["KeepAlive"] = {"SuccessfulExit": False}
        plist["ThrottleInterval"] = LAUNCHD_THROTTLE
    if spec.env:
        plist["EnvironmentVariables"] = dict(spec.env)
    return plist


def plist_text(plist: Mapping[str, Any]) -> str:
    return plistlib.dumps(dict(plist), fmt=plistlib.FMT_XML, sort_keys=True).decode("utf-8")


def plist_argv(text: str) -> list[str] | None:
    try:
        data = plistlib.loads(text.encode("utf-8"))
    except Exception:  # expat errors, bad types: "unreadable" is all status needs
        return None
    args = data.get("ProgramArguments") if isinstance(data, dict) else None
    if isinstance(args, list) and all(isinstance(a, str) for a in args):
        return list(args)
    return None


def run_key_command(spec: Spec) -> str:
    """The Run value: a command line quoted for CommandLineToArgvW / the MS C runtime."""
    command = subprocess.list2cmdline(list(spec.argv))
    if len(command) > RUN_KEY_MAX:
        raise UserError(
            f"the autostart command is {len(command)} characters; Windows runs Run-key commands of "
            f"at most {RUN_KEY_MAX}: {command}",
            fix="install clawd under a shorter path (e.g. pipx install clawd)",
        )
    return command


__all__ = [
    "LAUNCHD_THROTTLE",
    "RESTART_SEC",
    "RUN_KEY_MAX",
    "desktop_entry",
    "desktop_entry_argv",
    "launchd_plist",
    "plist_argv",
    "plist_text",
    "run_key_command",
    "systemd_unit",
    "systemd_unit_argv",
]
