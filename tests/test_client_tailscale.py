"""The `tailscale` method: a gateway behind Tailscale Serve (wss://NAME/) or bound to the tailnet
(ws://NAME:PORT), reached through a loopback relay, with the local daemon's state checked first.

The tailnet is simulated on loopback: the `tailscale` test double (tests/support/fake_tailscale)
reports the gateway's node `gw` with TailscaleIPs 127.0.0.1, where a real clawd-gateway listens;
for Serve, a TLS front with a test CA and a certificate for gw.tail1234.ts.net stands where
Tailscale Serve would. The client dials the address `tailscale status` gives (MagicDNS names do
not resolve here, just as they may not on a laptop whose resolver bypasses MagicDNS).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from tests.support.clientcli import clawd, connected
from tests.support.fake_tailscale import FakeTailscale
from tests.support.servers import free_port
from tests.support.supervisor import supervised
from tests.support.tls_front import tls_front
from tests.support.wsclient import handshake

from clawd_client.engine import TunnelStatus, paths
from clawd_client.profiles import Profile
from clawd_client.tray.icons import IconKind
from clawd_client.tray.presenter import TrayInput, hop_lines, present

TOKEN = "s3cret-token-for-tests-0123456789"
NAME = "gw.tail1234.ts.net"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    ts = FakeTailscale.create(tmp_path)
    ts.set_self(hostname="laptop", ips=["100.64.0.7", "fd7a:115c:a1e0::7"])
    ts.add_peer("gw", ["127.0.0.1"], dns_name=NAME + ".")
    for key, value in ts.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(paths.ts.SOCKET_ENV, raising=False)
    yield ts
    ts.close()


@pytest.fixture
def serve(tmp_path, gateway):
    """Tailscale Serve's part: TLS with a certificate for the node's MagicDNS name."""
    with tls_front(tmp_path / "tls", gateway.port, [NAME]) as front:
        yield front


def serve_profile(serve, **changes) -> Profile:
    p = Profile(
        name="ts",
        method="tailscale",
        url=f"wss://{NAME}:{serve.port}/",
        ca_file=str(serve.ca.ca_file),
        local_port=free_port(),
    )
    return replace(p, **changes)


def hops_of(st) -> dict[str, dict]:
    return {h["hop"]: h for h in st["hops"]}


def test_serve_gateway_is_healthy_through_the_relay(fake, serve):
    p = serve_profile(serve)
    with supervised(p, TOKEN) as w:
        st = w.wait_state("healthy", 15)
        assert st["method"] == "tailscale" and st["local_url"] == f"ws://127.0.0.1:{p.local_port}"
        hops = hops_of(st)
        assert [h["hop"] for h in st["hops"]] == ["daemon", "login", "peer", "https", "relay"]
        assert all(h["ok"] for h in st["hops"])
        assert "laptop.tail1234.ts.net" in hops["login"]["detail"]
        assert f"{NAME} online at 127.0.0.1" in hops["peer"]["detail"]
        assert st["upstream"] == {"host": "127.0.0.1", "port": serve.port, "tls": True, "serverName": NAME}
        ws, _, res = handshake(st["local_url"], TOKEN)  # a tool using the local URL
        with ws:
            assert res["ok"]
    assert NAME in serve.connections  # SNI: Serve picks the route by it
    assert ["status", "--json"] in fake.calls()


def test_without_relay_clients_use_the_url_and_the_probe_still_verifies_tls(fake, serve):
    p = serve_profile(serve, relay=False)
    with supervised(p, TOKEN) as w:
        st = w.wait_state("healthy", 15)
        assert st["local_url"] == p.url and st["relay"] is False
        assert "relay" not in hops_of(st)
        assert st["local_url"].startswith("wss://")


def test_tailnet_bind_by_name_is_healthy(fake, gateway):
    p = Profile(
        name="tb",
        method="tailscale",
        url=f"ws://{NAME}:{gateway.port}",
        local_port=free_port(),
        probe_interval=0.5,
    )
    with supervised(p, TOKEN) as w:
        st = w.wait_state("healthy", 15)
        assert [h["hop"] for h in st["hops"]] == ["daemon", "login", "peer", "tcp", "relay"]
        assert st["upstream"]["host"] == "127.0.0.1" and st["upstream"]["tls"] is False
        mark = w.mark()
        gateway.stop()  # the tailnet peer stays online, its gateway does not answer any more
        st = w.wait_from(mark, lambda s: s["state"] == "degraded", 20, "degraded")
        assert st["degraded"] == "gateway-unreachable"
        assert f"relay to 127.0.0.1:{gateway.port}" in st["last_error"] and "refused" in st["last_error"]


def test_localapi_socket_is_used_when_configured(fake, serve, monkeypatch):
    monkeypatch.setenv(paths.ts.SOCKET_ENV, fake.start_localapi())
    fake.clear_calls()
    with supervised(serve_profile(serve), TOKEN) as w:
        st = w.wait_state("healthy", 15)
        assert "LocalAPI" in hops_of(st)["daemon"]["detail"]
    assert fake.calls() == []  # no CLI process at all
    assert any(c["path"] == "/localapi/v0/status" for c in fake.localapi_calls())


SCENARIOS = {
    "daemon": (lambda f: f.set_daemon_running(False), "tailscaled is not running", "systemctl"),
    "login": (lambda f: f.set_backend_state("NeedsLogin"), "logged out", "log in at https://login"),
    "peer": (lambda f: f.add_peer("gw", ["127.0.0.1"], dns_name=NAME + ".", online=False), "offline", "up"),
}


@pytest.mark.parametrize("hop", list(SCENARIOS))
def test_broken_tailscale_hop_is_shown_with_its_fix(fake, serve, hop):
    breaker, detail, fix = SCENARIOS[hop]
    breaker(fake)
    with supervised(serve_profile(serve), TOKEN) as w:
        st = w.wait(lambda s: s["state"] == "backoff", 15, "backoff")
        broken = st["hops"][-1]
        assert broken["hop"] == hop and not broken["ok"]
        assert detail in broken["detail"] and fix in broken["fix"]
        assert detail in st["last_error"] and "fix:" in st["last_error"]
        # The tray lists the hops up to the broken one, with the fix.
        status = TunnelStatus.from_json(st)
        lines = hop_lines(status)
        assert lines[-2].startswith(f"✗ {hop}:") and lines[-1].strip().startswith("fix:")
        shown = present(TrayInput(profiles=("ts",), tunnels={"ts": status}))
        texts, stack = [], list(shown.menu)
        while stack:
            item = stack.pop()
            texts.append(item.text)
            stack.extend(item.submenu)
        assert lines[-2] in texts
        assert "Tailscale" in shown.headline or "offline" in shown.headline
        assert (shown.icon is IconKind.NEEDS_USER) == (hop == "login")


def test_fixing_tailscale_brings_the_tunnel_back_without_waiting_out_backoff(fake, serve):
    fake.set_daemon_running(False)
    with supervised(serve_profile(serve), TOKEN) as w:
        w.wait(lambda s: s["state"] == "backoff", 15, "backoff")
        mark = w.mark()
        fake.set_daemon_running(True)
        w.wait_from(mark, lambda s: s["state"] == "healthy", 15, "healthy once tailscaled runs")


def test_logout_while_healthy_takes_the_link_down_and_says_why(fake, serve, monkeypatch):
    monkeypatch.setattr(paths, "TAILSCALE_POLL_S", 0.2)
    with supervised(serve_profile(serve), TOKEN) as w:
        w.wait_state("healthy", 15)
        mark = w.mark()
        fake.set_backend_state("NeedsLogin")
        st = w.wait_from(mark, lambda s: "logged out" in (s["last_error"] or ""), 10, "logged out shown")
        assert st["state"] in ("connecting", "backoff")
        fake.set_backend_state("Running")
        w.wait_from(mark, lambda s: s["state"] == "healthy", 15, "healthy after login")


def test_not_installed_is_fatal_and_names_the_fix(serve, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv(paths.ts.SOCKET_ENV, raising=False)
    with supervised(serve_profile(serve), TOKEN) as w:
        st = w.wait(lambda s: s["state"] == "fatal", 15, "fatal")
        assert "tailscale.com/download" in st["last_error"]


# --- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli_env(client_env, fake):
    """A real keyring (the agent reads secrets only from there) and the fake tailscale."""
    env = dict(client_env)
    env.update(fake.env)
    return env


def add_serve_profile(env, serve, local_port):
    r = clawd(
        [
            "profile",
            "add",
            "ts",
            "--tailscale",
            NAME,
            "--serve",
            "--port",
            str(serve.port),
            "--ca-file",
            str(serve.ca.ca_file),
            "--local-port",
            str(local_port),
        ],
        env,
    )
    assert r.returncode == 0, r.stderr
    assert f"tailscale wss://{NAME}:{serve.port}/ (Tailscale Serve, TLS verified)" in r.stdout
    assert clawd(["secret", "set", "ts"], env, input=TOKEN + "\n").returncode == 0


def test_cli_connect_status_doctor(cli_env, serve):
    env = cli_env
    local_port = free_port()
    add_serve_profile(env, serve, local_port)
    d = clawd(["doctor", "ts", "--json"], env)
    report = json.loads(d.stdout)
    assert d.returncode == 0 and report["ok"], d.stdout + d.stderr
    assert [h["hop"] for h in report["hops"]] == [
        "profile",
        "daemon",
        "login",
        "peer",
        "secret",
        "https",
        "gateway-auth",
        "health",
    ]
    with connected("ts", env) as run:
        st = clawd(["status", "--json"], env)
        assert st.returncode == 0, st.stdout + st.stderr
        tunnel = json.loads(st.stdout)["tunnels"][0]
        assert tunnel["state"] == "healthy" and tunnel["method"] == "tailscale"
        assert tunnel["local_url"] == f"ws://127.0.0.1:{local_port}"
        assert {h["hop"]: h["ok"] for h in tunnel["hops"]} == {
            "daemon": True,
            "login": True,
            "peer": True,
            "https": True,
            "relay": True,
        }
        text = clawd(["status", "ts"], env).stdout
        assert "[ok ] peer" in text and f"{NAME} online" in text
        h = clawd(["health", "ts", "--json"], env)
        assert h.returncode == 0 and json.loads(h.stdout)["ok"] is True, h.stdout + h.stderr
    assert run.returncode == 0
    assert TOKEN not in run.output


@pytest.mark.parametrize("hop", list(SCENARIOS))
def test_cli_doctor_names_the_broken_tailscale_hop(cli_env, fake, serve, hop):
    breaker, detail, fix = SCENARIOS[hop]
    add_serve_profile(cli_env, serve, free_port())
    breaker(fake)
    d = clawd(["doctor", "ts"], cli_env)
    assert d.returncode in (1, 4) and "Traceback" not in d.stderr
    assert f"first broken hop: {hop}" in d.stdout and detail in d.stdout
    assert "fix: " in d.stdout and fix in d.stdout.split("fix: ", 1)[1]
    h = clawd(["health", "ts"], cli_env)
    assert h.returncode == 3 and detail in h.stderr


def test_serve_needs_a_name_and_unknown_peer_is_named(cli_env, serve):
    r = clawd(["profile", "add", "x", "--tailscale", "100.101.102.103", "--serve"], cli_env)
    assert r.returncode != 0 and "MagicDNS name" in r.stderr and "Traceback" not in r.stderr
    r = clawd(["profile", "add", "y", "--tailscale", "nosuch.tail1234.ts.net"], cli_env)
    assert r.returncode == 0 and "wss://nosuch.tail1234.ts.net/" in r.stdout
    d = clawd(["doctor", "y", "--json"], cli_env)
    report = json.loads(d.stdout)
    assert report["firstBroken"] == "peer" and "not a node of your tailnet" in report["hops"][-1]["detail"]


# --- the pure parts: ipnstate.Status JSON in, verdict out -----------------------------------------


def _status(backend="Running", peers=None, **extra):
    return json.dumps(
        {
            "Version": "1.94.2",
            "BackendState": backend,
            "AuthURL": extra.pop("auth_url", ""),
            "Self": {
                "HostName": "laptop",
                "DNSName": "laptop.tail1234.ts.net.",
                "TailscaleIPs": ["100.64.0.7"],
            },
            "MagicDNSSuffix": "tail1234.ts.net",
            "Peer": {f"nodekey:{i}": p for i, p in enumerate(peers or [])},
            **extra,
        }
    )


GW_PEER = {
    "HostName": "gateway-box",
    "DNSName": "gw.tail1234.ts.net.",
    "TailscaleIPs": ["fd7a:115c:a1e0::9", "100.101.102.103"],
    "Online": True,
}


@pytest.mark.parametrize(
    "host", ["gw.tail1234.ts.net", "gw.tail1234.ts.net.", "GW", "gateway-box", "100.101.102.103"]
)
def test_peer_found_by_fqdn_short_name_host_name_or_ip(host):
    state = paths.ts.parse_status(_status(peers=[GW_PEER]), "test")
    verdict = paths.ts.judge(state, host)
    assert verdict.ok and verdict.node is not None
    assert verdict.node.address() == "100.101.102.103"  # IPv4 first


@pytest.mark.parametrize(
    ("backend", "words"),
    [
        ("NeedsMachineAuth", "admin console"),
        ("Stopped", "tailscale up"),
        ("Starting", "wait"),
        ("NoState", "restart tailscaled"),
    ],
)
def test_each_backend_state_names_its_fix(backend, words):
    verdict = paths.ts.judge(paths.ts.parse_status(_status(backend, [GW_PEER]), "test"), "gw")
    assert verdict.first_broken.name == "login" and words in verdict.first_broken.fix


def test_tailnet_ranges():
    ok = ["100.64.0.1", "100.127.255.254", "fd7a:115c:a1e0::1", "[fd7a:115c:a1e0:ab12::5]"]
    for ip in ok:
        assert paths.ts.is_tailnet_ip(ip), ip
    for ip in ["100.63.255.255", "100.128.0.0", "10.0.0.1", "fd7a:115c:a1e1::1", "gw.tail1234.ts.net"]:
        assert not paths.ts.is_tailnet_ip(ip), ip
