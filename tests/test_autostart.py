"""`clawd autostart`: generated entries checked by the real validators, and enable/disable/status
against real files under a temporary HOME / XDG_CONFIG_HOME.

macOS and Windows run here too: their generators are pure functions, and their thin layers run
with a fake `launchctl` host and an in-memory Run key. No test can touch the real login session:
every host that could call systemctl/launchctl is a fake, and the real `Host` refuses to act on
a user manager that reads units from another directory than the one under test.
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
from clawd_client.autostart import Autostart, Launcher
from clawd_client.profiles import Profile, ProfileStore, SshTarget
from clawd_gateway.errors import UserError

PY = sys.executable
NASTY = "d ir $HOME %h \"q\" 'a' back\\slash é"  # every quoting rule at once
SECRET = "tok-3f9c-must-never-appear-in-an-entry"


# --- helpers -----------------------------------------------------------------------------------------


class FakeHost(au.Host):
    """Records commands; `tools` says which exist, `results` maps an argv prefix to (rc, out, err)."""

    def __init__(
        self, tools: dict[str, str] | None = None, results: dict[tuple[str, ...], tuple] | None = None
    ):
        self.tools = tools or {}
        self.results = results or {}
        self.calls: list[list[str]] = []

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

    def commands(self, tool: str) -> list[list[str]]:
        return [c[1:] for c in self.calls if c[0] == tool]


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


def fake_python(tmp_path: Path, name: str = "venv") -> Launcher:
    """A real executable (a symlink to this Python), so validators that check ExecStart pass."""
    bindir = tmp_path / name / "bin"
    bindir.mkdir(parents=True)
    (bindir / "python").symlink_to(PY)
    return Launcher(str(bindir / "python"), "venv")


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
    assert launcher.argv("tray") == ("/opt/venv/bin/python", "-m", "clawd_client", "tray")
    assert launcher.argv("headless", "vps") == (
        "/opt/venv/bin/python",
        "-m",
        "clawd_client",
        "connect",
        "vps",
    )
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


# --- Linux: XDG autostart entry, validated by desktop-file-validate --------------------------------


def test_desktop_entry_passes_desktop_file_validate(tmp_path):
    spec = au.make_spec("tray", None, Launcher(PY, "system"), "linux", env={})
    path = tmp_path / au.TRAY_DESKTOP
    path.write_text(au.desktop_entry(spec))
    desktop_validate(path)
    assert au.desktop_entry_argv(path.read_text()) == [PY, "-m", "clawd_client", "tray"]


def test_desktop_entry_quotes_a_hostile_path_and_carries_clawd_env(tmp_path):
    launcher = Launcher(f"/opt/{NASTY}/bin/python", "venv")
    env = {"CLAWD_STATE_DIR": "/srv/state dir", "OPENCLAW_GATEWAY_TOKEN": SECRET, "HOME": "/h"}
    spec = au.make_spec("tray", None, launcher, "linux", env=env)
    text = au.desktop_entry(spec)
    path = tmp_path / au.TRAY_DESKTOP
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
        "tray",
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


# --- Linux: systemd --user unit, validated by systemd-analyze verify --------------------------------


def test_user_unit_passes_systemd_analyze_verify(tmp_path):
    spec = au.make_spec(
        "headless", "vps", Launcher(PY, "system"), "linux", env={"CLAWD_CONFIG_DIR": "/c d/%x$y"}
    )
    text = au.systemd_unit(spec)
    unit = tmp_path / au.unit_name("vps")
    unit.write_text(text)
    assert_unit_clean(unit, tmp_path)
    for line in (
        "Restart=on-failure",
        f"RestartSec={au.RESTART_SEC}",
        "After=network-online.target",
        "WantedBy=default.target",
    ):
        assert line in text.splitlines()
    assert 'Environment="CLAWD_CONFIG_DIR=/c d/%%x$y"' in text.splitlines()
    assert au.systemd_unit_argv(text) == [PY, "-m", "clawd_client", "connect", "vps"]


def test_user_unit_with_a_hostile_interpreter_path_verifies(tmp_path):
    """systemd-analyze checks that ExecStart's program exists and is executable, so a wrong
    quote or a missed %/$ escape fails here for real."""
    bindir = tmp_path / NASTY / "bin"
    bindir.mkdir(parents=True)
    (bindir / "python").symlink_to(PY)
    spec = au.make_spec("headless", "my.vps-2", Launcher(str(bindir / "python"), "venv"), "linux", env={})
    unit = tmp_path / au.unit_name("my.vps-2")
    unit.write_text(au.systemd_unit(spec))
    assert_unit_clean(unit, tmp_path)
    assert au.systemd_unit_argv(unit.read_text()) == list(spec.argv)


def test_the_unit_check_catches_what_rc_alone_misses(tmp_path):
    """Control: a misspelt key gives rc 0 and a warning, which assert_unit_clean must reject."""
    spec = au.make_spec("headless", "vps", Launcher(PY, "system"), "linux", env={})
    unit = tmp_path / au.unit_name("vps")
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
        au.make_spec("tray", None, Launcher("/opt/x\n/python", "venv"), "linux", env={})


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


@pytest.mark.parametrize(("mode", "profile"), [("tray", None), ("headless", "vps")])
def test_plist_round_trips_and_has_what_launchd_needs(mode, profile, tmp_path):
    spec = au.make_spec(
        mode,
        profile,
        Launcher(f"/Users/a/{NASTY}/bin/python", "venv"),
        "darwin",
        env={"CLAWD_STATE_DIR": "/s"},
    )
    logs = tmp_path / "Library" / "Logs" / "clawd"
    plist = au.launchd_plist(spec, logs)
    text = au.plist_text(plist)
    assert plistlib.loads(text.encode()) == plist
    assert plistlib.loads(plistlib.dumps(plist, fmt=plistlib.FMT_XML)) == plist
    lint_launchd(plist, tmp_path / f"{au.launchd_label(mode, profile)}.plist")
    assert plist["ProgramArguments"] == list(spec.argv)
    assert plist["EnvironmentVariables"] == {"CLAWD_STATE_DIR": "/s"}
    assert plist["StandardOutPath"].startswith(str(logs))
    if mode == "tray":
        assert plist["Label"] == "ai.clawd.tray" and "KeepAlive" not in plist
        assert plist["LimitLoadToSessionType"] == "Aqua"
    else:
        assert plist["Label"] == "ai.clawd.connect.vps"
        assert plist["KeepAlive"] == {"SuccessfulExit": False}
        assert plist["ThrottleInterval"] >= 10
    assert au.plist_argv(text) == list(spec.argv)
    assert au.plist_argv("<plist><dict>broken") is None


# --- Windows: Run-key command line -----------------------------------------------------------------


def test_run_key_uses_pythonw_for_the_tray_and_quotes_paths():
    python = r"C:\Program Files\Python312\python.exe"
    exists = {r"C:\Program Files\Python312\pythonw.exe"}.__contains__
    tray = au.make_spec("tray", None, Launcher(python, "system"), "win32", env={}, exists=exists)
    assert au.run_key_command(tray) == r'"C:\Program Files\Python312\pythonw.exe" -m clawd_client tray'
    head = au.make_spec("headless", "vps", Launcher(python, "system"), "win32", env={}, exists=exists)
    assert au.run_key_command(head) == r'"C:\Program Files\Python312\python.exe" -m clawd_client connect vps'
    bare = au.make_spec("tray", None, Launcher(python, "system"), "win32", env={}, exists=lambda p: False)
    assert au.run_key_command(bare).startswith(r'"C:\Program Files\Python312\python.exe"')
    assert au.run_value_name("tray") == "clawd-tray"
    assert au.run_value_name("headless", "vps") == "clawd-connect-vps"
    assert (
        au.windowless_python(r"C:\v\Scripts\python3.12.exe", lambda p: True)
        == r"C:\v\Scripts\pythonw3.12.exe"
    )
    # The tray itself runs under pythonw; toggling "Start at login" from it records python.exe.
    assert au.console_python(r"C:\v\Scripts\pythonw.exe", lambda p: True) == r"C:\v\Scripts\python.exe"
    assert au.console_python(r"C:\v\Scripts\pythonw.exe", lambda p: False) == r"C:\v\Scripts\pythonw.exe"


def test_run_key_drops_env_and_refuses_overlong_commands():
    spec = au.make_spec(
        "tray",
        None,
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


# --- enable / disable / status against real files (Linux) ------------------------------------------


def test_tray_enable_is_idempotent_and_disable_removes_it(roots, tmp_path):
    launcher = fake_python(tmp_path)
    auto = Autostart("linux", roots, FakeHost())
    spec = auto.spec("tray", None, launcher)
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

    gone = auto.disable("tray", None)
    assert gone.ok and gone.changed and not path.exists()
    assert auto.status(launcher) == []
    assert not au.tray_autostart_enabled(auto)
    twice = auto.disable("tray", None)
    assert twice.ok and not twice.changed and "nothing to do" in twice.lines[0]


def test_headless_without_a_user_manager_writes_and_prints_the_commands(roots, tmp_path):
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
    spec = auto.spec("headless", "vps", launcher)
    out = auto.enable(spec)
    unit = Path(roots["XDG_CONFIG_HOME"]) / "systemd" / "user" / "clawd-connect-vps.service"
    assert out.ok and unit.read_text() == au.systemd_unit(spec) and mode_bits(unit) == 0o644
    assert_unit_clean(unit, tmp_path)
    assert out.todo == [
        "systemctl --user daemon-reload",
        "systemctl --user enable --now clawd-connect-vps.service",
    ]
    assert any("loginctl enable-linger alice" in line for line in out.lines)
    assert host.commands("/bin/systemctl") == [["--user", "show-environment"]]  # nothing else was attempted
    text = unit.read_text()
    assert SECRET not in text and f"CLAWD_CONFIG_DIR={roots['CLAWD_CONFIG_DIR']}" in text

    # `systemctl enable` run by hand later leaves a WantedBy link; disable removes it too.
    wants = unit.parent / "default.target.wants"
    wants.mkdir()
    (wants / unit.name).symlink_to(unit)
    gone = auto.disable("headless", "vps")
    assert gone.ok and not unit.exists() and not (wants / unit.name).is_symlink()
    assert "systemctl --user stop clawd-connect-vps.service" in gone.todo


def test_headless_with_a_user_manager_enables_now(roots, tmp_path):
    launcher = fake_python(tmp_path)
    manager_env = f"HOME={roots['HOME']}\nXDG_CONFIG_HOME={roots['XDG_CONFIG_HOME']}\n"
    host = FakeHost(
        {"systemctl": "systemctl"}, {("systemctl", "--user", "show-environment"): (0, manager_env, "")}
    )
    auto = Autostart("linux", roots, host)
    spec = auto.spec("headless", "vps", launcher)
    unit = "clawd-connect-vps.service"

    assert auto.enable(spec).ok
    acts = [c for c in host.commands("systemctl") if c[1] != "show-environment"]
    assert acts == [
        ["--user", "daemon-reload"],
        ["--user", "enable", "--now", unit],
        ["--user", "try-restart", unit],
    ]

    host.calls.clear()
    assert auto.enable(spec).ok  # unchanged: no reload, no restart; enable --now is itself idempotent
    assert [c for c in host.commands("systemctl") if c[1] != "show-environment"] == [
        ["--user", "enable", "--now", unit]
    ]

    host.calls.clear()
    assert auto.disable("headless", "vps").ok
    acts = [c for c in host.commands("systemctl") if c[1] != "show-environment"]
    assert acts == [["--user", "disable", "--now", unit], ["--user", "daemon-reload"]]


def test_a_manager_reading_other_unit_files_is_left_alone(roots, tmp_path):
    """The developer's own session must never be touched by a test (or a one-off XDG override)."""
    host = FakeHost(
        {"systemctl": "systemctl"},
        {("systemctl", "--user", "show-environment"): (0, "HOME=/home/someone-else\n", "")},
    )
    auto = Autostart("linux", roots, host)
    out = auto.enable(auto.spec("headless", "vps", fake_python(tmp_path)))
    assert out.ok and any(
        "reads units from /home/someone-else/.config/systemd/user" in line for line in out.lines
    )
    assert host.commands("systemctl") == [["--user", "show-environment"]]


