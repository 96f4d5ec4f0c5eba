"""What the local Tailscale daemon says about us and the gateway's node, for the tailscale method.

Read with `tailscale status --json` (the CLI from PATH or the macOS app bundle) or, when no CLI
is found, straight from tailscaled's LocalAPI socket (`GET /localapi/v0/status`), which answers
the same ipnstate.Status JSON. Parsing and judging are pure functions over that JSON, so every
state (daemon down, NeedsLogin, Stopped, peer unknown or offline) is testable without a daemon.

Why we look before connecting: "connection refused" to a tailnet address says nothing, while
"tailscaled is not running" or "the server's node is offline" names the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

# The gateway's lookups, so client and gateway find the same CLI (PATH, then the macOS app
# bundle, whose GUI install puts nothing on PATH) and honour the same explicit LocalAPI socket
# variable (tests, unusual installs).
from clawd_gateway.tailscale.command import find_binary
from clawd_gateway.tailscale.localapi import SOCKET_ENV, parse_response

STATUS_TIMEOUT_S = 5.0
LOCALAPI_SOCKETS = ("/var/run/tailscale/tailscaled.sock", "/run/tailscale/tailscaled.sock")

TAILNET_V4 = ipaddress.ip_network("100.64.0.0/10")
TAILNET_V6 = ipaddress.ip_network("fd7a:115c:a1e0::/48")


def is_tailnet_ip(host: str) -> bool:
    """A Tailscale address: CGNAT 100.64.0.0/10 or Tailscale's ULA fd7a:115c:a1e0::/48."""
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return ip in (TAILNET_V4 if ip.version == 4 else TAILNET_V6)


def is_loopback_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- the daemon's answer ------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One PeerStatus (ourselves or a peer), reduced to what the client needs."""

    dns_name: str  # MagicDNS FQDN without the trailing dot ("" when MagicDNS has none)
    host_name: str
    ips: tuple[str, ...]
    online: bool
    os: str = ""
    is_self: bool = False

    @property
    def label(self) -> str:
        return self.dns_name or self.host_name or (self.ips[0] if self.ips else "?")

    def address(self) -> str | None:
        """The tailnet address to dial: IPv4 first (it works where IPv6 is filtered)."""
        candidates = [ip for ip in self.ips if ":" not in ip] or list(self.ips)
        return candidates[0] if candidates else None


@dataclass(frozen=True)
class TailscaleState:
    """The local daemon as we found it. `found` False: no CLI and no socket; `running` False:
    the CLI is there but tailscaled does not answer."""

    found: bool
    running: bool
    backend_state: str | None = None  # NoState NeedsLogin NeedsMachineAuth Stopped Starting Running
    source: str = ""  # "/usr/bin/tailscale status --json" or "LocalAPI /var/run/tailscale/..."
    error: str | None = None
    auth_url: str | None = None
    self_node: Node | None = None
    magic_suffix: str | None = None
    peers: tuple[Node, ...] = ()
    health: tuple[str, ...] = ()
    version: str | None = None

    def find(self, host: str) -> Node | None:
        """The node a profile's host names: MagicDNS FQDN, short name, host name, or a tailnet IP."""
        want = host.strip("[]").rstrip(".").lower()
        nodes = [*self.peers, *([self.self_node] if self.self_node else [])]
        for node in nodes:
            if want in (ip.lower() for ip in node.ips):
                return node
        for node in nodes:
            fqdn = node.dns_name.lower()
            short = fqdn.split(".", 1)[0] if fqdn else ""
            if want and want in (fqdn, short):
                return node
        for node in nodes:
            if want and node.host_name.lower() == want:
                return node
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "running": self.running,
            "backendState": self.backend_state,
            "source": self.source,
            "error": self.error,
            "self": self.self_node.label if self.self_node else None,
            "magicDNSSuffix": self.magic_suffix,
            "version": self.version,
        }


def _node(data: Any, *, is_self: bool = False) -> Node | None:
    if not isinstance(data, dict):
        return None
    ips = data.get("TailscaleIPs") or []
    return Node(
        dns_name=str(data.get("DNSName") or "").rstrip("."),
        host_name=str(data.get("HostName") or ""),
        ips=tuple(str(ip) for ip in ips if isinstance(ip, str)),
        online=bool(data.get("Online")) or is_self,
        os=str(data.get("OS") or ""),
        is_self=is_self,
    )


