"""Device nodes end to end: real gateway, real sockets, real signed node identities (NodeClient)."""

from __future__ import annotations

import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.support.nodeclient import NodeClient, NodeInvokeError, NodeRefused
from tests.support.servers import gateway_in_thread, make_settings, wait_until
from tests.support.wsclient import handshake, recv_json, send_req

from clawd_gateway.errors import UserError
from clawd_gateway.nodes import InvokeRouter, PairingState, RouterError, load_state
from clawd_gateway.protocol.scopes import METHOD_SCOPES, NODE_METHODS

TOKEN = "s3cret-token-for-tests-0123456789"
ALL = ["operator.read", "operator.write", "operator.pairing", "operator.admin"]


class Operator:
    """A synchronous operator connection that keeps every event it sees."""

    def __init__(self, url: str, scopes: list[str] | None = None, client_id: str = "test") -> None:
        self.ws, _, res = handshake(url, TOKEN, scopes=scopes or ALL, client_id=client_id, mode="test")
        assert res["ok"], res
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: Any = None) -> str:
        return send_req(self.ws, method, params)

    def reply(self, rid: str, timeout: float = 10.0) -> dict[str, Any]:
        while True:
            frame = recv_json(self.ws, timeout)
            if frame.get("type") == "event":
                self.events.append(frame)
            elif frame.get("id") == rid:
                return frame

    def call(self, method: str, params: Any = None, timeout: float = 10.0) -> dict[str, Any]:
        return self.reply(self.send(method, params), timeout)

    def ok(self, method: str, params: Any = None, timeout: float = 10.0) -> Any:
        res = self.call(method, params, timeout)
        assert res["ok"], res
        return res["payload"]

    def wait_event(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        for ev in self.events:
            if ev["event"] == name:
                return ev
        while True:
            frame = recv_json(self.ws, timeout)
            if frame.get("type") == "event":
                self.events.append(frame)
                if frame["event"] == name:
                    return frame

    def close(self) -> None:
        self.ws.close()


def invoke_params(node_id: str, command: str = "echo", **extra: Any) -> dict[str, Any]:
    params = {"nodeId": node_id, "command": command, "params": {"x": 1}, "idempotencyKey": str(uuid.uuid4())}
    params.update(extra)
    return params


def pair(op: Operator, node: NodeClient) -> dict[str, Any]:
    """Approve the node's pending request; returns the request."""
    pending = [r for r in op.ok("node.pair.list")["pending"] if r["nodeId"] == node.node_id]
    assert len(pending) == 1, pending
    op.ok("node.pair.approve", {"requestId": pending[0]["requestId"]})
    node.wait_event("node.pair.resolved")
    return pending[0]


@pytest.fixture
def op(gateway: Any) -> Any:
    o = Operator(gateway.url)
    yield o
    o.close()


def test_node_needs_a_device_identity(gateway: Any) -> None:
    with pytest.raises(NodeRefused) as refused:
        NodeClient(gateway.url, token=TOKEN, send_device=False).connect()
    assert refused.value.error["code"] == "NOT_PAIRED"
    assert refused.value.detail_code == "DEVICE_IDENTITY_REQUIRED"
    assert refused.value.close_code == 1008


def test_wrong_token_node_refused_before_pairing(gateway: Any, op: Operator) -> None:
    with pytest.raises(NodeRefused) as refused:
        NodeClient(gateway.url, token="wrong-token-0123456789abcdef").connect()
    assert refused.value.detail_code == "AUTH_TOKEN_MISMATCH"
    assert op.ok("node.pair.list") == {"pending": [], "paired": []}
    assert op.ok("device.pair.list")["paired"] == []


def test_loopback_pairing_pending_then_approved(gateway: Any, op: Operator) -> None:
    with NodeClient(gateway.url, token=TOKEN, display_name="kitchen-pi", commands=["echo"]) as node:
        requested = op.wait_event("node.pair.requested")
        req = requested["payload"]
        assert isinstance(requested.get("seq"), int)
        assert req["nodeId"] == node.node_id and req["commands"] == ["echo"]
        assert req["requiredApproveScopes"] == ["operator.pairing", "operator.write"]
        # Device silently paired on loopback, command surface still pending.
        devices = op.ok("device.pair.list")
        assert [d["deviceId"] for d in devices["paired"]] == [node.node_id]
        assert devices["paired"][0]["approvedBy"] == "auto-loopback"
        listed = op.ok("node.list")["nodes"]
        assert len(listed) == 1
        n = listed[0]
        assert (n["nodeId"], n["displayName"], n["connected"], n["paired"]) == (
            node.node_id,
            "kitchen-pi",
            True,
            False,
        )
        assert n["approvalState"] == "pending-approval" and n["commands"] == []
        pl = op.ok("node.pair.list")
        assert [r["requestId"] for r in pl["pending"]] == [req["requestId"]] and pl["paired"] == []

        res = op.call("node.invoke", invoke_params(node.node_id))
        assert res["error"]["details"]["code"] == "COMMAND_NOT_APPROVED", res
        assert req["requestId"] in res["error"]["message"]

        approved = op.ok("node.pair.approve", {"requestId": req["requestId"]})
        assert approved["requestId"] == req["requestId"] and approved["node"]["nodeId"] == node.node_id
        resolved = node.wait_event("node.pair.resolved")
        assert resolved["decision"] == "approved" and resolved["nodeId"] == node.node_id
        assert op.wait_event("node.pair.resolved")["payload"]["requestId"] == req["requestId"]

        desc = op.ok("node.describe", {"nodeId": node.node_id})
        assert desc["commands"] == ["echo"] and desc["paired"] and desc["approvalState"] == "approved"
        out = op.ok("node.invoke", invoke_params(node.node_id, params={"hello": "node"}))
        assert out == {
            "ok": True,
            "nodeId": node.node_id,
            "command": "echo",
            "payload": {"command": "echo", "params": {"hello": "node"}},
            "payloadJSON": json.dumps({"command": "echo", "params": {"hello": "node"}}),
        }
        request = node.invocations[0]
        assert set(request) == {"id", "nodeId", "command", "paramsJSON", "timeoutMs", "idempotencyKey"}
        assert json.loads(request["paramsJSON"]) == {"hello": "node"}
        assert op.ok("node.pair.list")["pending"] == []


def test_reject(gateway: Any, op: Operator) -> None:
    with NodeClient(gateway.url, token=TOKEN) as node:
        req = op.wait_event("node.pair.requested")["payload"]
        assert op.ok("node.pair.reject", {"requestId": req["requestId"]}) == {
            "requestId": req["requestId"],
            "nodeId": node.node_id,
        }
        assert node.wait_event("node.pair.resolved")["decision"] == "rejected"
        assert op.ok("node.pair.list") == {"pending": [], "paired": []}
        assert op.ok("node.describe", {"nodeId": node.node_id})["approvalState"] == "rejected"
        res = op.call("node.pair.approve", {"requestId": req["requestId"]})
        assert res["error"]["message"] == "unknown requestId"
        res = op.call("node.invoke", invoke_params(node.node_id))
        assert res["error"]["details"]["code"] == "COMMAND_NOT_APPROVED"


def test_exec_commands_need_admin_to_approve_and_events_need_pairing(gateway: Any) -> None:
    pairing_only = Operator(gateway.url, ["operator.pairing"])
    reader = Operator(gateway.url, ["operator.read"])
    try:
        with NodeClient(gateway.url, token=TOKEN, commands=["system.which", "echo"]) as node:
            req = pairing_only.wait_event("node.pair.requested")["payload"]
            assert req["requiredApproveScopes"] == ["operator.pairing", "operator.admin"]
            res = pairing_only.call("node.pair.approve", {"requestId": req["requestId"]})
            assert res["error"]["code"] == "FORBIDDEN"
            assert res["error"]["details"]["missingScope"] == "operator.admin"
            assert pairing_only.ok("node.pair.list")["pending"][0]["nodeId"] == node.node_id
            # The read-only operator sees the node (presence) but never the pairing events.
            reader.ok("health")
            assert not [e for e in reader.events if e["event"].startswith("node.pair")]
            assert reader.ok("node.list")["nodes"][0]["nodeId"] == node.node_id
    finally:
        pairing_only.close()
        reader.close()


def test_role_and_scope_refusals(gateway: Any) -> None:
    reader = Operator(gateway.url, ["operator.read"])
    try:
        res = reader.call("node.invoke", invoke_params("x"))
        assert res["error"]["message"] == "missing scope: operator.write"
        res = reader.call("node.pair.approve", {"requestId": "x"})
        assert res["error"]["message"] == "missing scope: operator.pairing"
        res = reader.call("node.rename", {"nodeId": "x", "displayName": "y"})
        assert res["error"]["message"] == "missing scope: operator.pairing"
        res = reader.call("node.invoke.result", {"id": "x", "ok": True})
        assert res["error"]["message"] == "unauthorized role: operator"
        res = reader.call("node.event", {"event": "x"})
        assert res["error"]["message"] == "unauthorized role: operator"
    finally:
        reader.close()
    with NodeClient(gateway.url, token=TOKEN) as node:
        from tests.support.nodeclient import NodeCallError

        for method in ("node.list", "node.invoke", "node.pair.approve", "status"):
            with pytest.raises(NodeCallError, match="unauthorized role: node"):
                node.call(method, {})
        # What a real node host sends right after connecting is quietly accepted.
        assert node.call("node.event", {"event": "node.host.stats", "payloadJSON": "{}"}) == {"ok": True}
        assert node.call("node.skills.update", {"skills": []}) == {"ok": True}
        assert node.call("health")["ok"] is True  # exempt from role checks


def test_every_method_is_classified() -> None:
    from clawd_gateway.methods import METHODS

    for name in METHODS:
        assert name in METHOD_SCOPES or name in NODE_METHODS, name


def test_invoke_errors_unknown_not_connected_not_advertised(gateway: Any, op: Operator) -> None:
    res = op.call("node.invoke", invoke_params("f" * 64))
    assert res["error"]["code"] == "INVALID_REQUEST"
    assert res["error"]["message"] == "unknown nodeId"
    assert res["error"]["details"]["code"] == "UNKNOWN_NODE"
    res = op.call("node.invoke", {"nodeId": "x", "command": "echo"})
    assert "idempotencyKey" in res["error"]["message"]
    with NodeClient(gateway.url, token=TOKEN, commands=["echo"]) as node:
        pair(op, node)
        res = op.call("node.invoke", invoke_params(node.node_id, "camera.snap"))
        assert res["error"]["details"]["code"] == "COMMAND_NOT_ADVERTISED"
        assert "camera.snap" in res["error"]["message"]
        res = op.call("node.invoke", invoke_params(node.node_id, "system.execApprovals.set"))
        assert res["error"]["code"] == "INVALID_REQUEST"
    wait_until(lambda: not op.ok("node.list")["nodes"][0]["connected"], what="node offline")
    res = op.call("node.invoke", invoke_params(node.node_id))
    assert res["error"]["code"] == "UNAVAILABLE"
    assert res["error"]["details"]["code"] == "NOT_CONNECTED"
    assert op.ok("node.list")["nodes"][0]["paired"] is True


def test_node_error_reaches_the_caller(gateway: Any, op: Operator) -> None:
    def fail(command: str, params: Any) -> Any:
        raise NodeInvokeError("CAMERA_BUSY", "camera in use")

    with NodeClient(gateway.url, token=TOKEN, handler=fail) as node:
        pair(op, node)
        res = op.call("node.invoke", invoke_params(node.node_id))
        assert res["error"]["code"] == "UNAVAILABLE"
        assert res["error"]["message"] == "CAMERA_BUSY: camera in use"
        assert res["error"]["details"]["nodeError"] == {"code": "CAMERA_BUSY", "message": "camera in use"}


def _blocking_handler() -> tuple[threading.Event, Any]:
    release = threading.Event()

    def handler(command: str, params: Any) -> Any:
        release.wait(20)
        return {"late": True}

    return release, handler


def test_invoke_timeout_and_late_result_ignored(gateway: Any, op: Operator) -> None:
    release, handler = _blocking_handler()
    with NodeClient(gateway.url, token=TOKEN, handler=handler) as node:
        pair(op, node)
        res = op.call("node.invoke", invoke_params(node.node_id, timeoutMs=200))
        assert res["error"]["code"] == "UNAVAILABLE"
        assert res["error"]["details"]["code"] == "TIMEOUT"
        assert "200 ms" in res["error"]["message"]
        release.set()
        wait_until(lambda: node.results, what="the late result's reply")
        assert node.results[0]["reply"] == {"ok": True, "ignored": True}
        # The connection still works for the next call.
        assert op.ok("node.invoke", invoke_params(node.node_id))["payload"] == {"late": True}


def test_node_disconnect_mid_call(gateway: Any, op: Operator) -> None:
    release, handler = _blocking_handler()
    node = NodeClient(gateway.url, token=TOKEN, handler=handler)
    node.connect()
    try:
        pair(op, node)
        rid = op.send("node.invoke", invoke_params(node.node_id, timeoutMs=20_000))
        node.wait_invocations(1)
        # Meanwhile the same operator socket keeps being served.
        assert op.ok("health")["ok"] is True
        node.close()
        res = op.reply(rid)
        assert res["error"]["code"] == "UNAVAILABLE"
        assert res["error"]["details"]["code"] == "NODE_DISCONNECTED"
        assert node.node_id in res["error"]["message"]
        assert gateway.call_soon(lambda: dict(gateway.gateway.nodes.router.calls)) == {}
    finally:
        release.set()
        node.close()


def test_duplicate_idempotency_key_and_no_leak_between_callers(gateway: Any, op: Operator) -> None:
    release, handler = _blocking_handler()
    other = Operator(gateway.url)
    try:
        with NodeClient(gateway.url, token=TOKEN, handler=handler) as node:
            pair(op, node)
            params = invoke_params(node.node_id, timeoutMs=20_000)
            first = op.send("node.invoke", params)
            node.wait_invocations(1)
            dup = op.call("node.invoke", params)
            assert dup["error"]["details"]["code"] == "DUPLICATE_IDEMPOTENCY_KEY"
            assert "still in flight" in dup["error"]["message"]
            # Another caller may use the same key; it gets its own call and its own answer.
            second = other.send("node.invoke", {**params, "params": {"who": "other"}})
            node.wait_invocations(2)
            assert len({i["id"] for i in node.invocations}) == 2
            release.set()
            mine, theirs = op.reply(first), other.reply(second)
            assert mine["ok"] and theirs["ok"]
            assert mine["payload"]["nodeId"] == theirs["payload"]["nodeId"] == node.node_id
            dup = op.call("node.invoke", params)
            assert "already used" in dup["error"]["message"]
    finally:
        release.set()
        other.close()


def test_a_node_cannot_answer_another_nodes_call(gateway: Any, op: Operator) -> None:
    release, handler = _blocking_handler()
    with (
        NodeClient(gateway.url, token=TOKEN, handler=handler, display_name="a") as a,
        NodeClient(gateway.url, token=TOKEN, display_name="b") as b,
    ):
        pair(op, a)
        pair(op, b)
        rid = op.send("node.invoke", invoke_params(a.node_id, timeoutMs=20_000))
        call_id = a.wait_invocations(1)[0]["id"]
        forged = b.call(
            "node.invoke.result", {"id": call_id, "nodeId": a.node_id, "ok": True, "payloadJSON": '"forged"'}
        )
        assert forged == {"ok": True, "ignored": True}
        release.set()
        assert op.reply(rid)["payload"]["payload"] == {"late": True}


def test_rename_and_describe(gateway: Any, op: Operator) -> None:
    with NodeClient(gateway.url, token=TOKEN, display_name="raw") as node:
        pair(op, node)
        assert op.ok("node.rename", {"nodeId": node.node_id, "displayName": " Kitchen "}) == {
            "nodeId": node.node_id,
            "displayName": "Kitchen",
        }
        assert op.ok("node.describe", {"nodeId": node.node_id})["displayName"] == "Kitchen"
        res = op.call("node.rename", {"nodeId": "nope", "displayName": "x"})
        assert res["error"]["message"] == "unknown nodeId"
        res = op.call("node.describe", {"nodeId": "nope"})
        assert res["error"]["message"] == "unknown nodeId"
    # The operator's name survives the node reconnecting under its own name.
    with NodeClient(gateway.url, token=TOKEN, display_name="raw", key=node.key):
        assert op.ok("node.describe", {"nodeId": node.node_id})["displayName"] == "Kitchen"


def test_remote_device_needs_operator_approval(gateway: Any, op: Operator) -> None:
    proxied = {"X-Forwarded-For": "203.0.113.7"}
    node = NodeClient(gateway.url, token=TOKEN, headers=proxied)
    with pytest.raises(NodeRefused) as refused:
        node.connect()
    err = refused.value.error
    assert err["code"] == "NOT_PAIRED" and err["details"]["code"] == "PAIRING_REQUIRED"
    assert err["details"]["reason"] == "not-paired" and refused.value.close_code == 1008
    request_id = err["details"]["requestId"]
    assert op.wait_event("device.pair.requested")["payload"]["requestId"] == request_id
    # A retry refreshes the same request rather than piling up new ones.
    with pytest.raises(NodeRefused) as again:
        NodeClient(gateway.url, token=TOKEN, headers=proxied, key=node.key).connect()
    assert again.value.error["details"]["requestId"] == request_id
    assert [r["requestId"] for r in op.ok("device.pair.list")["pending"]] == [request_id]
    assert op.ok("device.pair.approve", {"requestId": request_id})["device"]["deviceId"] == node.node_id
    with NodeClient(gateway.url, token=TOKEN, headers=proxied, key=node.key) as back:
        pair(op, back)
        assert op.ok("node.invoke", invoke_params(back.node_id))["ok"] is True


def test_pairing_survives_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, token=TOKEN)
    with gateway_in_thread(settings) as gw:
        op = Operator(gw.url)
        with NodeClient(gw.url, token=TOKEN, display_name="keeper") as keeper:
            pair(op, keeper)
        with NodeClient(gw.url, token=TOKEN, display_name="waiter") as waiter:
            op.wait_event("node.pair.requested")
            pending_before = op.ok("node.pair.list")["pending"]
        op.close()
    stored = json.loads((settings.state_dir / "nodes" / "pairing.json").read_text())
    assert keeper.node_id in stored["nodes"]["paired"]
    assert (settings.state_dir / "nodes" / "pairing.json").stat().st_mode & 0o777 == 0o600
    with gateway_in_thread(settings) as gw:
        op = Operator(gw.url)
        try:
            assert op.ok("node.pair.list")["pending"] == pending_before
            listed = {n["nodeId"]: n for n in op.ok("node.list")["nodes"]}
            assert listed[keeper.node_id]["paired"] and not listed[keeper.node_id]["connected"]
            assert listed[keeper.node_id]["commands"] == ["echo"]
            assert "lastSeenAtMs" in listed[keeper.node_id]
            with NodeClient(gw.url, token=TOKEN, key=keeper.key, display_name="keeper") as again:
                assert op.ok("node.invoke", invoke_params(again.node_id))["ok"] is True
                assert [r["nodeId"] for r in op.ok("node.pair.list")["pending"]] == [waiter.node_id]
        finally:
            op.close()


