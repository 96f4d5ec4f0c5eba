"""npm compatibility tier: the REAL OpenClaw CLI against clawd-gateway, and our CLI against
the REAL OpenClaw gateway (openclaw@2026.9.6 from npm, Node 24 from npm, loopback only).

The peer is installed once into ${CLAWD_PEER_DIR:-~/.cache/clawd/openclaw-peer} (~40 s).
Without npm these tests skip on a laptop and fail under CLAWD_REQUIRE_SERVERS=1 (CI).
Each openclaw CLI call costs ~1.5-2.5 s of Node start-up; the real gateway ~11 s to start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.openclaw_peer import OPENCLAW_VERSION, Peer, PeerGateway, show
from tests.support.servers import GatewayProcess, free_port

from clawd_gateway import __version__ as CLAWD_VERSION

pytestmark = pytest.mark.openclaw

TOKEN = "clawd-compat-token-0123456789abcdef"
PEER_TOKEN = "openclaw-peer-token-0123456789abcdef"
WRONG = "wrong-token-0123456789abcdef"
CLI_TIMEOUT = 60.0


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Isolated HOME for the openclaw CLI (Peer.run writes the minimal config into it)."""
    return tmp_path_factory.mktemp("oc-cli")


@pytest.fixture(scope="module")
def real_gateway(peer: Peer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerGateway]:
    with peer.gateway(tmp_path_factory.mktemp("oc-gw"), free_port(), PEER_TOKEN) as gw:
        yield gw


# -- helpers --------------------------------------------------------------------------------------


