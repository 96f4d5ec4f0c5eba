"""Pre-auth socket slots behind Tailscale Serve/Funnel: per forwarded client, not one 127.0.0.1 pool.

A real gateway on a real loopback socket and real websockets clients sending what tailscaled's
Serve proxy sends (X-Forwarded-For/-Proto/-Host). One proxied client holding all its unauthenticated
sockets must lock out only itself; all proxied clients together share a bounded budget; direct
loopback clients (SSH tunnel, local CLI) keep their own slots. Outside serve/funnel mode, or
without the full header set, the TCP peer is the key as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.support.serveproxy import no_tailscale_daemon, via_serve
from tests.support.servers import gateway_in_thread, make_settings, wait_until
from tests.support.wsclient import connect_params, handshake, open_ws, recv_json
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection

from clawd_gateway.protocol.constants import MAX_PREAUTH_CONNECTIONS_PER_IP as PER_CLIENT
from clawd_gateway.server import MAX_PREAUTH_PROXIED

TOKEN = "ts-preauth-token-0123456789abcdef"
SERVE = '{gateway: {tailscale: {mode: "serve"}}}'
FUNNEL = '{gateway: {tailscale: {mode: "funnel"}}}'


@pytest.fixture(autouse=True)
def _no_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_tailscale_daemon(tmp_path, monkeypatch)


def hold(url: str, headers: dict[str, str] | None = None) -> ClientConnection:
    """An unauthenticated socket the gateway has accepted (its challenge arrived), kept open."""
    ws = open_ws(url, additional_headers=headers or {})
    assert recv_json(ws)["event"] == "connect.challenge"
    return ws


@contextmanager
def holding(url: str, header_sets: list[dict[str, str] | None]) -> Iterator[list[ClientConnection]]:
    with ExitStack() as stack:
        held = []
        for headers in header_sets:
            held.append(stack.enter_context(hold(url, headers)))
        yield held


def refused(url: str, headers: dict[str, str] | None = None) -> int | None:
    """The HTTP status of a refused upgrade, or None if the socket was accepted (then closed)."""
    try:
        ws = open_ws(url, additional_headers=headers or {})
    except InvalidStatus as exc:
        return exc.response.status_code
    ws.close()
    return None


def connects(url: str, headers: dict[str, str] | None = None) -> bool:
    ws, _, res = handshake(url, TOKEN, additional_headers=headers or {})
    with ws:
        return bool(res["ok"])


def slots(gw: Any) -> tuple[dict[str, int], int]:
    return gw.call_soon(lambda: (dict(gw.gateway._preauth), gw.gateway._preauth_proxied))


def all_released(gw: Any) -> bool:
    return slots(gw) == ({}, 0)


def test_one_forwarded_client_at_its_cap_locks_out_only_itself(tmp_path):
    with gateway_in_thread(make_settings(tmp_path, SERVE, token=TOKEN)) as gw:
        with holding(gw.url, [via_serve("100.64.0.7")] * PER_CLIENT) as held:
            assert slots(gw) == ({"fwd:100.64.0.7": PER_CLIENT}, PER_CLIENT)
            assert refused(gw.url, via_serve("100.64.0.7")) == 503
            # Its own X-Forwarded-For entries (left of Serve's) do not move it to another pool.
            assert refused(gw.url, via_serve("100.64.0.99, 100.64.0.7")) == 503
            assert connects(gw.url, via_serve("100.64.0.8"))
            assert connects(gw.url, via_serve("fd7a:115c:a1e0::8"))
            assert connects(gw.url)  # direct loopback: SSH tunnel, local CLI
            # Authenticating one of its sockets gives that client (and the shared pool) a slot back.
            held[0].send(
                json.dumps({"type": "req", "id": "c", "method": "connect", "params": connect_params(TOKEN)})
            )
            assert recv_json(held[0])["ok"]
            wait_until(
                lambda: slots(gw) == ({"fwd:100.64.0.7": PER_CLIENT - 1}, PER_CLIENT - 1),
                timeout=5,
                what="the authenticated socket's slot to be released",
            )
            assert refused(gw.url, via_serve("100.64.0.7")) is None
        wait_until(lambda: all_released(gw), timeout=5, what="every pre-auth slot released")


def test_all_proxied_clients_share_a_bounded_budget(tmp_path):
    """Rotating (forged) forwarded addresses cannot hold more than MAX_PREAUTH_PROXIED sockets,
    while that shared budget admits more sockets than any one client may hold."""
    with gateway_in_thread(make_settings(tmp_path, SERVE, token=TOKEN)) as gw:
        addresses = [via_serve(f"100.64.1.{i}") for i in range(MAX_PREAUTH_PROXIED)]
        with holding(gw.url, addresses) as held:
            per_client, proxied = slots(gw)
            assert proxied == MAX_PREAUTH_PROXIED > PER_CLIENT  # more than one client's cap got in...
            assert len(per_client) == MAX_PREAUTH_PROXIED and set(per_client.values()) == {1}
            assert refused(gw.url, via_serve("100.64.2.1")) == 503  # ...and not one socket more
            assert connects(gw.url)  # direct loopback clients are outside the proxied budget
            with holding(gw.url, [None] * (PER_CLIENT - 1)):  # ...and keep all their own slots
                assert slots(gw)[0]["127.0.0.1"] == PER_CLIENT - 1
            held[0].close()
            wait_until(
                lambda: slots(gw)[1] == MAX_PREAUTH_PROXIED - 1,
                timeout=5,
                what="a closed proxied socket to free a shared slot",
            )
            assert connects(gw.url, via_serve("100.64.2.1"))
        wait_until(lambda: all_released(gw), timeout=5, what="every pre-auth slot released")


def test_funnel_ipv6_clients_share_slots_per_64(tmp_path):
    one_64 = [via_serve(f"2001:db8:1:2::{i:x}") for i in range(1, PER_CLIENT + 1)]
    with (
        gateway_in_thread(
            make_settings(tmp_path, FUNNEL, auth="password", password="funnel-password-0123456789")
        ) as gw,
        holding(gw.url, one_64),
    ):
        assert slots(gw)[0] == {"fwd:2001:db8:1:2::/64": PER_CLIENT}
        assert refused(gw.url, via_serve("2001:db8:1:2:ffff::1")) == 503
        assert refused(gw.url, via_serve("2001:db8:1:3::1")) is None
        assert refused(gw.url) is None


def test_without_the_full_serve_header_set_the_peer_is_the_key(tmp_path):
    """Only X-Forwarded-For (no -Proto/-Host) is not tailscaled's shape: counted as 127.0.0.1."""
    partial = [{"X-Forwarded-For": "100.64.0.7"}] * PER_CLIENT
    with gateway_in_thread(make_settings(tmp_path, SERVE, token=TOKEN)) as gw, holding(gw.url, partial):
        assert slots(gw) == ({"127.0.0.1": PER_CLIENT}, 0)
        assert refused(gw.url) == 503
        assert refused(gw.url, via_serve("100.64.0.8")) is None


def test_outside_serve_mode_forwarded_headers_change_nothing(tmp_path):
    with gateway_in_thread(make_settings(tmp_path, token=TOKEN)) as gw:
        with holding(gw.url, [via_serve("100.64.0.7")] * PER_CLIENT):
            assert slots(gw) == ({"127.0.0.1": PER_CLIENT}, 0)
            assert refused(gw.url, via_serve("100.64.0.8")) == 503
            assert refused(gw.url) == 503
        wait_until(lambda: all_released(gw), timeout=5, what="every pre-auth slot released")
