"""`clawd autostart`: generated entries checked by the real validators, and enable/disable/status
and the migration of older per-profile entries against real files under a temporary HOME /
XDG_CONFIG_HOME and a real agent.json in a temporary state dir.

macOS and Windows run here too: their generators are pure functions, and their thin layers run
with a fake `launchctl` host and an in-memory Run key. No test can touch the real login session:
every host that could call systemctl/launchctl or reach an agent is a fake, and the real `Host`
refuses to act on a user manager that reads units from another directory than the one under test.
"""

from __future__ import annotations

import argparse
import json
import os
import plistlib
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.servers import require

from clawd_client import autostart as au
from clawd_client import cli_autostart
from clawd_client.agent.host import load_remembered, remember_up, remembered_path
from clawd_client.autostart import Autostart, Launcher
from clawd_client.profiles import Profile, ProfileStore, SshTarget
from clawd_gateway.errors import UserError

PY = sys.executable
NASTY = "d ir $HOME %h \"q\" 'a' back\\slash é"  # every quoting rule at once
SECRET = "tok-3f9c-must-never-appear-in-an-entry"
INACTIVE = (3, "inactive", "")

# --- what older versions wrote, verbatim (clawd autostart enable --headless PROFILE) -----------------

OLD_UNIT = """\
# Written by `clawd autostart enable --headless {profile}`; remove it with `clawd autostart disable --headless {profile}`.
# No secrets here: clawd connect reads the gateway secret from the OS keyring.
[Unit]
Description=clawd tunnel to the OpenClaw gateway (profile {profile})
After=network-online.target

[Service]
Type=simple
ExecStart={python} -m clawd_client connect {profile}
Environment=CLAWD_CONFIG_DIR={config}
Restart=on-failure
RestartSec=5
RestartPreventExitStatus=4 78
SyslogIdentifier=clawd-connect-{profile}

[Install]
WantedBy=default.target
"""

OLD_TRAY_DESKTOP = """\
# Written by `clawd autostart enable --tray`; remove it with `clawd autostart disable --tray`.
# No secrets here: clawd reads the gateway secret from the OS keyring.
[Desktop Entry]
Type=Application
Version=1.0
Name=clawd
GenericName=Gateway tunnel
Comment=Keeps the tunnel to your OpenClaw gateway alive and shows its state
Exec=/usr/bin/env CLAWD_CONFIG_DIR={config} {python} -m clawd_client tray
Terminal=false
StartupNotify=false
Categories=Network;
X-GNOME-Autostart-enabled=true
X-KDE-autostart-after=panel
X-Clawd-Autostart=tray
"""


def old_plist(python: str, profile: str, home: Path) -> bytes:
    log = str(home / "Library" / "Logs" / "clawd" / f"connect-{profile}.log")
    return plistlib.dumps(
        {
            "Label": f"ai.clawd.connect.{profile}",
            "ProgramArguments": [python, "-m", "clawd_client", "connect", profile],
            "RunAtLoad": True,
            "StandardOutPath": log,
            "StandardErrorPath": log,
            "KeepAlive": {"SuccessfulExit": False},
            "ThrottleInterval": 30,
        },
        fmt=plistlib.FMT_XML,
        sort_keys=True,
    )


# --- helpers -----------------------------------------------------------------------------------------


class FakeHost(au.Host):
    """Records commands; `tools` says which exist, `results` maps an argv prefix to (rc, out, err);
    `booted` is sd_booted(); `agent` is the pid of a running agent (None: none runs)."""

    def __init__(
        self,
        tools: dict[str, str] | None = None,
        results: dict[tuple[str, ...], tuple] | None = None,
        *,
        booted: bool = True,
        agent: int | None = None,
    ):
        self.tools = tools or {}
        self.results = results or {}
        self.calls: list[list[str]] = []
        self.booted = booted
        self.agent = agent
        self.agent_requests: list[list[str]] = []

    def which(self, name):
        return self.tools.get(name)

    def run(self, argv, timeout=15.0):
        argv = list(argv)
        self.calls.append(argv)
        best = None
        for prefix, result in self.results.items():
            if tuple(argv[: len(prefix)]) == prefix and (best is None or len(prefix) > len(best[0])):
                best = (prefix, result)
        rc, out, err = best[1] if best else (0, "", "")
        return subprocess.CompletedProcess(argv, rc, out, err)

    def uid(self):
        return 501

    def user(self):
        return "alice"

    def systemd_booted(self):
        return self.booted

    def agent_pid(self):
        return self.agent

    def agent_up(self, names):
        self.agent_requests.append(list(names))
        return None

    def commands(self, tool: str) -> list[list[str]]:
        return [c[1:] for c in self.calls if c[0] == tool]

    def acts(self, tool: str = "systemctl") -> list[list[str]]:
        """What was done, leaving out the questions (show-environment, is-active)."""
        return [c for c in self.commands(tool) if c[1] not in ("show-environment", "is-active")]


