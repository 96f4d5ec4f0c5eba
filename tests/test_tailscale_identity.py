"""Tailscale Serve identity headers: a credential only in the exact safe case.

A real gateway on a real loopback socket, real websockets clients that send what tailscaled's
Serve proxy sends, and the fake `tailscale` (CLI and LocalAPI) answering whois. Each missing
condition must refuse, and a burst of connects must cost one whois lookup.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from tests.support.fake_tailscale import FakeTailscale
from tests.support.servers import gateway_in_thread, make_settings, require
from tests.support.wsclient import close_info, handshake
from websockets.datastructures import Headers

from clawd_gateway.tailscale.identity import (
    FUNNEL_REQUEST,
    PROXY_MISSING,
    USER_MISMATCH,
    USER_MISSING,
    WHOIS_FAILED,
    Claim,
    Refused,
    client_ip_from_forwarded,
    decode_header_value,
    examine,
    matches,
)
from clawd_gateway.tailscale.parse import WhoisIdentity
from clawd_gateway.tailscale.whois import WhoisResolver

TOKEN = "ts-identity-token-0123456789abcdef"
BOB_IP = "100.64.0.7"
SERVE_CONFIG = '{gateway: {tailscale: {mode: "serve"}}}'


def serve_headers(login: str | None = "bob@example.com", ip: str = BOB_IP, **extra: str) -> dict[str, str]:
    """What tailscaled's Serve proxy adds to a proxied request."""
    h = {
        "X-Forwarded-For": ip,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "gw.tail1234.ts.net",
    }
    if login is not None:
        h["Tailscale-User-Login"] = login
        h["Tailscale-User-Name"] = "Bob Example"
    h.update(extra)
    return h


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The fake CLI first on PATH; bob's laptop is a tailnet peer. No LocalAPI socket by default."""
    with FakeTailscale.create(tmp_path) as f:
        f.add_peer("laptop", [BOB_IP], user_login="bob@example.com")
        for k, v in f.env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("CLAWD_TAILSCALE_SOCKET", str(tmp_path / "no-such.sock"))
        yield f


def whois_cli_calls(fake: FakeTailscale) -> list[list[str]]:
    return [c for c in fake.calls() if c and c[0] == "whois"]


def connect(gw: Any, headers: dict[str, str], token: str | None = None) -> dict[str, Any]:
    ws, _, res = handshake(gw.url, token, additional_headers=headers)
    with ws:
        if not res["ok"]:
            close_info(ws)
    return res


# --- the pure half --------------------------------------------------------------------------


def test_examine_accepts_exactly_the_serve_shape():
    claim = examine("127.0.0.1", Headers(serve_headers()))
    assert claim == Claim("bob@example.com", BOB_IP, "Bob Example")
    assert isinstance(examine("::1", Headers(serve_headers())), Claim)


@pytest.mark.parametrize(
    ("peer", "headers", "reason"),
    [
        ("192.0.2.10", serve_headers(), PROXY_MISSING),  # not from tailscaled on this machine
        ("100.64.0.9", serve_headers(), PROXY_MISSING),  # a tailnet peer talking to us directly
        ("127.0.0.1", {k: v for k, v in serve_headers().items() if k != "X-Forwarded-For"}, PROXY_MISSING),
        ("127.0.0.1", {k: v for k, v in serve_headers().items() if k != "X-Forwarded-Proto"}, PROXY_MISSING),
        ("127.0.0.1", {k: v for k, v in serve_headers().items() if k != "X-Forwarded-Host"}, PROXY_MISSING),
        ("127.0.0.1", serve_headers(login=None), USER_MISSING),
        ("127.0.0.1", serve_headers(**{"Tailscale-Funnel-Request": "?1"}), FUNNEL_REQUEST),
        ("127.0.0.1", serve_headers(ip="not-an-ip"), PROXY_MISSING),
        ("127.0.0.1", serve_headers(ip="127.0.0.1"), PROXY_MISSING),  # no client address at all
    ],
)
def test_examine_refuses_each_missing_condition(peer, headers, reason):
    out = examine(peer, Headers(headers))
    assert isinstance(out, Refused) and out.reason == reason, out


