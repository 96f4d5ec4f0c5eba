"""Plain HTTP on the gateway port: probes, Control UI, methods."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from clawd_gateway.http import origin_allowed

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPRedirectHandler())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url: str, method: str = "GET", follow: bool = True):
    opener = (
        _opener if follow else urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    )
    req = urllib.request.Request(url, method=method)
    try:
        with opener.open(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_liveness_and_readiness(gateway):
    base = f"http://127.0.0.1:{gateway.port}"
    for path in ("/health", "/healthz"):
        status, headers, body = fetch(base + path)
        assert status == 200 and json.loads(body) == {"ok": True, "status": "live"}
        assert headers["Content-Type"].startswith("application/json")
    for path in ("/ready", "/readyz"):
        status, _, body = fetch(base + path)
        data = json.loads(body)
        assert status == 200 and data["ready"] is True and data["failing"] == [] and data["uptimeMs"] >= 0


def test_head_and_405(gateway):
    base = f"http://127.0.0.1:{gateway.port}"
    status, headers, body = fetch(base + "/healthz", "HEAD")
    assert status == 200 and body == b"" and headers["Content-Length"] == "27"
    status, headers, _ = fetch(base + "/healthz", "DELETE")
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_readyz_503_while_stopping(make_gateway):
    gw = make_gateway(token="t0123456789abcdef")
    gw.gateway.ready = False
    status, _, body = fetch(f"http://127.0.0.1:{gw.port}/readyz")
    assert status == 503 and json.loads(body)["ready"] is False


def test_control_ui_root_with_security_headers(gateway):
    status, headers, body = fetch(f"http://127.0.0.1:{gateway.port}/")
    assert status == 200 and b"clawd-gateway" in body
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer" and headers["X-Frame-Options"] == "DENY"
    status, headers, body = fetch(f"http://127.0.0.1:{gateway.port}/app.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert b'from "./gateway.js"' in body
    # The protocol (challenge, connect, req/res) lives in gateway.js, which app.js imports.
    status, headers, body = fetch(f"http://127.0.0.1:{gateway.port}/gateway.js")
    assert (
        status == 200
        and headers["Content-Type"].startswith("text/javascript")
        and b'"connect.challenge"' in body
    )


def test_control_ui_base_path(make_gateway):
    gw = make_gateway('{gateway: {controlUi: {basePath: "/control"}}}', token="t0123456789abcdef")
    base = f"http://127.0.0.1:{gw.port}"
    status, headers, _ = fetch(base + "/control", follow=False)
    assert status == 302 and headers["Location"] == "/control/"
    status, _, body = fetch(base + "/control/")
    assert status == 200 and b'data-base-path="/control"' in body
    assert fetch(base + "/elsewhere")[0] == 404
    assert fetch(base + "/control/../../etc/passwd")[0] in (200, 404)  # never a file outside the UI
    assert b"root:" not in fetch(base + "/control/../../etc/passwd")[2]


def test_control_ui_disabled(make_gateway):
    gw = make_gateway("{gateway: {controlUi: {enabled: false}}}", token="t0123456789abcdef")
    assert fetch(f"http://127.0.0.1:{gw.port}/")[0] == 404
    assert fetch(f"http://127.0.0.1:{gw.port}/healthz")[0] == 200


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "127.0.0.1:18789", (), True),
        ("http://127.0.0.1:18789", "127.0.0.1:18789", (), True),
        ("http://localhost:18789", "localhost:18789", (), True),
        ("http://[::1]:18789", "[::1]:18789", (), True),
        ("http://127.0.0.1:18790", "127.0.0.1:18789", (), False),
        ("http://evil.example:18789", "evil.example:18789", (), False),
        ("https://gw.tail1234.ts.net", "gw.tail1234.ts.net", ("https://gw.tail1234.ts.net/",), True),
        ("null", "127.0.0.1:18789", (), False),
        ("http://127.0.0.1:18789", None, (), False),
    ],
)
def test_origin_rule(origin, host, allowed, ok):
    assert origin_allowed(origin, host, allowed, ("127.0.0.1", "::1")) is ok
