"""The `direct` method: a ws:// or wss:// gateway URL (e.g. a Tailscale Funnel URL), relayed on the
profile's loopback port, with TLS always verified and plain ws:// off loopback/tailnet refused.

Real parts: a clawd-gateway on loopback with password auth, a TLS front with a test CA in front
of it (what Funnel or a reverse proxy does), the real supervisor, the real `clawd` CLI, a real
Secret Service keyring.
"""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

import pytest
from tests.support.clientcli import clawd, connected
from tests.support.servers import free_port
from tests.support.supervisor import supervised
from tests.support.tls_front import tls_front
from tests.support.wsclient import handshake

from clawd_client.profiles import Profile, ProfileStore

PASSWORD = "funnel-password-for-tests-0123456789"


@pytest.fixture
def pw_gateway(make_gateway):
    return make_gateway(auth="password", password=PASSWORD)


@pytest.fixture
def front(tmp_path, pw_gateway):
    with tls_front(tmp_path / "tls", pw_gateway.port, ["localhost"]) as f:
        yield f


def direct_profile(front, **changes) -> Profile:
    p = Profile(
        name="funnel",
        method="direct",
        url=f"wss://localhost:{front.port}/",
        auth="password",
        ca_file=str(front.ca.ca_file),
        local_port=free_port(),
    )
    return replace(p, **changes)


def test_wss_with_password_is_healthy_through_the_relay(front):
    p = direct_profile(front)
    with supervised(p, PASSWORD) as w:
        st = w.wait_state("healthy", 15)
        assert st["method"] == "direct" and st["local_url"] == f"ws://127.0.0.1:{p.local_port}"
        assert st["relay"] is True and st["upstream"]["tls"] is True
        hops = {h["hop"]: h for h in st["hops"]}
        assert hops["https"]["ok"] and "TLS verified" in hops["https"]["detail"]
        assert hops["relay"]["ok"]
        # Any client configured for the local URL reaches the gateway through TLS.
        ws, _, res = handshake(st["local_url"], None, password=PASSWORD)
        with ws:
            assert res["ok"]
    assert "localhost" in front.connections  # SNI carried the URL's name


def test_without_the_ca_verification_fails_and_says_why(front):
    p = direct_profile(front, ca_file=None)
    with supervised(p, PASSWORD) as w:
        st = w.wait(lambda s: s["state"] == "backoff", 15, "backoff")
        assert "certificate" in st["last_error"]
        https = next(h for h in st["hops"] if h["hop"] == "https")
        assert not https["ok"] and "--ca-file" in https["fix"]


def test_wrong_password_is_degraded_auth(front):
    with supervised(direct_profile(front), "not-the-password-0000") as w:
        st = w.wait(lambda s: s["state"] == "degraded", 15, "degraded")
        assert st["degraded"] == "gateway-auth-rejected"


def test_relay_port_conflict_names_the_holder(front):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with supervised(direct_profile(front, local_port=port), PASSWORD) as w:
            st = w.wait_state("healthy", 20)
            assert st["local_url"] != f"ws://127.0.0.1:{port}"  # moved aside...
            assert "pid" in st["note"] and str(port) in st["note"]  # ...naming who holds the port
        holder.getsockname()  # never killed


def test_loopback_ws_is_allowed_and_relayed(pw_gateway):
    p = Profile(name="lo", method="direct", url=pw_gateway.url, auth="password", local_port=free_port())
    with supervised(p, PASSWORD) as w:
        st = w.wait_state("healthy", 15)
        assert st["local_url"] == f"ws://127.0.0.1:{p.local_port}"
        assert {h["hop"] for h in st["hops"]} == {"tcp", "relay"}


def test_plain_ws_off_the_tailnet_is_refused_and_names_the_flag(tmp_path):
    env = {
        "HOME": str(tmp_path / "home"),
        "CLAWD_CONFIG_DIR": str(tmp_path / "cfg"),
        "CLAWD_STATE_DIR": str(tmp_path / "state"),
        "PATH": "/usr/bin:/bin",  # no tailscale here: the host cannot be a known peer
        "OPENCLAW_GATEWAY_TOKEN": "t-0123456789abcdef",
    }
    r = clawd(["profile", "add", "pub", "--url", "ws://203.0.113.7:18789"], env)
    assert r.returncode == 78 and "--allow-insecure-ws" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "cfg" / "profiles.json").exists()

    # A profile that got in another way (import, an edited file) is refused at connect, before
    # any byte leaves: 203.0.113.7 is TEST-NET-3, nothing would answer anyway.
    ProfileStore(tmp_path / "cfg" / "profiles.json").add(
        Profile(name="pub", method="direct", url="ws://203.0.113.7:18789", local_port=free_port())
    )
    r = clawd(["connect", "pub"], env, timeout=30)
    assert r.returncode == 78 and "--allow-insecure-ws" in r.stderr and "unencrypted" in r.stderr
    d = clawd(["doctor", "pub", "--json"], env)
    report = json.loads(d.stdout)
    assert report["firstBroken"] == "url" and "--allow-insecure-ws" in report["hops"][-1]["fix"]

    r = clawd(["profile", "add", "pub2", "--url", "ws://203.0.113.7:18789", "--allow-insecure-ws"], env)
    assert r.returncode == 0 and "plain ws" in r.stdout
    assert ProfileStore(tmp_path / "cfg" / "profiles.json").get("pub2").allow_insecure_ws