def test_repeated_headers_are_not_trusted():
    h = Headers(serve_headers())
    h["X-Forwarded-Host"] = "evil.example"  # Headers keeps both values
    assert examine("127.0.0.1", h) == Refused(PROXY_MISSING, "missing or repeated x-forwarded-host")
    h2 = Headers(serve_headers())
    h2["Tailscale-User-Login"] = "alice@example.com"
    assert isinstance(examine("127.0.0.1", h2), Refused)


def test_forwarded_for_is_only_the_address_the_proxy_wrote():
    assert client_ip_from_forwarded("100.64.0.7") == "100.64.0.7"
    assert client_ip_from_forwarded("fd7a:115c:a1e0::12") == "fd7a:115c:a1e0::12"
    # A proxy that appends puts its own entry last; what the client sent (left) is never read.
    assert client_ip_from_forwarded("100.64.0.9, 100.64.0.7") == "100.64.0.7"
    # ... not even when the last entry is unusable: walking left would read the client's claim.
    assert client_ip_from_forwarded("203.0.113.9, 100.64.0.7, 127.0.0.1") is None
    assert client_ip_from_forwarded("100.64.0.7, ::1") is None
    assert client_ip_from_forwarded("100.64.0.7, --help") is None
    assert client_ip_from_forwarded("100.64.0.7,") is None
    for odd in ("100.64.0.7:41641", "[fd7a:115c:a1e0::12]:443", "fd7a:115c:a1e0::12%tailscale0", "0.0.0.0"):
        assert client_ip_from_forwarded(odd) is None, odd


def test_proxied_client_needs_the_whole_serve_shape():
    from clawd_gateway.tailscale.identity import proxied_client

    assert proxied_client("127.0.0.1", Headers(serve_headers(login=None))) == BOB_IP
    assert proxied_client("100.64.0.9", Headers(serve_headers())) is None
    partial = {k: v for k, v in serve_headers().items() if k != "X-Forwarded-Host"}
    assert proxied_client("127.0.0.1", Headers(partial)) is None
    twice = Headers(serve_headers())
    twice["X-Forwarded-For"] = "100.64.0.8"
    assert proxied_client("127.0.0.1", twice) is None


def test_login_compare_is_case_insensitive_and_q_encoding_is_decoded():
    claim = Claim("Bob@Example.COM", BOB_IP, None)
    assert matches(claim, WhoisIdentity("bob@example.com")) is None
    assert matches(claim, WhoisIdentity("alice@example.com")).reason == USER_MISMATCH
    assert matches(claim, None).reason == WHOIS_FAILED
    assert decode_header_value("=?utf-8?q?j=C3=BCrgen@example.com?=") == "jürgen@example.com"


# --- a real gateway -------------------------------------------------------------------------


def test_serve_identity_authenticates_without_a_secret(tmp_path, fake):
    settings = make_settings(tmp_path, SERVE_CONFIG, token=TOKEN)
    assert settings.allow_tailscale is True  # the default in serve mode with token auth
    with gateway_in_thread(settings) as gw:
        res = connect(gw, serve_headers(login="BOB@example.com"))
    assert res["ok"], res
    assert res["payload"]["auth"]["method"] == "tailscale"
    assert res["payload"]["auth"]["scopes"] == ["operator.read"]
    assert whois_cli_calls(fake) == [["whois", "--json", BOB_IP]]


