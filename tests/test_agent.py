"""The clawd agent as a user runs it: a real detached process started by `clawd up`, a real sshd, a
real clawd-gateway and a real keyring. Held connections are checked byte for byte through an sshd
outage; the control socket refuses another uid; a restarted agent brings its tunnels back."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import socket
import tempfile
import threading
from pathlib import Path

import psutil
import pytest
from tests.support.agentwatch import gateway_health, wait_state
from tests.support.clientcli import add_ssh_profile, agent_pid, clawd

from clawd_client import api
from clawd_client.paths import agent_socket

TOKEN = "agent-test-token-0123456789abcdef"


def add_profile(env, sshd, remote_port: int, name: str, *extra: str, token: str = TOKEN) -> int:
    return add_ssh_profile(env, sshd, remote_port, name, *extra, token=token)

class EchoServer:
    """A TCP echo server on loopback, the 'gateway port' for byte-for-byte checks."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # a reset from the far side just ends this one
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def echo():
    server = EchoServer()
    yield server
    server.close()


def test_status_without_an_agent_says_so_plainly(client_env):
    r = clawd(["status"], client_env)
    assert r.returncode == 3 and "no clawd agent is running" in r.stdout, r.stdout + r.stderr
    r = clawd(["status", "--json"], client_env)
    assert r.returncode == 3 and json.loads(r.stdout) == {"agent": None, "tunnels": []}


def test_up_down_and_the_agent_outlives_the_command(client_env, sshd, gateway):
    env = client_env
    port = add_profile(env, sshd, gateway.port, "vps", token=gateway.token)
    r = clawd(["up", "vps"], env)
    assert r.returncode == 0 and "vps: healthy" in r.stdout, r.stdout + r.stderr
    pid = agent_pid(env)
    assert pid is not None and psutil.pid_exists(pid)  # the command is gone; the agent stays
    assert gateway_health(f"ws://127.0.0.1:{port}", gateway.token)["ok"] is True

    st = json.loads(clawd(["status", "vps", "--json"], env).stdout)["tunnels"][0]
    assert st["state"] == "healthy" and st["pid"] == pid and st["local_url"] == f"ws://127.0.0.1:{port}"

    again = clawd(["agent", "--foreground"], env, timeout=30)
    assert again.returncode == 75, again.stdout + again.stderr  # not a crash: no restart loop in systemd
    assert f"pid {pid}" in again.stderr and str(agent_socket()) in again.stderr

    r = clawd(["down", "vps"], env)
    assert r.returncode == 0 and "down: vps" in r.stdout
    with pytest.raises(OSError):  # the port is free again: nothing listens
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    r = clawd(["status"], env)
    assert r.returncode == 3 and "no tunnel is up" in r.stdout


def _held_echo(port: int, payload: bytes, out: dict[int, bytes], i: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(payload)  # sent while the path is down: the bytes wait, in order
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while chunk := s.recv(65536):
            got += chunk
        out[i] = bytes(got)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_connections_are_held_through_an_sshd_outage_byte_for_byte(client_env, sshd, gateway, echo, loop):
    """On both event loops the agent can run on (uvloop when installed, the default then)."""
    env = dict(client_env, CLAWD_LOOP=loop)
    gw_port = add_profile(env, sshd, gateway.port, "gw", token=gateway.token)
    echo_port = add_profile(env, sshd, echo.port, "echo")
    assert clawd(["up", "gw"], env).returncode == 0
    assert json.loads(clawd(["status", "--json"], env).stdout)["agent"]["loop"] == loop
    assert clawd(["up", "echo", "--no-wait"], env).returncode == 0
    wait_state(lambda s: s.active_path == "ssh", "echo", what="the echo path up")

    sshd.crash()  # the SSH link dies and no login is possible; the ports must stay bound
    for name in ("gw", "echo"):
        wait_state(lambda s: s.state in ("backoff", "connecting"), name, what="the outage noticed")

    payloads = {i: os.urandom(20_000 + i * 997) for i in range(12)}
    results: dict[int, bytes] = {}
    threads = [
        threading.Thread(target=_held_echo, args=(echo_port, payloads[i], results, i), daemon=True)
        for i in payloads
    ]
    for t in threads:
        t.start()
    health: dict[str, object] = {}

    def gateway_call() -> None:
        health.update(gateway_health(f"ws://127.0.0.1:{gw_port}", gateway.token, open_timeout=60))

    gw_thread = threading.Thread(target=gateway_call, daemon=True)
    gw_thread.start()
    wait_state(lambda s: s.held >= 1, "gw", what="the gateway client held")

    sshd.start()
    for t in [*threads, gw_thread]:
        t.join(60)
    assert results == payloads  # every byte, in order, on every held connection
    assert health.get("ok") is True
    st = wait_state(lambda s: s.state == "healthy", "gw", what="healthy again")
    assert st.held == 0 and st.reconnects >= 1


def test_an_unknown_event_loop_choice_is_named(client_env):
    r = clawd(["agent", "--foreground"], dict(client_env, CLAWD_LOOP="fast"), timeout=30)
    assert r.returncode != 0 and "CLAWD_LOOP='fast': use auto, uvloop or asyncio" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_hold_zero_refuses_at_once_while_the_path_is_down(client_env, sshd, echo):
    env = client_env
    port = add_profile(env, sshd, echo.port, "strict", "--hold", "0")
    assert clawd(["up", "strict", "--no-wait"], env).returncode == 0
    wait_state(lambda s: s.active_path == "ssh", "strict", what="the path up")
    sshd.crash()
    wait_state(lambda s: s.state in ("backoff", "connecting"), "strict", what="the outage noticed")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.settimeout(10)
        assert s.recv(1) == b""  # accepted (the port stays ours) and closed at once


def _connect_as(user: str, path: Path) -> str:
    """Open the agent socket as another account, in a forked child; what the child saw."""
    pw = pwd.getpwnam(user)
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read_fd)
        try:
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(str(path))
                s.sendall(b'{"v": 1, "id": 1, "op": "status"}\n')
                verdict = "closed" if s.recv(65536) == b"" else "answered"
        except (ConnectionResetError, BrokenPipeError):  # closed before or after our request: no answer
            verdict = "closed"
        except OSError as exc:
            verdict = f"error {exc.errno}"
        os.write(write_fd, verdict.encode())
        os._exit(0)
    os.close(write_fd)
    os.waitpid(child, 0)
    with os.fdopen(read_fd, "rb") as fh:
        return fh.read().decode()


