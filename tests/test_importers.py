"""Importers: ~/.ssh/config LocalForward hosts (the seeds' block and tricky configs) and OpenClaw's
gateway.remote, with secrets kept apart from the profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clawd_client.importers import (
    import_all,
    import_openclaw_config,
    parse_local_forward,
    parse_ssh_config,
    split_args,
)
from clawd_gateway.errors import ConfigError

SEEDS_BLOCK = """\
Host clawdbot-remote
    HostName <remote-server-ip>
    User your-user
    IdentityFile ~/.ssh/clawdbot_gateway
    LocalForward 18789 127.0.0.1:18789
    ServerAliveInterval 60
    ServerAliveCountMax 3
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    (h / ".ssh").mkdir(parents=True)
    return h


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def by_name(result) -> dict:
    return {item.profile.name: item for item in result.profiles}


# --- ssh_config ------------------------------------------------------------------------------------


def test_seeds_block(home: Path) -> None:
    write(home / ".ssh" / "config", SEEDS_BLOCK)
    result = parse_ssh_config(home=home)
    assert [i.profile.name for i in result.profiles] == ["clawdbot-remote"]
    item = result.profiles[0]
    p = item.profile
    assert p.method == "ssh"
    assert p.ssh is not None
    assert p.ssh.host == "clawdbot-remote"  # the alias: asyncssh applies the rest of ~/.ssh/config
    assert p.ssh.user == "your-user"
    assert p.ssh.port is None
    assert p.ssh.identity == str(home / ".ssh" / "clawdbot_gateway")
    assert p.ssh.jump is None
    assert (p.local_port, p.remote_host, p.remote_port) == (18789, "127.0.0.1", 18789)
    assert p.auth == "token"
    assert item.origin == f"{home / '.ssh' / 'config'}:5"
    assert "HostName <remote-server-ip>" in item.notes
    assert item.secrets == {}
    assert result.sources == [str(home / ".ssh" / "config")]


def test_missing_default_config_is_not_an_error(home: Path) -> None:
    result = parse_ssh_config(home=home)
    assert result.profiles == []
    assert "no SSH config" in result.skipped[0]


def test_missing_explicit_file_is_an_error(home: Path) -> None:
    with pytest.raises(ConfigError, match="SSH config file not found"):
        parse_ssh_config(home / "nope", home=home)


def test_tricky_config(home: Path) -> None:
    write(
        home / ".ssh" / "config",
        """\
# comments and blank lines

host *
    ServerAliveInterval 30
    LocalForward 9999 127.0.0.1:9999

HOST=gw-eq
  HOSTNAME = gw.example.com
  user=alice
  PORT=2222
  identityfile="~/.ssh/key with space"   # trailing comment
  ProxyJump bastion@jump.example:22
  localforward=18789 127.0.0.1:18789

Host gw-v6 !gw-not *.wild
    Hostname 2001:db8::1
    LocalForward [::1]:18789 [::1]:18789

Host gw-bind
    LocalForward 127.0.0.1:18790 localhost:18789

Host gw-many
    LocalForward 18789 127.0.0.1:18789
    LocalForward 18791 127.0.0.1:18791
    LocalForward 18789 127.0.0.1:18789
    LocalForward /tmp/local.sock /run/remote.sock

Host noforward
    HostName plain.example.com
    User bob

Host gw-any
    LocalForward *:18792 127.0.0.1:18789

Match host something
    LocalForward 18793 127.0.0.1:18789
""",
    )
    result = parse_ssh_config(home=home)
    got = by_name(result)
    assert sorted(got) == ["gw-any", "gw-bind", "gw-eq", "gw-many-18789", "gw-many-18791", "gw-v6"]

    eq = got["gw-eq"].profile
    assert eq.ssh.host == "gw-eq"
    assert eq.ssh.user == "alice"
    assert eq.ssh.port == 2222
    assert eq.ssh.identity == str(home / ".ssh" / "key with space")
    assert eq.ssh.jump == "bastion@jump.example:22"
    assert (eq.local_port, eq.remote_host, eq.remote_port) == (18789, "127.0.0.1", 18789)

    v6 = got["gw-v6"].profile
    assert v6.ssh.host == "gw-v6"
    assert (v6.local_port, v6.remote_host, v6.remote_port) == (18789, "::1", 18789)

    bind = got["gw-bind"].profile
    assert (bind.local_port, bind.remote_host, bind.remote_port) == (18790, "localhost", 18789)
    assert not got["gw-bind"].notes  # a loopback bind needs no note

    assert got["gw-many-18789"].profile.local_port == 18789
    assert got["gw-many-18791"].profile.remote_port == 18791

    assert any("clawd listens on 127.0.0.1:18792 only" in n for n in got["gw-any"].notes)

    skipped = "\n".join(result.skipped)
    assert "under 'Host *'" in skipped
    assert "Match block" in skipped
    assert "Unix-socket LocalForward skipped" in skipped


