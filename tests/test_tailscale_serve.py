"""`clawd-gateway --tailscale serve|funnel` as a real process against the fake `tailscale` CLI.

Set up, URL in the banner and in `status --json`, undone on SIGTERM exactly (never `serve
reset`), the user's own Serve config untouched, and each refusal / Tailscale failure as exit
78 with a message that names the fix, before the gateway listens.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.support.fake_tailscale import FakeTailscale
from tests.support.servers import free_port, gateway_process
from tests.support.skip_policy import skip_on_platform
from tests.support.wsclient import handshake

from clawd_gateway.tailscale.parse import classify_failure, parse_serve_config, parse_status

TOKEN = "ts-serve-token-0123456789abcdef"
PASSWORD = "ts-funnel-password-0123456789"
HP = "gw.tail1234.ts.net:443"

USER_CONFIG: dict[str, Any] = {
    "TCP": {"443": {"HTTPS": True}, "8443": {"HTTPS": True}},
    "Web": {
        HP: {"Handlers": {"/novnc": {"Proxy": "http://127.0.0.1:6080"}}},
        "gw.tail1234.ts.net:8443": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:3000"}}},
    },
    "AllowFunnel": {"gw.tail1234.ts.net:8443": True},
}


@pytest.fixture
def fake(tmp_path: Path):
    with FakeTailscale.create(tmp_path) as f:
        yield f


def env_for(fake: FakeTailscale, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**fake.env, "CLAWD_TAILSCALE_SOCKET": str(tmp_path / "no.sock"), **extra}


def stop(gp: Any) -> str:
    gp.proc.send_signal(signal.SIGTERM)
    assert gp.proc.wait(20) == 0
    return gp.stderr_text()


def run_gateway(tmp_path: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A run that is expected to refuse: it must exit by itself."""
    full = dict(os.environ)
    for var in [v for v in full if v.startswith(("OPENCLAW_", "CLAWDBOT_"))]:
        full.pop(var)
    full.update({"HOME": str(tmp_path), "CLAWD_STATE_DIR": str(tmp_path / "state")}, **env)
    return subprocess.run(
        [sys.executable, "-m", "clawd_gateway", "run", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
    )


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def mutating_calls(fake: FakeTailscale) -> list[list[str]]:
    return [c for c in fake.calls() if c[:1] in (["serve"], ["funnel"]) and "status" not in c]


# --- set up, report, undo -------------------------------------------------------------------


def test_serve_is_set_up_reported_and_undone_on_sigterm(tmp_path, fake):
    env = env_for(fake, tmp_path)
    with gateway_process(tmp_path, ["--tailscale", "serve", "--reset-on-exit"], env, TOKEN) as gp:
        port = gp.port
        out = "".join(gp.stdout_lines)
        assert "https://gw.tail1234.ts.net/" in out and "wss://gw.tail1234.ts.net" in out, out
        assert "forge Serve headers" in out or "forges Serve headers" in out, out  # the trade-off, said
        sc = fake.serve_config()
        assert sc["Web"][HP]["Handlers"] == {"/": {"Proxy": f"http://127.0.0.1:{gp.port}"}}
        assert sc["TCP"]["443"] == {"HTTPS": True} and HP not in (sc.get("AllowFunnel") or {})
        status = subprocess.run(
            [sys.executable, "-m", "clawd_gateway", "status", "--json"],
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "HOME": str(tmp_path),
                "CLAWD_STATE_DIR": str(tmp_path / "state"),
                "OPENCLAW_GATEWAY_PORT": str(gp.port),
                "OPENCLAW_GATEWAY_TOKEN": TOKEN,
            },
            timeout=30,
        )
        report = json.loads(status.stdout)
        assert report["running"] is True
        assert report["tailscale"]["url"] == "https://gw.tail1234.ts.net/"
        assert report["tailscale"]["wsUrl"] == "wss://gw.tail1234.ts.net"
        assert report["tailscale"]["mode"] == "serve" and report["tailscale"]["owned"] is True
        # The Control UI opened at the Serve URL: its origin is allowed, its identity verified.
        fake.add_peer("laptop", ["100.64.0.7"], user_login="bob@example.com")
        serve_headers = {
            "Origin": "https://gw.tail1234.ts.net",
            "X-Forwarded-For": "100.64.0.7",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "gw.tail1234.ts.net",
            "Tailscale-User-Login": "bob@example.com",
        }
        ws, _, res = handshake(
            gp.url, None, additional_headers=serve_headers, client_id="openclaw-control-ui", mode="webchat"
        )
        ws.close()
        assert res["ok"] and res["payload"]["auth"]["method"] == "tailscale", res
        stop(gp)
    assert not (fake.serve_config() or {}).get("Web"), fake.serve_config()
    calls = mutating_calls(fake)
    assert calls == [
        ["serve", "--bg", "--yes", "--https=443", f"http://127.0.0.1:{port}"],
        ["serve", "--https=443", "--set-path=/", "off"],
    ]
    assert not (tmp_path / "state" / "tailscale-serve.json").exists()


