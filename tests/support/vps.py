"""A "VPS" on this machine for `clawd setup-remote` tests: a fresh local account (`useradd -m`) and
a second real sshd on loopback that reads each account's own ~/.ssh/authorized_keys with
StrictModes on, so the files setup-remote writes really belong to another user.

Needs root (useradd, and an sshd that can switch users). Everything started as the account is
killed and the account removed (`userdel -r`) when the test ends.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
from tests.support.servers import require
from tests.support.sshd import SSHD, SshdServer, running_sshd

from clawd_client._asyncssh import asyncssh


@dataclass
class Vps:
    user: str
    uid: int
    gid: int
    home: Path
    sshd: SshdServer

    @property
    def target(self) -> str:
        return f"{self.user}@127.0.0.1:{self.sshd.port}"

    @property
    def authorized_keys(self) -> Path:
        return self.home / ".ssh" / "authorized_keys"

    def authorize(self, public_line: str) -> None:
        """Add an admin key the way a user would have (before setup-remote runs)."""
        ssh = self.home / ".ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        with self.authorized_keys.open("a") as fh:
            fh.write(public_line.strip() + "\n")
        for p in (ssh, self.authorized_keys):
            os.chown(p, self.uid, self.gid)
        self.authorized_keys.chmod(0o600)

    def chown_tree(self, path: Path) -> None:
        for root, dirs, files in os.walk(path):
            for n in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
                os.chown(n, self.uid, self.gid)

    def popen(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """A process running as the account (its own session, so it can be killed as a group)."""
        with log.open("wb") as fh:
            return subprocess.Popen(
                argv, env=env, cwd=self.home, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                user=self.uid, group=self.gid, extra_groups=[], start_new_session=True,
            )  # fmt: skip


def admin_key(home: Path) -> str:
    """The laptop user's ordinary key (~/.ssh/id_ed25519 in the test HOME); its public line."""
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519", comment="laptop-admin")
    path = ssh / "id_ed25519"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.export_private_key("openssh"))
    public = key.export_public_key("openssh").decode().strip()
    (ssh / "id_ed25519.pub").write_text(public + "\n")
    return public


def _kill_user(uid: int) -> None:
    procs = [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)


@contextlib.contextmanager
def vps_account(tmp_path: Path) -> Iterator[Vps]:
    require(os.geteuid() == 0, "the setup-remote tests create a local account (useradd): they need root")
    require(shutil.which("useradd") is not None, "useradd is missing (apt-get install passwd)")
    require(SSHD.exists(), "openssh-server is not installed (apt-get install openssh-server)")
    name = f"clawdvps{secrets.token_hex(3)}"
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True, capture_output=True)
    try:
        # UsePAM no: a `!` password field locks the account even for keys; `*` unlocks it without one.
        subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
        pw = pwd.getpwnam(name)
        home = Path(pw.pw_dir)
        home.chmod(0o750)
        with running_sshd(
            tmp_path / "vps-sshd",
            authorized_keys_file=".ssh/authorized_keys",
            strict_modes=True,
            extra_config="Subsystem sftp internal-sftp",  # as every VPS image has it
        ) as server:
            yield Vps(name, pw.pw_uid, pw.pw_gid, home, server)
    finally:
        with contextlib.suppress(KeyError):
            _kill_user(pwd.getpwnam(name).pw_uid)
        subprocess.run(["userdel", "-r", name], check=False, capture_output=True)


def shared_peer_root(root: Path) -> Path:
    """The OpenClaw peer where another account can run it: the cache usually sits under /root
    (0700), so a hard-linked copy (same files, no extra space) goes to /var/tmp once."""
    probe = root
    while probe != probe.parent:
        if not os.stat(probe).st_mode & 0o001:
            break
        probe = probe.parent
    else:
        return root
    shared = Path("/var/tmp") / f"clawd-openclaw-peer-shared-{root.name}"
    done = shared / ".complete"
    if not done.exists():
        if shared.exists():
            shutil.rmtree(shared)
        tmp = shared.with_name(shared.name + f".tmp{os.getpid()}")
        subprocess.run(["cp", "-al", str(root), str(tmp)], check=True)
        os.chmod(tmp, 0o755)  # noqa: S103 - another account must read it
        tmp.rename(shared)
        done.touch()
    return shared
