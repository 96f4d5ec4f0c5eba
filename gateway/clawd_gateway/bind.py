"""Bind modes -> listen addresses, and the refusals that keep a gateway from being exposed.

Every refusal names the config key to change and the fix, because the usual way users get
here is copying a snippet that was meant for a different setup.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from .errors import RefusalError

TAILNET_V4 = ipaddress.ip_network("100.64.0.0/10")
TAILNET_V6 = ipaddress.ip_network("fd7a:115c:a1e0::/48")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def tailnet_addresses() -> list[str]:
    """Interface addresses inside Tailscale's CGNAT range, found without calling `tailscale`."""
    import psutil

    found: list[str] = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET:
                try:
                    if ipaddress.ip_address(a.address) in TAILNET_V4:
                        found.append(a.address)
                except ValueError:
                    continue
    return found


@dataclass(frozen=True)
class BindPlan:
    mode: str
    hosts: tuple[str, ...]

    @property
    def loopback_only(self) -> bool:
        return all(is_loopback(h) for h in self.hosts)


def resolve_bind(mode: str, custom_host: str | None) -> BindPlan:
    if mode in ("loopback", "auto"):
        hosts = ("127.0.0.1", "::1") if ipv6_available() else ("127.0.0.1",)
        return BindPlan(mode, hosts)
    if mode == "lan":
        return BindPlan(mode, ("0.0.0.0",))
    if mode == "tailnet":
        found = tailnet_addresses()
        if not found:
            raise RefusalError(
                "bind mode tailnet: this machine has no Tailscale address (100.64.0.0/10)",
                key="gateway.bind",
                fix='run `tailscale up` first, or use bind "loopback" with tailscale.mode "serve"',
            )
        return BindPlan(mode, (found[0],))
    if mode == "custom":
        if not custom_host:
            raise RefusalError(
                "bind mode custom needs an address",
                key="gateway.customBindHost",
                fix="set gateway.customBindHost to an IP of this machine, or pass --host 192.0.2.10",
            )
        try:
            addr = ipaddress.ip_address(custom_host.strip("[]"))
        except ValueError:
            raise RefusalError(
                f"{custom_host!r} is not an IP address",
                key="gateway.customBindHost",
                fix="use a literal IPv4/IPv6 address of this machine (no hostnames)",
            ) from None
        return BindPlan(mode, (str(addr),))
    raise RefusalError(f"unknown bind mode {mode!r}", key="gateway.bind")


def check_exposure(plan: BindPlan, auth_mode: str, has_secret: bool, tailscale_mode: str) -> None:
    """Refuse configurations that would put an unauthenticated or misrouted gateway on a network."""
    if tailscale_mode in ("serve", "funnel") and not plan.loopback_only:
        raise RefusalError(
            f"tailscale {tailscale_mode} requires gateway bind=loopback (127.0.0.1); "
            f"bind {plan.mode} would listen on {', '.join(plan.hosts)}",
            key="gateway.bind",
            fix='set gateway.bind to "loopback"; Tailscale proxies to the loopback port',
        )
    if tailscale_mode == "funnel" and auth_mode != "password":
        raise RefusalError(
            "tailscale funnel requires gateway auth mode=password (Funnel is reachable from "
            "the public internet)",
            key="gateway.auth.mode",
            fix='set gateway.auth.mode to "password" and OPENCLAW_GATEWAY_PASSWORD, or use serve',
        )
    if tailscale_mode in ("serve", "funnel") and auth_mode == "none":
        raise RefusalError(
            f"auth mode none with tailscale {tailscale_mode} would let every device on the "
            + ("internet" if tailscale_mode == "funnel" else "tailnet")
            + " use this gateway without a secret",
            key="gateway.auth.mode",
            fix='set gateway.auth.mode to "token" or "password"',
        )
    if plan.loopback_only:
        return
    if auth_mode == "none":
        raise RefusalError(
            f"auth mode none is only allowed with a loopback bind (bind {plan.mode} listens "
            f"on {', '.join(plan.hosts)})",
            key="gateway.auth.mode",
            fix='set gateway.auth.mode to "token" or "password", or gateway.bind to "loopback"',
        )
    if not has_secret:
        secret_key = "password" if auth_mode == "password" else "token"
        raise RefusalError(
            f"refusing to bind gateway to {', '.join(plan.hosts)} without auth: no {secret_key} is set",
            key=f"gateway.auth.{secret_key}",
            fix=f"set OPENCLAW_GATEWAY_{secret_key.upper()} (or gateway.auth.{secret_key}), "
            'or keep gateway.bind "loopback" and use an SSH tunnel or Tailscale Serve',
        )
