"""Three ways into one real gateway behind one profile: SSH over a real sshd, a tailscale path
(the `tailscale` test double plus a TLS front standing where Tailscale Serve would), and a direct
URL through a freezable relay. Each path is killed, frozen and restored in turn through a real
agent; new clients must be carried by a healthy path, clients arriving while none is healthy
must be held (never refused), and new connections must come back to the preferred path.

Which path carried a client is not guessed from counters (the paths' own health probes pass
through the same relays at any moment): every test client sends a random marker header in its
WebSocket upgrade, and each path ends in its own tap relay in front of the gateway that notes
the markers it relayed:

    local port -> ssh       -> sshd -forward-> ssh tap    -> gateway
               -> tailscale -> TLS front     -> tailnet tap -> gateway
               -> direct    -> direct tap (the freezable relay) -> gateway

Each client checks its bytes end to end: the gateway's challenge, connect with the token, and a
`health` request whose id is a large random string that must come back byte for byte.
Waits follow the agent's state stream with deadlines; nothing sleeps and nothing asserts time.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.agentwatch import wait_state
from tests.support.clientcli import clawd
from tests.support.fake_tailscale import FakeTailscale
from tests.support.relay import Relay
from tests.support.servers import free_port
from tests.support.tls_front import TlsFront, tls_front
from tests.support.wsclient import connect_params, open_ws, recv_json, send_req

from clawd_client import api
from clawd_client.engine import TunnelStatus, paths

NAME = "gw.tail1234.ts.net"
TOKEN = "s3cret-token-for-tests-0123456789"  # the `gateway` fixture's
MARK = re.compile(rb"x-clawd-client: ([0-9a-f]{32})", re.IGNORECASE)
BULK_CHARS = 512 * 1024  # the echoed request id: half a MiB each way through the path


# --- taps: which path carried which client ---------------------------------------------------------


class _TappedReader:
    """The client side of a relayed connection, noting the markers in what it reads."""

    def __init__(self, reader: asyncio.StreamReader, seen: list[str]) -> None:
        self._reader = reader
        self._seen = seen

    async def read(self, n: int) -> bytes:
        data = await self._reader.read(n)
        self._seen.extend(m.decode() for m in MARK.findall(data))
        return data


class Tap(Relay):
    """A freezable relay that also remembers the test clients it carried."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.clients: list[str] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await super()._handle(_TappedReader(reader, self.clients), writer)  # type: ignore[arg-type]


def exchange(url: str, token: str, open_timeout: float = 10.0) -> str:
    """One new client through `url`, checked byte for byte; returns its marker."""
    marker = secrets.token_hex(16)
    ws = open_ws(url, open_timeout=open_timeout, additional_headers={"X-Clawd-Client": marker})
    try:
        challenge = recv_json(ws, 30)
        assert challenge.get("event") == "connect.challenge", challenge
        rid = send_req(ws, "connect", connect_params(token))
        hello = next_res(ws)
        assert hello["id"] == rid and hello["ok"], hello
        bulk = secrets.token_urlsafe(BULK_CHARS)[:BULK_CHARS]
        res = next_res(ws, send_req(ws, "health", req_id=bulk))
        assert res["id"] == bulk, "the echoed id came back different"
        assert res["ok"] and res["payload"]["ok"] is True, {k: v for k, v in res.items() if k != "id"}
    finally:
        ws.close()
    return marker


def next_res(ws: Any, rid: str | None = None) -> dict[str, Any]:
    """The next `res` frame (events skipped); it must answer `rid` when given."""
    while True:
        frame = recv_json(ws, 30)
        if frame.get("type") == "res":
            assert rid is None or frame.get("id") == rid, "a response to another request"
            return frame


# --- the parts -------------------------------------------------------------------------------------


class Ways:
    """The gateway's three ways in, and who carried each client."""

    def __init__(self, ssh_tap: Tap, ts_tap: Tap, direct: Tap, serve: TlsFront, fake: FakeTailscale) -> None:
        self.ssh_tap = ssh_tap
        self.ts_tap = ts_tap
        self.direct = direct
        self.serve = serve
        self.fake = fake

    def carrier(self, marker: str) -> str:
        seen = [
            name
            for name, tap in (("ssh", self.ssh_tap), ("tailscale", self.ts_tap), ("direct", self.direct))
            if marker in tap.clients
        ]
        assert len(seen) == 1, f"client {marker} went through {seen or 'no path'}"
        return seen[0]

    def peer_online(self, online: bool) -> None:
        self.fake.add_peer("gw", ["127.0.0.1"], dns_name=NAME + ".", online=online)


