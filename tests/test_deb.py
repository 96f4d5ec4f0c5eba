"""The gateway .deb, for real: built with dpkg-deb, installed with `dpkg -i`, purged.

Slow tier (~25 s, most of it building the venv and xz): every test here is named `test_deb_*`
(select with `pytest tests/test_deb.py` or `-k deb`). It needs root and dpkg; on a laptop it
is skipped with the reason, under CLAWD_REQUIRE_SERVERS=1 (CI) a skip is a failure. It refuses
to run when a clawd-gateway package is already installed, because it ends with a purge.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.servers import free_port, require

from clawd_gateway import __version__

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "clawd-gateway"
UNIT = Path("/lib/systemd/system/clawd-gateway.service")
ENV_FILE = Path("/etc/clawd-gateway/env")
CONFIG = Path("/etc/clawd-gateway/openclaw.json")
STATE = Path("/var/lib/clawd-gateway")
WANTS = Path("/etc/systemd/system/multi-user.target.wants/clawd-gateway.service")
# Captured at import: the autouse fixture points HOME at a tmp dir per test, and the build's
# pip cache should survive between runs.
PIP_CACHE = Path.home() / ".cache" / "pip"

pytestmark = [pytest.mark.timeout(240), pytest.mark.deb]


def sh(*argv: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, f"{' '.join(argv)} → {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


def installed() -> bool:
    proc = sh("dpkg-query", "-W", "-f=${Status}", PACKAGE, check=False)
    return proc.returncode == 0 and "installed" in proc.stdout and "not-installed" not in proc.stdout


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build once per run with packaging/deb/build.py (the script users run)."""
    for tool in ("dpkg-deb", "dpkg"):
        require(shutil.which(tool) is not None, f"{tool} not found (apt-get install dpkg)")
    require(
        Path("/usr/bin/python3").exists(), "/usr/bin/python3 not found (apt-get install python3 python3-venv)"
    )
    venv_ok = sh("/usr/bin/python3", "-c", "import ensurepip, venv", check=False).returncode == 0
    require(venv_ok, "Debian's python3 lacks venv/ensurepip (apt-get install python3-venv)")
    out = tmp_path_factory.mktemp("deb")
    env = dict(os.environ)
    env.setdefault("PIP_CACHE_DIR", str(PIP_CACHE))
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(REPO / "packaging/deb/build.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=200,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    path = Path(proc.stdout.strip().splitlines()[-1])
    arch = sh("dpkg", "--print-architecture").stdout.strip()
    assert path == out / f"clawd-gateway_{__version__}_{arch}.deb" and path.is_file()
    print(f"\n.deb built in {time.monotonic() - t0:.1f}s: {path.stat().st_size // 1024} KiB")
    return path


def test_deb_contents_and_metadata(deb):
    info = sh("dpkg-deb", "--field", str(deb)).stdout
    assert re.search(rf"^Package: {PACKAGE}$", info, re.M) and f"Version: {__version__}" in info
    assert re.search(r"^Depends: python3\.\d+, passwd$", info, re.M)
    assert sh("dpkg-deb", "--ctrl-tarfile", str(deb)).returncode == 0
    conffiles = sh("sh", "-c", f"dpkg-deb --info {deb} conffiles").stdout.split()
    assert conffiles == [str(CONFIG)]  # the secret is not a conffile: postinst owns it
    listing = sh("dpkg-deb", "--contents", str(deb)).stdout
    for path, owner_mode in (
        ("./usr/bin/clawd-gateway -> /opt/clawd-gateway/venv/bin/clawd-gateway", "lrwxrwxrwx root/root"),
        (f".{UNIT}", "-rw-r--r-- root/root"),
        (f".{CONFIG}", "-rw-r--r-- root/root"),
        ("./opt/clawd-gateway/venv/bin/clawd-gateway", "-rwxr-xr-x root/root"),
    ):
        assert re.search(rf"^{re.escape(owner_mode)}\s.*\s{re.escape(path)}$", listing, re.M), path
    assert "/env\n" not in listing and "/pip/" not in listing  # no secret shipped, venv sealed
    assert "__pycache__/" in listing  # bytecode ships: the service user cannot write /opt


def test_deb_installs_runs_and_purges_for_real(deb, tmp_path):
    require(os.geteuid() == 0, "installing a .deb for real needs root (CI runs as root)")
    if installed():
        pytest.fail(f"a {PACKAGE} package is already installed here; refusing to purge it")
    assert not user_exists(PACKAGE), f"a {PACKAGE} user exists without the package; remove it first"
    t0 = time.monotonic()
    try:
        first = sh("dpkg", "-i", str(deb))
        assert "generated a gateway token in /etc/clawd-gateway/env" in first.stdout
        if not Path("/run/systemd/system").is_dir():
            assert "systemd is not running here" in first.stdout  # and nothing was started
        assert installed()

        version = sh("/usr/bin/clawd-gateway", "--version")
        assert version.stdout.strip() == f"clawd-gateway {__version__}"
        assert UNIT.read_text() == (REPO / "packaging/systemd/clawd-gateway.service").read_text()
        assert WANTS.is_symlink() and os.readlink(WANTS) == str(UNIT)  # enabled for the next boot
        verify = (
            sh("systemd-analyze", "verify", str(UNIT), check=False)
            if shutil.which("systemd-analyze")
            else None
        )
        if verify is not None:  # now ExecStart and User= exist for real
            assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr

        user = pwd.getpwnam(PACKAGE)
        assert user.pw_dir == str(STATE) and user.pw_shell == "/usr/sbin/nologin" and user.pw_uid < 1000
        assert grp.getgrgid(user.pw_gid).gr_name == PACKAGE
        st = ENV_FILE.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0 and st.st_gid == 0
        token = re.search(r"^OPENCLAW_GATEWAY_TOKEN=([0-9a-f]{64})$", ENV_FILE.read_text(), re.M)
        assert token, "postinst did not generate a token"
        assert token.group(1) not in first.stdout + first.stderr
        sst = STATE.stat()
        assert sst.st_uid == user.pw_uid and stat.S_IMODE(sst.st_mode) == 0o700

        _smoke_as_service_user(token.group(1), tmp_path)

        again = sh("dpkg", "-i", str(deb))  # reinstall/upgrade path: the secret survives
        assert "generated" not in again.stdout and token.group(1) in ENV_FILE.read_text()
    finally:
        purge = sh("dpkg", "--purge", PACKAGE, check=False)
    assert purge.returncode == 0, purge.stdout + purge.stderr
    assert not installed()
    for path in (UNIT, ENV_FILE, CONFIG, ENV_FILE.parent, STATE, Path("/opt/clawd-gateway"), WANTS):
        assert not path.exists() and not path.is_symlink(), f"{path} survived the purge"
    assert not Path("/usr/bin/clawd-gateway").is_symlink()
    assert not Path("/etc/systemd/system/clawd-gateway.service").is_symlink()  # no leftover mask
    assert not user_exists(PACKAGE)
    print(f"\ninstall → checks → purge in {time.monotonic() - t0:.1f}s")


def _smoke_as_service_user(token: str, tmp_path: Path) -> None:
    """Start the installed gateway the way the unit does: as clawd-gateway, with the packaged
    config and the env file's secret, then an authenticated health check against it."""
    setpriv = shutil.which("setpriv")
    require(setpriv is not None, "setpriv (util-linux) not found")
    assert setpriv
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(STATE),
        "CLAWD_STATE_DIR": str(STATE),
        "OPENCLAW_GATEWAY_TOKEN": token,
        "PYTHONUNBUFFERED": "1",
    }
    argv = [setpriv, "--reuid", PACKAGE, "--regid", PACKAGE, "--clear-groups", "--no-new-privs"]
    argv += ["/usr/bin/clawd-gateway", "run", "--config", str(CONFIG), "--port", str(port)]
    err = (tmp_path / "gateway.err").open("w")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=str(STATE))
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "ready in" in line:
                break
        else:
            raise AssertionError(
                f"the installed gateway did not start: {(tmp_path / 'gateway.err').read_text()}"
            )
        health = sh(
            "/usr/bin/clawd-gateway", "health", "--url", f"ws://127.0.0.1:{port}", "--token", token, "--json"
        )
        assert '"ok": true' in health.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        err.close()
    assert proc.returncode == 0
    assert token not in (tmp_path / "gateway.err").read_text()
