"""The published state of one tunnel: a typed frozen value, the same shape everywhere.

Why one value type: the agent streams it to every client (CLI `status --json`, `connect`'s
lines, the tray), so the keys users script against (`state`, `local_url`, `active_path`,
`last_error`, `latency_ms`, `since`) are defined once here and nowhere else. Pure data: the
runner builds it, `to_json`/`from_json` move it across the agent's socket.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

UP_STATES = ("forwarding", "healthy", "degraded")
# Worst first: what a glance (the tray icon, `clawd status`'s exit code) should show for several.
SEVERITY = ("fatal", "degraded", "backoff", "connecting", "forwarding", "idle", "healthy", "stopped")


@dataclass(frozen=True)
class Hop:
    hop: str
    ok: bool
    detail: str = ""
    fix: str | None = None


@dataclass(frozen=True)
class PathState:
    """One way into a multi-path profile, as `status --json` shows it under `paths`."""

    path: str  # ssh, tailscale, direct
    state: str
    target: str = "-"
    latency_ms: float | None = None
    last_error: str | None = None
    active: bool = False  # new connections go this way now


@dataclass(frozen=True)
class TunnelStatus:
    profile: str
    state: str  # idle connecting forwarding healthy degraded backoff fatal stopped
    local_url: str
    since: float  # wall clock (epoch seconds) of the last state change
    method: str = "ssh"
    target: str = "-"
    active_path: str | None = None  # the way in carrying connections now (ssh/tailscale/direct)
    last_error: str | None = None
    latency_ms: float | None = None
    degraded: str | None = None
    detail_code: str | None = None
    reconnects: int = 0
    attempts: int = 0
    next_attempt_in_s: float | None = None
    note: str | None = None
    relay: bool | None = None
    upstream: dict[str, Any] | None = None
    server: dict[str, Any] | None = None
    hops: tuple[Hop, ...] = ()
    held: int = 0  # client connections waiting for the path right now
    connections: int = 0  # client connections spliced through right now
    # What only the user can fix: host-key-unknown, host-key-changed, ssh-auth, gateway-auth, setup.
    needs_user: str | None = None
    fingerprint: str | None = None  # the host key's SHA256 fingerprint, for a trust prompt
    fix: str | None = None  # the one thing to do about last_error
    exit_code: int | None = None  # fatal: what a CLI waiting on this tunnel exits with (4 user, 78 config)
    pid: int | None = None  # the process hosting the supervisor (the agent)
    paths: tuple[PathState, ...] = ()  # multi-path profiles: every way in, in preference order

    @property
    def up(self) -> bool:
        return self.state in UP_STATES

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["hops"] = [asdict(h) for h in self.hops]
        data["paths"] = [asdict(p) for p in self.paths]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TunnelStatus:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["hops"] = tuple(Hop(**_known(Hop, h)) for h in data.get("hops") or ())
        kwargs["paths"] = tuple(PathState(**_known(PathState, p)) for p in data.get("paths") or ())
        return cls(**kwargs)


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Only the fields this version knows: a newer agent may send more (an older CLI beside it)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def worst(states: list[str]) -> str | None:
    """The state a single glance should show for several tunnels."""
    ranked = [s for s in SEVERITY if s in states]
    return ranked[0] if ranked else None


@dataclass(frozen=True)
class AgentInfo:
    """Who answers on the control socket."""

    pid: int
    version: str
    api: int
    socket: str
    started: float
    profiles: tuple[str, ...] = field(default_factory=tuple)


__all__ = ["SEVERITY", "UP_STATES", "AgentInfo", "Hop", "PathState", "TunnelStatus", "worst"]
