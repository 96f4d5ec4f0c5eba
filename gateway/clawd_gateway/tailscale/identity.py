"""Tailscale Serve identity headers as a credential, only in the one case where they are true.

tailscaled's Serve proxy connects from loopback, sets X-Forwarded-For/-Proto/-Host, strips any
incoming Tailscale-User-* headers and sets its own (or `Tailscale-Funnel-Request` for Funnel
traffic). Any local process can forge all of that, so the headers are only a claim: on Linux
the peer socket must belong to root, the gateway's user or tailscaled's socket owner (so other
accounts cannot forge), and the forwarded address is looked up with whois, whose answer must
name the same login and not a tagged node. `examine` is the pure half (headers in, claim or
reason out); `TailscaleIdentity` adds the socket-owner check and the lookup.
"""

from __future__ import annotations

import contextlib
import email.header
import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..bind import is_loopback
from ..log import log
from .localapi import socket_path
from .parse import WhoisIdentity
from .peeruid import socket_owner
from .whois import WhoisResolver

LOGIN_HEADER = "tailscale-user-login"
NAME_HEADER = "tailscale-user-name"
FUNNEL_HEADER = "tailscale-funnel-request"
PROXY_HEADERS = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host")

USER_MISSING = "tailscale_user_missing"
PROXY_MISSING = "tailscale_proxy_missing"
FUNNEL_REQUEST = "tailscale_funnel_request"
WHOIS_FAILED = "tailscale_whois_failed"
USER_MISMATCH = "tailscale_user_mismatch"


class HeaderSource(Protocol):
    def get_all(self, key: str) -> list[str]: ...


@dataclass(frozen=True)
class Claim:
    login: str
    client_ip: str
    name: str | None


@dataclass(frozen=True)
class Refused:
    reason: str
    detail: str


def decode_header_value(value: str) -> str:
    """tailscaled Q-encodes (RFC 2047) non-ASCII logins and names; undo that."""
    if "=?" not in value:
        return value.strip()
    try:
        return str(email.header.make_header(email.header.decode_header(value))).strip()
    except (ValueError, LookupError, UnicodeDecodeError):
        return ""


def client_ip_from_forwarded(xff: str) -> str | None:
    """The address tailscaled's Serve proxy wrote: the last X-Forwarded-For entry, and only that one.

    Serve (httputil.ReverseProxy with Rewrite) drops the client's X-Forwarded-For and sets its own
    single address; a proxy that appends instead still puts its own last. Anything to the left was
    written by the client, so it is never read, even when the last entry is unusable (loopback,
    an IPv6 zone, ip:port, garbage): then there is no client address and the claim fails.
    """
    last = xff.rsplit(",", 1)[-1].strip()
    try:
        addr = ipaddress.ip_address(last)
    except ValueError:
        return None
    if addr.is_loopback or addr.is_unspecified or (isinstance(addr, ipaddress.IPv6Address) and addr.scope_id):
        return None
    return str(addr)


def _one(headers: HeaderSource, name: str) -> str | None:
    values = headers.get_all(name)
    if len(values) != 1 or not values[0].strip():
        return None
    return values[0]


def examine(peer: str, headers: HeaderSource) -> Claim | Refused:
    """Is this request what tailscaled's Serve proxy sends? Pure: no lookup, no clock."""
    if headers.get_all(FUNNEL_HEADER):
        return Refused(FUNNEL_REQUEST, "request came through Funnel (public internet)")
    raw_login = _one(headers, LOGIN_HEADER)
    if raw_login is None:
        return Refused(USER_MISSING, "no (single) tailscale-user-login header")
    if not is_loopback(peer):
        return Refused(PROXY_MISSING, "TCP peer is not loopback, so not tailscaled's Serve proxy")
    missing = [h for h in PROXY_HEADERS if _one(headers, h) is None]
    if missing:
        return Refused(PROXY_MISSING, "missing or repeated " + ", ".join(missing))
    login = decode_header_value(raw_login)
    if not login:
        return Refused(USER_MISSING, "tailscale-user-login header is not readable")
    ip = client_ip_from_forwarded(_one(headers, "x-forwarded-for") or "")
    if ip is None:
        return Refused(PROXY_MISSING, "x-forwarded-for holds no usable client address")
    raw_name = _one(headers, NAME_HEADER)
    return Claim(login, ip, decode_header_value(raw_name) if raw_name else None)


def matches(claim: Claim, whois: WhoisIdentity | None) -> Refused | None:
    if whois is None:
        return Refused(WHOIS_FAILED, "whois gave no login")
    if whois.login.casefold() != claim.login.casefold():
        return Refused(USER_MISMATCH, "whois login differs from the header")
    if whois.tagged:
        # Serve never sends a login for a tagged node, so this header was not written by Serve.
        return Refused(USER_MISMATCH, "whois names a tagged node, which has no user login")
    return None