def test_failing_systemctl_is_a_failure(roots, tmp_path):
    manager_env = f"XDG_CONFIG_HOME={roots['XDG_CONFIG_HOME']}\n"
    host = FakeHost(
        {"systemctl": "systemctl"},
        {
            ("systemctl", "--user", "show-environment"): (0, manager_env, ""),
            ("systemctl", "--user", "enable"): (1, "", "boom"),
        },
    )
    auto = Autostart("linux", roots, host)
    out = auto.enable(auto.spec("headless", "vps", fake_python(tmp_path)))
    assert not out.ok and any("boom" in line for line in out.lines)


def test_stale_when_the_interpreter_changed_or_vanished(roots, tmp_path):
    old, new = fake_python(tmp_path, "old"), fake_python(tmp_path, "new")
    auto = Autostart("linux", roots, FakeHost())
    auto.enable(auto.spec("tray", None, old))
    auto.enable(auto.spec("headless", "vps", old))
    assert {e.state for e in auto.status(old)} == {"current"}

    entries = auto.status(new)
    assert [(e.mode, e.state) for e in entries] == [("tray", "stale"), ("headless", "stale")]
    assert f"runs {old.python}, not the current interpreter {new.python}" in entries[0].reason
    assert "clawd autostart enable --headless vps" in entries[1].reason

    Path(old.python).unlink()
    assert "no longer exists" in auto.status(new)[0].reason

    out = auto.enable(auto.spec("tray", None, new))  # re-enabling refreshes it in place
    assert out.changed and "updated" in out.lines[0] and old.python in out.lines[0]
    assert auto.status(new, "tray")[0].state == "current"


