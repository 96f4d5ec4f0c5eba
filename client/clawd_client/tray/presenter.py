"""What the tray shows, as pure functions: engine status in; icon, tooltip, menu and notices out.

Why pure: the tray must never decide anything about the tunnel (the engine does), and every
state must be checkable without a desktop. Everything here takes plain data (the status dict
the supervisor publishes, the profile names, a few flags, the time as a number) and returns
plain data, so `tests/test_tray_presenter.py` walks every engine state and the pystray adapter
(`app.py`) only translates the result into widgets.

Notification policy (`notify_step`), because a flapping link must not spam the desktop:
- a drop that the engine heals within `grace_s` (20 s) is never announced: the engine
  reconnects in a few seconds after sleep or a network change, and that is not news;
- "lost" at most once per `lost_every_s` (10 min); drops in between are counted and mentioned
  in the next "lost" notice; "restored" only follows a "lost" that was actually shown;
- "needs attention" (auth refused, host key unknown or changed, a setup error) at once, but the
  same cause at most once per `attention_every_s` (10 min);
- nothing for what the user did (Disconnect, Quit) or for a first connection that just works.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .icons import IconKind

__all__ = [
    "Action",
    "Attention",
    "Caps",
    "MenuItem",
    "Notice",
    "NotifyPolicy",
    "NotifyState",
    "Presentation",
    "TrayInput",
    "control_ui_url",
    "hop_lines",
    "icon_kind",
    "notify_step",
    "present",
]

TOOLTIP_MAX = 127  # Windows truncates NOTIFYICONDATA.szTip at 128 characters (with the NUL)
DETAIL_MAX = 72  # a second menu line longer than this makes the whole menu wide

RUNNING = ("idle", "connecting", "forwarding", "healthy", "degraded", "backoff")


class Action(str, enum.Enum):
    """Menu actions; the adapter maps each onto an engine command or a desktop action."""

    CONNECT = "connect"
    DISCONNECT = "disconnect"
    RECONNECT = "reconnect"
    TRUST_HOST_KEY = "trust-host-key"
    SELECT_PROFILE = "profile"  # item ids are "profile:NAME"
    OPEN_UI = "open-ui"
    COPY_URL = "copy-url"
    DIAGNOSE = "diagnose"
    OPEN_LOGS = "open-logs"
    AUTOSTART = "autostart"
    QUIT = "quit"


@dataclass(frozen=True)
class Caps:
    """What the pystray backend in use can do (its HAS_* flags), plus whether notifications arrive."""

    backend: str
    has_menu: bool = True
    has_default_action: bool = True
    has_radio: bool = True
    has_notification: bool = True


@dataclass(frozen=True)
class Attention:
    """Why the engine stopped and needs the user, from Supervisor.last_cause (adapter-side)."""

    kind: str  # host-key-unknown | host-key-changed | ssh-auth | gateway-auth | setup
    message: str
    fingerprint: str | None = None  # host-key-* only: the server's key, to compare before trusting
    fix: str | None = None


@dataclass(frozen=True)
class TrayInput:
    status: Mapping[str, Any] | None  # the supervisor's latest status dict; None before the first
    profiles: tuple[str, ...] = ()
    profile: str | None = None
    autostart: bool | None = None  # None: the autostart module is missing or failed
    caps: Caps = field(default_factory=lambda: Caps("appindicator"))
    attention: Attention | None = None
    blocked: str | None = None  # the engine cannot run at all (profile held elsewhere, no profile)
    busy: frozenset[str] = frozenset()  # actions in flight, e.g. {"diagnose", "autostart"}


@dataclass(frozen=True)
class MenuItem:
    """One row of the menu model; `id` is an Action value ("" for labels and separators)."""

    id: str
    text: str
    enabled: bool = True
    checked: bool | None = None  # None: not a check/radio item
    radio: bool = False
    default: bool = False
    submenu: tuple[MenuItem, ...] = ()
    separator: bool = False


SEPARATOR = MenuItem("", "", enabled=False, separator=True)


@dataclass(frozen=True)
class Presentation:
    icon: IconKind
    tooltip: str
    headline: str  # the menu's first line, also used in notices and logs
    menu: tuple[MenuItem, ...]
    default_action: str | None  # what a plain click does (xorg has no menu, only this)

    def find(self, item_id: str) -> MenuItem | None:
        """The menu item with this id, submenus included (tests and the adapter's lookups)."""
        stack = list(self.menu)
        while stack:
            item = stack.pop(0)
            if item.id == item_id:
                return item
            stack.extend(item.submenu)
        return None


# --- mapping -------------------------------------------------------------------------------------


def icon_kind(
    status: Mapping[str, Any] | None, attention: Attention | None = None, blocked: str | None = None
) -> IconKind:
    """Engine state -> one of five looks.

    A refused gateway secret is "needs the user" although the tunnel is up: only a new secret
    fixes it, and the engine re-probes it only every 5 minutes.
    """
    if blocked:
        return IconKind.NEEDS_USER
    if status is None:
        return IconKind.CONNECTING
    state = status.get("state")
    if state == "healthy":
        return IconKind.HEALTHY
    if state == "degraded":
        if status.get("degraded") == "gateway-auth-rejected":
            return IconKind.NEEDS_USER
        return IconKind.DEGRADED
    if state == "fatal":
        return IconKind.NEEDS_USER
    if state in ("stopped", "not running"):
        return IconKind.STOPPED
    if state == "backoff" and any(
        isinstance(h, Mapping) and h.get("hop") == "login" and not h.get("ok")
        for h in status.get("hops") or []
    ):
        return IconKind.NEEDS_USER  # logged out of Tailscale: retrying cannot fix it, the user can
    return IconKind.CONNECTING  # idle, connecting, forwarding, backoff


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


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_TAILSCALE_HOPS = {
    "tailscale": "Tailscale not installed",
    "daemon": "Tailscale not running",
    "login": "Tailscale needs you",
    "peer": "gateway node offline in Tailscale",
}


def _tailscale_trouble(status: Mapping[str, Any]) -> str | None:
    """A broken Tailscale hop, in a few words: the cause of the retries is on this machine."""
    for hop in status.get("hops") or []:
        if isinstance(hop, Mapping) and not hop.get("ok"):
            return _TAILSCALE_HOPS.get(str(hop.get("hop")))
    return None


def describe(status: Mapping[str, Any] | None, attention: Attention | None = None) -> str:
    """The state in a few words, without the profile name."""
    if status is None:
        return "starting…"
    state = status.get("state")
    if state == "healthy":
        return "connected"
    if state == "idle":
        return "starting…"
    if state == "connecting":
        return "reconnecting…" if status.get("lastError") else "connecting…"
    if state == "forwarding":
        return "tunnel up, checking the gateway…"
    tailscale = _tailscale_trouble(status)
    if state in ("backoff", "connecting") and tailscale:
        return tailscale
    if state == "backoff":
        attempts = status.get("attempts") or 0
        return f"link down, retrying (attempt {attempts + 1})" if attempts else "link down, retrying"
    if state == "degraded":
        return _DEGRADED_TEXT.get(str(status.get("degraded")), "tunnel up, gateway unhappy")
    if state == "fatal":
        why = _ATTENTION_SHORT.get(attention.kind, "") if attention else ""
        return f"needs you: {why}" if why else "stopped: needs you"
    if state == "stopped":
        return "disconnected"
    return str(state or "unknown")


def control_ui_url(status: Mapping[str, Any] | None) -> str | None:
    """The gateway's Control UI over the tunnel: http on the local port, and never a secret in it.

    The page has its own login form; a token in the URL would land in browser history.
    """
    local = (status or {}).get("localUrl")
    if not isinstance(local, str) or "://" not in local:
        return None
    scheme, rest = local.split("://", 1)
    host = rest.split("/", 1)[0]
    return f"{'https' if scheme == 'wss' else 'http'}://{host}/"


def _detail(status: Mapping[str, Any] | None, attention: Attention | None) -> str | None:
    """A second, greyed line: the error that explains a non-healthy state, or the engine's note."""
    if status is None:
        return None
    state = status.get("state")
    if state == "fatal" and attention is not None and attention.fingerprint:
        return _short(f"server key {attention.fingerprint}", DETAIL_MAX)
    if state in ("backoff", "degraded", "fatal", "connecting") and status.get("lastError"):
        return _short(str(status["lastError"]), DETAIL_MAX)
    if status.get("note"):
        return _short(str(status["note"]), DETAIL_MAX)
    return None


def hop_lines(status: Mapping[str, Any] | None) -> list[str]:
    """The path's hops (Tailscale daemon, login, peer, TLS, relay) as greyed menu lines, up to and
    including the first broken one: with Tailscale, "which hop is broken" has more answers."""
    lines: list[str] = []
    for hop in (status or {}).get("hops") or []:
        if not isinstance(hop, Mapping):
            continue
        ok = bool(hop.get("ok"))
        text = f"{'✓' if ok else '✗'} {hop.get('hop', '?')}: {hop.get('detail', '')}"
        lines.append(_short(text, DETAIL_MAX))
        if not ok:
            if hop.get("fix"):
                lines.append(_short(f"   fix: {hop['fix']}", DETAIL_MAX))
            break
    return lines


def _tooltip(inp: TrayInput, headline: str) -> str:
    status = inp.status or {}
    lines = [f"clawd · {headline}"]
    if status.get("state") == "healthy" and status.get("latencyMs") is not None:
        lines[0] += f" · {status['latencyMs']:g} ms"
    if status.get("localUrl") and not inp.blocked:
        lines.append(str(status["localUrl"]))
    text = "\n".join(lines)
    return text if len(text) <= TOOLTIP_MAX else text[: TOOLTIP_MAX - 1] + "…"


def _default_action(inp: TrayInput) -> str | None:
    """A plain click must be useful even where there is no menu (the xorg backend).

    Up and usable: open the Control UI. Stopped: connect. Needs the user: diagnose (explains
    why; a click must never trust a host key). Otherwise: reconnect now.
    """
    if inp.blocked:
        return Action.CONNECT.value
    status = inp.status
    if status is None:
        return None
    state = status.get("state")
    if state == "healthy" or (state == "degraded" and status.get("degraded") != "gateway-unreachable"):
        if status.get("degraded") == "gateway-auth-rejected":
            return Action.DIAGNOSE.value
        return Action.OPEN_UI.value
    if state in ("stopped", "not running"):
        return Action.CONNECT.value
    if state == "fatal":
        return Action.DIAGNOSE.value
    return Action.RECONNECT.value


def present(inp: TrayInput) -> Presentation:
    """The whole tray for one moment: icon, tooltip, menu model, default click."""
    status = inp.status
    state = (status or {}).get("state")
    name = inp.profile or (status or {}).get("profile") or "clawd"
    kind = icon_kind(status, inp.attention, inp.blocked)
    headline = inp.blocked if inp.blocked else f"{name}: {describe(status, inp.attention)}"
    default = _default_action(inp)
    mark_default = inp.caps.has_default_action

    items: list[MenuItem] = [MenuItem("", _short(headline, DETAIL_MAX), enabled=False)]
    detail = None if inp.blocked else _detail(status, inp.attention)
    if detail:
        items.append(MenuItem("", detail, enabled=False))
    if not inp.blocked:
        items.extend(MenuItem("", line, enabled=False) for line in hop_lines(status))
    items.append(SEPARATOR)

    running = state in RUNNING
    can_connect = bool(inp.blocked) or state in ("stopped", "fatal", "not running")
    tunnel_usable = state == "healthy" or (
        state == "degraded" and (status or {}).get("degraded") != "gateway-unreachable"
    )

    def item(action: Action, text: str, enabled: bool, **kw: Any) -> MenuItem:
        is_default = mark_default and enabled and default == action.value
        return MenuItem(action.value, text, enabled=enabled, default=is_default, **kw)

    items.append(item(Action.CONNECT, "Connect", can_connect))
    items.append(item(Action.DISCONNECT, "Disconnect", running and not inp.blocked))
    items.append(item(Action.RECONNECT, "Reconnect now", (running or state == "fatal") and not inp.blocked))
    att = inp.attention
    if state == "fatal" and att is not None and att.kind == "host-key-unknown" and att.fingerprint:
        fp = att.fingerprint if len(att.fingerprint) <= 30 else att.fingerprint[:29] + "…"
        items.append(item(Action.TRUST_HOST_KEY, f"Trust host key {fp} and connect", True))
    if len(inp.profiles) > 1:
        radio = inp.caps.has_radio
        subs = tuple(
            MenuItem(
                f"{Action.SELECT_PROFILE.value}:{p}", p, enabled=True, checked=p == inp.profile, radio=radio
            )
            for p in inp.profiles
        )
        items.append(MenuItem("", f"Profile: {name}", enabled=True, submenu=subs))
    items.append(SEPARATOR)
    items.append(item(Action.OPEN_UI, "Open Control UI", tunnel_usable and not inp.blocked))
    local = (status or {}).get("localUrl")
    items.append(
        item(
            Action.COPY_URL,
            f"Copy gateway URL ({local})" if local else "Copy gateway URL",
            bool(local) and not inp.blocked,
        )
    )
    diagnosing = "diagnose" in inp.busy
    items.append(
        item(
            Action.DIAGNOSE,
            "Running diagnosis…" if diagnosing else "Run diagnosis",
            not diagnosing and inp.profile is not None,
        )
    )
    items.append(item(Action.OPEN_LOGS, "Open logs", True))
    items.append(SEPARATOR)
    if inp.autostart is None:
        items.append(
            MenuItem(Action.AUTOSTART.value, "Start at login (unavailable)", enabled=False, checked=False)
        )
    else:
        items.append(
            MenuItem(
                Action.AUTOSTART.value,
                "Start at login",
                enabled="autostart" not in inp.busy,
                checked=inp.autostart,
            )
        )
    items.append(SEPARATOR)
    items.append(item(Action.QUIT, "Quit", True))
    return Presentation(kind, _tooltip(inp, headline), headline, tuple(items), default)


# --- notifications -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    kind: str  # lost | restored | attention
    title: str
    message: str


@dataclass(frozen=True)
class NotifyPolicy:
    grace_s: float = 20.0
    lost_every_s: float = 600.0
    attention_every_s: float = 600.0


@dataclass(frozen=True)
class NotifyState:
    down_since: float | None = None  # when the link stopped being healthy while the engine wanted it
    drop_handled: bool = False  # this drop was announced or counted as suppressed
    lost_shown: bool = False  # a "lost" notice is out; "restored" will follow it
    last_lost_at: float | None = None
    suppressed: int = 0  # drops not announced since the last "lost" notice
    ever_up: bool = False
    attention_key: str | None = None
    last_attention_at: float | None = None


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def notify_step(
    st: NotifyState,
    kind: IconKind,
    status: Mapping[str, Any] | None,
    now: float,
    *,
    profile: str = "clawd",
    attention: Attention | None = None,
    policy: NotifyPolicy | None = None,
) -> tuple[NotifyState, list[Notice], float | None]:
    """Feed the current look and the time; get the new state, the notices to show now, and when
    to call again (the end of the grace period of an ongoing drop) or None.

    Call it on every status change and at the returned time; `now` is any monotonic clock.
    """
    pol = policy or NotifyPolicy()
    notices: list[Notice] = []
    error = str((status or {}).get("lastError") or "")

    if kind is IconKind.HEALTHY:
        if st.lost_shown and st.down_since is not None:
            verb = "restored" if st.ever_up else "established"
            notices.append(
                Notice(
                    "restored",
                    f"clawd: {profile} connected",
                    f"Connection {verb} after {_duration(now - st.down_since)}.",
                )
            )
        return (
            replace(st, down_since=None, drop_handled=False, lost_shown=False, ever_up=True),
            notices,
            None,
        )

    if kind is IconKind.STOPPED:  # the user's own doing: nothing to say, and no "restored" later
        return replace(st, down_since=None, drop_handled=False, lost_shown=False), notices, None

    if kind is IconKind.NEEDS_USER:
        message = attention.message if attention else error or "the connection needs your attention"
        key = f"{attention.kind if attention else 'state'}|{message}"
        due = st.last_attention_at is None or now - st.last_attention_at >= pol.attention_every_s
        new = st
        if key != st.attention_key or due:
            fix = f"\nFix: {attention.fix}" if attention and attention.fix else ""
            notices.append(Notice("attention", f"clawd: {profile} needs your attention", message + fix))
            new = replace(st, attention_key=key, last_attention_at=now)
        # Not a drop that heals by itself: no "lost" timer runs meanwhile. If a "lost" notice is
        # out, keep its start so the "restored" after the user's fix says how long it was down.
        if new.lost_shown:
            return replace(new, drop_handled=True), notices, None
        return replace(new, down_since=None, drop_handled=False), notices, None

    # CONNECTING or DEGRADED: the engine is trying; wait out the grace period before saying so.
    down_since = st.down_since if st.down_since is not None else now
    new = replace(st, down_since=down_since)
    if new.drop_handled:
        return new, notices, None
    if now - down_since < pol.grace_s:
        return new, notices, down_since + pol.grace_s
    if new.last_lost_at is not None and now - new.last_lost_at < pol.lost_every_s:
        return replace(new, drop_handled=True, suppressed=new.suppressed + 1), notices, None
    more = f" ({new.suppressed} more drop{'s' if new.suppressed != 1 else ''} since the last notice)"
    if new.ever_up:
        title = f"clawd: {profile} connection lost"
        body = "Reconnecting automatically."
    else:
        title = f"clawd: cannot connect to {profile} yet"
        body = "Still trying."
    if error:
        body += f" Last error: {_short(error, 160)}"
    if new.suppressed:
        body += more
    notices.append(Notice("lost", title, body))
    return (
        replace(new, drop_handled=True, lost_shown=True, last_lost_at=now, suppressed=0),
        notices,
        None,
    )
