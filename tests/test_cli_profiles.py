"""`clawd profile ...` / `clawd secret ...` as real processes (through a tiny parser that only calls
`register()`, so these tests do not depend on cli.py), against a real Secret Service."""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support import keyring_session

from clawd_client import cli_import, cli_profiles, cli_secret
from clawd_client.profiles import ProfileStore

# Fixtures from the shared helper, bound here so pytest finds them in this module.
isolated_keyring = keyring_session.isolated_keyring
secret_service = keyring_session.secret_service

TOKEN = "cli-secret-7d1e0c9b8a7f6e5d4c3b2a1908f7e6d5"

CLI = """
import argparse, sys
from clawd_client.cli_profiles import register
parser = argparse.ArgumentParser(prog="clawd")
sub = parser.add_subparsers(dest="command", required=True)
register(sub)
args = parser.parse_args()
sys.exit(args.func(args))
"""


@pytest.fixture(autouse=True)
def _isolated(isolated_keyring: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWD_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "home" / ".ssh").mkdir(parents=True, exist_ok=True)


def base_env(tmp_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_", "DBUS_"))}
    env.update(
        HOME=str(tmp_path / "home"),
        CLAWD_CONFIG_DIR=str(tmp_path / "config"),
        CLAWD_STATE_DIR=str(tmp_path / "state"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    env.update(extra or {})
    return env


def clawd(
    tmp_path: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", CLI, *args]
    proc = subprocess.run(
        cmd, input=stdin, env=base_env(tmp_path, env), capture_output=True, text=True, timeout=60
    )
    assert TOKEN not in " ".join(cmd)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def profiles_text(tmp_path: Path) -> str:
    return (tmp_path / "config" / "profiles.json").read_text()


# --- profile add / list / remove -------------------------------------------------------------------


def test_add_list_remove_with_real_keyring(tmp_path: Path, secret_service) -> None:
    kr = secret_service.env
    r = clawd(
        tmp_path,
        "profile",
        "add",
        "vps",
        "--ssh",
        "deploy@vps.example.com:2222",
        "--jump",
        "bastion.example",
        "--local-port",
        "18790",
        "--keepalive",
        "2",
    )
    assert r.returncode == 0, r.stderr
    assert "profile vps: ssh deploy@vps.example.com:2222 via bastion.example" in r.stdout
    assert "clawd secret set vps" in r.stdout
    path = tmp_path / "config" / "profiles.json"
    assert path.stat().st_mode & 0o777 == 0o600
    p = ProfileStore(path).get("vps")
    assert (p.ssh.host, p.ssh.user, p.ssh.port, p.ssh.jump) == (
        "vps.example.com",
        "deploy",
        2222,
        "bastion.example",
    )
    assert (p.local_port, p.remote_port, p.keepalive_interval) == (18790, 18789, 2.0)

    r = clawd(tmp_path, "profile", "list", env=kr)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "METHOD", "TARGET", "LOCAL", "URL", "AUTH", "SECRET"]
    assert lines[1].split()[:3] == ["vps", "ssh", "deploy@vps.example.com:2222"]
    assert lines[1].split()[-1] == "missing"
    assert "keyring: SecretService (keyring.backends.SecretService.Keyring, priority 5)" in r.stdout

    r = clawd(tmp_path, "secret", "set", "vps", stdin=TOKEN + "\n", env=kr)
    assert r.returncode == 0, r.stderr
    assert "stored the gateway token for profile vps in the keyring (SecretService)" in r.stdout

    r = clawd(tmp_path, "profile", "list", "--json", env=kr)
    data = json.loads(r.stdout)
    (row,) = data["profiles"]
    assert row["name"] == "vps"
    assert row["local_url"] == "ws://127.0.0.1:18790"
    assert row["secret"] == {"available": True, "stored": True, "source": "keyring (SecretService)"}
    assert data["keyring"]["usable"] is True
    assert TOKEN not in r.stdout

    # An env override shows as such, still without the value.
    r = clawd(tmp_path, "profile", "list", env={**kr, "OPENCLAW_GATEWAY_TOKEN": "env-value-xyz"})
    assert "env OPENCLAW_GATEWAY_TOKEN" in r.stdout
    assert "env-value-xyz" not in r.stdout

    r = clawd(tmp_path, "profile", "remove", "vps", env=kr)
    assert r.returncode == 0, r.stderr
    assert "removed profile vps" in r.stdout
    assert "cleared its stored token from the keyring" in r.stdout
    assert ProfileStore(path).load() == {}
    code = "import keyring; print(keyring.get_password('clawd', 'vps:token'))"
    out = subprocess.run([sys.executable, "-c", code], env=kr, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "None"


def test_add_refusals_and_exit_codes(tmp_path: Path) -> None:
    assert clawd(tmp_path, "profile", "add", "a", "--ssh", "me@host").returncode == 0
    r = clawd(tmp_path, "profile", "add", "a", "--ssh", "me@other")
    assert r.returncode == 1
    assert "clawd: profile 'a' already exists" in r.stderr
    assert "fix: remove it first" in r.stderr
    assert clawd(tmp_path, "profile", "add", "a", "--ssh", "me@other", "--replace").returncode == 0
    assert ProfileStore(tmp_path / "config" / "profiles.json").get("a").ssh.host == "other"

    r = clawd(tmp_path, "profile", "add", "b", "--ssh=-oProxyCommand=evil")
    assert r.returncode == 78
    assert "is not an SSH target" in r.stderr

    r = clawd(tmp_path, "profile", "add", "b", "--ssh", "h", "--identity", str(tmp_path / "missing_key"))
    assert r.returncode == 78
    assert "--identity" in r.stderr and "no such file" in r.stderr

    r = clawd(tmp_path, "profile", "add", "bad name", "--ssh", "h")
    assert r.returncode == 78
    assert "not a valid profile name" in r.stderr

    assert clawd(tmp_path, "profile", "add", "b", "--ssh", "h", "--remote-port", "70000").returncode == 2
    assert clawd(tmp_path, "profile", "add", "b").returncode == 2  # --ssh is required
    assert clawd(tmp_path, "profile").returncode == 2  # no action: help, usage exit

    r = clawd(tmp_path, "profile", "remove", "nope")
    assert r.returncode == 1
    assert "no profile named 'nope' (known: a)" in r.stderr


def test_list_without_keyring_still_lists(tmp_path: Path) -> None:
    clawd(tmp_path, "profile", "add", "a", "--ssh", "h")
    r = clawd(tmp_path, "profile", "list")
    assert r.returncode == 0, r.stderr
    assert "unknown (no keyring)" in r.stdout
    assert "keyring: not usable" in r.stdout
    data = json.loads(clawd(tmp_path, "profile", "list", "--json").stdout)
    assert data["keyring"]["usable"] is False
    assert "fail.Keyring" in data["keyring"]["reason"]


def test_remove_without_keyring_warns_but_removes(tmp_path: Path) -> None:
    clawd(tmp_path, "profile", "add", "a", "--ssh", "h")
    r = clawd(tmp_path, "profile", "remove", "a")
    assert r.returncode == 0
    assert "could not clear its keyring secrets" in r.stderr
    assert ProfileStore(tmp_path / "config" / "profiles.json").load() == {}


# --- secret set / clear ------------------------------------------------------------------------------


def test_secret_set_from_stdin_never_leaks(tmp_path: Path, secret_service) -> None:
    kr = secret_service.env
    clawd(tmp_path, "profile", "add", "gw", "--ssh", "me@h", "--auth", "password")
    r = clawd(tmp_path, "secret", "set", "gw", stdin=TOKEN + "\r\n", env=kr)
    assert r.returncode == 0, r.stderr
    assert "stored the gateway password for profile gw" in r.stdout  # kind follows the profile's auth
    for text in (r.stdout, r.stderr, profiles_text(tmp_path)):
        assert TOKEN not in text
    for f in (tmp_path / "config").rglob("*"):
        if f.is_file():
            assert TOKEN not in f.read_text(errors="replace")
    code = "import keyring; print(keyring.get_password('clawd', 'gw:password'))"
    out = subprocess.run([sys.executable, "-c", code], env=kr, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == TOKEN  # exactly the line, without its line ending

    # --password on a token profile stores a password and says it is unused.
    clawd(tmp_path, "profile", "add", "tok", "--ssh", "me@h")
    r = clawd(tmp_path, "secret", "set", "tok", "--password", stdin="pw-1234567890\n", env=kr)
    assert r.returncode == 0, r.stderr
    assert "uses token auth, so this password is not used yet" in r.stdout

    r = clawd(tmp_path, "secret", "clear", "gw", env=kr)
    assert r.returncode == 0
    assert "cleared the stored password of profile gw" in r.stdout
    r = clawd(tmp_path, "secret", "clear", "gw", env=kr)
    assert "had no stored secret" in r.stdout
    r = clawd(tmp_path, "secret", "clear", "ghost", env=kr)
    assert r.returncode == 1
    assert "no profile named 'ghost' and no stored secret" in r.stderr


def test_secret_set_refusals(tmp_path: Path, secret_service) -> None:
    kr = secret_service.env
    clawd(tmp_path, "profile", "add", "gw", "--ssh", "h")
    r = clawd(tmp_path, "secret", "set", "gw", stdin="\n", env=kr)
    assert r.returncode == 1
    assert "no secret given (the input was empty)" in r.stderr
    r = clawd(tmp_path, "secret", "set", "gw", stdin="", env=kr)
    assert r.returncode == 1
    r = clawd(tmp_path, "secret", "set", "nope", stdin=TOKEN, env=kr)
    assert r.returncode == 1
    assert "no profile named 'nope'" in r.stderr
    # argv has no way to carry the secret: an extra positional is a usage error.
    r = clawd(tmp_path, "secret", "set", "gw", "some-secret-value", env=kr)
    assert r.returncode == 2


def test_secret_set_without_keyring_fails_clearly(tmp_path: Path) -> None:
    clawd(tmp_path, "profile", "add", "gw", "--ssh", "h")
    r = clawd(tmp_path, "secret", "set", "gw", stdin=TOKEN + "\n")
    assert r.returncode == 1
    assert r.stderr.startswith("clawd: no usable OS keyring")
    assert "keyring.backends.fail.Keyring" in r.stderr
    assert "fix: Linux: install and unlock a Secret Service provider" in r.stderr
    assert TOKEN not in r.stderr + r.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminal")
def test_secret_set_prompts_without_echo_on_a_terminal(tmp_path: Path, secret_service) -> None:
    import pty

    clawd(tmp_path, "profile", "add", "gw", "--ssh", "h")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "secret", "set", "gw"],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=base_env(tmp_path, secret_service.env),
        start_new_session=True,  # no controlling terminal: never read the developer's real tty
    )
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while b"gateway token for profile gw:" not in seen:
            assert time.monotonic() < deadline, f"no prompt; saw {seen!r}"
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                seen += os.read(master, 1024)
        os.write(master, (TOKEN + "\n").encode())
        stdout, _ = proc.communicate(timeout=30)
        while True:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                break
            try:
                chunk = os.read(master, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(master)
    assert proc.returncode == 0, seen
    assert TOKEN.encode() not in seen  # not echoed
    assert b"stored the gateway token for profile gw" in stdout
    code = "import keyring; print(keyring.get_password('clawd', 'gw:token'))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=secret_service.env, capture_output=True, text=True, timeout=30
    )
    assert out.stdout.strip() == TOKEN


# --- profile import ----------------------------------------------------------------------------------

SEEDS = """\
Host clawdbot-remote
    HostName 203.0.113.7
    User your-user
    IdentityFile ~/.ssh/clawdbot_gateway
    LocalForward 18789 127.0.0.1:18789
    ServerAliveInterval 60
    ServerAliveCountMax 3

Host second
    LocalForward 18800 127.0.0.1:18789
"""


def write_sources(tmp_path: Path) -> tuple[Path, Path]:
    ssh = tmp_path / "home" / ".ssh" / "config"
    ssh.write_text(SEEDS)
    oc = tmp_path / "home" / ".openclaw" / "openclaw.json"
    oc.parent.mkdir(parents=True, exist_ok=True)
    oc.write_text(
        '{gateway: {mode: "remote", remote: {url: "ws://127.0.0.1:18789", token: "${SEED_TOKEN}"}}}'
    )
    return ssh, oc


def test_import_dry_run_then_real_with_keyring(tmp_path: Path, secret_service) -> None:
    kr = {**secret_service.env, "SEED_TOKEN": TOKEN}
    write_sources(tmp_path)

    r = clawd(tmp_path, "profile", "import", "--dry-run", env=kr)
    assert r.returncode == 0, r.stderr
    # The alias alone: asyncssh resolves it at connect time as ssh does (HostName, User); the key is
    # written out because ssh takes `~` from the passwd entry and asyncssh from $HOME (a temp dir here).
    assert "would import clawdbot-remote: ssh clawdbot-remote -> ws://127.0.0.1:18789" in r.stdout
    assert "note: ssh clawdbot-remote lands on your-user@203.0.113.7:22 with " in r.stdout
    assert "token (config gateway.remote.token) -> keyring (SecretService)" in r.stdout
    assert "would import second" in r.stdout
    assert not (tmp_path / "config" / "profiles.json").exists()
    assert TOKEN not in r.stdout + r.stderr

    r = clawd(tmp_path, "profile", "import", "--json", env=kr)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["dry_run"] is False
    names = [i["name"] for i in data["imported"]]
    assert names == ["clawdbot-remote", "second"]
    first = data["imported"][0]
    assert first["secrets"] == [
        {"kind": "token", "from": "config gateway.remote.token", "to": "keyring (SecretService)"}
    ]
    assert TOKEN not in r.stdout + r.stderr
    assert TOKEN not in profiles_text(tmp_path)
    code = "import keyring; print(keyring.get_password('clawd', 'clawdbot-remote:token'))"
    out = subprocess.run([sys.executable, "-c", code], env=kr, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == TOKEN

    # Again: existing names are skipped unless --replace.
    r = clawd(tmp_path, "profile", "import", env=kr)
    assert "skipped clawdbot-remote: profile exists" in r.stdout
    assert "nothing imported" in r.stdout
    r = clawd(
        tmp_path, "profile", "import", "--replace", "--ssh-config", str(tmp_path / "home/.ssh/config"), env=kr
    )
    assert "imported clawdbot-remote" in r.stdout
    assert "token" not in r.stdout.split("imported clawdbot-remote")[1].splitlines()[1]  # ssh-only: no secret


def test_import_with_secret_but_no_keyring_writes_nothing(tmp_path: Path) -> None:
    write_sources(tmp_path)
    r = clawd(tmp_path, "profile", "import", env={"SEED_TOKEN": TOKEN})
    assert r.returncode == 1
    assert "no usable OS keyring" in r.stderr
    assert not (tmp_path / "config" / "profiles.json").exists()
    assert TOKEN not in r.stdout + r.stderr
    # The SSH config alone carries no secret, so it imports fine without a keyring.
    r = clawd(tmp_path, "profile", "import", "--ssh-config", str(tmp_path / "home/.ssh/config"))
    assert r.returncode == 0, r.stderr
    assert sorted(ProfileStore(tmp_path / "config" / "profiles.json").load()) == ["clawdbot-remote", "second"]


def test_import_malformed_ssh_config_exit_78(tmp_path: Path) -> None:
    cfg = tmp_path / "bad_config"
    cfg.write_text("Host x\n  LocalForward 18789:127.0.0.1:18789\n")
    r = clawd(tmp_path, "profile", "import", "--ssh-config", str(cfg))
    assert r.returncode == 78
    assert f"clawd: {cfg}:2: LocalForward" in r.stderr
    assert "fix: write it as two arguments" in r.stderr


# --- in-process: the register() interface itself ------------------------------------------------


def test_register_interface_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="clawd")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_profiles.register(sub)
    args = parser.parse_args(["profile", "add", "one", "--ssh", "u@h:22", "--auth", "password"])
    assert args.func is cli_profiles.cmd_profile_add
    assert args.func(args) == 0
    capsys.readouterr()
    args = parser.parse_args(["profile", "list", "--json"])
    assert args.func(args) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["profiles"][0]["auth"] == "password"
    assert listed["profiles"][0]["target"] == "u@h:22"
    for argv, fn in [
        (["profile", "remove", "one"], cli_profiles.cmd_profile_remove),
        (["profile", "import", "--dry-run"], cli_import.cmd_profile_import),
        (["secret", "set", "one", "--password"], cli_secret.cmd_secret_set),
        (["secret", "clear", "one"], cli_secret.cmd_secret_clear),
    ]:
        assert parser.parse_args(argv).func is fn


def test_list_with_locked_keyring_says_so(
    tmp_path: Path, secret_service, capsys: pytest.CaptureFixture[str]
) -> None:
    import secretstorage

    parser = argparse.ArgumentParser(prog="clawd")
    cli_profiles.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["profile", "add", "gw", "--ssh", "h"])
    assert args.func(args) == 0
    conn = secretstorage.dbus_init()
    try:
        secretstorage.get_default_collection(conn).lock()
    finally:
        conn.close()
    capsys.readouterr()
    args = parser.parse_args(["profile", "list"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "unknown (keyring error)" in out
    args = parser.parse_args(["secret", "clear", "gw"])
    assert args.func(args) == 1
    assert "is locked" in capsys.readouterr().err
