"""One secret precedence for everyone: flag > config > OPENCLAW_* > CLAWDBOT_* (secret_sources).

The gateway (settings), its own CLI (target: health/status/nodes), the laptop client (secrets) and
the service env file all read it; these tests pin the order and that each of them follows it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clawd_client import secrets as client_secrets
from clawd_gateway.config import parse_config_text
from clawd_gateway.errors import RefusalError
from clawd_gateway.secret_sources import (
    SECRET_VARS,
    env_vars,
    find_env,
    from_env,
    pick,
    secret_from_env,
)
from clawd_gateway.settings import GENERATED_TOKEN_FILE, Overrides, resolve_settings
from clawd_gateway.target import generated_token, local_secret, resolve_target

TOK = "config-token-0123456789abcdef"
ENV_TOK = "env-token-0123456789abcdef"
SEED_TOK = "seed-token-0123456789abcdef"


def test_env_names_in_order():
    assert env_vars("token") == ("OPENCLAW_GATEWAY_TOKEN", "CLAWDBOT_GATEWAY_TOKEN")
    assert env_vars("password") == ("OPENCLAW_GATEWAY_PASSWORD", "CLAWDBOT_GATEWAY_PASSWORD")
    assert SECRET_VARS == (
        "OPENCLAW_GATEWAY_TOKEN",
        "OPENCLAW_GATEWAY_PASSWORD",
        "CLAWDBOT_GATEWAY_TOKEN",
        "CLAWDBOT_GATEWAY_PASSWORD",
    )


@pytest.mark.parametrize(
    ("flag", "config", "env", "source"),
    [
        ("f" * 20, TOK, {"OPENCLAW_GATEWAY_TOKEN": ENV_TOK}, "--token"),
        (None, TOK, {"OPENCLAW_GATEWAY_TOKEN": ENV_TOK, "CLAWDBOT_GATEWAY_TOKEN": SEED_TOK}, "config"),
        (None, None, {"OPENCLAW_GATEWAY_TOKEN": ENV_TOK, "CLAWDBOT_GATEWAY_TOKEN": SEED_TOK}, "openclaw"),
        (None, None, {"OPENCLAW_GATEWAY_TOKEN": "", "CLAWDBOT_GATEWAY_TOKEN": SEED_TOK}, "clawdbot"),
        ("", "", {"CLAWDBOT_GATEWAY_TOKEN": SEED_TOK}, "clawdbot"),  # empty counts as unset
        (None, 12345, {}, None),  # a non-string config value is not a secret
        (None, None, {"OPENCLAW_GATEWAY_PASSWORD": ENV_TOK}, None),  # the other kind does not count
    ],
)
def test_pick_order(flag, config, env, source):
    got = pick("token", env, flag=flag, config=config)
    expected = {
        "--token": ("f" * 20, "--token"),
        "config": (TOK, "config gateway.auth.token"),
        "openclaw": (ENV_TOK, "env OPENCLAW_GATEWAY_TOKEN"),
        "clawdbot": (SEED_TOK, "env CLAWDBOT_GATEWAY_TOKEN"),
        None: None,
    }[source]
    assert (None if got is None else (got.value, got.source)) == expected


def test_unknown_kind_prefers_any_openclaw_variable():
    """A leftover seed token must not shadow a current OpenClaw password."""
    env = {"CLAWDBOT_GATEWAY_TOKEN": SEED_TOK, "OPENCLAW_GATEWAY_PASSWORD": "pw-0123456789abcdef"}
    secret, kind = secret_from_env(env) or (None, None)
    assert kind == "password" and secret is not None and secret.source == "env OPENCLAW_GATEWAY_PASSWORD"
    both = {"OPENCLAW_GATEWAY_TOKEN": ENV_TOK, "OPENCLAW_GATEWAY_PASSWORD": "pw-0123456789abcdef"}
    assert secret_from_env(both)[1] == "token"  # type: ignore[index]
    assert secret_from_env({"OPENCLAW_GATEWAY_TOKEN": ""}) is None


def test_find_env_names_the_variable():
    assert find_env("password", {"CLAWDBOT_GATEWAY_PASSWORD": "x"}) == ("CLAWDBOT_GATEWAY_PASSWORD", "x")
    assert find_env("password", {}) is None


# Each source either absent, empty, or set to a value that names it.
_maybe = st.sampled_from([None, "", "set"])


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(["token", "password"]), flag=_maybe, config=_maybe, oc=_maybe, cb=_maybe)
def test_every_reader_agrees(kind, flag, config, oc, cb):
    """settings (the server), the client's env override and the shared module pick the same secret."""
    env: dict[str, str] = {}
    for var, state in zip(env_vars(kind), (oc, cb), strict=True):
        if state is not None:
            env[var] = "" if state == "" else f"{var.lower()}-0123456789"
    flag_value = None if flag is None else ("" if flag == "" else "flag-0123456789abcdef")
    conf_value = None if config is None else ("" if config == "" else "conf-0123456789abcdef")
    expected = pick(kind, env, flag=flag_value, config=conf_value)

    auth = {"mode": kind, **({kind: conf_value} if conf_value is not None else {})}
    loaded = parse_config_text(json.dumps({"gateway": {"auth": auth}}), None, env)
    full_env = {"HOME": "/nonexistent", "CLAWD_STATE_DIR": "/nonexistent/state", **env}
    ov = Overrides(**{kind: flag_value})
    try:
        resolved = resolve_settings(ov, env=full_env, loaded=loaded, create_token=False)
    except RefusalError:  # password mode without any password is refused: the module says None too
        assert expected is None and kind == "password"
    else:
        got = resolved.token if kind == "token" else resolved.password
        assert got == expected

    # The client's override is the environment part of the same order.
    assert client_secrets.env_override(kind, env) == from_env(kind, env)