def test_files_not_written_by_clawd_are_never_touched(roots, tmp_path):
    auto = Autostart("linux", roots, FakeHost())
    path = Path(roots["XDG_CONFIG_HOME"]) / "autostart" / "clawd-tray.desktop"
    path.parent.mkdir(parents=True)
    path.write_text("[Desktop Entry]\nType=Application\nName=mine\nExec=/usr/bin/true\n")
    with pytest.raises(UserError, match="not written by clawd"):
        auto.enable(auto.spec("tray", None, fake_python(tmp_path)))
    with pytest.raises(UserError, match="not written by clawd"):
        auto.disable("tray", None)
    assert [e.state for e in auto.status(None)] == ["foreign"]
    assert path.read_text().endswith("Exec=/usr/bin/true\n")


def test_seed_tunnel_units_are_reported_not_removed(roots):
    seed = Path(roots["XDG_CONFIG_HOME"]) / "systemd" / "user" / "clawdbot-ssh-tunnel.service"
    seed.parent.mkdir(parents=True)
    seed.write_text("[Service]\nExecStart=/usr/bin/ssh -N clawdbot-remote\n")
    [other] = Autostart("linux", roots, FakeHost()).others()
    assert other.location == str(seed) and "disable --now clawdbot-ssh-tunnel.service" in other.fix
    assert seed.exists()


