"""`clawd setup-remote` against a real "VPS": a fresh local account behind a second real sshd that
reads the account's own ~/.ssh/authorized_keys (StrictModes on), and the real OpenClaw gateway
from npm running as that account (tests/support/vps.py, tests/support/openclaw_peer.py).

The laptop side is the real `clawd` CLI with the real keyring (client_env) and a real agent.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.clientcli import clawd
from tests.support.openclaw_peer import Peer, http_status, minimal_config, show, stop_process
from tests.support.servers import free_port
from tests.support.vps import Vps, admin_key, shared_peer_root, vps_account

SYSTEM_PY = "/usr/bin/python3"  # the account cannot run the checkout's venv
TOKEN = "setup-remote-token-7c1d2e9f4a6b8c0d"


@pytest.fixture
def vps(tmp_path: Path, client_env: dict[str, str]):
    with vps_account(tmp_path) as account:
        account.authorize(admin_key(Path(client_env["HOME"])))
        yield account


def _env(client_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in client_env.items() if k != "SSH_AUTH_SOCK"}
    return env


def _setup(
    vps: Vps, env: dict[str, str], *extra: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return clawd(["setup-remote", vps.target, "--name", "vps", *extra], env, timeout=timeout)


def _start_openclaw(peer: Peer, vps: Vps, port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    """The real gateway as the account, port and token in its own ~/.openclaw/openclaw.json."""
    shared = Peer(shared_peer_root(peer.root))
    state = vps.home / ".openclaw"
    state.mkdir(mode=0o700, exist_ok=True)
    config = minimal_config(vps.home, port)
    config["gateway"]["auth"] = {"mode": "token", "token": TOKEN}  # type: ignore[index]
    (state / "openclaw.json").write_text(json.dumps(config, indent=2))
    (state / "openclaw.json").chmod(0o600)
    vps.chown_tree(state)
    env = shared.env(vps.home, base={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"})
    argv = [str(shared.openclaw), "gateway", "run", "--bind", "loopback", "--allow-unconfigured"]
    proc = vps.popen(argv, env, tmp_path / "openclaw-gateway.log")
    deadline = time.monotonic() + 120
    while http_status(f"http://127.0.0.1:{port}/readyz", timeout=1.0) != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            pytest.fail(
                "openclaw gateway did not become ready:\n"
                + (tmp_path / "openclaw-gateway.log").read_text()[-3000:]
            )
        time.sleep(0.1)
    return proc


def _keyring_value(env: dict[str, str], name: str) -> str | None:
    code = (
        f"from clawd_client.secrets import stored_secret; s = stored_secret({name!r}, 'token'); "
        f"print('MATCH' if s and s.value == {TOKEN!r} else 'NOMATCH' if s else 'NONE')"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    return r.stdout.strip()


def test_openclaw_found_token_in_keyring_health_rerun_noop_key_restricted_undo(
    vps: Vps, client_env: dict[str, str], peer: Peer, tmp_path: Path
) -> None:
    env = _env(client_env)
    home = Path(env["HOME"])
    port = free_port()
    gateway = _start_openclaw(peer, vps, port, tmp_path)
    try:
        before = vps.authorized_keys.read_bytes()
        t0 = time.monotonic()
        first = _setup(vps, env, "--yes")
        took = time.monotonic() - t0
        assert first.returncode == 0, show(first)
        print(f"\n[setup-remote] command to healthy (existing OpenClaw gateway): {took:.1f} s")
        assert "OpenClaw gateway" in first.stdout and f"127.0.0.1:{port}" in first.stdout
        assert TOKEN not in first.stdout + first.stderr
        assert _keyring_value(env, "vps") == "MATCH"
        for root in (home, Path(env["CLAWD_CONFIG_DIR"]), Path(env["CLAWD_STATE_DIR"])):
            for path in root.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    assert TOKEN.encode() not in path.read_bytes(), path

        # the profile: the VPS with the new key, the gateway's port
        profiles = json.loads((Path(env["CLAWD_CONFIG_DIR"]) / "profiles.json").read_text())["profiles"]
        (profile,) = profiles
        key = home / ".ssh" / "clawd_vps"
        assert profile["ssh"]["identity"] == str(key) and profile["remote_port"] == port
        assert oct(key.stat().st_mode & 0o777) == "0o600"
        local_url = next(
            line.split("local URL: ")[1] for line in first.stdout.splitlines() if "local URL: " in line
        )

        # (a) the real `openclaw health` through the new local port
        oc_home = tmp_path / "oc-client"
        health = peer.run(
            ["health"],
            oc_home,
            env_extra={"OPENCLAW_GATEWAY_URL": local_url, "OPENCLAW_GATEWAY_TOKEN": TOKEN},
        )
        assert health.returncode == 0, show(health)

        # the line on the VPS, once, with the restrictions; modes sshd wants
        lines = vps.authorized_keys.read_text().splitlines()
        ours = [line for line in lines if line.endswith(" clawd-vps")]
        assert len(ours) == 1 and ours[0].startswith(
            f'restrict,port-forwarding,permitopen="127.0.0.1:{port}",permitopen="[::1]:{port}",command="/bin/false" '
        )
        assert vps.authorized_keys.stat().st_mode & 0o777 == 0o600
        assert vps.authorized_keys.stat().st_uid == vps.uid

        # (c) OpenSSH with the key: no command runs, no other port is reachable
        ssh = [
            "ssh", "-i", str(key), "-p", str(vps.sshd.port), "-F", "/dev/null",
            "-o", f"UserKnownHostsFile={home / '.ssh' / 'known_hosts'}", "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes", f"{vps.user}@127.0.0.1",
        ]  # fmt: skip
        r = subprocess.run([*ssh, "id -u"], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and r.stdout == "", r
        _assert_forward(ssh, vps.sshd.port, allowed=False)  # the sshd's own port: not the gateway
        _assert_forward(ssh, port, allowed=True)

        # (d) a second run changes nothing and says so
        after_first = vps.authorized_keys.read_bytes()
        second = _setup(vps, env)
        assert second.returncode == 0, show(second)
        assert "nothing changed" in second.stdout
        assert vps.authorized_keys.read_bytes() == after_first

        # (e) undo: authorized_keys byte for byte, key pair, profile, keyring entry, up-set
        undo = clawd(["setup-remote", "--undo", "vps", "--yes"], env, timeout=60)
        assert undo.returncode == 0, show(undo)
        assert vps.authorized_keys.read_bytes() == before
        assert not key.exists() and not key.with_name("clawd_vps.pub").exists()
        assert json.loads((Path(env["CLAWD_CONFIG_DIR"]) / "profiles.json").read_text())["profiles"] == []
        assert _keyring_value(env, "vps") == "NONE"
        agent_json = Path(env["CLAWD_STATE_DIR"]) / "client" / "agent.json"
        assert "vps" not in (json.loads(agent_json.read_text()).get("up", []) if agent_json.exists() else [])
    finally:
        stop_process(gateway)


def _assert_forward(ssh: list[str], port: int, *, allowed: bool) -> None:
    local = free_port()
    proc = subprocess.Popen(
        [*ssh[:-1], "-N", "-o", "ExitOnForwardFailure=yes", "-L", f"{local}:127.0.0.1:{port}", ssh[-1]],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", local), timeout=5)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "ssh -L did not listen"
                time.sleep(0.05)
        with sock:
            sock.settimeout(10)
            if port == ssh_port(ssh):
                data = sock.recv(64)  # an sshd would greet with its banner at once
            else:
                sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
                data = sock.recv(64)
        assert bool(data) == allowed, data
    finally:
        proc.terminate()
        proc.wait(10)


def ssh_port(ssh: list[str]) -> int:
    return int(ssh[ssh.index("-p") + 1])


# --- (f) bad input ------------------------------------------------------------------------------


def test_unreachable_host(client_env: dict[str, str]) -> None:
    r = clawd(["setup-remote", f"nobody@127.0.0.1:{free_port()}", "--name", "x", "--yes"], _env(client_env))
    assert r.returncode == 3, show(r)
    assert "cannot reach" in r.stderr and "already done: nothing yet" in r.stderr


def test_refused_auth_and_changed_host_key(tmp_path: Path, client_env: dict[str, str]) -> None:
    env = _env(client_env)
    with vps_account(tmp_path) as vps:  # no admin key authorized
        admin_key(Path(env["HOME"]))
        r = _setup(vps, env, "--yes")
        assert r.returncode == 4, show(r)
        assert "refused" in r.stderr
        assert not vps.authorized_keys.exists()

        vps.authorize((Path(env["HOME"]) / ".ssh" / "id_ed25519.pub").read_text())
        before = vps.authorized_keys.read_bytes()
        known = Path(env["HOME"]) / ".ssh" / "known_hosts"
        vps.sshd.regenerate_host_key()  # the file below trusts the OLD key
        known.write_text(vps.sshd.known_hosts.read_text())
        r = _setup(vps, env, "--yes")
        assert r.returncode == 4, show(r)
        assert "REMOTE HOST KEY CHANGED" in r.stderr
        assert vps.authorized_keys.read_bytes() == before


def test_gateway_port_held_by_something_else(tmp_path: Path, client_env: dict[str, str]) -> None:
    env = _env(client_env)
    with vps_account(tmp_path) as vps:
        vps.authorize(admin_key(Path(env["HOME"])))
        port = free_port()
        holder = vps.popen(
            [SYSTEM_PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            {"PATH": "/usr/bin:/bin"}, tmp_path / "holder.log",
        )  # fmt: skip
        try:
            _wait_listening(port)
            r = _setup(vps, env, "--yes", "--remote-port", str(port))
            assert r.returncode == 1, show(r)
            assert f"port {port} is held by" in r.stderr and "does not answer like a gateway" in r.stderr
            assert "clawd-vps" not in (vps.authorized_keys.read_text())
        finally:
            stop_process(holder)


def test_ctrl_c_in_the_middle_leaves_nothing_half_written(tmp_path: Path, client_env: dict[str, str]) -> None:
    env = _env(client_env)
    with vps_account(tmp_path) as vps:
        vps.authorize(admin_key(Path(env["HOME"])))
        before = vps.authorized_keys.read_bytes()
        port = free_port()
        silent = vps.popen(  # accepts and never answers: discovery's gateway probe waits on it
            [SYSTEM_PY, "-c", f"import socket,time\ns=socket.create_server(('127.0.0.1',{port}))\n"
             "c=[]\nwhile True: c.append(s.accept())"],
            {"PATH": "/usr/bin:/bin"}, tmp_path / "silent.log",
        )  # fmt: skip
        try:
            _wait_listening(port)
            proc = subprocess.Popen(
                [sys.executable, "-m", "clawd_client", "setup-remote", vps.target, "--name", "vps", "--yes",
                 "--remote-port", str(port), "--json"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert proc.stdout is not None
            for line in proc.stdout:
                event = json.loads(line)
                if event.get("step") == "discover" and event.get("status") == "start":
                    break
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(30)
            assert rc == 130, proc.stderr.read() if proc.stderr else rc
            assert vps.authorized_keys.read_bytes() == before
            leftovers = [p.name for p in (vps.home / ".ssh").iterdir() if p.name != "authorized_keys"]
            assert leftovers == []
            assert not (Path(env["CLAWD_CONFIG_DIR"]) / "profiles.json").exists()
        finally:
            stop_process(silent)


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.05)


def test_dry_run_changes_nothing(tmp_path: Path, client_env: dict[str, str]) -> None:
    env = _env(client_env)
    with vps_account(tmp_path) as vps:
        vps.authorize(admin_key(Path(env["HOME"])))
        before = vps.authorized_keys.read_bytes()
        r = _setup(vps, env, "--yes", "--dry-run", "--no-install", "--remote-port", str(free_port()))
        # nothing listens and --no-install: stops at install, having changed nothing
        assert r.returncode == 1, show(r)
        assert vps.authorized_keys.read_bytes() == before
        assert not (Path(env["HOME"]) / ".ssh" / "clawd_vps").exists()
        assert os.listdir(vps.home / ".ssh") == ["authorized_keys"]


# --- the key line is matched by key, not as a whole line ------------------------------------------

# Passed with -c: the account's system Python runs it, without access to the checkout.
_STUB_GATEWAY = (Path(__file__).parent / "support" / "stub_gateway.py").read_text()


def _stub_gateway(vps: Vps, port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    """Something that answers like a gateway (`GET /health`, the handshake, `health`), its token
    in its environment: tests/support/stub_gateway.py."""
    proc = vps.popen(
        [SYSTEM_PY, "-c", _STUB_GATEWAY, str(port)],
        {"PATH": "/usr/bin:/bin", "OPENCLAW_GATEWAY_TOKEN": TOKEN}, tmp_path / f"stub-{port}.log",
    )  # fmt: skip
    _wait_listening(port)
    return proc


def test_new_gateway_port_rewrites_our_line_and_undo_restores_the_file(
    tmp_path: Path, client_env: dict[str, str]
) -> None:
    env = _env(client_env)
    with vps_account(tmp_path) as vps:
        vps.authorize(admin_key(Path(env["HOME"])))
        before = vps.authorized_keys.read_bytes()
        old, new = free_port(), free_port()
        stubs = [_stub_gateway(vps, old, tmp_path), _stub_gateway(vps, new, tmp_path)]
        try:
            first = _setup(vps, env, "--yes", "--remote-port", str(old))
            assert first.returncode == 0, show(first)  # the stub answers the probe: the tunnel is healthy
            ours = [ln for ln in vps.authorized_keys.read_text().splitlines() if ln.endswith(" clawd-vps")]
            assert len(ours) == 1 and f'permitopen="127.0.0.1:{old}"' in ours[0]
            second = _setup(vps, env, "--yes", "--remote-port", str(new))
            assert second.returncode == 0, show(second)
            ours = [ln for ln in vps.authorized_keys.read_text().splitlines() if ln.endswith(" clawd-vps")]
            assert len(ours) == 1 and f'permitopen="127.0.0.1:{new}"' in ours[0], ours
            undo = clawd(["setup-remote", "--undo", "vps", "--yes"], env, timeout=60)
            assert undo.returncode == 0, show(undo)
            assert vps.authorized_keys.read_bytes() == before
        finally:
            for stub in stubs:
                stop_process(stub)


def test_an_unrestricted_line_for_the_tunnel_key_is_refused(
    tmp_path: Path, client_env: dict[str, str]
) -> None:
    env = _env(client_env)
    home = Path(env["HOME"])
    with vps_account(tmp_path) as vps:
        vps.authorize(admin_key(home))
        key = home / ".ssh" / "clawd_vps"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@laptop", "-f", str(key)], check=True
        )
        vps.authorize(key.with_name("clawd_vps.pub").read_text())  # full shell access for that key
        before = vps.authorized_keys.read_bytes()
        port = free_port()
        stub = _stub_gateway(vps, port, tmp_path)
        try:
            r = _setup(vps, env, "--yes", "--remote-port", str(port))
            assert r.returncode == 1, show(r)
            assert f"{vps.authorized_keys} line 2 already holds this key (me@laptop)" in r.stderr, show(r)
            assert "Traceback" not in r.stderr
            assert vps.authorized_keys.read_bytes() == before
        finally:
            stop_process(stub)