# --- the gateway CLI's target: health, status, nodes ---------------------------------------------


def _config(tmp_path: Path, auth: dict[str, str]) -> tuple[str, dict[str, str]]:
    cfg = tmp_path / "openclaw.json"
    cfg.write_text(json.dumps({"gateway": {"port": 19999, "auth": auth}}))
    return str(cfg), {"HOME": str(tmp_path), "CLAWD_STATE_DIR": str(tmp_path / "state")}


def test_local_target_prefers_the_config_over_the_environment(tmp_path):
    """The local gateway resolved the config token; its client must send the same one."""
    cfg, env = _config(tmp_path, {"token": TOK})
    target = resolve_target(config=cfg, env={**env, "OPENCLAW_GATEWAY_TOKEN": ENV_TOK})
    assert target.url == "ws://127.0.0.1:19999"
    assert (target.token, target.password, target.source) == (TOK, None, "config gateway.auth.token")


def test_local_target_follows_the_auth_mode(tmp_path):
    cfg, env = _config(tmp_path, {"mode": "password", "password": "pw-0123456789abcdef"})
    target = resolve_target(config=cfg, env={**env, "OPENCLAW_GATEWAY_TOKEN": ENV_TOK})
    assert (target.token, target.password) == (None, "pw-0123456789abcdef")


def test_flags_win_everywhere(tmp_path):
    cfg, env = _config(tmp_path, {"token": TOK})
    target = resolve_target(config=cfg, password="flag-pw-0123456789", env=env)
    assert (target.token, target.password, target.source) == (None, "flag-pw-0123456789", "--password")
    remote = resolve_target(url="ws://example.test:1", token="flag-0123456789", env=env)
    assert (remote.token, remote.source) == ("flag-0123456789", "--token")


def test_explicit_url_never_gets_the_config_secret(tmp_path):
    """The config describes the local gateway; its secret must not go to a typed URL."""
    cfg, env = _config(tmp_path, {"token": TOK})
    bare = resolve_target(url="ws://example.test:1", config=cfg, env=env)
    assert (bare.secret, bare.source) == (None, "none")
    seeded = resolve_target(
        url="ws://example.test:1", config=cfg, env={**env, "CLAWDBOT_GATEWAY_TOKEN": SEED_TOK}
    )
    assert (seeded.token, seeded.source) == (SEED_TOK, "env CLAWDBOT_GATEWAY_TOKEN")


def test_generated_token_is_read_never_created(tmp_path):
    cfg, env = _config(tmp_path, {})
    state = tmp_path / "state"
    assert resolve_target(config=cfg, env=env).secret is None
    assert not (state / GENERATED_TOKEN_FILE).exists()
    state.mkdir()
    (state / GENERATED_TOKEN_FILE).write_text("g" * 48 + "\n")
    target = resolve_target(config=cfg, env=env)
    assert target.token == "g" * 48 and target.source.startswith("generated token ")
    assert generated_token(tmp_path / "nowhere") is None


def test_auth_none_sends_nothing(tmp_path):
    cfg, env = _config(tmp_path, {"mode": "none"})
    settings_ = resolve_settings(Overrides(config=cfg), env=env, create_token=False)
    assert local_secret(settings_) == (None, "token")


def test_domain_modules_do_not_import_the_cli():
    """cli -> service/target/inspection/node_ops, never back (the launchd wrapper's entry point
    is the one place that joins them)."""
    code = (
        "import sys, clawd_gateway.service, clawd_gateway.target, clawd_gateway.inspection, "
        "clawd_gateway.node_ops, clawd_gateway.systemd, clawd_gateway.secret_sources\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[:2] == ['clawd_gateway', 'cli']\n"
        "             or m.startswith(('clawd_gateway.cli_', 'clawd_client')))\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_only_entry_points_import_the_cli():
    """Static: lazy imports count too (the old service.py imported cli.main inside a function)."""
    root = Path(__file__).resolve().parent.parent / "gateway" / "clawd_gateway"
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if rel.name == "__main__.py" or rel.name.startswith("cli"):
            continue
        package = ["clawd_gateway", *rel.parts[:-1]]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join([*base, *(node.module.split(".") if node.module else [])])
                names = [module] + [f"{module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                last = name.split(".")
                if last[:2] == ["clawd_gateway", "cli"] or (
                    len(last) == 2 and last[0] == "clawd_gateway" and last[1].startswith("cli_")
                ):
                    offenders.append(f"{rel}: {name}")
    assert not offenders, offenders