def test_cli_direct_profile_end_to_end(client_env, front):
    env = client_env
    local_port = free_port()
    r = clawd(
        [
            "profile",
            "add",
            "funnel",
            "--url",
            f"wss://localhost:{front.port}/",
            "--ca-file",
            str(front.ca.ca_file),
            "--auth",
            "password",
            "--local-port",
            str(local_port),
        ],
        env,
    )
    assert r.returncode == 0, r.stderr
    assert "TLS verified" in r.stdout
    r = clawd(["secret", "set", "funnel", "--password"], env, input=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr

    # No supervisor running: health and doctor go to the gateway itself.
    h = clawd(["health", "funnel", "--json"], env)
    assert h.returncode == 0 and json.loads(h.stdout)["ok"] is True, h.stdout + h.stderr
    d = clawd(["doctor", "funnel", "--json"], env)
    report = json.loads(d.stdout)
    assert d.returncode == 0 and report["ok"], d.stdout
    assert [hop["hop"] for hop in report["hops"]] == ["profile", "secret", "https", "gateway-auth", "health"]

    with connected("funnel", env) as run:
        st = clawd(["status", "--json"], env)
        tunnel = json.loads(st.stdout)["tunnels"][0]
        assert st.returncode == 0 and tunnel["state"] == "healthy" and tunnel["method"] == "direct"
        assert tunnel["local_url"] == f"ws://127.0.0.1:{local_port}"
        text = clawd(["status"], env).stdout
        assert "[ok ] https" in text and "[ok ] relay" in text
        h = clawd(["health", "funnel", "--json"], env)  # now through the running relay
        assert json.loads(h.stdout)["url"] == f"ws://127.0.0.1:{local_port}"
        assert json.loads(h.stdout)["ok"] is True
        for path in Path(env["CLAWD_CONFIG_DIR"]).rglob("*"):
            assert PASSWORD not in path.read_text(errors="replace")
        for path in Path(env["CLAWD_STATE_DIR"]).rglob("*.json"):
            assert PASSWORD not in path.read_text(errors="replace")
    assert run.returncode == 0
    assert PASSWORD not in run.output


def test_relay_passes_bytes_both_ways_half_closes_and_cuts_on_close():
    """The relay under the ws layer: 1 MiB each way intact, EOF passed on, and closing the relay
    ends its connections (a reconnect must not leave clients on a dead path)."""
    import asyncio
    import os

    from clawd_client.engine.relay import Relay, Upstream

    async def scenario() -> None:
        received = bytearray()
        got_eof = asyncio.Event()

        async def echo_then_more(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                received.extend(data)
            got_eof.set()  # the client's half-close arrived through the relay
            writer.write(b"after-eof:" + str(len(received)).encode())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo_then_more, "127.0.0.1", 0)
        up_port = server.sockets[0].getsockname()[1]
        relay = Relay(Upstream("127.0.0.1", up_port))
        port = await relay.start(0)
        payload = os.urandom(1 << 20)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        reply = await asyncio.wait_for(reader.read(), 10)
        await asyncio.wait_for(got_eof.wait(), 10)
        assert bytes(received) == payload
        assert reply == b"after-eof:" + str(len(payload)).encode()
        writer.close()

        # A live connection is cut when the relay closes.
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        server2 = await asyncio.start_server(hold, "127.0.0.1", 0)
        relay2 = Relay(Upstream("127.0.0.1", server2.sockets[0].getsockname()[1]))
        port2 = await relay2.start(0)
        r2, w2 = await asyncio.open_connection("127.0.0.1", port2)
        w2.write(b"x")
        await w2.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30  # a deadline for the accept, not a bound on its speed
        while not relay2.connections and loop.time() < deadline:
            await asyncio.sleep(0.01)
        assert relay2.connections == 1
        await relay2.close()
        try:
            rest = await asyncio.wait_for(r2.read(), 5)
        except ConnectionResetError:
            rest = b""  # cut with a reset: just as ended
        assert rest == b""
        w2.close()
        for s in (server, server2):
            s.close()
        await relay.close()

    asyncio.run(scenario())
