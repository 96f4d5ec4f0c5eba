"""What the tray shows, as pure functions: the agent's tunnel states in; icon, tooltip and menu out.

Why pure: the tray decides nothing about a tunnel (the agent does); it sends commands and shows
state, and every state must be checkable without a desktop. `present()` takes plain data (every
profile's name, the latest `TunnelStatus` of each profile that is up in the agent, whether the
tray is attached to the agent, a few flags) and returns plain data, so
`tests/test_tray_presenter.py` walks every state and the pystray adapter (`app.py`) only turns
the result into widgets. When to notify is decided just as purely, in `notify.py`.

Layout: with one profile the menu is flat (its state, its actions, then the app's items); with
several, each profile is a submenu titled with its state, so the top level reads as the list of
tunnels. The icon shows the worst state among the profiles that are up: a profile the user never
brought up does not turn the icon grey while another one is healthy.

A multi-path profile (several ways in behind one local URL, engine/multipath.py) adds a "Paths"
section to its rows: every path with its state and latency (the one carrying new connections
checked), then "Automatic (prefer …)" and one "Use PATH while healthy" per path, a radio group
whose clicks send the agent's `pin`. What each click asks of the agent is `agent_request()`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..engine import TunnelStatus, worst
from .icons import IconKind
from .tunnel import (
    DETAIL_MAX,
    ICON_RANK,
    control_ui_url,
    describe,
    detail,
    hop_lines,
    icon_kind,
    is_up,
    latency,
    multipath,
    path_line,
    path_summary,
    pinned_path,
    short,
    usable,
)

__all__ = [
    "Action",
    "AgentConn",
    "Caps",
    "MenuItem",
    "Presentation",
    "TrayInput",
    "agent_request",
    "focus",
    "item_id",
    "parse_item_id",
    "present",
    "tray_icon",
    "worst_profile",
]

TOOLTIP_MAX = 127  # Windows truncates NOTIFYICONDATA.szTip at 128 characters (with the NUL)
NO_PROFILE = "no gateway profile yet: clawd profile add NAME --ssh user@host"


class Action(str, enum.Enum):
    """Menu actions. Per-profile ones have item ids "ACTION:PROFILE"; the others are bare."""

    CONNECT = "connect"  # the agent's `up` (without waiting)
    DISCONNECT = "disconnect"  # `down`
    RECONNECT = "reconnect"
    TRUST_HOST_KEY = "trust-host-key"  # `trust` with the fingerprint shown in the item
    OPEN_UI = "open-ui"
    COPY_URL = "copy-url"
    DIAGNOSE = "diagnose"
    PROFILE = "profile"  # a profile's submenu (several profiles); no action of its own
    OPEN_LOGS = "open-logs"
    AUTOSTART = "autostart"
    QUIT = "quit"  # the tray exits; every tunnel stays up in the agent
    DISCONNECT_ALL_QUIT = "disconnect-all-quit"  # `down` with all=true, then quit
    # Multi-path profiles: `pin` new connections to one way in while it is healthy, or unpin.
    PIN_SSH = "pin-ssh"
    PIN_TAILSCALE = "pin-tailscale"
    PIN_DIRECT = "pin-direct"
    UNPIN = "unpin"  # "Automatic": back to the profile's own preference (`pin` with path null)


PIN_ACTIONS = {"ssh": Action.PIN_SSH, "tailscale": Action.PIN_TAILSCALE, "direct": Action.PIN_DIRECT}
_PIN_PATH = {action: path for path, action in PIN_ACTIONS.items()}


def item_id(action: Action, profile: str | None = None) -> str:
    return action.value if profile is None else f"{action.value}:{profile}"


def parse_item_id(value: str) -> tuple[Action, str | None]:
    """Split an item id: "connect:vps" -> (CONNECT, "vps"), "quit" -> (QUIT, None); ValueError if unknown."""
    action, sep, profile = value.partition(":")
    return Action(action), (profile if sep else None)


def agent_request(
    action: Action, profile: str | None, arg: str | None = None
) -> tuple[str, dict[str, Any]] | None:
    """The agent op (and its params) a click on this item sends; None for desktop and app items."""
    if profile is None:
        return None
    target: dict[str, Any] = {"profiles": [profile]}
    if action is Action.CONNECT:
        return "up", {**target, "wait": False}
    if action is Action.DISCONNECT:
        return "down", target
    if action is Action.RECONNECT:
        return "reconnect", target
    if action is Action.TRUST_HOST_KEY:
        return ("trust", {**target, "fingerprint": arg}) if arg else None
    if action in _PIN_PATH:
        return "pin", {**target, "path": _PIN_PATH[action]}
    if action is Action.UNPIN:
        return "pin", {**target, "path": None}
    return None


@dataclass(frozen=True)
class Caps:
    """What the pystray backend in use can do (its HAS_* flags), plus whether notifications arrive."""

    backend: str
    has_menu: bool = True
    has_default_action: bool = True
    has_radio: bool = True
    has_notification: bool = True


@dataclass(frozen=True)
class AgentConn:
    """The tray's link to the agent: attached (the state stream flows) or getting there."""

    phase: str = "attached"  # starting | attached | reconnecting
    error: str | None = None  # why the last attempt to reach the agent failed
    pid: int | None = None

    @property
    def attached(self) -> bool:
        return self.phase == "attached"


