"""Start clawd at login: the tray app, or a headless `clawd connect PROFILE` supervisor.

One mechanism per mode and OS, because mixing launchers for the same tunnel caused duplicate
processes and port races in peers (tailscale#17656, openclaw#67544):

| OS      | --tray                                | --headless PROFILE                                 |
|---------|---------------------------------------|----------------------------------------------------|
| macOS   | LaunchAgent `ai.clawd.tray`           | LaunchAgent `ai.clawd.connect.PROFILE` (KeepAlive) |
| Linux   | XDG autostart `clawd-tray.desktop`    | systemd --user `clawd-connect-PROFILE.service`     |
| Windows | HKCU Run value `clawd-tray` (pythonw) | HKCU Run value `clawd-connect-PROFILE`             |

The layout is deliberately two-layered. Pure functions turn a small `Spec` (mode, profile, argv,
carried environment) into file contents (desktop entry text, unit text, plist dict, Run-key
command line) and parse those back, so every OS's output is tested on any OS. A thin `Autostart`
layer writes and removes them and calls `launchctl` / `systemctl --user` through a `Host` object
that tests replace, so a test can never touch the developer's real login session.

Entries run `<interpreter> -m clawd_client ...` with the interpreter actually running clawd now
(a venv's or pipx's own `bin/python`, never its symlink target, which lacks the venv), so they
keep working as long as that install exists, and `status` flags them stale once it does not.
Secrets never go into any entry: the tunnel reads the OS keyring at start.
"""

from __future__ import annotations

import getpass
import importlib
import itertools
import os
import plistlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from clawd_gateway import systemd
from clawd_gateway.errors import UserError
from clawd_gateway.paths import atomic_write

Mode = Literal["tray", "headless"]
MODES: tuple[Mode, ...] = ("tray", "headless")

PACKAGE = "clawd_client"
MARKER = "clawd autostart"  # in every file we write, so `disable` never deletes a hand-made file
DESKTOP_MARKER_KEY = "X-Clawd-Autostart"
LABEL_PREFIX = "ai.clawd"
TRAY_DESKTOP = "clawd-tray.desktop"
UNIT_PREFIX = "clawd-connect-"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
RUN_KEY_DISPLAY = "HKEY_CURRENT_USER\\" + RUN_KEY
RUN_KEY_MAX = 260  # "The data value for a key is a command line no longer than 260 characters."
RESTART_SEC = 5
LAUNCHD_THROTTLE = 30  # s between respawns; the engine heals links itself, so a respawn means a crash
NO_RESTART_EXIT_CODES = (4, 78)  # needs the user / config error: retrying only hammers SSH auth
CARRIED_ENV = ("CLAWD_CONFIG_DIR", "CLAWD_STATE_DIR")  # where profiles/state live; never secrets
ENV_PROGRAM = "/usr/bin/env"
_PROFILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # same rule as profiles.py
_BUILD_DIR = re.compile(r"^(pip-build-env-|pip-req-build-|pip-install-|pip-ephem-wheel-cache-|build-env-)")

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


def check_profile_name(profile: str) -> str:
    """Profile names become file, unit, label and registry names, so they must stay this simple."""
    if not _PROFILE.match(profile):
        raise UserError(
            f"{profile!r} is not a valid profile name (letters, digits, '.', '_', '-'; up to 64)",
            fix="clawd profile list",
        )
    return profile


# --- which interpreter ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Launcher:
    """The interpreter an entry runs `-m clawd_client` with, and how it was installed."""

    python: str
    kind: str  # "pipx", "venv" or "system"

    def argv(self, mode: Mode, profile: str | None = None) -> tuple[str, ...]:
        if mode == "tray":
            return (self.python, "-m", PACKAGE, "tray")
        if profile is None:
            raise ValueError("headless mode needs a profile")
        return (self.python, "-m", PACKAGE, "connect", check_profile_name(profile))


def _temp_roots() -> list[str]:
    roots = {tempfile.gettempdir(), "/tmp", "/var/tmp", "/private/tmp"}  # noqa: S108 - checked, not used
    roots |= {os.path.realpath(r) for r in list(roots)}
    return sorted(roots)


def temp_reason(path: str, temp_roots: Sequence[str] | None = None) -> str | None:
    """Why `path` is unfit for an entry that must work at every future login, or None.

    A pip build-isolation env or anything under the temp dir is gone after the next reboot, and an
    entry pointing there would fail silently at login.
    """
    if temp_roots is None and os.environ.get("CLAWD_AUTOSTART_ALLOW_TEMP") == "1":
        temp_roots = []  # test suites run from a checkout that may well live under /tmp
    roots = _temp_roots() if temp_roots is None else list(temp_roots)
    for candidate in {path, os.path.realpath(path)}:
        parts = Path(candidate).parts
        if any(_BUILD_DIR.match(p) for p in parts):
            return f"{candidate} is inside a temporary build environment"
        for root in roots:
            if root and (candidate == root or candidate.startswith(root.rstrip(os.sep) + os.sep)):
                return f"{candidate} is under the temporary directory {root}"
    return None


