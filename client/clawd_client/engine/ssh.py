"""The SSH leg: asyncssh connect + one direct-tcpip channel per client, errors sorted into fatal
and transient.

Only this module knows about asyncssh. It reports link loss through a callback, and every
failure comes out as TunnelError with `fatal` set when retrying cannot help (auth refused,
host key changed or unknown, bad key file, bad config).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clawd_gateway.errors import UserError

from .._asyncssh import asyncssh
from ..profiles import Profile
from .hostkeys import HostKeyPolicy, default_known_hosts

CONNECT_TIMEOUT = 10.0
LOGIN_TIMEOUT = 20.0
# The receive window and largest packet we offer on each direct-tcpip channel (asyncssh's
# defaults are 2 MiB / 32 KiB). sshd sends at most this per packet, so fewer, larger packets come
# down: each packet costs a fixed amount of Python (decrypt call, header parse, dispatch).
CHANNEL_WINDOW = 8 << 20
CHANNEL_MAX_PKTSIZE = 128 << 10


class TunnelError(Exception):
    """`network` marks failures where the server was not reachable at all (refused, timeout,
    unreachable, DNS): the runner then watches for the port to come back instead of only
    waiting out its backoff."""

    def __init__(
        self, message: str, *, fatal: bool, cause: UserError | None = None, network: bool = False
    ) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.cause = cause
        self.network = network


def _preferred_ciphers() -> list[str]:
    """AES-GCM first: with AES-NI it costs far less CPU than chacha20-poly1305 in asyncssh
    (measured 1.2-1.5x the forward throughput at ~0.6x the CPU); the rest keep asyncssh's order."""
    from asyncssh.encryption import get_default_encryption_algs

    gcm = [b"aes128-gcm@openssh.com", b"aes256-gcm@openssh.com"]
    rest = [a for a in get_default_encryption_algs() if a not in gcm]
    return [a.decode() for a in gcm + rest]


class _Client(asyncssh.SSHClient):
    def __init__(self, policy: HostKeyPolicy, on_lost: Callable[[str], None]) -> None:
        self._policy = policy
        self._on_lost = on_lost
        self.closing = False
        self.established = False  # failures before this are reported by open_tunnel itself

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        return self._policy.validate(host, addr, port, key)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.established and not self.closing:
            self._on_lost(str(exc) if exc else "SSH connection closed by the server")


class _ChannelHalf:
    """The channel as listener.Half: calls after close are dropped (the client side may still
    deliver bytes in the same loop iteration as the channel's close)."""

    __slots__ = ("_chan",)

    def __init__(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self._chan = chan

    def write(self, data: bytes) -> None:
        if not self._chan.is_closing():
            self._chan.write(data)

    def write_eof(self) -> None:
        if not self._chan.is_closing():
            self._chan.write_eof()

    def close(self) -> None:
        self._chan.close()

    def pause_reading(self) -> None:
        self._chan.pause_reading()

    def resume_reading(self) -> None:
        self._chan.resume_reading()


class _Splice(asyncssh.SSHTCPSession[bytes]):
    """One direct-tcpip channel spliced by callbacks to a client socket (listener.Attachable):
    channel data goes straight to the client's transport; no SSHReader buffer, no task per read.
    Whatever arrives between the channel opening and `attach` is kept and handed over then."""

    def __init__(self) -> None:
        self._chan: asyncssh.SSHTCPChannel[bytes] | None = None
        self._peer: Any = None
        self._early: list[bytes] = []
        self._eof = self._lost = self._full = False

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self._chan = chan

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if self._peer is not None:
            self._peer.write(data)
        else:
            self._early.append(data)

    def eof_received(self) -> bool:
        if self._peer is not None:
            self._peer.write_eof()
        else:
            self._eof = True
        return True  # half-close: the client may still send

    def connection_lost(self, exc: Exception | None) -> None:
        if self._peer is not None:
            self._peer.close()
        else:
            self._lost = True

    def pause_writing(self) -> None:  # the channel's send window or buffer is full
        self._full = True
        if self._peer is not None:
            self._peer.pause_reading()

    def resume_writing(self) -> None:
        self._full = False
        if self._peer is not None:
            self._peer.resume_reading()

    def close(self) -> None:
        """Close the channel: an open nobody was attached to (its client left) must not linger."""
        if self._chan is not None:
            self._chan.close()

    def attach(self, peer: Any) -> _ChannelHalf:
        assert self._chan is not None
        self._peer = peer
        early, self._early = self._early, []
        for data in early:
            peer.write(data)
        if self._eof:
            peer.write_eof()
        if self._lost:
            peer.close()
        if self._full:
            peer.pause_reading()
        return _ChannelHalf(self._chan)


@dataclass
class Tunnel:
    """A logged-in SSH connection; each client connection becomes one direct-tcpip channel on it."""

    conn: asyncssh.SSHClientConnection
    client: _Client
    target: str
    remote: tuple[str, int]
    cipher: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def open_stream(self) -> tuple[_Splice, _Splice]:
        """One channel to the gateway (what `ssh -L` does per accepted connection), for the
        listener's callback splice (listener.Attachable)."""
        splice = _Splice()
        await self.conn.create_connection(
            lambda: splice, *self.remote, window=CHANNEL_WINDOW, max_pktsize=CHANNEL_MAX_PKTSIZE
        )
        return splice, splice

    async def close(self) -> None:
        self.client.closing = True
        self.conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.conn.wait_closed(), 5)


