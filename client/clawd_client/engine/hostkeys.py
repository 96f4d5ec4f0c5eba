"""Host key policy: verify against known_hosts; unknown keys need the user's yes (or
--accept-new, like OpenSSH's accept-new); a changed key is a hard stop, never overridden here.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clawd_gateway.errors import UserError

from .._asyncssh import asyncssh


def default_known_hosts() -> Path:
    return Path.home() / ".ssh" / "known_hosts"


def fingerprint(key: asyncssh.SSHKey) -> str:
    """OpenSSH's SHA256 fingerprint format."""
    blob = key.public_data
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def host_pattern(host: str, port: int | None) -> str:
    return host if port in (None, 22) else f"[{host}]:{port}"


class HostKeyUnknown(UserError):
    exit_code = 4

    def __init__(self, host: str, port: int | None, key: asyncssh.SSHKey, known_hosts: Path) -> None:
        self.host, self.port, self.key, self.known_hosts = host, port, key, known_hosts
        super().__init__(
            f"the SSH host key of {host_pattern(host, port)} is not known yet: "
            f"{key.get_algorithm()} {fingerprint(key)}",
            fix="compare the fingerprint with the server's "
            "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then run `clawd connect --accept-new` once",
        )


class HostKeyChanged(UserError):
    exit_code = 4

    def __init__(self, host: str, port: int | None, key: asyncssh.SSHKey, known_hosts: Path) -> None:
        self.host, self.port, self.key, self.known_hosts = host, port, key, known_hosts
        super().__init__(
            f"REMOTE HOST KEY CHANGED for {host_pattern(host, port)}: the server now presents "
            f"{key.get_algorithm()} {fingerprint(key)}, which does not match {known_hosts}. "
            "This can be a man-in-the-middle attack, or the server was reinstalled. clawd will not connect.",
            fix=f"if you are sure the change is legitimate: ssh-keygen -R '{host_pattern(host, port)}' "
            f"-f {known_hosts}, then connect again",
        )


@dataclass
class HostKeyPolicy:
    """Matches known_hosts for asyncssh and remembers what it saw, so failures can be explained."""

    path: Path
    accept_new: bool = False
    seen_trusted: bool = False
    verdict: UserError | None = None
    accepted: bool = False

    def match(self, host: str, addr: str, port: int | None) -> Any:
        """asyncssh's known_hosts callable: returns the trusted keys for this host from the file."""
        data = self.path.read_bytes() if self.path.is_file() else b""
        result = asyncssh.match_known_hosts(data, host, addr, port)
        self.seen_trusted = bool(result[0]) or bool(result[1])
        return result

    def validate(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        """Called by asyncssh only for a key that known_hosts does not trust."""
        shown_port = port if port != 22 else None
        if self.seen_trusted:
            self.verdict = HostKeyChanged(host, shown_port, key, self.path)
            return False
        if not self.accept_new:
            self.verdict = HostKeyUnknown(host, shown_port, key, self.path)
            return False
        remember(self.path, host, shown_port, key)
        self.accepted = True
        return True


def remember(path: Path, host: str, port: int | None, key: asyncssh.SSHKey) -> None:
    """Append one known_hosts line, creating ~/.ssh with OpenSSH's permissions if needed."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = f"{host_pattern(host, port)} {key.export_public_key('openssh').decode().strip()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(line)
