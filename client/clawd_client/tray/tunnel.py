"""One tunnel's state in the tray's terms: its look, its words, why it needs the user.

Why a module of its own: the presenter composes many tunnels into one icon and menu, the
notification policy judges one tunnel over time, and both must describe a state the same way.
Pure functions of the agent's `TunnelStatus` (None: the profile is not up).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine import PathState, TunnelStatus
from .icons import IconKind

__all__ = [
    "DETAIL_MAX",
    "ICON_RANK",
    "Attention",
    "attention",
    "control_ui_url",
    "describe",
    "detail",
    "hop_lines",
    "icon_kind",
    "is_up",
    "latency",
    "multipath",
    "path_line",
    "path_summary",
    "pinned_path",
    "short",
    "usable",
]

DETAIL_MAX = 72  # a menu line longer than this makes the whole menu wide


@dataclass(frozen=True)
class Attention:
    """Why a tunnel needs the user, from the agent's `needs_user` (for notices and detail lines)."""

    kind: str  # host-key-unknown | host-key-changed | ssh-auth | gateway-auth | setup
    message: str
    fingerprint: str | None = None
    fix: str | None = None


def is_up(st: TunnelStatus | None) -> bool:
    return st is not None and st.state != "stopped"


def _tailscale_login_broken(st: TunnelStatus) -> bool:
    return any(h.hop == "login" and not h.ok for h in st.hops)


def icon_kind(st: TunnelStatus | None) -> IconKind:
    """One tunnel's state -> one of five looks (None: not up).

    A refused gateway secret is "needs the user" although the tunnel is up: only a new secret
    fixes it. So is a Tailscale that is logged out: retrying cannot fix it, the user can.
    """
    if not is_up(st):
        return IconKind.STOPPED
    assert st is not None
    if st.needs_user or st.state == "fatal":
        return IconKind.NEEDS_USER
    if st.state == "healthy":
        return IconKind.HEALTHY
    if st.state == "degraded":
        return IconKind.DEGRADED
    if st.state == "backoff" and _tailscale_login_broken(st):
        return IconKind.NEEDS_USER
    return IconKind.CONNECTING  # idle, connecting, forwarding, backoff


ICON_RANK = {
    IconKind.NEEDS_USER: 0,
    IconKind.DEGRADED: 1,
    IconKind.CONNECTING: 2,
    IconKind.HEALTHY: 3,
    IconKind.STOPPED: 4,
}

_ATTENTION_SHORT = {
    "host-key-unknown": "unknown SSH host key",
    "host-key-changed": "SSH host key CHANGED",
    "ssh-auth": "SSH login refused",
    "gateway-auth": "gateway refused the secret",
    "setup": "setup problem",
}

_DEGRADED_TEXT = {
    "gateway-unreachable": "tunnel up, gateway not answering",
    "gateway-unhealthy": "tunnel up, gateway unhealthy",
    "gateway-auth-rejected": "gateway refused the secret",
}

_TAILSCALE_HOPS = {
    "tailscale": "Tailscale not installed",
    "daemon": "Tailscale not running",
    "login": "Tailscale needs you",
    "peer": "gateway node offline in Tailscale",
}


def short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _tailscale_trouble(st: TunnelStatus) -> str | None:
    """A broken Tailscale hop, in a few words: the cause of the retries is on this machine."""
    for hop in st.hops:
        if not hop.ok:
            return _TAILSCALE_HOPS.get(hop.hop)
    return None


def describe(st: TunnelStatus | None) -> str:
    """One tunnel's state in a few words, without the profile name (None: not up)."""
    if not is_up(st):
        return "disconnected"
    assert st is not None
    state = st.state
    if state == "healthy":
        return "connected"
    if state == "idle":
        return "starting…"
    if state == "connecting":
        return "reconnecting…" if st.last_error else "connecting…"
    if state == "forwarding":
        return "tunnel up, checking the gateway…"
    if state == "backoff":
        tailscale = _tailscale_trouble(st)
        if tailscale:
            return tailscale
        return f"link down, retrying (attempt {st.attempts + 1})" if st.attempts else "link down, retrying"
    if state == "degraded":
        return _DEGRADED_TEXT.get(str(st.degraded), "tunnel up, gateway unhappy")
    if state == "fatal":
        why = _ATTENTION_SHORT.get(st.needs_user or "", "")
        return f"needs you: {why}" if why else "stopped: needs you"
    return state


