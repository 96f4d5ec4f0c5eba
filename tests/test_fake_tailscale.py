"""Self-tests of the tailscale test double: real JSON shapes, texts, exit codes and state transitions.

The expected field names and messages come from Tailscale's source (ipn/ipnstate/ipnstate.go,
client/tailscale/apitype, ipn/serve.go, cmd/tailscale/cli/{serve_v2,funnel,status,whois}.go).
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from tests.support.fake_tailscale import FakeTailscale, localapi_get

DNS = "gw.tail1234.ts.net"
USER_CONFIG = {
    "TCP": {"8443": {"HTTPS": True}},
    "Web": {f"{DNS}:8443": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:3000"}}}},
}


@pytest.fixture
def fake(tmp_path: Path):
    with FakeTailscale.create(tmp_path) as f:
        yield f


def ok(fake: FakeTailscale, *args: str) -> str:
    r = fake.run(*args)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def test_status_json_has_the_ipnstate_shape(fake: FakeTailscale) -> None:
    fake.add_peer(
        "laptop", ["100.64.0.7", "fd7a:115c:a1e0::7"], user_login="bob@example.com", os_name="macOS"
    )
    st = json.loads(ok(fake, "status", "--json"))
    for key in (
        "Version",
        "TUN",
        "BackendState",
        "HaveNodeKey",
        "AuthURL",
        "TailscaleIPs",
        "Self",
        "Health",
        "MagicDNSSuffix",
        "CurrentTailnet",
        "CertDomains",
        "Peer",
        "User",
        "ClientVersion",
    ):
        assert key in st, key
    assert st["BackendState"] == "Running"
    assert st["Self"]["DNSName"] == f"{DNS}."
    assert st["CurrentTailnet"] == {
        "Name": "alice@example.com",
        "MagicDNSSuffix": "tail1234.ts.net",
        "MagicDNSEnabled": True,
    }
    assert st["CertDomains"] == [DNS]
    assert "https" in st["Self"]["CapMap"] and "funnel" in st["Self"]["CapMap"]
    ((key, peer),) = st["Peer"].items()
    assert key.startswith("nodekey:") and peer["PublicKey"] == key
    assert peer["DNSName"] == "laptop.tail1234.ts.net." and peer["OS"] == "macOS" and peer["Online"] is True
    assert st["User"][str(peer["UserID"])]["LoginName"] == "bob@example.com"
    assert ok(fake, "ip", "-4") == "100.101.102.103\n"


def test_whois_cli_and_localapi_agree_and_unknown_is_peer_not_found(fake: FakeTailscale) -> None:
    fake.add_peer("laptop", ["100.64.0.7"], user_login="bob@example.com", user_display_name="Bob B")
    who = json.loads(ok(fake, "whois", "--json", "100.64.0.7:51234"))
    assert set(who) == {"Node", "UserProfile", "CapMap"} and who["CapMap"] is None
    assert (
        who["UserProfile"]["LoginName"] == "bob@example.com" and who["UserProfile"]["DisplayName"] == "Bob B"
    )
    assert who["Node"]["Name"] == "laptop.tail1234.ts.net." and who["Node"]["Addresses"] == ["100.64.0.7/32"]
    r = fake.run("whois", "--json", "100.64.0.99")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "peer not found\n")

    sock = fake.start_localapi()
    code, body = localapi_get(sock, "/localapi/v0/whois?addr=100.64.0.7%3A51234")
    assert code == 200 and json.loads(body) == who
    assert localapi_get(sock, "/localapi/v0/whois?addr=100.64.0.99") == (404, "no match for IP:port\n")
    assert localapi_get(sock, "/localapi/v0/whois?addr=bogus")[0] == 400
    code, body = localapi_get(sock, "/localapi/v0/status")
    assert code == 200 and json.loads(body)["Self"]["DNSName"] == f"{DNS}."
    assert fake.localapi_calls()[0]["host"] == "local-tailscaled.sock"
    assert localapi_get(sock, "/localapi/v0/status", host="example.com") == (
        403,
        "invalid localapi request\n",
    )
    assert localapi_get(sock, "/localapi/v0/serve-config") == (200, "null")
    fake.set_daemon_running(False)
    assert not Path(sock).exists()


def test_serve_background_on_off_reset_keeps_user_config(fake: FakeTailscale) -> None:
    assert ok(fake, "serve", "status", "--json") == "null\n"
    fake.set_serve_config(USER_CONFIG)
    text = ok(fake, f"--socket={fake.socket_path}", "serve", "--bg", "--yes", "http://127.0.0.1:18789")
    assert text == (
        "Available within your tailnet:\n\n"
        f"https://{DNS}/\n|-- proxy http://127.0.0.1:18789\n\n"
        "Serve started and running in the background.\n"
        "To disable the proxy, run: tailscale serve --https=443 off\n"
    )
    sc = fake.serve_config()
    assert sc is not None
    assert sc["TCP"] == {"443": {"HTTPS": True}, "8443": {"HTTPS": True}}
    assert sc["Web"][f"{DNS}:443"] == {"Handlers": {"/": {"Proxy": "http://127.0.0.1:18789"}}}
    assert fake.call_records()[-1]["socket"] == fake.socket_path
    r = fake.run("--socket=/nonexistent/ts.sock", "ip")
    assert r.returncode == 1 and "dial unix /nonexistent/ts.sock" in r.stderr
    ok(fake, "serve", "--https=443", "off")
    assert fake.serve_config() == USER_CONFIG
    r = fake.run("serve", "--https=443", "off")
    assert r.returncode == 1 and "error: failed to remove web serve: handler does not exist" in r.stderr
    ok(fake, "serve", "reset")
    assert ok(fake, "serve", "status", "--json") == "{}\n"
    assert fake.calls()[0] == ["serve", "status", "--json"]


def test_funnel_refusals_and_https_disabled(fake: FakeTailscale) -> None:
    r = fake.run("funnel", "--bg", "--https=8080", "18789")
    assert (
        r.returncode == 1
        and r.stderr == "port 8080 is not allowed for funnel; allowed ports are: 443,8443,10000\n"
    )
    out = ok(fake, "funnel", "--bg", "--yes", "18789")
    assert (
        out.startswith("Available on the internet:")
        and "Funnel started and running in the background." in out
    )
    assert fake.serve_config()["AllowFunnel"] == {f"{DNS}:443": True}  # type: ignore[index]
    ok(fake, "funnel", "--https=443", "off")
    assert fake.serve_config() == {}
    fake.set_funnel_attr(False)
    r = fake.run("funnel", "--bg", "18789")
    assert r.returncode == 1 and '"funnel" node attribute not set' in r.stderr
    fake.set_https(False)
    r = fake.run("funnel", "--bg", "18789")
    assert r.returncode == 1 and "Funnel not available; HTTPS must be enabled." in r.stderr
    r = fake.run("serve", "--bg", "--yes", "18789")
    assert r.returncode == 0 and "Serve is not enabled on your tailnet.\nTo enable, visit:" in r.stdout
    assert "https://login.tailscale.com/f/serve?node=" in r.stdout
    assert fake.serve_config() == {}


def test_https_enable_wait_blocks_until_enabled(fake: FakeTailscale) -> None:
    fake.set_https(False, wait=True)
    p = fake.popen("serve", "--bg", "--yes", "18789")
    assert p.stdout is not None
    lines = [p.stdout.readline() for _ in range(6)]
    assert lines[1:3] == ["Serve is not enabled on your tailnet.\n", "To enable, visit:\n"]
    assert lines[4].startswith("         https://login.tailscale.com/f/serve?node=")
    assert p.poll() is None and fake.serve_config() is None
    fake.set_https(True)
    out, _ = p.communicate(timeout=10)
    assert p.returncode == 0 and out.startswith("Success.\nAvailable within your tailnet:")
    assert fake.serve_config()["TCP"] == {"443": {"HTTPS": True}}  # type: ignore[index]


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_foreground_route_lives_exactly_as_long_as_the_process(fake: FakeTailscale, how: str) -> None:
    fake.set_serve_config(USER_CONFIG)
    p = fake.popen("serve", "--yes", "--bg=false", "18789")
    assert p.stdout is not None
    lines = [p.stdout.readline()]
    while lines[-1] not in ("", "Press Ctrl+C to exit.\n"):
        lines.append(p.stdout.readline())
    assert lines[0] == "Available within your tailnet:\n" and lines[-1] == "Press Ctrl+C to exit.\n"
    fg = fake.wait_for(lambda: (fake.serve_config() or {}).get("Foreground"), what="foreground session")
    (session,) = fg.values()
    assert session["Web"] == {f"{DNS}:443": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:18789"}}}}
    r = fake.run("serve", "--bg", "--yes", "19000")
    assert (r.returncode, r.stderr) == (1, "foreground already exists under this port\n")
    getattr(p, "kill" if how == "SIGKILL" else "send_signal")(
        *([] if how == "SIGKILL" else [getattr(signal, how)])
    )
    p.communicate(timeout=10)
    assert p.returncode == {"SIGTERM": -15, "SIGINT": 0, "SIGKILL": -9}[how]
    assert fake.serve_config() == USER_CONFIG


def test_not_running_states_and_old_version(fake: FakeTailscale) -> None:
    fake.set_backend_state("NeedsLogin")
    st = json.loads(ok(fake, "status", "--json"))
    assert st["BackendState"] == "NeedsLogin" and st["AuthURL"].startswith("https://login.tailscale.com/a/")
    r = fake.run("serve", "--bg", "18789")
    assert r.returncode == 1 and r.stderr.startswith("Logged out.\nLog in at: https://login.tailscale.com/a/")
    fake.set_backend_state("Running")
    fake.set_daemon_running(False)
    r = fake.run("status", "--json")
    assert (
        r.returncode == 1
        and "failed to connect to local tailscaled; it doesn't appear to be running" in r.stderr
    )
    r = fake.run("serve", "status", "--json")
    assert (
        r.returncode == 1
        and "Failed to connect to local Tailscale daemon for /localapi/v0/serve-config" in r.stderr
    )
    fake.set_daemon_running(True)
    fake.set_version("1.50.1")
    r = fake.run("serve", "--bg", "--yes", "18789")
    assert r.returncode == 2 and r.stderr.startswith("flag provided but not defined: -bg\n")
    assert ok(fake, "version").startswith("1.50.1\n")


def test_concurrent_calls_do_not_lose_updates(fake: FakeTailscale) -> None:
    results: list[subprocess.CompletedProcess[str]] = []
    ports = [8443, 10000, 9001, 9002, 9003, 9004]

    def one(port: int) -> None:
        results.append(fake.run("serve", "--bg", "--yes", f"--https={port}", str(20000 + port)))

    threads = [threading.Thread(target=one, args=(p,)) for p in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert sorted(int(p) for p in fake.serve_config()["TCP"]) == sorted(ports)  # type: ignore[index]


def test_tcp_paths_legacy_hint_and_access_denied(fake: FakeTailscale) -> None:
    ok(fake, "serve", "--bg", "--tcp=2222", "tcp://localhost:22")
    ok(fake, "serve", "--bg", "--set-path=/api", "--https=8443", "localhost:3000")
    ok(fake, "serve", "--bg", "--https=8443", "text:hello")
    sc = fake.serve_config()
    assert sc is not None
    assert sc["TCP"]["2222"] == {"TCPForward": "localhost:22"}
    assert sc["Web"][f"{DNS}:8443"]["Handlers"] == {
        "/": {"Text": "hello"},
        "/api": {"Proxy": "http://localhost:3000"},
    }
    r = fake.run("serve", "--bg", "--https=2222", "3000")
    assert (
        r.returncode == 1
        and r.stderr == 'want to serve "https" but port is already serving "tcp" for "machine"\n'
    )
    r = fake.run("serve", "--https=8443", "off")  # two handlers: asks, stdin says no
    assert (
        r.returncode == 0 and "Are you sure you want to delete 2 handlers under port 8443? [y/N]" in r.stdout
    )
    assert f"{DNS}:8443" in fake.serve_config()["Web"]  # type: ignore[index]
    r = fake.run("serve", "https:443", "/", "http://127.0.0.1:18789")
    assert r.returncode == 1 and "\t- tailscale serve --bg http://127.0.0.1:18789\n" in r.stderr
    fake.set_access_denied(True)
    r = fake.run("serve", "--bg", "18789")
    assert r.returncode == 1 and r.stderr.startswith(
        "Access denied: serve config denied\n\nUse 'sudo tailscale serve --bg 18789'."
    )
    assert f"{DNS}:443" not in fake.serve_config()["Web"]  # type: ignore[index]