def test_new_commands_after_pairing_need_a_new_approval(gateway: Any, op: Operator) -> None:
    with NodeClient(gateway.url, token=TOKEN, commands=["echo"]) as node:
        pair(op, node)
    op.events.clear()
    with NodeClient(gateway.url, token=TOKEN, commands=["echo", "camera.snap"], key=node.key):
        req = op.wait_event("node.pair.requested")
        assert req["payload"]["isRepair"] is True
        view = op.ok("node.describe", {"nodeId": node.node_id})
        assert view["commands"] == ["echo"] and view["approvalState"] == "pending-approval"
        res = op.call("node.invoke", invoke_params(node.node_id, "camera.snap"))
        assert res["error"]["details"]["code"] == "COMMAND_NOT_APPROVED"
        assert op.ok("node.invoke", invoke_params(node.node_id))["ok"] is True


def test_caller_disconnect_cleans_up(gateway: Any, op: Operator) -> None:
    release, handler = _blocking_handler()
    with NodeClient(gateway.url, token=TOKEN, handler=handler) as node:
        pair(op, node)
        leaver = Operator(gateway.url)
        leaver.send("node.invoke", invoke_params(node.node_id, timeoutMs=20_000))
        node.wait_invocations(1)
        leaver.close()
        hub = gateway.gateway.nodes
        wait_until(
            lambda: gateway.call_soon(lambda: not hub.router.calls and not hub._waiters), what="cleanup"
        )
        release.set()
        wait_until(lambda: node.results, what="the orphaned result's reply")
        assert node.results[0]["reply"] == {"ok": True, "ignored": True}