@dataclass(frozen=True)
class TrayInput:
    profiles: tuple[str, ...] = ()  # every profile in the ProfileStore
    tunnels: Mapping[str, TunnelStatus] = field(default_factory=dict)  # the agent's, per profile up
    agent: AgentConn = field(default_factory=AgentConn)
    autostart: bool | None = None  # None: the autostart module is missing or failed
    caps: Caps = field(default_factory=lambda: Caps("appindicator"))
    busy: frozenset[str] = frozenset()  # in flight: "autostart", "diagnose:NAME", "quit"
    preferred: str | None = None  # named on the command line: a click's target while nothing is up
    problem: str | None = None  # the profiles cannot be read
    prefer: Mapping[str, str] = field(default_factory=dict)  # multi-path profiles: order | fastest

    def up(self) -> dict[str, TunnelStatus]:
        """The profiles that are up in the agent (a "stopped" one is on its way out)."""
        if not self.agent.attached:
            return {}
        return {n: s for n, s in sorted(self.tunnels.items()) if s.state != "stopped"}

    def names(self) -> tuple[str, ...]:
        """Every profile to show: the store's, plus any that is up but gone from the store."""
        return tuple(sorted(set(self.profiles) | set(self.up())))


@dataclass(frozen=True)
class MenuItem:
    """One row of the menu model; `id` is an item id ("" for labels and separators)."""

    id: str
    text: str
    enabled: bool = True
    checked: bool | None = None  # None: not a check item
    radio: bool = False  # a check item drawn as one of a group (the paths, the pin choice)
    default: bool = False
    submenu: tuple[MenuItem, ...] = ()
    separator: bool = False
    arg: str | None = None  # what the click acts on as shown: a fingerprint, a URL


SEPARATOR = MenuItem("", "", enabled=False, separator=True)


def _label(text: str) -> MenuItem:
    return MenuItem("", short(text, DETAIL_MAX), enabled=False)


@dataclass(frozen=True)
class Presentation:
    icon: IconKind
    tooltip: str
    headline: str  # the menu's first line, also used in logs
    menu: tuple[MenuItem, ...]
    default_action: str | None  # the item id a plain click runs (xorg has no menu, only this)

    def find(self, item: str) -> MenuItem | None:
        """The menu item with this id, submenus included (tests and the adapter's lookups)."""
        stack = list(self.menu)
        while stack:
            entry = stack.pop(0)
            if entry.id == item:
                return entry
            stack.extend(entry.submenu)
        return None


def _profile_action(name: str, st: TunnelStatus | None) -> str:
    """What a plain click does for this profile. Never trust a host key: diagnose explains why."""
    if not is_up(st):
        return item_id(Action.CONNECT, name)
    assert st is not None
    if st.needs_user or st.state == "fatal":
        return item_id(Action.DIAGNOSE, name)
    if usable(st):
        return item_id(Action.OPEN_UI, name)
    return item_id(Action.RECONNECT, name)


