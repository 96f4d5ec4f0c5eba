"""The ways to the gateway the supervisor can drive: an SSH forward, a tailnet relay, a direct URL.

The state machine does not care how the gateway is reached; the runner asks a path to open,
probes through what it opened, and closes it. Each path reports failures as TunnelError
(`fatal` when only the user can fix it, `network` when the far end was not reachable, which
makes the runner watch for it to come back instead of sleeping out its backoff), and may
watch its link while up (`watch` returns a reason when the link is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from clawd_gateway.errors import ConfigError, UserError

from ..profiles import Profile, url_target
from . import tailscale as ts
from .listener import Opener
from .relay import Relay, Upstream, describe_error, open_upstream, tls_context
from .ssh import TunnelError, open_tunnel, resolve_target

TAILSCALE_POLL_S = 10.0  # while up: is the daemon still logged in and the peer online?
TAILSCALE_REACH_POLL_S = 2.0  # while backing off because of Tailscale: notice the fix quickly
REACH_POLL_S = 0.2
REACH_TIMEOUT_S = 0.5

StateReader = Callable[[], Awaitable[ts.TailscaleState]]


@dataclass
class Opened:
    """What an open path gives the runner.

    A path that serves the profile's local port hands over `open_stream`: the runner's listener
    (engine/listener.py), bound from up to down, calls it once per client connection. A path
    with no local listener (a direct URL with the relay turned off) names the URL clients use
    and where the probe goes instead."""

    close: Callable[[], Awaitable[None]]
    open_stream: Opener | None = None
    dials: str = "upstream"  # what open_stream connects to, for error messages
    client_url: str | None = None  # clients use this instead of our local port
    probe_url: str | None = None  # the probe's URL when there is no local listener
    peer: tuple[str, int] | None = None  # the far end we dialled, for the reachability watch
    extra: dict[str, Any] = field(default_factory=dict)


class Path(Protocol):
    kind: str
    hops: list[ts.HopCheck]

    @property
    def binds_local_port(self) -> bool: ...

    def target(self) -> str: ...

    async def open(self, on_lost: Callable[[str], None], accept_new: bool) -> Opened: ...

    async def watch(self) -> str: ...

    async def wait_reachable(self, last_peer: tuple[str, int] | None) -> None: ...

    def upstream_json(self) -> dict[str, Any] | None: ...


async def _tcp_poll(host: str, port: int) -> None:
    while True:
        await asyncio.sleep(REACH_POLL_S)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), REACH_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError):
            continue
        writer.close()
        return


# --- SSH -------------------------------------------------------------------------------------------


class SshPath:
    kind = "ssh"

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.hops: list[ts.HopCheck] = []

    @property
    def binds_local_port(self) -> bool:
        return True

    def target(self) -> str:
        return self.profile.ssh.display() if self.profile.ssh else "-"

    async def open(self, on_lost: Callable[[str], None], accept_new: bool) -> Opened:
        tunnel = await open_tunnel(self.profile, on_lost=on_lost, accept_new=accept_new)
        peer = tunnel.conn.get_extra_info("peername")
        last = None
        if isinstance(peer, tuple) and len(peer) >= 2 and not (self.profile.ssh and self.profile.ssh.jump):
            last = (str(peer[0]), int(peer[1]))
        remote = f"{self.profile.remote_host}:{self.profile.remote_port}"
        return Opened(
            tunnel.close,
            tunnel.open_stream,
            dials=f"SSH channel to {remote}",
            peer=last,
            extra={"cipher": tunnel.cipher},
        )

    async def watch(self) -> str:
        await asyncio.Event().wait()  # asyncssh's keepalive reports a dead link through on_lost
        return ""

    async def wait_reachable(self, last_peer: tuple[str, int] | None) -> None:
        ssh = self.profile.ssh
        if ssh is None or ssh.jump:
            await asyncio.Event().wait()  # behind a jump host the SSH port is not ours to poll
        host, port = last_peer or resolve_target(self.profile)
        await _tcp_poll(host, port)

    def upstream_json(self) -> dict[str, Any] | None:
        return None


# --- tailnet and direct URLs ----------------------------------------------------------------------


def insecure_ws_refusal(profile: Profile, host: str) -> TunnelError:
    cause = ConfigError(
        f"profile {profile.name!r}: {profile.url} is plain ws:// to {host}, which is neither loopback "
        "nor a Tailscale address, so the gateway secret would cross the network unencrypted",
        key="url",
        fix="use wss:// (e.g. a Tailscale Serve/Funnel URL or a TLS proxy), or reach a tailnet host with "
        f"--tailscale HOST --port PORT; to accept the risk anyway: clawd profile add {profile.name} "
        f"--url {profile.url} --allow-insecure-ws --replace",
    )
    return TunnelError(cause.render(), fatal=True, cause=cause)


class UrlPath:
    """`tailscale` and `direct`: one URL, reached through a loopback relay by default."""

    def __init__(self, profile: Profile, read_state: StateReader | None = None) -> None:
        assert profile.url is not None
        self.profile = profile
        self.kind = profile.method
        self.scheme, self.host, self.port = url_target(profile.url)
        self._read_state = read_state or ts.read_state
        self.hops: list[ts.HopCheck] = []
        self.upstream: Upstream | None = None
        self.node: ts.Node | None = None
        self._tailscale_failed = False
        self._tls: ssl.SSLContext | None = None

    @property
    def binds_local_port(self) -> bool:
        """No listener when turned off, or when the URL *is* our local port (a user-run tunnel)."""
        if not self.profile.relay:
            return False
        return not (ts.is_loopback_host(self.host) and self.port == self.profile.local_port)

    def target(self) -> str:
        return self.profile.url or "-"

    def upstream_json(self) -> dict[str, Any] | None:
        up = self.upstream
        if up is None:
            return None
        return {"host": up.host, "port": up.port, "tls": up.tls is not None, "serverName": up.server_name}

    def _set_hop(self, hop: ts.HopCheck) -> None:
        self.hops = [h for h in self.hops if h.name != hop.name] + [hop]

    async def _tailscale(self) -> ts.Verdict:
        state = await self._read_state()
        verdict = ts.judge(state, self.host)
        self.node = verdict.node
        return verdict

    def insecure_ws_ok_offline(self) -> bool:
        """Plain ws:// that needs no Tailscale lookup: loopback, a tailnet IP, or explicitly allowed."""
        return self.profile.allow_insecure_ws or ts.is_loopback_host(self.host) or ts.is_tailnet_ip(self.host)

    async def resolve(self) -> Upstream:
        """Where to dial, after the checks that can refuse before any byte is sent."""
        self.hops = []
        dial_host = self.host
        if self.kind == "tailscale":
            verdict = await self._tailscale()
            self.hops = list(verdict.hops)
            if not verdict.ok:
                broken = verdict.first_broken
                if broken is not None and broken.name == "tailscale":  # not installed: only the user can fix
                    cause = UserError(broken.detail, fix=broken.fix)
                    raise TunnelError(cause.render(), fatal=True, cause=cause)
                self._tailscale_failed = True
                raise TunnelError(verdict.message(), fatal=False, network=True)
            self._tailscale_failed = False
            if verdict.node is not None and not ts.is_tailnet_ip(self.host) and not _is_ip(self.host):
                dial_host = verdict.node.address() or self.host  # MagicDNS may be off in the OS resolver
        elif self.scheme == "ws" and not self.insecure_ws_ok_offline():
            named = None if _is_ip(self.host) else await self._tailscale()
            if named is None or named.node is None:
                raise insecure_ws_refusal(self.profile, self.host)
        if self.scheme == "wss":
            if self._tls is None:
                try:
                    self._tls = tls_context(self.profile.ca_file)
                except (OSError, ssl.SSLError) as exc:
                    cause = ConfigError(
                        f"profile {self.profile.name!r}: cannot load ca_file {self.profile.ca_file}: "
                        f"{describe_error(exc)}",
                        key="ca_file",
                        fix="point --ca-file at a PEM file with the CA certificate(s)",
                    )
                    raise TunnelError(cause.render(), fatal=True, cause=cause) from None
            return Upstream(dial_host, self.port, self._tls, self.host)
        return Upstream(dial_host, self.port)

    async def check_upstream(self, up: Upstream) -> None:
        """One connection (and TLS handshake) before declaring the path open, so a gateway that
        is not there shows as a failed connect with the reason, as with SSH."""
        name = "https" if up.tls is not None else "tcp"
        try:
            _reader, writer = await open_upstream(up)
        except ssl.SSLCertVerificationError as exc:
            detail = f"{up.describe()}: {describe_error(exc)}"
            self._set_hop(
                ts.HopCheck(
                    name,
                    False,
                    detail,
                    "check the URL's host name; for a private CA pass --ca-file (verification is never off)",
                )
            )
            raise TunnelError(detail, fatal=False) from None
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            detail = f"{up.describe()}: {describe_error(exc)}"
            fix = (
                "is Tailscale Serve set up on the server (clawd-gateway --tailscale serve)?"
                if self.kind == "tailscale" and up.tls is not None
                else "is the gateway running and listening on that address?"
            )
            self._set_hop(ts.HopCheck(name, False, detail, fix))
            network = isinstance(exc, OSError) and not isinstance(exc, TimeoutError | ssl.SSLError)
            raise TunnelError(f"cannot reach the gateway at {detail}", fatal=False, network=network) from None
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        what = "TLS verified" if up.tls is not None else "accepts connections"
        self._set_hop(ts.HopCheck(name, True, f"{up.describe()} {what}"))

    async def open(self, on_lost: Callable[[str], None], accept_new: bool) -> Opened:
        up = await self.resolve()
        self.upstream = up
        await self.check_upstream(up)
        if self.binds_local_port:
            self._set_hop(ts.HopCheck("relay", True, f"{self.profile.local_url} relays to {up.describe()}"))
            dials = f"relay to {up.describe()}"
            return Opened(_nothing, lambda: open_upstream(up), dials=dials, peer=(up.host, up.port))
        url = self.profile.url or ""
        if up.tls is None:
            return Opened(_nothing, client_url=url, probe_url=url, peer=(up.host, up.port))
        # No listener for clients, but the probe still needs our TLS settings: a private one.
        private = Relay(up)
        port = await private.start(0)
        probe = f"ws://127.0.0.1:{port}"
        return Opened(private.close, client_url=url, probe_url=probe, peer=(up.host, up.port))

    async def watch(self) -> str:
        if self.kind != "tailscale":
            await asyncio.Event().wait()
        while True:
            await asyncio.sleep(TAILSCALE_POLL_S)
            verdict = await self._tailscale()
            if not verdict.ok:
                self.hops = [*verdict.hops]
                self._tailscale_failed = True
                return verdict.message()
            addr = verdict.node.address() if verdict.node else None
            if self.upstream is not None and addr and self.upstream.host not in (addr, self.host):
                return f"{self.host} moved to {addr} in the tailnet"

    async def wait_reachable(self, last_peer: tuple[str, int] | None) -> None:
        if self._tailscale_failed:
            while True:
                await asyncio.sleep(TAILSCALE_REACH_POLL_S)
                if (await self._tailscale()).ok:
                    return
        target = last_peer
        if target is None and self.upstream is not None:
            target = (self.upstream.host, self.upstream.port)
        if target is None:
            await asyncio.Event().wait()
            return
        await _tcp_poll(*target)


async def _nothing() -> None:
    return None


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def path_for(profile: Profile, read_state: StateReader | None = None) -> SshPath | UrlPath:
    if profile.method == "ssh":
        return SshPath(profile)
    return UrlPath(profile, read_state)


__all__ = ["Opened", "Path", "SshPath", "UrlPath", "insecure_ws_refusal", "path_for"]
