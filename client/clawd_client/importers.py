"""Import what the user already has: `~/.ssh/config` LocalForward hosts and OpenClaw's remote settings.

Why parse ssh_config ourselves: asyncssh reads `~/.ssh/config` for host, user, port, keys and
ProxyJump, but ignores `LocalForward`, and that line is exactly what the seeds' tutorial (and
OpenClaw's docs) tell people to write. So we read just enough of ssh_config(5) to find Host
blocks with LocalForward, and make each a profile whose SSH host is the Host *alias*: asyncssh
then applies the rest of the user's config (HostName, options we do not copy) itself.

Why OpenClaw's config: a user who already ran `openclaw config set gateway.remote.token ...` has
the token there. We take it into the OS keyring (never into the profile file), and when the
remote URL is just the local end of an SSH forward we also found, we attach the secret to that
profile instead of inventing a second one.
"""

from __future__ import annotations

import glob
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

from .profiles import Profile, SshTarget, parse_ssh_target, validate

MAX_INCLUDE_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH
MAX_SSH_CONFIG_BYTES = 1024 * 1024
OPENCLAW_PROFILE_NAME = "openclaw"
_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
_WILDCARDS = set("*?")


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


@dataclass(frozen=True)
class LocalForward:
    bind_address: str | None  # None: ssh's default (loopback unless GatewayPorts)
    local_port: int
    remote_host: str
    remote_port: int
    origin: str


@dataclass
class _HostBlock:
    alias: str | None  # first concrete pattern; None for wildcard-only / Match / global sections
    patterns: tuple[str, ...]
    origin: str
    kind: str = "host"  # "host", "match" or "global"
    hostname: str | None = None
    user: str | None = None
    port: int | None = None
    identity: str | None = None
    jump: str | None = None
    forwards: list[LocalForward] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def split_args(text: str, where: str) -> list[str]:
    """Split an ssh_config argument string the way OpenSSH's argv_split does.

    Double and single quotes group words; a backslash escapes only a quote, a backslash or (outside
    quotes) a space, and is kept otherwise (so Windows paths survive); `#` starting a word outside
    quotes begins a comment.
    """
    args: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] == "#":
            break
        word: list[str] = []
        quote: str | None = None
        while i < n:
            c = text[i]
            if c == "\\" and i + 1 < n:
                nxt = text[i + 1]
                if nxt in "'\"\\" or (quote is None and nxt == " "):
                    word.append(nxt)
                    i += 2
                    continue
                word.append(c)
                i += 1
                continue
            if quote is None and c in " \t":
                break
            if quote is None and c in "'\"":
                quote = c
            elif c == quote:
                quote = None
            else:
                word.append(c)
            i += 1
        if quote is not None:
            raise ConfigError("unterminated quoted string", file=where)
        args.append("".join(word))
    return args


_LINE = re.compile(r"^\s*([^\s=]+)\s*(?:=\s*)?(.*?)\s*$")