# --- every tunnel --------------------------------------------------------------------------------


def worst_profile(up: Mapping[str, TunnelStatus]) -> str | None:
    """The up profile the icon speaks for: the worst look first, then the engine's `worst()` state."""
    if not up:
        return None
    ranks = {name: ICON_RANK[icon_kind(st)] for name, st in up.items()}
    top = min(ranks.values())
    group = sorted(name for name, rank in ranks.items() if rank == top)
    state = worst([up[name].state for name in group])
    return next((name for name in group if up[name].state == state), group[0])


def tray_icon(inp: TrayInput) -> IconKind:
    if not inp.agent.attached:
        return IconKind.CONNECTING
    up = inp.up()
    name = worst_profile(up)
    if name is not None:
        return icon_kind(up[name])
    if inp.problem or not inp.names():
        return IconKind.NEEDS_USER
    return IconKind.STOPPED


def focus(inp: TrayInput) -> str | None:
    """The profile a plain click acts on: the one the icon speaks for, else the one named on the
    command line, else the only one; None when that would be a guess."""
    name = worst_profile(inp.up())
    if name is not None:
        return name
    names = inp.names()
    if inp.preferred in names:
        return inp.preferred
    return names[0] if len(names) == 1 else None


def _default_action(inp: TrayInput) -> str | None:
    """A plain click must be useful even where there is no menu (the xorg backend)."""
    if not inp.agent.attached:
        return None
    name = focus(inp)
    return None if name is None else _profile_action(name, inp.up().get(name))


def _headline(inp: TrayInput) -> str:
    if not inp.agent.attached:
        if inp.agent.phase == "starting":
            return "clawd: starting the agent…"
        return "clawd: reconnecting to the agent…"
    names, up = inp.names(), inp.up()
    if not names:
        return inp.problem or NO_PROFILE
    if len(names) == 1:
        return f"{names[0]}: {describe(up.get(names[0]))}"
    if not up:
        return "clawd: no tunnel up"
    count = f"{len(up)} tunnel{'s' if len(up) != 1 else ''}"
    if all(st.state == "healthy" for st in up.values()):
        return f"clawd: {count} connected"
    name = worst_profile(up)
    assert name is not None
    return f"clawd: {count} up · {name}: {describe(up[name])}"


def _tooltip(inp: TrayInput, headline: str) -> str:
    up = inp.up()
    if not inp.agent.attached or not up:
        text = f"clawd · {headline if not inp.agent.attached or not inp.names() else 'no tunnel up'}"
    else:
        lines = []
        for name, st in up.items():
            if multipath(st):
                lines.append(f"{name}: {path_summary(st)}")
                continue
            line = f"{name}: {describe(st)}"
            if st.active_path:
                line += f" via {st.active_path}"
            if st.state == "healthy" and st.latency_ms is not None:
                line += f" · {latency(st.latency_ms)}"
            lines.append(line)
        text = (
            f"clawd · {lines[0]}"
            if len(lines) == 1
            else f"clawd · {len(lines)} tunnels up\n" + "\n".join(lines)
        )
    return text if len(text) <= TOOLTIP_MAX else text[: TOOLTIP_MAX - 1] + "…"


def _profile_rows(inp: TrayInput, name: str, default: str | None) -> list[MenuItem]:
    """One profile's rows: its state, why, its own commands and its desktop actions."""
    st = inp.up().get(name)
    up = st is not None
    mark = inp.caps.has_default_action

    def item(action: Action, text: str, enabled: bool, arg: str | None = None) -> MenuItem:
        ident = item_id(action, name)
        return MenuItem(ident, text, enabled=enabled, default=mark and enabled and ident == default, arg=arg)

    rows = [_label(f"{name}: {describe(st)}")]
    why = detail(st)
    if why:
        rows.append(_label(why))
    rows.extend(_label(line) for line in hop_lines(st))
    if st is not None and multipath(st):
        rows.extend(_path_rows(inp, name, st))
    rows.append(SEPARATOR)
    rows.append(item(Action.CONNECT, "Connect", not up))
    rows.append(item(Action.DISCONNECT, "Disconnect", up))
    rows.append(item(Action.RECONNECT, "Reconnect now", up))
    if st is not None and st.needs_user == "host-key-unknown" and st.fingerprint:
        fp = st.fingerprint if len(st.fingerprint) <= 30 else st.fingerprint[:29] + "…"
        rows.append(item(Action.TRUST_HOST_KEY, f"Trust host key {fp} and connect", True, st.fingerprint))
    rows.append(SEPARATOR)
    local = st.local_url if st is not None else None
    rows.append(item(Action.OPEN_UI, "Open Control UI", usable(st), control_ui_url(local)))
    rows.append(
        item(
            Action.COPY_URL,
            f"Copy gateway URL ({local})" if local else "Copy gateway URL",
            bool(local),
            local,
        )
    )
    diagnosing = f"diagnose:{name}" in inp.busy
    rows.append(
        item(Action.DIAGNOSE, "Running diagnosis…" if diagnosing else "Run diagnosis", not diagnosing)
    )
    return rows