def test_pending_requests_are_bounded() -> None:
    from clawd_gateway.nodes.store import MAX_PENDING

    state = PairingState()
    for i in range(MAX_PENDING + 5):
        state.request_device({"deviceId": f"d{i}"}, now_ms=i)
        state.request_node(f"n{i}", {"commands": ["echo"]}, now_ms=i)
    assert len(state.devices_pending) == len(state.nodes_pending) == MAX_PENDING
    assert {r["nodeId"] for r in state.nodes_pending.values()} == {f"n{i}" for i in range(5, MAX_PENDING + 5)}


# -- the pure parts -------------------------------------------------------------------------------


def test_router_keys_scoped_per_caller_and_expire() -> None:
    r = InvokeRouter()
    kw: dict[str, Any] = {"node_id": "n", "node_conn": "c1", "command": "echo", "timeout_ms": 1000}
    a = r.open(caller="A", idempotency_key="k", now_ms=0, **kw)
    with pytest.raises(RouterError, match="still in flight"):
        r.open(caller="A", idempotency_key="k", now_ms=1, **kw)
    b = r.open(caller="B", idempotency_key="k", now_ms=1, **kw)
    assert r.settle(a.id, "other-conn") is None
    assert r.settle(a.id, "c1") == a and r.settle(a.id, "c1") is None
    with pytest.raises(RouterError, match="already used"):
        r.open(caller="A", idempotency_key="k", now_ms=2, **kw)
    assert r.open(caller="A", idempotency_key="k", now_ms=10 * 60 * 1000 + 1, **kw)
    assert [c.id for c in r.for_node_conn("c1")] == [b.id, r.for_node_conn("c1")[1].id]


