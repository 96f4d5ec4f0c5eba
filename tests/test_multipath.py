"""One profile, several ways in: the pure choice of a path, and failover/failback through a real
agent with a real sshd (the SSH path) and a direct ws:// path through a relay to the same real
gateway. Waits follow the agent's state stream with deadlines."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from tests.support.agentwatch import gateway_health, wait_state
from tests.support.clientcli import clawd, ssh_profile_args
from tests.support.relay import Relay
from tests.support.servers import free_port

from clawd_client.engine.multipath import STARTUP_GRACE_S, PathView, choose

# --- the choice -----------------------------------------------------------------------------------


def views(**healthy_since: float | None) -> list[PathView]:
    return [PathView(name, since) for name, since in healthy_since.items()]


def test_the_dead_active_path_is_left_at_once_for_a_healthy_standby():
    paths = views(ssh=None, direct=5.0)
    assert choose(paths, "ssh", prefer="order", failback=30, now=100) == "direct"


def test_nothing_healthy_means_hold():
    assert choose(views(ssh=None, direct=None), "ssh", prefer="order", failback=30, now=100) is None


def test_failback_only_after_the_preferred_path_proved_itself():
    paths = views(ssh=90.0, direct=5.0)
    assert choose(paths, "direct", prefer="order", failback=30, now=100) == "direct"  # 10 s healthy
    assert choose(paths, "direct", prefer="order", failback=30, now=120) == "ssh"  # 30 s healthy


def test_at_start_the_preferred_path_gets_its_grace_then_any_healthy_one_serves():
    paths = views(ssh=None, direct=0.1)
    assert choose(paths, None, prefer="order", failback=30, now=0.5, started=0.0) is None
    assert choose(paths, None, prefer="order", failback=30, now=STARTUP_GRACE_S, started=0.0) == "direct"


def test_a_pinned_path_wins_while_healthy_and_gives_way_when_not():
    assert choose(views(ssh=1.0, direct=1.0), "ssh", prefer="order", failback=30, now=5, pinned="direct") == (
        "direct"
    )
    assert choose(
        views(ssh=1.0, direct=None), "direct", prefer="order", failback=30, now=5, pinned="direct"
    ) == ("ssh")


def test_fastest_does_not_flap_under_twenty_percent_jitter():
    import random

    rng = random.Random(7)
    active = "ssh"
    flips = 0
    for t in range(200):
        ssh = 10.0 * (1 + rng.uniform(-0.2, 0.2))
        direct = 10.0 * (1 + rng.uniform(-0.2, 0.2))
        paths = [PathView("ssh", 0.0, ssh), PathView("direct", 0.0, direct)]
        chosen = choose(paths, active, prefer="fastest", failback=30, now=100 + t)
        flips += chosen != active
        active = chosen
    assert flips == 0
    paths = [PathView("ssh", 0.0, 20.0), PathView("direct", 0.0, 5.0)]  # clearly faster: take it
    assert choose(paths, "ssh", prefer="fastest", failback=30, now=100) == "direct"


# --- through a real agent ------------------------------------------------------------------------


@pytest.fixture
def direct(gateway):
    r = Relay(gateway.port).start()
    yield r
    r.close()


def add_multipath(env, sshd, gateway, direct, name="mp", **tweak) -> int:
    port = free_port()
    args = ["profile", "add", name, *ssh_profile_args(sshd, gateway.port, port), "--url", f"ws://127.0.0.1:{direct.port}"]
    r = clawd(args, env)
    assert r.returncode == 0 and "paths: ssh → direct" in r.stdout, r.stdout + r.stderr
    assert clawd(["secret", "set", name], env, input=gateway.token + "\n").returncode == 0
    # Test pace: the file's own fields, not flags a user needs (failback default 30 s, probe 15 s).
    store = Path(env["CLAWD_CONFIG_DIR"]) / "profiles.json"
    data = json.loads(store.read_text())
    for entry in data["profiles"]:
        if entry["name"] == name:
            entry.update(tweak)
    store.write_text(json.dumps(data))
    return port


def test_ssh_dies_new_clients_go_direct_and_come_back_to_ssh(client_env, sshd, gateway, direct):
    env = client_env
    port = add_multipath(env, sshd, gateway, direct, failback=2.0, probe_interval=1.0)
    r = clawd(["up", "mp"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    st = wait_state(
        lambda s: s.active_path == "ssh" and all(p.state == "healthy" for p in s.paths),
        "mp",
        what="both paths up",
    )
    assert [p.path for p in st.paths] == ["ssh", "direct"] and st.paths[0].active
    listed = json.loads(clawd(["status", "mp", "--json"], env).stdout)["tunnels"][0]
    assert listed["active_path"] == "ssh" and [p["path"] for p in listed["paths"]] == ["ssh", "direct"]
    url = f"ws://127.0.0.1:{port}"

    sshd.crash()
    st = wait_state(lambda s: s.active_path == "direct", "mp", what="failover to direct")
    assert st.paths[0].state != "healthy"
    assert gateway_health(url, gateway.token)["ok"] is True  # sshd is gone: only the standby can answer

    sshd.start()
    wait_state(lambda s: s.active_path == "ssh", "mp", timeout=60, what="failback to ssh")
    direct.freeze()  # the standby stops answering: a new client can only be served through SSH
    assert gateway_health(url, gateway.token)["ok"] is True


def test_with_every_path_down_clients_are_held_then_served(client_env, sshd, gateway, direct):
    env = client_env
    port = add_multipath(env, sshd, gateway, direct, failback=2.0, probe_interval=1.0)
    assert clawd(["up", "mp"], env).returncode == 0
    wait_state(lambda s: s.active_path == "ssh", "mp", what="ssh active")
    relay_port = direct.port
    direct.close()  # the direct way is gone too (a blocked network)
    sshd.crash()
    wait_state(lambda s: s.active_path is None, "mp", what="no path left")

    result: dict[str, object] = {}
    client = threading.Thread(
        target=lambda: result.update(
            gateway_health(f"ws://127.0.0.1:{port}", gateway.token, open_timeout=60)
        ),
        daemon=True,
    )
    client.start()
    wait_state(lambda s: s.held >= 1, "mp", what="the client held")
    sshd.start()
    client.join(60)
    assert result.get("ok") is True  # held, then carried by the path that came back
    st = wait_state(lambda s: s.active_path == "ssh", "mp", what="ssh active again")
    assert st.held == 0 and relay_port  # the direct path stays down; nothing was refused


def test_doctor_names_the_broken_hop_of_each_path_and_pin_steers_new_connections(
    client_env, sshd, gateway, direct
):
    env = client_env
    add_multipath(env, sshd, gateway, direct, failback=2.0, probe_interval=1.0)
    sshd.crash()
    d = clawd(["doctor", "mp", "--json"], env)
    report = json.loads(d.stdout)
    assert d.returncode == 1 and report["ok"] is False, d.stdout + d.stderr
    by_path = {p["path"]: p for p in report["paths"]}
    assert by_path["ssh"]["firstBroken"] == "tcp" and by_path["direct"]["ok"] is True
    text = clawd(["doctor", "mp"], env).stdout
    assert "first broken hop of ssh: tcp" in text and "paths that work: direct" in text

    sshd.start()
    assert clawd(["up", "mp"], env).returncode == 0
    wait_state(lambda s: s.active_path == "ssh" and all(p.state == "healthy" for p in s.paths), "mp")
    r = clawd(["pin", "mp", "direct"], env)
    assert r.returncode == 0 and "pinned to direct" in r.stdout, r.stdout + r.stderr
    st = wait_state(lambda s: s.active_path == "direct", "mp", what="pinned to direct")
    assert st.note == "pinned to direct"
    assert clawd(["pin", "mp", "--auto"], env).returncode == 0
    wait_state(lambda s: s.active_path == "ssh", "mp", what="back to ssh, the preferred path")
    assert clawd(["pin", "nope", "ssh"], env).returncode != 0
