"""The pure rules of `clawd setup-remote` (setup_remote/plan.py): the restricted key line, adding
it once and removing it byte for byte, and reading what the VPS reported."""

from __future__ import annotations

import asyncio
import io
import subprocess
from dataclasses import asdict

import json5
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clawd_client._asyncssh import asyncssh
from clawd_client.profiles import SshTarget
from clawd_client.setup_remote.discover import _config, _unit_env
from clawd_client.setup_remote.flow import Options, Run, StepFailed
from clawd_client.setup_remote.login import Asker
from clawd_client.setup_remote.plan import (
    KeyLineConflict,
    add_line,
    auth_from_config,
    choose_secret,
    config_port,
    key_line,
    parse_key_line,
    parse_proc_net_tcp,
    parse_ss,
    remove_line,
)
from clawd_client.setup_remote.progress import Progress
from clawd_client.setup_remote.remote import Remote, RemoteError, RunResult
from clawd_client.setup_remote.state import SetupState, load_state, save_state
from clawd_client.setup_remote.tunnelkey import ensure_local_key
from clawd_gateway.errors import UserError

PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9xdGVzdGtleWJsb2I clawd-vps"
LINE = key_line(PUB, "vps", 28789)
lines = st.lists(st.text(alphabet='abcdefgh ="-', min_size=1, max_size=20), max_size=5)


def test_key_line_restricts_to_the_gateway_port() -> None:
    assert LINE == (
        'restrict,port-forwarding,permitopen="127.0.0.1:28789",permitopen="[::1]:28789",'
        'command="/bin/false" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9xdGVzdGtleWJsb2I clawd-vps'
    )


@given(lines, st.booleans())
def test_add_then_remove_is_byte_identical(existing: list[str], final_newline: bool) -> None:
    text = "\n".join(existing) + ("\n" if final_newline and existing else "")
    added, how = add_line(text, LINE)
    assert how == "added" and added.endswith(LINE + "\n")
    again, how_again = add_line(added, LINE)
    assert again == added and how_again == "unchanged"
    newline_added = bool(text) and not text.endswith("\n")
    back, removed = remove_line(added, LINE, newline_added)
    assert removed and back == text


def test_remove_keeps_lines_added_after_ours() -> None:
    text, _ = add_line("ssh-ed25519 AAAA admin\n", LINE)
    text += "ssh-ed25519 BBBB later\n"
    back, removed = remove_line(text, LINE, False)
    assert removed and back == "ssh-ed25519 AAAA admin\nssh-ed25519 BBBB later\n"


def test_parse_listeners() -> None:
    ss = (
        'LISTEN 0 511 127.0.0.1:28789 0.0.0.0:* users:(("openclaw-gatewa",pid=21439,fd=65))\n'
        "LISTEN 0 511 [::1]:28789 [::]:*\n"
        "LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n"
    )
    found = parse_ss(ss, 28789)
    assert [(f.address, f.process, f.pid) for f in found] == [
        ("127.0.0.1", "openclaw-gatewa", 21439),
        ("::1", None, None),
    ]
    tcp = "  sl  local_address rem_address   st\n   0: 0100007F:70F5 00000000:0000 0A 0\n"
    assert [f.address for f in parse_proc_net_tcp(tcp, 0x70F5)] == ["127.0.0.1"]


def test_config_reading() -> None:
    cfg = json5.loads(
        '{\n // comment\n "gateway": {"port": 28789, "auth": {"mode": "token", "token": "${TOK}",},},\n}'
    )
    assert config_port(cfg) == 28789
    auth = auth_from_config(cfg, {"TOK": "s3cret"})
    assert (auth.mode, auth.secret) == ("token", "s3cret")
    assert auth_from_config({"gateway": {"auth": {"password": "pw"}}}, {}).mode == "password"