class FakeRunKey:
    location = au.RUN_KEY_DISPLAY

    def __init__(self):
        self.values: dict[str, str] = {}

    def get(self, name):
        return self.values.get(name)

    def set(self, name, value):
        self.values[name] = value

    def delete(self, name):
        return self.values.pop(name, None) is not None

    def names(self):
        return list(self.values)


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """A private HOME and XDG_CONFIG_HOME; returns the env the Autostart layer sees."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg"))
    monkeypatch.setenv("OPENCLAW_GATEWAY_TOKEN", SECRET)  # must never leak into an entry
    monkeypatch.setenv("CLAWD_CONFIG_DIR", str(tmp_path / "config"))
    return dict(os.environ)


@pytest.fixture
def profiles(roots):
    """Profiles vps and lab (the agent only restores profiles that exist)."""
    store = ProfileStore()
    for name in ("vps", "lab"):
        store.add(Profile(name=name, ssh=SshTarget(host="203.0.113.7", user="me")))
    return store


def manager(roots) -> FakeHost:
    """A host whose systemd user manager answers, reads units from the test's directory and has
    no clawd unit running yet."""
    env = f"HOME={roots['HOME']}\nXDG_CONFIG_HOME={roots['XDG_CONFIG_HOME']}\n"
    return FakeHost(
        {"systemctl": "systemctl"},
        {
            ("systemctl", "--user", "show-environment"): (0, env, ""),
            ("systemctl", "--user", "is-active"): INACTIVE,
        },
    )


def fake_python(tmp_path: Path, name: str = "venv") -> Launcher:
    """A real executable (a symlink to this Python), so validators that check ExecStart pass."""
    bindir = tmp_path / name / "bin"
    bindir.mkdir(parents=True)
    (bindir / "python").symlink_to(PY)
    return Launcher(str(bindir / "python"), "venv")


def unit_dir(roots) -> Path:
    return Path(roots["XDG_CONFIG_HOME"]) / "systemd" / "user"


def write_old_unit(roots, launcher: Launcher, profile: str) -> Path:
    path = unit_dir(roots) / f"clawd-connect-{profile}.service"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        OLD_UNIT.format(profile=profile, python=launcher.python, config=roots["CLAWD_CONFIG_DIR"])
    )
    return path


def mode_bits(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def tool(name: str) -> str:
    found = shutil.which(name)
    pkg = {"desktop-file-validate": "desktop-file-utils", "systemd-analyze": "systemd"}[name]
    require(found is not None, f"{name} is not installed (apt-get install {pkg})")
    assert found
    return found


def desktop_validate(path: Path) -> None:
    res = subprocess.run([tool("desktop-file-validate"), str(path)], capture_output=True, text=True)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), res.stdout + res.stderr


def systemd_verify(unit: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    runtime = tmp_path / "runtime"
    runtime.mkdir(exist_ok=True, mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    return subprocess.run(
        [tool("systemd-analyze"), "--user", "verify", str(unit)], capture_output=True, text=True, env=env
    )


def assert_unit_clean(unit: Path, tmp_path: Path) -> None:
    """rc 0 is not enough: systemd-analyze only *warns* about unknown keys. Any complaint that
    mentions our unit fails the test."""
    res = systemd_verify(unit, tmp_path)
    ours = [line for line in (res.stderr + res.stdout).splitlines() if unit.name in line or str(unit) in line]
    assert res.returncode == 0 and not ours, res.stderr + res.stdout


# --- the interpreter --------------------------------------------------------------------------------


def test_argv_runs_the_package_with_the_given_interpreter():
    launcher = Launcher("/opt/venv/bin/python", "venv")
    base = ("/opt/venv/bin/python", "-m", "clawd_client")
    assert launcher.argv("agent") == (*base, "agent", "--foreground")
    assert launcher.argv("agent", foreground=False) == (*base, "agent")
    assert launcher.argv("tray") == (*base, "tray")
    assert launcher.argv("headless", "vps") == (*base, "connect", "vps")  # what older versions ran
    with pytest.raises(UserError):
        launcher.argv("headless", "../etc")


def test_detect_keeps_a_venv_symlink_and_names_the_install_kind(tmp_path):
    venv = fake_python(tmp_path)
    got = au.detect_launcher(
        venv.python, prefix=str(tmp_path / "venv"), base_prefix="/usr", env={}, temp_roots=[]
    )
    # Resolving the symlink would run the base interpreter, which does not have clawd installed.
    assert got == Launcher(venv.python, "venv")
    pipx = "/home/a/.local/share/pipx/venvs/clawd/bin/python"
    assert au.detect_launcher(pipx, prefix="/x", base_prefix="/y", env={}, temp_roots=[]).kind == "pipx"
    assert au.detect_launcher(
        "/usr/bin/python3", prefix="/usr", base_prefix="/usr", env={}, temp_roots=[]
    ).kind == ("system")
    home_pipx = au.detect_launcher(
        "/p/venvs/clawd/bin/python", prefix="/a", base_prefix="/b", env={"PIPX_HOME": "/p"}
    )
    assert home_pipx.kind == "pipx"


def test_detect_refuses_temporary_interpreters(tmp_path):
    with pytest.raises(UserError, match="temporary"):
        au.detect_launcher(
            str(tmp_path / "bin" / "python"),
            prefix="/a",
            base_prefix="/a",
            env={},
            temp_roots=[str(tmp_path)],
        )
    with pytest.raises(UserError, match="build environment"):
        au.detect_launcher(
            "/home/a/pip-build-env-x1y2/overlay/bin/python",
            prefix="/a",
            base_prefix="/a",
            env={},
            temp_roots=[],
        )
    with pytest.raises(UserError, match=r"sys\.executable is empty"):
        au.detect_launcher("", env={})


def test_homebrew_cellar_paths_become_the_opt_alias(tmp_path):
    real = tmp_path / "Cellar" / "python@3.12" / "3.12.4" / "bin"
    real.mkdir(parents=True)
    (real / "python3.12").symlink_to(PY)
    alias = tmp_path / "opt" / "python@3.12"
    alias.parent.mkdir()
    alias.symlink_to(tmp_path / "Cellar" / "python@3.12" / "3.12.4")
    got = au.stable_python(str(real / "python3.12"))
    assert got == str(alias / "bin" / "python3.12")  # survives `brew upgrade`
    assert au.stable_python("/usr/bin/python3") == "/usr/bin/python3"


def test_probe_import_really_runs_the_interpreter(tmp_path):
    assert au.probe_import(PY).endswith("__init__.py")
    bare = tmp_path / "bare"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(bare)], check=True)
    with pytest.raises(UserError, match="cannot import clawd_client"):
        au.probe_import(str(bare / "bin" / "python"))


def test_the_current_interpreter_is_fit_for_autostart():
    launcher = au.detect_launcher(temp_roots=[])
    assert Path(launcher.python).is_absolute() and os.access(launcher.python, os.X_OK)


def test_only_agent_and_tray_entries_are_ever_rendered():
    with pytest.raises(ValueError, match="no 'headless' entry"):
        au.make_spec("headless", Launcher(PY, "system"), "linux", env={})


# --- Linux: XDG autostart entries, validated by desktop-file-validate ------------------------------


def test_tray_desktop_entry_validates_and_is_what_older_versions_wrote(tmp_path):
    spec = au.make_spec("tray", Launcher(PY, "system"), "linux", env={"CLAWD_CONFIG_DIR": "/c"})
    path = tmp_path / au.TRAY_DESKTOP
    path.write_text(au.desktop_entry(spec))
    desktop_validate(path)
    assert au.desktop_entry_argv(path.read_text()) == [PY, "-m", "clawd_client", "tray"]
    # Unchanged bytes: a tray entry an older clawd wrote stays "current", no rewrite needed.
    assert path.read_text() == OLD_TRAY_DESKTOP.format(config="/c", python=PY)


def test_agent_desktop_entry_validates_and_runs_the_detached_agent(tmp_path):
    spec = au.make_spec("agent", Launcher(PY, "system"), "linux", env={}, foreground=False)
    path = tmp_path / au.AGENT_DESKTOP
    text = au.desktop_entry(spec)
    path.write_text(text)
    desktop_validate(path)
    assert au.desktop_entry_argv(text) == [PY, "-m", "clawd_client", "agent"]
    assert "NoDisplay=true" in text.splitlines() and "X-Clawd-Autostart=agent" in text.splitlines()


def test_desktop_entry_quotes_a_hostile_path_and_carries_clawd_env(tmp_path):
    launcher = Launcher(f"/opt/{NASTY}/bin/python", "venv")
    env = {"CLAWD_STATE_DIR": "/srv/state dir", "OPENCLAW_GATEWAY_TOKEN": SECRET, "HOME": "/h"}
    spec = au.make_spec("agent", launcher, "linux", env=env, foreground=False)
    text = au.desktop_entry(spec)
    path = tmp_path / au.AGENT_DESKTOP
    path.write_text(text)
    desktop_validate(path)
    assert SECRET not in text
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    assert au.parse_desktop_exec(exec_line[5:]) == [
        "/usr/bin/env",
        "CLAWD_STATE_DIR=/srv/state dir",
        launcher.python,
        "-m",
        "clawd_client",
        "agent",
    ]
    assert au.desktop_entry_argv(text) == list(spec.argv)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(st.characters(min_codepoint=32, exclude_characters="\x7f"), max_size=12),
        min_size=1,
        max_size=5,
    )
)
def test_desktop_exec_quoting_round_trips(argv):
    assert au.parse_desktop_exec(au.desktop_exec(argv)) == argv


# --- Linux: the agent's systemd --user unit, validated by systemd-analyze verify --------------------


def test_agent_unit_passes_systemd_analyze_verify(tmp_path):
    spec = au.make_spec("agent", Launcher(PY, "system"), "linux", env={"CLAWD_CONFIG_DIR": "/c d/%x$y"})
    text = au.systemd_unit(spec)
    unit = tmp_path / au.AGENT_UNIT
    unit.write_text(text)
    assert_unit_clean(unit, tmp_path)
    lines = text.splitlines()
    for line in (
        "Restart=on-failure",
        f"RestartSec={au.RESTART_SEC}",
        "StartLimitBurst=5",
        "After=network-online.target",
        "SyslogIdentifier=clawd-agent",
        "WantedBy=default.target",
    ):
        assert line in lines
    assert not any(line.startswith(("StandardOutput=", "StandardError=")) for line in lines)  # journal
    assert 'Environment="CLAWD_CONFIG_DIR=/c d/%%x$y"' in lines
    assert au.systemd_unit_argv(text) == [PY, "-m", "clawd_client", "agent", "--foreground"]


def test_agent_unit_with_a_hostile_interpreter_path_verifies(tmp_path):
    """systemd-analyze checks that ExecStart's program exists and is executable, so a wrong
    quote or a missed %/$ escape fails here for real."""
    bindir = tmp_path / NASTY / "bin"
    bindir.mkdir(parents=True)
    (bindir / "python").symlink_to(PY)
    spec = au.make_spec("agent", Launcher(str(bindir / "python"), "venv"), "linux", env={})
    unit = tmp_path / au.AGENT_UNIT
    unit.write_text(au.systemd_unit(spec))
    assert_unit_clean(unit, tmp_path)
    assert au.systemd_unit_argv(unit.read_text()) == list(spec.argv)


def test_the_unit_check_catches_what_rc_alone_misses(tmp_path):
    """Control: a misspelt key gives rc 0 and a warning, which assert_unit_clean must reject."""
    spec = au.make_spec("agent", Launcher(PY, "system"), "linux", env={})
    unit = tmp_path / au.AGENT_UNIT
    unit.write_text(au.systemd_unit(spec).replace("Restart=on-failure", "Restartt=on-failure"))
    res = systemd_verify(unit, tmp_path)
    assert res.returncode == 0 and "Restartt" in res.stderr
    with pytest.raises(AssertionError):
        assert_unit_clean(unit, tmp_path)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(st.characters(min_codepoint=32, exclude_characters="\x7f"), max_size=12),
        min_size=1,
        max_size=5,
    )
)
def test_systemd_exec_quoting_round_trips(argv):
    argv = ["/" + argv[0], *argv[1:]]  # the executable is always absolute (detect_launcher)
    assert au.parse_systemd_exec(au.systemd_exec(argv)) == argv


def test_control_characters_are_refused():
    with pytest.raises(UserError, match="control character"):
        au.make_spec("agent", Launcher("/opt/x\n/python", "venv"), "linux", env={})


# --- macOS: LaunchAgent plist ----------------------------------------------------------------------


def lint_launchd(plist: dict, path: Path) -> None:
    """The keys launchd needs, with the types it accepts."""
    assert isinstance(plist["Label"], str) and path.name == plist["Label"] + ".plist"
    args = plist["ProgramArguments"]
    assert isinstance(args, list) and args and all(isinstance(a, str) for a in args)
    assert os.path.isabs(args[0])
    assert plist["RunAtLoad"] is True
    for key in ("StandardOutPath", "StandardErrorPath"):
        assert isinstance(plist[key], str) and os.path.isabs(plist[key])


@pytest.mark.parametrize("mode", ["agent", "tray"])
def test_plist_round_trips_and_has_what_launchd_needs(mode, tmp_path):
    spec = au.make_spec(
        mode, Launcher(f"/Users/a/{NASTY}/bin/python", "venv"), "darwin", env={"CLAWD_STATE_DIR": "/s"}
    )
    logs = tmp_path / "Library" / "Logs" / "clawd"
    plist = au.launchd_plist(spec, logs)
    text = au.plist_text(plist)
    assert plistlib.loads(text.encode()) == plist
    assert plistlib.loads(plistlib.dumps(plist, fmt=plistlib.FMT_XML)) == plist
    lint_launchd(plist, tmp_path / f"{au.launchd_label(mode)}.plist")
    assert plist["ProgramArguments"] == list(spec.argv)
    assert plist["EnvironmentVariables"] == {"CLAWD_STATE_DIR": "/s"}
    assert plist["StandardOutPath"] == str(logs / f"{mode}.log")
    if mode == "tray":
        assert plist["Label"] == "ai.clawd.tray" and "KeepAlive" not in plist
        assert plist["LimitLoadToSessionType"] == "Aqua"
        assert spec.argv[-1] == "tray"
    else:
        assert plist["Label"] == "ai.clawd.agent"
        assert plist["KeepAlive"] == {"SuccessfulExit": False}
        assert plist["ThrottleInterval"] >= 10
        assert spec.argv[-2:] == ("agent", "--foreground")
    assert au.plist_argv(text) == list(spec.argv)
    assert au.plist_argv("<plist><dict>broken") is None


# --- Windows: Run-key command line -----------------------------------------------------------------


def test_run_key_uses_pythonw_and_the_detached_agent():
    python = r"C:\Program Files\Python312\python.exe"
    exists = {r"C:\Program Files\Python312\pythonw.exe"}.__contains__
    agent = au.make_spec("agent", Launcher(python, "system"), "win32", env={}, exists=exists)
    assert au.run_key_command(agent) == r'"C:\Program Files\Python312\pythonw.exe" -m clawd_client agent'
    tray = au.make_spec("tray", Launcher(python, "system"), "win32", env={}, exists=exists)
    assert au.run_key_command(tray) == r'"C:\Program Files\Python312\pythonw.exe" -m clawd_client tray'
    bare = au.make_spec("agent", Launcher(python, "system"), "win32", env={}, exists=lambda p: False)
    assert au.run_key_command(bare).startswith(r'"C:\Program Files\Python312\python.exe"')
    assert (au.run_value_name("agent"), au.run_value_name("tray")) == ("clawd-agent", "clawd-tray")
    assert au.run_value_name("headless", "vps") == "clawd-connect-vps"  # older versions' name
    assert (
        au.windowless_python(r"C:\v\Scripts\python3.12.exe", lambda p: True)
        == r"C:\v\Scripts\pythonw3.12.exe"
    )
    # The tray itself runs under pythonw; toggling "Start at login" from it records python.exe.
    assert au.console_python(r"C:\v\Scripts\pythonw.exe", lambda p: True) == r"C:\v\Scripts\python.exe"
    assert au.console_python(r"C:\v\Scripts\pythonw.exe", lambda p: False) == r"C:\v\Scripts\pythonw.exe"


def test_run_key_drops_env_and_refuses_overlong_commands():
    spec = au.make_spec(
        "agent",
        Launcher("C:\\" + "x" * 250 + "\\python.exe", "venv"),
        "win32",
        env={"CLAWD_STATE_DIR": "C:\\s"},
    )
    assert spec.env == ()  # a Run value cannot carry environment variables
    with pytest.raises(UserError, match="260"):
        au.run_key_command(spec)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.sampled_from(list('ab \\"\t')), max_size=8), min_size=1, max_size=5))
def test_windows_command_splitting_inverts_list2cmdline(argv):
    assert au.split_windows_command(subprocess.list2cmdline(argv)) == argv


# --- Linux thin layer: the tray's XDG entry -----------------------------------------------------------


def test_tray_enable_is_idempotent_and_disable_removes_it(roots, tmp_path):
    launcher = fake_python(tmp_path)
    auto = Autostart("linux", roots, FakeHost())
    spec = auto.spec("tray", launcher)
    path = Path(roots["XDG_CONFIG_HOME"]) / "autostart" / "clawd-tray.desktop"

    first = auto.enable(spec)
    assert first.ok and first.changed and path.exists()
    assert path.read_text() == au.desktop_entry(spec)
    assert mode_bits(path) == 0o644
    desktop_validate(path)
    assert SECRET not in path.read_text()
    inode = path.stat().st_ino

    again = auto.enable(spec)
    assert again.ok and not again.changed and "already enabled" in again.lines[0]
    assert path.stat().st_ino == inode  # not even rewritten

    [entry] = auto.status(launcher)
    assert (entry.mode, entry.state, entry.location, entry.mechanism) == (
        "tray",
        "current",
        str(path),
        "xdg-autostart",
    )
    assert entry.command == list(spec.argv)
    assert au.tray_autostart_enabled(auto)

    gone = auto.disable("tray")
    assert gone.ok and gone.changed and not path.exists()
    assert auto.status(launcher) == []
    assert not au.tray_autostart_enabled(auto)
    twice = auto.disable("tray")
    assert twice.ok and not twice.changed and "nothing to do" in twice.lines[0]


# --- Linux thin layer: the agent's entry ----------------------------------------------------------------


def test_agent_without_a_user_manager_writes_the_unit_and_prints_the_commands(roots, tmp_path):
    launcher = fake_python(tmp_path)
    host = FakeHost(
        {"systemctl": "/bin/systemctl"},
        {
            ("/bin/systemctl", "--user", "show-environment"): (
                1,
                "",
                "Failed to connect to bus: No medium found",
            )
        },
    )
    auto = Autostart("linux", roots, host)
    spec = auto.spec("agent", launcher)
    out = auto.enable(spec)
    unit = unit_dir(roots) / "clawd-agent.service"
    assert out.ok and unit.read_text() == au.systemd_unit(spec) and mode_bits(unit) == 0o644
    assert_unit_clean(unit, tmp_path)
    assert out.todo == ["systemctl --user daemon-reload", "systemctl --user enable --now clawd-agent.service"]
    assert any("loginctl enable-linger alice" in note for note in out.notes)
    assert host.commands("/bin/systemctl") == [["--user", "show-environment"]]  # nothing else was attempted
    text = unit.read_text()
    assert SECRET not in text and f"CLAWD_CONFIG_DIR={roots['CLAWD_CONFIG_DIR']}" in text

    # `systemctl enable` run by hand later leaves a WantedBy link; disable removes it too.
    wants = unit.parent / "default.target.wants"
    wants.mkdir()
    (wants / unit.name).symlink_to(unit)
    gone = auto.disable("agent")
    assert gone.ok and not unit.exists() and not (wants / unit.name).is_symlink()
    assert "systemctl --user stop clawd-agent.service" in gone.todo


def test_agent_with_a_user_manager_enables_and_starts_it(roots, tmp_path):
    launcher = fake_python(tmp_path)
    host = manager(roots)
    auto = Autostart("linux", roots, host)
    spec = auto.spec("agent", launcher)
    unit = "clawd-agent.service"

    out = auto.enable(spec)
    assert out.ok and host.acts() == [["--user", "daemon-reload"], ["--user", "enable", "--now", unit]]
    assert f"logs: journalctl --user -u {unit}" in out.lines[-1]

    host.calls.clear()
    host.results[("systemctl", "--user", "is-active")] = (0, "active", "")
    assert not auto.enable(spec).changed  # unchanged: no reload, no restart; enable --now is idempotent
    assert host.acts() == [["--user", "enable", "--now", unit]]
    assert auto.status(launcher)[0].loaded is True

    host.calls.clear()  # a new interpreter: the running unit is restarted onto the new command line
    assert auto.enable(auto.spec("agent", fake_python(tmp_path, "new"))).changed
    assert host.acts() == [
        ["--user", "daemon-reload"],
        ["--user", "enable", "--now", unit],
        ["--user", "try-restart", unit],
    ]

    host.calls.clear()
    assert auto.disable("agent").ok
    assert host.acts() == [["--user", "disable", "--now", unit], ["--user", "daemon-reload"]]


def test_an_agent_started_outside_the_unit_is_handed_over_not_doubled(roots, tmp_path):
    """Starting the unit beside a running agent would only meet its lock and fail in a loop."""
    host = manager(roots)
    host.agent = 4242
    auto = Autostart("linux", roots, host)
    out = auto.enable(auto.spec("agent", fake_python(tmp_path)))
    assert out.ok and host.acts() == [
        ["--user", "daemon-reload"],
        ["--user", "enable", "clawd-agent.service"],
    ]
    assert any("pid 4242" in line for line in out.lines)
    assert out.todo == ["clawd agent --stop && systemctl --user start clawd-agent.service"]


def test_a_manager_reading_other_unit_files_is_left_alone(roots, tmp_path):
    """The developer's own session must never be touched by a test (or a one-off XDG override)."""
    host = FakeHost(
        {"systemctl": "systemctl"},
        {("systemctl", "--user", "show-environment"): (0, "HOME=/home/someone-else\n", "")},
    )
    auto = Autostart("linux", roots, host)
    out = auto.enable(auto.spec("agent", fake_python(tmp_path)))
    assert out.ok and any(
        "reads units from /home/someone-else/.config/systemd/user" in line for line in out.lines
    )
    assert host.commands("systemctl") == [["--user", "show-environment"]]


