"""Following a real agent from a test: its state stream with deadlines, and the gateway protocol
through a tunnel's local port."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.support.wsclient import connect_params, open_ws, recv_json, send_req, wait_res

from clawd_client import api
from clawd_client.engine import TunnelStatus


def gateway_health(url: str, token: str, open_timeout: float = 10.0) -> dict[str, Any]:
    """The real protocol through the local port: challenge, connect with the token, `health`."""
    ws = open_ws(url, open_timeout=open_timeout)
    try:
        recv_json(ws, 30)
        hello = wait_res(ws, send_req(ws, "connect", connect_params(token)), 30)
        assert hello.get("ok"), hello
        return wait_res(ws, send_req(ws, "health"), 30)
    finally:
        ws.close()


def wait_state(
    pred: Callable[[TunnelStatus], bool], name: str, timeout: float = 30.0, what: str = "state"
) -> TunnelStatus:
    """Follow the agent's state stream until `name` satisfies `pred` (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    last = None
    with api.AgentClient.connect() as client:
        for st in client.subscribe():
            if st.profile == name:
                last = st
                if pred(st):
                    return st
        while time.monotonic() < deadline and not client.closed:
            for st in client.events(timeout=max(0.1, deadline - time.monotonic())):
                if st.profile == name:
                    last = st
                    if pred(st):
                        return st
                if time.monotonic() >= deadline:
                    break
    raise AssertionError(f"{name}: timed out waiting for {what}; last: {last}")
