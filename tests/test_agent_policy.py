"""Pure parts of the agent: the reconnect policy (machine) and the control API's request checks."""

from __future__ import annotations

import json

import pytest

from clawd_client.agent import protocol as p
from clawd_client.engine import Machine, Policy, State
from clawd_client.engine import machine as m
from clawd_client.engine.state import TunnelStatus, worst


def _healthy_at(mach: Machine, snap: m.Snapshot, now: float) -> m.Snapshot:
    snap, _ = mach.step(snap, m.Connected(now))
    snap, _ = mach.step(snap, m.ProbeOk(now, 5.0))
    assert snap.state is State.HEALTHY
    return snap


def test_a_server_restarted_again_and_again_never_pushes_the_backoff_to_its_cap():
    mach = Machine(Policy(), rand=lambda: 1.0)  # the worst jitter: the full ceiling every time
    snap, _ = mach.step(m.Snapshot(), m.Start(0.0))
    now = 0.0
    for _cycle in range(30):
        snap = _healthy_at(mach, snap, now)
        now += 2.0  # healthy for 2 s, then sshd is killed
        snap, actions = mach.step(snap, m.LinkLost(now, "Connection lost"))
        assert snap.state is State.CONNECTING and m.OpenTunnel() in actions  # straight back, no wait
        assert snap.attempts == 0
        for _ in range(4):  # refused while sshd is down: these failures do back off
            snap, _ = mach.step(snap, m.ConnectFailed(now, "refused"))
            assert snap.state is State.BACKOFF
            snap, _ = mach.step(snap, m.Reachable(now + 0.2))  # sshd answers again: connect now
            assert snap.state is State.CONNECTING
        now += 1.0
    assert snap.attempts == 4  # only this outage's failures count, not every earlier one


def test_a_server_that_accepts_and_drops_at_once_still_backs_off():
    mach = Machine(Policy(), rand=lambda: 1.0)
    snap, _ = mach.step(m.Snapshot(), m.Start(0.0))
    delays = []
    now = 0.0
    for _ in range(8):
        snap = _healthy_at(mach, snap, now)
        snap, actions = mach.step(snap, m.LinkLost(now + 0.1, "closed by the server"))  # 0.1 s < flap_guard
        if snap.state is State.BACKOFF:
            assert snap.next_attempt_at is not None
            delays.append(snap.next_attempt_at - (now + 0.1))
            now = snap.next_attempt_at
            snap, _ = mach.step(snap, m.TimerFired(now))
        else:
            snap, _ = mach.step(snap, m.ConnectFailed(now + 0.1, "refused"))
            now += 0.2
            snap, _ = mach.step(snap, m.TimerFired(snap.next_attempt_at or now))
    assert delays == sorted(delays) and delays[-1] >= 8  # growing toward the cap
    assert delays[-1] == pytest.approx(Policy().backoff_cap)  # capped, not beyond


def test_link_lost_from_forwarding_never_healthy_keeps_failed_attempts():
    mach = Machine(Policy(), rand=lambda: 1.0)
    snap = m.Snapshot(state=State.FORWARDING, attempts=3)
    snap, _ = mach.step(snap, m.LinkLost(10.0, "lost"))
    assert snap.state is State.BACKOFF and snap.attempts == 4


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"op": "explode"}', "'op' must be one of"),
        (b'{"v": 2, "op": "status"}', "API version 2"),
        (b'{"op": "up", "profiles": "vps"}', "'profiles'"),
        (b'{"op": "up", "timeout": -1}', "'timeout'"),
        (b'{"op": "up", "local_port": 70000}', "'local_port'"),
        (b'{"op": "down", "all": "yes"}', "'all'"),
        (b'{"op": "status", "id": "x"}', "'id'"),
        (b'{"op": "status", "pad": "' + b"x" * p.MAX_LINE + b'"}', "longer than"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(line, needle):
    with pytest.raises(p.ProtocolError, match=needle):
        p.parse_request(line)


def test_a_request_round_trips_and_replies_are_one_line_each():
    req = p.parse_request(p.encode_request("up", 7, profiles=["a", "b"], accept_new=True, timeout=5))
    assert (req.op, req.id, req.profiles, req.accept_new, req.timeout, req.wait) == (
        "up",
        7,
        ("a", "b"),
        True,
        5.0,
        True,
    )
    for raw in (p.reply(7, x=1), p.error_reply(7, "not-up", "vps is not up", "clawd up vps", 3)):
        assert raw.endswith(b"\n") and raw.count(b"\n") == 1
        assert json.loads(raw)["id"] == 7


def test_the_status_value_survives_the_wire_and_the_glance_shows_the_worst():
    st = TunnelStatus(profile="vps", state="degraded", local_url="ws://127.0.0.1:18789", since=1.0, held=2)
    assert TunnelStatus.from_json(json.loads(json.dumps(st.to_json()))) == st
    assert worst(["healthy", "backoff", "degraded"]) == "degraded"
    assert worst(["healthy", "fatal"]) == "fatal"
    assert worst([]) is None