def test_failing_systemctl_is_a_failure(roots, tmp_path):
    host = manager(roots)
    host.results[("systemctl", "--user", "enable")] = (1, "", "boom")
    auto = Autostart("linux", roots, host)
    out = auto.enable(auto.spec("agent", fake_python(tmp_path)))
    assert not out.ok and any("boom" in line for line in out.lines)


def test_without_systemd_the_agent_gets_an_xdg_entry_and_one_entry_only(roots, tmp_path):
    launcher = fake_python(tmp_path)
    host = FakeHost(booted=False)
    auto = Autostart("linux", roots, host)
    desktop = Path(roots["XDG_CONFIG_HOME"]) / "autostart" / "clawd-agent.desktop"
    spec = auto.spec("agent", launcher)
    assert spec.argv[-1] == "agent"  # the detached form: logs to the state dir, returns at once
    out = auto.enable(spec)
    assert out.ok and desktop.read_text() == au.desktop_entry(spec)
    desktop_validate(desktop)
    assert any("to start it now: clawd agent" in line for line in out.lines)
    [entry] = auto.status(launcher)
    assert (entry.mode, entry.mechanism, entry.state) == ("agent", "xdg-autostart", "current")

    host.booted = True  # the same home on a systemd machine: the unit replaces the desktop entry
    assert [e.state for e in auto.status(launcher)] == ["stale"]
    assert "now gets a systemd-user entry" in auto.status(launcher)[0].reason
    out = auto.enable(auto.spec("agent", launcher))
    assert out.ok and not desktop.exists() and (unit_dir(roots) / "clawd-agent.service").exists()
    assert [(e.mechanism, e.state) for e in auto.status(launcher)] == [("systemd-user", "current")]
    assert auto.disable("agent").changed and auto.status(launcher) == []