def test_damaged_store_is_named(tmp_path: Path) -> None:
    path = tmp_path / "pairing.json"
    path.write_text("{not json")
    with pytest.raises(UserError, match=re.escape(str(path))) as exc:
        load_state(path)
    assert "mv " in (exc.value.fix or "")
    path.write_text(json.dumps({"version": 1, "nodes": {"paired": []}}))
    with pytest.raises(UserError, match=r"nodes\.paired"):
        load_state(path)
    assert load_state(tmp_path / "missing.json") == PairingState()


# -- review fixes ---------------------------------------------------------------------------------


def test_wider_commands_replace_the_request_an_operator_saw(gateway: Any, op: Operator) -> None:
    """An approval is for the list the operator was shown: a node that reconnects asking for more
    gets a new request id, so approving the old id cannot grant the new commands."""
    with NodeClient(gateway.url, token=TOKEN, commands=["echo"]) as node:
        seen = op.wait_event("node.pair.requested")["payload"]
    wait_until(lambda: op.ok("node.list")["nodes"] == [], what="node offline")
    op.events.clear()
    with NodeClient(gateway.url, token=TOKEN, commands=["echo", "system.run"], key=node.key):
        wider = op.wait_event("node.pair.requested")["payload"]
        assert wider["requestId"] != seen["requestId"]
        assert wider["requiredApproveScopes"] == ["operator.pairing", "operator.admin"]
        res = op.call("node.pair.approve", {"requestId": seen["requestId"]})
        assert res["error"]["message"] == "unknown requestId", res
        assert [r["requestId"] for r in op.ok("node.pair.list")["pending"]] == [wider["requestId"]]
        assert op.ok("node.describe", {"nodeId": node.node_id})["commands"] == []
    # Asking for the same or fewer commands refreshes the request in place (no churn for retries).
    with NodeClient(gateway.url, token=TOKEN, commands=["echo"], key=node.key):
        wait_until(
            lambda: op.ok("node.pair.list")["pending"][0]["commands"] == ["echo"], what="request refreshed"
        )
        assert [r["requestId"] for r in op.ok("node.pair.list")["pending"]] == [wider["requestId"]]


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), -5, True, "10"])
def test_invoke_timeout_must_be_a_finite_positive_number(gateway: Any, op: Operator, timeout: Any) -> None:
    res = op.call("node.invoke", invoke_params("f" * 64, timeoutMs=timeout))  # json.dumps writes Infinity/NaN
    assert res["error"]["code"] == "INVALID_REQUEST", res
    assert "timeoutMs must be a positive number" in res["error"]["message"]


