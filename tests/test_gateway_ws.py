"""The gateway's WebSocket rules, checked with real websockets clients on a real socket."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest
from tests.support.servers import wait_until
from tests.support.wsclient import (
    close_info,
    connect_params,
    handshake,
    open_ws,
    recv_json,
    send_req,
    wait_res,
)
from websockets.exceptions import InvalidStatus

from clawd_gateway.protocol.device import DeviceKey

TOKEN = "s3cret-token-for-tests-0123456789"


def test_challenge_is_first_and_strict(gateway):
    with open_ws(gateway.url) as ws:
        frame = recv_json(ws)
    assert set(frame) == {"type", "event", "payload"}
    assert frame["type"] == "event" and frame["event"] == "connect.challenge"
    assert str(uuid.UUID(frame["payload"]["nonce"])) == frame["payload"]["nonce"]
    assert abs(frame["payload"]["ts"] - time.time() * 1000) < 10_000


def test_hello_ok_v4_envelope_and_grants(gateway):
    ws, _, res = handshake(gateway.url, TOKEN, scopes=["operator.read", "operator.admin", "bogus.scope"])
    with ws:
        assert set(res) == {"type", "id", "ok", "payload"} and res["ok"] is True
        hello = res["payload"]
        assert hello["type"] == "hello-ok" and hello["protocol"] == 4
        assert set(hello["server"]) == {"version", "connId"}
        assert {"health", "status", "system-presence"} <= set(hello["features"]["methods"])
        assert {"connect.challenge", "tick", "presence", "shutdown"} <= set(hello["features"]["events"])
        assert hello["policy"] == {
            "maxPayload": 26214400,
            "maxBufferedBytes": 52428800,
            "tickIntervalMs": 30000,
        }
        assert hello["auth"] == {
            "method": "token",
            "role": "operator",
            "scopes": ["operator.read", "operator.admin"],
        }
        assert hello["snapshot"]["presence"][0]["mode"] == "gateway"
        assert "deviceToken" not in hello["auth"]


def test_protocol3_only_client_gets_3(gateway):
    ws, _, res = handshake(gateway.url, TOKEN, min_protocol=3, max_protocol=3)
    with ws:
        assert res["ok"] and res["payload"]["protocol"] == 3


def test_protocol_mismatch_errors_then_1002(gateway):
    ws, _, res = handshake(gateway.url, TOKEN, min_protocol=5, max_protocol=6)
    assert res["ok"] is False
    assert res["error"]["message"] == "protocol mismatch"
    assert res["error"]["details"]["code"] == "PROTOCOL_MISMATCH"
    assert res["error"]["details"]["expectedProtocol"] == 4
    assert close_info(ws) == (1002, "protocol mismatch")


@pytest.mark.parametrize(
    ("frame", "reply_message"),
    [
        ("hello", None),
        (json.dumps([1, 2, 3]), None),
        (
            json.dumps({"type": "req", "id": "x1", "method": "health"}),
            "invalid handshake: first request must be connect",
        ),
        (
            json.dumps({"type": "req", "id": "x2", "method": "connect", "params": {}, "extra": 1}),
            "invalid handshake: invalid request frame: unexpected property 'extra'",
        ),
        (
            json.dumps(
                {
                    "type": "req",
                    "id": "x3",
                    "method": "connect",
                    "params": {"minProtocol": 4, "maxProtocol": 4},
                }
            ),
            "invalid connect params: client is required",
        ),
        (
            json.dumps({"type": "event", "id": "x4", "event": "hi"}),
            'invalid handshake: invalid request frame: type must be "req"',
        ),
    ],
)
def test_bad_first_frames_are_refused_with_1008(gateway, frame, reply_message):
    with open_ws(gateway.url) as ws:
        recv_json(ws)
        ws.send(frame)
        if reply_message is not None:
            res = recv_json(ws)
            assert res["ok"] is False and res["error"]["code"] == "INVALID_REQUEST"
            assert res["error"]["message"] == reply_message
        code, reason = close_info(ws)
        assert code == 1008 and reason.startswith("invalid")
    # the server is still fine
    ws2, _, res2 = handshake(gateway.url, TOKEN)
    with ws2:
        assert res2["ok"]


def test_binary_first_frame_refused(gateway):
    with open_ws(gateway.url) as ws:
        recv_json(ws)
        ws.send(b"\x00\x01binary")
        code, reason = close_info(ws)
    assert code == 1008 and "binary" in reason


def test_preauth_frame_size_is_bounded(gateway):
    with open_ws(gateway.url) as ws:
        recv_json(ws)
        ws.send("x" * (100 * 1024))
        code, _ = close_info(ws)
    assert code == 1009


def test_post_auth_accepts_large_frames(gateway):
    ws, _, res = handshake(gateway.url, TOKEN)
    with ws:
        rid = send_req(ws, "health", {"padding": "y" * (2 * 1024 * 1024)})
        assert wait_res(ws, rid)["ok"] is True


def test_handshake_deadline_closes_silent_clients(make_gateway):
    """The configured deadline closes a silent client, with its reason. That it is this setting
    and not some other timer: a silent client of a gateway with a 10-minute deadline, connected
    first, is still connected afterwards. How soon (300 ms here): bench/timings_bench.py."""
    patient = make_gateway(token=TOKEN, env={"OPENCLAW_HANDSHAKE_TIMEOUT_MS": "600000"})
    gw = make_gateway(token=TOKEN, env={"OPENCLAW_HANDSHAKE_TIMEOUT_MS": "300"})
    with open_ws(patient.url) as waiting, open_ws(gw.url) as ws:
        recv_json(waiting)
        recv_json(ws)
        code, reason = close_info(ws, timeout=60)
        assert code == 1008 and "handshake timeout" in reason
        assert waiting.ping().wait(30), "the other gateway's silent client should still be connected"


def test_wrong_token_matches_real_gateway(gateway):
    ws, _, res = handshake(gateway.url, "WRONG")
    assert res == {
        "type": "res",
        "id": res["id"],
        "ok": False,
        "error": {
            "code": "INVALID_REQUEST",
            "message": "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)",
            "details": {
                "code": "AUTH_TOKEN_MISMATCH",
                "authReason": "token_mismatch",
                "canRetryWithDeviceToken": False,
                "recommendedNextStep": "update_auth_credentials",
            },
        },
    }
    code, reason = close_info(ws)
    assert code == 1008 and reason == res["error"]["message"]


def test_missing_credentials(gateway):
    ws, _, res = handshake(gateway.url, None)
    assert res["error"]["code"] == "NOT_PAIRED"
    assert res["error"]["details"]["code"] == "DEVICE_IDENTITY_REQUIRED"
    assert close_info(ws)[0] == 1008
    ws, _, res = handshake(gateway.url, None, password="not-the-mode")
    assert res["error"]["details"]["code"] == "AUTH_TOKEN_MISSING"
    assert close_info(ws)[0] == 1008


def test_password_mode(make_gateway):
    gw = make_gateway('{gateway: {auth: {mode: "password"}}}', password="correct horse battery")
    ws, _, res = handshake(gw.url, None, password="wrong")
    assert res["error"]["details"]["code"] == "AUTH_PASSWORD_MISMATCH"
    assert "gateway password mismatch" in res["error"]["message"]
    ws.close()
    ws, _, res = handshake(gw.url, "token-is-not-password")
    assert res["error"]["details"]["code"] == "AUTH_PASSWORD_MISSING"
    ws.close()
    ws, _, res = handshake(gw.url, None, password="correct horse battery")
    with ws:
        assert res["ok"] and res["payload"]["auth"]["method"] == "password"


def test_failed_auth_lockout_is_bounded(make_gateway):
    gw = make_gateway(
        "{gateway: {auth: {rateLimit: {maxAttempts: 3, windowMs: 60000, lockoutMs: 800}}}}", token=TOKEN
    )
    details = []
    for _ in range(3):
        ws, _, res = handshake(gw.url, "WRONG")
        details.append(res["error"]["details"]["code"])
        ws.close()
    assert details == ["AUTH_TOKEN_MISMATCH", "AUTH_TOKEN_MISMATCH", "AUTH_RATE_LIMITED"]
    # Locked out: even the right secret is refused, with a clear retry hint.
    ws, _, res = handshake(gw.url, TOKEN)
    ws.close()
    assert res["error"]["details"]["code"] == "AUTH_RATE_LIMITED"
    assert res["error"]["message"] == "unauthorized: too many failed authentication attempts (retry later)"
    assert 0 < res["error"]["retryAfterMs"] <= 800

    # ...but not forever.
    def right_secret_works() -> bool:
        w, _, r = handshake(gw.url, TOKEN)
        w.close()
        return r["ok"]

    wait_until(right_secret_works, timeout=5, interval=0.1, what="lockout to expire")


def test_success_resets_failure_count(make_gateway):
    gw = make_gateway("{gateway: {auth: {rateLimit: {maxAttempts: 3, lockoutMs: 60000}}}}", token=TOKEN)
    for attempt in ("WRONG", "WRONG", TOKEN, "WRONG", "WRONG"):
        ws, _, res = handshake(gw.url, attempt)
        ws.close()
    assert res["error"]["details"]["code"] == "AUTH_TOKEN_MISMATCH"


def test_probe_mode_gets_no_scopes(gateway):
    ws, _, res = handshake(gateway.url, TOKEN, mode="probe", scopes=["operator.read"])
    with ws:
        assert res["payload"]["auth"]["scopes"] == []
        st = wait_res(ws, send_req(ws, "status", {}))
        assert st["error"]["code"] == "FORBIDDEN"
        assert st["error"]["details"] == {
            "code": "MISSING_SCOPE",
            "missingScope": "operator.read",
            "requiredScopes": ["operator.read"],
        }
        assert wait_res(ws, send_req(ws, "health"))["ok"] is True


def test_unknown_method_and_bad_frames_keep_socket_open(gateway):
    ws, _, _ = handshake(gateway.url, TOKEN)
    with ws:
        res = wait_res(ws, send_req(ws, "no.such.method", {}))
        assert res["error"] == {"code": "INVALID_REQUEST", "message": "unknown method: no.such.method"}
        ws.send("{not json")
        bad = recv_json(ws)
        assert bad["ok"] is False and "not valid JSON" in bad["error"]["message"]
        ws.send(json.dumps({"type": "req", "id": "e1", "method": ""}))
        assert recv_json(ws)["error"]["message"].startswith("invalid request frame")
        again = wait_res(ws, send_req(ws, "connect", connect_params(TOKEN)))
        assert again["error"]["message"] == "invalid request: already connected"
        assert wait_res(ws, send_req(ws, "health"))["ok"] is True


def test_health_status_presence_identity(gateway):
    ws, _, _ = handshake(gateway.url, TOKEN)
    with ws:
        health = wait_res(ws, send_req(ws, "health", {"probe": True}))["payload"]
        for key in (
            "ok",
            "ts",
            "durationMs",
            "channels",
            "channelOrder",
            "channelLabels",
            "heartbeatSeconds",
            "defaultAgentId",
            "agents",
            "sessions",
        ):
            assert key in health
        assert set(health["sessions"]) >= {"path", "count", "recent"}
        status = wait_res(ws, send_req(ws, "status"))["payload"]
        assert status["gateway"]["authMode"] == "token"
        assert [c["clientId"] for c in status["gateway"]["clients"]] == ["cli"]
        presence = wait_res(ws, send_req(ws, "system-presence"))["payload"]
        assert isinstance(presence, list) and presence[0]["reason"] == "self"
        ident = wait_res(ws, send_req(ws, "gateway.identity.get"))["payload"]
        assert len(ident["deviceId"]) == 64 and ident["publicKey"]


def test_presence_events_on_join_and_leave(gateway):
    watcher, _, _ = handshake(gateway.url, TOKEN, client_id="openclaw-macos", mode="ui")
    with watcher:
        app, _, res = handshake(gateway.url, TOKEN, client_id="node-host", mode="backend")
        assert res["ok"]

        def next_presence():
            while True:
                f = recv_json(watcher)
                if f.get("event") == "presence":
                    return f

        joined = next_presence()
        modes = [(p.get("clientId"), p["mode"]) for p in joined["payload"]["presence"]]
        assert ("node-host", "backend") in modes
        assert joined["stateVersion"]["presence"] >= 2 and isinstance(joined["seq"], int)
        entry = next(p for p in joined["payload"]["presence"] if p.get("clientId") == "node-host")
        assert entry["ip"] == "127.0.0.1" and entry["platform"] == "linux" and entry["version"] == "test"
        assert entry["since"] > 0
        app.close()
        left = next_presence()
        assert all(p.get("clientId") != "node-host" for p in left["payload"]["presence"])
        assert left["seq"] > joined["seq"]


def test_ticks_are_broadcast(make_gateway):
    gw = make_gateway(token=TOKEN, tick_interval_ms=150)
    ws, _, res = handshake(gw.url, TOKEN)
    with ws:
        assert res["payload"]["policy"]["tickIntervalMs"] == 150
        seqs = []
        while len(seqs) < 2:
            f = recv_json(ws, timeout=3)
            if f.get("event") == "tick":
                assert set(f) == {"type", "event", "payload", "seq"}
                seqs.append(f["seq"])
        assert seqs[1] > seqs[0]


def test_shutdown_event_then_1012(make_gateway):
    gw = make_gateway(token=TOKEN)
    ws, _, _ = handshake(gw.url, TOKEN)
    gw.run(gw.gateway.stop("test stop"))
    frames = []
    code, reason = None, None
    from websockets.exceptions import ConnectionClosed

    try:
        while True:
            frames.append(recv_json(ws))
    except ConnectionClosed as exc:
        code, reason = exc.rcvd.code, exc.rcvd.reason
    assert any(f.get("event") == "shutdown" and f["payload"]["reason"] == "test stop" for f in frames)
    assert (code, reason) == (1012, "service restart")


def test_device_signature_verified(gateway):
    key = DeviceKey()

    def connect_with(device_mutator=None, nonce_override=None):
        ws = open_ws(gateway.url)
        ch = recv_json(ws)["payload"]
        params = connect_params(TOKEN, scopes=["operator.read"])
        params["device"] = key.sign_connect(nonce_override or ch["nonce"], ch["ts"], params)
        if device_mutator:
            device_mutator(params)
        res = wait_res(ws, send_req(ws, "connect", params))
        return ws, res

    ws, res = connect_with()
    with ws:
        assert res["ok"], res

    def widen_scopes(p):
        p["scopes"] = ["operator.admin"]  # signed for operator.read only

    ws, res = connect_with(widen_scopes)
    assert res["error"]["details"]["code"] == "DEVICE_AUTH_SIGNATURE_INVALID"
    assert close_info(ws)[0] == 1008
    ws, res = connect_with(nonce_override="not-the-challenge")
    assert res["error"]["details"]["code"] == "DEVICE_AUTH_NONCE_MISMATCH"
    ws.close()

    def wrong_id(p):
        p["device"]["id"] = "0" * 64

    ws, res = connect_with(wrong_id)
    assert res["error"]["details"]["code"] == "DEVICE_AUTH_DEVICE_ID_MISMATCH"
    ws.close()


def test_auth_none_on_loopback(make_gateway):
    gw = make_gateway(auth="none")
    ws, _, res = handshake(gw.url, None)
    with ws:
        assert res["ok"] and res["payload"]["auth"]["method"] == "none"


class TestOrigin:
    def test_foreign_origin_refused(self, gateway):
        ws, _, res = handshake(gateway.url, TOKEN, origin="http://evil.example")
        assert res["error"]["details"]["code"] == "CONTROL_UI_ORIGIN_NOT_ALLOWED"
        assert close_info(ws)[0] == 1008

    def test_dns_rebinding_same_origin_refused(self, gateway):
        # A rebound name: the browser thinks it talks to evil.example, the socket is loopback.
        host = f"evil.example:{gateway.port}"
        sock = socket.create_connection(("127.0.0.1", gateway.port))
        ws, _, res = handshake(f"ws://{host}/", TOKEN, origin=f"http://{host}", sock=sock)
        assert res["error"]["details"]["code"] == "CONTROL_UI_ORIGIN_NOT_ALLOWED"
        ws.close()

    def test_duplicate_host_headers_refused(self, gateway):
        ws, _, res = handshake(
            gateway.url,
            TOKEN,
            origin=f"http://127.0.0.1:{gateway.port}",
            additional_headers={"Host": "evil.example"},
        )
        assert res["error"]["details"]["code"] == "CONTROL_UI_ORIGIN_NOT_ALLOWED"
        ws.close()

    def test_loopback_same_origin_allowed(self, gateway):
        ws, _, res = handshake(gateway.url, TOKEN, origin=f"http://127.0.0.1:{gateway.port}")
        with ws:
            assert res["ok"]

    def test_allowed_origins_honoured(self, make_gateway):
        gw = make_gateway('{gateway: {controlUi: {allowedOrigins: ["https://ui.example.net"]}}}', token=TOKEN)
        ws, _, res = handshake(gw.url, TOKEN, origin="https://ui.example.net")
        with ws:
            assert res["ok"]
        ws, _, res = handshake(gw.url, TOKEN, origin="https://other.example.net")
        assert res["error"]["details"]["code"] == "CONTROL_UI_ORIGIN_NOT_ALLOWED"
        ws.close()


def test_preauth_sockets_per_ip_are_bounded(gateway):
    held = []
    try:
        for _ in range(32):
            ws = open_ws(gateway.url)
            recv_json(ws)
            held.append(ws)
        with pytest.raises(InvalidStatus) as info:
            open_ws(gateway.url)
        assert info.value.response.status_code == 503
        # Authenticating one frees a slot.
        held[0].send(
            json.dumps({"type": "req", "id": "c", "method": "connect", "params": connect_params(TOKEN)})
        )
        assert recv_json(held[0])["ok"]
        extra = wait_until(lambda: _try_open(gateway.url), timeout=5, what="a free pre-auth slot")
        extra.close()
    finally:
        for ws in held:
            ws.close()


def _try_open(url):
    try:
        return open_ws(url)
    except InvalidStatus:
        return None


def test_lone_surrogates_cannot_break_other_clients(gateway):
    """A client may announce garbage; it must not poison replies that include it."""
    ws = open_ws(gateway.url)
    recv_json(ws)
    params = connect_params(TOKEN)
    params["client"]["version"] = "\ud800"
    ws.send(json.dumps({"type": "req", "id": "c1", "method": "connect", "params": params}))
    assert recv_json(ws)["ok"] is True
    other, _, _ = handshake(gateway.url, TOKEN)
    with ws, other:
        status = wait_res(other, send_req(other, "status"))
        assert status["ok"] is True
        assert any(c["version"] == "\ud800" for c in status["payload"]["gateway"]["clients"])