def test_stale_when_the_interpreter_changed_or_vanished(roots, tmp_path):
    old, new = fake_python(tmp_path, "old"), fake_python(tmp_path, "new")
    auto = Autostart("linux", roots, FakeHost())
    auto.enable(auto.spec("tray", old))
    auto.enable(auto.spec("agent", old))
    assert {e.state for e in auto.status(old)} == {"current"}

    entries = auto.status(new)
    assert [(e.mode, e.state) for e in entries] == [("agent", "stale"), ("tray", "stale")]
    assert f"runs {old.python}, not the current interpreter {new.python}" in entries[0].reason
    assert entries[0].reason.endswith("refresh: clawd autostart enable")
    assert entries[1].reason.endswith("refresh: clawd autostart enable --tray")

    Path(old.python).unlink()
    assert "no longer exists" in auto.status(new)[0].reason

    out = auto.enable(auto.spec("agent", new))  # re-enabling refreshes it in place
    assert out.changed and "updated" in out.lines[0] and old.python in out.lines[0]
    assert auto.status(new, "agent")[0].state == "current"


def test_files_not_written_by_clawd_are_never_touched(roots, tmp_path):
    auto = Autostart("linux", roots, FakeHost())
    path = Path(roots["XDG_CONFIG_HOME"]) / "autostart" / "clawd-tray.desktop"
    path.parent.mkdir(parents=True)
    path.write_text("[Desktop Entry]\nType=Application\nName=mine\nExec=/usr/bin/true\n")
    with pytest.raises(UserError, match="not written by clawd"):
        auto.enable(auto.spec("tray", fake_python(tmp_path)))
    with pytest.raises(UserError, match="not written by clawd"):
        auto.disable("tray")
    assert [e.state for e in auto.status(None)] == ["foreign"]
    assert path.read_text().endswith("Exec=/usr/bin/true\n")