def _port(text: str, what: str, where: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ConfigError(f"{what} {text!r} is not a port number (1-65535)", file=where)
    return int(text)


def _split_colon_fields(text: str, where: str) -> list[str]:
    """Colon-separated fields where `[...]` protects an IPv6 address (brackets dropped)."""
    fields: list[str] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "[" and not buf:
            end = text.find("]", i)
            if end < 0:
                raise ConfigError(f"unbalanced '[' in {text!r}", file=where)
            buf.append(text[i + 1 : end])
            i = end + 1
            if i < len(text) and text[i] != ":":
                raise ConfigError(f"expected ':' after ']' in {text!r}", file=where)
            continue
        if c == ":":
            fields.append("".join(buf))
            buf = []
        else:
            buf.append(c)
        i += 1
    fields.append("".join(buf))
    return fields


def parse_local_forward(args: list[str], where: str) -> LocalForward | None:
    """`LocalForward [bind_address:]port host:hostport` (ssh_config(5)); None for Unix-socket forms.

    The one-argument `-L` spelling (`18789:127.0.0.1:18789`) is not valid in a config file: OpenSSH
    itself stops with "Missing target argument", so we say so too instead of guessing.
    """
    usage = "LocalForward [bind_address:]port host:hostport, e.g. LocalForward 18789 127.0.0.1:18789"
    if len(args) == 1:
        raise ConfigError(
            f"LocalForward {args[0]!r} has no target argument (OpenSSH rejects this line too)",
            file=where,
            fix=f"write it as two arguments: {usage}",
        )
    if len(args) != 2:
        raise ConfigError(f"LocalForward takes two arguments, got {len(args)}", file=where, fix=usage)
    listen, target = args
    if "/" in listen or "/" in target:
        return None  # Unix-domain socket forward: not a gateway port
    listen_fields = _split_colon_fields(listen, where)
    target_fields = _split_colon_fields(target, where)
    if len(listen_fields) == 1:
        bind, port_text = None, listen_fields[0]
    elif len(listen_fields) == 2:
        bind, port_text = listen_fields[0], listen_fields[1]
    else:
        raise ConfigError(
            f"LocalForward listen address {listen!r} is not [bind_address:]port", file=where, fix=usage
        )
    if len(target_fields) != 2 or not target_fields[0]:
        raise ConfigError(f"LocalForward target {target!r} is not host:hostport", file=where, fix=usage)
    return LocalForward(
        bind_address=bind,
        local_port=_port(port_text, "LocalForward port", where),
        remote_host=target_fields[0],
        remote_port=_port(target_fields[1], "LocalForward hostport", where),
        origin=where,
    )


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return True
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _SshConfigReader:
    """Reads one ssh_config plus its Includes into Host blocks (first value wins, like ssh)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.blocks: list[_HostBlock] = []
        self.sources: list[str] = []

    def read(self, path: Path, depth: int, current: _HostBlock) -> None:
        try:
            size = path.stat().st_size
            if size > MAX_SSH_CONFIG_BYTES:
                raise ConfigError(f"file is {size} bytes; the limit is {MAX_SSH_CONFIG_BYTES}", file=path)
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise ConfigError("SSH config file not found", file=path) from None
        except IsADirectoryError:
            raise ConfigError("is a directory, not an SSH config file", file=path) from None
        except PermissionError:
            raise ConfigError("permission denied reading the SSH config file", file=path) from None
        self.sources.append(str(path))
        for lineno, raw in enumerate(text.splitlines(), 1):
            where = f"{path}:{lineno}"
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                continue
            m = _LINE.match(raw)
            if not m:
                continue
            keyword = m.group(1).lower()
            args = split_args(m.group(2), where)
            current = self.directive(keyword, args, where, depth, current)

    def directive(
        self, keyword: str, args: list[str], where: str, depth: int, current: _HostBlock
    ) -> _HostBlock:
        """Apply one line; returns the block later lines belong to."""
        if keyword == "host":
            if not args:
                raise ConfigError("Host needs at least one pattern", file=where)
            concrete = [p for p in args if not p.startswith("!") and not (_WILDCARDS & set(p))]
            block = _HostBlock(alias=concrete[0] if concrete else None, patterns=tuple(args), origin=where)
            self.blocks.append(block)
            return block
        if keyword == "match":
            block = _HostBlock(alias=None, patterns=tuple(args), origin=where, kind="match")
            self.blocks.append(block)
            return block
        if keyword == "include":
            if not args:
                raise ConfigError("Include needs a file name", file=where)
            if depth >= MAX_INCLUDE_DEPTH:
                raise ConfigError(
                    f"Include nested more than {MAX_INCLUDE_DEPTH} deep (an Include loop?)",
                    file=where,
                    fix="check the Include lines for a file that includes itself",
                )
            for arg in args:
                pattern = _expand_home(arg, self.home)
                if not os.path.isabs(pattern):
                    pattern = str(self.home / ".ssh" / pattern)  # ssh_config(5): relative to ~/.ssh
                for match in sorted(glob.glob(pattern)):
                    if Path(match).is_file():
                        self.read(Path(match), depth + 1, current)
            return current
        if keyword == "localforward":
            fwd = parse_local_forward(args, where)
            if fwd is None:
                current.notes.append(f"{where}: Unix-socket LocalForward skipped")
            elif all(f.local_port != fwd.local_port for f in current.forwards):
                current.forwards.append(fwd)
            return current
        if not args:
            return current
        value = args[0]
        if keyword == "hostname" and current.hostname is None:
            current.hostname = value
        elif keyword == "user" and current.user is None:
            current.user = value
        elif keyword == "port" and current.port is None:
            current.port = _port(value, "Port", where)
        elif keyword == "identityfile" and current.identity is None:
            current.identity = value
        elif keyword == "proxyjump" and current.jump is None:
            current.jump = value
        return current


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


def parse_ssh_config(path: str | Path | None = None, *, home: Path | None = None) -> ImportResult:
    """Profiles from every Host block with a LocalForward (`~/.ssh/config` when no path is given).

    A missing default file is not an error (nothing to import); a missing explicit file is.
    """
    home = Path(home) if home is not None else Path.home()
    explicit = path is not None
    file = Path(path).expanduser() if path is not None else home / ".ssh" / "config"
    result = ImportResult()
    if not explicit and not file.is_file():
        result.skipped.append(f"no SSH config at {file}")
        return result
    reader = _SshConfigReader(home)
    top = _HostBlock(alias=None, patterns=(), origin=f"{file}:0", kind="global")
    reader.blocks.append(top)
    reader.read(file, 0, top)
    result.sources += reader.sources

    # ssh merges blocks that match the same alias, first value winning; so do we.
    merged: dict[str, _HostBlock] = {}
    for block in reader.blocks:
        if block.kind == "match":
            for fwd in block.forwards:
                result.skipped.append(
                    f"{fwd.origin}: LocalForward inside a Match block (conditional) not imported"
                )
            continue
        if block.alias is None:
            scope = (
                "before any Host line"
                if block.kind == "global"
                else f"under 'Host {' '.join(block.patterns)}'"
            )
            for fwd in block.forwards:
                result.skipped.append(
                    f"{fwd.origin}: LocalForward {scope} applies to many hosts; not imported "
                    "(put it in a concrete Host block)"
                )
            continue
        if block.alias not in merged:
            merged[block.alias] = block
            continue
        first = merged[block.alias]
        for attr in ("hostname", "user", "port", "identity", "jump"):
            if getattr(first, attr) is None:
                setattr(first, attr, getattr(block, attr))
        known_ports = {f.local_port for f in first.forwards}
        first.forwards += [f for f in block.forwards if f.local_port not in known_ports]
        first.notes += block.notes

    taken: set[str] = set()
    for alias, block in merged.items():
        result.skipped += block.notes
        if not block.forwards:
            continue
        several = len(block.forwards) > 1
        for fwd in block.forwards:
            notes: list[str] = []
            identity = block.identity
            if identity is not None and (identity.lower() == "none" or "%" in identity):
                if "%" in identity:
                    notes.append(
                        f"IdentityFile {identity} uses % tokens; left to asyncssh's own config reading"
                    )
                identity = None
            jump = block.jump if block.jump and block.jump.lower() != "none" else None
            ssh = SshTarget(
                host=alias,
                user=block.user,
                port=block.port,
                identity=os.path.normpath(_expand_home(identity, home)) if identity else None,
                jump=jump,
            )
            if not _is_loopback(fwd.bind_address):
                notes.append(
                    f"the config binds {fwd.bind_address or '*'}:{fwd.local_port}; clawd listens on "
                    f"127.0.0.1:{fwd.local_port} only"
                )
            if block.hostname:
                notes.append(f"HostName {block.hostname}")
            name = _profile_name(alias, fwd.local_port if several else None, taken)
            profile = Profile(
                name=name,
                method="ssh",
                ssh=ssh,
                remote_host=fwd.remote_host,
                remote_port=fwd.remote_port,
                local_port=fwd.local_port,
            )
            try:
                validate(profile)
            except ConfigError as exc:
                raise ConfigError(f"cannot import Host {alias}: {exc}", file=fwd.origin) from None
            result.profiles.append(ImportedProfile(profile, fwd.origin, notes=notes))
    return result


def _expand_home(path: str, home: Path) -> str:
    if path == "~" or path.startswith(("~/", "~\\")):
        return str(home) + path[1:]
    return os.path.expanduser(path)


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
    "ImportResult",
    "ImportedProfile",
    "LocalForward",
    "import_all",
    "import_openclaw_config",
    "parse_local_forward",
    "parse_ssh_config",
    "split_args",
]
