"""`clawd doctor`: walk the hops in order and name the first broken one, with its fix.

Each hop is checked only if the ones before it work, because a failure further along is
usually a consequence (no SSH, so of course no gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clawd_gateway.secret import Secret

from ._asyncssh import asyncssh
from .engine import (
    CONNECT_TIMEOUT,
    HostKeyPolicy,
    ProbeResult,
    SshClient,
    TunnelError,
    Upstream,
    UrlPath,
    bridge,
    connect_options,
    default_known_hosts,
    probe_gateway,
    resolve_target,
)
from .profiles import Profile


@dataclass
class Hop:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"hop": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix, "ms": self.ms}


@dataclass
class Report:
    profile: str
    hops: list[Hop] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hops)

    @property
    def first_broken(self) -> Hop | None:
        return next((h for h in self.hops if not h.ok), None)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


NEEDS_USER_HOPS = ("secret", "host-key", "ssh-auth", "gateway-auth", "login")


def exit_code(reports: list[Report]) -> int:
    """0 when every path is sound; 4 when a broken hop needs the user (a key, a secret, a login);
    1 otherwise (something to wait for or to start)."""
    broken = [r.first_broken for r in reports if not r.ok]
    if not broken:
        return 0
    return 4 if any(b is not None and b.name in NEEDS_USER_HOPS for b in broken) else 1


async def diagnose_paths(
    profile: Profile, secret: Secret | None, secret_error: str | None = None
) -> list[tuple[str, Report]]:
    """Every way in of the profile, each walked hop by hop (one for a single-path profile)."""
    reports = await asyncio.gather(*(diagnose(w, secret, secret_error) for w in profile.ways()))
    return [(w.method, r) for w, r in zip(profile.ways(), reports, strict=True)]


def report_json(profile: Profile, reports: list[tuple[str, Report]]) -> dict[str, object]:
    """`clawd doctor --json` (and the agent's `diagnose`): the first path's hops at the top, as
    always; multi-path profiles add every path under `paths`."""
    first = reports[0][1]
    data: dict[str, object] = {
        "profile": profile.name,
        "ok": all(r.ok for _, r in reports),
        "firstBroken": first.first_broken.name if first.first_broken else None,
        "hops": [h.to_json() for h in first.hops],
    }
    if len(reports) > 1:
        data["paths"] = [
            {
                "path": name,
                "ok": r.ok,
                "firstBroken": r.first_broken.name if r.first_broken else None,
                "hops": [h.to_json() for h in r.hops],
            }
            for name, r in reports
        ]
    return data


async def diagnose(profile: Profile, secret: Secret | None, secret_error: str | None = None) -> Report:
    if profile.method in ("tailscale", "direct"):
        return await diagnose_url(profile, secret, secret_error)
    report = Report(profile.name)
    hops = report.hops
    if profile.ssh is None:
        hops.append(
            Hop(
                "profile",
                False,
                f"profile {profile.name} has no SSH target",
                "clawd profile add NAME --ssh user@host",
            )
        )
        return report
    hops.append(
        Hop(
            "profile",
            True,
            f"{profile.method} to {profile.ssh.display()}, gateway "
            f"{profile.remote_host}:{profile.remote_port}, local {profile.local_url}",
        )
    )
    if secret is None:
        hops.append(
            Hop(
                "secret",
                False,
                secret_error or f"no gateway {profile.auth} stored for {profile.name}",
                f"clawd secret set {profile.name}" + (" --password" if profile.auth == "password" else ""),
            )
        )
        return report
    hops.append(Hop("secret", True, f"{profile.auth} from {secret.source}"))

    host, port = resolve_target(profile)
    t0 = time.perf_counter()
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addrs = sorted({str(i[4][0]) for i in infos})
        hops.append(Hop("dns", True, f"{host} -> {', '.join(addrs[:3])}", ms=_ms(t0)))
    except socket.gaierror as exc:
        hops.append(
            Hop(
                "dns",
                False,
                f"cannot resolve {host}: {exc.strerror}",
                "check the host name (or its HostName in ~/.ssh/config) and your network",
            )
        )
        return report

    if not profile.ssh.jump:
        t0 = time.perf_counter()
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
            writer.close()
            hops.append(Hop("tcp", True, f"{host}:{port} accepts connections", ms=_ms(t0)))
        except (OSError, asyncio.TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else (exc.strerror or str(exc))
            hops.append(
                Hop(
                    "tcp",
                    False,
                    f"{host}:{port}: {reason}",
                    "is the server up and sshd running? is a firewall dropping port " + str(port) + "?",
                )
            )
            return report

    known = Path(profile.ssh.known_hosts).expanduser() if profile.ssh.known_hosts else default_known_hosts()
    policy = HostKeyPolicy(known)
    client = SshClient(policy, lambda reason: None)
    t0 = time.perf_counter()
    try:
        # The profile's own host (maybe a ~/.ssh/config alias), so User/IdentityFile apply as in `connect`.
        conn, _ = await asyncssh.create_connection(
            lambda: client, profile.ssh.host, **connect_options(profile, policy)
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        cause = policy.verdict
        hops.append(Hop("host-key", False, str(cause) if cause else str(exc), cause.fix if cause else None))
        return report
    except asyncssh.PermissionDenied:
        hops.append(
            Hop(
                "ssh-auth",
                False,
                f"{profile.ssh.display()} refused every key offered",
                "check --identity / your agent, and that the public key is in the server's authorized_keys",
            )
        )
        return report
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
        hops.append(
            Hop(
                "ssh-auth",
                False,
                f"cannot use the SSH key {profile.ssh.identity}: {exc}",
                "check the --identity path and that the key is not encrypted with an unknown passphrase",
            )
        )
        return report
    except asyncssh.ConfigParseError as exc:
        hops.append(Hop("ssh", False, f"~/.ssh/config: {exc}", "fix the line named above"))
        return report
    except (OSError, asyncssh.Error, asyncio.TimeoutError, ValueError) as exc:
        hops.append(Hop("ssh", False, f"SSH failed: {exc or type(exc).__name__}", "run ssh -v to see more"))
        return report
    hops.append(Hop("host-key", True, f"verified against {known}"))
    hops.append(Hop("ssh-auth", True, f"logged in to {profile.ssh.display()}", ms=_ms(t0)))
    try:
        t0 = time.perf_counter()
        try:
            _reader, channel = await conn.open_connection(profile.remote_host, profile.remote_port)
            channel.close()
            hops.append(
                Hop(
                    "remote-port",
                    True,
                    f"{profile.remote_host}:{profile.remote_port} is listening on the server",
                    ms=_ms(t0),
                )
            )
        except asyncssh.ChannelOpenError as exc:
            hops.append(
                Hop(
                    "remote-port",
                    False,
                    f"nothing accepts {profile.remote_host}:{profile.remote_port} on the server "
                    f"({exc.reason})",
                    "start the gateway on the server (clawd-gateway, or systemctl start clawd-gateway) "
                    "and check its port; AllowTcpForwarding must be yes in sshd_config",
                )
            )
            return report
        listener = await conn.forward_local_port("127.0.0.1", 0, profile.remote_host, profile.remote_port)
        try:
            url = f"ws://127.0.0.1:{listener.get_port()}"
            try:
                result = await probe_gateway(url, profile.auth, secret)
            except Exception as exc:  # doctor explains; it never crashes
                hops.append(
                    Hop("gateway", False, f"health check failed: {exc}", "look at the gateway's logs")
                )
                return report
        finally:
            listener.close()
        hops.extend(_probe_hops(profile, result, "look at the gateway's logs on the server"))
    finally:
        client.closing = True
        conn.close()
    return report


def _secret_set(profile: Profile) -> str:
    """The command that stores this profile's secret (the flag says which kind it is)."""
    return f"clawd secret set {profile.name}" + (" --password" if profile.auth == "password" else "")


def _secret_hop(profile: Profile, secret: Secret | None, secret_error: str | None) -> Hop:
    if secret is None:
        return Hop(
            "secret",
            False,
            secret_error or f"no gateway {profile.auth} stored for {profile.name}",
            _secret_set(profile),
        )
    return Hop("secret", True, f"{profile.auth} from {secret.source}")


def _probe_hops(profile: Profile, result: ProbeResult, gateway_fix: str) -> list[Hop]:
    """The last hops, from the authenticated health check: auth and health both ok, auth refused
    (the stored secret is stale), or the gateway failing for another reason (`gateway_fix`)."""
    if result.ok:
        version = (result.server or {}).get("version", "?")
        return [
            Hop("gateway-auth", True, "handshake accepted our " + profile.auth),
            Hop("health", True, f"gateway healthy ({version})", ms=round(result.latency_ms, 1)),
        ]
    if result.failure is not None and result.failure.value == "auth":
        fix = f"store the gateway's current {profile.auth}: {_secret_set(profile)}"
        return [Hop("gateway-auth", False, result.message, fix)]
    return [Hop("gateway", False, result.message, gateway_fix)]


async def probe_url_profile(path: UrlPath, up: Upstream, secret: Secret | None) -> ProbeResult:
    """The authenticated health check straight to the profile's gateway (no supervisor needed),
    with the profile's TLS settings: through a throwaway loopback relay for wss://."""
    profile = path.profile
    if up.tls is None:
        url = f"ws://{_host_for_url(up.host)}:{up.port}"
        return await probe_gateway(url, profile.auth, secret)
    async with bridge(up) as (url, _relay):
        return await probe_gateway(url, profile.auth, secret)


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def diagnose_url(profile: Profile, secret: Secret | None, secret_error: str | None = None) -> Report:
    """tailscale/direct: profile -> (tailscale daemon -> login -> peer) -> secret -> tcp/https ->
    gateway auth -> health, first broken hop named with its fix."""
    report = Report(profile.name)
    hops = report.hops
    path = UrlPath(profile)
    relay = f"relayed on {profile.local_url}" if path.binds_local_port else "no local relay"
    hops.append(Hop("profile", True, f"{profile.method} {profile.url}, {relay}"))
    t0 = time.perf_counter()
    try:
        up = await path.resolve()
    except TunnelError as exc:
        for h in path.hops:
            hops.append(Hop(h.name, h.ok, h.detail, h.fix))
        if not path.hops or path.hops[-1].ok:  # refused before Tailscale was asked: the URL itself
            cause = exc.cause
            hops.append(Hop("url", False, str(cause or exc), getattr(cause, "fix", None)))
        return report
    for h in path.hops:
        hops.append(Hop(h.name, h.ok, h.detail, h.fix, ms=_ms(t0) if h.name == "peer" else None))
    secret_hop = _secret_hop(profile, secret, secret_error)
    hops.append(secret_hop)
    if not secret_hop.ok:
        return report
    t0 = time.perf_counter()
    with contextlib.suppress(TunnelError):  # the failure is in the hop it records
        await path.check_upstream(up)
    reach = path.hops[-1]
    hops.append(Hop(reach.name, reach.ok, reach.detail, reach.fix, ms=_ms(t0)))
    if not reach.ok:
        return report
    try:
        result = await probe_url_profile(path, up, secret)
    except Exception as exc:  # doctor explains; it never crashes
        hops.append(Hop("gateway", False, f"health check failed: {exc}", "look at the gateway's logs"))
        return report
    fix = (
        "the TLS front answers but the gateway behind it does not: is clawd-gateway running on the "
        "server, and Serve pointed at its port (tailscale serve status)?"
        if up.tls is not None
        else "look at the gateway's logs on the server"
    )
    hops.extend(_probe_hops(profile, result, fix))
    return report


__all__ = ["Hop", "Report", "TunnelError", "diagnose", "diagnose_url", "probe_url_profile"]