def parse_status(text: str, source: str) -> TailscaleState:
    """ipnstate.Status JSON -> TailscaleState; tolerant of fields older versions lack."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return TailscaleState(True, False, source=source, error=f"unreadable status JSON ({exc})")
    if not isinstance(data, dict):
        return TailscaleState(True, False, source=source, error="unexpected status JSON")
    peers = tuple(n for n in (_node(v) for v in (data.get("Peer") or {}).values()) if n is not None)
    tailnet = data.get("CurrentTailnet") if isinstance(data.get("CurrentTailnet"), dict) else {}
    suffix = data.get("MagicDNSSuffix") or (tailnet or {}).get("MagicDNSSuffix") or None
    health = data.get("Health") or []
    return TailscaleState(
        found=True,
        running=True,
        backend_state=str(data.get("BackendState") or "NoState"),
        source=source,
        auth_url=data.get("AuthURL") or None,
        self_node=_node(data.get("Self"), is_self=True),
        magic_suffix=str(suffix).rstrip(".") if suffix else None,
        peers=peers,
        health=tuple(str(h) for h in health if isinstance(h, str)),
        version=data.get("Version") or None,
    )


def _not_running(message: str) -> bool:
    text = message.lower()
    return any(
        s in text
        for s in (
            "failed to connect to local",
            "doesn't appear to be running",
            "is it running",
            "is tailscale running",
            "connection refused",
            "no such file or directory",
            "tailscaled.sock",
        )
    )


# --- reading it -----------------------------------------------------------------------------------


def find_socket(cli_found: bool) -> str | None:
    """The LocalAPI socket: an explicit one always; the default paths only when there is no CLI."""
    explicit = os.environ.get(SOCKET_ENV)
    if explicit:
        return explicit
    if cli_found or sys.platform == "win32":
        return None
    return next((p for p in LOCALAPI_SOCKETS if os.path.exists(p)), None)


async def _via_cli(cli: str, timeout: float) -> TailscaleState:
    source = f"{cli} status --json"
    try:
        proc = await asyncio.create_subprocess_exec(
            cli,
            "status",
            "--json",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return TailscaleState(False, False, source=source, error=f"cannot run {cli}: {exc.strerror or exc}")
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await proc.wait()
        return TailscaleState(
            True, False, source=source, error=f"`tailscale status` gave no answer in {timeout:g}s"
        )
    message = (err or b"").decode(errors="replace").strip() or (out or b"").decode(errors="replace").strip()
    if proc.returncode != 0:
        return TailscaleState(True, False, source=source, error=message or f"exit status {proc.returncode}")
    return parse_status(out.decode(errors="replace"), source)


async def _via_socket(path: str, timeout: float) -> TailscaleState:
    source = f"LocalAPI {path}"
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or "timed out"
        return TailscaleState(
            True, False, source=source, error=f"tailscaled does not answer on {path}: {reason}"
        )
    try:
        writer.write(
            b"GET /localapi/v0/status HTTP/1.1\r\nHost: local-tailscaled.sock\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        return TailscaleState(True, False, source=source, error=f"LocalAPI read failed: {exc or 'timed out'}")
    finally:
        writer.close()
    try:
        answer = parse_response(raw)
    except ValueError as exc:
        return TailscaleState(True, False, source=source, error=f"LocalAPI answer unreadable: {exc}")
    if answer.status != 200:
        return TailscaleState(True, False, source=source, error=f"LocalAPI answered HTTP {answer.status}")
    return parse_status(answer.body.decode(errors="replace"), source)


async def read_state(timeout: float = STATUS_TIMEOUT_S) -> TailscaleState:
    """Ask the local daemon; never raises (every failure is a state the caller can show)."""
    cli = await asyncio.to_thread(find_binary)
    sock = find_socket(cli is not None)
    if sock is not None:
        return await _via_socket(sock, timeout)
    if cli is None:
        return TailscaleState(False, False, error="the tailscale CLI is not installed (not on PATH)")
    return await _via_cli(cli, timeout)


# --- judging it -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HopCheck:
    """One hop of the path with its verdict and, when broken, the fix (same shape as doctor's)."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"hop": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


def _start_daemon_fix() -> str:
    if sys.platform == "darwin":
        return "open the Tailscale app (or: sudo brew services start tailscale)"
    if sys.platform == "win32":
        return "start the Tailscale app / the Tailscale service"
    return "start it: sudo systemctl enable --now tailscaled"


_BACKEND_FIX = {
    "NeedsLogin": ("logged out of Tailscale", "log in: tailscale up (or sign in from the Tailscale app)"),
    "Stopped": ("Tailscale is stopped (tailscale down)", "connect it: tailscale up"),
    "NeedsMachineAuth": (
        "this device waits for approval by the tailnet admin",
        "approve it in the admin console (Machines), then retry",
    ),
    "Starting": ("Tailscale is still starting", "wait a few seconds; if it stays here: tailscale status"),
    "NoState": ("tailscaled has not started its backend yet", "wait a moment, or restart tailscaled"),
    "InUseOtherUser": (
        "Tailscale is in use by another user on this machine",
        "switch to your account in the Tailscale app",
    ),
}


@dataclass(frozen=True)
class Verdict:
    """The tailscale hops in order; `node` is the gateway's node when it was found."""

    hops: tuple[HopCheck, ...]
    node: Node | None = None

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hops)

    @property
    def first_broken(self) -> HopCheck | None:
        return next((h for h in self.hops if not h.ok), None)

    def message(self) -> str:
        hop = self.first_broken
        if hop is None:
            return "tailscale ok"
        return f"{hop.detail}; fix: {hop.fix}" if hop.fix else hop.detail