@pytest.fixture
def ways(tmp_path: Path, gateway) -> Iterator[Ways]:
    fake = FakeTailscale.create(tmp_path)
    fake.set_self(hostname="laptop", ips=["100.64.0.7", "fd7a:115c:a1e0::7"])
    fake.add_peer("gw", ["127.0.0.1"], dns_name=NAME + ".")
    taps = [Tap(gateway.port).start() for _ in range(3)]
    try:
        with tls_front(tmp_path / "tls", taps[1].port, [NAME]) as serve:
            yield Ways(taps[0], taps[1], taps[2], serve, fake)
    finally:
        for tap in taps:
            tap.close()
        fake.close()


@pytest.fixture
def env(client_env: dict[str, str], ways: Ways) -> dict[str, str]:
    env = {**client_env, **ways.fake.env}
    env.pop(paths.ts.SOCKET_ENV, None)  # the CLI face of the double, not a LocalAPI socket
    return env


def add_three_paths(env, sshd, ways: Ways, order: str | None = None, name: str = "mp") -> str:
    """`clawd profile add` with --ssh, --tailscale and --url; returns the local URL."""
    port = free_port()
    args = [
        "profile",
        "add",
        name,
        "--ssh",
        f"{sshd.user}@127.0.0.1:{sshd.port}",
        "--identity",
        str(sshd.client_key_path),
        "--known-hosts",
        str(sshd.known_hosts),
        "--remote-port",
        str(ways.ssh_tap.port),
        "--tailscale",
        NAME,
        "--serve",
        "--port",
        str(ways.serve.port),
        "--url",
        f"ws://127.0.0.1:{ways.direct.port}",
        "--local-port",
        str(port),
    ]
    if order:
        args += ["--order", order]
    r = clawd(args, env)
    shown = " → ".join((order or "ssh,tailscale,direct").split(","))
    assert r.returncode == 0 and f"paths: {shown}" in r.stdout, r.stdout + r.stderr
    # The token: the keyring path is covered by test_multipath; this one is about the paths.
    assert clawd(["secret", "set", name], env, input=TOKEN + "\n").returncode == 0
    # Test pace: the file's own fields (failback default 30 s, probe every 15 s); a frozen relay
    # is noticed only by a failed health probe, so probe often.
    store = Path(env["CLAWD_CONFIG_DIR"]) / "profiles.json"
    data = json.loads(store.read_text())
    for entry in data["profiles"]:
        if entry["name"] == name:
            entry.update(failback=2.0, probe_interval=0.5)
            # The test CA for the tailscale path only: `--ca-file` would go to every URL path,
            # and the direct one is plain ws:// (refused: "ca_file only applies to wss:// URLs").
            for way in (entry, *entry["alternates"]):
                if way["method"] == "tailscale":
                    way["ca_file"] = str(ways.serve.ca.ca_file)
    store.write_text(json.dumps(data))
    return f"ws://127.0.0.1:{port}"