def test_funnel_with_password_is_public_and_removed_by_default(tmp_path, fake):
    env = env_for(fake, tmp_path, OPENCLAW_GATEWAY_PASSWORD=PASSWORD)
    args = ["--tailscale", "funnel", "--auth", "password"]
    with gateway_process(tmp_path, args, env, token=None) as gp:
        out = "".join(gp.stdout_lines)
        assert "Tailscale funnel: https://gw.tail1234.ts.net/" in out and "the internet" in out
        assert "removed when the gateway stops" in out  # resetOnExit defaults on for Funnel
        sc = fake.serve_config()
        assert sc["AllowFunnel"] == {HP: True}
        assert sc["Web"][HP]["Handlers"]["/"]["Proxy"] == f"http://127.0.0.1:{gp.port}"
        stop(gp)
    sc = fake.serve_config() or {}
    assert not sc.get("Web") and not sc.get("AllowFunnel"), sc
    assert ["funnel", "--https=443", "--set-path=/", "off"] in mutating_calls(fake)


def test_users_own_serve_config_is_left_exactly_as_it_was(tmp_path, fake):
    fake.set_serve_config(copy.deepcopy(USER_CONFIG))
    before = fake.serve_config()
    with gateway_process(
        tmp_path, ["--tailscale", "serve", "--reset-on-exit"], env_for(fake, tmp_path), TOKEN
    ) as gp:
        during = fake.serve_config()
        assert during["Web"][HP]["Handlers"]["/novnc"] == {"Proxy": "http://127.0.0.1:6080"}
        assert during["Web"][HP]["Handlers"]["/"] == {"Proxy": f"http://127.0.0.1:{gp.port}"}
        assert during["Web"]["gw.tail1234.ts.net:8443"] == before["Web"]["gw.tail1234.ts.net:8443"]
        stop(gp)
    assert fake.serve_config() == before
    assert not any("reset" in c for c in fake.calls())


def test_without_reset_the_route_stays_and_the_next_run_knows_it_is_ours(tmp_path, fake):
    env = env_for(fake, tmp_path)
    with gateway_process(tmp_path, ["--tailscale", "serve"], env, TOKEN) as gp:
        port = gp.port
        assert "kept after exit (gateway.tailscale.resetOnExit is false)" in "".join(gp.stdout_lines)
        stop(gp)
    assert fake.serve_config()["Web"][HP]["Handlers"]["/"] == {"Proxy": f"http://127.0.0.1:{port}"}
    # A second run on another port: the recorded handler is ours, so it is updated, then removed.
    with gateway_process(tmp_path, ["--tailscale", "serve", "--reset-on-exit"], env, TOKEN) as gp2:
        assert fake.serve_config()["Web"][HP]["Handlers"]["/"]["Proxy"] == f"http://127.0.0.1:{gp2.port}"
        stop(gp2)
    assert not (fake.serve_config() or {}).get("Web")


def test_a_user_handler_where_we_would_go_is_refused_not_clobbered(tmp_path, fake):
    mine = {
        "TCP": {"443": {"HTTPS": True}},
        "Web": {HP: {"Handlers": {"/": {"Proxy": "http://127.0.0.1:3000"}}}},
    }
    fake.set_serve_config(copy.deepcopy(mine))
    port = free_port()
    proc = run_gateway(
        tmp_path,
        ["--tailscale", "serve", "--port", str(port)],
        {**env_for(fake, tmp_path), "OPENCLAW_GATEWAY_TOKEN": TOKEN},
    )
    assert proc.returncode == 78, proc.stderr
    assert "already served by your Tailscale config" in proc.stderr and "127.0.0.1:3000" in proc.stderr
    assert "fix:" in proc.stderr and "basePath" in proc.stderr and "Traceback" not in proc.stderr
    assert fake.serve_config() == mine and mutating_calls(fake) == []
    assert port_is_free(port)