def judge(state: TailscaleState, host: str) -> Verdict:
    """Daemon -> login -> peer, stopping at the first broken hop (later ones would only echo it)."""
    hops: list[HopCheck] = []

    def broken(name: str, detail: str, fix: str, node: Node | None = None) -> Verdict:
        return Verdict((*hops, HopCheck(name, False, detail, fix)), node)

    if not state.found:
        return broken(
            "tailscale",
            state.error or "Tailscale is not installed",
            "install Tailscale (https://tailscale.com/download) so `tailscale` is on PATH",
        )
    if not state.running:
        return broken(
            "daemon",
            f"tailscaled is not running (tailscale: {_short(state.error)})"
            if state.error and _not_running(state.error)
            else f"cannot read Tailscale's state: {_short(state.error)}",
            _start_daemon_fix(),
        )
    hops.append(HopCheck("daemon", True, f"tailscaled answers ({state.source})"))
    backend = state.backend_state or "NoState"
    if backend != "Running":
        detail, fix = _BACKEND_FIX.get(backend, (f"Tailscale is in state {backend}", "tailscale up"))
        if backend == "NeedsLogin" and state.auth_url:
            fix = f"log in at {state.auth_url} (or: tailscale up)"
        return broken("login", f"{detail} (BackendState {backend})", fix)
    me = state.self_node.label if state.self_node else "this device"
    hops.append(HopCheck("login", True, f"logged in, running as {me}"))
    node = state.find(host)
    if node is None:
        where = f" (tailnet {state.magic_suffix})" if state.magic_suffix else ""
        return broken(
            "peer",
            f"{host} is not a node of your tailnet{where}",
            "check the name with `tailscale status`; the server must be logged in to the same "
            "tailnet and your ACLs must let this device see it",
        )
    if not node.online:
        return broken(
            "peer",
            f"{node.label} is offline in Tailscale",
            "check that the server is up and tailscaled runs on it (sudo tailscale up there)",
            node,
        )
    addr = node.address()
    hops.append(HopCheck("peer", True, f"{node.label} online" + (f" at {addr}" if addr else "")))
    return Verdict(tuple(hops), node)


def _short(text: str | None, limit: int = 160) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


__all__ = [
    "HopCheck",
    "Node",
    "TailscaleState",
    "Verdict",
    "is_loopback_host",
    "is_tailnet_ip",
    "judge",
    "parse_status",
    "read_state",
]
