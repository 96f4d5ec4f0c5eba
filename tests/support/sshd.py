"""A real OpenSSH sshd on a loopback port, for tests of the SSH tunnel engine.

Why real OpenSSH and not asyncssh's server: the product talks to OpenSSH on users' VPSes, and its
behaviour is what matters (session processes that outlive a stopped master, host key checks,
forwarding permissions, keepalive replies). Everything lives in a temp dir: host key, client key,
authorized_keys, config, log, pid file, and a known_hosts with the host key, so tests always
verify the host key (never known_hosts=None).

Process model (Debian's OpenSSH 9.2, see ci-recipes.md section 1): `sshd -D -e` is the master we
start; each connection is a child `sshd: USER` that calls setsid(). SIGTERM to the master does NOT
end open sessions; `kill_sessions()` does, finding them by their server-side socket on our port
(they are orphans once the master is gone, so "children of the master" is not enough).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from tests.support.servers import require

from clawd_client._asyncssh import asyncssh

SSHD = Path("/usr/sbin/sshd")
NOT_INSTALLED = "openssh-server is not installed (apt-get install openssh-server)"


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _write_key(path: Path, comment: str) -> asyncssh.SSHKey:
    """A fresh ed25519 key in OpenSSH format, 0600 (sshd refuses group/world-readable host keys)."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.export_private_key("openssh"))
    path.with_name(path.name + ".pub").write_bytes(key.export_public_key("openssh"))
    return key


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