def test_base_path_mounts_next_to_the_users_root_handler(tmp_path, fake):
    mine = {
        "TCP": {"443": {"HTTPS": True}},
        "Web": {HP: {"Handlers": {"/": {"Proxy": "http://127.0.0.1:3000"}}}},
    }
    fake.set_serve_config(copy.deepcopy(mine))
    cfg = tmp_path / "openclaw.json"
    cfg.write_text('{gateway: {controlUi: {basePath: "/clawd"}}}')
    args = ["--config", str(cfg), "--tailscale", "serve", "--reset-on-exit"]
    with gateway_process(tmp_path, args, env_for(fake, tmp_path), TOKEN) as gp:
        assert "https://gw.tail1234.ts.net/clawd/" in "".join(gp.stdout_lines)
        handlers = fake.serve_config()["Web"][HP]["Handlers"]
        assert handlers["/clawd"] == {"Proxy": f"http://127.0.0.1:{gp.port}/clawd"}
        stop(gp)
    assert fake.serve_config() == mine


def test_funnel_refuses_to_publish_the_users_other_paths(tmp_path, fake):
    cfg = {
        "TCP": {"443": {"HTTPS": True}},
        "Web": {HP: {"Handlers": {"/novnc": {"Proxy": "http://127.0.0.1:6080"}}}},
    }
    fake.set_serve_config(copy.deepcopy(cfg))
    env = {**env_for(fake, tmp_path), "OPENCLAW_GATEWAY_PASSWORD": PASSWORD}
    proc = run_gateway(
        tmp_path, ["--tailscale", "funnel", "--auth", "password", "--port", str(free_port())], env
    )
    assert proc.returncode == 78 and "/novnc" in proc.stderr and "internet" in proc.stderr, proc.stderr
    assert fake.serve_config() == cfg


# --- refusals and Tailscale failures --------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--tailscale", "funnel"], {"OPENCLAW_GATEWAY_TOKEN": TOKEN}, "requires gateway auth mode=password"),
        (["--tailscale", "serve", "--bind", "lan"], {"OPENCLAW_GATEWAY_TOKEN": TOKEN}, "requires gateway bind=loopback"),
        (["--tailscale", "funnel", "--bind", "lan", "--auth", "password"], {"OPENCLAW_GATEWAY_PASSWORD": PASSWORD}, "requires gateway bind=loopback"),
        (["--tailscale", "serve", "--auth", "none"], {}, "every device on the tailnet"),
        (["--tailscale", "funnel", "--auth", "none"], {}, "auth mode=password"),
    ],
)  # fmt: skip
def test_unsafe_combinations_are_refused_before_tailscale_is_touched(tmp_path, fake, args, env, words):
    proc = run_gateway(tmp_path, [*args, "--port", str(free_port())], {**env_for(fake, tmp_path), **env})
    assert proc.returncode == 78, proc.stderr
    assert words in proc.stderr and "fix:" in proc.stderr and "Traceback" not in proc.stderr
    assert fake.calls() == []


def _daemon_down(f: FakeTailscale) -> None:
    f.set_daemon_running(False)


