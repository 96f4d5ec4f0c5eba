"""Named gateway connections, stored as JSON under the user config dir (atomic, 0600).

Secrets never live here: they are in the OS keyring (see secrets.py), keyed by profile name.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clawd_gateway.errors import ConfigError, UserError
from clawd_gateway.paths import atomic_write
from clawd_gateway.protocol.constants import DEFAULT_PORT

from .paths import config_dir

METHODS = ("ssh", "tailscale", "direct")
PREFER = ("order", "fastest")
# What differs from one way into the same gateway to another (the rest is the profile's own).
PATH_FIELDS = (
    "method",
    "ssh",
    "url",
    "remote_host",
    "remote_port",
    "ca_file",
    "allow_insecure_ws",
    "keepalive_interval",
    "keepalive_count",
)
AUTH_MODES = ("token", "password")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PROFILES_FILE = "profiles.json"
_QUIET_DEFAULTS: dict[str, Any] = {
    "ca_file": None,
    "relay": True,
    "allow_insecure_ws": False,
    "hold": 30.0,
    "autoconnect": True,
    "alternates": [],
    "prefer": "order",
    "failback": 30.0,
}
MAX_HOLD_S = 600.0


@dataclass(frozen=True)
class SshTarget:
    host: str  # hostname, IP, or a ~/.ssh/config Host alias
    user: str | None = None
    port: int | None = None  # None: from ~/.ssh/config, else 22
    identity: str | None = None  # private key file; None: agent + default keys
    jump: str | None = None  # ProxyJump-style [user@]host[:port]
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts

    def display(self) -> str:
        text = f"{self.user}@{self.host}" if self.user else self.host
        return f"{text}:{self.port}" if self.port else text


@dataclass(frozen=True)
class Profile:
    name: str
    method: str = "ssh"
    ssh: SshTarget | None = None
    remote_host: str = "127.0.0.1"
    remote_port: int = DEFAULT_PORT
    local_port: int = DEFAULT_PORT
    auth: str = "token"
    url: str | None = None  # direct/tailscale: the gateway's ws:// or wss:// URL
    keepalive_interval: float = 1.0  # seconds; with keepalive_count, a dead link shows in ~4 s
    keepalive_count: int = 3
    probe_interval: float = 15.0
    ca_file: str | None = None  # wss: extra PEM CA(s) to trust besides the system store
    relay: bool = True  # direct/tailscale: serve the gateway on ws://127.0.0.1:local_port too
    allow_insecure_ws: bool = False  # direct: plain ws:// to a host off loopback and the tailnet
    hold: float = 30.0  # seconds a client connecting while the path is down waits (0: refuse at once)
    autoconnect: bool = True  # the agent brings this profile back up after a restart if it was up
    # Further ways to the same gateway (single-path profiles: only PATH_FIELDS count), after this
    # profile's own in preference order; the agent fails over between them (engine/multipath.py).
    alternates: tuple[Profile, ...] = ()
    prefer: str = "order"  # order: the first healthy in order; fastest: the lowest health latency
    failback: float = 30.0  # a more preferred path healthy this long takes new connections back
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def local_url(self) -> str:
        return f"ws://127.0.0.1:{self.local_port}"

    def ways(self) -> tuple[Profile, ...]:
        """Every way in as a single-path profile, in preference order, this profile's own first."""
        first = replace(self, alternates=())
        alts = (replace(first, **{f: getattr(a, f) for f in PATH_FIELDS}) for a in self.alternates)
        return (first, *alts)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["alternates"] = [
            {k: v for k, v in alt.to_json().items() if k in PATH_FIELDS} for alt in self.alternates
        ]
        if not data["extra"]:
            del data["extra"]
        for key, default in _QUIET_DEFAULTS.items():  # keep SSH profiles' files as they were
            if data.get(key) == default:
                del data[key]
        return data

    @classmethod
    def from_json(cls, data: Any, source: Path | None = None) -> Profile:
        where = f"{source}: " if source else ""
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ConfigError(f"{where}a profile entry is not an object with a name")
        name = data["name"]
        try:
            ssh_data = data.get("ssh")
            ssh = SshTarget(**ssh_data) if isinstance(ssh_data, dict) else None
            known = {f for f in cls.__dataclass_fields__ if f not in ("ssh", "alternates")}
            kwargs = {k: v for k, v in data.items() if k in known}
            alts = data.get("alternates") or []
            if not isinstance(alts, list) or not all(isinstance(a, dict) for a in alts):
                raise ConfigError(f"{where}profile {name!r}: alternates must be a list of objects")
            alternates = tuple(cls.from_json({**a, "name": name}, source) for a in alts)
            profile = cls(ssh=ssh, alternates=alternates, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"{where}profile {name!r}: {exc}") from None
        return validate(profile)


