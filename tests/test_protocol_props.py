"""Property tests for the sans-I/O protocol: hostile input never crashes it and never
reaches a method before authentication."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clawd_gateway.protocol import server as proto
from clawd_gateway.protocol.client import ClientConnection, ProtocolViolation
from clawd_gateway.protocol.frames import ErrorShape

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)

# Frames shaped like the protocol, so the fuzzer gets past the first checks often.
near_frames = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["req", "res", "event", "connect", ""]),
        "id": st.one_of(st.text(max_size=8), st.integers(), st.none()),
        "method": st.sampled_from(["connect", "health", "status", "", "system-presence"])
        | st.text(max_size=8),
        "params": json_values
        | st.fixed_dictionaries(
            {
                "minProtocol": st.integers(-1, 6),
                "maxProtocol": st.integers(-1, 6),
                "client": st.fixed_dictionaries(
                    {
                        "id": st.sampled_from(["cli", "x"]),
                        "version": st.text(max_size=3),
                        "platform": st.text(max_size=3),
                        "mode": st.sampled_from(["cli", "z"]),
                    }
                ),
                "auth": json_values,
                "role": st.sampled_from(["operator", "node", "admin"]),
                "device": json_values,
            }
        ),
    },
)

inputs = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    json_values.map(json.dumps),
    near_frames.map(json.dumps),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(inputs, min_size=1, max_size=6))
def test_server_machine_never_dispatches_before_accept(frames):
    conn = proto.ServerConnection(nonce="n", now_ms=0)
    conn.start()
    for frame in frames:
        actions = conn.receive(frame)
        for action in actions:
            assert not isinstance(action, proto.RequestReceived)
            if isinstance(action, proto.Send):
                f = action.frame
                assert f["type"] == "res" and isinstance(f["id"], str) and f["id"]
                assert f["error"]["code"] and f["error"]["message"]
            if isinstance(action, proto.Close):
                assert len(action.reason.encode()) <= 120
        if conn.state is proto.ConnState.AUTHENTICATING:
            # Until the adapter decides, nothing else may pass either.
            assert all(
                not isinstance(a, proto.RequestReceived)
                for a in conn.receive('{"type":"req","id":"1","method":"health"}')
            )
            break
        if conn.state is proto.ConnState.CLOSED:
            assert conn.receive('{"type":"req","id":"1","method":"health"}') == []
            break


@settings(max_examples=300)
@given(st.lists(inputs, min_size=1, max_size=6))
def test_open_connection_answers_everything_with_wellformed_frames(frames):
    conn = proto.ServerConnection(nonce="n", now_ms=0)
    conn.start()
    conn.receive(
        json.dumps(
            {
                "type": "req",
                "id": "c",
                "method": "connect",
                "params": {
                    "minProtocol": 4,
                    "maxProtocol": 4,
                    "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"},
                },
            }
        )
    )
    assert conn.state is proto.ConnState.AUTHENTICATING
    conn.accept({"type": "hello-ok"})
    for frame in frames:
        for action in conn.receive(frame):
            assert isinstance(action, proto.Send | proto.RequestReceived)
            if isinstance(action, proto.Send):
                assert action.frame["ok"] is False and action.frame["id"]
    assert conn.state is proto.ConnState.OPEN


def test_reject_closes_with_truncated_reason():
    conn = proto.ServerConnection(nonce="n", now_ms=0)
    conn.receive(
        json.dumps(
            {
                "type": "req",
                "id": "c",
                "method": "connect",
                "params": {
                    "minProtocol": 3,
                    "maxProtocol": 4,
                    "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"},
                },
            }
        )
    )
    actions = conn.reject(ErrorShape("INVALID_REQUEST", "é" * 200))
    close = actions[-1]
    assert isinstance(close, proto.Close) and close.code == 1008
    assert len(close.reason.encode()) <= 120
    close.reason.encode().decode("utf-8")  # never a split UTF-8 sequence


@settings(max_examples=300)
@given(st.lists(inputs, min_size=1, max_size=5))
def test_client_machine_never_raises(frames):
    client = ClientConnection(token="t")
    for frame in frames:
        outs = client.receive(frame)
        assert isinstance(outs, list)
        for out in outs:
            if isinstance(out, ProtocolViolation):
                assert out.message
