"""`clawd setup-remote` parts 4 and 5 against a real "VPS": installing clawd-gateway, auditing.

The VPS is a second real OpenSSH sshd on loopback that reads each user's own
`~/.ssh/authorized_keys`, and a fresh local account per test (`useradd`), so everything the
install writes really belongs to another user, with that user's own environment (its login PATH
finds Debian's /usr/bin/python3, not this venv's). The packages come from a wheel built from this
checkout plus a wheelhouse of its dependencies gathered here (the versions this venv runs), and
the account's pip is pointed at an index that does not exist: the VPS has no package index, as
the issue demands must work. Where systemd does not run as PID 1 (containers, CI), the gateway
is started detached, which the result must say will not survive a reboot.

Needs root (useradd, reading what the account wrote); under CLAWD_REQUIRE_SERVERS=1 nothing skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from tests.support.servers import free_port, require
from tests.support.sshd import NOT_INSTALLED, SSHD, SshdServer

from clawd_client import __version__
from clawd_client._asyncssh import asyncssh
from clawd_client.setup_remote import audit as audit_mod
from clawd_client.setup_remote import install as install_mod
from clawd_client.setup_remote.audit import audit_remote, sshd_config_from_ancestors
from clawd_client.setup_remote.install import install_gateway, platform_tags, purge_gateway, venv_package_hint
from clawd_client.setup_remote.remote import Remote
from clawd_gateway.client import call
from clawd_gateway.errors import UserError
from clawd_gateway.service.envfile import parse_env_file

ROOT = Path(__file__).resolve().parent.parent  # the checkout these tests run from

# What Debian's python3 prints for `python3 -m venv DIR` without python3.X-venv installed
# (/usr/lib/python3.11/venv/__init__.py, Debian's patch), and its exit status, 1.
DEBIAN_NO_VENV = """\
The virtual environment was not created successfully because ensurepip is not
available.  On Debian/Ubuntu systems, you need to install the python3-venv
package using the following command.

    apt install python{ver}-venv

You may need to use sudo with that command.  After installing the python3-venv
package, recreate your virtual environment.

