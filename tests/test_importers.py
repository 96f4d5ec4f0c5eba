"""Importers: ~/.ssh/config LocalForward hosts (the seeds' block and tricky configs) and OpenClaw's
gateway.remote, with secrets kept apart from the profile. What ssh itself does with each config is
checked against the real OpenSSH client in test_sshconfig_oracle.py; here: the import's own rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clawd_client.importers import import_all, import_openclaw_config, parse_ssh_config
from clawd_client.profiles import SshTarget
from clawd_client.sshconfig import Unfollowable
from clawd_client.sshsyntax import parse_forward, split_args
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
    result = parse_ssh_config(home=home, system_config=None)
    assert [i.profile.name for i in result.profiles] == ["clawdbot-remote"]
    item = result.profiles[0]
    p = item.profile
    assert p.method == "ssh"
    assert p.ssh is not None
    # Just the alias: asyncssh reads ~/.ssh/config at connect time exactly as ssh does here, so
    # nothing is copied and later edits of the config apply to clawd as they do to ssh.
    assert p.ssh == SshTarget(host="clawdbot-remote")
    assert (p.local_port, p.remote_host, p.remote_port) == (18789, "127.0.0.1", 18789)
    assert p.auth == "token"
    assert item.origin == f"{home / '.ssh' / 'config'}:5"
    key = home / ".ssh" / "clawdbot_gateway"
    assert f"ssh clawdbot-remote lands on your-user@<remote-server-ip>:22 with {key}" in item.notes
    assert item.secrets == {}
    assert result.sources == [str(home / ".ssh" / "config")]


def test_missing_default_config_is_not_an_error(home: Path) -> None:
    result = parse_ssh_config(home=home, system_config=None)
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
  identityfile="~/.ssh/key with space"
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
    result = parse_ssh_config(home=home, system_config=None)
    got = by_name(result)
    assert sorted(got) == ["gw-any", "gw-bind", "gw-eq", "gw-many-18789", "gw-many-18791", "gw-v6"]

    eq = got["gw-eq"].profile
    assert eq.ssh == SshTarget(host="gw-eq")  # asyncssh reads this block as ssh does: nothing copied
    assert (eq.local_port, eq.remote_host, eq.remote_port) == (18789, "127.0.0.1", 18789)
    key = home / ".ssh" / "key with space"
    lands = f"ssh gw-eq lands on alice@gw.example.com:2222 via bastion@jump.example:22 with {key}"
    assert lands in got["gw-eq"].notes

    v6 = got["gw-v6"].profile
    assert v6.ssh.host == "gw-v6"
    assert (v6.local_port, v6.remote_host, v6.remote_port) == (18789, "::1", 18789)

    bind = got["gw-bind"].profile
    assert (bind.local_port, bind.remote_host, bind.remote_port) == (18790, "localhost", 18789)
    assert not any("clawd listens" in n for n in got["gw-bind"].notes)  # a loopback bind needs no note

    assert got["gw-many-18789"].profile.local_port == 18789
    assert got["gw-many-18791"].profile.remote_port == 18791

    assert any("clawd listens on 127.0.0.1:18792 only" in n for n in got["gw-any"].notes)

    skipped = "\n".join(result.skipped)
    cfg = home / ".ssh" / "config"
    assert f"{cfg}:5: LocalForward in a block that does not name the host" in skipped  # Host *
    assert f"{cfg}:29: " not in skipped  # Match host something: does not apply to any of these hosts
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
    result = parse_ssh_config(home=home, system_config=None)
    got = by_name(result)
    assert sorted(got) == ["after", "inc-a", "inc-b", "outer"]
    assert got["inc-b"].profile.local_port == 18790
    assert "ssh inc-b lands on b@inc-b:22 with default keys" in got["inc-b"].notes
    assert got["inc-b"].origin == f"{home / '.ssh' / 'nested.conf'}:1"
    assert got["outer"].profile.local_port == 18794
    assert any("lands on outer-user@outer:22" in n for n in got["outer"].notes)
    # After the Include returns, the outer file's own Host lines continue normally.
    assert got["after"].profile.local_port == 18795
    assert len(result.sources) == 5  # config, two config.d files, nested.conf, the fragment


def test_include_loop_is_bounded(home: Path) -> None:
    write(home / ".ssh" / "config", "Include config\n")
    with pytest.raises(ConfigError) as exc:
        parse_ssh_config(home=home, system_config=None)
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
    (item,) = parse_ssh_config(home=home, system_config=None).profiles
    assert item.profile.ssh == SshTarget(host="gw")
    assert "ssh gw lands on first@gw:2200 with default keys" in item.notes


def test_explicit_file_outside_ssh_dir(home: Path, tmp_path: Path) -> None:
    """clawd connect reads ~/.ssh/config, not this file: the profile must carry the values itself."""
    cfg = write(tmp_path / "elsewhere" / "my_ssh_config", SEEDS_BLOCK)
    (item,) = parse_ssh_config(cfg, home=home, system_config=None).profiles
    assert item.origin.startswith(str(cfg))
    key = str(home / ".ssh" / "clawdbot_gateway")
    assert item.profile.ssh == SshTarget(host="<remote-server-ip>", user="your-user", identity=key)
    assert any("host written as <remote-server-ip>" in n for n in item.notes)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("LocalForward 18789:127.0.0.1:18789", "has no target argument"),
        ("LocalForward 99999 127.0.0.1:18789", "is not a port number"),
        ("LocalForward 18789 127.0.0.1", "bad forwarding specification"),
        ("LocalForward 18789 127.0.0.1:18789 extra", "takes two arguments"),
        ('IdentityFile "~/.ssh/unterminated', "unterminated quoted string"),
        ("Port twenty-two", "is not a port number"),
        ("LocalForward [::1:18789 [::1]:18789", "bad forwarding specification"),
        ("Match exec", "missing Match criteria for exec"),
        ("Port 0", "is not a port number"),
    ],
)
def test_malformed_lines_name_file_and_line(home: Path, line: str, message: str) -> None:
    cfg = write(home / ".ssh" / "config", f"# header\nHost gw\n    {line}\n")
    with pytest.raises(ConfigError) as exc:
        parse_ssh_config(home=home, system_config=None)
    text = str(exc.value)
    assert text.startswith(f"{cfg}:3: "), text
    assert message in text


def test_one_argument_forward_says_how_to_fix(home: Path) -> None:
    write(home / ".ssh" / "config", "Host gw\n  LocalForward 18789:127.0.0.1:18789\n")
    with pytest.raises(ConfigError) as exc:
        parse_ssh_config(home=home, system_config=None)
    assert "LocalForward 18789 127.0.0.1:18789" in exc.value.render()


def test_split_args_like_openssh() -> None:
    assert split_args("\"a b\" c\\ d 'e f' # comment", "x") == ["a b", "c d", "e f"]
    assert split_args("C:\\Users\\me\\.ssh\\id", "x") == ["C:\\Users\\me\\.ssh\\id"]
    assert split_args("a#b", "x") == ["a#b"]


def test_parse_forward_forms() -> None:
    f = parse_forward(["18789", "127.0.0.1:18789"], "f:1")
    assert (f.bind, f.port, f.host, f.host_port) == (None, 18789, "127.0.0.1", 18789)
    f = parse_forward(["localhost:18789", "[2001:db8::5]:1234"], "f:1")
    assert (f.bind, f.host, f.host_port) == ("localhost", "2001:db8::5", 1234)
    f = parse_forward([":18789", "gw.internal:18789"], "f:1")
    assert f.bind == ""
    assert f.ssh_g() == "[]:18789 [gw.internal]:18789"  # as ssh -G prints it
    assert parse_forward(["18789", "/run/gw.sock"], "f:1").connect_path == "/run/gw.sock"
    assert parse_forward(["18789", "h:ssh"], "f:1").host_port == 22  # service names, like a2port


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


def test_proxycommand_followed_only_without_a_shell(home: Path) -> None:
    write(
        home / ".ssh" / "config",
        "Host gw\n  HostName gw.example\n  ProxyCommand nc %h %p\n  LocalForward 18789 127.0.0.1:18789\n",
    )
    (item,) = parse_ssh_config(home=home, system_config=None).profiles
    assert item.profile.ssh == SshTarget(host="gw")  # asyncssh runs the same `nc gw.example 22`
    assert any("via ProxyCommand nc gw.example 22" in n for n in item.notes)
    write(
        home / ".ssh" / "config",
        "Host gw\n  ProxyCommand ssh -W %h:%p bastion 2>/dev/null\n  LocalForward 18789 127.0.0.1:18789\n",
    )
    with pytest.raises(Unfollowable) as exc:
        parse_ssh_config(home=home, system_config=None)
    assert str(exc.value).startswith(f"{home / '.ssh' / 'config'}:2: cannot follow ProxyCommand")


def test_what_a_profile_cannot_express_is_refused_with_the_line(home: Path, tmp_path: Path) -> None:
    """clawd connect reads ~/.ssh/config (absent here), so two keys from another file cannot be
    carried: a profile names one key, and guessing which one ssh would succeed with is not ours."""
    cfg = write(
        tmp_path / "other_config",
        "Host gw\n  LocalForward 18789 127.0.0.1:18789\n  IdentityFile /keys/one\n  IdentityFile /keys/two\n",
    )
    with pytest.raises(Unfollowable) as exc:
        parse_ssh_config(cfg, home=home, system_config=None)
    text = str(exc.value)
    assert text.startswith(f"{cfg}:3: clawd cannot make its SSH library land where `ssh gw` lands")
    assert "with /keys/one, /keys/two" in text and "identities differ" in text
    assert "clawd profile add NAME --ssh" in exc.value.render()


def test_system_config_is_read_after_the_users_only_by_default(home: Path, tmp_path: Path) -> None:
    system = write(tmp_path / "ssh_config", "Host *\n  User from-system\n")
    cfg = write(home / ".ssh" / "config", "Host gw\n  LocalForward 18789 127.0.0.1:18789\n")
    (item,) = parse_ssh_config(home=home, system_config=system).profiles
    assert item.profile.ssh == SshTarget(host="gw", user="from-system")  # asyncssh never reads /etc
    assert parse_ssh_config(home=home, system_config=system).sources == [str(cfg), str(system)]
    (item,) = parse_ssh_config(cfg, home=home, system_config=system).profiles  # like ssh -F: alone
    assert item.profile.ssh == SshTarget(host="gw")
