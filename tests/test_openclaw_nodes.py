"""npm compatibility tier: the REAL OpenClaw headless node host (`openclaw node run`) against
clawd-gateway, paired with the real `openclaw nodes approve`, listed by both CLIs, and invoked.

Without npm these tests skip on a laptop and fail under CLAWD_REQUIRE_SERVERS=1 (CI).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.support.openclaw_peer import Peer, show, stop_process
from tests.support.servers import GatewayProcess, wait_until

from clawd_gateway.client import call

pytestmark = pytest.mark.openclaw

TOKEN = "clawd-nodes-token-0123456789abcdef"
CLI_TIMEOUT = 60.0


def _rpc(gw: GatewayProcess, method: str, scopes: tuple[str, ...]) -> Any:
    payload, _ = asyncio.run(call(gw.url, method, {}, token=TOKEN, scopes=scopes, timeout=10))
    return payload


def _wait(what: str, probe: Any, timeout: float, log: Path) -> Any:
    try:
        return wait_until(probe, timeout, 0.2, what)
    except AssertionError as exc:
        pytest.fail(f"{exc}; node host log:\n{log.read_text()[-3000:]}")


def clawd_nodes(gw: GatewayProcess, *args: str) -> Any:
    r = subprocess.run(
        [sys.executable, "-m", "clawd_gateway", "nodes", *args, "--url", gw.url, "--token", TOKEN, "--json"],
        env=dict(os.environ), capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False,
    )  # fmt: skip
    assert r.returncode == 0, show(r)
    return json.loads(r.stdout)


def test_real_node_host_pairs_lists_and_answers(
    peer: Peer, ours: GatewayProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    node_home = tmp_path_factory.mktemp("oc-node")
    cli_home = tmp_path_factory.mktemp("oc-cli")
    peer.prepare_home(node_home)
    env = peer.env(node_home)
    env["OPENCLAW_GATEWAY_TOKEN"] = TOKEN  # the node host has no --token flag
    log = node_home / "node-host.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(peer.openclaw), "node", "run", "--host", "127.0.0.1", "--port", str(ours.port),
             "--display-name", "clawd-interop"],
            env=env, cwd=node_home, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        # 1. It connects: device auto-approved on loopback, its command surface waits for an operator.
        def pending_request() -> dict[str, Any] | None:
            assert proc.poll() is None, f"node host exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            pend = _rpc(ours, "node.pair.list", ("operator.pairing",))["pending"]
            return next((r for r in pend if r.get("displayName") == "clawd-interop"), None)

        request = _wait("the node host's pairing request", pending_request, 90, log)
        node_id = request["nodeId"]
        assert "system.which" in request["commands"]
        assert request["requiredApproveScopes"] == ["operator.pairing", "operator.admin"]
        listed = _rpc(ours, "node.list", ("operator.read",))["nodes"]
        assert [(n["nodeId"], n["connected"], n["approvalState"], n["commands"]) for n in listed] == [
            (node_id, True, "pending-approval", [])
        ]

        # 2. The real CLI approves it (reads requiredApproveScopes, reconnects with exactly those).
        target = ["--url", ours.url, "--token", TOKEN]
        r = peer.run(["nodes", "approve", request["requestId"], *target], cli_home, timeout=CLI_TIMEOUT)
        assert r.returncode == 0, show(r)

        # 3. Both CLIs list it as paired (and ours as connected, with its commands usable).
        r = peer.run(["nodes", "list", "--json", *target], cli_home, timeout=CLI_TIMEOUT)
        assert r.returncode == 0, show(r)
        theirs = json.loads(r.stdout)
        assert theirs["pending"] == [] and [p["nodeId"] for p in theirs["paired"]] == [node_id]
        mine = clawd_nodes(ours, "list")["nodes"]
        assert [(n["nodeId"], n["connected"], n["paired"]) for n in mine] == [(node_id, True, True)]
        assert "system.which" in mine[0]["commands"]

        # 4. An invoke of a command it advertises returns its real result, through either CLI.
        uname = shutil.which("uname")
        assert uname is not None
        r = peer.run(
            ["nodes", "invoke", "--node", node_id, "--command", "system.which",
             "--params", '{"bins":["uname"]}', "--json", *target],
            cli_home, timeout=CLI_TIMEOUT,
        )  # fmt: skip
        assert r.returncode == 0, show(r)
        result = json.loads(r.stdout)
        assert result["ok"] is True and result["nodeId"] == node_id and result["command"] == "system.which"
        assert result["payload"]["bins"]["uname"] == uname
        out = clawd_nodes(ours, "invoke", "clawd-interop", "system.which", "--params", '{"bins":["uname"]}')
        assert out["payload"]["bins"]["uname"] == uname

        # 5. The node id operators see is the node host's own device identity.
        r = peer.run(["node", "identity", "--json"], node_home, timeout=CLI_TIMEOUT)
        assert r.returncode == 0 and node_id in r.stdout, show(r)
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        stop_process(proc)