class SshdServer:
    """One sshd in `directory`, listening on host:port; see the module doc for the process model."""

    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        extra_config: str = "",
        authorized_keys_file: str | None = None,
        strict_modes: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.host = host
        self._fixed_port = port is not None
        self.port: int = port if port is not None else _free_port(host)
        self.user = getpass.getuser()
        self.extra_config = extra_config
        # `.ssh/authorized_keys` (with strict_modes): each account's own file, as on a real VPS.
        self.authorized_keys_file = authorized_keys_file
        self.strict_modes = strict_modes
        self.host_key_path = self.directory / "ssh_host_ed25519_key"
        self.client_key_path = self.directory / "client_ed25519"
        self.authorized_keys_path = self.directory / "authorized_keys"
        self.config_path = self.directory / "sshd_config"
        self.log_path = self.directory / "sshd.log"
        self.pid_path = self.directory / "sshd.pid"
        self.known_hosts = self.directory / "known_hosts"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._prepare()

    # --- files -----------------------------------------------------------------------------

    def _prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_key(self.host_key_path, "clawd-test-host")
        client = _write_key(self.client_key_path, "clawd-test-client")
        self.authorized_keys_path.write_bytes(client.export_public_key("openssh"))
        self._write_config()

    def _write_config(self) -> None:
        lines = [
            f"Port {self.port}",
            f"ListenAddress {self.host}",
            f"HostKey {self.host_key_path}",
            f"AuthorizedKeysFile {self.authorized_keys_file or self.authorized_keys_path}",
            f"PidFile {self.pid_path}",
            f"StrictModes {'yes' if self.strict_modes else 'no'}",
            "UsePAM no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no",
            "PermitRootLogin prohibit-password",
            "AllowTcpForwarding yes",
            # Forwards may only reach this machine: no test can tunnel out to the network.
            "PermitOpen 127.0.0.1:* localhost:* [::1]:*",
            "AllowAgentForwarding no",
            "AllowStreamLocalForwarding no",
            "X11Forwarding no",
            "UseDNS no",
            "PrintMotd no",
            "MaxStartups 100:30:200",
            "MaxSessions 50",
            "LogLevel VERBOSE",
        ]
        text = "\n".join(lines) + "\n"
        if self.extra_config:
            # sshd takes the first value of a keyword, so extra settings must come first.
            text = self.extra_config.rstrip("\n") + "\n" + text
        self.config_path.write_text(text)

    @property
    def host_public_key_line(self) -> str:
        """`ssh-ed25519 AAAA... clawd-test-host` of the *current* host key."""
        return (self.host_key_path.with_name(self.host_key_path.name + ".pub")).read_text().strip()

    @property
    def host_public_key(self) -> asyncssh.SSHKey:
        return asyncssh.import_public_key(self.host_public_key_line)

    def known_hosts_line(self, port: int | None = None, host: str | None = None) -> str:
        """An OpenSSH known_hosts line for `[host]:port` with the current host key."""
        host = host or self.host
        port = port or self.port
        name = host if port == 22 else f"[{host}]:{port}"
        key_type, key_data = self.host_public_key_line.split()[:2]
        return f"{name} {key_type} {key_data}\n"

    def write_known_hosts(
        self, path: Path | None = None, *, port: int | None = None, host: str | None = None
    ) -> Path:
        """Write a known_hosts file trusting the *current* host key (e.g. for a relay's port)."""
        target = path or self.directory / f"known_hosts.{host or self.host}.{port or self.port}"
        target.write_text(self.known_hosts_line(port, host))
        return target

    def make_client_key(self, name: str, *, authorized: bool = False) -> Path:
        """Another client key; unless `authorized`, one the server will refuse."""
        path = self.directory / name
        key = _write_key(path, f"clawd-test-{name}")
        if authorized:
            with self.authorized_keys_path.open("ab") as f:
                f.write(key.export_public_key("openssh"))
        return path

    def regenerate_host_key(self, *, restart: bool = True) -> str:
        """A new host key (for "host key changed" tests). `self.known_hosts` keeps the OLD key;
        `write_known_hosts()` makes one with the new key. Restarts a running master so it serves it."""
        was_running = self.running
        if was_running and restart:
            self.stop()
        _write_key(self.host_key_path, "clawd-test-host-regenerated")
        if was_running and restart:
            self.start()
        return self.host_public_key_line

    # --- process ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def master_pid(self) -> int | None:
        return self.proc.pid if self.running and self.proc else None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = 10.0) -> SshdServer:
        """Start the master (again: same port, current host key) and wait until it listens."""
        require(SSHD.exists(), NOT_INSTALLED)
        if self.running:
            return self
        if os.geteuid() == 0:
            # As root, sshd insists on its privilege separation directory; nothing creates it
            # here because systemd/tmpfiles do not run in CI.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
            os.chmod("/run/sshd", 0o755)  # noqa: S103 - what sshd requires (root-owned, not writable by others)
        attempts = 1 if self._fixed_port else 5
        for attempt in range(attempts):
            if self._start_once(timeout):
                self._fixed_port = True  # from now on restarts reuse this port
                if not self.known_hosts.exists():
                    self.write_known_hosts(self.known_hosts)
                return self
            if attempt + 1 < attempts and "Address already in use" in self._log_since_start():
                self.port = _free_port(self.host)  # lost a race for the port: pick another
                self._write_config()
                continue
            break
        raise RuntimeError(f"sshd did not start on {self.host}:{self.port}:\n{self._log_since_start()}")

    def _log_since_start(self) -> str:
        return self.log_text()[self._log_offset :]

    def _start_once(self, timeout: float) -> bool:
        self._log_offset = len(self.log_text())
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Server listening on" in self._log_since_start():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.005)
        self._kill_master()
        return False

    def sessions(self) -> list[int]:
        """Pids of the per-connection sshd processes (and their children), including orphans
        of a stopped master: any `sshd` with a server-side connection on our port."""
        master = self.master_pid
        pids: set[int] = set()
        if master:
            with contextlib.suppress(psutil.Error):
                pids.update(c.pid for c in psutil.Process(master).children(recursive=True))
        with contextlib.suppress(psutil.Error, OSError):
            for c in psutil.net_connections(kind="tcp"):
                if c.pid and c.laddr and c.laddr.port == self.port and c.status != psutil.CONN_LISTEN:
                    pids.add(c.pid)
        found: set[int] = set()
        for pid in pids - {master, os.getpid()}:
            try:
                proc = psutil.Process(pid)
                if proc.name() != "sshd" or proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                found.add(pid)
                found.update(p.pid for p in proc.children(recursive=True))
            except psutil.Error:
                continue
        return sorted(found)

    def kill_sessions(self, sig: int = signal.SIGKILL, timeout: float = 5.0) -> list[int]:
        """End every open session (the master keeps listening); returns the pids signalled."""
        pids = self.sessions()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while not all(_gone(p) for p in pids):
            if time.monotonic() > deadline:
                raise AssertionError(f"sshd sessions {pids} still alive {timeout}s after signal {sig}")
            time.sleep(0.01)
        return pids

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the master only: it stops listening, but open sessions live on (as in real life)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_master()
        self.proc = None

    def _kill_master(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def crash(self) -> None:
        """The server goes away as a whole: stop listening first, then end every session, so a
        client that reconnects the instant its session dies finds nobody (close() kills the
        sessions first, and a fast client can log in again in between). start() brings it back."""
        self.stop()
        self.kill_sessions()

    def close(self) -> None:
        """Tear everything down: sessions first (they would outlive the master), then the master."""
        try:
            self.kill_sessions()
        finally:
            self.stop()

    # --- convenience -----------------------------------------------------------------------

    def connect_options(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for asyncssh.connect() that log in and verify the host key."""
        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": self.user,
            "client_keys": [str(self.client_key_path)],
            "known_hosts": str(self.known_hosts),
            "agent_path": None,
            "config": [],
        }
        options.update(overrides)
        return options

    def __enter__(self) -> SshdServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def running_sshd(directory: Path, **kwargs: Any) -> Iterator[SshdServer]:
    """A started SshdServer in `directory`; skipped (or failed under CLAWD_REQUIRE_SERVERS=1)
    when openssh-server is missing; everything it started is gone afterwards."""
    require(SSHD.exists(), NOT_INSTALLED)
    server = SshdServer(directory, **kwargs)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshdServer]:
    """The fixture form: `from tests.support.sshd import sshd` into a test module or conftest."""
    with running_sshd(tmp_path / "sshd") as server:
        yield server