def install_kind(path: str, prefix: str, base_prefix: str, env: Mapping[str, str]) -> str:
    """pipx, venv or system: said in `status` so the user knows which install an entry depends on."""
    parts = Path(path).parts
    pipx_home = env.get("PIPX_HOME")
    if pipx_home and os.path.abspath(path).startswith(os.path.abspath(pipx_home) + os.sep):
        return "pipx"
    if any(a == "pipx" and b == "venvs" for a, b in itertools.pairwise(parts)):
        return "pipx"
    if prefix != base_prefix:
        return "venv"
    return "system"


def stable_python(path: str) -> str:
    """A path to the same interpreter that survives upgrades, if there is one; else `path`.

    Homebrew runs Python out of a versioned `Cellar/<formula>/<version>/` directory that `brew
    upgrade` deletes; its `opt/<formula>/` alias follows upgrades. Symlinks are otherwise kept as
    given: resolving a venv's `bin/python` would escape the venv and lose clawd's packages.
    """
    parts = Path(path).parts
    if "Cellar" in parts:
        i = parts.index("Cellar")
        if len(parts) > i + 3:
            alias = Path(*parts[:i], "opt", parts[i + 1], *parts[i + 3 :])
            try:
                if os.path.samefile(alias, path):
                    return str(alias)
            except OSError:
                pass
    return path


def detect_launcher(
    executable: str | None = None,
    *,
    prefix: str | None = None,
    base_prefix: str | None = None,
    env: Mapping[str, str] | None = None,
    temp_roots: Sequence[str] | None = None,
) -> Launcher:
    """The interpreter running clawd now, as an entry should record it (not yet checked to work)."""
    exe = sys.executable if executable is None else executable
    if not exe:
        raise UserError(
            "cannot tell which Python runs clawd (sys.executable is empty, e.g. an embedded interpreter)",
            fix="run it as `python -m clawd_client autostart ...` with the Python clawd is installed in",
        )
    path = stable_python(console_python(os.path.abspath(exe)))
    kind = install_kind(
        path,
        sys.prefix if prefix is None else prefix,
        sys.base_prefix if base_prefix is None else base_prefix,
        os.environ if env is None else env,
    )
    why = temp_reason(path, temp_roots)
    if why:
        raise UserError(
            f"refusing to write an autostart entry for a temporary interpreter: {why}",
            fix="install clawd for good first (pipx install clawd, or pip install into a lasting venv)",
        )
    return Launcher(path, kind)


def windowless_python(python: str, exists: Callable[[str], bool] = os.path.exists) -> str:
    """pythonw.exe next to python.exe, so the tray starts without a console window, when present."""
    head, tail = _win_split(python)
    low = tail.lower()
    if low.startswith("python") and low.endswith(".exe") and not low.startswith("pythonw"):
        sep = "\\" if "\\" in python else "/"
        candidate = (head + sep if head else "") + "pythonw" + tail[len("python") :]
        if exists(candidate):
            return candidate
    return python


def console_python(python: str, exists: Callable[[str], bool] = os.path.exists) -> str:
    """python.exe for a pythonw.exe (the tray runs under pythonw, which has no stdout for the import
    probe); make_spec picks pythonw again where the tray wants it."""
    head, tail = _win_split(python)
    if tail.lower().startswith("pythonw") and tail.lower().endswith(".exe"):
        sep = "\\" if "\\" in python else "/"
        candidate = (head + sep if head else "") + "python" + tail[len("pythonw") :]
        if exists(candidate):
            return candidate
    return python


def _win_split(path: str) -> tuple[str, str]:
    i = max(path.rfind("\\"), path.rfind("/"))
    return (path[:i], path[i + 1 :]) if i >= 0 else ("", path)


# --- the spec ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """Everything an entry's content depends on; the generators below are pure functions of it."""

    mode: Mode
    profile: str | None
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """'tray' or 'connect-PROFILE': the stem of log files, value names and unit names."""
        return "tray" if self.mode == "tray" else f"connect-{self.profile}"

    @property
    def flag(self) -> str:
        return "--tray" if self.mode == "tray" else f"--headless {self.profile}"

    @property
    def title(self) -> str:
        return "tray" if self.mode == "tray" else f"headless {self.profile}"


