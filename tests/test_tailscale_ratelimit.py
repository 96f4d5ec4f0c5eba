"""Auth rate limiting behind Tailscale Serve: per forwarded client, not one 127.0.0.1 bucket.

A real gateway on a real loopback socket and real websockets clients sending what tailscaled's
Serve proxy sends (X-Forwarded-For/-Proto/-Host). One tailnet client with a stale token must
lock out only itself; outside serve/funnel mode, or without the full header set, nothing changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.support.serveproxy import no_tailscale_daemon, via_serve
from tests.support.servers import gateway_in_thread, make_settings
from tests.support.wsclient import close_info, handshake

from clawd_gateway.auth import PROXIED_FACTOR, client_key

TOKEN = "ts-ratelimit-token-0123456789abcdef"
WRONG = "not-the-token-0123456789abcdef"
MAX = 3
SERVE = f'{{gateway: {{tailscale: {{mode: "serve"}}, auth: {{rateLimit: {{maxAttempts: {MAX}}}}}}}}}'
OFF = f"{{gateway: {{auth: {{rateLimit: {{maxAttempts: {MAX}}}}}}}}}"


@pytest.fixture(autouse=True)
def _no_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_tailscale_daemon(tmp_path, monkeypatch)


def connect(gw: Any, token: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    ws, _, res = handshake(gw.url, token, additional_headers=headers or {})
    with ws:
        if not res["ok"]:
            close_info(ws)
    return res


def code(res: dict[str, Any]) -> str | None:
    return None if res["ok"] else res["error"]["details"]["code"]


def lock_out(gw: Any, headers: dict[str, str] | None) -> None:
    seen = [code(connect(gw, WRONG, headers)) for _ in range(MAX)]
    assert seen == ["AUTH_TOKEN_MISMATCH"] * (MAX - 1) + ["AUTH_RATE_LIMITED"], seen


def test_one_tailnet_client_locked_out_others_still_allowed(tmp_path):
    with gateway_in_thread(make_settings(tmp_path, SERVE, token=TOKEN)) as gw:
        lock_out(gw, via_serve("100.64.0.7"))
        locked = connect(gw, TOKEN, via_serve("100.64.0.7"))  # even with the right token now
        other = connect(gw, TOKEN, via_serve("100.64.0.8"))
        other_v6 = connect(gw, TOKEN, via_serve("fd7a:115c:a1e0::8"))
        direct = connect(gw, TOKEN)  # the 127.0.0.1 bucket (SSH tunnel, local CLI) is untouched too
    assert code(locked) == "AUTH_RATE_LIMITED"
    assert locked["error"]["retryAfterMs"] > 0
    assert other["ok"] and other_v6["ok"] and direct["ok"]


def test_the_key_is_the_address_serve_wrote_not_one_the_client_sent(tmp_path):
    """A client's own X-Forwarded-For entries (left of Serve's) do not move it to another bucket."""
    with gateway_in_thread(make_settings(tmp_path, SERVE, token=TOKEN)) as gw:
        lock_out(gw, via_serve("100.64.0.7"))
        dodge = connect(gw, TOKEN, via_serve("100.64.0.99, 100.64.0.7"))
    assert code(dodge) == "AUTH_RATE_LIMITED"


def test_without_the_full_serve_header_set_the_peer_is_the_key(tmp_path):
    """Only X-Forwarded-For (no -Proto/-Host) is not tailscaled's shape: counted as 127.0.0.1."""
    with gateway_in_thread(make_settings(tmp_path, SERVE, token=TOKEN)) as gw:
        lock_out(gw, {"X-Forwarded-For": "100.64.0.7"})
        direct = connect(gw, TOKEN)
        serve_client = connect(gw, TOKEN, via_serve("100.64.0.8"))
    assert code(direct) == "AUTH_RATE_LIMITED"
    assert serve_client["ok"]  # its own bucket, and the shared proxied budget is far from spent


def test_outside_serve_mode_forwarded_headers_change_nothing(tmp_path):
    with gateway_in_thread(make_settings(tmp_path, OFF, token=TOKEN)) as gw:
        lock_out(gw, via_serve("100.64.0.7"))
        other = connect(gw, TOKEN, via_serve("100.64.0.8"))
        direct = connect(gw, TOKEN)
    assert code(other) == "AUTH_RATE_LIMITED" and code(direct) == "AUTH_RATE_LIMITED"


def test_rotating_forged_addresses_is_capped_by_the_shared_budget(tmp_path):
    """A local process forging a new address per attempt gets PROXIED_FACTOR x maxAttempts tries."""
    with gateway_in_thread(make_settings(tmp_path, SERVE, token=TOKEN)) as gw:
        seen = []
        for i in range(PROXIED_FACTOR * MAX):
            seen.append(code(connect(gw, WRONG, via_serve(f"100.64.1.{i}"))))
        fresh = connect(gw, TOKEN, via_serve("100.64.2.1"))
        direct = connect(gw, TOKEN)
    assert seen[:-1] == ["AUTH_TOKEN_MISMATCH"] * (PROXIED_FACTOR * MAX - 1)
    assert seen[-1] == "AUTH_RATE_LIMITED"
    assert code(fresh) == "AUTH_RATE_LIMITED"
    assert direct["ok"]  # direct loopback clients are not behind the proxy budget


def test_funnel_ipv6_clients_count_per_64():
    """A Funnel client owns a whole /64; tailnet IPv6 addresses are one node each."""
    key = client_key
    assert key("127.0.0.1", None) == "127.0.0.1"
    assert key("127.0.0.1", "2001:db8:1:2::5") == key("127.0.0.1", "2001:db8:1:2:ffff::9")
    assert key("127.0.0.1", "2001:db8:1:2::5") != key("127.0.0.1", "2001:db8:1:3::5")
    assert key("127.0.0.1", "fd7a:115c:a1e0::5") != key("127.0.0.1", "fd7a:115c:a1e0::6")
    assert key("127.0.0.1", "100.64.0.7") != key("127.0.0.1", "100.64.0.8")
