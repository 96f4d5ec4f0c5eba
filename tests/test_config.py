"""Config loading, precedence and the refusals; every error names its file and key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from clawd_gateway.config import load_config, parse_config_text
from clawd_gateway.errors import ConfigError, RefusalError
from clawd_gateway.settings import Overrides, resolve_settings

SEED_CONFIG = """
// the seeds' Tailscale Serve example, JSON5 with comments and trailing commas
{
  "gateway": {
    "bind": "loopback",
    "tailscale": { "mode": "serve", "resetOnExit": true, },
    "auth": { "mode": "password" },
  },
  agents: { list: [] },  // not ours: ignored
}
"""


def settings_for(tmp_path: Path, text: str, env: dict[str, str] | None = None, **ov):
    env = {"HOME": str(tmp_path), "CLAWD_STATE_DIR": str(tmp_path / "state"), **(env or {})}
    cfg = tmp_path / "openclaw.json"
    cfg.write_text(text)
    return resolve_settings(Overrides(config=str(cfg), **ov), env=env)


def test_seed_config_parses(tmp_path):
    s = settings_for(tmp_path, SEED_CONFIG, {"CLAWDBOT_GATEWAY_PASSWORD": "pw-from-seed-env"})
    assert s.auth_mode == "password" and s.password.value == "pw-from-seed-env"
    assert s.password.source == "env CLAWDBOT_GATEWAY_PASSWORD"
    assert s.tailscale_mode == "serve" and s.reset_on_exit is True
    assert s.bind.loopback_only
    assert s.allow_tailscale is False  # password mode: identity headers off by default
    assert s.config.warnings == ()


def test_env_substitution_and_escape(tmp_path):
    text = '{gateway: {auth: {token: "${MY_TOKEN}"}, controlUi: {basePath: "$${LITERAL}"}}}'
    loaded = parse_config_text(text, tmp_path / "c.json", {"MY_TOKEN": "abc123456789"})
    assert loaded.get("auth.token") == "abc123456789"
    assert loaded.get("controlUi.basePath") == "${LITERAL}"
    assert loaded.file_secrets == ()  # came from the environment, not written in the file


def test_literal_secret_is_recorded(tmp_path):
    loaded = parse_config_text('{gateway: {auth: {token: "inline-secret-value"}}}', None, {})
    assert loaded.file_secrets == ("gateway.auth.token",)


def test_missing_env_var_names_file_key_and_var(tmp_path):
    path = tmp_path / "c.json"
    with pytest.raises(ConfigError) as info:
        parse_config_text('{gateway: {auth: {password: "${NOPE_PW}"}}}', path, {})
    msg = str(info.value)
    assert str(path) in msg and "gateway.auth.password" in msg and "NOPE_PW" in msg


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        ('{gateway: {bind: "everywhere"}}', "gateway.bind", "loopback, lan, tailnet, auto, custom"),
        ("{gateway: {port: 70000}}", "gateway.port", "an integer from 1 to 65535"),
        ('{gateway: {port: "18789"}}', "gateway.port", "an integer"),
        ('{gateway: {tailscale: {mode: "on"}}}', "gateway.tailscale.mode", "off, serve, funnel"),
        ("{gateway: {auth: {rateLimit: {maxAttempts: 0}}}}", "gateway.auth.rateLimit.maxAttempts", "from 1"),
        (
            '{gateway: {controlUi: {allowedOrigins: "https://x"}}}',
            "gateway.controlUi.allowedOrigins",
            "array of strings",
        ),
        ("{gateway: {auth: []}}", "gateway.auth", "an object"),
    ],
)
def test_bad_values_name_file_key_and_allowed(tmp_path, text, key, allowed):
    path = tmp_path / "openclaw.json"
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, path, {})
    msg = str(info.value)
    assert str(path) in msg and key in msg and allowed in msg


def test_unknown_keys_warn_with_names(tmp_path):
    loaded = parse_config_text(
        '{gateway: {prot: 1, auth: {tokn: "x"}, tls: {enabled: false}}}', tmp_path / "c", {}
    )
    text = " ".join(loaded.warnings)
    assert "gateway.prot" in text and "gateway.auth.tokn" in text
    assert "tls" not in text  # an OpenClaw key we accept quietly


def test_invalid_json5_names_file(tmp_path):
    path = tmp_path / "broken.json"
    with pytest.raises(ConfigError) as info:
        parse_config_text("{gateway: {port: 1,,}}", path, {})
    assert str(path) in str(info.value) and "JSON5" in str(info.value)


def test_config_file_locations(tmp_path):
    home = tmp_path
    (home / ".clawdbot").mkdir()
    (home / ".clawdbot" / "clawdbot.json").write_text("{gateway: {port: 19001}}")
    assert load_config(None, {"HOME": str(home)}).get("port") == 19001
    (home / ".openclaw").mkdir()
    (home / ".openclaw" / "openclaw.json").write_text("{gateway: {port: 19002}}")
    assert load_config(None, {"HOME": str(home)}).get("port") == 19002
    other = tmp_path / "other.json5"
    other.write_text("{gateway: {port: 19003}}")
    assert load_config(None, {"HOME": str(home), "OPENCLAW_CONFIG_PATH": str(other)}).get("port") == 19003
    assert load_config(other, {"HOME": str(home)}).path == other
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.json", {"HOME": str(home)})


def test_port_precedence(tmp_path):
    text = "{gateway: {port: 19100}}"
    assert settings_for(tmp_path, text).port == 19100
    s = settings_for(tmp_path, text, {"CLAWDBOT_GATEWAY_PORT": "19200"})
    assert (s.port, s.port_source) == (19200, "env CLAWDBOT_GATEWAY_PORT")
    s = settings_for(
        tmp_path, text, {"OPENCLAW_GATEWAY_PORT": "127.0.0.1:19300", "CLAWDBOT_GATEWAY_PORT": "1"}
    )
    assert s.port == 19300
    assert settings_for(tmp_path, text, {"OPENCLAW_GATEWAY_PORT": "[::1]:19400"}).port == 19400
    assert settings_for(tmp_path, text, {"OPENCLAW_GATEWAY_PORT": "19300"}, port=19500).port == 19500
    with pytest.raises(ConfigError, match="OPENCLAW_GATEWAY_PORT"):
        settings_for(tmp_path, text, {"OPENCLAW_GATEWAY_PORT": "eighteen"})


def test_secret_precedence(tmp_path):
    text = '{gateway: {auth: {token: "from-config-0123456789"}}}'
    env = {"OPENCLAW_GATEWAY_TOKEN": "from-env-0123456789", "CLAWDBOT_GATEWAY_TOKEN": "from-legacy-env"}
    assert settings_for(tmp_path, text, env, token="from-flag-0123").token.source == "--token"
    assert settings_for(tmp_path, text, env).token.source == "config gateway.auth.token"
    assert settings_for(tmp_path, "{}", env).token.value == "from-env-0123456789"
    assert settings_for(tmp_path, "{}", {"CLAWDBOT_GATEWAY_TOKEN": "legacy-0123456789"}).token.source == (
        "env CLAWDBOT_GATEWAY_TOKEN"
    )


def test_secrets_are_masked_everywhere(tmp_path):
    s = settings_for(tmp_path, "{}", token="super-secret-token-value-xyz")
    assert "super-secret-token-value-xyz" not in repr(s)
    assert "super-secret-token-value-xyz" not in str(s.effective())


def test_generated_token_is_private_and_stable(tmp_path):
    s1 = settings_for(tmp_path, "{}")
    path = tmp_path / "state" / "gateway.token"
    assert s1.token is not None and len(s1.token.value) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert settings_for(tmp_path, "{}").token.value == s1.token.value


@pytest.mark.parametrize(
    ("text", "ov", "env", "key", "words"),
    [
        ('{gateway: {bind: "lan"}}', {}, {}, "gateway.auth.token", "without auth"),
        (
            '{gateway: {bind: "lan", auth: {mode: "password"}}}',
            {},
            {},
            "gateway.auth.password",
            "without auth",
        ),
        (
            '{gateway: {bind: "lan", auth: {mode: "none"}}}',
            {},
            {},
            "gateway.auth.mode",
            "only allowed with a loopback",
        ),
        ("{}", {"bind": "lan", "auth": "none"}, {}, "gateway.auth.mode", "loopback"),
        (
            '{gateway: {bind: "lan", tailscale: {mode: "serve"}}}',
            {"token": "t0123456789abcdef"},
            {},
            "gateway.bind",
            "requires gateway bind=loopback",
        ),
        (
            '{gateway: {tailscale: {mode: "funnel"}}}',
            {"token": "t0123456789abcdef"},
            {},
            "gateway.auth.mode",
            "requires gateway auth mode=password",
        ),
        (
            '{gateway: {bind: "custom"}}',
            {"token": "t0123456789abcdef"},
            {},
            "gateway.customBindHost",
            "needs an address",
        ),
        (
            '{gateway: {bind: "custom", customBindHost: "my.host"}}',
            {"token": "t0123456789abcdef"},
            {},
            "gateway.customBindHost",
            "not an IP",
        ),
        (
            '{gateway: {auth: {token: "change-me-to-a-long-random-token"}}}',
            {},
            {},
            "gateway.auth.token",
            "placeholder",
        ),
        ('{gateway: {auth: {mode: "password"}}}', {}, {}, "gateway.auth.password", "no password"),
        (
            '{gateway: {auth: {mode: "none"}, tailscale: {mode: "serve"}}}',
            {},
            {},
            "gateway.auth.mode",
            "every device on the tailnet",
        ),
    ],
)
def test_refusals_name_key_and_fix(tmp_path, text, ov, env, key, words):
    with pytest.raises(ConfigError) as info:
        settings_for(tmp_path, text, env, **ov)
    err = info.value
    assert err.key == key and words in str(err)
    assert err.fix


def test_tailnet_bind_without_tailscale_is_clear(tmp_path):
    with pytest.raises(RefusalError, match="no Tailscale address"):
        settings_for(tmp_path, "{}", token="t0123456789abcdef", bind="tailnet")


def test_ambiguous_token_and_password(tmp_path):
    env = {"OPENCLAW_GATEWAY_TOKEN": "tok-0123456789", "OPENCLAW_GATEWAY_PASSWORD": "pw-0123456789"}
    with pytest.raises(ConfigError, match="ambiguous"):
        settings_for(tmp_path, "{}", env)
    assert settings_for(tmp_path, '{gateway: {auth: {mode: "password"}}}', env).auth_mode == "password"


def test_lan_with_token_and_custom_bind_resolve(tmp_path):
    s = settings_for(tmp_path, '{gateway: {bind: "lan"}}', {"OPENCLAW_GATEWAY_TOKEN": "tok-0123456789"})
    assert s.bind.hosts == ("0.0.0.0",) and not s.bind.loopback_only
    s = settings_for(tmp_path, "{}", token="tok-0123456789", host="127.0.0.2")
    assert s.bind.mode == "custom" and s.bind.hosts == ("127.0.0.2",)


def test_control_ui_base_path_normalised(tmp_path):
    assert (
        settings_for(tmp_path, '{gateway: {controlUi: {basePath: "control/"}}}').control_ui_base_path
        == "/control"
    )
    assert settings_for(tmp_path, '{gateway: {controlUi: {basePath: "/"}}}').control_ui_base_path == ""
    with pytest.raises(ConfigError, match="basePath"):
        settings_for(tmp_path, '{gateway: {controlUi: {basePath: "/a/../b"}}}')
