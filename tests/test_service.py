"""`clawd-gateway install-service` / `uninstall-service` with real tools.

Generated units go through `systemd-analyze verify` (any stderr output is a failure: verify
returns 0 on unknown keys, ci-recipes §6) and `systemd-analyze security --offline`; plists take
a plistlib round trip and launchd's key checks. The hardening claims are checked against the
running gateway: its syscalls (strace) against the unit's SystemCallFilter=, and a start
under PR_SET_MDWE (the kernel's MemoryDenyWriteExecute) with a private /proc like ProcSubset=pid.
System installs go to a scratch root via CLAWD_SERVICE_ROOT; nothing touches the real /etc.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import plistlib
import re
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import psutil
import pytest
from tests.support.servers import free_port, require

from clawd_gateway import service
from clawd_gateway.config import parse_config_text
from clawd_gateway.service import ServiceSpec

REPO = Path(__file__).resolve().parent.parent
HEX_TOKEN = re.compile(r"^OPENCLAW_GATEWAY_TOKEN=([0-9a-f]{64})$", re.M)
REQUIRED_HARDENING = [
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "SystemCallArchitectures=native",
    "Restart=on-failure",
    "RestartSec=5s",
]


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def svc_env(tmp_path: Path) -> dict[str, str]:
    """A user whose HOME, XDG config and state dirs are scratch dirs (conftest set HOME)."""
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    env.pop("SUDO_USER", None)
    env.pop(service.ROOT_ENV, None)
    return env


def cli(
    args: list[str], env: dict[str, str], prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*(prefix or []), sys.executable, "-m", "clawd_gateway", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


def user_paths(env: dict[str, str]) -> tuple[Path, Path]:
    xdg = Path(env["XDG_CONFIG_HOME"])
    return xdg / "systemd/user/clawd-gateway.service", xdg / "clawd-gateway/env"


def secret_in(env_file: Path) -> str:
    m = HEX_TOKEN.search(env_file.read_text())
    assert m, "no generated 64-hex token in the env file"
    return m.group(1)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def need_systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    require(exe is not None, "systemd-analyze not found (apt-get install systemd)")
    assert exe
    return exe


def verify_unit(unit: Path, tmp_path: Path, *, user: bool) -> None:
    """`systemd-analyze verify`: rc 0 *and* silence; a file named *.service is required."""
    exe = need_systemd_analyze()
    env = dict(os.environ)
    args = [exe, "verify", str(unit)]
    if user:
        runtime = tmp_path / "xdg-runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime)  # else: "Failed to initialize manager"
        args = [exe, "--user", "verify", str(unit)]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip() and not proc.stdout.strip(), (
        f"systemd-analyze verify {unit}: rc={proc.returncode}\n{proc.stdout}{proc.stderr}"
    )


def system_install(
    tmp_path: Path, env: dict[str, str], *extra: str
) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    root = tmp_path / "sysroot"
    env = {**env, service.ROOT_ENV: str(root)}
    proc = cli(["install-service", *extra], env)
    return root / "etc/systemd/system/clawd-gateway.service", root / "etc/clawd-gateway/env", proc


# --- the per-user systemd service ----------------------------------------------------------------


def test_user_install_writes_hardened_unit_and_0600_secret(svc_env, tmp_path):
    proc = cli(["install-service", "--user"], svc_env)
    assert proc.returncode == 0, proc.stderr
    unit, env_file = user_paths(svc_env)
    text = unit.read_text()
    assert mode(env_file) == 0o600 and mode(env_file.parent) == 0o700 and mode(unit) == 0o644
    token = secret_in(env_file)
    assert token not in text and token not in proc.stdout + proc.stderr  # never printed
    assert "OPENCLAW_GATEWAY_TOKEN" not in text and "PASSWORD" not in text
    for line in REQUIRED_HARDENING:
        assert line in text.splitlines(), line
    assert f"ExecStart={sys.executable} -m clawd_gateway run" in text
    assert f"EnvironmentFile={env_file}" in text
    state = Path(os.environ["CLAWD_STATE_DIR"])
    assert f"ReadWritePaths={state}" in text and state.is_dir()
    assert "ProtectHome=read-only" in text  # the state dir lives in the home
    # A user manager cannot drop capabilities: an empty bounding set would kill the unit (218).
    assert "CapabilityBoundingSet" not in text and "User=" not in text
    assert "WantedBy=default.target" in text
    # The exact next steps, including linger for a user service.
    assert "systemctl --user daemon-reload" in proc.stdout
    assert "systemctl --user enable --now clawd-gateway.service" in proc.stdout
    assert "loginctl enable-linger" in proc.stdout
    assert f"read it with: cat {env_file}" in proc.stdout
    verify_unit(unit, tmp_path, user=True)


def test_user_install_is_idempotent_and_keeps_the_secret(svc_env):
    assert cli(["install-service", "--user"], svc_env).returncode == 0
    unit, env_file = user_paths(svc_env)
    first_unit, first_env = unit.read_bytes(), env_file.read_bytes()
    again = cli(["install-service", "--user"], svc_env)
    assert again.returncode == 0, again.stderr
    assert unit.read_bytes() == first_unit and env_file.read_bytes() == first_env
    assert "(unchanged)" in again.stdout and "kept (env file)" in again.stdout
    # A loosened env file is tightened again, its secret untouched.
    env_file.chmod(0o644)
    third = cli(["install-service", "--user"], svc_env)
    assert third.returncode == 0 and mode(env_file) == 0o600 and env_file.read_bytes() == first_env
    assert "now 0600" in third.stdout


def test_print_writes_nothing(svc_env):
    proc = cli(["install-service", "--user", "--print"], svc_env)
    assert proc.returncode == 0, proc.stderr
    unit, env_file = user_paths(svc_env)
    assert proc.stdout.startswith(service.MARKER) and "[Service]" in proc.stdout
    assert str(env_file) in proc.stderr and "would get OPENCLAW_GATEWAY_TOKEN (generated)" in proc.stderr
    assert not unit.exists() and not env_file.exists()


def test_uninstall_removes_exactly_what_install_wrote(svc_env):
    assert cli(["install-service", "--user"], svc_env).returncode == 0
    unit, env_file = user_paths(svc_env)
    proc = cli(["uninstall-service", "--user"], svc_env)
    assert proc.returncode == 0, proc.stderr
    assert not unit.exists() and env_file.exists()  # the secret stays without --purge
    assert "systemctl --user stop clawd-gateway.service" in proc.stdout
    assert "systemctl --user daemon-reload" in proc.stdout and "--purge" in proc.stdout
    purge = cli(["uninstall-service", "--user", "--purge"], svc_env)
    assert purge.returncode == 0 and not env_file.exists() and not env_file.parent.exists()
    assert unit.parent.is_dir()  # the systemd directory is not ours to delete
    assert "was not there" in purge.stdout  # idempotent: the unit was already gone


def test_uninstall_leaves_foreign_units_and_enabled_links_alone(svc_env):
    unit, _ = user_paths(svc_env)
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/bin/true\n")
    proc = cli(["uninstall-service", "--user"], svc_env)
    assert proc.returncode == 1 and "not written by clawd-gateway" in proc.stderr and unit.exists()
    unit.unlink()
    assert cli(["install-service", "--user"], svc_env).returncode == 0
    wants = unit.parent / "default.target.wants"
    wants.mkdir()
    (wants / unit.name).symlink_to(unit)  # what `systemctl --user enable` leaves
    proc = cli(["uninstall-service", "--user"], svc_env)
    assert proc.returncode == 1 and "still enabled" in proc.stderr and "disable --now" in proc.stderr
    assert unit.exists()


def test_existing_env_secret_is_copied_not_printed(svc_env):
    secret = "my-own-token-0123456789abcdef"
    proc = cli(["install-service", "--user"], {**svc_env, "OPENCLAW_GATEWAY_TOKEN": secret})
    assert proc.returncode == 0, proc.stderr
    _, env_file = user_paths(svc_env)
    assert f"OPENCLAW_GATEWAY_TOKEN={secret}" in env_file.read_text().splitlines()
    assert secret not in proc.stdout + proc.stderr and "copied OPENCLAW_GATEWAY_TOKEN" in proc.stdout


def test_config_is_passed_and_its_secret_respected(svc_env, tmp_path):
    cfg = tmp_path / "my config" / "openclaw.json"  # a space: quoting must hold
    cfg.parent.mkdir()
    cfg.write_text('{gateway: {port: 19123, auth: {mode: "password"}}}')
    proc = cli(["install-service", "--user", "--config", str(cfg)], svc_env)
    assert proc.returncode == 0, proc.stderr
    unit, env_file = user_paths(svc_env)
    assert f'-m clawd_gateway run --config "{cfg}"' in unit.read_text()
    assert re.search(r"^OPENCLAW_GATEWAY_PASSWORD=\S{40,}$", env_file.read_text(), re.M)  # mode password
    verify_unit(unit, tmp_path, user=True)
    # A config that carries the secret itself: no second secret is generated.
    cfg2 = tmp_path / "c2.json"
    cfg2.write_text('{gateway: {auth: {token: "config-token-0123456789abcdef"}}}')
    svc_env2 = {**svc_env, "XDG_CONFIG_HOME": str(tmp_path / "xdg2")}
    assert cli(["install-service", "--user", "--config", str(cfg2)], svc_env2).returncode == 0
    _, env2 = user_paths(svc_env2)
    assert "OPENCLAW_GATEWAY" not in "".join(
        ln for ln in env2.read_text().splitlines() if not ln.startswith("#")
    )


def test_unsafe_or_unresolvable_config_installs_nothing(svc_env, tmp_path):
    bad = tmp_path / "lan.json"
    bad.write_text('{gateway: {bind: "lan", auth: {mode: "none"}}}')
    proc = cli(["install-service", "--user", "--config", str(bad)], svc_env)
    assert proc.returncode == 78 and "gateway.auth.mode" in proc.stderr
    unit, env_file = user_paths(svc_env)
    assert not unit.exists() and not env_file.exists()
    ref = tmp_path / "ref.json"
    ref.write_text('{gateway: {auth: {token: "${MY_TOK}"}}}')
    proc = cli(["install-service", "--user", "--config", str(ref)], {**svc_env, "MY_TOK": "x" * 32})
    # The service will not have the caller's MY_TOK: the fix points at the env file.
    assert proc.returncode == 78 and "MY_TOK" in proc.stderr and str(env_file) in proc.stderr
    assert not unit.exists()


def test_unit_from_a_venv_names_the_venv_python(svc_env, tmp_path):
    """pipx and venvs: ExecStart must be the venv's bin/python (a symlink), never its target.

    The inner venv gets clawd from the environment running the tests (a .pth file adding its
    site-packages, whose own .pth files bring the editable install), not --system-site-packages:
    that would show the base interpreter's site-packages, where clawd is not installed."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    vpy = venv / "bin" / "python"
    assert vpy.is_symlink()
    inner_site = subprocess.run(
        [str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    outer = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (Path(inner_site) / "clawd-under-test.pth").write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in outer)
    )
    proc = subprocess.run(
        [str(vpy), "-m", "clawd_gateway", "install-service", "--user", "--print"],
        capture_output=True,
        text=True,
        env=svc_env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"ExecStart={vpy} -m clawd_gateway run\n" in proc.stdout
    unit = tmp_path / "venv.service" / "clawd-gateway.service"
    unit.parent.mkdir()
    unit.write_text(proc.stdout)
    verify_unit(unit, tmp_path, user=True)


# --- the system service --------------------------------------------------------------------------


def test_system_install_into_a_root_verifies_and_rates_ok(svc_env, tmp_path):
    me = getpass.getuser()
    unit, env_file, proc = system_install(tmp_path, svc_env)
    assert proc.returncode == 0, proc.stderr
    text = unit.read_text()
    for line in [
        *REQUIRED_HARDENING,
        "CapabilityBoundingSet=",
        f"User={me}",
        "StateDirectory=clawd-gateway",
    ]:
        assert line in text.splitlines(), line
    assert "EnvironmentFile=/etc/clawd-gateway/env" in text  # the real path, not the scratch root
    assert mode(env_file) == 0o600 and secret_in(env_file) not in text
    assert (
        "systemctl daemon-reload" in proc.stdout
        and "systemctl enable --now clawd-gateway.service" in proc.stdout
    )
    assert "loginctl" not in proc.stdout
    verify_unit(unit, tmp_path, user=False)
    exe = need_systemd_analyze()
    rated = subprocess.run(
        [exe, "security", "--offline=true", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    level = re.search(r"Overall exposure level for clawd-gateway.service: ([\d.]+)", rated.stdout)
    assert rated.returncode == 0 and level and float(level.group(1)) <= 2.0, rated.stdout[-500:]


def test_system_install_refuses_unusable_accounts(svc_env, tmp_path):
    for user, words in (("nobody", "shared"), ("no-such-user-xyz", "does not exist")):
        unit, _, proc = system_install(tmp_path, svc_env, "--run-as", user)
        assert proc.returncode == 1 and words in proc.stderr and "useradd --system" in proc.stderr
        assert not unit.exists()
    proc = cli(["install-service", "--user", "--run-as", "someone-else"], svc_env)
    assert proc.returncode == 1 and "system services only" in proc.stderr


def test_system_install_without_permission_is_a_clear_error(svc_env, tmp_path):
    root = tmp_path / "readonly-root"
    root.mkdir()
    root.chmod(0o555)
    prefix: list[str] = []
    if os.geteuid() == 0:  # root ignores directory modes: drop the capabilities that allow it
        setpriv = shutil.which("setpriv")
        require(setpriv is not None, "setpriv (util-linux) is needed to drop root's DAC override")
        prefix = [str(setpriv), "--bounding-set=-dac_override,-dac_read_search"]
    proc = cli(["install-service"], {**svc_env, service.ROOT_ENV: str(root)}, prefix)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"cannot write {root}/etc/systemd/system/clawd-gateway.service: permission denied" in proc.stderr
    assert "--user" in proc.stderr and "sudo" in proc.stderr
    assert list(root.iterdir()) == []  # nothing half-written, not even the secret


def test_package_unit_matches_the_checked_in_template(tmp_path):
    """packaging/ holds rendered copies; the .deb renders the same spec."""
    sys.path.insert(0, str(REPO / "packaging"))
    try:
        import templates  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(REPO / "packaging"))
    for path, data in templates.rendered().items():
        assert path.read_bytes() == data, f"{path} is stale: run python3 packaging/templates.py"
    packaged = REPO / "packaging/systemd/clawd-gateway.service"
    text = packaged.read_text()
    assert "ProtectHome=yes" in text and "User=clawd-gateway" in text
    assert "ExecStart=/usr/bin/clawd-gateway run --config /etc/clawd-gateway/openclaw.json" in text
    parse_config_text((REPO / "packaging/deb/openclaw.json").read_text(), None, {})  # valid config


def test_unit_quoting_survives_odd_paths(tmp_path):
    odd = tmp_path / "100% sure $HOME dir"
    spec = ServiceSpec(
        program=(sys.executable, "-m", "clawd_gateway"),
        args=("run", "--config", str(odd / 'a "quoted" name.json')),
        env_file=odd / "env",
        scope="user",
        state_dir=odd / "state",
        protect_home="read-only",
    )
    text = service.render_systemd_unit(spec)
    assert f'"{odd}/a \\"quoted\\" name.json"'.replace("%", "%%").replace("$", "$$") in text
    assert f"EnvironmentFile={odd}/env".replace("%", "%%") in text
    unit = tmp_path / "units" / "clawd-gateway.service"
    unit.parent.mkdir()
    unit.write_text(text)
    verify_unit(unit, tmp_path, user=True)
    with pytest.raises(service.UserError, match="control character"):
        service.render_systemd_unit(ServiceSpec(program=("/bin/x\n",), args=(), env_file=odd))


def test_tailnet_units_may_use_netlink():
    spec = ServiceSpec(
        program=("/usr/bin/clawd-gateway",),
        args=("run",),
        env_file=service.PACKAGE_ENV_FILE,
        address_families=(*service.DEFAULT_FAMILIES, "AF_NETLINK"),
    )
    assert "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK" in service.render_systemd_unit(spec)


# --- launchd (generated and checked on Linux too) ------------------------------------------------


@pytest.mark.parametrize("scope", ["user", "system"])
def test_launchd_plist_round_trip_and_keys(svc_env, tmp_path, scope):
    env = {**svc_env, service.ROOT_ENV: str(tmp_path / "macroot")}
    plan = service.plan_install(scope=scope, manager="launchd", env=env, run_as=None)
    data = plistlib.loads(plan.content)
    assert plistlib.loads(plistlib.dumps(data, fmt=plistlib.FMT_XML)) == data
    assert service.validate_launchd_plist(data) == []
    assert data["Label"] == "dev.clawd.gateway" and data["RunAtLoad"] is True
    assert data["KeepAlive"] == {"SuccessfulExit": False}
    argv = data["ProgramArguments"]
    assert argv[:4] == [sys.executable, "-m", "clawd_gateway.service", "launch"]
    assert argv[argv.index("--env-file") + 1] == str(plan.paths.env_file) and argv[-1] == "run"
    assert not any(k in data["EnvironmentVariables"] for k in service.SECRET_VARS)
    if scope == "user":
        assert str(plan.paths.unit).endswith("Library/LaunchAgents/dev.clawd.gateway.plist")
        assert "UserName" not in data
    else:
        assert str(plan.paths.unit) == "/Library/LaunchDaemons/dev.clawd.gateway.plist"
        assert data["UserName"] == plan.run_as
        assert data["StandardErrorPath"] == "/Library/Logs/clawd-gateway/gateway.err.log"


def test_launchd_install_and_uninstall_via_cli(svc_env):
    proc = cli(["install-service", "--user", "--manager", "launchd"], svc_env)
    assert proc.returncode == 0, proc.stderr
    home = Path(svc_env["HOME"])
    plist = home / "Library/LaunchAgents/dev.clawd.gateway.plist"
    env_file = home / "Library/Application Support/clawd-gateway/env"
    assert service.validate_launchd_plist(plistlib.loads(plist.read_bytes())) == []
    assert mode(env_file) == 0o600 and secret_in(env_file).encode() not in plist.read_bytes()
    assert f"launchctl bootstrap gui/{os.getuid()}" in proc.stdout
    proc = cli(["uninstall-service", "--user", "--manager", "launchd", "--purge"], svc_env)
    assert proc.returncode == 0 and not plist.exists() and not env_file.exists()
    assert f"launchctl bootout gui/{os.getuid()}/dev.clawd.gateway" in proc.stdout


def test_launchd_lint_catches_bad_plists():
    good = service.launchd_plist(
        ServiceSpec(
            program=("/x/python", "-m", "clawd_gateway"), args=("run",), env_file=service.PACKAGE_ENV_FILE
        ),
        "/x/python",
    )
    assert service.validate_launchd_plist(good) == []
    bad = {
        **good,
        "Label": "",
        "ProgramArguments": ["python"],
        "RunAtLoad": "yes",
        "KeepAlive": {"SuccessfulExit": 0},
    }
    bad["EnvironmentVariables"] = {"OPENCLAW_GATEWAY_TOKEN": "leak"}
    problems = " | ".join(service.validate_launchd_plist(bad))
    for word in ("Label", "absolute path", "RunAtLoad", "KeepAlive", "secret"):
        assert word in problems
    with pytest.raises(service.UserError):
        service.render_launchd_plist(bad)


# --- the hardening holds for the real gateway ----------------------------------------------------


def _start(argv: list[str], env: dict[str, str], out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=out.open("w"), text=True, env=env)


def _wait_ready(proc: subprocess.Popen[str], what: str) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    for line in proc.stdout:
        if "ready in" in line:
            return
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"{what} did not become ready (exit {proc.poll()})")


def _health(port: int, token: str, env: dict[str, str]) -> None:
    proc = cli(["health", "--url", f"ws://127.0.0.1:{port}", "--token", token, "--json"], env)
    assert proc.returncode == 0 and '"ok": true' in proc.stdout, proc.stdout + proc.stderr


def _stop(pid: int, proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    proc.wait(20)


def test_launchd_wrapper_runs_the_gateway_with_the_env_file_secret(svc_env, tmp_path):
    env_file = tmp_path / "env"
    token = "wrapper-token-0123456789abcdef0123"
    env_file.write_text(f"# comment\nOPENCLAW_GATEWAY_TOKEN='{token}'\n")
    env_file.chmod(0o600)
    port = free_port()
    argv = [sys.executable, "-m", "clawd_gateway.service", "launch", "--env-file", str(env_file), "--"]
    proc = _start([*argv, "run", "--port", str(port)], svc_env, tmp_path / "err.log")
    try:
        _wait_ready(proc, "the launchd wrapper")
        _health(port, token, svc_env)
    finally:
        _stop(proc.pid, proc)
    assert proc.returncode == 0 and token not in (tmp_path / "err.log").read_text()
    env_file.chmod(0o640)
    refused = subprocess.run([*argv, "run"], capture_output=True, text=True, env=svc_env, timeout=30)
    assert refused.returncode == 78 and "chmod 600" in refused.stderr and "Traceback" not in refused.stderr


def _expand_syscall_group(exe: str, name: str) -> set[str]:
    out = subprocess.run([exe, "syscall-filter", name], capture_output=True, text=True, check=True).stdout
    calls: set[str] = set()
    for line in out.splitlines()[1:]:
        word = line.strip()
        if word and not word.startswith("#"):
            calls |= _expand_syscall_group(exe, word) if word.startswith("@") else {word}
    return calls


def test_gateway_syscalls_fit_the_units_filter(svc_env, tmp_path):
    """Trace a start, an authenticated health check and a SIGTERM stop; every syscall the
    gateway makes must pass SystemCallFilter=@system-service ~@privileged @resources."""
    exe = need_systemd_analyze()
    strace = shutil.which("strace")
    require(strace is not None, "strace not found (apt-get install strace)")
    assert strace
    unit = service.render_systemd_unit(service.package_spec())
    assert "SystemCallFilter=@system-service\nSystemCallFilter=~@privileged @resources\n" in unit
    allowed = _expand_syscall_group(exe, "@system-service") - _expand_syscall_group(exe, "@privileged")
    allowed -= _expand_syscall_group(exe, "@resources")
    trace, port, token = tmp_path / "trace", free_port(), "strace-token-0123456789abcdef"
    env = {**svc_env, "OPENCLAW_GATEWAY_TOKEN": token}
    argv = [
        strace,
        "-f",
        "-qq",
        "-o",
        str(trace),
        sys.executable,
        "-m",
        "clawd_gateway",
        "run",
        "--port",
        str(port),
    ]
    proc = _start(argv, env, tmp_path / "err.log")
    try:
        _wait_ready(proc, "the traced gateway")
        _health(port, token, svc_env)
    finally:
        if proc.poll() is None:  # SIGTERM the traced gateway (strace's child), as systemd would
            kids = psutil.Process(proc.pid).children()
            _stop(kids[0].pid if kids else proc.pid, proc)
    assert proc.returncode == 0, (tmp_path / "err.log").read_text()[-2000:]
    used = set()
    for line in trace.read_text().splitlines():
        m = re.match(r"\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]", line)
        if m:
            used.add(m.group(1))
    assert len(used) > 20, "strace output was not parsed"
    assert used <= allowed, f"syscalls outside the unit's filter: {sorted(used - allowed)}"


PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1


def test_gateway_runs_under_memory_deny_write_execute_and_private_proc(svc_env, tmp_path):
    """MemoryDenyWriteExecute=yes must not break CPython + cryptography + websockets: the
    kernel's PR_SET_MDWE (Linux >= 6.3) applies the same rule, inherited over exec. As root the
    gateway also gets a /proc mounted like ProtectProc=invisible + ProcSubset=pid."""
    check = (
        "import ctypes, mmap, sys\n"
        f"assert ctypes.CDLL(None).prctl({PR_GET_MDWE}, 0, 0, 0, 0) == {PR_MDWE_REFUSE_EXEC_GAIN}\n"
        "try:\n"
        "    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
        "except PermissionError:\n"
        "    sys.exit(0)\n"
        "sys.exit(3)\n"
    )
    wrapper = (
        "import ctypes, os, sys\n"
        f"if ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:\n"
        "    sys.exit(99)\n"
        "os.execv(sys.argv[1], sys.argv[1:])\n"
    )
    probe = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-c", check], timeout=30)
    # What it needs: prctl(PR_SET_MDWE), in Linux since 6.3 (CI's kernel has it).
    require(
        probe.returncode != 99,
        "the kernel has no PR_SET_MDWE (Linux < 6.3); MemoryDenyWriteExecute cannot be emulated",
    )
    assert probe.returncode == 0, "PR_SET_MDWE did not survive exec or did not refuse a W+X mapping"
    token, port = "mdwe-token-0123456789abcdef0123", free_port()
    gateway = [
        sys.executable,
        "-c",
        wrapper,
        sys.executable,
        "-m",
        "clawd_gateway",
        "run",
        "--port",
        str(port),
    ]
    prefix: list[str] = []
    unshare = shutil.which("unshare")
    if os.geteuid() == 0 and unshare:
        mount = 'mount -t proc -o subset=pid,hidepid=invisible proc /proc && exec "$@"'
        prefix = [unshare, "--mount", "--propagation", "private", "sh", "-c", mount, "sh"]
    env = {**svc_env, "OPENCLAW_GATEWAY_TOKEN": token}
    proc = _start([*prefix, *gateway], env, tmp_path / "err.log")
    try:
        _wait_ready(proc, "the gateway under PR_SET_MDWE")
        _health(port, token, svc_env)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert "python" in status  # the same process: sh and the wrapper exec'd into the gateway
        with open(f"/proc/{proc.pid}/cmdline", "rb") as fh:
            assert b"clawd_gateway" in fh.read()
    finally:
        _stop(proc.pid, proc)
    assert proc.returncode == 0, (tmp_path / "err.log").read_text()[-2000:]


def test_enable_where_no_service_manager_runs_writes_nothing(svc_env, tmp_path):
    runtime = tmp_path / "empty-runtime"
    runtime.mkdir()
    proc = cli(["install-service", "--user", "--enable"], {**svc_env, "XDG_RUNTIME_DIR": str(runtime)})
    assert proc.returncode == 1 and "--enable" in proc.stderr and "install without --enable" in proc.stderr
    unit, env_file = user_paths(svc_env)
    assert not unit.exists() and not env_file.exists()
    unit, env_file, proc = system_install(tmp_path, svc_env, "--enable")
    assert proc.returncode == 1 and service.ROOT_ENV in proc.stderr and not unit.exists()


def test_system_service_runs_as_the_sudo_user(svc_env, tmp_path):
    other = next((u for u in ("daemon", "bin", "sys") if _user(u)), None)
    require(other is not None, "no non-root system account (daemon/bin/sys) to stand in for SUDO_USER")
    unit, _, proc = system_install(tmp_path, {**svc_env, "SUDO_USER": str(other)})
    assert proc.returncode == 0, proc.stderr
    assert f"User={other}" in unit.read_text().splitlines() and f"as user {other}" in proc.stdout


def _user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_env_file_parsing_matches_systemd_subset():
    text = '# c\n; c\nA=1\n B = two words \nC=\'single $x\'\nD="dq \\" in"\nbad-key=x\nnoequals\n'
    assert service.parse_env_file(text) == {"A": "1", "B": "two words", "C": "single $x", "D": 'dq " in'}
