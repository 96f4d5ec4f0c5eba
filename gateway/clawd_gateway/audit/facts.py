"""What the audit observed, as plain data. Gathering fills these in (gather.py); checks read them.

Secrets never enter these structures: only their length, an entropy estimate and where they
came from, so a facts object can be logged or dumped without leaking anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SecretFact:
    kind: str  # "token" | "password"
    source: str  # e.g. "config gateway.auth.token (literal)", "env OPENCLAW_GATEWAY_TOKEN"
    literal_in_config: bool
    length: int | None  # None: exists but could not be read (e.g. ${VAR} not set here)
    bits: float | None  # estimated entropy
    placeholder: bool = False  # a documentation example value


@dataclass(frozen=True)
class ConfigFacts:
    path: str | None
    source: str
    error: str | None = None  # the config does not load (the gateway would not start)
    refused: str | None = None  # it loads, but the gateway refuses to start with it
    refused_fix: str | None = None
    bind_mode: str = "loopback"
    bind_hosts: tuple[str, ...] = ("127.0.0.1",)
    port: int = 18789
    auth_mode: str = "token"
    token: SecretFact | None = None
    password: SecretFact | None = None
    token_generated: bool = False  # no token configured: a loopback gateway generates one
    allow_tailscale: bool = False
    allow_tailscale_explicit: bool = False
    tailscale_mode: str = "off"
    rate_limit: dict[str, Any] = field(default_factory=dict)
    control_ui_enabled: bool = True
    allowed_origins: tuple[str, ...] = ()
    dangerous_flags: tuple[tuple[str, Any], ...] = ()  # OpenClaw keys clawd accepts but ignores
    literal_secret_keys: tuple[str, ...] = ()  # key paths holding a literal secret in the file


@dataclass(frozen=True)
class PathFact:
    path: str
    role: str  # config | state_dir | token_file | env_file | state_file
    exists: bool
    is_dir: bool = False
    is_symlink: bool = False
    mode: int = 0  # permission bits only
    uid: int = -1
    owner: str = ""
    holds_secret: bool = False
    parent_mode: int = 0o755
    parent: str = ""


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    pid: int | None
    process: str | None
    cmdline: str | None  # with secret flag values masked
    is_gateway: bool  # a clawd-gateway or OpenClaw gateway process
    argv_secrets: tuple[str, ...] = ()  # e.g. "--token **** (32 chars)"
    uid: int | None = None


@dataclass(frozen=True)
class InlineSecret:
    line: int
    var: str
    length: int
    how: str  # "Environment=" | "ExecStart= flag" | "EnvironmentVariables"


@dataclass(frozen=True)
class UnitFact:
    path: str
    manager: str  # systemd | launchd
    inline_secrets: tuple[InlineSecret, ...] = ()
    env_files: tuple[str, ...] = ()
    run_as: str | None = None
    config_arg: str | None = None
    mode: int = 0o644


@dataclass(frozen=True)
class MatchBlock:
    criteria: str
    where: str  # file:line
    settings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SshdFacts:
    source: str  # "sshd -T -f FILE" or "parsed FILE"
    settings: dict[str, str]  # effective global values, lowercase keywords and values
    matches: tuple[MatchBlock, ...] = ()
    caveats: tuple[str, ...] = ()


@dataclass(frozen=True)
class TailscaleRoute:
    listen: str  # "host.tail.ts.net:443" or "tcp:10000"
    path: str
    target: str
    target_port: int | None
    target_loopback: bool
    funnel: bool  # reachable from the public internet


@dataclass(frozen=True)
class TailscaleFacts:
    binary: str
    routes: tuple[TailscaleRoute, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class ProbeFacts:
    url: str
    readyz: str  # "200 {...}" or an error
    unauthenticated: str  # "refused <CODE>" | "accepted" | "unreachable: ..." | "error: ..."


@dataclass(frozen=True)
class Facts:
    config: ConfigFacts | None
    paths: tuple[PathFact, ...] = ()
    listeners: tuple[Listener, ...] = ()
    units: tuple[UnitFact, ...] = ()
    sshd: SshdFacts | None = None
    tailscale: TailscaleFacts | None = None
    probe: ProbeFacts | None = None
    gateway_uids: frozenset[int] = frozenset()  # accounts the gateway runs as (observed or from units)
    current_uid: int = 0
    deep: bool = False
    skipped: tuple[tuple[str, str], ...] = ()