@pytest.mark.parametrize(
    ("case", "headers", "reason", "whois_calls"),
    [
        ("no x-forwarded-for", {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "gw", "Tailscale-User-Login": "bob@example.com"}, PROXY_MISSING, 0),
        ("no x-forwarded-proto", {"X-Forwarded-For": BOB_IP, "X-Forwarded-Host": "gw", "Tailscale-User-Login": "bob@example.com"}, PROXY_MISSING, 0),
        ("no x-forwarded-host", {"X-Forwarded-For": BOB_IP, "X-Forwarded-Proto": "https", "Tailscale-User-Login": "bob@example.com"}, PROXY_MISSING, 0),
        ("no login header", serve_headers(login=None), USER_MISSING, 0),
        ("funnel request", serve_headers(**{"Tailscale-Funnel-Request": "?1"}), FUNNEL_REQUEST, 0),
        ("whois mismatch", serve_headers(login="alice@example.com"), USER_MISMATCH, 1),
        ("whois failure", serve_headers(ip="100.99.0.1"), WHOIS_FAILED, 1),
    ],
)  # fmt: skip
def test_each_missing_condition_refuses(tmp_path, fake, capfd, case, headers, reason, whois_calls):
    settings = make_settings(tmp_path, SERVE_CONFIG, token=TOKEN)
    with gateway_in_thread(settings) as gw:
        capfd.readouterr()
        res = connect(gw, headers)
        logs = capfd.readouterr().err
    assert not res["ok"], case
    assert f"reason={reason}" in logs, logs
    assert TOKEN not in logs
    assert len(whois_cli_calls(fake)) == whois_calls


def test_a_wrong_token_is_not_rescued_by_identity_headers(tmp_path, fake):
    settings = make_settings(tmp_path, SERVE_CONFIG, token=TOKEN)
    with gateway_in_thread(settings) as gw:
        bad = connect(gw, serve_headers(), token="wrong-token-0123456789")
        good = connect(gw, serve_headers(), token=TOKEN)
    assert not bad["ok"] and bad["error"]["details"]["code"] == "AUTH_TOKEN_MISMATCH"
    assert good["ok"] and good["payload"]["auth"]["method"] == "token"
    assert whois_cli_calls(fake) == []  # a credential was offered: no identity lookup at all


def test_allow_tailscale_false_turns_it_off(tmp_path, fake):
    cfg = '{gateway: {tailscale: {mode: "serve"}, auth: {allowTailscale: false}}}'
    with gateway_in_thread(make_settings(tmp_path, cfg, token=TOKEN)) as gw:
        res = connect(gw, serve_headers())
    assert not res["ok"] and whois_cli_calls(fake) == []


def test_never_in_funnel_mode(tmp_path, fake):
    cfg = '{gateway: {tailscale: {mode: "funnel"}, auth: {mode: "password", allowTailscale: true}}}'
    settings = make_settings(tmp_path, cfg, password="funnel-password-0123456789")
    assert settings.allow_tailscale is False
    assert any("allowTailscale is ignored" in n for n in settings.notes)
    with gateway_in_thread(settings) as gw:
        res = connect(gw, serve_headers())
    assert not res["ok"] and res["error"]["details"]["code"] != "tailscale"
    assert whois_cli_calls(fake) == []


def test_password_mode_default_is_off(tmp_path, fake):
    cfg = '{gateway: {tailscale: {mode: "serve"}, auth: {mode: "password"}}}'
    settings = make_settings(tmp_path, cfg, password="serve-password-0123456789")
    assert settings.allow_tailscale is False


