"""`clawd` as a user runs it, against a real sshd and a real clawd-gateway: profile, secret in a
real keyring, connect, status from the running supervisor, health, doctor, clean shutdown, and
no secret in any file, log line or process command line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
from tests.support.clientcli import add_ssh_profile, agent_pid, clawd, connected
from tests.support.servers import free_port

TOKEN = "s3cret-token-for-tests-0123456789"


def add_profile(env, sshd, gateway, local_port, name="vps"):
    add_ssh_profile(env, sshd, gateway.port, name, local_port=local_port)

def test_connect_status_health_doctor_and_no_leaks(client_env, sshd, gateway, tmp_path):
    env = client_env
    local_port = free_port()
    add_profile(env, sshd, gateway, local_port)
    r = clawd(["secret", "set", "vps"], env, input=TOKEN + "\n")
    assert r.returncode == 0, r.stderr

    with connected("vps", env) as run:
        agent = agent_pid(env)
        assert agent is not None and agent != run.proc.pid  # the agent hosts it; connect is its client
        st = clawd(["status", "--json"], env)
        assert st.returncode == 0, st.stdout + st.stderr
        data = json.loads(st.stdout)
        tunnel = data["tunnels"][0]
        assert data["agent"]["pid"] == agent and tunnel["pid"] == agent
        assert tunnel["state"] == "healthy" and tunnel["active_path"] == "ssh"
        assert tunnel["local_url"] == f"ws://127.0.0.1:{local_port}"
        assert {"state", "local_url", "active_path", "last_error", "latency_ms", "since"} <= set(tunnel)

        h = clawd(["health", "vps", "--json"], env)
        assert h.returncode == 0 and json.loads(h.stdout)["ok"] is True, h.stdout + h.stderr
        assert json.loads(h.stdout)["credentials"].startswith("keyring")

        d = clawd(["doctor", "vps", "--json"], env)
        report = json.loads(d.stdout)
        assert d.returncode == 0 and report["ok"], d.stdout
        assert [hop["hop"] for hop in report["hops"]] == [
            "profile",
            "secret",
            "dns",
            "tcp",
            "host-key",
            "ssh-auth",
            "remote-port",
            "gateway-auth",
            "health",
        ]

        again = clawd(["up", "vps"], env, timeout=30)  # already up and healthy: answered at once
        assert again.returncode == 0 and "healthy" in again.stdout, again.stdout + again.stderr

        # No secret anywhere it could leak.
        for pid in (run.proc.pid, agent):
            assert TOKEN not in " ".join(psutil.Process(pid).cmdline())
        for path in Path(env["CLAWD_CONFIG_DIR"]).rglob("*"):
            if path.is_file():
                assert TOKEN not in path.read_text(errors="replace"), path
        for path in Path(env["CLAWD_STATE_DIR"]).rglob("*"):
            if path.is_file():
                assert TOKEN not in path.read_text(errors="replace"), path
    assert run.returncode == 0
    assert TOKEN not in run.output
    st = clawd(["status", "--json"], env)  # Ctrl-C on connect brought the tunnel down; the agent stays
    assert st.returncode == 3 and json.loads(st.stdout)["tunnels"] == [], st.stdout
    for path in Path(env["CLAWD_STATE_DIR"]).rglob("*.log"):
        assert TOKEN not in path.read_text(errors="replace"), path


def test_doctor_names_the_first_broken_hop(client_env, sshd, make_gateway):
    env = dict(client_env, OPENCLAW_GATEWAY_TOKEN="WRONG-token-000000")
    gw = make_gateway(token=TOKEN)
    add_profile(env, sshd, gw, free_port())
    d = clawd(["doctor", "vps", "--json"], env)
    report = json.loads(d.stdout)
    assert d.returncode == 4 and report["firstBroken"] == "gateway-auth"
    assert "token mismatch" in report["hops"][-1]["detail"]
    gw.stop()
    d = clawd(["doctor", "vps"], env)
    assert d.returncode == 1 and "first broken hop: remote-port" in d.stdout and "fix:" in d.stdout
    sshd.close()
    d = clawd(["doctor", "vps"], env)
    assert "first broken hop: tcp" in d.stdout


def test_connect_fails_fast_and_clearly_on_changed_host_key(client_env, sshd, gateway):
    env = dict(client_env, OPENCLAW_GATEWAY_TOKEN=TOKEN)
    add_profile(env, sshd, gateway, free_port())
    sshd.regenerate_host_key()
    r = clawd(["connect", "vps"], env, timeout=30)
    assert r.returncode == 4
    assert "REMOTE HOST KEY CHANGED" in r.stderr and "Traceback" not in r.stderr


def test_no_keyring_backend_is_explained(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "OPENCLAW_", "CLAWDBOT_"))}
    env.update(
        HOME=str(tmp_path),
        CLAWD_CONFIG_DIR=str(tmp_path / "cfg"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    clawd(["profile", "add", "x", "--ssh", "me@example.invalid"], env)
    r = clawd(["secret", "set", "x"], env, input="tok-123456789\n")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "keyring" in r.stderr.lower() and "fix" in r.stderr