def test_include_relative_glob_and_inside_host_block(home: Path) -> None:
    write(
        home / ".ssh" / "config",
        """\
Include config.d/*.conf
Host outer
    User outer-user
    Include ~/.ssh/fragments/outer-forward
Host after
    LocalForward 18795 127.0.0.1:18789
""",
    )
    write(home / ".ssh" / "config.d" / "10-first.conf", "Host inc-a\n  LocalForward 18789 127.0.0.1:18789\n")
    write(
        home / ".ssh" / "config.d" / "20-second.conf",
        "Host inc-b\n  User b\n  Include nested.conf\n",
    )
    write(home / ".ssh" / "config.d" / "ignored.txt", "Host ignored\n  LocalForward 1 127.0.0.1:2\n")
    write(home / ".ssh" / "nested.conf", "  LocalForward 18790 127.0.0.1:18789\n")
    # Lines before any Host in an included file belong to the including Host block.
    write(home / ".ssh" / "fragments" / "outer-forward", "LocalForward 18794 127.0.0.1:18789\n")
    result = parse_ssh_config(home=home)
    got = by_name(result)
    assert sorted(got) == ["after", "inc-a", "inc-b", "outer"]
    assert got["inc-b"].profile.local_port == 18790
    assert got["inc-b"].profile.ssh.user == "b"
    assert got["inc-b"].origin == f"{home / '.ssh' / 'nested.conf'}:1"
    assert got["outer"].profile.local_port == 18794
    assert got["outer"].profile.ssh.user == "outer-user"
    # After the Include returns, the outer file's own Host lines continue normally.
    assert got["after"].profile.local_port == 18795
    assert len(result.sources) == 5  # config, two config.d files, nested.conf, the fragment


def test_include_loop_is_bounded(home: Path) -> None:
    write(home / ".ssh" / "config", "Include config\n")
    with pytest.raises(ConfigError) as exc:
        parse_ssh_config(home=home)
    assert "Include nested more than 16 deep" in str(exc.value)
    assert f"{home / '.ssh' / 'config'}:1" in str(exc.value)


def test_same_alias_in_two_blocks_merges_first_value_wins(home: Path) -> None:
    write(
        home / ".ssh" / "config",
        """\
Host gw
    User first
    LocalForward 18789 127.0.0.1:18789
Host gw
    User second
    Port 2200
""",
    )
    (item,) = parse_ssh_config(home=home).profiles
    assert item.profile.ssh.user == "first"
    assert item.profile.ssh.port == 2200


def test_explicit_file_outside_ssh_dir(home: Path, tmp_path: Path) -> None:
    cfg = write(tmp_path / "elsewhere" / "my_ssh_config", SEEDS_BLOCK)
    (item,) = parse_ssh_config(cfg, home=home).profiles
    assert item.origin.startswith(str(cfg))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("LocalForward 18789:127.0.0.1:18789", "has no target argument"),
        ("LocalForward 99999 127.0.0.1:18789", "is not a port number"),
        ("LocalForward 18789 127.0.0.1", "is not host:hostport"),
        ("LocalForward 18789 127.0.0.1:18789 extra", "takes two arguments"),
        ('IdentityFile "~/.ssh/unterminated', "unterminated quoted string"),
        ("Port twenty-two", "is not a port number"),
        ("LocalForward [::1:18789 [::1]:18789", "unbalanced '['"),
    ],
)
def test_malformed_lines_name_file_and_line(home: Path, line: str, message: str) -> None:
    cfg = write(home / ".ssh" / "config", f"# header\nHost gw\n    {line}\n")
    with pytest.raises(ConfigError) as exc:
        parse_ssh_config(home=home)
    text = str(exc.value)
    assert text.startswith(f"{cfg}:3: "), text
    assert message in text