def test_idempotency_key_length_is_bounded(gateway: Any, op: Operator) -> None:
    res = op.call("node.invoke", invoke_params("f" * 64, idempotencyKey="k" * 257))
    assert res["error"]["code"] == "INVALID_REQUEST"
    assert "idempotencyKey must be at most 256 characters" in res["error"]["message"]


def test_node_supplied_text_is_made_printable(gateway: Any, op: Operator) -> None:
    """Names end up in operators' terminals (`clawd-gateway nodes list`) and the Control UI:
    terminal escapes, bidi overrides and absurd lengths do not survive the trip."""
    evil = "\x1b]0;owned\x07kitchen\u202e\x1b[2J" + "x" * 500
    with NodeClient(
        gateway.url,
        token=TOKEN,
        display_name=evil,
        platform="linux\r\n",
        commands=["echo", "bad\x1bcmd", "c" * 200, "echo"],
    ) as node:
        req = op.wait_event("node.pair.requested")["payload"]
        assert req["commands"] == ["echo"]
        name = req["displayName"]
        assert name.startswith("]0;ownedkitchen[2J") and len(name) == 128
        assert req["platform"] == "linux"
        listed = op.ok("node.describe", {"nodeId": node.node_id})
        assert listed["displayName"] == name and listed["advertisedCommands"] == ["echo"]
        res = op.call("node.rename", {"nodeId": node.node_id, "displayName": "\x1b\u200b\x07 "})
        assert res["error"]["message"] == "displayName must be 1-128 characters"
    stored = (gateway.settings.state_dir / "nodes" / "pairing.json").read_text()
    assert "\\u001b" not in stored and "\\u202e" not in stored