def test_secret_precedence_is_the_projects_one() -> None:
    """flag > config > OPENCLAW_* > CLAWDBOT_* (clawd_gateway.secret_sources), wherever the env is."""
    args = {"flag": None, "config_secret": "from-config", "config_source": "/h/.openclaw/openclaw.json"}
    env = {"OPENCLAW_GATEWAY_TOKEN": "from-env"}
    # a config secret is not overwritten by the process's or the unit's environment
    assert choose_secret("token", **args, proc_env=env, unit_env=env) == (
        "from-config",
        "/h/.openclaw/openclaw.json",
    )
    assert choose_secret("token", **{**args, "flag": "from-flag"}, proc_env=env, unit_env={}) == (
        "from-flag",
        "the gateway's command line",
    )
    no_config = {**args, "config_secret": None}
    # OPENCLAW_* (here only in the unit) beats a leftover CLAWDBOT_* in the process
    assert choose_secret("token", **no_config, proc_env={"CLAWDBOT_GATEWAY_TOKEN": "old"}, unit_env=env) == (
        "from-env",
        "its systemd unit (OPENCLAW_GATEWAY_TOKEN)",
    )
    assert choose_secret("password", **no_config, proc_env=env, unit_env={}) is None


def test_auth_flag_mode_takes_the_configs_secret_for_that_mode() -> None:
    cfg = {"gateway": {"auth": {"mode": "token", "token": "t", "password": "p"}}}
    assert (auth_from_config(cfg, {}, "password").mode, auth_from_config(cfg, {}, "password").secret) == (
        "password",
        "p",
    )


BLOB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9xdGVzdGtleWJsb2I"


def test_a_new_gateway_port_replaces_our_line_in_place_and_undo_restores_the_file() -> None:
    original = "ssh-ed25519 AAAA admin\n"
    first, _ = add_line(original, LINE)
    first += "ssh-ed25519 BBBB later\n"
    moved = key_line(PUB, "vps", 28790)
    second, how = add_line(first, moved)
    assert how == "replaced"
    assert second == f"ssh-ed25519 AAAA admin\n{moved}\nssh-ed25519 BBBB later\n"
    back, removed = remove_line(second, moved, False)
    assert removed and back == "ssh-ed25519 AAAA admin\nssh-ed25519 BBBB later\n"


def test_copies_of_our_line_left_by_older_runs_collapse_into_one() -> None:
    older = key_line(PUB, "vps", 1111)
    text = f"{older}\r\nssh-ed25519 AAAA admin\n{LINE}\n"
    new, how = add_line(text, LINE)
    assert how == "replaced" and new == f"{LINE}\r\nssh-ed25519 AAAA admin\n"


@pytest.mark.parametrize(
    "existing",
    [
        f"{BLOB} me@laptop",  # the same key, unrestricted: it would keep full shell access
        f"{BLOB} clawd-vps",  # our comment, but no `restrict`
        f'restrict,command="echo a b" {BLOB} someone-else',  # restricted, but not ours
    ],
)
def test_another_line_for_the_same_key_is_refused(existing: str) -> None:
    with pytest.raises(KeyLineConflict) as err:
        add_line(f"ssh-ed25519 AAAA admin\n{existing}\n", LINE)
    assert err.value.lineno == 2


def test_parse_key_line_reads_quoted_options() -> None:
    assert parse_key_line(f'command="a b",restrict {BLOB} c d') == (
        'command="a b",restrict',
        "ssh-ed25519",
        BLOB.split()[1],
        "c d",
    )
    assert parse_key_line("# ssh-ed25519 AAAA") is None


# --- errors end as a message with a fix, never a traceback ----------------------------------------


def test_a_passphrase_protected_tunnel_key_says_so_and_how_to_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    key = tmp_path / ".ssh" / "clawd_vps"
    key.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(key)], check=True)
    with pytest.raises(UserError) as err:
        ensure_local_key("vps", dry_run=False)
    assert "protected by a passphrase" in str(err.value) and str(key) in str(err.value)
    assert err.value.fix and "ssh-keygen -p -N ''" in err.value.fix


@pytest.mark.parametrize(
    "exc",
    [
        PermissionError(13, "Permission denied", "/home/me/.ssh/.clawd_vps.tmp1"),
        asyncssh.SFTPPermissionDenied("Permission denied"),
        asyncssh.ConnectionLost("Connection lost"),
    ],
)
def test_a_step_maps_ssh_and_os_errors_to_step_failed(tmp_path, monkeypatch, exc: Exception) -> None:
    monkeypatch.setenv("CLAWD_STATE_DIR", str(tmp_path))
    run = Run(Options("u@vps.example", name="vps"), Progress(io.StringIO()), Asker(False, bool, str))

    async def failing() -> None:
        raise exc

    with pytest.raises(StepFailed) as err:
        asyncio.run(run._step("key", failing()))
    assert "stopped at 'add a key for the tunnel only'" in str(err.value)
    assert "Permission denied" in str(err.value) or "Connection lost" in str(err.value)
    assert err.value.fix