# --- macOS thin layer (runs anywhere; launchctl is faked) --------------------------------------------


def test_launchagent_without_launchctl_writes_and_says_so(roots, tmp_path):
    auto = Autostart("darwin", roots, FakeHost())
    spec = auto.spec("headless", "vps", fake_python(tmp_path))
    out = auto.enable(spec)
    path = Path(roots["HOME"]) / "Library" / "LaunchAgents" / "ai.clawd.connect.vps.plist"
    assert out.ok and path.exists() and mode_bits(path) == 0o644
    plist = plistlib.loads(path.read_bytes())
    lint_launchd(plist, path)
    assert SECRET not in path.read_text()
    assert any("launchctl not found" in line for line in out.lines)
    assert out.todo == [f"launchctl bootstrap gui/$(id -u) {path}"]
    logs = Path(roots["HOME"]) / "Library" / "Logs" / "clawd"
    assert logs.is_dir() and mode_bits(logs) == 0o700
    assert [(e.mode, e.profile, e.state) for e in auto.status(Launcher(spec.argv[0], "venv"))] == [
        ("headless", "vps", "current")
    ]
    assert auto.disable("headless", "vps").ok and not path.exists() and not logs.exists()


def test_launchagent_bootstrap_and_bootout(roots, tmp_path):
    host = FakeHost({"launchctl": "launchctl"}, {("launchctl", "print"): (113, "", "Could not find service")})
    auto = Autostart("darwin", roots, host)
    spec = auto.spec("tray", None, fake_python(tmp_path))
    path = Path(roots["HOME"]) / "Library" / "LaunchAgents" / "ai.clawd.tray.plist"

    assert auto.enable(spec).ok
    assert host.commands("launchctl") == [
        ["print", "gui/501/ai.clawd.tray"],
        ["enable", "gui/501/ai.clawd.tray"],
        ["bootstrap", "gui/501", str(path)],
    ]

    host.calls.clear()
    host.results[("launchctl", "print")] = (0, "state = running", "")
    out = auto.enable(spec)
    assert out.ok and not out.changed and host.commands("launchctl") == [["print", "gui/501/ai.clawd.tray"]]
    assert auto.status(Launcher(spec.argv[0], "venv"))[0].loaded is True

    host.calls.clear()
    assert auto.disable("tray", None).ok and not path.exists()
    assert host.commands("launchctl") == [
        ["print", "gui/501/ai.clawd.tray"],
        ["bootout", "gui/501/ai.clawd.tray"],
    ]