def test_second_connection_of_a_device_leaving_keeps_the_first_reachable(gateway: Any, op: Operator) -> None:
    with NodeClient(gateway.url, token=TOKEN) as first:
        pair(op, first)
        with NodeClient(gateway.url, token=TOKEN, key=first.key) as second:
            assert op.ok("node.invoke", invoke_params(second.node_id))["ok"] is True
            assert len(second.invocations) == 1
        hub = gateway.gateway.nodes
        wait_until(lambda: gateway.call_soon(lambda: len(hub.live)) == 1, what="second connection gone")
        view = op.ok("node.describe", {"nodeId": first.node_id})
        assert view["connected"] is True
        assert op.ok("node.invoke", invoke_params(first.node_id))["ok"] is True
        assert len(first.invocations) == 1


def test_router_caps_per_caller_and_forgets_idle_callers() -> None:
    from clawd_gateway.nodes.router import MAX_CALLERS, MAX_IN_FLIGHT_PER_CALLER

    r = InvokeRouter()
    kw: dict[str, Any] = {"node_id": "n", "node_conn": "c1", "command": "echo", "timeout_ms": 1000}
    for i in range(MAX_IN_FLIGHT_PER_CALLER):
        r.open(caller="greedy", idempotency_key=f"k{i}", now_ms=0, **kw)
    with pytest.raises(RouterError, match="already has") as exc:
        r.open(caller="greedy", idempotency_key="one-more", now_ms=0, **kw)
    assert exc.value.code == "TOO_MANY_CALLS"
    r.open(caller="polite", idempotency_key="k0", now_ms=0, **kw)  # others still get a slot
    for i in range(MAX_CALLERS + 10):
        r.open(caller=f"conn:{i}", idempotency_key="k", now_ms=1, **kw)
    assert len(r._keys) == MAX_CALLERS
    assert "greedy" not in r._keys
    # A forgotten caller's in-flight key is still refused.
    with pytest.raises(RouterError, match="still in flight"):
        r.open(caller="greedy", idempotency_key="k0", now_ms=2, **kw)


