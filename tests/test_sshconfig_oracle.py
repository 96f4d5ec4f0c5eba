"""`clawd profile import` checked against OpenSSH itself.

The oracle is the real client: `ssh -G -F FILE ALIAS` prints what ssh uses for ALIAS without
connecting, and `ssh -v` against a listener that hangs up prints the identity files after token
expansion. Over a corpus of configs we check (1) that sshconfig.resolve() says what `ssh -G` says
for user, hostname, port, identity files, ProxyJump, ProxyCommand and LocalForward, and (2) that
each imported profile, fed through the engine's own connect_options into asyncssh (which re-reads
~/.ssh/config at connect time, as clawd connect does), lands on that same user, host, port, keys,
jumps and forward. Configs ssh rejects must be rejected with FILE:LINE; what only the outside world
could decide (Match exec, DNS canonicalization) must be refused, never guessed.

Paths: OpenSSH expands `~` in IdentityFile from the passwd entry but `~` in Include from $HOME, and
conftest points $HOME at a temp dir; both sides are compared after their own real expansion.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.servers import require

from clawd_client._asyncssh import asyncssh
from clawd_client.engine.hostkeys import HostKeyPolicy
from clawd_client.engine.ssh import connect_options, resolve_target
from clawd_client.importers import parse_ssh_config
from clawd_client.profiles import Profile
from clawd_client.sshconfig import Unfollowable, load, resolve
from clawd_client.sshlanding import openssh_landing, ssh_g
from clawd_client.sshsyntax import Account, parse_jump
from clawd_gateway.errors import ConfigError

KEYS = ("user", "hostname", "port", "identityfile", "localforward", "proxyjump", "proxycommand")


@dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, str]  # path under ~/.ssh -> text; "{home}" is replaced by $HOME
    aliases: tuple[str, ...]
    import_error: str | None = None  # the import must refuse with this text (and name a line)


CORPUS = [
    Case(
        "issue-host-star-first",
        {
            "config": """\
Host *
    User root
    Port 2200
    IdentityFile {home}/.ssh/K
Host vps
    User me
    HostName 203.0.113.7
    LocalForward 18789 127.0.0.1:18789
""",
        },
        ("vps", "other"),
    ),
    Case(
        "negation-and-several-patterns",
        {
            "config": """\
Host * !bastion
    ProxyJump bastion
Host gw gw2 "gw3"
    User gwuser
    LocalForward 18789 127.0.0.1:18789
Host bastion gw2
    HostName bastion.example.net
    User jumper
""",
        },
        ("gw", "gw2", "gw3", "bastion"),
    ),
    Case(
        "include-globs-relative-and-inactive-blocks",
        {
            "config": """\