def carried_env(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """CLAWD_CONFIG_DIR / CLAWD_STATE_DIR as set now: the login-started process must find the same
    profiles and publish status where `clawd status` looks. Nothing else is carried (never secrets).
    """
    out = []
    for name in CARRIED_ENV:
        value = env.get(name)
        if value:
            out.append((name, os.path.abspath(os.path.expanduser(value))))
    return tuple(out)


def _check_text(value: str, what: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UserError(f"{what} {value!r} contains a control character; no launcher can carry it")


def make_spec(
    mode: Mode,
    profile: str | None,
    launcher: Launcher,
    platform: str | None = None,
    env: Mapping[str, str] | None = None,
    exists: Callable[[str], bool] = os.path.exists,
) -> Spec:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    if mode == "tray":
        profile = None
    elif profile is None:
        raise UserError("--headless needs a profile name", fix="clawd autostart enable --headless PROFILE")
    python = launcher.python
    family = platform_family(platform)
    if family == "win32" and mode == "tray":
        python = windowless_python(python, exists)
    argv = Launcher(python, launcher.kind).argv(mode, profile)
    carried = carried_env(os.environ if env is None else env)
    if family == "win32":
        carried = ()  # a Run value is a bare command line; the caller says so (see notes_for)
    for arg in argv:
        _check_text(arg, "argument")
    for name, value in carried:
        _check_text(value, name)
    return Spec(mode, profile, argv, carried)


# --- pure generators and their parsers -------------------------------------------------------------

_DESKTOP_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")


def _desktop_quote(arg: str) -> str:
    """Desktop Entry spec "The Exec key": quote reserved characters, then escape `%` as `%%`."""
    if arg and not any(c in _DESKTOP_RESERVED for c in arg):
        quoted = arg
    else:
        quoted = '"' + re.sub(r'(["`$\\])', r"\\\1", arg) + '"'
    return quoted.replace("%", "%%")


def desktop_exec(argv: Sequence[str]) -> str:
    """The Exec value as it appears in the file: the string-level escape doubles each backslash."""
    return " ".join(_desktop_quote(a) for a in argv).replace("\\", "\\\\")


def parse_desktop_exec(value: str) -> list[str]:
    """Inverse of desktop_exec: the string-level escapes first, then the Exec quoting rules
    (inside double quotes, a backslash escapes `"`, `` ` ``, `$` and `\\`); `%%` is `%`."""
    text = re.sub(r"\\(.)", lambda m: {"s": " ", "n": "\n", "t": "\t", "r": "\r"}.get(m[1], m[1]), value)
    args: list[str] = []
    cur: list[str] = []
    in_arg = quoted = False
    i = 0
    while i < len(text):
        c = text[i]
        if quoted and c == "\\" and i + 1 < len(text) and text[i + 1] in '"`$\\':
            cur.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            quoted, in_arg = not quoted, True
        elif c in " \t" and not quoted:
            if in_arg:
                args.append("".join(cur))
                cur, in_arg = [], False
        else:
            cur.append(c)
            in_arg = True
        i += 1
    if quoted:
        raise ValueError("unterminated quote in Exec")
    if in_arg:
        args.append("".join(cur))
    return [a.replace("%%", "%") for a in args]


def _full_argv(spec: Spec) -> list[str]:
    """XDG autostart has no environment key, so carried variables go through env(1)."""
    if not spec.env:
        return list(spec.argv)
    return [ENV_PROGRAM, *(f"{k}={v}" for k, v in spec.env), *spec.argv]


def desktop_entry(spec: Spec) -> str:
    """XDG autostart entry for the tray (validated with desktop-file-validate in the tests)."""
    if spec.mode != "tray":
        raise ValueError("the XDG autostart entry is for the tray only")
    return "\n".join(
        [
            f"# Written by `{MARKER} enable --tray`; remove it with `clawd autostart disable --tray`.",
            "# No secrets here: clawd reads the gateway secret from the OS keyring.",
            "[Desktop Entry]",
            "Type=Application",
            "Version=1.0",
            "Name=clawd",
            "GenericName=Gateway tunnel",
            "Comment=Keeps the tunnel to your OpenClaw gateway alive and shows its state",
            f"Exec={desktop_exec(_full_argv(spec))}",
            "Terminal=false",
            "StartupNotify=false",
            "Categories=Network;",
            "X-GNOME-Autostart-enabled=true",
            "X-KDE-autostart-after=panel",
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
            return _strip_env_prefix(argv)
    return None


def _strip_env_prefix(argv: list[str]) -> list[str]:
    if argv and argv[0] == ENV_PROGRAM:
        rest = argv[1:]
        while rest and "=" in rest[0] and not rest[0].startswith("/"):
            rest = rest[1:]
        return rest
    return argv


def systemd_exec(argv: Sequence[str]) -> str:
    """An ExecStart value: clawd_gateway.systemd's quoting, shared with the gateway's own unit."""
    return systemd.exec_line(argv)


def parse_systemd_exec(value: str) -> list[str]:
    """Inverse of systemd_exec; also drops an `env VAR=...` prefix a hand-written unit may carry."""
    return _strip_env_prefix(systemd.parse_exec(value))


def unit_name(profile: str) -> str:
    return f"{UNIT_PREFIX}{check_profile_name(profile)}.service"


def systemd_unit(spec: Spec) -> str:
    """systemd --user unit for the headless supervisor (the seed's clawdbot-ssh-tunnel.service).

    After=network-online.target only orders: a user manager cannot pull that system target in,
    and the supervisor retries a missing network itself. Exit codes 4 (needs the user: auth
    refused, host key changed) and 78 (bad config) are not restarted: retrying cannot fix them.
    """
    if spec.mode != "headless" or spec.profile is None:
        raise ValueError("the systemd user unit is for headless mode only")
    lines = [
        f"# Written by `{MARKER} enable --headless {spec.profile}`; "
        f"remove it with `clawd autostart disable --headless {spec.profile}`.",
        "# No secrets here: clawd connect reads the gateway secret from the OS keyring.",
        "[Unit]",
        f"Description=clawd tunnel to the OpenClaw gateway (profile {spec.profile})",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={systemd_exec(spec.argv)}",
    ]
    for name, value in spec.env:
        lines.append(f"Environment={systemd.quote_environment(name, value)}")
    lines += [
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        f"RestartPreventExitStatus={' '.join(str(c) for c in NO_RESTART_EXIT_CODES)}",
        f"SyslogIdentifier={UNIT_PREFIX}{spec.profile}",
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


def launchd_label(mode: Mode, profile: str | None = None) -> str:
    if mode == "tray":
        return f"{LABEL_PREFIX}.tray"
    if profile is None:
        raise ValueError("headless mode needs a profile")
    return f"{LABEL_PREFIX}.connect.{check_profile_name(profile)}"


def launchd_plist(spec: Spec, log_dir: Path) -> dict[str, Any]:
    """LaunchAgent dict. The tray runs once per login in the GUI (Aqua) session, like XDG
    autostart; the headless supervisor is kept alive, respawned only after a failed exit."""
    log = str(log_dir / f"{spec.key}.log")
    plist: dict[str, Any] = {
        "Label": launchd_label(spec.mode, spec.profile),
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


def run_value_name(mode: Mode, profile: str | None = None) -> str:
    if mode == "tray":
        return "clawd-tray"
    if profile is None:
        raise ValueError("headless mode needs a profile")
    return f"clawd-connect-{check_profile_name(profile)}"


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


def split_windows_command(command: str) -> list[str]:
    """Inverse of subprocess.list2cmdline (the MS C runtime's argv rules)."""
    args: list[str] = []
    cur: list[str] = []
    in_arg = quoted = False
    i, n = 0, len(command)
    while i < n:
        c = command[i]
        if c == "\\":
            j = i
            while j < n and command[j] == "\\":
                j += 1
            count = j - i
            if j < n and command[j] == '"':
                cur.append("\\" * (count // 2))
                if count % 2:
                    cur.append('"')
                    j += 1
                i, in_arg = j, True
                continue
            cur.append("\\" * count)
            i, in_arg = j, True
            continue
        if c == '"':
            quoted, in_arg = not quoted, True
        elif c in " \t" and not quoted:
            if in_arg:
                args.append("".join(cur))
                cur, in_arg = [], False
        else:
            cur.append(c)
            in_arg = True
        i += 1
    if in_arg:
        args.append("".join(cur))
    return args


# --- the thin layer: host commands, registry, files ---------------------------------------------------


class Host:
    """The real machine: tool lookup, commands, uid. Tests substitute a fake."""

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


@dataclass
class Outcome:
    """What enable/disable did: lines to print, commands left for the user, and success."""

    ok: bool = True
    changed: bool = False
    lines: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)

    def suggest(self, commands: Sequence[str]) -> None:
        """Commands left for the user: kept as data (todo) and shown indented where they belong."""
        self.todo += commands
        self.lines += [f"  {c}" for c in commands]


@dataclass
class Entry:
    """One autostart entry as `status` sees it."""

    mode: Mode
    profile: str | None
    mechanism: str
    location: str
    state: str  # "current", "stale" or "foreign" (exists but not written by clawd)
    reason: str | None = None
    command: list[str] | None = None
    loaded: bool | None = None  # launchd/systemd say it is loaded/active; None: cannot tell

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "profile": self.profile,
            "mechanism": self.mechanism,
            "location": self.location,
            "state": self.state,
            "reason": self.reason,
            "command": self.command,
            "loaded": self.loaded,
        }


@dataclass
class Other:
    """A launcher clawd did not write that starts a tunnel on the same port (seed tutorial)."""

    location: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"location": self.location, "fix": self.fix}


class Mechanism:
    """How one OS keeps one mode's entry: where it lives, its content, load/unload."""

    name = ""

    def __init__(self, owner: Autostart) -> None:
        self.owner = owner
        self.host = owner.host
        self.env = owner.env

    # storage: files by default
    def path(self, mode: Mode, profile: str | None) -> Path:
        raise NotImplementedError

    def location(self, mode: Mode, profile: str | None) -> str:
        return str(self.path(mode, profile))

    def read(self, mode: Mode, profile: str | None) -> str | None:
        try:
            return self.path(mode, profile).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            return f"<unreadable: {exc}>"

    def write(self, mode: Mode, profile: str | None, text: str) -> None:
        atomic_write(self.path(mode, profile), text, mode=0o644)

    def remove(self, mode: Mode, profile: str | None) -> None:
        self.path(mode, profile).unlink(missing_ok=True)

    def profiles(self) -> list[str]:
        return []

    # content
    def render(self, spec: Spec) -> str:
        raise NotImplementedError

    def argv_of(self, text: str) -> list[str] | None:
        raise NotImplementedError

    def ours(self, text: str) -> bool:
        return MARKER in text

    # load/unload
    def after_write(self, spec: Spec, changed: bool, out: Outcome) -> None:
        pass

    def before_remove(self, mode: Mode, profile: str | None, out: Outcome) -> None:
        pass

    def after_remove(self, mode: Mode, profile: str | None, out: Outcome) -> None:
        pass

    def loaded(self, mode: Mode, profile: str | None) -> bool | None:
        return None


class LaunchAgent(Mechanism):
    name = "launchagent"

    def agents_dir(self) -> Path:
        return home_dir(self.env) / "Library" / "LaunchAgents"

    def log_dir(self) -> Path:
        return home_dir(self.env) / "Library" / "Logs" / "clawd"

    def path(self, mode: Mode, profile: str | None) -> Path:
        return self.agents_dir() / f"{launchd_label(mode, profile)}.plist"

    def profiles(self) -> list[str]:
        prefix = f"{LABEL_PREFIX}.connect."
        return sorted(
            p.name[len(prefix) : -len(".plist")] for p in self.agents_dir().glob(f"{prefix}*.plist")
        )

    def render(self, spec: Spec) -> str:
        return plist_text(launchd_plist(spec, self.log_dir()))

    def argv_of(self, text: str) -> list[str] | None:
        return plist_argv(text)

    def ours(self, text: str) -> bool:
        argv = plist_argv(text)
        return bool(argv) and PACKAGE in (argv or [])

    def _launchctl(self) -> str | None:
        return self.host.which("launchctl")

    def _target(self, mode: Mode, profile: str | None) -> str:
        return f"gui/{self.host.uid()}/{launchd_label(mode, profile)}"

    def loaded(self, mode: Mode, profile: str | None) -> bool | None:
        tool = self._launchctl()
        if not tool:
            return None
        return self.host.run([tool, "print", self._target(mode, profile)]).returncode == 0

    def write(self, mode: Mode, profile: str | None, text: str) -> None:
        self.log_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
        super().write(mode, profile, text)

    def after_write(self, spec: Spec, changed: bool, out: Outcome) -> None:
        path = self.path(spec.mode, spec.profile)
        domain = f"gui/{self.host.uid()}"
        target = self._target(spec.mode, spec.profile)
        tool = self._launchctl()
        if not tool:
            out.lines.append("launchctl not found (not macOS?): the agent loads at the next login")
            out.suggest([f"launchctl bootstrap gui/$(id -u) {shlex.quote(str(path))}"])
            return
        loaded = self.host.run([tool, "print", target]).returncode == 0
        if loaded and not changed:
            out.lines.append(f"already loaded in launchd ({target})")
            return
        if loaded:  # reload so launchd runs the new command line
            self.host.run([tool, "bootout", target])
        self.host.run([tool, "enable", target])  # undo an earlier `launchctl disable`, if any
        res = self.host.run([tool, "bootstrap", domain, str(path)])
        if res.returncode != 0:
            out.ok = False
            out.lines.append(
                f"launchctl bootstrap {domain} {path} failed (exit {res.returncode}): "
                f"{(res.stderr or res.stdout).strip()}"
            )
            return
        out.changed = True
        out.lines.append(f"loaded into launchd as {target}; logs in {self.log_dir()}")

    def before_remove(self, mode: Mode, profile: str | None, out: Outcome) -> None:
        tool = self._launchctl()
        target = self._target(mode, profile)
        if not tool:
            out.lines.append("launchctl not found (not macOS?): removed the file only")
            return
        if self.host.run([tool, "print", target]).returncode != 0:
            return
        res = self.host.run([tool, "bootout", target])
        if res.returncode == 0:
            out.lines.append(f"unloaded {target} from launchd")
        else:
            out.ok = False
            out.lines.append(
                f"launchctl bootout {target} failed (exit {res.returncode}): "
                f"{(res.stderr or res.stdout).strip()}"
            )

    def after_remove(self, mode: Mode, profile: str | None, out: Outcome) -> None:
        logs = self.log_dir()
        try:
            logs.rmdir()  # only if empty: logs are the user's to keep
        except OSError:
            if logs.is_dir():
                out.lines.append(f"logs kept in {logs}")


class XdgAutostart(Mechanism):
    name = "xdg-autostart"

    def path(self, mode: Mode, profile: str | None) -> Path:
        return xdg_config_home(self.env) / "autostart" / TRAY_DESKTOP

    def render(self, spec: Spec) -> str:
        return desktop_entry(spec)

    def argv_of(self, text: str) -> list[str] | None:
        return desktop_entry_argv(text)

    def ours(self, text: str) -> bool:
        return f"\n{DESKTOP_MARKER_KEY}=" in text

    def after_write(self, spec: Spec, changed: bool, out: Outcome) -> None:
        if changed:
            out.lines.append("your desktop starts it at the next login; to start it now: clawd tray")


class SystemdUser(Mechanism):
    name = "systemd-user"

    def unit_dir(self) -> Path:
        return xdg_config_home(self.env) / "systemd" / "user"

    def path(self, mode: Mode, profile: str | None) -> Path:
        assert profile is not None
        return self.unit_dir() / unit_name(profile)

    def profiles(self) -> list[str]:
        return sorted(
            p.name[len(UNIT_PREFIX) : -len(".service")]
            for p in self.unit_dir().glob(f"{UNIT_PREFIX}*.service")
            if "@" not in p.name
        )

    def render(self, spec: Spec) -> str:
        return systemd_unit(spec)

    def argv_of(self, text: str) -> list[str] | None:
        return systemd_unit_argv(text)

    def manager(self) -> tuple[str | None, str]:
        """systemctl, if a user manager answers AND reads units from our directory; else why not.

        The second check matters whenever XDG_CONFIG_HOME differs between this shell and the
        manager (tests, `sudo -u`, a one-off override): enabling there would act on other files.
        """
        tool = self.host.which("systemctl")
        if not tool:
            return None, "systemctl not found"
        res = self.host.run([tool, "--user", "show-environment"], timeout=5)
        if res.returncode != 0:
            why = (res.stderr or res.stdout).strip().splitlines()
            return None, "no systemd user manager answers" + (f" ({why[0]})" if why else "")
        manager_env = dict(
            line.split("=", 1) for line in res.stdout.splitlines() if "=" in line and not line[0].isspace()
        )
        theirs = xdg_config_home(manager_env) / "systemd" / "user"
        if os.path.abspath(theirs) != os.path.abspath(self.unit_dir()):
            return None, f"the user manager reads units from {theirs}, not {self.unit_dir()}"
        return tool, ""

    def loaded(self, mode: Mode, profile: str | None) -> bool | None:
        tool, _ = self.manager()
        if not tool or profile is None:
            return None
        return self.host.run([tool, "--user", "is-active", unit_name(profile)], timeout=5).returncode == 0

    def after_write(self, spec: Spec, changed: bool, out: Outcome) -> None:
        assert spec.profile is not None
        unit = unit_name(spec.profile)
        tool, why = self.manager()
        commands = ["systemctl --user daemon-reload", f"systemctl --user enable --now {unit}"]
        if tool is None:
            out.lines.append(f"did not start it: {why}; run these in your login session:")
            out.suggest(commands)
        else:
            steps = [[tool, "--user", "daemon-reload"]] if changed else []
            steps.append([tool, "--user", "enable", "--now", unit])
            if changed:  # a unit that was already running keeps its old command line until restarted
                steps.append([tool, "--user", "try-restart", unit])
            for step in steps:
                res = self.host.run(step)
                if res.returncode != 0:
                    out.ok = False
                    out.lines.append(
                        f"{' '.join(step[1:])} failed (exit {res.returncode}): "
                        f"{(res.stderr or res.stdout).strip()}"
                    )
                    return
            out.lines.append(f"enabled and started {unit}; logs: journalctl --user -u {unit}")
        try:
            user = self.host.user()
        except (OSError, KeyError):
            user = "$USER"
        if not Path("/var/lib/systemd/linger", user).exists():
            out.lines.append(
                f"to run it from boot, before you log in: loginctl enable-linger {user} "
                "(the keyring holding the gateway secret must then be unlocked without a login)"
            )

    def _wants_link(self, profile: str) -> Path:
        return self.unit_dir() / "default.target.wants" / unit_name(profile)

    def before_remove(self, mode: Mode, profile: str | None, out: Outcome) -> None:
        assert profile is not None
        unit = unit_name(profile)
        tool, why = self.manager()
        if tool is None:
            # Do what `systemctl disable` would: drop the WantedBy symlink if it points at our file.
            link = self._wants_link(profile)
            if link.is_symlink() and Path(os.path.abspath(link.parent / os.readlink(link))) == self.path(
                mode, profile
            ):
                link.unlink()
                out.lines.append(f"removed {link}")
            out.lines.append(f"did not stop it: {why}; if it is running, in your login session run:")
            out.suggest([f"systemctl --user stop {unit}", "systemctl --user daemon-reload"])
            return
        res = self.host.run([tool, "--user", "disable", "--now", unit])
        if res.returncode != 0:
            out.ok = False
            out.lines.append(f"systemctl --user disable --now {unit} failed: {(res.stderr or '').strip()}")
        else:
            out.lines.append(f"stopped and disabled {unit}")

    def after_remove(self, mode: Mode, profile: str | None, out: Outcome) -> None:
        tool, _ = self.manager()
        if tool is not None:
            self.host.run([tool, "--user", "daemon-reload"])


class RunKeyValue(Mechanism):
    name = "run-key"

    def __init__(self, owner: Autostart) -> None:
        super().__init__(owner)
        self.key: RunKey = owner.run_key if owner.run_key is not None else WinregRunKey()

    def location(self, mode: Mode, profile: str | None) -> str:
        return f"{self.key.location}\\{run_value_name(mode, profile)}"

    def read(self, mode: Mode, profile: str | None) -> str | None:
        return self.key.get(run_value_name(mode, profile))

    def write(self, mode: Mode, profile: str | None, text: str) -> None:
        self.key.set(run_value_name(mode, profile), text)

    def remove(self, mode: Mode, profile: str | None) -> None:
        self.key.delete(run_value_name(mode, profile))

    def profiles(self) -> list[str]:
        prefix = "clawd-connect-"
        return sorted(n[len(prefix) :] for n in self.key.names() if n.startswith(prefix))

    def render(self, spec: Spec) -> str:
        return run_key_command(spec)

    def argv_of(self, text: str) -> list[str] | None:
        return split_windows_command(text)

    def ours(self, text: str) -> bool:
        return PACKAGE in text

    def after_write(self, spec: Spec, changed: bool, out: Outcome) -> None:
        if changed:
            out.lines.append("Windows runs it at your next sign-in; to start it now, run the command above")


class Autostart:
    """enable / disable / status for one platform, environment and host."""

    def __init__(
        self,
        platform: str | None = None,
        env: Mapping[str, str] | None = None,
        host: Host | None = None,
        run_key: RunKey | None = None,
    ) -> None:
        self.platform = sys.platform if platform is None else platform
        self.family = platform_family(self.platform)
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.host = host or Host()
        self.run_key = run_key

    def mechanism(self, mode: Mode) -> Mechanism:
        if self.family == "darwin":
            return LaunchAgent(self)
        if self.family == "win32":
            return RunKeyValue(self)
        return XdgAutostart(self) if mode == "tray" else SystemdUser(self)

    def spec(self, mode: Mode, profile: str | None, launcher: Launcher) -> Spec:
        return make_spec(mode, profile, launcher, self.platform, self.env)

    def render(self, spec: Spec) -> tuple[str, str]:
        """(location, content) for `enable --print`."""
        mech = self.mechanism(spec.mode)
        return mech.location(spec.mode, spec.profile), mech.render(spec)

    def notes(self, spec: Spec) -> list[str]:
        """Caveats worth saying at enable time."""
        notes = []
        if self.family == "win32":
            for name in CARRIED_ENV:
                if self.env.get(name):
                    notes.append(
                        f"{name} is set in this shell, but a Run-key entry cannot carry it: "
                        f'make it a user variable (setx {name} "{self.env[name]}")'
                    )
        other: Mode = "headless" if spec.mode == "tray" else "tray"
        mech = self.mechanism(other)
        present = mech.profiles() if other == "headless" else ([None] if mech.read("tray", None) else [])
        if present:
            if other == "tray":
                notes.append(
                    f"the tray autostart is enabled too: if the tray also connects {spec.profile}, two "
                    "supervisors will contend for that profile and its local port; "
                    "keep one launcher per profile"
                )
            else:
                names = ", ".join(str(p) for p in present)
                notes.append(
                    f"headless autostart is enabled too ({names}): if the tray connects one of those "
                    "profiles, two supervisors will contend for it; keep one launcher per profile"
                )
        return notes

    def enable(self, spec: Spec) -> Outcome:
        mech = self.mechanism(spec.mode)
        where = mech.location(spec.mode, spec.profile)
        text = mech.render(spec)
        old = mech.read(spec.mode, spec.profile)
        out = Outcome()
        if old is not None and not mech.ours(old):
            raise UserError(
                f"{where} exists and was not written by clawd; leaving it alone",
                fix=f"move it away, then: clawd autostart enable {spec.flag}",
            )
        changed = old != text
        if not changed:
            out.lines.append(f"{spec.title} autostart already enabled: {where} is up to date")
        else:
            before = mech.argv_of(old) if old is not None else None
            mech.write(spec.mode, spec.profile, text)
            out.changed = True
            verb = "updated" if old is not None else "wrote"
            was = f" (it ran: {' '.join(before)})" if before and before != list(spec.argv) else ""
            out.lines.append(f"enabled {spec.title} autostart ({mech.name}): {verb} {where}{was}")
        shown = subprocess.list2cmdline(spec.argv) if self.family == "win32" else display_command(spec.argv)
        out.lines.append(f"  runs: {shown}")
        mech.after_write(spec, changed, out)
        return out

    def disable(self, mode: Mode, profile: str | None) -> Outcome:
        if mode == "headless" and profile is None:
            raise UserError("--headless needs a profile name", fix="clawd autostart status")
        if profile is not None:
            check_profile_name(profile)
        mech = self.mechanism(mode)
        where = mech.location(mode, profile)
        title = "tray" if mode == "tray" else f"headless {profile}"
        old = mech.read(mode, profile)
        out = Outcome()
        if old is None:
            out.lines.append(f"{title} autostart was not enabled (no {where}): nothing to do")
            return out
        if not mech.ours(old):
            raise UserError(
                f"{where} was not written by clawd; leaving it alone",
                fix="remove it yourself if you no longer want it",
            )
        mech.before_remove(mode, profile, out)
        mech.remove(mode, profile)
        out.changed = True
        out.lines.insert(0, f"disabled {title} autostart: removed {where}")
        mech.after_remove(mode, profile, out)
        return out

    def status(
        self, launcher: Launcher | None, mode: Mode | None = None, profile: str | None = None
    ) -> list[Entry]:
        """Every entry clawd can own on this OS (or the one asked about), judged against `launcher`."""
        wanted: list[tuple[Mode, str | None]] = []
        if mode in (None, "tray"):
            wanted.append(("tray", None))
        if mode in (None, "headless"):
            if profile is not None:
                wanted.append(("headless", check_profile_name(profile)))
            else:
                wanted += [
                    ("headless", p) for p in self.mechanism("headless").profiles() if _PROFILE.match(p)
                ]
        entries = []
        for m, p in wanted:
            mech = self.mechanism(m)
            text = mech.read(m, p)
            if text is None:
                continue
            entries.append(self._judge(mech, m, p, text, launcher))
        return entries

    def _judge(
        self, mech: Mechanism, mode: Mode, profile: str | None, text: str, launcher: Launcher | None
    ) -> Entry:
        where = mech.location(mode, profile)
        argv = mech.argv_of(text)
        entry = Entry(mode, profile, mech.name, where, "current", command=argv)
        if not mech.ours(text):
            entry.state, entry.reason = "foreign", "not written by clawd (left alone)"
            return entry
        entry.loaded = mech.loaded(mode, profile)
        python = argv[0] if argv else None
        if python is None:
            entry.state, entry.reason = "stale", "cannot read the command it runs"
        elif (self.family == "win32") == (os.name == "nt") and not os.path.exists(python):
            entry.state, entry.reason = "stale", f"its interpreter {python} no longer exists"
        elif launcher is not None:
            try:
                expected = self.spec(mode, profile, launcher)
                wanted = mech.render(expected)
            except UserError as exc:  # the current interpreter could not be written at all
                entry.state, entry.reason = "stale", str(exc)
                return entry
            if python != expected.argv[0]:
                entry.state = "stale"
                entry.reason = f"runs {python}, not the current interpreter {expected.argv[0]}"
            elif wanted != text:
                entry.state = "stale"
                entry.reason = "differs from what this clawd would write (environment or version changed)"
        if entry.state == "stale":
            entry.reason = (entry.reason or "") + f"; refresh: clawd autostart enable {_flag(mode, profile)}"
        return entry

    def others(self) -> list[Other]:
        """Hand-made tunnel launchers from the seed tutorial: they hold the same local port."""
        found = []
        if self.family == "darwin":
            for label in LEGACY_DARWIN:
                path = home_dir(self.env) / "Library" / "LaunchAgents" / f"{label}.plist"
                if path.exists():
                    found.append(
                        Other(
                            str(path),
                            f"launchctl bootout gui/$(id -u)/{label} && rm {shlex.quote(str(path))}",
                        )
                    )
        elif self.family == "linux":
            for name in LEGACY_LINUX:
                path = xdg_config_home(self.env) / "systemd" / "user" / name
                if path.exists():
                    found.append(
                        Other(
                            str(path), f"systemctl --user disable --now {name} && rm {shlex.quote(str(path))}"
                        )
                    )
        return found


def tray_autostart_enabled(auto: Autostart | None = None) -> bool:
    """For the tray's "Start at login" checkbox: is a clawd-written tray entry in place?"""
    auto = auto or Autostart()
    mech = auto.mechanism("tray")
    text = mech.read("tray", None)
    return text is not None and mech.ours(text)


def set_tray_autostart(enabled: bool, auto: Autostart | None = None) -> Outcome:
    """The tray's checkbox action: what `clawd autostart enable|disable --tray` does.

    Raises UserError (with a fix) when it cannot; the caller shows it as a notification.
    """
    auto = auto or Autostart()
    if not enabled:
        return auto.disable("tray", None)
    launcher = detect_launcher()
    probe_import(launcher.python, auto.host)
    return auto.enable(auto.spec("tray", None, launcher))


def _flag(mode: Mode, profile: str | None) -> str:
    return "--tray" if mode == "tray" else f"--headless {profile}"


def display_command(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def probe_import(python: str, host: Host | None = None) -> str:
    """Check that `python` imports clawd_client on its own (no PYTHONPATH), as it must at login,
    and not from a temp dir; return where the package lives. Catches an uninstalled source tree.
    """
    runner = host or Host()
    code = (
        "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "  # not the cwd
        f"import {PACKAGE}; sys.stdout.write({PACKAGE}.__file__ or '')"
    )
    res = runner.run([python, "-E", "-c", code], timeout=30)
    where = res.stdout.strip()
    if res.returncode != 0 or not where:
        last = (res.stderr or "").strip().splitlines()
        raise UserError(
            f"{python} cannot import {PACKAGE} without this shell's PYTHONPATH or working directory, "
            "so an autostart entry would fail at login" + (f" ({last[-1]})" if last else ""),
            fix="install clawd into that interpreter (pipx install clawd, or pip install into a venv)",
        )
    why = temp_reason(where)
    if why:
        raise UserError(
            f"clawd itself is loaded from a temporary location ({why}); an autostart entry would break",
            fix="install clawd for good first (pipx install clawd, or pip install into a lasting venv)",
        )
    return where


__all__ = [
    "MODES",
    "Autostart",
    "Entry",
    "Host",
    "Launcher",
    "Mode",
    "Outcome",
    "RunKey",
    "Spec",
    "WinregRunKey",
    "desktop_entry",
    "desktop_entry_argv",
    "desktop_exec",
    "detect_launcher",
    "display_command",
    "launchd_label",
    "launchd_plist",
    "make_spec",
    "parse_desktop_exec",
    "parse_systemd_exec",
    "plist_argv",
    "plist_text",
    "probe_import",
    "run_key_command",
    "run_value_name",
    "set_tray_autostart",
    "split_windows_command",
    "systemd_exec",
    "systemd_unit",
    "systemd_unit_argv",
    "tray_autostart_enabled",
    "unit_name",
]
