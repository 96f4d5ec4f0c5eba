"""Random frames against the real server over a real socket: it must stay up and correct."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.wsclient import handshake, open_ws, recv_json, send_req, wait_res
from websockets.exceptions import ConnectionClosed

TOKEN = "s3cret-token-for-tests-0123456789"

payloads = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300),
    st.recursive(
        st.none() | st.integers() | st.text(max_size=10),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
        max_leaves=10,
    ).map(json.dumps),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=payloads)
def test_first_frame_fuzz_never_authenticates_or_crashes(gateway, first):
    with open_ws(gateway.url) as ws:
        recv_json(ws)
        ws.send(first)
        try:
            while True:
                frame = recv_json(ws, timeout=5)
                # Anything but an error before a valid connect would be a hole.
                assert frame["type"] == "res" and frame["ok"] is False
        except ConnectionClosed:
            pass
    ws, _, res = handshake(gateway.url, TOKEN)
    with ws:
        assert res["ok"] and wait_res(ws, send_req(ws, "health"))["ok"] is True