def test_seed_tunnel_units_are_reported_not_removed(roots):
    seed = unit_dir(roots) / "clawdbot-ssh-tunnel.service"
    seed.parent.mkdir(parents=True)
    seed.write_text("[Service]\nExecStart=/usr/bin/ssh -N clawdbot-remote\n")
    [other] = Autostart("linux", roots, FakeHost()).others()
    assert other.location == str(seed) and "disable --now clawdbot-ssh-tunnel.service" in other.fix
    assert seed.exists()


# --- macOS thin layer (runs anywhere; launchctl is faked) --------------------------------------------


def test_launchagent_without_launchctl_writes_and_says_so(roots, tmp_path):
    auto = Autostart("darwin", roots, FakeHost())
    spec = auto.spec("agent", fake_python(tmp_path))
    out = auto.enable(spec)
    path = Path(roots["HOME"]) / "Library" / "LaunchAgents" / "ai.clawd.agent.plist"
    assert out.ok and path.exists() and mode_bits(path) == 0o644
    plist = plistlib.loads(path.read_bytes())
    lint_launchd(plist, path)
    assert plist["ProgramArguments"][-2:] == ["agent", "--foreground"]
    assert SECRET not in path.read_text()
    assert any("launchctl not found" in line for line in out.lines)
    assert out.todo == [f"launchctl bootstrap gui/$(id -u) {path}"]
    logs = Path(roots["HOME"]) / "Library" / "Logs" / "clawd"
    assert logs.is_dir() and mode_bits(logs) == 0o700
    assert [(e.mode, e.state) for e in auto.status(Launcher(spec.argv[0], "venv"))] == [("agent", "current")]
    assert auto.disable("agent").ok and not path.exists() and not logs.exists()


def test_launchagent_bootstrap_and_bootout(roots, tmp_path):
    host = FakeHost({"launchctl": "launchctl"}, {("launchctl", "print"): (113, "", "Could not find service")})
    auto = Autostart("darwin", roots, host)
    spec = auto.spec("agent", fake_python(tmp_path))
    path = Path(roots["HOME"]) / "Library" / "LaunchAgents" / "ai.clawd.agent.plist"

    assert auto.enable(spec).ok
    assert host.commands("launchctl") == [
        ["print", "gui/501/ai.clawd.agent"],
        ["enable", "gui/501/ai.clawd.agent"],
        ["bootstrap", "gui/501", str(path)],
    ]

    host.calls.clear()
    host.results[("launchctl", "print")] = (0, "state = running", "")
    out = auto.enable(spec)
    assert out.ok and not out.changed and host.commands("launchctl") == [["print", "gui/501/ai.clawd.agent"]]
    assert auto.status(Launcher(spec.argv[0], "venv"))[0].loaded is True

    host.calls.clear()
    assert auto.disable("agent").ok and not path.exists()
    assert host.commands("launchctl") == [
        ["print", "gui/501/ai.clawd.agent"],
        ["bootout", "gui/501/ai.clawd.agent"],
    ]