def validate(p: Profile) -> Profile:
    key = f"profile {p.name!r}"
    if not _NAME.match(p.name):
        raise ConfigError(
            f"{p.name!r} is not a valid profile name (letters, digits, . _ -; up to 64)", key="name"
        )
    if p.method not in METHODS:
        raise ConfigError(f"{key}: method {p.method!r} is not one of {', '.join(METHODS)}", key="method")
    if p.auth not in AUTH_MODES:
        raise ConfigError(f"{key}: auth {p.auth!r} is not one of {', '.join(AUTH_MODES)}", key="auth")
    for attr in ("remote_port", "local_port"):
        value = getattr(p, attr)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise ConfigError(f"{key}: {attr} {value!r} is not a port (1-65535)", key=attr)
    if p.method == "ssh":
        if p.ssh is None or not p.ssh.host:
            raise ConfigError(f"{key}: method ssh needs an SSH target", key="ssh", fix="--ssh user@host")
        if p.ssh.port is not None and not 1 <= p.ssh.port <= 65535:
            raise ConfigError(f"{key}: ssh port {p.ssh.port!r} is not a port", key="ssh.port")
        if any(c.isspace() for c in p.ssh.host) or p.ssh.host.startswith("-"):
            raise ConfigError(f"{key}: ssh host {p.ssh.host!r} is not a host name", key="ssh.host")
    if p.method in ("tailscale", "direct"):
        _validate_url(p, key)
    if isinstance(p.hold, bool) or not isinstance(p.hold, int | float) or not 0 <= p.hold <= MAX_HOLD_S:
        raise ConfigError(
            f"{key}: hold {p.hold!r} is not a number of seconds from 0 to {MAX_HOLD_S:g}",
            key="hold",
            fix="--hold 30 (0 refuses connections at once while the path is down)",
        )
    if p.prefer not in PREFER:
        raise ConfigError(f"{key}: prefer {p.prefer!r} is not one of {', '.join(PREFER)}", key="prefer")
    if isinstance(p.failback, bool) or not isinstance(p.failback, int | float) or p.failback < 0:
        raise ConfigError(f"{key}: failback {p.failback!r} is not a number of seconds", key="failback")
    methods = [w.method for w in (p, *p.alternates)]
    if len(set(methods)) != len(methods):
        raise ConfigError(
            f"{key}: one path per way in ({', '.join(methods)})",
            key="alternates",
            fix="give --ssh, --tailscale and --url at most once each",
        )
    for alt in p.alternates:
        validate(replace(alt, name=p.name, alternates=()))
    if not isinstance(p.autoconnect, bool):
        raise ConfigError(f"{key}: autoconnect {p.autoconnect!r} is not true or false", key="autoconnect")
    if p.keepalive_interval <= 0 or p.keepalive_count < 1:
        raise ConfigError(f"{key}: keepalive must be > 0", key="keepalive_interval")
    return p


def _validate_url(p: Profile, key: str) -> None:
    """Shape only: whether plain ws:// is acceptable depends on the tailnet, checked at connect."""
    flag = "--tailscale HOST" if p.method == "tailscale" else "--url URL"
    if not p.url:
        raise ConfigError(f"{key}: method {p.method} needs a gateway URL", key="url", fix=flag)
    try:
        parts = urlsplit(p.url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{key}: url {p.url!r} is not a URL ({exc})", key="url") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(
            f"{key}: url {p.url!r} is not a ws:// or wss:// URL with a host",
            key="url",
            fix="e.g. wss://gateway.tail1234.ts.net/ or ws://100.101.102.103:18789",
        )
    if parts.username or parts.password or parts.query:
        raise ConfigError(
            f"{key}: url {p.url!r} carries credentials or a query; secrets belong in the keyring",
            key="url",
            fix=f"clawd secret set {p.name}",
        )
    if port == 0:
        raise ConfigError(f"{key}: url {p.url!r} has port 0", key="url")
    if p.ca_file is not None and parts.scheme != "wss":
        raise ConfigError(f"{key}: ca_file only applies to wss:// URLs", key="ca_file")


