"""Import what the user already has: `~/.ssh/config` LocalForward hosts and OpenClaw's remote settings.

Why the SSH part is more than a LocalForward grep: an imported profile must land exactly where
`ssh ALIAS` lands, and ssh takes the first value for each keyword across every matching Host/Match
block (a `Host *` above `Host vps` wins). sshconfig.py resolves the config as ssh does (and refuses,
naming the line, what only the outside world could decide); sshlanding.py then finds the smallest
profile that clawd's SSH library (asyncssh, which re-reads ~/.ssh/config at connect time) turns
into the same user, host, port, keys and jumps: usually just the alias.

Why OpenClaw's config: a user who already ran `openclaw config set gateway.remote.token ...` has
the token there. We take it into the OS keyring (never into the profile file), and when the
remote URL is just the local end of an SSH forward we also found, we attach the secret to that
profile instead of inventing a second one.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clawd_gateway.config import load_config
from clawd_gateway.errors import ConfigError
from clawd_gateway.protocol.constants import DEFAULT_PORT
from clawd_gateway.secret import Secret

from . import sshconfig
from .profiles import Profile, SshTarget, parse_ssh_target, validate
from .sshlanding import choose_target
from .sshsyntax import Account, Forward

OPENCLAW_PROFILE_NAME = "openclaw"
SYSTEM_SSH_CONFIG = Path("/etc/ssh/ssh_config")
_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


@dataclass
class ImportedProfile:
    """One profile to create, where it came from, and the secrets that go to the keyring."""

    profile: Profile
    origin: str  # "FILE:LINE" for ssh_config, "FILE gateway.remote" for OpenClaw
    secrets: dict[str, Secret] = field(default_factory=dict)  # kind -> secret; keyring only
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    profiles: list[ImportedProfile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # human-readable: what was not imported and why
    sources: list[str] = field(default_factory=list)  # files actually read

    def extend(self, other: ImportResult) -> None:
        self.profiles += other.profiles
        self.skipped += other.skipped
        self.sources += other.sources


# --- ssh_config ---------------------------------------------------------------------------------


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return True
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _profile_name(alias: str, port: int | None, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", alias).strip("-._") or "ssh"
    suffix = f"-{port}" if port is not None else ""
    name = base[: 64 - len(suffix)] + suffix
    n = 2
    while name in taken:
        extra = f"-{n}"
        name = base[: 64 - len(suffix) - len(extra)] + suffix + extra
        n += 1
    taken.add(name)
    return name


def _host_blocks(sources: list[sshconfig.Source]) -> dict[str, list[str]]:
    """Every literal name in a Host line -> the LocalForward lines written in blocks that name it.
    Read statically with every Include followed: candidates, not answers (resolve() decides)."""
    found: dict[str, list[str]] = {}

    def walk(source: sshconfig.Source, names: list[str]) -> None:
        for line in source.lines:
            if line.keyword == "host":
                names = [p for p in line.args if not p.startswith("!") and not set(p) & set("*?")]
                for name in names:
                    found.setdefault(name, [])
            elif line.keyword == "match":
                names = []
            elif line.keyword == "include":
                for sub in line.included:
                    walk(sub, names)  # an included file's first lines belong to the including block
            elif line.keyword == "localforward":
                for name in names:
                    found[name].append(line.where)

    for source in sources:
        walk(source, [])
    return found


def _paths(sources: list[sshconfig.Source]) -> list[str]:
    """Every file read, includes in the order ssh reads them."""
    out: list[str] = []
    for source in sources:
        out.append(source.path)
        for line in source.lines:
            out += _paths(list(line.included))
    return out


def parse_ssh_config(
    path: str | Path | None = None,
    *,
    home: Path | None = None,
    system_config: Path | None = SYSTEM_SSH_CONFIG,
) -> ImportResult:
    """Profiles for the Host aliases whose own block has a LocalForward, each landing exactly where
    `ssh ALIAS` lands (see sshconfig.py for the reading, sshlanding.py for the profile).

    Without a path: ~/.ssh/config then the system config, as `ssh` reads them; with one: that file
    alone, as `ssh -F FILE`. A missing default file is not an error (nothing to import); a missing
    explicit file is. `home` stands for both the passwd home and $HOME (tests).
    """
    account = Account.at(home) if home is not None else Account.current()
    explicit = path is not None
    file = Path(path).expanduser() if path is not None else Path(account.home) / ".ssh" / "config"
    result = ImportResult()
    if not explicit and not file.is_file():
        result.skipped.append(f"no SSH config at {file}")
        return result
    sources = [sshconfig.load(file, account, check_perm=not explicit)]
    if not explicit and system_config is not None and system_config.is_file():
        sources.append(sshconfig.load(system_config, account, user_conf=False))
    result.sources += _paths(sources)
    # What clawd's engine reads at connect time: asyncssh's default, ~/.ssh/config from $HOME.
    default = Path(account.home) / ".ssh" / "config"
    connect_config = [default] if os.access(default, os.R_OK) else []

    taken: set[str] = set()
    notes_seen: set[str] = set()

    def skip(note: str) -> None:
        if note not in notes_seen:
            notes_seen.add(note)
            result.skipped.append(note)

    for alias, own_lines in _host_blocks(sources).items():
        if not own_lines:
            continue  # no tunnel written for this host: nothing to import, nothing to resolve
        eff = sshconfig.resolve(sources, alias, account)
        forwards = eff.local_forwards()
        if eff.clear_forwardings:
            where = eff.origin["clearallforwardings"]
            skip(f"{where}: ClearAllForwardings yes: ssh {alias} forwards nothing")
            continue
        own = [f for f in forwards if f.where in own_lines]
        for fwd in forwards:
            if fwd not in own:
                skip(
                    f"{fwd.where}: LocalForward in a block that does not name the host (Host *, Match) "
                    "applies to many hosts; not imported (put it in a concrete Host block)"
                )
        tcp = [f for f in own if f.listen_path is None and f.connect_path is None]
        for fwd in own:
            if fwd not in tcp:
                skip(f"{fwd.where}: Unix-socket LocalForward skipped")
        by_port: dict[int, Forward] = {}
        for fwd in tcp:
            by_port.setdefault(fwd.port, fwd)  # two forwards on one port: ssh's second bind fails
        if not by_port:
            continue
        target, landing_notes = choose_target(eff, account, connect_config)
        for fwd in by_port.values():
            notes = list(landing_notes)
            if not _is_loopback(fwd.bind):
                notes.append(
                    f"the config binds {fwd.bind or '*'}:{fwd.port}; "
                    f"clawd listens on 127.0.0.1:{fwd.port} only"
                )
            name = _profile_name(alias, fwd.port if len(by_port) > 1 else None, taken)
            assert fwd.host is not None
            profile = Profile(
                name=name,
                method="ssh",
                ssh=target,
                remote_host=fwd.host,
                remote_port=fwd.host_port,
                local_port=fwd.port,
            )
            try:
                validate(profile)
            except ConfigError as exc:
                raise ConfigError(f"cannot import Host {alias}: {exc}", file=fwd.where) from None
            result.profiles.append(ImportedProfile(profile, fwd.where, notes=notes))
    return result


# --- OpenClaw config ----------------------------------------------------------------------------


def _url_parts(url: str, file: Path | None) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(
            f"{url!r} is not a ws:// or wss:// URL",
            file=file,
            key="gateway.remote.url",
            fix='e.g. "ws://127.0.0.1:18789" (through an SSH tunnel) or "wss://gateway.example.com"',
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{url!r} has an invalid port", file=file, key="gateway.remote.url") from None
    return parts.scheme, parts.hostname, port


def import_openclaw_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> ImportResult:
    """A profile from OpenClaw's `gateway.remote` (ssh when sshTarget is set, else direct with the URL).

    `${VAR}` in the token/password is expanded by the shared loader; the secret is returned in
    `ImportedProfile.secrets` for the keyring and never put into the Profile.
    """
    env = os.environ if env is None else env
    loaded = load_config(path, env)
    result = ImportResult()
    if loaded.path is None:
        result.skipped.append(
            "no OpenClaw config found (~/.openclaw/openclaw.json, ~/.clawdbot/clawdbot.json)"
        )
        return result
    result.sources.append(str(loaded.path))
    remote: Any = loaded.get("remote") or {}
    origin = f"{loaded.path} gateway.remote"
    url: str | None = remote.get("url") or None
    target_text: str | None = remote.get("sshTarget") or None
    transport = remote.get("transport") or ("ssh" if target_text else "direct")
    if not url and not target_text:
        result.skipped.append(f"{loaded.path}: no gateway.remote.url or gateway.remote.sshTarget to import")
        return result

    secrets: dict[str, Secret] = {}
    for kind in ("token", "password"):
        value = remote.get(kind)
        if value:
            secrets[kind] = Secret(value, f"config gateway.remote.{kind}")
    auth = "password" if "password" in secrets and "token" not in secrets else "token"
    notes: list[str] = []
    for key in loaded.file_secrets:
        if key.startswith("gateway.remote."):
            notes.append(f"{key} is written literally in {loaded.path}; clawd keeps its copy in the keyring")
    if loaded.get("mode") == "local":
        notes.append("gateway.mode is 'local': OpenClaw itself ignores gateway.remote until mode is 'remote'")

    scheme = host = None
    url_port: int | None = None
    if url:
        scheme, host, url_port = _url_parts(url, loaded.path)
    gateway_port = loaded.get("port") or DEFAULT_PORT

    if target_text and transport == "ssh":
        try:
            target = parse_ssh_target(target_text)
        except ConfigError:
            raise ConfigError(
                f"{target_text!r} is not an SSH target ([user@]host[:port])",
                file=loaded.path,
                key="gateway.remote.sshTarget",
            ) from None
        identity = remote.get("sshIdentity")
        if identity:
            target = SshTarget(
                host=target.host,
                user=target.user,
                port=target.port,
                identity=os.path.normpath(os.path.expanduser(identity)),
            )
        local_port = remote_port = gateway_port
        if host is not None and url_port is not None:
            if _is_loopback(host):
                local_port = url_port  # the URL is the local end of the tunnel
            elif host == target.host:
                remote_port = url_port  # OpenClaw's rule: same host as the SSH target -> remote port
        profile = Profile(
            name=OPENCLAW_PROFILE_NAME,
            method="ssh",
            ssh=target,
            local_port=local_port,
            remote_port=remote_port,
            auth=auth,
        )
    else:
        if not url:
            raise ConfigError(
                "transport is 'direct' but there is no URL",
                file=loaded.path,
                key="gateway.remote.url",
                fix='set gateway.remote.url, e.g. "wss://gateway.example.com"',
            )
        if _is_loopback(host):
            notes.append(
                f"{url} is a local address, presumably the end of an SSH tunnel you run yourself; "
                "let clawd run it: clawd profile add NAME --ssh user@host (or import your ~/.ssh/config)"
            )
        elif scheme == "ws":
            notes.append(
                f"{url} is unencrypted ws:// to a non-loopback host (OpenClaw refuses that): "
                "prefer wss:// or an SSH tunnel"
            )
        profile = Profile(
            name=OPENCLAW_PROFILE_NAME,
            method="direct",
            url=url,
            local_port=url_port or DEFAULT_PORT,
            auth=auth,
        )
    validate(profile)
    result.profiles.append(ImportedProfile(profile, origin, secrets=secrets, notes=notes))
    return result


def _merge_openclaw(ssh: ImportResult, openclaw: ImportResult) -> None:
    """Attach OpenClaw's secret to the SSH-config profile it really describes, instead of a duplicate.

    The seeds' setup is `LocalForward 18789 ...` in ~/.ssh/config plus `gateway.remote.url:
    ws://127.0.0.1:18789` and a token in OpenClaw's config: one gateway, not two.
    """
    kept: list[ImportedProfile] = []
    for item in openclaw.profiles:
        p = item.profile
        loopback_url = p.method == "direct" and p.url is not None and _is_loopback(urlsplit(p.url).hostname)
        match = None
        for candidate in ssh.profiles:
            c = candidate.profile
            if c.local_port != p.local_port:
                continue
            if loopback_url or (
                p.method == "ssh" and p.ssh is not None and c.ssh is not None and c.ssh.host == p.ssh.host
            ):
                match = candidate
                break
        if match is None or not item.secrets:
            kept.append(item)
            continue
        match.secrets.update(item.secrets)
        if "token" not in item.secrets:
            match.profile = replace(match.profile, auth="password")
        kinds = " and ".join(item.secrets)
        match.notes.append(f"{kinds} from {item.origin}")
        match.notes += item.notes
        openclaw.skipped.append(
            f"{item.origin}: same gateway as {match.profile.name} ({match.origin}); "
            f"its {kinds} goes with that profile"
        )
    openclaw.profiles = kept


def import_all(
    ssh_config: str | Path | None = None,
    openclaw_config: str | Path | None = None,
    *,
    use_ssh: bool = True,
    use_openclaw: bool = True,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ImportResult:
    """Both importers, with OpenClaw's secret merged into the matching SSH-config profile."""
    ssh = parse_ssh_config(ssh_config, home=home) if use_ssh else ImportResult()
    openclaw = import_openclaw_config(openclaw_config, env) if use_openclaw else ImportResult()
    _merge_openclaw(ssh, openclaw)
    result = ImportResult()
    result.extend(ssh)
    result.extend(openclaw)
    return result


__all__ = [
    "SYSTEM_SSH_CONFIG",
    "ImportResult",
    "ImportedProfile",
    "import_all",
    "import_openclaw_config",
    "parse_ssh_config",
]
