"""The tunnel engine against a real OpenSSH sshd and a real clawd-gateway behind it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.support.holder import answers, holder_process
from tests.support.relay import relay
from tests.support.servers import free_port
from tests.support.supervisor import ssh_profile, supervised
from tests.support.wsclient import handshake

from clawd_client.engine.ports import check_port
from clawd_client.profiles import Profile, SshTarget

TOKEN = "s3cret-token-for-tests-0123456789"


def profile_for(sshd, gateway, **changes) -> Profile:
    return replace(ssh_profile(sshd, gateway.port, free_port()), **changes)


def test_healthy_through_the_tunnel(sshd, gateway):
    p = profile_for(sshd, gateway)
    with supervised(p, TOKEN) as w:
        st = w.wait_state("healthy", 15)
        assert st["local_url"] == f"ws://127.0.0.1:{p.local_port}" and st["latency_ms"] > 0
        assert st["server"]["version"]
        # A real client through the forwarded port.
        ws, _, res = handshake(st["local_url"], TOKEN)
        with ws:
            assert res["ok"]


def test_session_killed_heals_without_user_action(sshd, gateway):
    with supervised(profile_for(sshd, gateway), TOKEN) as w:
        w.wait_state("healthy", 15)
        mark = w.mark()
        assert sshd.kill_sessions()
        w.wait_from(mark, lambda s: s["state"] != "healthy", 30, "leaving healthy")
        st = w.wait_from(mark, lambda s: s["state"] == "healthy", 60, "healthy again")
        assert st["reconnects"] >= 1


def test_sshd_down_then_back(sshd, gateway):
    with supervised(profile_for(sshd, gateway), TOKEN) as w:
        w.wait_state("healthy", 15)
        mark = w.mark()
        sshd.stop()  # the master first, so nothing can accept a reconnect...
        sshd.kill_sessions()  # ...then the live session: the server is gone
        down = w.wait_from(mark, lambda s: s["state"] in ("backoff", "connecting"), 30, "tunnel down")
        assert down["state"] in ("backoff", "connecting")
        w.wait_from(
            mark,
            lambda s: s["state"] == "backoff" and "failed" in (s["last_error"] or ""),
            30,
            "a failed reconnect attempt",
        )
        sshd.start()
        # A generous deadline, not a bound: the backoff cap is 30 s (its timing is in bench/).
        st = w.wait_from(w.mark(), lambda s: s["state"] == "healthy", 90, "healthy after sshd restart")
        assert st["reconnects"] >= 1


def test_silent_link_is_detected_by_keepalive_and_heals(sshd, gateway):
    """A frozen link (both sockets open, no bytes moving) is noticed by the SSH keepalive, the
    only thing that can notice it, and healed once bytes flow again. How soon it is noticed is a
    figure in bench/tunnel_bench.py row (4) and bench/timings_bench.py, not a bound here."""
    with relay(sshd.port) as r:
        known = sshd.write_known_hosts(port=r.port)
        p = profile_for(sshd, gateway)
        p = replace(p, ssh=replace(p.ssh, port=r.port, known_hosts=str(known)))
        with supervised(p, TOKEN) as w:
            w.wait_state("healthy", 15)
            mark = w.mark()
            r.freeze()
            st = w.wait_from(mark, lambda s: s["state"] != "healthy", 60, "dead link detected")
            assert st["state"] in ("connecting", "backoff"), st
            assert "not responding to keepalive" in (st["last_error"] or ""), st
            r.thaw()
            r.cut()
            w.wait_from(mark, lambda s: s["state"] == "healthy", 40, "healthy after thaw")


def test_wrong_key_is_fatal_and_clear(sshd, gateway):
    bad = sshd.make_client_key("intruder", authorized=False)
    p = profile_for(sshd, gateway)
    p = replace(p, ssh=replace(p.ssh, identity=str(bad)))
    with supervised(p, TOKEN) as w:
        st = w.wait_state("fatal", 15)
        assert "authentication" in st["last_error"] and "refused" in st["last_error"]
        assert str(bad) in st["last_error"]


def test_changed_host_key_is_refused(sshd, gateway):
    sshd.regenerate_host_key()  # known_hosts still holds the old key
    with supervised(profile_for(sshd, gateway), TOKEN) as w:
        st = w.wait_state("fatal", 15)
        assert "REMOTE HOST KEY CHANGED" in st["last_error"]
        assert "ssh-keygen -R" in st["last_error"]
        assert type(w.sup.last_cause).__name__ == "HostKeyChanged"


def test_unknown_host_key_needs_accept_new(sshd, gateway, tmp_path):
    empty = tmp_path / "known_hosts"
    p = profile_for(sshd, gateway)
    p = replace(p, ssh=replace(p.ssh, known_hosts=str(empty)))
    with supervised(p, TOKEN) as w:
        st = w.wait_state("fatal", 15)
        assert "not known yet" in st["last_error"] and "SHA256:" in st["last_error"]
    assert not empty.exists()
    with supervised(p, TOKEN, accept_new=True) as w:
        w.wait_state("healthy", 15)
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519" in empty.read_text()
    # And now it is known: no --accept-new needed any more.
    with supervised(p, TOKEN) as w:
        w.wait_state("healthy", 15)


def test_gateway_down_and_wrong_secret_are_distinguished(sshd, make_gateway):
    gw = make_gateway(token=TOKEN)
    p = profile_for(sshd, gw)
    with supervised(p, "WRONG-token-value-000") as w:
        st = w.wait_from(0, lambda s: s["state"] == "degraded", 15, "degraded")
        assert st["degraded"] == "gateway-auth-rejected" and "token mismatch" in st["last_error"]
        assert st["detail_code"] == "AUTH_TOKEN_MISMATCH"
    gw.stop()
    with supervised(p, TOKEN) as w:
        st = w.wait_from(0, lambda s: s["state"] == "degraded", 15, "degraded")
        assert st["degraded"] == "gateway-unreachable"


def test_foreign_port_holder_is_named_and_never_killed(sshd, gateway, tmp_path):
    """The holder is another process (a kill could reach it), which answers after the tunnel
    is up: it was never signalled, and it still holds its port."""
    port = free_port()
    with holder_process(tmp_path, port, "webserver.py", "--port", str(port)) as holder:
        p = replace(profile_for(sshd, gateway), local_port=port)
        with supervised(p, TOKEN) as w:
            st = w.wait_state("healthy", 20)
            assert st["local_url"] != f"ws://127.0.0.1:{port}"  # moved aside...
            assert f"pid {holder.pid}" in st["note"] and str(port) in st["note"]  # ...naming the holder
        assert answers(holder), "the foreign holder was signalled or is gone"
        assert [h.pid for h in check_port(port).holders] == [holder.pid]


def test_live_tunnel_to_same_gateway_is_reused(sshd, gateway):
    p = profile_for(sshd, gateway)
    with supervised(replace(p, name="first"), TOKEN) as first:
        first.wait_state("healthy", 15)
        with supervised(replace(p, name="second"), TOKEN) as second:
            st = second.wait_state("healthy", 15)
            assert st["local_url"] == f"ws://127.0.0.1:{p.local_port}"
            assert "reus" in (st["note"] or "")
            assert second.sup._tunnel is None  # no second SSH connection


@pytest.mark.parametrize("bad", ["ssh to nowhere"])
def test_unresolvable_host_backs_off_not_fatal(gateway, bad, tmp_path):
    p = Profile(
        name="nx",
        ssh=SshTarget(host="nonexistent.invalid", port=22, known_hosts=str(tmp_path / "kh")),
        remote_port=gateway.port,
        local_port=free_port(),
    )
    with supervised(p, TOKEN) as w:
        st = w.wait_state("backoff", 15)
        assert "nonexistent.invalid" in st["last_error"]