Failing command: {dir}/bin/python3
"""


# --- pure parts ---------------------------------------------------------------------------------


def test_platform_tags_follow_pep600_and_656():
    tags = platform_tags("glibc", (2, 36), "x86_64")
    assert tags[0] == "manylinux_2_36_x86_64"
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "manylinux_2_17_x86_64"} <= set(
        tags
    )
    arm = platform_tags("glibc", (2, 31), "aarch64")
    assert "manylinux2014_aarch64" in arm and "manylinux2010_aarch64" not in arm
    assert platform_tags("musl", (1, 2), "x86_64") == [
        "musllinux_1_2_x86_64",
        "musllinux_1_1_x86_64",
        "musllinux_1_0_x86_64",
    ]


@pytest.mark.parametrize(
    ("release", "version", "package"),
    [
        ({"ID": "debian"}, (3, 11), "python3.11-venv"),
        ({"ID": "ubuntu", "ID_LIKE": "debian"}, (3, 12), "python3.12-venv"),
        ({"ID": "rocky", "ID_LIKE": "rhel centos fedora"}, (3, 9), "python3"),
        ({"ID": "alpine"}, (3, 12), "python3"),
        ({"ID": "arch"}, (3, 12), "python"),
    ],
)
def test_venv_package_named_per_distribution(release, version, package):
    assert venv_package_hint(release, version)[0] == package


def test_serving_sshd_found_among_ancestors():
    sep = "\x1f"
    old = f"900\tbash{sep}-c{sep}x{sep}\n800\tsshd: u@notty{sep}\n700\tsshd: u [priv]{sep}\n600\t/usr/sbin/sshd{sep}-D{sep}-e{sep}-f{sep}/tmp/x/sshd_config{sep}\n1\tinit{sep}\n"
    assert sshd_config_from_ancestors(old) == "/tmp/x/sshd_config"
    new = f"900\tsh{sep}\n800\tsshd-session: u@notty{sep}\n600\tsshd: /usr/sbin/sshd -D -f /etc/ssh/alt [listener] 0 of 10-100 startups{sep}\n"
    assert sshd_config_from_ancestors(new) == "/etc/ssh/alt"
    assert sshd_config_from_ancestors(f"600\t/usr/sbin/sshd{sep}-D{sep}\n") is None


# --- the "VPS": an account of its own behind a real sshd -----------------------------------------


def _kill_account_processes(uid: int) -> None:
    procs = [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=5)


class Vps:
    """A fresh account `name` reachable over `server` with `key`."""

    def __init__(self, server: SshdServer, name: str, key: Path) -> None:
        self.server, self.name, self.key = server, name, key
        pw = pwd.getpwnam(name)
        self.uid, self.home = pw.pw_uid, Path(pw.pw_dir)

    async def remote(self) -> Remote:
        conn = await asyncssh.connect(
            **self.server.connect_options(username=self.name, client_keys=[str(self.key)])
        )
        return Remote(conn=conn, target=f"{self.name}@{self.server.host}:{self.server.port}")

    def as_user(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["su", "-", self.name, "-c", script], capture_output=True, text=True, timeout=60, check=False
        )

    def gateway_processes(self) -> list[psutil.Process]:
        out = []
        for p in psutil.process_iter(["uids", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                if p.info["uids"].real == self.uid and "clawd_gateway" in " ".join(p.info["cmdline"] or []):
                    out.append(p)
        return out


@contextlib.contextmanager
def vps(*, sshd_extra: str = "") -> Iterator[Vps]:
    require(SSHD.exists(), NOT_INSTALLED)
    require(os.geteuid() == 0, "the setup-remote VPS tests create accounts (useradd): they need root")
    require(shutil.which("useradd") is not None, "useradd is not installed")
    # The sshd's directory is readable by the account (as /etc/ssh is on a VPS): the audit reads
    # the config of the sshd that serves it. Its host key stays 0600.
    directory = Path(tempfile.mkdtemp(prefix="clawd-vps-sshd-"))
    directory.chmod(0o755)
    name = f"clawdvps{secrets.token_hex(3)}"
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True, capture_output=True)
    uid = pwd.getpwnam(name).pw_uid
    server = None
    try:
        # UsePAM no: a `!` password locks the account even for keys; `*` opens it for keys only.
        subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
        server = SshdServer(
            directory,
            # As on a VPS: sshd reads the account's own authorized_keys, and serves SFTP.
            extra_config=f"AuthorizedKeysFile .ssh/authorized_keys\nSubsystem sftp internal-sftp\n{sshd_extra}",
        )
        server.config_path.chmod(0o644)
        key = server.make_client_key(f"vps_{name}")
        v = Vps(server, name, key)
        ssh_dir = v.home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
        (ssh_dir / "authorized_keys").chmod(0o600)
        # No package index on this VPS: its pip looks at an address where nothing listens.
        pip_conf = v.home / ".config" / "pip" / "pip.conf"
        pip_conf.parent.mkdir(parents=True)
        pip_conf.write_text(f"[global]\nindex-url = http://127.0.0.1:{free_port()}/simple\ntimeout = 2\n")
        subprocess.run(["chown", "-R", f"{name}:{name}", str(v.home)], check=True)
        server.start()
        yield v
    finally:
        _kill_account_processes(uid)
        if server is not None:
            server.close()
        subprocess.run(["userdel", "-r", name], capture_output=True, check=False)
        _kill_account_processes(uid)
        shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(f"/home/{name}", ignore_errors=True)


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clawd's wheel built from this checkout, plus every dependency as a wheel, at the versions
    this venv runs (pip's cache / find-links / index as configured here): what `--from DIR` gets."""
    house = tmp_path_factory.mktemp("wheelhouse")
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", str(ROOT), "-w", str(house)],
        check=True,
        capture_output=True,
    )
    (wheel,) = house.glob("clawd-*.whl")
    pins = house.parent / "constraints.txt"
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True, check=True
    ).stdout
    pins.write_text("".join(line + "\n" for line in frozen.splitlines() if "==" in line))
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "-c", str(pins), "--dest", str(house), str(wheel)],
        check=True,
        capture_output=True,
    )
    for p in house.iterdir():
        p.chmod(0o644)
    house.chmod(0o755)
    print(f"\nwheelhouse: {len(list(house.glob('*.whl')))} wheels in {time.monotonic() - t0:.1f}s")
    return house


def _systemd_runs() -> bool:
    return Path("/run/systemd/system").is_dir()


# --- (b) installed from the checkout's wheels, started, healthy; re-run; audit; purge -------------