def url_target(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a validated ws/wss URL; the port defaults like a browser's."""
    parts = urlsplit(url)
    scheme = parts.scheme
    return scheme, parts.hostname or "", parts.port or (443 if scheme == "wss" else 80)


def parse_ssh_target(text: str) -> SshTarget:
    """`[user@]host[:port]`, IPv6 as `[::1]:22`; rejects what OpenSSH would read as an option."""
    raw = text.strip()
    if raw.startswith("ssh "):
        raw = raw[4:].strip()
    if not raw or raw.startswith("-") or any(c.isspace() or ord(c) < 32 for c in raw):
        raise ConfigError(f"{text!r} is not an SSH target", key="--ssh", fix="use [user@]host[:port]")
    user = None
    if "@" in raw:
        user, raw = raw.rsplit("@", 1)
    port: int | None = None
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:], text)
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
        port = _port(port_text, text)
    else:
        host = raw
    if not host:
        raise ConfigError(f"{text!r} has no host", key="--ssh")
    return SshTarget(host=host, user=user or None, port=port)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ConfigError(f"{whole!r}: {text!r} is not a port", key="--ssh")
    return int(text)


class ProfileStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or (config_dir() / PROFILES_FILE)

    def load(self) -> dict[str, Profile]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"not valid JSON ({exc})", file=self.path) from None
        entries = data.get("profiles", []) if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ConfigError('expected {"profiles": [...]}', file=self.path)
        out: dict[str, Profile] = {}
        for entry in entries:
            p = Profile.from_json(entry, self.path)
            out[p.name] = p
        return out

    def save(self, profiles: dict[str, Profile]) -> None:
        body = {
            "version": 1,
            "profiles": [p.to_json() for p in sorted(profiles.values(), key=lambda p: p.name)],
        }
        atomic_write(self.path, json.dumps(body, indent=2) + "\n", mode=0o600)

    def add(self, profile: Profile, *, replace_existing: bool = False) -> None:
        profiles = self.load()
        if profile.name in profiles and not replace_existing:
            raise UserError(
                f"profile {profile.name!r} already exists in {self.path}",
                fix=f"remove it first (clawd profile remove {profile.name}) or choose another name",
            )
        profiles[profile.name] = validate(profile)
        self.save(profiles)

    def remove(self, name: str) -> Profile:
        profiles = self.load()
        if name not in profiles:
            raise UserError(f"no profile named {name!r}" + _known(profiles))
        gone = profiles.pop(name)
        self.save(profiles)
        return gone

    def get(self, name: str | None) -> Profile:
        """A named profile, or the only one when no name is given."""
        profiles = self.load()
        if name is None:
            if len(profiles) == 1:
                return next(iter(profiles.values()))
            if not profiles:
                raise UserError(
                    "no gateway profile is set up yet",
                    fix="clawd profile add NAME --ssh user@host (or clawd profile import)",
                )
            raise UserError("several profiles exist; name one" + _known(profiles))
        if name not in profiles:
            raise UserError(f"no profile named {name!r}" + _known(profiles))
        return profiles[name]


def _known(profiles: dict[str, Profile]) -> str:
    return f" (known: {', '.join(sorted(profiles))})" if profiles else " (none are set up yet)"


def describe_target(p: Profile) -> str:
    """Where one way in goes, for people: `user@host:22 via jump`, or the gateway URL."""
    if p.method == "ssh" and p.ssh is not None:
        text = p.ssh.display()
        if p.ssh.jump:
            text += f" via {p.ssh.jump}"
        return text
    return p.url or "-"


__all__ = [
    "Profile",
    "ProfileStore",
    "SshTarget",
    "describe_target",
    "parse_ssh_target",
    "replace",
    "url_target",
    "validate",
]