def test_one_argument_forward_says_how_to_fix(home: Path) -> None:
    write(home / ".ssh" / "config", "Host gw\n  LocalForward 18789:127.0.0.1:18789\n")
    with pytest.raises(ConfigError) as exc:
        parse_ssh_config(home=home)
    assert "LocalForward 18789 127.0.0.1:18789" in exc.value.render()


def test_split_args_like_openssh() -> None:
    assert split_args("\"a b\" c\\ d 'e f' # comment", "x") == ["a b", "c d", "e f"]
    assert split_args("C:\\Users\\me\\.ssh\\id", "x") == ["C:\\Users\\me\\.ssh\\id"]
    assert split_args("a#b", "x") == ["a#b"]


def test_parse_local_forward_forms() -> None:
    f = parse_local_forward(["18789", "127.0.0.1:18789"], "f:1")
    assert (f.bind_address, f.local_port, f.remote_host, f.remote_port) == (None, 18789, "127.0.0.1", 18789)
    f = parse_local_forward(["localhost:18789", "[2001:db8::5]:1234"], "f:1")
    assert (f.bind_address, f.remote_host, f.remote_port) == ("localhost", "2001:db8::5", 1234)
    f = parse_local_forward([":18789", "gw.internal:18789"], "f:1")
    assert f.bind_address == ""
    assert parse_local_forward(["18789", "/run/gw.sock"], "f:1") is None


# --- OpenClaw config -------------------------------------------------------------------------------


def test_openclaw_token_from_env_var_goes_to_secrets_not_profile(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "openclaw.json",
        """{
  // JSON5, as OpenClaw writes it
  gateway: {
    mode: "remote",
    remote: {
      url: "ws://127.0.0.1:18789",
      transport: "ssh",
      sshTarget: "deploy@vps.example.com:2222",
      sshIdentity: "~/.ssh/vps_key",
      token: "${MY_GW_TOKEN}",
    },
  },
}""",
    )
    result = import_openclaw_config(cfg, env={"MY_GW_TOKEN": "from-env-0123456789", "HOME": str(tmp_path)})
    (item,) = result.profiles
    p = item.profile
    assert p.name == "openclaw"
    assert p.method == "ssh"
    assert (p.ssh.host, p.ssh.user, p.ssh.port) == ("vps.example.com", "deploy", 2222)
    assert p.ssh.identity.endswith("/.ssh/vps_key") and "~" not in p.ssh.identity
    assert (p.local_port, p.remote_port, p.auth) == (18789, 18789, "token")
    assert item.secrets["token"].value == "from-env-0123456789"
    assert item.secrets["token"].source == "config gateway.remote.token"
    assert "from-env-0123456789" not in json.dumps(p.to_json())
    assert not any("literally" in n for n in item.notes)


def test_openclaw_literal_password_direct_url(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "openclaw.json",
        '{gateway: {remote: {url: "wss://gw.example.com", transport: "direct", password: "pw-literal-123"}}}',
    )
    (item,) = import_openclaw_config(cfg, env={}).profiles
    assert item.profile.method == "direct"
    assert item.profile.url == "wss://gw.example.com"
    assert item.profile.auth == "password"
    assert item.secrets["password"].value == "pw-literal-123"
    assert any("gateway.remote.password is written literally" in n for n in item.notes)
    assert "pw-literal-123" not in json.dumps(item.profile.to_json())