Include conf.d/*.conf
Host other
    Include other.d/*
    User other-user
Host gw
    Include {home}/.ssh/frag/gw-*
    Port 2201
""",
            "conf.d/20-b.conf": "Host gw\n  User from-b\n",
            "conf.d/10-a.conf": "Host gw\n  User from-a\n  LocalForward 18790 127.0.0.1:18789\n",
            "conf.d/not-conf.txt": "Host gw\n  User wrong\n",
            # Read from a Host block that does not match gw: none of it applies to gw (asyncssh
            # applies it anyway, so the import must write the host name itself).
            "other.d/x": "Host gw\n  HostName from-inactive-include.example\n",
            "frag/gw-1": "IdentityFile {home}/.ssh/gw_key\n",
        },
        ("gw", "other"),
    ),
    Case(
        "match-host-user-all-final-canonical",
        {
            "config": """\
Host gw
    HostName GW.Example.COM
Match host gw.example.com
    User matched-by-hostname
Match originalhost gw user matched-by-hostname
    Port 2222
Match final host gw.example.com
    IdentityFile {home}/.ssh/final_key
Match canonical !user nobody
    ProxyJump canon-jump
Match all
    Port 9999
    User fallback
Host gw
    LocalForward 18792 127.0.0.1:18789
Host plain
    LocalForward 18793 127.0.0.1:18789
""",
        },
        ("gw", "plain", "GW"),
    ),
    Case(
        "key-equals-value-mixed-case-quotes",
        {
            "config": """\
HOST=gw-eq
  HOSTNAME = gw.example.com
  user=alice
  PORT=2222
  identityfile="{home}/.ssh/key with space"
  ProxyJump bastion@jump.example:22
  localforward=18789 127.0.0.1:18789
Host   gw-tabs
\tUser\t"bob smith"
\tPort 2022
\tLocalForward [::1]:18789 [::1]:18789
\tLocalForward localhost:18790 localhost:18789
\tLocalForward 18791 /run/gw.sock
""",
        },
        ("gw-eq", "gw-tabs"),
    ),
    Case(
        "trailing-comment-asyncssh-cannot-read",
        {"config": "Host gw\n  User me   # who I am there\n  LocalForward 18789 127.0.0.1:18789\n"},
        ("gw",),
        import_error="cannot read this config",
    ),
    Case(
        "service-name-port-asyncssh-cannot-read",
        {"config": "Host gw\n  Port ssh\n  LocalForward 18789 127.0.0.1:18789\n"},
        ("gw",),
        import_error="Invalid Port integer value",
    ),
    Case(
        "tokens",
        {
            "config": """\
Host tok
    HostName %h.example.com
    User tokuser
    IdentityFile {home}/.ssh/%h-%r-%p-%n
    LocalForward 18789 127.0.0.1:18789
Host tok2
    IdentityFile ~/.ssh/id_%u
    LocalForward 18789 127.0.0.1:18789
Host pct
    HostName 100%%.example
""",
        },
        ("tok", "tok2", "pct"),
    ),
    Case(
        "values-only-in-later-wildcards",
        {
            "config": """\
Host late
    LocalForward 18789 127.0.0.1:18789
Host l*
    User late-user
    Port 2022
Host *
    IdentityFile {home}/.ssh/late_key
    ProxyJump j1,j2@j2.example:2222
""",
        },
        ("late", "lazy"),
    ),
    Case(
        "first-value-wins-and-duplicates",
        {
            "config": """\
Host dup
    User first
    LocalForward 18789 127.0.0.1:18789
Host dup
    User second
    Port 2200
    LocalForward 18789 127.0.0.1:18789
    LocalForward 18800 127.0.0.1:18800
    IdentityFile {home}/.ssh/a
    IdentityFile {home}/.ssh/a
""",
        },
        ("dup",),
    ),
    Case(
        "proxyjump-proxycommand-interplay",
        {
            "config": """\
Host pj-none
    ProxyJump none
    ProxyCommand nc %h %p
Host pc-none
    ProxyCommand none
    ProxyJump j
Host pj-uri
    ProxyJump ssh://u@j:2200,k@[::1]:3 # comment
Host pj-first
    ProxyJump j
    ProxyCommand nc %h %p
""",
        },
        ("pj-none", "pc-none", "pj-uri", "pj-first"),
    ),
    Case(
        "clear-all-forwardings-and-comma-pattern",
        {
            "config": """\
Host cleared
    ClearAllForwardings yes
    LocalForward 18789 127.0.0.1:18789
Host comma,other
    User comma-user
Host comma
    LocalForward 18789 127.0.0.1:18789
""",
        },
        ("cleared", "comma", "other"),
    ),
    Case(
        "match-all-forms-and-never-matching-include",
        {
            "config": """\
Host nothere
    Include never.d/*
Match host v all
    User u1
Match final all
    Port 2201
Match host nomatch !all
    IdentityFile /never
Match !all
    ProxyJump never
Match originalhost v,!w user u1 localuser *
    HostName v.example
""",
            # Read under an inactive Host: ssh evaluates the exec line but ignores it; we must
            # neither run it nor refuse because of it.
            "never.d/x": 'Match exec "false"\n  User never\nHost v\n  User never\n',
        },
        ("v", "w"),
    ),
    Case(
        "default-keys-and-match-exec-skipped",
        {
            "config": """\
Match host nomatch exec "false"
    User never
Host plain
    HostName plain.example
    LocalForward 18789 127.0.0.1:18789
""",
        },
        ("plain",),
    ),
]


@pytest.fixture(scope="module")
def ssh_client() -> str:
    path = shutil.which("ssh")
    version = ""
    if path:
        version = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=30).stderr
    require(
        path is not None and "OpenSSH" in version,
        "the OpenSSH client is not installed (apt-get install openssh-client)",
    )
    assert path is not None
    return path


@pytest.fixture
def home() -> Path:
    """$HOME as conftest set it (a temp dir), with an empty ~/.ssh."""
    h = Path(os.environ["HOME"])
    (h / ".ssh").mkdir(parents=True, exist_ok=True)
    return h


def write_case(case: Case, home: Path) -> Path:
    for rel, text in case.files.items():
        path = home / ".ssh" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("{home}", str(home)))
        path.chmod(0o644)
    return home / ".ssh" / "config"


def named_in_host_line(case: Case, alias: str) -> bool:
    """Whether a Host line names `alias` literally (only those are import candidates)."""
    line = re.compile(rf"(?m)^\s*(?i:host)\b[ \t=]+.*(?<![\w.-]){re.escape(alias)}(?![\w.,-])")
    return any(line.search(text) for text in case.files.values())


def ssh_env(home: Path) -> dict[str, str]:
    return {
        "HOME": str(home),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "USER": Account.current().name,
    }


def run_ssh(ssh: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real client, with $HOME at the test's home (for Include) and no terminal."""
    return subprocess.run(
        [ssh, *args], env=ssh_env(home), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )


def run_ssh_g(ssh: str, config: Path, alias: str, home: Path) -> dict[str, list[str]]:
    proc = run_ssh(ssh, home, "-G", "-F", str(config), alias)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, list[str]] = {k: [] for k in KEYS}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key in out:
            out[key].append(value)
    return out


def cases() -> Iterator[object]:
    for case in CORPUS:
        for alias in case.aliases:
            yield pytest.param(case, alias, id=f"{case.id}-{alias}")


@pytest.mark.parametrize(("case", "alias"), list(cases()))
def test_resolver_says_what_ssh_G_says(ssh_client: str, home: Path, case: Case, alias: str) -> None:
    config = write_case(case, home)
    account = Account.current()
    eff = resolve([load(config, account)], alias, account)
    assert ssh_g(eff, account) == run_ssh_g(ssh_client, config, alias, home)


def clawd_uses(profile: Profile, home: Path) -> dict[str, object]:
    """What the engine hands asyncssh for this profile, and what asyncssh makes of it with the
    ~/.ssh/config it reads by default (independent of sshlanding.py)."""
    assert profile.ssh is not None
    opts = connect_options(profile, HostKeyPolicy(home / "known_hosts", accept_new=False))
    keys = opts.pop("client_keys", None)
    allowed = {k: opts[k] for k in ("port", "username", "tunnel") if k in opts}
    # config=(): what asyncssh.connect() passes by default, i.e. ~/.ssh/config from $HOME.
    o = asyncssh.SSHClientConnectionOptions(config=(), host=profile.ssh.host, client_keys=None, **allowed)
    if o.config.has_match_final():
        o.update(host=profile.ssh.host, reload=True, canonical=False, final=True)
    listed = o.config.get("IdentityFile")
    if keys is None:
        keys = [os.path.expanduser(str(k)) for k in listed] if listed else None
    hops = []
    for part in o.tunnel.split(",") if isinstance(o.tunnel, str) else []:
        user, _, hostport = part.rpartition("@")
        host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
        hops.append((user or None, host, int(port) if port else None))
    return {"user": o.username, "hostname": o.host.lower(), "port": o.port, "keys": keys, "hops": hops}


def ssh_lands(g: dict[str, list[str]], eff_alias: str, config: Path) -> dict[str, object]:
    """ssh -G's answer with identity files expanded as ssh expands them (checked by the -v test)."""
    account = Account.current()
    eff = resolve([load(config, account)], eff_alias, account)
    landing = openssh_landing(eff, account)
    defaults = [f"~/.ssh/{n}" for n in ("id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519")]
    keys = None if g["identityfile"][:4] == defaults else list(landing.identities or ())
    jump = parse_jump(g["proxyjump"][0], "ssh -G") if g["proxyjump"] else None
    hops = [(h.user, h.host, h.port) for h in jump.hops] if jump else []
    return {
        "user": g["user"][0],
        "hostname": g["hostname"][0],
        "port": int(g["port"][0]),
        "keys": keys,
        "hops": hops,
    }


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_imported_profiles_land_where_ssh_lands(ssh_client: str, home: Path, case: Case) -> None:
    config = write_case(case, home)
    if case.import_error:
        with pytest.raises(Unfollowable) as exc:
            parse_ssh_config(system_config=None)
        assert case.import_error in str(exc.value)
        assert str(exc.value).startswith(f"{config}: ") or f"{config}:" in str(exc.value)
        return
    result = parse_ssh_config(system_config=None)
    for item in result.profiles:
        p = item.profile
        assert p.ssh is not None
        alias = max((a for a in case.aliases if p.name == a or p.name.startswith(f"{a}-")), key=len)
        g = run_ssh_g(ssh_client, config, alias, home)
        assert clawd_uses(p, home) == ssh_lands(g, alias, config), (alias, p.ssh, item.notes)
        printed = {v.split(" ", 1)[0].rsplit(":", 1)[-1]: v.split(" ", 1)[1] for v in g["localforward"]}
        assert printed[str(p.local_port)] == f"[{p.remote_host}]:{p.remote_port}"
    imported = {i.profile.name for i in result.profiles}
    for alias in [a for a in case.aliases if named_in_host_line(case, a)]:
        g = run_ssh_g(ssh_client, config, alias, home)
        for fwd in g["localforward"]:
            port = fwd.split(" ", 1)[0].rsplit(":", 1)[-1]
            if "/" in fwd:
                assert any("Unix-socket" in s for s in result.skipped)
                continue
            named = alias in imported or f"{alias}-{port}" in imported
            assert named or any("applies to many hosts" in s for s in result.skipped), (alias, fwd)


def test_issue_example_lands_as_root_on_2200_with_k(ssh_client: str, home: Path) -> None:
    """The issue's report: `Host *` (User root, Port 2200, IdentityFile K) before `Host vps`."""
    config = write_case(CORPUS[0], home)
    (item,) = parse_ssh_config(system_config=None).profiles
    uses = clawd_uses(item.profile, home)
    assert (uses["user"], uses["hostname"], uses["port"]) == ("root", "203.0.113.7", 2200)
    assert uses["keys"] == [str(home / ".ssh" / "K")]
    assert item.profile.ssh is not None and item.profile.ssh.host == "vps"  # asyncssh resolves it
    g = run_ssh_g(ssh_client, config, "vps", home)
    assert (g["user"], g["port"], g["identityfile"]) == (["root"], ["2200"], [str(home / ".ssh" / "K")])
    assert any("lands on root@203.0.113.7:2200" in n for n in item.notes)
    # The engine's own reading of the alias (doctor's DNS/TCP hops, the reachability poll) agrees.
    assert resolve_target(item.profile) == ("203.0.113.7", 2200)


@pytest.fixture
def hangup_port() -> Iterator[int]:
    """A TCP port that accepts and closes at once: ssh -v gets far enough to load its keys."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    with contextlib.suppress(OSError):
        server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not)
    server.close()
    thread.join(timeout=10)


def test_identity_file_tokens_expand_like_ssh(ssh_client: str, home: Path, hangup_port: int) -> None:
    config = home / ".ssh" / "config"
    config.write_text(
        f"""\
Host tokens
    HostName LOCALHOST
    Port {hangup_port}
    User bob
    HostKeyAlias the-alias
    IdentityFile /k/%h-%r-%p-%n-%u-%d-%i-%k-%C-%l-%L-%%
    IdentityFile ~/from-passwd-not-home-${{HOME}}
    IdentityFile none
    IdentityFile relative/key
"""
    )
    options = ["-o", "BatchMode=yes", "-o", "UserKnownHostsFile=/dev/null"]
    proc = run_ssh(ssh_client, home, "-v", "-F", str(config), *options, "tokens")
    seen = []
    for line in proc.stderr.splitlines():
        if line.startswith("debug1: identity file ") and not line.split()[3].endswith("-cert"):
            seen.append(line.split()[3])
    account = Account.current()
    landing = openssh_landing(resolve([load(config, account)], "tokens", account), account)
    assert landing.identities is not None
    assert [os.path.abspath(s) for s in seen] == list(landing.identities), proc.stderr
    assert seen[1].startswith(account.pw_dir.rstrip("/") + "/from-passwd-not-home-" + str(home))


REJECTED = [
    ("HostName-unknown-token", "Host gw\n  HostName x%r\n", 2, "unknown token %r"),
    ("match-all-combined", "Match all host x\n  User u\n", 1, "'all' cannot be combined"),
    ("match-without-criteria", "Match\n", 1, "no argument after keyword"),
    ("host-without-pattern", "Host\n", 1, "no argument after keyword"),
    ("two-users", "Host gw\n  User a b\n", 2, "extra arguments"),
    ("port-zero", "Host gw\n  Port 0\n", 2, "is not a port number"),
    ("one-argument-forward", "Host gw\n  LocalForward 18789:127.0.0.1:18789\n", 2, "no target argument"),
    ("bad-forward", "Host gw\n  LocalForward 18789 127.0.0.1\n", 2, "bad forwarding specification"),
    ("unterminated-quote", 'Host gw\n  IdentityFile "/k\n', 2, "unterminated quoted string"),
    ("bad-jump", "Host gw\n  ProxyJump u@:22\n", 2, "invalid ProxyJump host"),
]


@pytest.mark.parametrize(("text", "line", "message"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_what_ssh_rejects_is_rejected_with_file_and_line(
    ssh_client: str, home: Path, text: str, line: int, message: str
) -> None:
    config = home / ".ssh" / "config"
    config.write_text(text)
    proc = run_ssh(ssh_client, home, "-G", "-F", str(config), "gw")
    assert proc.returncode != 0, proc.stdout
    account = Account.current()
    with pytest.raises(ConfigError) as exc:
        resolve([load(config, account)], "gw", account)
    assert str(exc.value).startswith(f"{config}:{line}: "), str(exc.value)
    assert message in str(exc.value)


def test_group_writable_include_is_refused_like_ssh(ssh_client: str, home: Path) -> None:
    config = home / ".ssh" / "config"
    config.write_text("Include extra.conf\nHost gw\n  LocalForward 18789 127.0.0.1:18789\n")
    extra = home / ".ssh" / "extra.conf"
    extra.write_text("User x\n")
    extra.chmod(0o666)
    proc = run_ssh(ssh_client, home, "-G", "-F", str(config), "gw")
    assert proc.returncode != 0 and "Bad owner or permissions" in proc.stderr
    with pytest.raises(ConfigError, match="bad owner or permissions") as exc:
        parse_ssh_config(system_config=None)
    assert str(extra) in str(exc.value)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('Host gw\n  User u\nMatch exec "test -e /etc/passwd"\n  User other\n', 3, "Match exec"),
        ("Match host gw localnetwork 10.0.0.0/8\n  User x\n", 1, "Match localnetwork"),
        ("Host gw\n  CanonicalizeHostname yes\n  CanonicalDomains example.com\n", 2, "CanonicalizeHostname"),
    ],
    ids=["match-exec", "match-localnetwork", "canonicalize-hostname"],
)
def test_what_needs_the_outside_world_is_refused_not_guessed(
    home: Path, text: str, line: int, message: str
) -> None:
    config = home / ".ssh" / "config"
    config.write_text(text + "Host gw\n  LocalForward 18789 127.0.0.1:18789\n")
    with pytest.raises(Unfollowable) as exc:
        parse_ssh_config(system_config=None)
    assert str(exc.value).startswith(f"{config}:{line}: ")
    assert message in str(exc.value)
    assert exc.value.exit_code == 78


def test_system_config_comes_after_the_users(ssh_client: str, home: Path, tmp_path: Path) -> None:
    """Without --ssh-config, ssh reads ~/.ssh/config then /etc/ssh/ssh_config; first value wins."""
    system = tmp_path / "ssh_config"
    system.write_text("Host *\n  User sysuser\n  Port 2022\n  IdentityFile /etc/sys_key\n")
    write_case(
        Case("x", {"config": "Host gw\n  Port 2200\n  LocalForward 18789 127.0.0.1:18789\n"}, ()), home
    )
    combined = tmp_path / "combined"
    combined.write_text((home / ".ssh" / "config").read_text() + f"Host *\nInclude {system}\n")
    account = Account.current()
    eff = resolve(
        [load(home / ".ssh" / "config", account), load(system, account, user_conf=False)], "gw", account
    )
    assert ssh_g(eff, account) == run_ssh_g(ssh_client, combined, "gw", home)
    (item,) = parse_ssh_config(system_config=system).profiles
    assert item.profile.ssh is not None
    assert (item.profile.ssh.user, item.profile.ssh.port) == ("sysuser", None)  # asyncssh never reads /etc
    assert item.profile.ssh.identity == "/etc/sys_key"


def test_cli_refuses_with_exit_78_naming_the_line(home: Path, tmp_path: Path) -> None:
    config = home / ".ssh" / "config"
    config.write_text('Match exec "true"\n  User x\nHost gw\n  LocalForward 18789 127.0.0.1:18789\n')
    env = {**os.environ, "CLAWD_CONFIG_DIR": str(tmp_path / "cfg")}
    proc = subprocess.run(
        [sys.executable, "-m", "clawd_client", "profile", "import", "--ssh-config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 78, proc.stderr
    assert proc.stderr.startswith(f"clawd: {config}:1: cannot follow 'Match exec true' for gw")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "cfg" / "profiles.json").exists()