def test_install_from_wheelhouse_runs_healthy_then_purge(wheelhouse: Path):
    async def main(v: Vps) -> None:
        port = free_port()
        remote = await v.remote()
        try:
            steps: list[str] = []
            t0 = time.monotonic()
            result = await install_gateway(
                remote, port=port, source=str(wheelhouse), system=False, yes=True, progress=steps.append
            )
            elapsed = time.monotonic() - t0
            print(f"\ninstall (venv + {len(list(wheelhouse.glob('*.whl')))} wheels over SFTP, offline pip, start, ready): {elapsed:.1f}s")
            print("\n".join(f"  {s}" for s in steps))
            data = v.home / ".local" / "share" / "clawd-gateway"
            assert result.venv == str(data / "venv")
            assert result.token_file == str(v.home / ".config" / "clawd-gateway" / "env")
            if _systemd_runs():
                assert result.service == "systemd-user"
            else:
                assert result.service == "detached"
                assert result.note and "will NOT come back after a reboot" in result.note
            assert any("offline" in s or "uploading" in s for s in steps)

            # The venv has this client's version, owned by the account, not by us.
            out = v.as_user(f"{result.venv}/bin/clawd-gateway --version")
            assert out.stdout.strip() == f"clawd-gateway {__version__}", out
            assert (data / "venv").stat().st_uid == v.uid
            # The secret: a 0600 file of the account's, read over the session as core reads it.
            token_file = Path(result.token_file)
            assert token_file.stat().st_uid == v.uid and token_file.stat().st_mode & 0o777 == 0o600
            text = await remote.read_file(result.token_file)
            token = parse_env_file(text or "")["OPENCLAW_GATEWAY_TOKEN"]
            assert len(token) >= 32

            # Healthy: the real protocol over a real websockets client, with that token.
            payload, session = await call(f"ws://127.0.0.1:{port}", "health", token=token, timeout=10)
            assert payload.get("ok", True) is not False
            procs = v.gateway_processes()
            assert procs, "no clawd-gateway process runs as the account"
            listeners = [
                c for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port and c.status == "LISTEN"
            ]
            assert listeners and all(c.laddr.ip in ("127.0.0.1", "::1") for c in listeners)
            if result.service == "detached":
                # Detached: its own session, so the SSH session closing does not take it down.
                assert all(p.pid == os.getsid(p.pid) or os.getsid(p.pid) != os.getsid(os.getpid()) for p in procs)

            # A second run changes nothing: same process, nothing reinstalled.
            pids = sorted(p.pid for p in procs)
            again: list[str] = []
            t1 = time.monotonic()
            second = await install_gateway(
                remote, port=port, source=str(wheelhouse), system=False, yes=True, progress=again.append
            )
            print(f"re-run: {time.monotonic() - t1:.1f}s: " + " | ".join(again))
            assert second == result
            assert sorted(p.pid for p in v.gateway_processes()) == pids
            assert any("already installed" in s for s in again)
            assert not any("uploading" in s or "creating a venv" in s for s in again)

            # Audit: the installed gateway's own audit runs there; a fresh loopback install has no
            # critical finding (this sshd takes keys only).
            findings = await audit_remote(remote, kind="clawd")
            print("audit: " + "; ".join(f"{f.severity} {f.id}" for f in findings))
            assert findings and not [f for f in findings if f.severity == "critical"], findings
            assert any(f.id == "audit.regular" for f in findings)
        finally:
            await remote.close()

        # The link closing does not stop the detached gateway.
        await asyncio.sleep(0.5)
        assert v.gateway_processes()

        remote = await v.remote()
        try:
            gone: list[str] = []
            await purge_gateway(remote, system=False, progress=gone.append)
            print("purge: " + " | ".join(gone))
        finally:
            await remote.close()
        assert not data.exists()
        assert not (v.home / ".config" / "clawd-gateway").exists()
        assert not (v.home / ".config" / "systemd" / "user" / "clawd-gateway.service").exists()
        assert not (v.home / ".local" / "state" / "clawd" / "gateway").exists()
        psutil.wait_procs(v.gateway_processes(), timeout=5)
        assert not v.gateway_processes()

    with vps() as v:
        asyncio.run(main(v))


def test_install_from_the_checkout_builds_the_wheelhouse_here():
    """`--from SOURCE_DIR`: the wheel is built here (pip wheel --no-deps) and its dependencies are
    gathered here for the VPS's Python (asked over SSH), so the index-less VPS installs offline."""

    async def main(v: Vps) -> None:
        port = free_port()
        remote = await v.remote()
        try:
            steps: list[str] = []
            t0 = time.monotonic()
            result = await install_gateway(
                remote, port=port, source=str(ROOT), system=False, yes=True, progress=steps.append
            )
            print(f"\ninstall --from the checkout (wheel + wheelhouse built here, upload, offline pip, start): {time.monotonic() - t0:.1f}s")
            print("\n".join(f"  {s}" for s in steps))
            assert any(s.startswith("building a wheel from") for s in steps)
            assert any("dependencies as wheels for the VPS's Python 3." in s for s in steps)
            assert "installing clawd 0.1.0 from the uploaded wheels" in steps  # complete: no index needed
            token = parse_env_file(await remote.read_file(result.token_file) or "")["OPENCLAW_GATEWAY_TOKEN"]
            payload, _ = await call(f"ws://127.0.0.1:{port}", "health", token=token, timeout=10)
            assert payload.get("ok", True) is not False
            await purge_gateway(remote, system=False, progress=lambda s: None)
        finally:
            await remote.close()
        assert not (v.home / ".local" / "share" / "clawd-gateway").exists()

    with vps() as v:
        asyncio.run(main(v))