def test_launchctl_bootstrap_failure_is_reported(roots, tmp_path):
    host = FakeHost(
        {"launchctl": "launchctl"},
        {
            ("launchctl", "print"): (113, "", ""),
            ("launchctl", "bootstrap"): (5, "", "Bootstrap failed: 5: Input/output error"),
        },
    )
    auto = Autostart("darwin", roots, host)
    out = auto.enable(auto.spec("tray", None, fake_python(tmp_path)))
    assert not out.ok and any("Input/output error" in line for line in out.lines)


# --- Windows thin layer (in-memory Run key) ----------------------------------------------------------


def test_run_key_enable_status_disable():
    key = FakeRunKey()
    python = r"C:\Users\a\pipx\venvs\clawd\Scripts\python.exe"
    auto = Autostart("win32", {"HOME": "C:\\Users\\a"}, FakeHost(), run_key=key)
    launcher = Launcher(python, "pipx")
    spec = auto.spec("headless", "vps", launcher)
    assert auto.enable(spec).changed
    assert key.values == {
        "clawd-connect-vps": r"C:\Users\a\pipx\venvs\clawd\Scripts\python.exe -m clawd_client connect vps"
    }
    assert not auto.enable(spec).changed
    [entry] = auto.status(launcher)
    assert entry.state == "current" and entry.location.endswith(r"CurrentVersion\Run\clawd-connect-vps")
    assert auto.status(Launcher(r"C:\Python313\python.exe", "system"))[0].state == "stale"
    key.values["SomethingElse"] = "C:\\x.exe"
    assert auto.disable("headless", "vps").changed
    assert key.values == {"SomethingElse": "C:\\x.exe"}