def resolve_target(profile: Profile) -> tuple[str, int]:
    """The real host and port behind a profile, applying ~/.ssh/config (HostName, Port) the way
    asyncssh will when it connects; an alias such as `clawdbot-remote` is not resolvable by DNS."""
    assert profile.ssh is not None
    ssh = profile.ssh
    try:
        # config=(): ~/.ssh/config, as connect() reads it by default (the options class alone reads
        # none); client_keys=None: only the address is wanted, so a missing key file must not matter.
        given = ssh.port if ssh.port else ()
        opts = asyncssh.SSHClientConnectionOptions(config=(), host=ssh.host, port=given, client_keys=None)
        host, port = str(opts.host or ssh.host), int(opts.port or 22)
    except (asyncssh.Error, ValueError, OSError):
        host, port = ssh.host, ssh.port or 22
    return host, ssh.port or port


def connect_options(profile: Profile, policy: HostKeyPolicy) -> dict[str, Any]:
    assert profile.ssh is not None
    ssh = profile.ssh
    opts: dict[str, Any] = {
        "known_hosts": policy.match,
        "keepalive_interval": profile.keepalive_interval,
        "keepalive_count_max": profile.keepalive_count,
        "connect_timeout": CONNECT_TIMEOUT,
        "login_timeout": LOGIN_TIMEOUT,
        "encryption_algs": _preferred_ciphers(),
    }
    if ssh.port is not None:
        opts["port"] = ssh.port
    if ssh.user:
        opts["username"] = ssh.user
    if ssh.identity:
        opts["client_keys"] = [str(Path(ssh.identity).expanduser())]
    if ssh.jump:
        opts["tunnel"] = ssh.jump
    return opts


async def open_tunnel(
    profile: Profile,
    *,
    on_lost: Callable[[str], None],
    accept_new: bool = False,
) -> Tunnel:
    """Log in; the local listener (engine/listener.py) opens one channel per client through it."""
    assert profile.ssh is not None
    known = Path(profile.ssh.known_hosts).expanduser() if profile.ssh.known_hosts else default_known_hosts()
    policy = HostKeyPolicy(known, accept_new=accept_new)
    client = _Client(policy, on_lost)
    target = profile.ssh.display()
    try:
        conn, _ = await asyncssh.create_connection(
            lambda: client, profile.ssh.host, **connect_options(profile, policy)
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        cause = policy.verdict
        raise TunnelError(cause.render() if cause else f"{target}: {exc}", fatal=True, cause=cause) from None
    except asyncssh.PermissionDenied:
        raise TunnelError(
            f"SSH authentication to {target} was refused: no key was accepted"
            + (
                f" (identity {profile.ssh.identity})" if profile.ssh.identity else " (agent and default keys)"
            ),
            fatal=True,
        ) from None
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
        raise TunnelError(f"cannot use the SSH key {profile.ssh.identity}: {exc}", fatal=True) from None
    except asyncssh.ConfigParseError as exc:
        raise TunnelError(f"~/.ssh/config: {exc}", fatal=True) from None
    except FileNotFoundError as exc:
        raise TunnelError(f"file not found: {exc.filename}", fatal=True) from None
    except socket.gaierror as exc:
        raise TunnelError(
            f"cannot resolve {profile.ssh.host}: {exc.strerror}", fatal=False, network=True
        ) from None
    except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        if isinstance(exc, asyncio.TimeoutError):
            reason = f"no answer within {CONNECT_TIMEOUT:g}s"
        # Refused/unreachable: the server is not there. A timeout may be a hung sshd that accepts
        # TCP, so it must not trigger the reachability fast path (it would defeat the backoff).
        network = isinstance(exc, OSError) and not isinstance(exc, TimeoutError | asyncio.TimeoutError)
        raise TunnelError(f"SSH to {target} failed: {reason}", fatal=False, network=network) from None

    client.established = True
    if conn.is_closed():  # lost between login and now: report it as a failed connect
        raise TunnelError(f"SSH connection to {target} closed right after login", fatal=False)
    remote = (profile.remote_host, profile.remote_port)
    return Tunnel(conn, client, target, remote, conn.get_extra_info("send_cipher"))


SshClient = _Client  # the face's name for doctor, which logs in without a forward