def test_store_entries_missing_what_the_gateway_relies_on_are_named(tmp_path: Path) -> None:
    """A hand-edited store fails at start with the entry named, not on some later connect."""
    path = tmp_path / "pairing.json"

    def write(nodes_pending: Any = None, nodes_paired: Any = None) -> None:
        nodes = {"pending": nodes_pending or {}, "paired": nodes_paired or {}}
        path.write_text(json.dumps({"version": 1, "nodes": nodes}))

    write(nodes_pending={"r1": {"requestId": "r1"}})
    with pytest.raises(UserError, match=re.escape("nodes.pending['r1'].nodeId must be a non-empty string")):
        load_state(path)
    write(nodes_paired={"n1": {"nodeId": "n2", "commands": ["echo"]}})
    with pytest.raises(UserError, match=re.escape("is 'n2', but the entry is filed under 'n1'")):
        load_state(path)
    write(nodes_paired={"n1": {"nodeId": "n1", "commands": "system.run"}})
    with pytest.raises(UserError, match=re.escape("nodes.paired['n1'].commands must be a list of strings")):
        load_state(path)
    state = PairingState()
    state.request_device({"deviceId": "d1", "role": "node"}, now_ms=1)
    state.request_node("n1", {"commands": ["echo"]}, now_ms=1)
    state.approve_node(next(iter(state.nodes_pending)), now_ms=2)
    state.request_node("n1", {"commands": ["echo", "camera.snap"]}, now_ms=3)
    state.pair_device({"deviceId": "d2", "roles": ["node"]}, now_ms=4, auto=True)
    path.write_text(json.dumps(state.to_json()))
    assert load_state(path) == state  # what the gateway writes always loads


def test_approval_scopes_follow_the_commands_not_the_stored_field(tmp_path: Path) -> None:
    """A store whose request says anyone with pairing may approve system.run still needs admin."""
    settings = make_settings(tmp_path, token=TOKEN)
    state = PairingState()
    req, _ = state.request_node("f" * 64, {"commands": ["system.run"]}, now_ms=1)
    req["requiredApproveScopes"] = ["operator.pairing"]
    from clawd_gateway.nodes import save_state
    from clawd_gateway.nodes.store import state_file

    save_state(state_file(settings.state_dir), state)
    with gateway_in_thread(settings) as gw:
        pairing_only = Operator(gw.url, ["operator.pairing"])
        try:
            res = pairing_only.call("node.pair.approve", {"requestId": req["requestId"]})
            assert res["error"]["code"] == "FORBIDDEN", res
            assert res["error"]["details"]["missingScope"] == "operator.admin"
        finally:
            pairing_only.close()