SCENARIOS = {
    "daemon down": ("serve", _daemon_down, "tailscaled is not running", "systemctl"),
    "logged out": ("serve", lambda f: f.set_backend_state("NeedsLogin"), "not logged in", "tailscale up"),
    "stopped": ("serve", lambda f: f.set_backend_state("Stopped"), "Tailscale is stopped", "tailscale up"),
    "https off": (
        "serve",
        lambda f: f.set_https(False),
        "HTTPS (Serve) is not enabled",
        "login.tailscale.com/f/serve",
    ),
    "funnel https off": ("funnel", lambda f: f.set_https(False), "HTTPS (Serve) is not enabled", "admin/dns"),
    "funnel attr": ("funnel", lambda f: f.set_funnel_attr(False), '"funnel" node attribute', "policy file"),
    "funnel port": (
        "funnel",
        lambda f: f.set_funnel_attr(True, ports="8443"),
        "does not allow port 443",
        "443",
    ),
    "old cli": ("serve", lambda f: f.set_version("1.50.1"), "too old", "update Tailscale"),
    "access denied": ("serve", lambda f: f.set_access_denied(True), "access denied", "--operator=$USER"),
    "no magicdns": ("serve", lambda f: f.set_self(dns_name=""), "no MagicDNS name", "admin/dns"),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_tailscale_failures_are_fatal_with_the_fix(tmp_path, fake, name):
    mode, arrange, words, fix = SCENARIOS[name]
    fake.set_serve_config(copy.deepcopy(USER_CONFIG))  # the user's own entries must survive exactly
    arrange(fake)
    before = fake.serve_config()
    assert before == USER_CONFIG
    port = free_port()
    auth = {"OPENCLAW_GATEWAY_PASSWORD": PASSWORD} if mode == "funnel" else {"OPENCLAW_GATEWAY_TOKEN": TOKEN}
    args = ["--tailscale", mode, "--port", str(port)] + (["--auth", "password"] if mode == "funnel" else [])
    proc = run_gateway(tmp_path, args, {**env_for(fake, tmp_path), **auth})
    assert proc.returncode == 78, (proc.stdout, proc.stderr)
    assert "gateway.tailscale.mode" in proc.stderr and words in proc.stderr, proc.stderr
    fix_line = proc.stderr.split("fix:", 1)[1]
    assert fix in fix_line, proc.stderr
    assert "Traceback" not in proc.stderr and TOKEN not in proc.stderr and PASSWORD not in proc.stderr
    assert fake.serve_config() == before  # exactly as it was: nothing added, nothing half-undone
    assert not (tmp_path / "state" / "tailscale-serve.json").exists()  # nothing recorded as ours
    assert port_is_free(port)


def test_no_tailscale_binary(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = run_gateway(
        tmp_path,
        ["--tailscale", "serve", "--port", str(free_port())],
        {"PATH": f"{empty}{os.pathsep}/usr/bin:/bin", "OPENCLAW_GATEWAY_TOKEN": TOKEN},
    )
    if Path("/Applications/Tailscale.app/Contents/MacOS/Tailscale").exists():  # pragma: no cover
        skip_on_platform("darwin", "the macOS app bundle is installed here")
    assert proc.returncode == 78 and "not on PATH" in proc.stderr and "tailscale.com/download" in proc.stderr


# --- the pure readers -----------------------------------------------------------------------


def test_parsers_read_the_real_shapes(fake):
    st = parse_status(json.dumps(fake.status_json()))
    assert st.backend_state == "Running" and st.dns_name == "gw.tail1234.ts.net"
    assert st.https_enabled and st.funnel_attr and st.funnel_ports() == frozenset({443, 8443, 10000})
    assert parse_serve_config("null").empty
    sc = parse_serve_config("warning: something\n" + json.dumps(USER_CONFIG))
    assert sc.handler(HP, "/novnc") == {"Proxy": "http://127.0.0.1:6080"}
    assert sc.funnel("gw.tail1234.ts.net:8443") and not sc.funnel(HP)
    hang = "Serve is not enabled on your tailnet.\nTo enable, visit:\n\n  https://login.tailscale.com/f/serve?node=nX"
    f = classify_failure(hang)
    assert f.kind == "https_disabled" and "https://login.tailscale.com/f/serve?node=nX" in f.fix
    assert classify_failure("flag provided but not defined: -bg").kind == "old_version"


def test_funnel_can_be_kept_after_exit_when_asked(tmp_path, fake):
    env = env_for(fake, tmp_path, OPENCLAW_GATEWAY_PASSWORD=PASSWORD)
    args = ["--tailscale", "funnel", "--auth", "password", "--no-reset-on-exit"]
    with gateway_process(tmp_path, args, env, token=None) as gp:
        assert "kept after exit" in "".join(gp.stdout_lines)
        stop(gp)
    sc = fake.serve_config()
    assert sc["AllowFunnel"] == {HP: True} and sc["Web"][HP]["Handlers"]["/"]["Proxy"].endswith(f":{gp.port}")


def test_the_tailscale_cli_never_inherits_the_gateway_secrets(tmp_path, monkeypatch):
    """A child's environment is readable (by the same user) in /proc; it gets no token or password."""
    import asyncio

    from clawd_gateway.tailscale import command

    script = tmp_path / "tailscale"
    script.write_text(f"#!{sys.executable}\nimport json, os\nprint(json.dumps(dict(os.environ)))\n")
    script.chmod(0o755)
    monkeypatch.setenv("OPENCLAW_GATEWAY_PASSWORD", PASSWORD)
    monkeypatch.setenv("CLAWDBOT_GATEWAY_TOKEN", TOKEN)
    monkeypatch.setenv("CLAWD_KEEP_ME", "1")
    res = asyncio.run(command.run(str(script), "version"))
    seen = json.loads(res.stdout)
    assert res.ok and seen.get("CLAWD_KEEP_ME") == "1"
    assert not {"OPENCLAW_GATEWAY_PASSWORD", "CLAWDBOT_GATEWAY_TOKEN"} & set(seen)
    assert PASSWORD not in res.stdout and TOKEN not in res.stdout
