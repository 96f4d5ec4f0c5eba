"""Pure readers for what `tailscale` prints: status, serve config, whois, version, and errors.

No I/O here, so every failure mode can be tested from a string. Field names follow Tailscale's
own types (ipnstate.Status, ipn.ServeConfig, apitype.WhoIsResponse); unknown fields are ignored
and missing ones read as empty, because the CLI's JSON grows between releases.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

CAP_HTTPS = "https"
CAP_FUNNEL = "funnel"
CAP_FUNNEL_PORTS = "https://tailscale.com/cap/funnel-ports"
FUNNEL_DEFAULT_PORTS = frozenset({443, 8443, 10000})
# `serve --bg`, `--https=`, `--set-path=` (the "serve v2" CLI) arrived in 1.52.
MIN_VERSION = (1, 52, 0)


def _json_from_noisy(text: str) -> Any:
    """The CLI may print warnings around its JSON; take the outermost object (or `null`)."""
    stripped = text.strip()
    if stripped in ("", "null"):
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    start, end = stripped.find("{"), stripped.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the output")
    return json.loads(stripped[start : end + 1])


# --- status ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeStatus:
    backend_state: str
    version: str
    dns_name: str  # MagicDNS name without the trailing dot; '' when MagicDNS is off
    tailscale_ips: tuple[str, ...]
    capabilities: frozenset[str]
    cert_domains: tuple[str, ...]
    auth_url: str

    @property
    def https_enabled(self) -> bool:
        return bool(self.cert_domains) or CAP_HTTPS in self.capabilities

    @property
    def funnel_attr(self) -> bool:
        return CAP_FUNNEL in self.capabilities

    def funnel_ports(self) -> frozenset[int] | None:
        """Ports the funnel-ports node attribute allows; None when the attribute is absent."""
        for cap in self.capabilities:
            if not cap.startswith(CAP_FUNNEL_PORTS):
                continue
            ports: set[int] = set()
            spec = parse_qs(urlsplit(cap).query).get("ports", [""])[0]
            for part in filter(None, spec.split(",")):
                first, _, last = part.partition("-")
                if first.isdigit() and (not last or last.isdigit()):
                    ports.update(range(int(first), int(last or first) + 1))
            return frozenset(ports)
        return None


def parse_status(text: str) -> NodeStatus:
    data = _json_from_noisy(text)
    if not isinstance(data, dict):
        raise ValueError("`tailscale status --json` did not print an object")
    self_node = found if isinstance(found := data.get("Self"), dict) else {}
    caps: set[str] = set()
    for source in (self_node.get("Capabilities"), self_node.get("CapMap")):
        if isinstance(source, (list, dict)):
            caps.update(str(c) for c in source)
    ips = self_node.get("TailscaleIPs") or data.get("TailscaleIPs") or []
    return NodeStatus(
        backend_state=str(data.get("BackendState") or ""),
        version=str(data.get("Version") or ""),
        dns_name=str(self_node.get("DNSName") or "").rstrip("."),
        tailscale_ips=tuple(str(i) for i in ips if isinstance(i, str)),
        capabilities=frozenset(caps),
        cert_domains=tuple(str(d) for d in (data.get("CertDomains") or []) if isinstance(d, str)),
        auth_url=str(data.get("AuthURL") or ""),
    )


# --- version --------------------------------------------------------------------------------


def parse_version(text: str) -> tuple[int, int, int] | None:
    """`tailscale version` prints e.g. `1.76.1` then commit lines; status has `1.76.1-t0123-gabc`."""
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


# --- serve config ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServeConfig:
    """ipn.ServeConfig as `serve status --json` prints it (`null` when nothing is configured)."""

    raw: dict[str, Any]

    def tcp(self, port: int) -> dict[str, Any] | None:
        tcp = self.raw.get("TCP") or {}
        handler = tcp.get(str(port))
        return handler if isinstance(handler, dict) else None

    def handlers(self, host_port: str) -> dict[str, dict[str, Any]]:
        web = (self.raw.get("Web") or {}).get(host_port) or {}
        handlers = web.get("Handlers") or {}
        return {str(k): v for k, v in handlers.items() if isinstance(v, dict)}

    def handler(self, host_port: str, mount: str) -> dict[str, Any] | None:
        return self.handlers(host_port).get(mount)

    def funnel(self, host_port: str) -> bool:
        return bool((self.raw.get("AllowFunnel") or {}).get(host_port))

    def foreground_ports(self) -> set[int]:
        """Ports held by a foreground `tailscale serve` (a live CLI process, not persisted)."""
        out: set[int] = set()
        for sub in (self.raw.get("Foreground") or {}).values():
            if isinstance(sub, dict):
                out.update(int(p) for p in (sub.get("TCP") or {}) if str(p).isdigit())
        return out

    @property
    def empty(self) -> bool:
        return not any(self.raw.get(k) for k in ("TCP", "Web", "AllowFunnel", "Foreground", "Services"))


def parse_serve_config(text: str) -> ServeConfig:
    data = _json_from_noisy(text)
    if data is None:
        return ServeConfig({})
    if not isinstance(data, dict):
        raise ValueError("`tailscale serve status --json` did not print an object")
    return ServeConfig(data)


def host_port(dns_name: str, port: int) -> str:
    return f"{dns_name}:{port}"


# --- whois ----------------------------------------------------------------------------------


TAGGED_LOGIN = "tagged-devices"  # the placeholder UserProfile tailscaled reports for tagged nodes


@dataclass(frozen=True)
class WhoisIdentity:
    login: str
    name: str | None = None
    tagged: bool = False  # a tagged node: owned by tags, not a person (Serve sends no login for it)


def _first_str(*candidates: Any) -> str | None:
    for c in candidates:
        if isinstance(c, str) and c.strip():
            return c.strip()
    return None


def parse_whois(data: Any) -> WhoisIdentity | None:
    """Login from UserProfile.LoginName first, then the looser spellings OpenClaw also accepts."""
    if isinstance(data, (str, bytes)):
        data = _json_from_noisy(data.decode() if isinstance(data, bytes) else data)
    if not isinstance(data, dict):
        return None
    profile = found if isinstance(found := data.get("UserProfile"), dict) else {}
    user = found if isinstance(found := data.get("User"), dict) else {}
    login = _first_str(
        profile.get("LoginName"),
        profile.get("Login"),
        profile.get("login"),
        user.get("LoginName"),
        user.get("Login"),
        user.get("login"),
        data.get("LoginName"),
        data.get("login"),
    )
    if login is None:
        return None
    name = _first_str(profile.get("DisplayName"), profile.get("Name"), user.get("DisplayName"))
    node = found if isinstance(found := data.get("Node"), dict) else {}
    tagged = bool(node.get("Tags")) or login.casefold() == TAGGED_LOGIN
    return WhoisIdentity(login, name, tagged)


# --- failures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    kind: str
    message: str
    fix: str


_URL = re.compile(r"https://login\.tailscale\.com/\S+")


def classify_failure(output: str, *, mode: str = "serve") -> Failure:
    """Map what the CLI printed to one of the known failures, each with the fix that works."""
    text = output.strip()
    low = text.lower()
    if (
        "failed to connect to local tailscale" in low
        or "doesn't appear to be running" in low
        or "not running?" in low
    ):
        return Failure(
            "daemon_down",
            "tailscaled is not running on this machine",
            "start it: sudo systemctl enable --now tailscaled (macOS: open the Tailscale app)",
        )
    if "not enabled on your tailnet" in low or "https must be enabled" in low or "enable https" in low:
        link = _URL.search(text)
        where = link.group(0) if link else "https://login.tailscale.com/admin/dns"
        return Failure(
            "https_disabled",
            f"HTTPS (Serve) is not enabled for this tailnet, so `tailscale {mode}` configured nothing",
            f"enable HTTPS certificates for the tailnet: {where} , then start the gateway again",
        )
    if "node attribute not set" in low or ("funnel not available" in low):
        return Failure(
            "funnel_attr",
            'Funnel is not permitted for this node (the "funnel" node attribute is not set)',
            'add the "funnel" nodeAttr for this node in the tailnet policy file '
            "(https://tailscale.com/s/no-funnel), or use tailscale.mode serve",
        )
    if "not allowed for funnel" in low:
        return Failure(
            "funnel_port",
            "Funnel does not allow this HTTPS port (" + text.splitlines()[0] + ")",
            "Funnel only serves 443, 8443 and 10000; check the funnel-ports node attribute",
        )
    if "flag provided but not defined" in low or "unknown subcommand" in low:
        return Failure(
            "old_version",
            "this tailscale CLI is too old for `serve --bg --https=...` (needs 1.52 or newer)",
            "update Tailscale: https://tailscale.com/download",
        )
    if "logged out" in low or "needslogin" in low or "not logged in" in low:
        return Failure("needs_login", "this machine is not logged in to Tailscale", "run: sudo tailscale up")
    if "access denied" in low or "permission denied" in low or "requires operator" in low:
        return Failure(
            "permission",
            f"tailscale refused to change the {mode} config for this user (access denied)",
            "allow your user once: sudo tailscale set --operator=$USER (or run the gateway as root)",
        )
    first = text.splitlines()[0] if text else "no output"
    return Failure(
        "unknown", f"tailscale {mode} failed: {first[:300]}", f"run `tailscale {mode} status` to see why"
    )


def state_failure(status: NodeStatus) -> Failure | None:
    """BackendState other than Running, in words."""
    state = status.backend_state
    if state == "Running":
        return None
    if state == "NeedsLogin":
        where = f" (or open {status.auth_url})" if status.auth_url else ""
        return Failure(
            "needs_login", "this machine is not logged in to Tailscale", f"run: sudo tailscale up{where}"
        )
    if state == "NeedsMachineAuth":
        return Failure(
            "needs_machine_auth",
            "this machine is waiting for a tailnet admin to approve it",
            "approve it in the admin console: https://login.tailscale.com/admin/machines",
        )
    if state == "Stopped":
        return Failure(
            "stopped", "Tailscale is stopped on this machine (tailscale down)", "run: tailscale up"
        )
    return Failure(
        "not_ready",
        f"Tailscale is not running yet (state {state or 'unknown'})",
        "wait for `tailscale status` to show this machine online, then start the gateway again",
    )