class _DeniedSftp:
    async def stat(self, path: str) -> None:
        raise asyncssh.SFTPPermissionDenied("Permission denied")

    async def realpath(self, path: str) -> None:
        raise asyncssh.SFTPPermissionDenied("Permission denied")


@pytest.mark.parametrize("call", ["stat_mode", "home"])
def test_sftp_permission_denied_is_a_remote_error(call: str) -> None:
    remote = Remote(conn=None, target="u@vps", _sftp=_DeniedSftp())  # type: ignore[arg-type]
    if call == "stat_mode":
        remote._home = "/home/u"
    with pytest.raises(RemoteError) as err:
        asyncio.run(remote.stat_mode("/home/u/.ssh") if call == "stat_mode" else remote.home())
    assert "Permission denied" in str(err.value) and err.value.fix


def test_a_rerun_for_another_account_is_refused(tmp_path, monkeypatch) -> None:
    """The record keeps one target: root@vps then clawd@vps would make --undo edit the wrong one."""
    monkeypatch.setenv("CLAWD_STATE_DIR", str(tmp_path))
    save_state(SetupState("vps", asdict(SshTarget(host="vps.example", user="root")), line_added=True))
    run = Run(Options("clawd@vps.example", name="vps"), Progress(io.StringIO()), Asker(False, bool, str))
    with pytest.raises(UserError) as err:
        asyncio.run(run.execute())
    assert "root@vps.example" in str(err.value) and "clawd@vps.example" in str(err.value)
    assert err.value.fix and "clawd setup-remote --undo vps" in err.value.fix
    assert load_state("vps").target["user"] == "root"  # type: ignore[union-attr]


# --- what the VPS holds is read the way the project reads it --------------------------------------


class _FilesRemote:
    """Just enough of Remote for discovery's readers: files by path, `grep -l` finding one unit."""

    target = "u@vps"

    def __init__(self, files: dict[str, str], units: str = "") -> None:
        self.files, self.units = files, units

    async def path(self, path: str) -> str:
        return path.replace("~", "/home/u", 1)

    async def read_file(self, path: str) -> str | None:
        return self.files.get(await self.path(path))

    async def run(self, command: str, **_kw: object) -> RunResult:
        return RunResult(0, self.units, "")


def test_the_openclaw_config_is_read_as_json5() -> None:
    text = "{gateway: {port: 28789, auth: {token: 'single-quoted'}}, /* c */ agents: [1, 2,],}"
    remote = _FilesRemote({"/home/u/.openclaw/openclaw.json": text})
    path, cfg = asyncio.run(_config(remote, {}))  # type: ignore[arg-type]
    assert path == "/home/u/.openclaw/openclaw.json" and config_port(cfg) == 28789
    assert auth_from_config(cfg, {}).secret == "single-quoted"


def test_a_units_environment_file_is_read_as_systemd_reads_it() -> None:
    unit = "[Service]\nEnvironmentFile=-/etc/openclaw.env\nEnvironment=OTHER=1\n"
    env_file = '; a systemd comment\nOPENCLAW_GATEWAY_TOKEN="tok\\"en"\nCLAWDBOT_GATEWAY_TOKEN=\'a\\b\'\n'
    remote = _FilesRemote({"/u/oc.service": unit, "/etc/openclaw.env": env_file}, units="/u/oc.service\n")
    env = asyncio.run(_unit_env(remote))  # type: ignore[arg-type]
    assert env == {"OPENCLAW_GATEWAY_TOKEN": 'tok"en', "CLAWDBOT_GATEWAY_TOKEN": "a\\b", "OTHER": "1"}


def test_forget_up_lives_beside_remember_up(tmp_path, monkeypatch) -> None:
    from clawd_client.agent import host

    monkeypatch.setenv("CLAWD_STATE_DIR", str(tmp_path))
    host.remember_up(["a", "vps"])
    assert host.forget_up("vps") and not host.forget_up("vps")
    assert host.load_remembered() == ["a"]
    assert (host.remembered_path().stat().st_mode & 0o777) == 0o600
