"""`bind: tailnet` listens on the 100.64.0.0/10 address only; loopback then does not answer.

Run for real in a private network namespace that this test creates, with a `tailscale0` TUN
device carrying a CGNAT address (what tailscaled sets up), so nothing on the host is touched
and all traffic stays inside the namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.servers import gateway_process, require

TOKEN = "tailnet-bind-token-0123456789abcdef"
TAILNET_IP = "100.101.102.103"
ROOT = Path(__file__).resolve().parent.parent

SETUP = (
    "set -e; ip link set lo up; "
    "if ip tuntap add dev tailscale0 mode tun 2>/dev/null; then dev=tailscale0; "
    f"else dev=lo; fi; ip addr add {TAILNET_IP}/32 dev $dev; ip link set $dev up; "
)
# Runs its arguments (the gateway) in a new network namespace set up as above.
IN_NEW_NETNS = ["unshare", "--net", "sh", "-c", SETUP + 'exec "$@"', "sh"]

PROBE = r"""
import json, socket, sys
from tests.support.wsclient import handshake, send_req, wait_res
url = sys.argv[1]
ws, _, res = handshake(url, sys.argv[2])
with ws:
    health = wait_res(ws, send_req(ws, "health", {}))
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[3])), timeout=2).close()
    loopback = "answered"
except OSError as exc:
    loopback = type(exc).__name__
print(json.dumps({"connect": res["ok"], "health": health["ok"], "loopback": loopback}))
"""


def _namespaces_usable() -> bool:
    if os.name != "posix" or os.geteuid() != 0:
        return False
    if not all(shutil.which(t) for t in ("unshare", "nsenter", "ip")):
        return False
    try:
        return subprocess.run(["unshare", "--net", "true"], timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_tailnet_bind_answers_on_the_tailnet_address_and_not_on_loopback(tmp_path):
    require(_namespaces_usable(), "needs root with unshare/nsenter/ip to build a network namespace")
    port = 18789  # the namespace is private, so the default port is free
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_"))},
        "HOME": str(tmp_path),
        "CLAWD_STATE_DIR": str(tmp_path / "state"),
        "OPENCLAW_GATEWAY_TOKEN": TOKEN,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),
    }
    with gateway_process(
        tmp_path, ["--bind", "tailnet"], env, token=TOKEN, port=port, wrapper=IN_NEW_NETNS
    ) as gw:
        banner = "".join(gw.stdout_lines)
        assert f"ws://{TAILNET_IP}:{port}" in banner and "Bind: tailnet" in banner, banner
        in_ns = ["nsenter", f"--net=/proc/{gw.proc.pid}/ns/net"]
        probe = subprocess.run(
            [*in_ns, sys.executable, "-c", PROBE, f"ws://{TAILNET_IP}:{port}", TOKEN, str(port)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=30,
        )
        assert probe.returncode == 0, probe.stderr
        result = json.loads(probe.stdout.strip().splitlines()[-1])
        assert result == {"connect": True, "health": True, "loopback": "ConnectionRefusedError"}
        status = subprocess.run(
            [*in_ns, sys.executable, "-m", "clawd_gateway", "status", "--json"],
            capture_output=True,
            text=True,
            env={**env, "OPENCLAW_GATEWAY_PORT": str(port)},
            timeout=30,
        )
        report = json.loads(status.stdout)
        assert report["running"] is True and report["url"] == f"ws://{TAILNET_IP}:{port}", report
        assert report["runtime"]["listen"] == [TAILNET_IP]
    assert gw.proc.returncode == 0, gw.stderr_text()


@pytest.mark.parametrize("mode", ["serve", "funnel"])
def test_tailnet_bind_is_refused_with_serve_or_funnel(tmp_path, mode):
    """Serve/Funnel proxy to loopback; a tailnet bind would leave them nothing to reach."""
    require(_namespaces_usable(), "needs root with unshare/nsenter/ip to build a network namespace")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_"))},
        "HOME": str(tmp_path),
        "CLAWD_STATE_DIR": str(tmp_path / "state"),
        "OPENCLAW_GATEWAY_PASSWORD": "tailnet-password-0123456789",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [sys.executable, "-m", "clawd_gateway", "run", "--bind", "tailnet", "--auth", "password"]
    proc = subprocess.run(
        [*IN_NEW_NETNS, *cmd, "--tailscale", mode], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 78, proc.stderr
    assert "requires gateway bind=loopback" in proc.stderr and TAILNET_IP in proc.stderr
    assert "Traceback" not in proc.stderr
