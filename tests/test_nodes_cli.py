"""`clawd-gateway nodes ...` as a real process against a running gateway with real protocol nodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from tests.support.nodeclient import NodeClient, NodeRefused
from tests.support.servers import free_port

TOKEN = "s3cret-token-for-tests-0123456789"


def cli(gw: Any, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "clawd_gateway", "nodes", *args, "--url", gw.url]
    if token:
        cmd += ["--token", token]
    return subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True, timeout=60, check=False)


def cli_json(gw: Any, *args: str) -> Any:
    r = cli(gw, *args, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def test_pending_approve_list_invoke(gateway: Any) -> None:
    with NodeClient(
        gateway.url, token=TOKEN, display_name="kitchen-pi", commands=["echo", "system.which"]
    ) as node:
        pending = cli_json(gateway, "pending")["pending"]
        assert [(p["kind"], p["nodeId"]) for p in pending] == [("node", node.node_id)]
        assert pending[0]["requiredApproveScopes"] == ["operator.pairing", "operator.admin"]
        text = cli(gateway, "pending")
        assert text.returncode == 0 and pending[0]["requestId"] in text.stdout and "kitchen-pi" in text.stdout

        r = cli(gateway, "approve", pending[0]["requestId"])
        assert r.returncode == 0, r.stderr
        assert f"Approved node request {pending[0]['requestId']}: kitchen-pi" in r.stdout
        assert node.wait_event("node.pair.resolved")["decision"] == "approved"

        listed = cli_json(gateway, "list")["nodes"]
        assert [(n["nodeId"], n["connected"], n["paired"]) for n in listed] == [(node.node_id, True, True)]
        text = cli(gateway, "list").stdout
        assert "Nodes: 1 · Connected: 1 · Paired: 1" in text and "kitchen-pi" in text

        out = cli_json(gateway, "invoke", "kitchen-pi", "echo", "--params", '{"a": [1, 2]}')
        assert out["ok"] is True and out["nodeId"] == node.node_id
        assert out["payload"] == {"command": "echo", "params": {"a": [1, 2]}}
        r = cli(gateway, "invoke", node.node_id[:10], "echo")  # a unique id prefix works too
        assert r.returncode == 0 and json.loads(r.stdout) == {"command": "echo", "params": None}

        # Meaningful failures: refused (1), usage (2), node unavailable (7).
        r = cli(gateway, "invoke", "kitchen-pi", "camera.snap")
        assert r.returncode == 1 and "COMMAND_NOT_ADVERTISED" in r.stderr
        r = cli(gateway, "invoke", "nobody", "echo")
        assert r.returncode == 2 and "no node 'nobody'" in r.stderr and "kitchen-pi" in r.stderr
        r = cli(gateway, "invoke", "kitchen-pi", "echo", "--params", "{oops")
        assert r.returncode == 2 and "--params is not valid JSON" in r.stderr
        r = cli(gateway, "approve", "no-such-request")
        assert r.returncode == 1 and "no pending request 'no-such-request'" in r.stderr
        bad = cli(gateway, "approve", "no-such-request", "--json")
        assert json.loads(bad.stdout)["error"]["details"]["code"] == "UNKNOWN_REQUEST"


def test_node_timeout_exit_code(gateway: Any) -> None:
    release = threading.Event()

    def slow(command: str, params: Any) -> Any:
        release.wait(20)
        return None

    with NodeClient(gateway.url, token=TOKEN, handler=slow) as node:
        rid = cli_json(gateway, "pending")["pending"][0]["requestId"]
        assert cli(gateway, "approve", rid).returncode == 0
        try:
            r = cli(gateway, "invoke", node.node_id, "echo", "--invoke-timeout", "300", "--json")
        finally:
            release.set()
        assert r.returncode == 7, r.stdout + r.stderr
        assert json.loads(r.stdout)["error"]["details"]["code"] == "TIMEOUT"


def test_reject_and_device_requests(gateway: Any) -> None:
    with NodeClient(gateway.url, token=TOKEN, display_name="stranger") as node:
        rid = cli_json(gateway, "pending")["pending"][0]["requestId"]
        r = cli(gateway, "reject", rid)
        assert r.returncode == 0 and f"Rejected node request {rid}" in r.stdout
        assert node.wait_event("node.pair.resolved")["decision"] == "rejected"
    assert cli_json(gateway, "pending")["pending"] == []
    # A node behind a proxy is a remote device: it needs an operator before it may connect at all.
    remote = NodeClient(gateway.url, token=TOKEN, headers={"X-Forwarded-For": "198.51.100.4"})
    with pytest.raises(NodeRefused) as refused:
        remote.connect()
    assert refused.value.detail_code == "PAIRING_REQUIRED"
    pending = cli_json(gateway, "pending")["pending"]
    assert [(p["kind"], p["deviceId"]) for p in pending] == [("device", remote.node_id)]
    r = cli(gateway, "approve", pending[0]["requestId"])
    assert r.returncode == 0 and "device request" in r.stdout
    with NodeClient(gateway.url, token=TOKEN, headers={"X-Forwarded-For": "198.51.100.4"}, key=remote.key):
        assert [p["kind"] for p in cli_json(gateway, "pending")["pending"]] == ["node"]


def test_auth_and_reachability_exit_codes(gateway: Any) -> None:
    r = cli(gateway, "list", token="wrong-token-0123456789abcdef")
    assert r.returncode == 4 and "AUTH_TOKEN_MISMATCH" in r.stderr
    r = cli(gateway, "list", token=None)
    assert r.returncode == 4 and "no token or password was given" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "clawd_gateway", "nodes", "list", "--url", f"ws://127.0.0.1:{free_port()}"],
        env=dict(os.environ), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 3 and "not reachable" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "clawd_gateway", "nodes"],
        env=dict(os.environ), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 2 and "pending" in r.stdout
