"""`clawd-gateway` as a user runs it: real processes, exit codes, no tracebacks, no leaked secrets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.support.servers import free_port, gateway_process, wait_until
from tests.support.wsclient import connect_params, open_ws, recv_json, send_req, wait_res

TOKEN = "cli-test-token-0123456789abcdef"


def run_cli(args: list[str], tmp_path: Path, env: dict[str, str] | None = None, timeout: float = 30):
    full_env = dict(os.environ)
    full_env.update({"HOME": str(tmp_path), "CLAWD_STATE_DIR": str(tmp_path / "state")})
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "clawd_gateway", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def assert_no_traceback(proc):
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


def test_config_check_valid_and_masked(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text('{gateway: {port: 19999, auth: {token: "${GW_TOK}"}}}')
    proc = run_cli(
        ["config", "check", "--json", "--config", str(cfg)], tmp_path, {"GW_TOK": "very-secret-token-abcdef"}
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["valid"] and data["effective"]["port"] == 19999
    assert data["effective"]["auth"]["token"]["source"] == "config gateway.auth.token"
    assert "very-secret-token-abcdef" not in proc.stdout
    text = run_cli(
        ["config", "check", "--config", str(cfg)], tmp_path, {"GW_TOK": "very-secret-token-abcdef"}
    )
    assert text.returncode == 0 and "valid" in text.stdout and "very-secret-token-abcdef" not in text.stdout


def test_config_check_invalid_names_file_and_key(tmp_path):
    cfg = tmp_path / "bad.json"
    cfg.write_text('{gateway: {bind: "internet"}}')
    proc = run_cli(["config", "check", "--config", str(cfg)], tmp_path)
    assert proc.returncode == 78
    assert str(cfg) in proc.stderr and "gateway.bind" in proc.stderr and "loopback" in proc.stderr
    assert_no_traceback(proc)
    js = run_cli(["config", "check", "--json", "--config", str(cfg)], tmp_path)
    assert js.returncode == 78 and json.loads(js.stdout)["key"] == "gateway.bind"


def test_refuses_lan_without_secret(tmp_path):
    proc = run_cli(["run", "--bind", "lan", "--port", str(free_port())], tmp_path)
    assert proc.returncode == 78
    assert "gateway.auth.token" in proc.stderr and "fix:" in proc.stderr
    assert_no_traceback(proc)


def test_refuses_funnel_without_password(tmp_path):
    proc = run_cli(["--tailscale", "funnel", "--token", "abcdefabcdefabcdef"], tmp_path)
    assert proc.returncode == 78 and "auth mode=password" in proc.stderr
    assert_no_traceback(proc)


def test_port_in_use_names_the_holder(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = run_cli(["run", "--port", str(port)], tmp_path, {"OPENCLAW_GATEWAY_TOKEN": TOKEN})
    assert proc.returncode == 1
    assert f"port {port}" in proc.stderr and "already in use" in proc.stderr
    assert f"pid {os.getpid()}" in proc.stderr  # psutil named this test process
    assert_no_traceback(proc)


def test_run_health_status_and_sigterm(tmp_path):
    with gateway_process(tmp_path, token=TOKEN) as gw:
        banner = "".join(gw.stdout_lines)
        assert f"ws://127.0.0.1:{gw.port}" in banner and "Auth mode: token" in banner
        assert "env OPENCLAW_GATEWAY_TOKEN" in banner and TOKEN not in banner

        ok = run_cli(["health", "--url", gw.url, "--token", TOKEN, "--json"], tmp_path)
        assert ok.returncode == 0, ok.stderr
        data = json.loads(ok.stdout)
        assert data["ok"] is True and data["protocol"] == 4 and data["health"]["ok"] is True

        text = run_cli(["health", "--url", gw.url], tmp_path, {"OPENCLAW_GATEWAY_TOKEN": TOKEN})
        assert text.returncode == 0 and "OK (" in text.stdout

        bad = run_cli(["health", "--url", gw.url, "--token", "WRONG-TOKEN-VALUE", "--json"], tmp_path)
        assert bad.returncode == 4
        assert json.loads(bad.stdout)["error"]["details"]["code"] == "AUTH_TOKEN_MISMATCH"
        nocred = run_cli(["health", "--url", gw.url], tmp_path)
        assert nocred.returncode == 4 and "hint" in nocred.stderr

        # A long-lived client to show up in status, and to receive the shutdown event.
        ws = open_ws(gw.url)
        recv_json(ws)
        rid = send_req(ws, "connect", connect_params(TOKEN, client_id="openclaw-macos", mode="ui"))
        assert wait_res(ws, rid)["ok"]

        st = run_cli(
            ["status", "--json"],
            tmp_path,
            {"OPENCLAW_GATEWAY_PORT": str(gw.port), "OPENCLAW_GATEWAY_TOKEN": TOKEN},
        )
        assert st.returncode == 0, st.stderr
        report = json.loads(st.stdout)
        assert report["running"] is True and report["runtime"]["pid"] == gw.proc.pid
        assert report["gateway"]["authMode"] == "token"
        assert any(c["clientId"] == "openclaw-macos" for c in report["gateway"]["clients"])

        gw.proc.send_signal(signal.SIGTERM)
        events = []
        try:
            while True:
                events.append(recv_json(ws, timeout=10))
        except Exception as exc:  # ConnectionClosed
            code = getattr(getattr(exc, "rcvd", None), "code", None)
        assert any(e.get("event") == "shutdown" for e in events)
        assert code == 1012
        assert gw.proc.wait(15) == 0
        err = gw.stderr_text()
        assert TOKEN not in err and "WRONG-TOKEN-VALUE" not in err
        assert "connect refused" in err and "AUTH_TOKEN_MISMATCH" in err


def test_unreachable_and_not_running(tmp_path):
    port = free_port()
    proc = run_cli(["health", "--url", f"ws://127.0.0.1:{port}", "--token", "x", "--timeout", "3"], tmp_path)
    assert proc.returncode == 3 and "not reachable" in proc.stderr
    st = run_cli(["status"], tmp_path, {"OPENCLAW_GATEWAY_PORT": str(port)})
    assert st.returncode == 3 and "not running" in st.stdout
    assert_no_traceback(proc)


def test_generated_token_lets_local_health_work(tmp_path):
    with gateway_process(tmp_path, token=None) as gw:
        assert "generated" in "".join(gw.stdout_lines)
        token_file = tmp_path / "state" / "gateway.token"
        wait_until(token_file.exists, what="generated token file")
        proc = run_cli(["health"], tmp_path, {"OPENCLAW_GATEWAY_PORT": str(gw.port)})
        assert proc.returncode == 0, proc.stderr
        assert "generated token" in proc.stdout