def oc(
    peer: Peer, home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return peer.run(list(args), home, env_extra=env, timeout=CLI_TIMEOUT)


def target(gw: GatewayProcess | PeerGateway, token: str | None = None) -> list[str]:
    return ["--url", gw.url, "--token", token or str(gw.token)]


def json_after_banner(text: str) -> Any:
    """`gateway call` without --json prints a title line, then the JSON document."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    assert starts, f"no JSON in output:\n{text}"
    return json.loads(text[min(starts) :])


def clawd_health(url: str, token: str, home: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_"))}
    env.update({"HOME": str(home), "CLAWD_STATE_DIR": str(home / "state")})
    r = subprocess.run(
        [sys.executable, "-m", "clawd_gateway", "health", "--url", url, "--token", token, "--json",
         "--timeout", "15"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    try:
        return r, json.loads(r.stdout)
    except ValueError:
        pytest.fail(f"clawd-gateway health --json printed no JSON:\n{show(r)}")


# -- the real openclaw CLI against clawd-gateway --------------------------------------------------


def test_gateway_call_health(peer: Peer, ours: GatewayProcess, cli_home: Path) -> None:
    r = oc(peer, cli_home, "gateway", "call", "health", *target(ours))
    assert r.returncode == 0, show(r)
    assert '"ok": true' in r.stdout, show(r)
    assert json_after_banner(r.stdout)["ok"] is True


def test_gateway_call_health_json(peer: Peer, ours: GatewayProcess, cli_home: Path) -> None:
    r = oc(peer, cli_home, "gateway", "call", "health", *target(ours), "--json")
    assert r.returncode == 0, show(r)
    payload = json.loads(r.stdout)
    assert payload["ok"] is True
    assert payload["defaultAgentId"] == "main"


def test_health_via_env(peer: Peer, ours: GatewayProcess, cli_home: Path) -> None:
    """`openclaw health` has no --url/--token: it reads them from the environment."""
    env = {"OPENCLAW_GATEWAY_URL": ours.url, "OPENCLAW_GATEWAY_TOKEN": TOKEN}
    r = oc(peer, cli_home, "health", env=env)
    assert r.returncode == 0, show(r)
    assert "Agents: main" in r.stdout, show(r)
    rj = oc(peer, cli_home, "health", "--json", env=env)
    assert rj.returncode == 0, show(rj)
    assert json.loads(rj.stdout)["ok"] is True


def test_gateway_health(peer: Peer, ours: GatewayProcess, cli_home: Path) -> None:
    r = oc(peer, cli_home, "gateway", "health", *target(ours))
    assert r.returncode == 0, show(r)
    assert "OK" in r.stdout, show(r)


def test_wrong_token_is_refused(peer: Peer, ours: GatewayProcess, cli_home: Path) -> None:
    r = oc(peer, cli_home, "gateway", "call", "health", *target(ours, WRONG), "--json")
    assert r.returncode != 0, show(r)
    assert "gateway token mismatch" in r.stdout + r.stderr, show(r)
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "INVALID_REQUEST"
    assert err["details"]["code"] == "AUTH_TOKEN_MISMATCH"


def test_gateway_call_status(peer: Peer, ours: GatewayProcess, cli_home: Path) -> None:
    r = oc(peer, cli_home, "gateway", "call", "status", *target(ours), "--json")
    assert r.returncode == 0, show(r)
    status = json.loads(r.stdout)
    assert status["runtimeVersion"] == CLAWD_VERSION
    assert status["gateway"]["pid"] == ours.proc.pid


def test_gateway_call_system_presence(peer: Peer, ours: GatewayProcess, cli_home: Path) -> None:
    r = oc(peer, cli_home, "gateway", "call", "system-presence", *target(ours), "--json")
    assert r.returncode == 0, show(r)
    presence = json.loads(r.stdout)
    assert isinstance(presence, list), show(r)
    assert any(e.get("mode") == "gateway" and e.get("reason") == "self" for e in presence), presence


def test_gateway_status_require_rpc(peer: Peer, ours: GatewayProcess, cli_home: Path) -> None:
    """`gateway status` probes in client.mode "probe" (no scopes); --require-rpc adds a read RPC."""
    r = oc(peer, cli_home, "gateway", "status", *target(ours), "--require-rpc", "--json")
    assert r.returncode == 0, show(r)
    rpc = json.loads(r.stdout)["rpc"]
    assert rpc["ok"] is True, rpc
    assert rpc["url"] == ours.url
    assert rpc["capability"] == "read_only", rpc
    assert rpc["server"]["version"] == CLAWD_VERSION


def test_unknown_method(peer: Peer, ours: GatewayProcess, cli_home: Path) -> None:
    r = oc(peer, cli_home, "gateway", "call", "no.such.method", *target(ours))
    assert r.returncode != 0, show(r)
    assert "unknown method" in r.stdout + r.stderr, show(r)


# Commands beyond the minimum core that the real CLI runs: nodes and channels listings.


def test_nodes_list(peer: Peer, ours: GatewayProcess, cli_home: Path) -> None:
    r = oc(peer, cli_home, "nodes", "list", *target(ours), "--json")
    assert r.returncode == 0, show(r)
    assert json.loads(r.stdout) == {"pending": [], "paired": []}


def test_channels_status(peer: Peer, ours: GatewayProcess, cli_home: Path) -> None:
    env = {"OPENCLAW_GATEWAY_URL": ours.url, "OPENCLAW_GATEWAY_TOKEN": TOKEN}
    r = oc(peer, cli_home, "channels", "status", env=env)
    assert r.returncode == 0, show(r)
    assert "Gateway reachable." in r.stdout, show(r)


# -- clawd-gateway's own client against the REAL OpenClaw gateway ---------------------------------


def test_control_real_cli_against_real_gateway(peer: Peer, real_gateway: PeerGateway, cli_home: Path) -> None:
    """Control: if this fails, the harness (not clawd-gateway) is broken."""
    r = oc(peer, cli_home, "gateway", "call", "health", *target(real_gateway), "--json")
    assert r.returncode == 0, show(r)
    assert json.loads(r.stdout)["ok"] is True


def test_clawd_health_against_real_gateway(real_gateway: PeerGateway, tmp_path: Path) -> None:
    r, result = clawd_health(real_gateway.url, PEER_TOKEN, tmp_path)
    assert r.returncode == 0, show(r)
    assert result["ok"] is True, result
    assert result["protocol"] == 4
    assert result["server"]["version"] == OPENCLAW_VERSION
    assert result["health"]["ok"] is True


def test_clawd_health_wrong_token_against_real_gateway(real_gateway: PeerGateway, tmp_path: Path) -> None:
    r, result = clawd_health(real_gateway.url, WRONG, tmp_path)
    assert r.returncode == 4, show(r)
    assert result["ok"] is False
    assert result["hop"] == "auth"
    assert result["error"]["details"]["code"] == "AUTH_TOKEN_MISMATCH", result


# -- the clawd tunnel in front of the REAL OpenClaw gateway -----------------------------------------


def test_tunnel_to_real_gateway_and_clawd_health_through_it(
    real_gateway: PeerGateway, sshd: Any, tmp_path: Path
) -> None:
    """The same SSH tunnel and end-to-end probe work in front of a real OpenClaw gateway."""
    from tests.support.supervisor import ssh_profile, supervised

    local_port = free_port()
    profile = ssh_profile(sshd, real_gateway.port, local_port, name="real")
    with supervised(profile, PEER_TOKEN) as w:
        st = w.wait_state("healthy", 30)
        assert st["server"]["version"] == OPENCLAW_VERSION
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_"))}
        env.update(HOME=str(tmp_path), OPENCLAW_GATEWAY_TOKEN=PEER_TOKEN)
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "clawd_client",
                "health",
                "--url",
                f"ws://127.0.0.1:{local_port}",
                "--json",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert r.returncode == 0, show(r)
        assert json.loads(r.stdout)["ok"] is True