def test_openclaw_missing_env_var_names_key(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "openclaw.json", '{gateway: {remote: {url: "ws://127.0.0.1:18789", token: "${NOPE}"}}}'
    )
    with pytest.raises(ConfigError) as exc:
        import_openclaw_config(cfg, env={})
    assert str(cfg) in str(exc.value)
    assert "gateway.remote.token" in str(exc.value)
    assert "NOPE" in str(exc.value)


def test_openclaw_malformed_json5_names_file_and_line(tmp_path: Path) -> None:
    cfg = write(tmp_path / "openclaw.json", '{\n  gateway: {\n    remote: { url: "ws://x" \n')
    with pytest.raises(ConfigError) as exc:
        import_openclaw_config(cfg, env={})
    assert str(cfg) in str(exc.value)
    assert "not valid JSON5" in str(exc.value)


@pytest.mark.parametrize(
    ("remote", "message"),
    [
        ('{url: "http://gw.example.com"}', "is not a ws:// or wss:// URL"),
        ('{sshTarget: "-oProxyCommand=evil"}', "gateway.remote.sshTarget"),
        ('{transport: "direct", sshTarget: "me@host"}', "gateway.remote.url"),
    ],
)
def test_openclaw_bad_values(tmp_path: Path, remote: str, message: str) -> None:
    cfg = write(tmp_path / "openclaw.json", f"{{gateway: {{remote: {remote}}}}}")
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        import_openclaw_config(cfg, env={})


def test_openclaw_without_remote_section(tmp_path: Path) -> None:
    cfg = write(tmp_path / "openclaw.json", "{gateway: {port: 18789}}")
    result = import_openclaw_config(cfg, env={})
    assert result.profiles == []
    assert "no gateway.remote.url" in result.skipped[0]


def test_openclaw_default_locations(tmp_path: Path) -> None:
    home = tmp_path / "h"
    env = {"HOME": str(home)}
    assert "no OpenClaw config found" in import_openclaw_config(None, env=env).skipped[0]
    write(home / ".clawdbot" / "clawdbot.json", '{gateway: {remote: {url: "wss://seed.example"}}}')
    (item,) = import_openclaw_config(None, env=env).profiles
    assert item.profile.url == "wss://seed.example"


def test_seeds_setup_merges_into_one_profile(home: Path, tmp_path: Path) -> None:
    """ssh config LocalForward + OpenClaw remote.url on that local port: one gateway, one profile."""
    write(home / ".ssh" / "config", SEEDS_BLOCK)
    cfg = write(
        tmp_path / "openclaw.json",
        '{gateway: {mode: "remote", remote: {url: "ws://127.0.0.1:18789", token: "seed-token-abcdef012345"}}}',
    )
    result = import_all(None, cfg, home=home, env={})
    (item,) = result.profiles
    assert item.profile.name == "clawdbot-remote"
    assert item.secrets["token"].value == "seed-token-abcdef012345"
    assert any("same gateway as clawdbot-remote" in s for s in result.skipped)


def test_openclaw_ssh_target_elsewhere_is_kept_separate(home: Path, tmp_path: Path) -> None:
    write(home / ".ssh" / "config", SEEDS_BLOCK)
    cfg = write(
        tmp_path / "openclaw.json",
        '{gateway: {remote: {url: "ws://127.0.0.1:18790", sshTarget: "me@other.example", password: "p-1234567890"}}}',
    )
    got = by_name(import_all(None, cfg, home=home, env={}))
    assert sorted(got) == ["clawdbot-remote", "openclaw"]
    assert got["openclaw"].profile.local_port == 18790
    assert got["openclaw"].profile.auth == "password"
    assert got["clawdbot-remote"].secrets == {}


def test_openclaw_loopback_url_alone_becomes_direct_with_a_hint(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "openclaw.json",
        '{gateway: {remote: {url: "ws://127.0.0.1:18789", token: "t-0123456789"}}}',
    )
    (item,) = import_openclaw_config(cfg, env={}).profiles
    assert item.profile.method == "direct"
    assert item.profile.url == "ws://127.0.0.1:18789"
    assert any("end of an SSH tunnel you run yourself" in n for n in item.notes)