def proxied_client(peer: str, headers: HeaderSource) -> str | None:
    """The forwarded client address when the request has the full shape of tailscaled's Serve proxy.

    Loopback TCP peer, and X-Forwarded-For/-Proto/-Host each present exactly once, with a usable
    address in X-Forwarded-For (parsed as identity auth parses it). No login header is needed:
    this only says *who to count* for rate limiting, never who is authenticated.
    """
    if not is_loopback(peer) or any(_one(headers, h) is None for h in PROXY_HEADERS):
        return None
    return client_ip_from_forwarded(_one(headers, "x-forwarded-for") or "")


@dataclass(frozen=True)
class VerifiedUser:
    login: str
    name: str | None


class TailscaleIdentity:
    """Per-gateway verifier; disabled unless allowTailscale is on and the mode is not funnel."""

    def __init__(
        self,
        enabled: bool,
        logger: logging.Logger,
        env: Mapping[str, str] | None = None,
        resolver: WhoisResolver | None = None,
    ) -> None:
        self.enabled = enabled
        self.logger = logger
        self.resolver = resolver or WhoisResolver(socket=socket_path(env))

    @classmethod
    def for_settings(cls, settings: object, logger: logging.Logger) -> TailscaleIdentity:
        mode = getattr(settings, "tailscale_mode", "off")
        allowed = bool(getattr(settings, "allow_tailscale", False))
        auth_mode = getattr(settings, "auth_mode", "token")
        return cls(allowed and mode != "funnel" and auth_mode != "none", logger)

    def peer_not_tailscaled(self, sockets: tuple[Any, Any] | None) -> str | None:
        """Why the loopback peer socket cannot be tailscaled's, or None if it can (or we cannot tell).

        Linux records which user created each socket. tailscaled runs as root or as the owner of
        its LocalAPI socket; the gateway's own user is accepted too (it can read the token anyway,
        and it is who runs the tests and a userspace tailscaled on a laptop). So another account
        on a shared machine cannot forge Serve headers. Without /proc (macOS), headers + whois it is.
        """
        if sockets is None or not all(isinstance(a, tuple) and len(a) >= 2 for a in sockets):
            return None
        peer_addr, local_addr = sockets
        owner = socket_owner((str(peer_addr[0]), int(peer_addr[1])), (str(local_addr[0]), int(local_addr[1])))
        if not owner.available:
            return None
        if owner.uid is None:
            return "the loopback peer socket is not in /proc/net/tcp, so its owner is unknown"
        allowed = {0, os.geteuid()}
        with contextlib.suppress(OSError):
            allowed.add(os.stat(self.resolver.socket).st_uid)
        if owner.uid not in allowed:
            return f"the loopback peer socket belongs to uid {owner.uid}, not to tailscaled"
        return None

    async def verify(
        self,
        auth: Mapping[str, str],
        peer: str,
        headers: HeaderSource,
        conn: str = "",
        sockets: tuple[Any, Any] | None = None,
    ) -> VerifiedUser | None:
        """The verified tailnet user, or None (then ordinary token/password rules apply).

        `sockets` is (peer address, our address) of the TCP connection, for the socket-owner check.
        """
        if not self.enabled or auth.get("token") or auth.get("password"):
            return None
        outcome = examine(peer, headers)
        if isinstance(outcome, Claim):
            foreign = self.peer_not_tailscaled(sockets)
            if foreign is not None:
                outcome = Refused(PROXY_MISSING, foreign)
        if isinstance(outcome, Claim):
            result = await self.resolver.lookup(outcome.client_ip)
            refused = matches(outcome, result.identity)
            if refused is None and result.identity is not None:
                log(
                    self.logger,
                    logging.INFO,
                    "tailscale identity verified",
                    conn=conn,
                    login=result.identity.login,
                    client=outcome.client_ip,
                    via=result.via,
                )
                return VerifiedUser(result.identity.login, result.identity.name or outcome.name)
            assert refused is not None
            detail = result.error or refused.detail
            log(
                self.logger,
                logging.WARNING,
                "tailscale identity refused",
                conn=conn,
                reason=refused.reason,
                detail=detail,
                client=outcome.client_ip,
                header_login=outcome.login[:128],
                whois_login=result.identity.login if result.identity else None,
            )
            return None
        # Only worth a log line when the request looked proxied; a plain local client without a
        # token is not a failed Tailscale login.
        if any(headers.get_all(h) for h in (LOGIN_HEADER, FUNNEL_HEADER, *PROXY_HEADERS)):
            log(
                self.logger,
                logging.WARNING,
                "tailscale identity refused",
                conn=conn,
                reason=outcome.reason,
                detail=outcome.detail,
                peer=peer,
            )
        return None