def test_launchagent_is_not_loaded_beside_a_running_agent(roots, tmp_path):
    host = FakeHost({"launchctl": "launchctl"}, {("launchctl", "print"): (113, "", "")}, agent=77)
    auto = Autostart("darwin", roots, host)
    out = auto.enable(auto.spec("agent", fake_python(tmp_path)))
    path = Path(roots["HOME"]) / "Library" / "LaunchAgents" / "ai.clawd.agent.plist"
    assert out.ok and path.exists()
    assert host.commands("launchctl") == [
        ["print", "gui/501/ai.clawd.agent"],
        ["enable", "gui/501/ai.clawd.agent"],
    ]
    assert out.todo == [f"clawd agent --stop && launchctl bootstrap gui/$(id -u) {path}"]


def test_launchctl_bootstrap_failure_is_reported(roots, tmp_path):
    host = FakeHost(
        {"launchctl": "launchctl"},
        {
            ("launchctl", "print"): (113, "", ""),
            ("launchctl", "bootstrap"): (5, "", "Bootstrap failed: 5: Input/output error"),
        },
    )
    auto = Autostart("darwin", roots, host)
    out = auto.enable(auto.spec("tray", fake_python(tmp_path)))
    assert not out.ok and any("Input/output error" in line for line in out.lines)


# --- Windows thin layer (in-memory Run key) ----------------------------------------------------------


def test_run_key_enable_status_disable():
    key = FakeRunKey()
    python = r"C:\Users\a\pipx\venvs\clawd\Scripts\python.exe"
    auto = Autostart("win32", {"HOME": "C:\\Users\\a"}, FakeHost(), run_key=key)
    launcher = Launcher(python, "pipx")
    spec = auto.spec("agent", launcher)
    assert auto.enable(spec).changed
    assert key.values == {"clawd-agent": python + " -m clawd_client agent"}
    assert not auto.enable(spec).changed
    [entry] = auto.status(launcher)
    assert entry.state == "current" and entry.location.endswith(r"CurrentVersion\Run\clawd-agent")
    assert auto.status(Launcher(r"C:\Python313\python.exe", "system"))[0].state == "stale"
    key.values["SomethingElse"] = "C:\\x.exe"
    assert auto.disable("agent").changed
    assert key.values == {"SomethingElse": "C:\\x.exe"}


def test_windows_notes_say_env_is_not_carried():
    auto = Autostart("win32", {"CLAWD_CONFIG_DIR": r"C:\cfg"}, FakeHost(), run_key=FakeRunKey())
    spec = auto.spec("tray", Launcher(r"C:\py\python.exe", "system"))
    assert any("setx CLAWD_CONFIG_DIR" in n for n in auto.notes(spec))


# --- the agent's remembered up-set --------------------------------------------------------------------


def test_remember_up_merges_into_agent_json_atomically_and_privately():
    path = remembered_path()
    assert remember_up(["vps"]) == ["vps"]
    assert json.loads(path.read_text()) == {"up": ["vps"]} and mode_bits(path) == 0o600
    assert remember_up(["lab", "vps", "lab"]) == ["lab"]
    assert load_remembered() == ["lab", "vps"]
    inode = path.stat().st_ino  # atomic_write replaces the file, so a rewrite changes the inode
    assert remember_up(["vps"]) == [] and path.stat().st_ino == inode  # nothing new: not rewritten
    assert list(path.parent.glob("*.tmp*")) == []


# --- migration of the per-profile entries older versions wrote --------------------------------------


def test_old_units_are_stopped_removed_and_their_profiles_kept_up(roots, profiles, tmp_path):
    launcher = fake_python(tmp_path)
    old = {name: write_old_unit(roots, launcher, name) for name in ("vps", "lab")}
    wants = unit_dir(roots) / "default.target.wants"
    wants.mkdir()
    for path in old.values():
        (wants / path.name).symlink_to(path)  # as `systemctl --user enable` left them
    host = manager(roots)
    for path in old.values():
        host.results[("systemctl", "--user", "is-active", path.name)] = (0, "active", "")
    auto = Autostart("linux", roots, host)

    legacy = auto.legacy()
    assert [(e.profile, e.state, e.loaded) for e in legacy] == [
        ("lab", "legacy", True),
        ("vps", "legacy", True),
    ]
    assert legacy[0].command == [launcher.python, "-m", "clawd_client", "connect", "lab"]
    assert legacy[0].reason.endswith("clawd autostart enable")

    out = au.enable_login(auto, launcher)
    assert out.ok and out.changed
    assert [(m.profile, m.location, m.note) for m in out.migrated] == [
        ("lab", str(old["lab"]), None),
        ("vps", str(old["vps"]), None),
    ]
    assert not any(p.exists() for p in old.values())
    # Stopped the old code's way, all before the agent's unit starts and restores them.
    assert host.acts() == [
        ["--user", "disable", "--now", "clawd-connect-lab.service"],
        ["--user", "daemon-reload"],
        ["--user", "disable", "--now", "clawd-connect-vps.service"],
        ["--user", "daemon-reload"],
        ["--user", "daemon-reload"],
        ["--user", "enable", "--now", "clawd-agent.service"],
    ]
    assert json.loads(remembered_path().read_text()) == {"up": ["lab", "vps"]}
    assert mode_bits(remembered_path()) == 0o600
    assert out.marked_up == ["lab", "vps"]
    assert any("migrated headless vps autostart" in line for line in out.lines)
    agent_unit = unit_dir(roots) / "clawd-agent.service"
    assert_unit_clean(agent_unit, tmp_path)
    assert auto.legacy() == [] and [e.state for e in auto.status(launcher)] == ["current"]

    # Again: nothing to migrate, nothing rewritten, the same up-set.
    host.calls.clear()
    host.results[("systemctl", "--user", "is-active", "clawd-agent.service")] = (0, "active", "")
    inode, remembered = agent_unit.stat().st_ino, remembered_path().read_bytes()
    again = au.enable_login(auto, launcher)
    assert again.ok and not again.changed and again.migrated == [] and again.marked_up == []
    assert host.acts() == [["--user", "enable", "--now", "clawd-agent.service"]]
    assert agent_unit.stat().st_ino == inode and remembered_path().read_bytes() == remembered


def test_old_units_without_a_user_manager_are_removed_with_their_links(roots, profiles, tmp_path):
    launcher = fake_python(tmp_path)
    old = write_old_unit(roots, launcher, "vps")
    wants = unit_dir(roots) / "default.target.wants"
    wants.mkdir()
    (wants / old.name).symlink_to(old)
    auto = Autostart("linux", roots, FakeHost())  # systemd is the init, but no systemctl here
    out = au.enable_login(auto, launcher)
    assert out.ok and not old.exists() and not (wants / old.name).is_symlink()
    assert "systemctl --user stop clawd-connect-vps.service" in out.todo
    assert out.todo[-1] == "systemctl --user enable --now clawd-agent.service"
    assert load_remembered() == ["vps"]