def test_the_control_socket_refuses_another_uid(client_env, monkeypatch):
    # A runtime dir under /tmp, so that the test can open the modes up below (tmp_path is 0700).
    run_dir = Path(tempfile.mkdtemp(prefix="clawd-run-"))
    env = dict(client_env, CLAWD_RUNTIME_DIR=str(run_dir))
    monkeypatch.setenv("CLAWD_RUNTIME_DIR", str(run_dir))
    try:
        r = clawd(["agent"], env)
        assert r.returncode == 0 and "clawd agent started" in r.stdout, r.stdout + r.stderr
        path = agent_socket()
        assert path.parent == run_dir
        assert path.stat().st_mode & 0o777 == 0o600 and run_dir.stat().st_mode & 0o777 == 0o700
        assert _connect_as("nobody", path) == "error 13"  # the 0700 directory keeps it out
        # Even with the modes opened up, the peer-credential check closes the door before any request.
        os.chmod(run_dir, 0o755)  # noqa: S103  (deliberately open: the test is about the uid check)
        os.chmod(path, 0o777)  # noqa: S103
        assert _connect_as("nobody", path) == "closed"
        nobody = pwd.getpwnam("nobody").pw_uid
        log = Path(env["CLAWD_STATE_DIR"]) / "client" / "agent.log"
        assert f"refused a control connection from uid {nobody}" in log.read_text()
        with api.AgentClient.connect() as client:  # the same uid still gets answers
            assert client.request("hello")["agent"]["api"] == 1
    finally:
        clawd(["agent", "--stop"], env)


def test_a_restarted_agent_brings_its_tunnels_back(client_env, sshd, gateway):
    env = client_env
    add_profile(env, sshd, gateway.port, "back", token=gateway.token)
    add_profile(env, sshd, gateway.port, "manual", "--no-autoconnect", token=gateway.token)
    assert clawd(["up", "back", "manual"], env).returncode == 0
    pid = agent_pid(env)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # a crash: no chance to clean up
    psutil.Process(pid).wait(10) if psutil.pid_exists(pid) else None
    r = clawd(["agent"], env)
    assert r.returncode == 0 and "clawd agent started" in r.stdout, r.stdout + r.stderr
    assert agent_pid(env) != pid
    st = wait_state(lambda s: s.state == "healthy", "back", what="back healthy after the restart")
    assert st.pid == agent_pid(env)
    names = [t["profile"] for t in json.loads(clawd(["status", "--json"], env).stdout)["tunnels"]]
    assert names == ["back"]  # `manual` has autoconnect off


def test_subscribers_are_told_when_the_agent_stops_on_purpose(client_env):
    r = clawd(["agent"], client_env)
    assert r.returncode == 0, r.stdout + r.stderr
    with api.AgentClient.connect() as client:
        assert client.subscribe() == []
        assert clawd(["agent", "--stop"], client_env).returncode == 0
        assert list(client.events(timeout=30)) == []
        assert client.closed and client.agent_stopping  # a tray then waits instead of restarting it


def test_a_new_secret_reaches_a_tunnel_that_is_up(client_env, sshd, gateway):
    env = client_env
    add_profile(env, sshd, gateway.port, "vps", token="not-the-gateway-token-0123456789")
    r = clawd(["up", "vps"], env)
    assert r.returncode == 4 and "clawd secret set vps" in r.stderr, r.stdout + r.stderr  # refused
    r = clawd(["secret", "set", "vps"], env, input=gateway.token + "\n")
    assert r.returncode == 0 and "the agent reconnects vps" in r.stdout, r.stdout + r.stderr
    wait_state(lambda s: s.state == "healthy", "vps", what="healthy with the new secret")


def test_down_right_after_up_and_up_right_after_the_agent_stops(client_env, sshd, gateway):
    env = client_env
    add_profile(env, sshd, gateway.port, "vps", token=gateway.token)
    assert clawd(["up", "vps", "--no-wait"], env).returncode == 0
    r = clawd(["down", "vps"], env)  # before its supervisor has even started: it must still stop
    assert r.returncode == 0 and "down: vps" in r.stdout, r.stdout + r.stderr
    first = agent_pid(env)
    assert clawd(["agent", "--stop"], env).returncode == 0
    r = clawd(["up", "vps"], env)  # the old agent may still hold its lock: a new one starts anyway
    assert r.returncode == 0 and "vps: healthy" in r.stdout, r.stdout + r.stderr
    assert agent_pid(env) not in (None, first)
