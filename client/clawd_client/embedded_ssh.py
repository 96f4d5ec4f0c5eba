"""A tiny SSH endpoint on loopback for the demo (and tests): the "VPS" without a VPS.

It accepts one generated client key, allows local forwards to one gateway port on 127.0.0.1
only, and offers no shell. Its host key is written to a known_hosts file the demo profile
uses, so the client still verifies the host key exactly as it would against a real server.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from ._asyncssh import asyncssh
from .engine import host_pattern


class _Server(asyncssh.SSHServer):
    def __init__(self, allowed_key: asyncssh.SSHKey, gateway_port: int) -> None:
        self._allowed = allowed_key
        self._gateway_port = gateway_port

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return key == self._allowed

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        # Only the gateway, only on loopback: this endpoint is not a general-purpose proxy.
        return dest_host in ("127.0.0.1", "localhost") and dest_port == self._gateway_port


@dataclass
class EmbeddedSsh:
    server: asyncssh.SSHAcceptor
    port: int
    client_key_path: Path
    known_hosts_path: Path
    user: str

    def close(self) -> None:
        self.server.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(Exception):
            await self.server.wait_closed()


async def start_embedded_ssh(
    directory: Path, gateway_port: int, port: int = 0, user: str = "clawd"
) -> EmbeddedSsh:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key_path = directory / "client_ed25519"
    client_key.write_private_key(str(client_key_path))
    client_key_path.chmod(0o600)
    public = asyncssh.import_public_key(client_key.export_public_key())
    server = await asyncssh.listen(
        "127.0.0.1",
        port,
        server_host_keys=[host_key],
        server_factory=lambda: _Server(public, gateway_port),
        allow_pty=False,
        agent_forwarding=False,
        x11_forwarding=False,
    )
    bound = server.sockets[0].getsockname()[1]
    known = directory / "known_hosts"
    line = f"{host_pattern('127.0.0.1', bound)} {host_key.export_public_key('openssh').decode().strip()}\n"
    known.write_text(line)
    known.chmod(0o600)
    return EmbeddedSsh(server, bound, client_key_path, known, user)