class ActiveLog:
    """Every `active_path` the agent published for a profile, in order, from the state stream."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[str | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._ready = threading.Event()

    def _note(self, st: TunnelStatus) -> None:
        if st.profile == self.name and (not self.seen or self.seen[-1] != st.active_path):
            self.seen.append(st.active_path)

    def _follow(self) -> None:
        with api.AgentClient.connect() as client:
            for st in client.subscribe():
                self._note(st)
            self._ready.set()
            while not self._stop.is_set() and not client.closed:
                for st in client.events(timeout=0.2):
                    self._note(st)

    def __enter__(self) -> ActiveLog:
        self._thread.start()
        assert self._ready.wait(10), "could not follow the agent's state stream"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def all_healthy(st: TunnelStatus) -> bool:
    return all(p.state == "healthy" for p in st.paths)


def path_state(st: TunnelStatus, name: str) -> str:
    return next(p.state for p in st.paths if p.path == name)


# --- the tests -------------------------------------------------------------------------------------


def test_three_paths_fail_over_in_turn_hold_while_none_is_up_and_fail_back_in_order(env, sshd, ways):
    url = add_three_paths(env, sshd, ways)
    assert clawd(["up", "mp"], env).returncode == 0
    st = wait_state(lambda s: s.active_path == "ssh" and all_healthy(s), "mp", what="three paths up")
    assert [p.path for p in st.paths] == ["ssh", "tailscale", "direct"]
    assert ways.carrier(exchange(url, TOKEN)) == "ssh"

    with ActiveLog("mp") as log:
        sshd.crash()  # SSH: the server goes away
        st = wait_state(lambda s: s.active_path == "tailscale", "mp", what="failover to tailscale")
        assert path_state(st, "ssh") != "healthy"
        assert ways.carrier(exchange(url, TOKEN)) == "tailscale"

        ways.peer_online(False)  # tailscale: the gateway's node drops off the tailnet
        st = wait_state(lambda s: s.active_path == "direct", "mp", what="failover to direct")
        assert path_state(st, "tailscale") != "healthy" and path_state(st, "ssh") != "healthy"
        assert ways.carrier(exchange(url, TOKEN)) == "direct"

        ways.direct.freeze()  # direct: a silent dead link, only a failed probe notices it
        wait_state(lambda s: s.active_path is None, "mp", what="no healthy path left")
        held: dict[str, Any] = {}

        def client() -> None:
            try:
                held["marker"] = exchange(url, TOKEN, open_timeout=60)
            except BaseException as exc:  # reported by the assertion below
                held["error"] = repr(exc)

        waiting = threading.Thread(target=client, daemon=True)
        waiting.start()
        wait_state(lambda s: s.held >= 1, "mp", what="the new client held")
        ways.direct.thaw()  # the direct path comes back first
        waiting.join(60)
        assert not waiting.is_alive() and "error" not in held, held
        assert ways.carrier(held["marker"]) == "direct"  # held, then carried whole, not refused
        st = wait_state(lambda s: s.active_path == "direct" and s.held == 0, "mp", what="direct again")

        ways.peer_online(True)  # tailscale back: preferred over direct once healthy for `failback`
        wait_state(lambda s: s.active_path == "tailscale", "mp", what="failback to tailscale")
        assert ways.carrier(exchange(url, TOKEN)) == "tailscale"

        sshd.start()
        st = wait_state(lambda s: s.active_path == "ssh" and all_healthy(s), "mp", what="failback to ssh")
        assert ways.carrier(exchange(url, TOKEN)) == "ssh"

    # Over the whole run new connections took exactly these paths, one switch per event: no
    # flapping, and back in preference order (tailscale before ssh, each when it came back).
    assert log.seen == ["ssh", "tailscale", "direct", None, "direct", "tailscale", "ssh"], log.seen


KILLS = {
    # path first in --order: (kill it, restore it)
    "ssh": (lambda sshd, w: sshd.crash(), lambda sshd, w: sshd.start()),
    "tailscale": (
        lambda sshd, w: w.fake.set_daemon_running(False),
        lambda sshd, w: w.fake.set_daemon_running(True),
    ),
    "direct": (lambda sshd, w: w.direct.freeze(), lambda sshd, w: w.direct.thaw()),
}
ORDERS = {
    "ssh": "ssh,direct,tailscale",
    "tailscale": "tailscale,ssh,direct",
    "direct": "direct,tailscale,ssh",
}


@pytest.mark.parametrize("first", list(KILLS))
def test_the_active_path_dies_the_next_takes_new_clients_and_gives_them_back(env, sshd, ways, first):
    order = ORDERS[first]
    standby = order.split(",")[1]
    kill, restore = KILLS[first]
    url = add_three_paths(env, sshd, ways, order=order)
    assert clawd(["up", "mp"], env).returncode == 0
    wait_state(lambda s: s.active_path == first and all_healthy(s), "mp", what="three paths up")
    assert ways.carrier(exchange(url, TOKEN)) == first

    with ActiveLog("mp") as log:
        kill(sshd, ways)
        st = wait_state(lambda s: s.active_path == standby, "mp", what=f"failover to {standby}")
        assert path_state(st, first) != "healthy"
        markers = [exchange(url, TOKEN) for _ in range(3)]
        assert [ways.carrier(m) for m in markers] == [standby] * 3

        restore(sshd, ways)
        wait_state(lambda s: s.active_path == first and all_healthy(s), "mp", what=f"failback to {first}")
        assert ways.carrier(exchange(url, TOKEN)) == first

    assert log.seen == [first, standby, first], log.seen
    listed = json.loads(clawd(["status", "mp", "--json"], env).stdout)["tunnels"][0]
    assert listed["active_path"] == first
    assert [p["path"] for p in listed["paths"]] == order.split(",")
    assert all(p["state"] == "healthy" for p in listed["paths"])