def attention(st: TunnelStatus | None) -> Attention | None:
    """Why this tunnel needs the user, in words for a notice; None while it does not."""
    if not is_up(st):
        return None
    assert st is not None
    kind = st.needs_user or ("setup" if st.state == "fatal" else None)
    if kind is None:
        return None
    error = st.last_error or "stopped"
    fix = st.fix
    if kind == "host-key-unknown":
        message = f"The SSH host key of {st.target} is not known yet ({st.fingerprint})."
        fix = (
            "compare it with the server's (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then "
            "choose “Trust host key … and connect” in the menu"
        )
    elif kind == "host-key-changed":
        message = f"The SSH host key of {st.target} CHANGED ({st.fingerprint}); clawd will not connect."
    elif kind == "gateway-auth":
        message = f"The gateway refused {st.profile}'s secret: {st.last_error or 'auth rejected'}"
    else:
        message = error
    return Attention(kind, message, fingerprint=st.fingerprint, fix=fix)


def control_ui_url(local_url: str | None) -> str | None:
    """The gateway's Control UI over the tunnel: http on the local port, and never a secret in it.

    The page has its own login form; a token in the URL would land in browser history.
    """
    if not isinstance(local_url, str) or "://" not in local_url:
        return None
    scheme, rest = local_url.split("://", 1)
    host = rest.split("/", 1)[0]
    return f"{'https' if scheme == 'wss' else 'http'}://{host}/"


def detail(st: TunnelStatus | None) -> str | None:
    """A greyed line under the state: the error that explains it, or the engine's note."""
    if not is_up(st):
        return None
    assert st is not None
    if st.state == "fatal" and st.fingerprint:
        return short(f"server key {st.fingerprint}", DETAIL_MAX)
    if st.state in ("backoff", "degraded", "fatal", "connecting") and st.last_error:
        return short(st.last_error, DETAIL_MAX)
    if st.note and pinned_path(st) is None:  # a pin is shown in the Paths section instead
        return short(st.note, DETAIL_MAX)
    return None


def hop_lines(st: TunnelStatus | None) -> list[str]:
    """The path's hops (Tailscale daemon, login, peer, TLS, relay) as greyed menu lines, up to and
    including the first broken one: with Tailscale, "which hop is broken" has more answers."""
    lines: list[str] = []
    for hop in st.hops if st is not None else ():
        lines.append(short(f"{'✓' if hop.ok else '✗'} {hop.hop}: {hop.detail}", DETAIL_MAX))
        if not hop.ok:
            if hop.fix:
                lines.append(short(f"   fix: {hop.fix}", DETAIL_MAX))
            break
    return lines


def usable(st: TunnelStatus | None) -> bool:
    """The local URL leads to a gateway that answers (perhaps unhappily)."""
    if st is None:
        return False
    return st.state == "healthy" or (st.state == "degraded" and st.degraded != "gateway-unreachable")


# --- multi-path profiles -------------------------------------------------------------------------

PINNED = "pinned to "  # the agent's note while the user pinned a path (engine/multipath.py)


def multipath(st: TunnelStatus | None) -> bool:
    """The profile has several ways in (SSH, Tailscale, a direct URL) and is up in the agent."""
    return is_up(st) and st is not None and len(st.paths) > 1


def pinned_path(st: TunnelStatus | None) -> str | None:
    """The path the user pinned (the agent's note says "pinned to X"); None: automatic."""
    if not multipath(st):
        return None
    assert st is not None
    note = st.note or ""
    if not note.startswith(PINNED):
        return None
    path = note[len(PINNED) :].strip()
    return path if any(p.path == path for p in st.paths) else None


def latency(ms: float | None) -> str:
    """A latency for display: "12 ms", or "" without a measurement."""
    return "" if ms is None else f"{ms:g} ms"


def path_line(p: PathState) -> str:
    """One way in, as a menu row: its name, state, latency while up, the error while not."""
    text = f"{p.path}: {p.state}"
    if p.state in ("healthy", "degraded") and p.latency_ms is not None:
        text += f" · {latency(p.latency_ms)}"
    elif p.state not in ("healthy", "forwarding") and p.last_error:
        text += f" — {p.last_error}"
    return short(text, DETAIL_MAX)


def path_summary(st: TunnelStatus) -> str:
    """A multi-path profile in one tooltip line (without the profile name): the active path and
    its latency, then the standbys; or, while no path carries connections, that they are held."""
    pinned = pinned_path(st)
    if st.active_path is None:
        held = f"{st.held} connection{'s' if st.held != 1 else ''} held" if st.held else "connections held"
        others = ", ".join(f"{p.path} {p.state}" for p in st.paths)
        return f"no path healthy, {held} · {others}"
    active = next((p for p in st.paths if p.path == st.active_path), None)
    ms = latency(active.latency_ms if active is not None else st.latency_ms)
    extra = ", ".join(x for x in ("pinned" if pinned == st.active_path else "", ms) if x)
    text = f"{describe(st)} via {st.active_path}" + (f" ({extra})" if extra else "")
    standby = ", ".join(f"{p.path} {p.state}" for p in st.paths if p.path != st.active_path)
    return f"{text} · standby: {standby}" if standby else text