def _path_rows(inp: TrayInput, name: str, st: TunnelStatus) -> list[MenuItem]:
    """A multi-path profile's ways in (the active one checked) and the choice of which to use:
    automatic (the profile's preference), or one path pinned while it is healthy."""
    radio = inp.caps.has_radio
    pinned = pinned_path(st)
    prefer = inp.prefer.get(name)
    automatic = f"Automatic (prefer {prefer})" if prefer else "Automatic"
    if st.active_path is None:
        title = "Paths: none healthy, new connections are held"
    elif pinned is not None:
        title = f"Paths: pinned to {pinned}"
    else:
        title = f"Paths: {automatic.lower()}"
    rows = [SEPARATOR, _label(title)]
    for p in st.paths:
        rows.append(MenuItem("", path_line(p), enabled=False, checked=p.active, radio=radio))
    rows.append(SEPARATOR)
    rows.append(MenuItem(item_id(Action.UNPIN, name), automatic, checked=pinned is None, radio=radio))
    for p in st.paths:
        action = PIN_ACTIONS.get(p.path)
        if action is not None:
            text = f"Use {p.path} while healthy"
            rows.append(
                MenuItem(item_id(action, name), text, checked=pinned == p.path, radio=radio, arg=p.path)
            )
    return rows


def present(inp: TrayInput) -> Presentation:
    """The whole tray for one moment: icon, tooltip, menu model, default click."""
    headline = _headline(inp)
    default = _default_action(inp)
    names = inp.names()
    items: list[MenuItem] = []
    if not inp.agent.attached:
        items.append(_label(headline))
        if inp.agent.error:
            items.append(_label(inp.agent.error))
    elif len(names) == 1:
        items.extend(_profile_rows(inp, names[0], default))
        if inp.problem:
            items.insert(1, _label(inp.problem))
    else:
        items.append(_label(headline))
        if inp.problem and names:
            items.append(_label(inp.problem))
        if names:
            items.append(SEPARATOR)
        for name in names:
            st = inp.up().get(name)
            rows = tuple(_profile_rows(inp, name, default))
            items.append(MenuItem(item_id(Action.PROFILE, name), f"{name}: {describe(st)}", submenu=rows))
    up = inp.up()
    items.append(SEPARATOR)
    items.append(MenuItem(Action.OPEN_LOGS.value, "Open logs"))
    items.append(SEPARATOR)
    if inp.autostart is None:
        items.append(
            MenuItem(Action.AUTOSTART.value, "Start at login (unavailable)", enabled=False, checked=False)
        )
    else:
        busy = "autostart" in inp.busy
        items.append(
            MenuItem(Action.AUTOSTART.value, "Start at login", enabled=not busy, checked=inp.autostart)
        )
    items.append(SEPARATOR)
    quitting = "quit" in inp.busy
    items.append(
        MenuItem(Action.QUIT.value, "Quit (tunnels stay up)" if up else "Quit", enabled=not quitting)
    )
    items.append(
        MenuItem(
            Action.DISCONNECT_ALL_QUIT.value, "Disconnect all and quit", enabled=bool(up) and not quitting
        )
    )
    return Presentation(tray_icon(inp), _tooltip(inp, headline), headline, tuple(items), default)