def test_an_old_launchagent_is_booted_out_and_replaced(roots, profiles, tmp_path):
    launcher = fake_python(tmp_path)
    home = Path(roots["HOME"])
    old = home / "Library" / "LaunchAgents" / "ai.clawd.connect.vps.plist"
    old.parent.mkdir(parents=True)
    old.write_bytes(old_plist(launcher.python, "vps", home))
    logs = home / "Library" / "Logs" / "clawd"
    logs.mkdir(parents=True)
    (logs / "connect-vps.log").write_text("09:12:01 healthy\n")
    host = FakeHost(
        {"launchctl": "launchctl"},
        {
            ("launchctl", "print"): (113, "", ""),
            ("launchctl", "print", "gui/501/ai.clawd.connect.vps"): (0, "", ""),
        },
    )
    auto = Autostart("darwin", roots, host)
    assert [(e.profile, e.state, e.mechanism) for e in auto.legacy()] == [("vps", "legacy", "launchagent")]

    host.calls.clear()
    out = au.enable_login(auto, launcher)
    new = home / "Library" / "LaunchAgents" / "ai.clawd.agent.plist"
    assert out.ok and not old.exists() and new.exists()
    assert host.commands("launchctl") == [
        ["print", "gui/501/ai.clawd.connect.vps"],
        ["bootout", "gui/501/ai.clawd.connect.vps"],
        ["print", "gui/501/ai.clawd.agent"],
        ["enable", "gui/501/ai.clawd.agent"],
        ["bootstrap", "gui/501", str(new)],
    ]
    assert (logs / "connect-vps.log").exists()  # the user's logs are kept
    assert load_remembered() == ["vps"] and [m.profile for m in out.migrated] == ["vps"]
    assert auto.legacy() == []


def test_an_old_run_value_is_replaced(profiles):
    key = FakeRunKey()
    python = r"C:\Users\a\pipx\venvs\clawd\Scripts\python.exe"
    key.values = {"clawd-connect-vps": f"{python} -m clawd_client connect vps", "Other": "C:\\x.exe"}
    auto = Autostart("win32", {"HOME": "C:\\Users\\a"}, FakeHost(), run_key=key)
    out = au.enable_login(auto, Launcher(python, "pipx"))
    assert out.ok and key.values == {"Other": "C:\\x.exe", "clawd-agent": f"{python} -m clawd_client agent"}
    assert any("keeps running until you sign out" in line for line in out.lines)
    assert load_remembered() == ["vps"] and [m.profile for m in out.migrated] == ["vps"]


def test_migration_leaves_strangers_and_says_what_will_not_come_back(roots, profiles, tmp_path):
    launcher = fake_python(tmp_path)
    profiles.add(Profile(name="manual", ssh=SshTarget(host="203.0.113.8"), autoconnect=False))
    remember_up(["lab"])  # already up before the migration: kept
    for name in ("gone", "manual"):
        write_old_unit(roots, launcher, name)
    mine = unit_dir(roots) / "clawd-connect-mine.service"
    mine.write_text("[Service]\nExecStart=/usr/bin/ssh -N mine\n")
    auto = Autostart("linux", roots, FakeHost())

    out = au.enable_login(auto, launcher)
    assert out.ok and mine.exists()
    notes = {m.profile: m.note for m in out.migrated}
    assert set(notes) == {"gone", "manual"}
    assert "no such profile" in notes["gone"] and "autoconnect is off" in notes["manual"]
    assert load_remembered() == ["lab", "manual"]  # a profile that no longer exists is not recorded
    assert [(e.profile, e.state) for e in auto.legacy()] == [("mine", "foreign")]


def test_migration_hands_the_profiles_to_a_running_agent(roots, profiles, tmp_path):
    """A running agent rewrites agent.json from its own set, so it is asked to bring them up too."""
    launcher = fake_python(tmp_path)
    write_old_unit(roots, launcher, "vps")
    host = FakeHost(agent=99)
    out = au.enable_login(Autostart("linux", roots, host), launcher)
    assert out.ok and host.agent_requests == [["vps"]] and load_remembered() == ["vps"]
    assert any("the running agent brings vps up now" in line for line in out.lines)


def test_an_old_tray_entry_is_already_current(roots, tmp_path):
    launcher = fake_python(tmp_path)
    path = Path(roots["XDG_CONFIG_HOME"]) / "autostart" / "clawd-tray.desktop"
    path.parent.mkdir(parents=True)
    path.write_text(OLD_TRAY_DESKTOP.format(config=roots["CLAWD_CONFIG_DIR"], python=launcher.python))
    inode = path.stat().st_ino
    env = {k: v for k, v in roots.items() if k != "CLAWD_STATE_DIR"}  # as that old entry carried
    auto = Autostart("linux", env, FakeHost(booted=False))
    out = au.enable_login(auto, launcher, tray=True)
    assert out.ok and path.stat().st_ino == inode and out.migrated == []
    assert [(e.mode, e.state) for e in auto.status(launcher)] == [("agent", "current"), ("tray", "current")]


def test_disable_removes_everything_that_starts_at_login(roots, profiles, tmp_path):
    launcher = fake_python(tmp_path)
    auto = Autostart("linux", roots, FakeHost())
    au.enable_login(auto, launcher, tray=True)
    old = write_old_unit(roots, launcher, "vps")  # e.g. restored from a backup afterwards
    remember_up(["vps"])
    out = au.disable_login(auto)
    assert out.ok and out.changed and not old.exists()
    assert auto.status(launcher) == [] and auto.legacy() == []
    assert load_remembered() == ["vps"]  # what is up is not a login setting
    again = au.disable_login(auto)
    assert not again.changed and "nothing to do" in again.lines[0]


def test_the_tray_checkbox_enables_the_agent_too_and_unchecking_only_the_tray(roots, tmp_path, monkeypatch):
    launcher = fake_python(tmp_path)
    monkeypatch.setattr(au.actions, "detect_launcher", lambda: launcher)
    monkeypatch.setattr(au.actions, "probe_import", lambda python, host=None: python)
    auto = Autostart("linux", roots, FakeHost(booted=False))
    au.set_tray_autostart(True, auto)
    assert au.tray_autostart_enabled(auto)
    assert [e.mode for e in auto.status(launcher)] == ["agent", "tray"]
    au.set_tray_autostart(False, auto)
    assert not au.tray_autostart_enabled(auto) and [e.mode for e in auto.status(launcher)] == ["agent"]


# --- the CLI -------------------------------------------------------------------------------------------