def test_windows_notes_say_env_is_not_carried(tmp_path):
    auto = Autostart("win32", {"CLAWD_CONFIG_DIR": r"C:\cfg"}, FakeHost(), run_key=FakeRunKey())
    spec = auto.spec("tray", None, Launcher(r"C:\py\python.exe", "system"))
    assert any("setx CLAWD_CONFIG_DIR" in n for n in auto.notes(spec))


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
def cli_env(roots, tmp_path, monkeypatch):
    """The real interpreter and detection, but no systemctl/launchctl and no temp-dir veto (CI may
    check the repo out under /tmp; detection's temp rule has its own tests above)."""
    monkeypatch.setattr(au.Host, "which", lambda self, name: None)
    monkeypatch.setattr(au, "_temp_roots", lambda: [])
    monkeypatch.setattr(cli_autostart, "_autostart", lambda: Autostart("linux"))
    ProfileStore().add(Profile(name="vps", ssh=SshTarget(host="203.0.113.7", user="me")))
    return roots


def test_cli_enable_status_disable(cli_env, capsys):
    code, out, _ = run_cli("autostart", "enable", capsys=capsys)
    assert code == 0 and "enabled tray autostart" in out and "-m clawd_client tray" in out
    code, out, _ = run_cli("autostart", "enable", "--tray", capsys=capsys)
    assert code == 0 and "already enabled" in out

    code, out, _ = run_cli("autostart", "enable", "--headless", "vps", capsys=capsys)
    assert code == 0 and "systemctl --user enable --now clawd-connect-vps.service" in out
    assert "the tray autostart is enabled too" in out

    code, out, _ = run_cli("autostart", "status", "--json", capsys=capsys)
    body = json.loads(out)
    assert code == 0 and body["platform"] == "linux"
    assert [(e["mode"], e["profile"], e["state"]) for e in body["entries"]] == [
        ("tray", None, "current"),
        ("headless", "vps", "current"),
    ]
    assert body["entries"][1]["command"][1:] == ["-m", "clawd_client", "connect", "vps"]
    assert body["interpreter"]["path"] == body["entries"][0]["command"][0]

    code, out, _ = run_cli("autostart", "status", capsys=capsys)
    assert code == 0 and "tray: current" in out and "headless vps: current" in out

    for flag in (["--tray"], ["--headless", "vps"]):
        code, out, _ = run_cli("autostart", "disable", *flag, capsys=capsys)
        assert code == 0 and "disabled" in out
        code, out, _ = run_cli("autostart", "disable", *flag, capsys=capsys)
        assert code == 0 and "nothing to do" in out
    code, out, _ = run_cli("autostart", "status", "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["entries"] == []
    code, out, _ = run_cli("autostart", "status", capsys=capsys)
    assert "no autostart entry is enabled" in out
    xdg = Path(cli_env["XDG_CONFIG_HOME"])
    assert not list(xdg.rglob("*.desktop")) and not list(xdg.rglob("*.service"))


def test_cli_status_exits_1_on_a_stale_entry(cli_env, tmp_path, capsys):
    auto = Autostart("linux", dict(os.environ), au.Host())
    auto.enable(auto.spec("tray", None, fake_python(tmp_path, "old")))
    code, out, _ = run_cli("autostart", "status", "--tray", capsys=capsys)
    assert code == 1 and "tray: stale" in out and "not the current interpreter" in out
    code, out, _ = run_cli("autostart", "enable", capsys=capsys)
    assert code == 0 and "updated" in out
    assert run_cli("autostart", "status", capsys=capsys)[0] == 0


def test_cli_print_writes_nothing(cli_env, capsys):
    code, out, _ = run_cli("autostart", "enable", "--headless", "vps", "--print", capsys=capsys)
    assert code == 0 and "[Service]" in out and "not written" in out and SECRET not in out
    assert not (Path(cli_env["XDG_CONFIG_HOME"]) / "systemd").exists()


def test_cli_usage_and_failures(cli_env, capsys):
    assert run_cli("autostart", capsys=capsys)[0] == 2
    assert run_cli("autostart", "enable", "--tray", "--headless", "vps", capsys=capsys)[0] == 2
    code, _, err = run_cli("autostart", "enable", "--headless", "nope", capsys=capsys)
    assert code == 1 and "nope" in err
    code, _, err = run_cli("autostart", "disable", "--headless", "../x", capsys=capsys)
    assert code == 1 and "not a valid profile name" in err