def _burst(gw: Any, n: int, headers: dict[str, str]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    go = threading.Barrier(n)

    def one() -> None:
        go.wait(10)
        res = connect(gw, headers)
        with lock:
            results.append(res)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_a_burst_of_connects_costs_one_cli_whois(tmp_path, fake):
    with gateway_in_thread(make_settings(tmp_path, SERVE_CONFIG, token=TOKEN)) as gw:
        results = _burst(gw, 8, serve_headers())
        again = connect(gw, serve_headers())  # cached
        failing = [connect(gw, serve_headers(ip="100.99.0.1")) for _ in range(3)]  # failure cached too
    assert len(results) == 8 and all(r["ok"] for r in results), results
    assert again["ok"] and not any(f["ok"] for f in failing)
    assert whois_cli_calls(fake) == [["whois", "--json", BOB_IP], ["whois", "--json", "100.99.0.1"]]


def test_localapi_is_preferred_when_its_socket_answers(tmp_path, fake, monkeypatch):
    sock = fake.start_localapi()
    monkeypatch.setenv("CLAWD_TAILSCALE_SOCKET", sock)
    with gateway_in_thread(make_settings(tmp_path, SERVE_CONFIG, token=TOKEN)) as gw:
        results = _burst(gw, 6, serve_headers())
        mismatch = connect(gw, serve_headers(login="mallory@example.com", ip="100.64.0.8"))
    assert all(r["ok"] for r in results) and not mismatch["ok"]
    api = [c for c in fake.localapi_calls() if c["path"] == "/localapi/v0/whois"]
    assert [c["query"]["addr"] for c in api] == [BOB_IP, "100.64.0.8"]
    assert api[0]["host"] == "local-tailscaled.sock"
    assert whois_cli_calls(fake) == []  # the CLI is only the fallback


def test_cli_fallback_when_the_daemon_socket_is_gone(tmp_path, fake, monkeypatch):
    sock = fake.start_localapi()
    monkeypatch.setenv("CLAWD_TAILSCALE_SOCKET", sock)
    fake.stop_localapi()
    with gateway_in_thread(make_settings(tmp_path, SERVE_CONFIG, token=TOKEN)) as gw:
        res = connect(gw, serve_headers())
    assert res["ok"] and whois_cli_calls(fake) == [["whois", "--json", BOB_IP]]


def test_cache_lifetimes(fake):
    """60 s for an answer, 5 s for a failure, on an explicit clock."""
    now = [1000.0]
    resolver = WhoisResolver(socket="/nonexistent.sock", clock=lambda: now[0])

    async def scenario() -> list[str | None]:
        seen = []
        for step in (0, 59, 2):  # t=0 lookup, t=59 cached, t=61 expired
            now[0] += step
            r = await resolver.lookup(BOB_IP)
            seen.append(r.identity.login if r.identity else None)
        for step in (0, 4, 2):  # failure: t=0 lookup, t=4 cached, t=6 expired
            now[0] += step
            await resolver.lookup("100.99.0.1")
        bad = await resolver.lookup("--version")  # never reaches argv
        seen.append(bad.error)
        return seen

    seen = asyncio.run(scenario())
    assert seen[:3] == ["bob@example.com"] * 3
    assert "not an IP" in (seen[3] or "")
    assert (
        whois_cli_calls(fake) == [["whois", "--json", BOB_IP]] * 2 + [["whois", "--json", "100.99.0.1"]] * 2
    )


def test_localapi_reader_handles_chunked_and_sized_bodies():
    """tailscaled (Go net/http) chunks answers over 4 KiB; small ones carry Content-Length."""
    from clawd_gateway.tailscale.localapi import parse_response

    chunked = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n'
    assert parse_response(chunked).body == b'{"a": 1}'
    sized = b"HTTP/1.1 404 Not Found\r\nContent-Length: 15\r\n\r\npeer not found\nEXTRA"
    res = parse_response(sized)
    assert res.status == 404 and res.body == b"peer not found\n"


def test_client_supplied_forwarded_for_left_of_a_loopback_entry_is_not_an_identity(tmp_path, fake):
    """Bob's address in the client's part of X-Forwarded-For, loopback last: not bob, no lookup."""
    settings = make_settings(tmp_path, SERVE_CONFIG, token=TOKEN)
    with gateway_in_thread(settings) as gw:
        res = connect(gw, serve_headers(ip=f"{BOB_IP}, 127.0.0.1"))
    assert not res["ok"], res
    assert whois_cli_calls(fake) == []


def test_a_tagged_node_never_authenticates_by_login_header(tmp_path, fake):
    """Serve sends no login for a tagged node, so a `tagged-devices` login header is forged."""
    fake.add_peer("ci-runner", ["100.64.0.20"], tags=["tag:ci"])
    settings = make_settings(tmp_path, SERVE_CONFIG, token=TOKEN)
    with gateway_in_thread(settings) as gw:
        res = connect(gw, serve_headers(login="tagged-devices", ip="100.64.0.20"))
    assert not res["ok"], res
    assert whois_cli_calls(fake) == [["whois", "--json", "100.64.0.20"]]  # asked, and refused the answer


def test_tagged_whois_answers_are_marked():
    from clawd_gateway.tailscale.parse import parse_whois

    tagged = parse_whois({"Node": {"Tags": ["tag:ci"]}, "UserProfile": {"LoginName": "tagged-devices"}})
    person = parse_whois({"Node": {}, "UserProfile": {"LoginName": "bob@example.com"}})
    assert tagged is not None and tagged.tagged and person is not None and not person.tagged
    assert matches(Claim("tagged-devices", "100.64.0.20", None), tagged).reason == USER_MISMATCH


# --- who opened the loopback socket ----------------------------------------------------------

NOBODY = 65534


def socket_opened_by(uid: int, port: int) -> socket.socket:
    """A loopback TCP connection created by a forked child running as `uid`, handed back to us.

    The kernel keeps the creator as the socket's owner, so this is exactly what another account
    on a shared machine forging Serve headers looks like, driven by a real websockets client.
    """
    parent, child = socket.socketpair(socket.AF_UNIX)
    parent.settimeout(10)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.connect(("127.0.0.1", port))
            socket.send_fds(child, [b"x"], [s.fileno()])
            code = 0
        finally:
            os._exit(code)
    try:
        _, fds, _, _ = socket.recv_fds(parent, 1, 1)
    finally:
        os.waitpid(pid, 0)
        parent.close()
        child.close()
    assert fds, "child could not connect"
    return socket.socket(fileno=fds[0])


def test_socket_owner_reads_the_kernel_table():
    from clawd_gateway.tailscale.peeruid import decode_address, socket_owner

    require(Path("/proc/net/tcp").exists(), "needs Linux /proc/net/tcp")
    assert decode_address("0100007F:1F90" if sys.byteorder == "little" else "7F000001:1F90") == (
        ipaddress.ip_address("127.0.0.1"),
        8080,
    )
    with socket.create_server(("127.0.0.1", 0)) as srv, socket.create_connection(srv.getsockname()) as c:
        conn, _ = srv.accept()
        with conn:
            owner = socket_owner(c.getsockname(), srv.getsockname())
            unknown = socket_owner(("127.0.0.1", 9), srv.getsockname())
    assert owner.available and owner.uid == os.geteuid()
    assert unknown.available and unknown.uid is None


def test_another_local_account_cannot_forge_serve_identity(tmp_path, fake, capfd):
    require(Path("/proc/net/tcp").exists(), "needs Linux /proc/net/tcp")
    require(os.geteuid() == 0, "needs root to open a socket as another user")
    settings = make_settings(tmp_path, SERVE_CONFIG, token=TOKEN)
    with gateway_in_thread(settings) as gw:
        capfd.readouterr()
        ws, _, forged = handshake(
            gw.url, None, additional_headers=serve_headers(), sock=socket_opened_by(NOBODY, gw.port)
        )
        with ws:
            close_info(ws)
        logs = capfd.readouterr().err
        ws, _, mine = handshake(
            gw.url, None, additional_headers=serve_headers(), sock=socket_opened_by(0, gw.port)
        )
        ws.close()
    assert not forged["ok"], forged
    assert f"belongs to uid {NOBODY}" in logs, logs
    assert mine["ok"] and mine["payload"]["auth"]["method"] == "tailscale", mine
    assert whois_cli_calls(fake) == [["whois", "--json", BOB_IP]]  # only for the socket root opened