def run_cli(*argv: str, capsys) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="clawd")
    cli_autostart.register(parser.add_subparsers())
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        out = capsys.readouterr()
        return int(exc.code or 0), out.out, out.err
    code = args.func(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def cli_env(roots, profiles, monkeypatch):
    """The real interpreter and detection, on a systemd machine whose user manager this shell
    cannot reach (no systemctl), with no agent running."""
    monkeypatch.setattr(au.Host, "which", lambda self, name: None)
    monkeypatch.setattr(au.Host, "systemd_booted", lambda self: True)
    monkeypatch.setattr(au.Host, "agent_pid", lambda self: None)
    monkeypatch.setattr(cli_autostart, "_autostart", lambda: Autostart("linux"))
    return roots


def test_cli_enable_status_disable(cli_env, capsys):
    code, out, _ = run_cli("autostart", "enable", capsys=capsys)
    assert code == 0 and "enabled agent autostart (systemd-user)" in out
    assert "-m clawd_client agent --foreground" in out and "interpreter: " in out
    assert "systemctl --user enable --now clawd-agent.service" in out
    code, out, _ = run_cli("autostart", "enable", capsys=capsys)
    assert code == 0 and "already enabled" in out
    code, out, _ = run_cli("autostart", "enable", "--tray", capsys=capsys)
    assert code == 0 and "enabled tray autostart" in out

    code, out, _ = run_cli("autostart", "status", "--json", capsys=capsys)
    body = json.loads(out)
    assert code == 0 and body["platform"] == "linux"
    assert [(e["mode"], e["profile"], e["state"]) for e in body["entries"]] == [
        ("agent", None, "current"),
        ("tray", None, "current"),
    ]
    assert body["entries"][0]["command"][1:] == ["-m", "clawd_client", "agent", "--foreground"]
    assert body["interpreter"]["path"] == body["entries"][0]["command"][0]
    assert (body["legacy"], body["migrate"], body["remembered"]) == ([], None, [])

    code, out, _ = run_cli("autostart", "status", capsys=capsys)
    assert code == 0 and "agent: current" in out and "tray: current" in out
    code, out, _ = run_cli("autostart", "status", "--tray", capsys=capsys)
    assert code == 0 and "tray: current" in out and "agent:" not in out

    code, out, _ = run_cli("autostart", "disable", "--tray", capsys=capsys)
    assert code == 0 and "disabled tray autostart" in out
    code, out, _ = run_cli("autostart", "disable", capsys=capsys)
    assert code == 0 and "disabled agent autostart" in out
    code, out, _ = run_cli("autostart", "disable", capsys=capsys)
    assert code == 0 and "nothing to do" in out
    code, out, _ = run_cli("autostart", "status", capsys=capsys)
    assert code == 0 and "agent autostart is not enabled" in out
    xdg = Path(cli_env["XDG_CONFIG_HOME"])
    assert not list(xdg.rglob("*.desktop")) and not list(xdg.rglob("*.service"))


def test_cli_status_names_old_entries_and_enable_migrates_them(cli_env, tmp_path, capsys):
    old = write_old_unit(cli_env, fake_python(tmp_path, "old"), "vps")
    code, out, _ = run_cli("autostart", "status", capsys=capsys)
    assert code == 1 and "old per-profile entry, headless vps: legacy" in out
    assert "clawd autostart enable" in out
    code, out, _ = run_cli("autostart", "status", "--json", capsys=capsys)
    body = json.loads(out)
    assert code == 1 and body["migrate"] == "clawd autostart enable"
    assert [(e["mode"], e["profile"], e["state"], e["location"]) for e in body["legacy"]] == [
        ("headless", "vps", "legacy", str(old))
    ]

    code, out, _ = run_cli("autostart", "enable", "--json", capsys=capsys)
    body = json.loads(out)
    assert code == 0 and body["ok"] and body["changed"]
    assert [(m["profile"], m["location"], m["removed"]) for m in body["migrated"]] == [
        ("vps", str(old), True)
    ]
    assert body["markedUp"] == ["vps"]
    assert [(e["mode"], e["state"]) for e in body["entries"]] == [("agent", "current")]
    assert not old.exists() and load_remembered() == ["vps"]

    code, out, _ = run_cli("autostart", "status", capsys=capsys)
    assert code == 0 and "old per-profile" not in out
    assert "remembered as up, brought back when the agent starts: vps" in out
    remember_up(["ghost"])  # e.g. a profile removed since
    code, out, _ = run_cli("autostart", "status", capsys=capsys)
    assert code == 0 and "  ghost: no such profile any more" in out
    code, out, _ = run_cli("autostart", "enable", "--json", capsys=capsys)
    body = json.loads(out)
    assert code == 0 and not body["changed"] and body["migrated"] == []


def test_cli_per_profile_flags(cli_env, capsys):
    code, out, _ = run_cli("autostart", "enable", "--headless", "vps", capsys=capsys)
    assert code == 0 and "marked up: the agent brings vps back when it starts" in out
    assert "enabled agent autostart" in out and load_remembered() == ["vps"]
    code, out, _ = run_cli("autostart", "enable", "--profile", "lab", "--profile", "vps", capsys=capsys)
    assert code == 0 and load_remembered() == ["lab", "vps"]
    code, _, err = run_cli("autostart", "disable", "--headless", "vps", capsys=capsys)
    assert code == 2 and "no per-profile entries any more" in err and "clawd down vps" in err
    code, _, err = run_cli("autostart", "status", "--headless", "vps", capsys=capsys)
    assert code == 2 and "no per-profile entries any more" in err
    assert (Path(cli_env["XDG_CONFIG_HOME"]) / "systemd" / "user" / "clawd-agent.service").exists()


def test_cli_status_exits_1_on_a_stale_entry(cli_env, tmp_path, capsys):
    auto = Autostart("linux", dict(os.environ), au.Host())
    auto.enable(auto.spec("tray", fake_python(tmp_path, "old")))
    code, out, _ = run_cli("autostart", "status", "--tray", capsys=capsys)
    assert code == 1 and "tray: stale" in out and "not the current interpreter" in out
    code, out, _ = run_cli("autostart", "enable", "--tray", capsys=capsys)
    assert code == 0 and "updated" in out
    assert run_cli("autostart", "status", capsys=capsys)[0] == 0


def test_cli_print_writes_nothing(cli_env, tmp_path, capsys):
    old = write_old_unit(cli_env, fake_python(tmp_path, "old"), "vps")
    code, out, _ = run_cli("autostart", "enable", "--tray", "--print", capsys=capsys)
    assert code == 0 and "[Service]" in out and "[Desktop Entry]" in out and "not written" in out
    assert f"# would migrate: headless vps ({old})" in out and SECRET not in out
    assert [p.name for p in Path(cli_env["XDG_CONFIG_HOME"]).rglob("*") if p.is_file()] == [old.name]
    assert load_remembered() == []


def test_cli_usage_and_failures(cli_env, capsys):
    assert run_cli("autostart", capsys=capsys)[0] == 2
    code, _, err = run_cli("autostart", "enable", "--profile", "nope", capsys=capsys)
    assert code == 1 and "nope" in err
    code, _, err = run_cli("autostart", "enable", "--profile", "../x", capsys=capsys)
    assert code == 1 and "not a valid profile name" in err
    assert not (Path(cli_env["XDG_CONFIG_HOME"]) / "systemd").exists()