def test_gateway_port_held_by_another_process_fails_with_the_log(wheelhouse: Path):
    import socket

    async def main(v: Vps, port: int) -> None:
        remote = await v.remote()
        try:
            with pytest.raises(UserError) as caught:
                await install_gateway(
                    remote, port=port, source=str(wheelhouse), system=False, yes=True, progress=lambda s: None
                )
        finally:
            await remote.close()
        text = caught.value.render()
        print(f"\n{text}")
        assert "exited" in text and str(port) in text
        assert "in use" in text.lower() or "address" in text.lower()

    with socket.socket() as holder, vps() as v:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        asyncio.run(main(v, holder.getsockname()[1]))


def test_dry_run_changes_nothing(wheelhouse: Path):
    async def main(v: Vps) -> None:
        remote = await v.remote()
        remote.dry_run = True
        try:
            await install_gateway(
                remote, port=free_port(), source=str(wheelhouse), system=False, yes=True, progress=lambda s: None
            )
        finally:
            await remote.close()
        planned = "\n".join(remote.planned)
        assert "python3 -m venv" in planned and "upload" in planned and "install-service" in planned
        assert "pip install" in planned and "--no-index" in planned
        assert not (v.home / ".local" / "share" / "clawd-gateway").exists()
        assert not v.gateway_processes()

    with vps() as v:
        asyncio.run(main(v))


# --- (f) no venv module on the VPS ------------------------------------------------------------------


def test_no_venv_module_names_the_package(wheelhouse: Path):
    """A python3 that behaves like Debian's without python3.X-venv: `-m venv` prints Debian's text
    and exits 1 (anything else runs the real interpreter)."""

    async def main(v: Vps) -> None:
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        real = subprocess.run(
            ["su", "-", v.name, "-c", "command -v python3"], capture_output=True, text=True, check=True
        ).stdout.strip()
        shim_dir = v.home / "debian-python"
        shim_dir.mkdir()
        message = DEBIAN_NO_VENV.replace("{ver}", version).replace("{dir}", '$3')
        (shim_dir / "python3").write_text(
            "#!/bin/sh\n"
            'if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then\n'
            f"  cat <<EOF\n{message}EOF\n  exit 1\nfi\n"
            f'exec {real} "$@"\n'
        )
        (shim_dir / "python3").chmod(0o755)
        bashrc = v.home / ".bashrc"
        bashrc.write_text(f'export PATH="{shim_dir}:$PATH"\n' + bashrc.read_text())
        subprocess.run(["chown", "-R", f"{v.name}:{v.name}", str(shim_dir), str(bashrc)], check=True)
        remote = await v.remote()
        try:
            assert (await remote.run("command -v python3")).stdout.strip() == str(shim_dir / "python3")
            with pytest.raises(UserError) as caught:
                await install_gateway(
                    remote, port=free_port(), source=str(wheelhouse), system=False, yes=True, progress=lambda s: None
                )
        finally:
            await remote.close()
        text = caught.value.render()
        print(f"\n{text}")
        release = dict(
            line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
        )
        if release.get("ID") == "debian":
            assert f"python{version}-venv" in text
            assert f"apt install python{version}-venv" in (caught.value.fix or "")
        assert not (v.home / ".local" / "share" / "clawd-gateway" / "venv").exists()
        assert not v.gateway_processes()

    with vps() as v:
        asyncio.run(main(v))


# --- (5) audit: an sshd that takes passwords ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["openclaw", "clawd"])
def test_audit_password_login_sshd_is_critical_with_fix(kind: str):
    async def main(v: Vps) -> None:
        remote = await v.remote()
        try:
            assert await audit_mod.serving_sshd_config(remote) == str(v.server.config_path)
            findings = await audit_remote(remote, kind=kind)
        finally:
            await remote.close()
        print("\n" + "\n".join(f"{f.severity} {f.id}: {f.message} -> {f.fix}" for f in findings))
        critical = [f for f in findings if f.severity == "critical"]
        pw = [f for f in critical if f.id == "sshd.password_auth"]
        assert pw and pw[0].fix and "PasswordAuthentication no" in pw[0].fix
        assert "PasswordAuthentication yes" in pw[0].message
        assert findings[0].severity == "critical"  # critical first

    with vps(sshd_extra="PasswordAuthentication yes") as v:
        asyncio.run(main(v))


def test_module_layout_names():
    # The paths core's discovery and undo rely on (README: "Installing the gateway on the VPS").
    lay = install_mod.Layout("u", 1000, "/home/u", "/home/u/.local/share/clawd-gateway", "/home/u/.config", "/home/u/.local/state/clawd/gateway")
    assert lay.venv == "/home/u/.local/share/clawd-gateway/venv"
    assert lay.user_env_file == "/home/u/.config/clawd-gateway/env"
    assert lay.config == "/home/u/.local/share/clawd-gateway/openclaw.json"
