"""The tray's presentation as pure functions: every tunnel state the agent publishes, for one
profile and for many, in; icon, tooltip, menu, default click and notices out. Plus the icons
themselves, the Linux backend advice, the start-at-login bridge, the pystray menu glue, and the
rule that the tray imports no SSH stack (it is a client of the agent)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from clawd_client.engine import UP_STATES, Hop, PathState, State, TunnelStatus
from clawd_client.tray.icons import DOT, ICON_SIZE, IconKind, contact_sheet, render, render_master
from clawd_client.tray.notify import NotifyPolicy, NotifyState, notify_step
from clawd_client.tray.presenter import (
    NO_PROFILE,
    Action,
    AgentConn,
    Caps,
    TrayInput,
    agent_request,
    focus,
    item_id,
    parse_item_id,
    present,
    worst_profile,
)
from clawd_client.tray.tunnel import control_ui_url, icon_kind

URL = "ws://127.0.0.1:18789"
FP = "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def _pixels(image: Any) -> Any:
    """All pixels in order, without Pillow's deprecated getdata() where the new name exists."""
    flat = getattr(image, "get_flattened_data", None)
    return flat() if flat is not None else image.getdata()


def tunnel(state: str, name: str = "vps", **kw: Any) -> TunnelStatus:
    """A TunnelStatus as the agent publishes it (active_path set while the path carries traffic)."""
    base: dict[str, Any] = {
        "profile": name,
        "state": state,
        "local_url": URL,
        "since": 1_700_000_000.0,
        "target": "me@203.0.113.7",
        "pid": 4242,
        "active_path": "ssh" if state in UP_STATES else None,
    }
    base.update(kw)
    return TunnelStatus(**base)


def view(*tunnels: TunnelStatus, profiles: tuple[str, ...] | None = None, **kw: Any) -> Any:
    """present() for these tunnels (up in the agent) and these profiles (default: the tunnels')."""
    by_name = {t.profile: t for t in tunnels}
    kw.setdefault("autostart", False)
    names = profiles if profiles is not None else (tuple(sorted(by_name)) or ("vps",))
    return present(TrayInput(profiles=names, tunnels=by_name, **kw))


def enabled(v: Any) -> set[str]:
    out: set[str] = set()
    stack = list(v.menu)
    while stack:
        item = stack.pop()
        stack.extend(item.submenu)
        if item.id and item.enabled and not item.separator and not item.submenu:
            out.add(item.id)
    return out


def ids(*actions: str, name: str = "vps") -> set[str]:
    return {f"{a}:{name}" for a in actions}


APP = {"open-logs", "autostart", "quit"}
UP = {"disconnect", "reconnect", "copy-url"}
LOGIN_HOPS = (Hop("daemon", True, "running"), Hop("login", False, "logged out", fix="tailscale up"))

# name -> (tunnel kwargs incl. state, icon, headline fragment, enabled per-profile actions, default)
CASES: dict[str, tuple[dict[str, Any], IconKind, str, set[str], str]] = {
    "idle": ({"state": "idle"}, IconKind.CONNECTING, "starting", UP, "reconnect"),
    "connecting": ({"state": "connecting"}, IconKind.CONNECTING, "connecting…", UP, "reconnect"),
    "reconnecting": (
        {"state": "connecting", "last_error": "Server not responding to keepalive"},
        IconKind.CONNECTING,
        "reconnecting…",
        UP,
        "reconnect",
    ),
    "forwarding": ({"state": "forwarding"}, IconKind.CONNECTING, "checking the gateway", UP, "reconnect"),
    "healthy": (
        {"state": "healthy", "latency_ms": 41.3},
        IconKind.HEALTHY,
        "connected",
        UP | {"open-ui"},
        "open-ui",
    ),
    "degraded-unreachable": (
        {"state": "degraded", "degraded": "gateway-unreachable", "last_error": "connection refused"},
        IconKind.DEGRADED,
        "gateway not answering",
        UP,
        "reconnect",
    ),
    "degraded-unhealthy": (
        {"state": "degraded", "degraded": "gateway-unhealthy", "last_error": "health not ok"},
        IconKind.DEGRADED,
        "gateway unhealthy",
        UP | {"open-ui"},
        "open-ui",
    ),
    "degraded-auth": (
        {
            "state": "degraded",
            "degraded": "gateway-auth-rejected",
            "last_error": "token mismatch",
            "needs_user": "gateway-auth",
            "fix": "store the gateway's current secret: clawd secret set vps",
        },
        IconKind.NEEDS_USER,
        "refused the secret",
        UP | {"open-ui"},
        "diagnose",
    ),
    "backoff": (
        {"state": "backoff", "attempts": 3, "last_error": "Network is unreachable", "next_attempt_in_s": 3.2},
        IconKind.CONNECTING,
        "retrying (attempt 4)",
        UP,
        "reconnect",
    ),
    "backoff-tailscale-login": (
        {"state": "backoff", "attempts": 1, "last_error": "logged out", "hops": LOGIN_HOPS},
        IconKind.NEEDS_USER,
        "Tailscale needs you",
        UP,
        "reconnect",
    ),
    "fatal-hostkey-unknown": (
        {
            "state": "fatal",
            "last_error": "the SSH host key of [h]:22 is not known yet",
            "needs_user": "host-key-unknown",
            "fingerprint": FP,
        },
        IconKind.NEEDS_USER,
        "unknown SSH host key",
        UP | {"trust-host-key"},
        "diagnose",
    ),
    "fatal-hostkey-changed": (
        {
            "state": "fatal",
            "last_error": "HOST KEY CHANGED",
            "needs_user": "host-key-changed",
            "fingerprint": FP,
        },
        IconKind.NEEDS_USER,
        "host key CHANGED",
        UP,
        "diagnose",
    ),
    "fatal-ssh-auth": (
        {"state": "fatal", "last_error": "SSH authentication to me@h was refused", "needs_user": "ssh-auth"},
        IconKind.NEEDS_USER,
        "SSH login refused",
        UP,
        "diagnose",
    ),
    "fatal-setup": (
        {"state": "fatal", "last_error": "file not found: /k", "needs_user": "setup"},
        IconKind.NEEDS_USER,
        "setup problem",
        UP,
        "diagnose",
    ),
    "stopped": ({"state": "stopped"}, IconKind.STOPPED, "disconnected", {"connect"}, "connect"),
}


def test_every_engine_state_has_a_case():
    assert {s.value for s in State} <= {kw["state"] for kw, *_ in CASES.values()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_profile_every_state(name):
    """One profile: a flat menu whose first row is the headline, and exactly one of Connect and
    Disconnect; the tooltip names the state and the path carrying it."""
    kw, icon, headline, actions, default = CASES[name]
    st = tunnel(**kw)
    v = view(st)
    up = st.state != "stopped"
    assert v.icon is icon and icon_kind(st) is icon
    assert headline in v.headline and v.headline.startswith("vps: ")
    assert v.menu[0].text == v.headline and not v.menu[0].enabled
    expected = ids(*actions, "diagnose") | APP | ({"disconnect-all-quit"} if up else set())
    assert enabled(v) == expected, name
    assert v.default_action == f"{default}:vps"
    assert not ({"connect:vps", "disconnect:vps"} <= enabled(v))
    assert v.find("quit").text == ("Quit (tunnels stay up)" if up else "Quit")
    assert v.menu[-1].id == "disconnect-all-quit" and v.menu[-2].id == "quit"
    assert v.find("autostart").checked is False
    assert len(v.tooltip) <= 127
    if up:
        assert v.tooltip.startswith(f"clawd · vps: {v.headline[5:]}")
        assert ("via ssh" in v.tooltip) == (st.active_path == "ssh")
        assert ("41.3 ms" in v.tooltip) == (name == "healthy")
        if st.last_error and st.state != "healthy" and not st.fingerprint:
            assert v.menu[1].text.startswith(st.last_error[:20]) and not v.menu[1].enabled
    else:
        assert v.tooltip == "clawd · no tunnel up"


def test_a_profile_that_is_not_up_offers_only_connect():
    v = view(profiles=("vps",))
    assert v.icon is IconKind.STOPPED and v.headline == "vps: disconnected"
    assert enabled(v) == {"connect:vps", "diagnose:vps"} | APP
    assert v.find("copy-url:vps").text == "Copy gateway URL" and not v.find("open-ui:vps").enabled


def test_trust_item_carries_the_full_fingerprint_for_an_unknown_key_only():
    kw = CASES["fatal-hostkey-unknown"][0]
    v = view(tunnel(**kw))
    item = v.find("trust-host-key:vps")
    assert item is not None and item.enabled and item.arg == FP
    assert "SHA256:abcdefghijklmnopqrstu" in item.text and len(item.text) < 60
    assert v.menu[1].text == f"server key {FP}"
    assert view(tunnel(**CASES["fatal-hostkey-changed"][0])).find("trust-host-key:vps") is None
    assert view(tunnel("healthy", fingerprint=FP)).find("trust-host-key:vps") is None
    assert view(tunnel("fatal", needs_user="host-key-unknown")).find("trust-host-key:vps") is None


def test_many_profiles_each_with_its_state_and_its_own_commands():
    """Several profiles: one submenu each, titled with its state; per-profile item ids; the icon
    shows the worst of the profiles that are up, and one that is not up does not count."""
    v = view(
        tunnel("healthy", "vps", latency_ms=12.0),
        tunnel("backoff", "home", attempts=2, last_error="Connection refused"),
        profiles=("home", "vps", "work"),
    )
    assert v.icon is IconKind.CONNECTING
    assert v.headline == "clawd: 2 tunnels up · home: link down, retrying (attempt 3)"
    subs = [i for i in v.menu if i.submenu]
    assert [(i.id, i.text) for i in subs] == [
        ("profile:home", "home: link down, retrying (attempt 3)"),
        ("profile:vps", "vps: connected"),
        ("profile:work", "work: disconnected"),
    ]
    assert enabled(v) == (
        ids("disconnect", "reconnect", "copy-url", "diagnose", name="home")
        | ids("disconnect", "reconnect", "copy-url", "diagnose", "open-ui", name="vps")
        | ids("connect", "diagnose", name="work")
        | APP
        | {"disconnect-all-quit"}
    )
    assert v.find("copy-url:vps").arg == URL and v.find("open-ui:vps").arg == "http://127.0.0.1:18789/"
    assert v.tooltip.splitlines() == [
        "clawd · 2 tunnels up",
        "home: link down, retrying (attempt 3)",  # no path carries it now
        "vps: connected via ssh · 12 ms",
    ]
    assert v.default_action == "reconnect:home"  # a plain click acts on the profile the icon shows


# --- multi-path profiles --------------------------------------------------------------------------

SSH = PathState("ssh", "healthy", "me@203.0.113.7", latency_ms=12.0, active=True)
TAILNET = PathState("tailscale", "backoff", "gw.tail1234.ts.net", last_error="tailscale daemon not running")
DIRECT = PathState("direct", "healthy", "ws://203.0.113.7:18789", latency_ms=30.5)


def multi(state: str = "healthy", active: str | None = "ssh", **kw: Any) -> TunnelStatus:
    """A multi-path profile as the agent publishes it: every way in under `paths`."""
    paths = tuple(
        PathState(p.path, p.state, p.target, p.latency_ms, p.last_error, active=p.path == active)
        for p in kw.pop("paths", (SSH, TAILNET, DIRECT))
    )
    lat = next((p.latency_ms for p in paths if p.active), None)
    return tunnel(state, active_path=active, paths=paths, latency_ms=lat, method="ssh", **kw)


def path_section(v: Any, name: str = "vps") -> list[tuple[str, str, bool | None, bool, bool]]:
    """The Paths section of a profile's rows: (id, text, checked, radio, enabled) per row."""
    rows = list(v.find(f"profile:{name}").submenu) if v.find(f"profile:{name}") else list(v.menu)
    start = next(i for i, r in enumerate(rows) if r.text.startswith("Paths"))
    end = next(i for i, r in enumerate(rows) if r.id == f"connect:{name}")
    return [(r.id, r.text, r.checked, r.radio, r.enabled) for r in rows[start:end] if not r.separator]


def test_a_multi_path_profile_shows_its_active_path_and_the_standbys():
    """Tooltip: the active path with its latency, then the standbys with their states. Menu:
    every path (the active one checked), then Automatic (checked while nothing is pinned) and one
    pin item per path, all radio items of the profile's own."""
    v = view(multi(), prefer={"vps": "order"})
    assert v.icon is IconKind.HEALTHY and v.headline == "vps: connected"
    assert v.tooltip == "clawd · vps: connected via ssh (12 ms) · standby: tailscale backoff, direct healthy"
    assert path_section(v) == [
        ("", "Paths: automatic (prefer order)", None, False, False),
        ("", "ssh: healthy · 12 ms", True, True, False),
        ("", "tailscale: backoff — tailscale daemon not running", False, True, False),
        ("", "direct: healthy · 30.5 ms", False, True, False),
        ("unpin:vps", "Automatic (prefer order)", True, True, True),
        ("pin-ssh:vps", "Use ssh while healthy", False, True, True),
        ("pin-tailscale:vps", "Use tailscale while healthy", False, True, True),
        ("pin-direct:vps", "Use direct while healthy", False, True, True),
    ]
    assert v.find("pin-direct:vps").arg == "direct"
    assert ids("unpin", "pin-ssh", "pin-tailscale", "pin-direct") <= enabled(v)
    # fastest, failed over to direct: the tooltip and the checked path follow the agent
    v = view(multi(active="direct"), prefer={"vps": "fastest"})
    assert (
        v.tooltip == "clawd · vps: connected via direct (30.5 ms) · standby: ssh healthy, tailscale backoff"
    )
    rows = path_section(v)
    assert rows[0][1] == "Paths: automatic (prefer fastest)"
    assert [r[1].split(":")[0] for r in rows if r[2]] == ["direct", "Automatic (prefer fastest)"]
    # without a radio-capable backend the same items are plain check items
    plain = view(multi(), caps=Caps("win32", has_radio=False))
    assert not any(r[3] for r in path_section(plain)) and plain.find("unpin:vps").text == "Automatic"


def test_a_pinned_path_is_checked_and_said_once():
    """The agent's note "pinned to X" checks X's pin item (not Automatic) and titles the section;
    the note is not repeated as a detail line."""
    v = view(multi(active="direct", note="pinned to direct"), prefer={"vps": "order"})
    rows = path_section(v)
    assert rows[0][1] == "Paths: pinned to direct"
    assert [r[0] for r in rows if r[2]] == ["", "pin-direct:vps"]  # the direct path row, its pin
    assert v.find("unpin:vps").checked is False and v.find("pin-ssh:vps").checked is False
    assert [r.text for r in v.menu].count("pinned to direct") == 0
    assert "via direct (pinned, 30.5 ms)" in v.tooltip
    # pinned to a path that is down: the agent uses another meanwhile; the pin stays checked
    v = view(multi(active="ssh", note="pinned to tailscale"))
    assert v.find("pin-tailscale:vps").checked and "via ssh (12 ms)" in v.tooltip
    # another note (a port moved) is still shown, and means nothing is pinned
    v = view(multi(note="port 18789 was taken: listening on 18790"))
    assert v.menu[1].text.startswith("port 18789") and v.find("unpin:vps").checked


def test_while_no_path_is_healthy_connections_are_held():
    down = (
        PathState("ssh", "backoff", last_error="Connection refused"),
        PathState("direct", "connecting"),
    )
    v = view(multi("backoff", active=None, paths=down, attempts=1, held=2))
    assert v.tooltip == "clawd · vps: no path healthy, 2 connections held · ssh backoff, direct connecting"
    rows = path_section(v)
    assert rows[0][1] == "Paths: none healthy, new connections are held"
    assert not any(r[2] for r in rows[1:3])  # no path is active
    assert rows[1][1] == "ssh: backoff — Connection refused" and rows[2][1] == "direct: connecting"
    assert [r[0] for r in rows[3:]] == ["unpin:vps", "pin-ssh:vps", "pin-direct:vps"]  # its own paths only
    quiet = view(multi("connecting", active=None, paths=down))
    assert "no path healthy, connections held" in quiet.tooltip


def test_multi_path_in_a_submenu_and_single_path_profiles_show_none_of_it():
    v = view(multi(), tunnel("healthy", "home", latency_ms=8.0), profiles=("home", "vps", "work"))
    assert v.tooltip.splitlines() == [
        "clawd · 2 tunnels up",
        "home: connected via ssh · 8 ms",
        "vps: connected via ssh (12 ms) · standby: tailscale backoff, direct healthy",
    ]
    assert path_section(v)[1][1] == "ssh: healthy · 12 ms"
    assert v.find("pin-ssh:vps") is not None
    for name in ("home", "work"):  # single-path up, and not up at all
        sub = v.find(f"profile:{name}").submenu
        assert not any(r.text.startswith("Paths") or r.radio for r in sub)
        assert v.find(f"pin-ssh:{name}") is None and v.find(f"unpin:{name}") is None
    one = tunnel("healthy", paths=(SSH,))  # one path listed: nothing to choose
    assert view(one).find("unpin:vps") is None


@pytest.mark.parametrize(
    ("item", "arg", "expected"),
    [
        ("connect:vps", None, ("up", {"profiles": ["vps"], "wait": False})),
        ("disconnect:vps", None, ("down", {"profiles": ["vps"]})),
        ("reconnect:vps", None, ("reconnect", {"profiles": ["vps"]})),
        ("trust-host-key:vps", FP, ("trust", {"profiles": ["vps"], "fingerprint": FP})),
        ("trust-host-key:vps", None, None),
        ("pin-ssh:vps", "ssh", ("pin", {"profiles": ["vps"], "path": "ssh"})),
        ("pin-tailscale:vps", "tailscale", ("pin", {"profiles": ["vps"], "path": "tailscale"})),
        ("pin-direct:vps", None, ("pin", {"profiles": ["vps"], "path": "direct"})),
        ("unpin:vps", None, ("pin", {"profiles": ["vps"], "path": None})),
        ("open-ui:vps", "http://127.0.0.1:1/", None),
        ("diagnose:vps", None, None),
        ("quit", None, None),
    ],
)
def test_each_click_sends_the_agent_op_it_means(item, arg, expected):
    """What a click asks of the agent (the adapter sends exactly this through the agent link)."""
    action, name = parse_item_id(item)
    assert agent_request(action, name, arg) == expected


def test_every_pin_item_of_the_menu_sends_pin_with_its_own_path():
    from clawd_client.agent.protocol import encode_request, parse_request

    v = view(multi(), prefer={"vps": "order"})
    sent = []
    for path in ("ssh", "tailscale", "direct", None):
        entry = v.find(f"pin-{path}:vps" if path else "unpin:vps")
        assert entry is not None and entry.enabled
        op, params = agent_request(*parse_item_id(entry.id), entry.arg)
        req = parse_request(encode_request(op, 1, **params))  # the agent takes it as sent
        sent.append((req.op, req.profiles, req.path))
    assert sent == [("pin", ("vps",), p) for p in ("ssh", "tailscale", "direct", None)]


def test_radio_items_reach_pystray_as_radio_items():
    from clawd_client.tray.widgets import build_menu

    made: list[dict[str, Any]] = []

    class FakeItem:
        def __init__(self, text: str, action: Any, **kw: Any) -> None:
            made.append({"text": text, "action": action, **kw})

    fake = types.SimpleNamespace(MenuItem=FakeItem, Menu=lambda *items: list(items))
    fake.Menu.SEPARATOR = object()  # type: ignore[attr-defined]
    v = view(multi(note="pinned to ssh"))
    build_menu(fake, v.menu, v.default_action, lambda i, a: lambda icon, item: None)
    by_text = {m["text"]: m for m in made}
    pin = by_text["Use ssh while healthy"]
    assert pin["radio"] is True and pin["checked"](None) is True and pin["action"] is not None
    assert by_text["Automatic"]["checked"](None) is False
    row = by_text["ssh: healthy · 12 ms"]
    assert row["radio"] is True and row["checked"](None) is True and row["action"] is None
    assert by_text["Connect"]["radio"] is False


@pytest.mark.parametrize(
    ("states", "icon", "shown"),
    [
        ((("a", "healthy", {}), ("b", "fatal", {"needs_user": "setup"})), IconKind.NEEDS_USER, "b"),
        (
            (
                ("a", "degraded", {"degraded": "gateway-unreachable"}),
                ("b", "degraded", {"degraded": "gateway-auth-rejected", "needs_user": "gateway-auth"}),
            ),
            IconKind.NEEDS_USER,
            "b",
        ),
        ((("a", "forwarding", {}), ("b", "backoff", {}), ("c", "healthy", {})), IconKind.CONNECTING, "b"),
        (
            (("a", "healthy", {}), ("b", "degraded", {"degraded": "gateway-unhealthy"})),
            IconKind.DEGRADED,
            "b",
        ),
        ((("a", "healthy", {}), ("b", "healthy", {})), IconKind.HEALTHY, "a"),
    ],
)
def test_the_icon_shows_the_worst_profile_that_is_up(states, icon, shown):
    tunnels = [tunnel(state, name, **kw) for name, state, kw in states]
    v = view(*tunnels, profiles=("a", "b", "c", "down"))
    assert v.icon is icon
    assert worst_profile({t.profile: t for t in tunnels}) == shown


def test_all_healthy_and_nothing_up_headlines():
    v = view(tunnel("healthy", "a"), tunnel("healthy", "b"))
    assert v.headline == "clawd: 2 tunnels connected" and v.icon is IconKind.HEALTHY
    idle = view(profiles=("a", "b"))
    assert idle.icon is IconKind.STOPPED and idle.headline == "clawd: no tunnel up"
    assert idle.tooltip == "clawd · no tunnel up" and not idle.find("disconnect-all-quit").enabled


def test_a_plain_click_targets_the_shown_profile_else_the_named_else_the_only_one():
    assert focus(TrayInput(profiles=("a", "b"))) is None
    assert view(profiles=("a", "b")).default_action is None
    assert view(profiles=("a", "b"), preferred="b").default_action == "connect:b"
    assert view(profiles=("a",)).default_action == "connect:a"
    assert view(tunnel("healthy", "b"), profiles=("a", "b"), preferred="a").default_action == "open-ui:b"


def test_default_item_is_marked_only_where_a_click_runs_it():
    gtk = view(tunnel("healthy"), caps=Caps("gtk"))
    assert [i.id for i in gtk.menu if i.default] == ["open-ui:vps"]
    appind = view(tunnel("healthy"), caps=Caps("appindicator", has_default_action=False))
    assert not any(i.default for i in appind.menu)
    assert appind.default_action == "open-ui:vps"  # still the answer for a menu-less click
    many = view(tunnel("healthy", "a"), profiles=("a", "b"), caps=Caps("xorg", has_menu=False))
    assert many.find("open-ui:a").default and not any(i.default for i in many.menu)


@pytest.mark.parametrize("phase", ["starting", "reconnecting"])
def test_while_the_agent_is_out_of_reach_nothing_is_guessed(phase):
    agent = AgentConn(phase, error="the clawd agent exited at start (code 1)")
    v = view(tunnel("healthy"), agent=agent)
    assert v.icon is IconKind.CONNECTING
    assert v.headline == (
        "clawd: starting the agent…" if phase == "starting" else "clawd: reconnecting to the agent…"
    )
    assert v.menu[1].text.startswith("the clawd agent exited at start") and not v.menu[1].enabled
    assert enabled(v) == APP and v.default_action is None
    assert v.find("quit").text == "Quit" and not v.find("disconnect-all-quit").enabled
    assert v.tooltip == f"clawd · {v.headline}"


def test_no_profile_yet_and_unreadable_profiles():
    none = view(profiles=())
    assert none.icon is IconKind.NEEDS_USER and none.headline == NO_PROFILE
    assert enabled(none) == APP
    broken = view(
        tunnel("healthy", "a"), tunnel("healthy", "b"), profiles=(), problem="cannot read profiles: x"
    )
    assert broken.icon is IconKind.HEALTHY  # what is up is still shown, and can still be brought down
    assert "cannot read profiles: x" in [i.text for i in broken.menu]
    assert {"disconnect:a", "disconnect:b"} <= enabled(broken)


def test_autostart_item_states():
    assert view(tunnel("healthy"), autostart=True).find("autostart").checked is True
    missing = view(tunnel("healthy"), autostart=None).find("autostart")
    assert not missing.enabled and "unavailable" in missing.text
    busy = view(tunnel("healthy"), autostart=True, busy=frozenset({"autostart"})).find("autostart")
    assert not busy.enabled


def test_diagnosis_in_flight_disables_that_profiles_item_only():
    v = view(tunnel("healthy", "a"), tunnel("healthy", "b"), busy=frozenset({"diagnose:a"}))
    assert not v.find("diagnose:a").enabled and v.find("diagnose:a").text.startswith("Running diagnosis")
    assert v.find("diagnose:b").enabled


def test_quitting_disables_both_quit_items():
    v = view(tunnel("healthy"), busy=frozenset({"quit"}))
    assert not v.find("quit").enabled and not v.find("disconnect-all-quit").enabled


def test_copy_item_names_the_url_and_control_ui_url_never_carries_a_secret():
    assert URL in view(tunnel("healthy")).find("copy-url:vps").text
    assert control_ui_url(URL) == "http://127.0.0.1:18789/"
    assert control_ui_url("wss://gw.example:443") == "https://gw.example:443/"
    assert control_ui_url(None) is None and control_ui_url("nonsense") is None


def test_long_errors_are_shortened_and_the_tooltip_is_capped():
    long = [
        tunnel("backoff", f"profile-{i:02d}" + "p" * 40, last_error="x" * 500, attempts=1) for i in range(8)
    ]
    v = view(*long)
    assert len(v.tooltip) <= 127 and v.tooltip.endswith("…")
    stack = list(v.menu)
    while stack:
        item = stack.pop()
        stack.extend(item.submenu)
        assert len(item.text) <= 72 or item.submenu or item.id.startswith("trust"), item.text


def test_item_ids_are_stable_and_round_trip():
    assert {a.value for a in Action} == {
        "connect",
        "disconnect",
        "reconnect",
        "trust-host-key",
        "open-ui",
        "copy-url",
        "diagnose",
        "profile",
        "open-logs",
        "autostart",
        "quit",
        "disconnect-all-quit",
        "pin-ssh",
        "pin-tailscale",
        "pin-direct",
        "unpin",
    }
    assert parse_item_id(item_id(Action.PIN_DIRECT, "a:b")) == (Action.PIN_DIRECT, "a:b")
    assert parse_item_id(item_id(Action.CONNECT, "a:b")) == (Action.CONNECT, "a:b")
    assert parse_item_id("quit") == (Action.QUIT, None)
    with pytest.raises(ValueError):
        parse_item_id("format-disk:vps")


# --- notifications --------------------------------------------------------------------------------


class Feed:
    """Drive notify_step like the adapter does for one profile: on each change, and when it asks."""

    def __init__(self, policy: NotifyPolicy | None = None) -> None:
        self.state = NotifyState()
        self.policy = policy or NotifyPolicy(grace_s=20, lost_every_s=600, attention_every_s=600)
        self.shown: list[tuple[float, str, str]] = []
        self.again: float | None = None

    def at(self, now: float, st: TunnelStatus | None) -> list[str]:
        self.state, notices, self.again = notify_step(
            self.state, icon_kind(st), st, now, profile="vps", policy=self.policy
        )
        for n in notices:
            self.shown.append((now, n.kind, n.title + " / " + n.message))
        return [n.kind for n in notices]


HOSTKEY = tunnel("fatal", last_error="hk", needs_user="host-key-unknown", fingerprint=FP)


def test_first_connection_that_just_works_says_nothing():
    f = Feed()
    assert f.at(0, tunnel("connecting")) == []
    assert f.at(0.2, tunnel("forwarding")) == []
    assert f.at(0.3, tunnel("healthy")) == []
    assert f.shown == []


def test_a_short_drop_is_healed_silently():
    f = Feed()
    f.at(0, tunnel("healthy"))
    assert f.at(100, tunnel("connecting", last_error="keepalive")) == []
    assert f.again == 120  # the adapter re-asks at the end of the grace period
    assert f.at(104, tunnel("healthy")) == []
    assert f.again is None and f.shown == []


def test_a_long_drop_says_lost_once_then_restored_with_the_outage_length():
    f = Feed()
    f.at(0, tunnel("healthy"))
    f.at(100, tunnel("connecting", last_error="keepalive"))
    f.at(101, tunnel("backoff", last_error="Network is unreachable", attempts=1))
    assert f.at(120, tunnel("backoff", last_error="Network is unreachable", attempts=1)) == ["lost"]
    assert "connection lost" in f.shown[-1][2] and "Network is unreachable" in f.shown[-1][2]
    assert f.at(150, tunnel("backoff", attempts=5)) == []  # no repeats while still down
    assert f.at(190, tunnel("healthy")) == ["restored"]
    assert "after 1 min 30 s" in f.shown[-1][2]


def test_a_flapping_link_is_rate_limited_and_the_skipped_drops_are_counted():
    f = Feed()
    f.at(0, tunnel("healthy"))
    t = 10.0
    kinds: list[str] = []
    for _ in range(12):  # a drop every 50 s, each lasting 25 s (longer than the grace period)
        kinds += f.at(t, tunnel("connecting", last_error="flap"))
        kinds += f.at(t + 25, tunnel("backoff", last_error="flap", attempts=1))
        kinds += f.at(t + 30, tunnel("healthy"))
        t += 50
    assert kinds.count("lost") == 1 and kinds.count("restored") == 1
    f.at(t + 700, tunnel("connecting", last_error="flap"))
    assert f.at(t + 725, tunnel("backoff", last_error="flap", attempts=1)) == ["lost"]
    assert "(11 more drops since the last notice)" in f.shown[-1][2]


def test_cannot_connect_at_start_is_announced_after_the_grace_period():
    f = Feed()
    f.at(0, tunnel("connecting"))
    assert f.at(20, tunnel("backoff", last_error="Connection refused", attempts=2)) == ["lost"]
    assert "cannot connect to vps yet" in f.shown[-1][2]
    assert f.at(60, tunnel("healthy")) == ["restored"]
    assert "established after 1 min" in f.shown[-1][2]


def test_needs_attention_is_immediate_with_the_fix_and_not_repeated_for_the_same_cause():
    f = Feed()
    f.at(0, tunnel("healthy"))
    auth = tunnel(**CASES["degraded-auth"][0])
    assert f.at(10, auth) == ["attention"]
    assert "refused vps's secret: token mismatch" in f.shown[-1][2]
    assert "Fix: store the gateway's current secret: clawd secret set vps" in f.shown[-1][2]
    assert f.at(15, auth) == []  # every re-probe republishes: still one notice
    assert f.at(20, HOSTKEY) == ["attention"]  # a new cause
    assert FP in f.shown[-1][2] and "Trust host key" in f.shown[-1][2]
    assert f.at(400, auth) == ["attention"]  # the cause changed back: say it again
    assert f.at(500, auth) == []
    assert f.at(1100, auth) == ["attention"]  # same cause, but after the rate-limit window


def test_user_actions_are_silent_and_cancel_a_pending_restored():
    f = Feed()
    f.at(0, tunnel("healthy"))
    f.at(10, tunnel("backoff", last_error="down", attempts=1))
    assert f.at(40, tunnel("backoff", last_error="down", attempts=2)) == ["lost"]
    assert f.at(50, None) == []  # the user pressed Disconnect: the profile is no longer up
    assert f.at(60, tunnel("connecting")) == []
    assert f.at(61, tunnel("healthy")) == []  # no "restored" for a lost the user ended
    assert f.again is None


def test_a_drop_that_ends_in_needs_you_keeps_its_start_for_the_restored_notice():
    f = Feed()
    f.at(0, tunnel("healthy"))
    f.at(10, tunnel("backoff", last_error="down", attempts=1))
    assert f.at(30, tunnel("backoff", last_error="down", attempts=2)) == ["lost"]
    assert f.at(35, HOSTKEY) == ["attention"]
    assert f.at(70, tunnel("healthy")) == ["restored"]
    assert "after 1 min" in f.shown[-1][2]


# --- the pystray glue and what the tray imports ----------------------------------------------------


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYSTRAY_BACKEND="dummy")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


def test_a_plain_click_reaches_a_default_that_lives_in_a_submenu():
    """pystray runs only a top-level default item on a click (the xorg backend has nothing else),
    so with several profiles a hidden top-level item carries the default."""
    code = """
import pystray
from clawd_client.engine import TunnelStatus
from clawd_client.tray.presenter import Caps, TrayInput, present
from clawd_client.tray.widgets import build_menu
st = TunnelStatus(profile="a", state="healthy", local_url="ws://127.0.0.1:1", since=0.0)
view = present(TrayInput(profiles=("a", "b"), tunnels={"a": st}, caps=Caps("xorg", has_menu=False)))
clicked = []
menu = build_menu(pystray, view.menu, view.default_action, lambda i, a: lambda icon, item: clicked.append(i))
menu(None)
print(clicked, [str(i.text) for i in menu][:1], len(list(menu)) == len(menu.items) - 1)
"""
    out = _run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["['open-ui:a']", "['clawd:", "1", "tunnel", "connected']", "True"]


def test_the_tray_imports_no_ssh_stack_and_only_the_engines_face():
    """The tray is a client of the agent: asyncssh, the runner and the host-key store stay out."""
    code = """
import sys
import clawd_client.cli_tray, clawd_client.tray.app, clawd_client.tray.agentlink
engine = sorted(m for m in sys.modules if m.startswith("clawd_client.engine."))
print("asyncssh" in sys.modules, engine)
"""
    out = _run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False ['clawd_client.engine.state']"
    tray = Path(__file__).resolve().parent.parent / "client" / "clawd_client" / "tray"
    inner = re.compile(
        r"^\s*(from \.\.engine\.|from clawd_client\.engine\.|import asyncssh|from asyncssh)", re.M
    )
    for path in [*tray.glob("*.py"), tray.parent / "cli_tray.py"]:
        assert not inner.search(path.read_text()), path  # lazy imports too, not only those at import time


# --- icons ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 22, 24, 32, 48, 64, 128])
def test_icons_render_at_every_tray_size_with_a_distinct_state_colour(size):
    for kind in IconKind:
        img = render(kind, size)
        assert img.size == (size, size) and img.mode == "RGBA"
        corner = img.getpixel((0, 0))
        assert corner[3] == 0, "icons need a transparent background for any panel colour"
        # the status dot's colour is present, and no other state's colour is
        colours = {px[:3] for px in _pixels(img) if px[3] == 255}
        own = DOT[kind][:3]

        def near(c: tuple[int, ...], ref: tuple[int, ...]) -> bool:
            return sum(abs(a - b) for a, b in zip(c, ref, strict=True)) < 40

        assert any(near(c, own) for c in colours), (kind, size)
        for other in IconKind:
            if other is not kind and other is not IconKind.STOPPED and kind is not IconKind.STOPPED:
                assert not any(near(c, DOT[other][:3]) for c in colours), (kind, other, size)


def test_icons_read_on_light_and_dark_panels():
    """Both a dark outline (for light panels) and a light fill (for dark ones) are present."""
    img = render(IconKind.HEALTHY, 32)
    lum = [0.299 * r + 0.587 * g + 0.114 * b for r, g, b, a in _pixels(img) if a > 200]
    assert min(lum) < 60 and max(lum) > 230
    sheet = contact_sheet((16, 32))
    assert sheet.size[0] > 32 and sheet.size[1] > 10 * 32


def test_render_is_cached_and_rejects_silly_sizes():
    assert render(IconKind.HEALTHY, ICON_SIZE) is render(IconKind.HEALTHY, ICON_SIZE)
    with pytest.raises(ValueError):
        render(IconKind.HEALTHY, 4)


def test_committed_assets_match_the_drawing_code():
    """assets/ holds renders of icons.py; regenerate with `python -m clawd_client.tray.icons assets/`."""
    from PIL import Image, ImageChops

    assets = Path(__file__).resolve().parent.parent / "assets"
    master = Image.open(assets / "clawd-tray-master.png").convert("RGBA")
    assert master.size == (1024, 1024)
    diff = ImageChops.difference(master, render_master(None))
    assert max(band[1] for band in diff.getextrema()) <= 8, "assets/clawd-tray-master.png is stale"
    assert (assets / "clawd-tray-states.png").is_file()


# --- Linux backend advice ---------------------------------------------------------------------------


DEBIAN12 = {"ID": "debian", "VERSION_ID": "12"}
UBUNTU24 = {"ID": "ubuntu", "ID_LIKE": "debian", "VERSION_ID": "24.04"}
FEDORA = {"ID": "fedora", "VERSION_ID": "41"}


def test_menu_fix_debian_system_python_in_a_venv():
    from clawd_client.tray.backend import menu_fix

    text = menu_fix(DEBIAN12, in_venv=True, system_python=True)
    assert "sudo apt install python3-gi gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1" in text
    assert "--system-site-packages" in text
    assert "pip install 'PyGObject<3.51'" in text and "libgirepository1.0-dev" in text


def test_menu_fix_for_a_non_system_python_only_offers_a_build():
    from clawd_client.tray.backend import menu_fix

    text = menu_fix(DEBIAN12, in_venv=True, system_python=False, python="/home/u/.pyenv/bin/python")
    assert "not the system one" in text and "--system-site-packages" not in text
    assert "PyGObject<3.51" in text
    newer = menu_fix(UBUNTU24, in_venv=False, system_python=False)
    assert "libgirepository-2.0-dev" in newer and "pip install PyGObject" in newer


def test_menu_fix_fedora_and_others():
    from clawd_client.tray.backend import menu_fix

    fedora = menu_fix(FEDORA, in_venv=True, system_python=True)
    assert "sudo dnf install python3-gobject gtk3 libappindicator-gtk3" in fedora
    assert "--system-site-packages" in fedora
    assert "pacman -S python-gobject" in menu_fix({"ID": "arch"}, in_venv=False, system_python=True)
    generic = menu_fix({}, in_venv=False, system_python=False)
    assert "PyGObject" in generic and "AppIndicator" in generic


def test_os_release_parsing(tmp_path):
    from clawd_client.tray.backend import read_os_release

    path = tmp_path / "os-release"
    path.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n# c\n')
    assert read_os_release(path) == {
        "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)",
        "ID": "debian",
        "VERSION_ID": "12",
    }
    assert read_os_release(tmp_path / "missing") == {}


def test_caps_come_from_the_backend_class():
    from clawd_client.tray.backend import backend_name, caps_of

    xorg = type("Icon", (), {"HAS_MENU": False, "HAS_DEFAULT_ACTION": True, "HAS_MENU_RADIO": False})
    xorg.__module__ = "pystray._xorg"
    caps = caps_of(xorg)
    assert backend_name(xorg) == "xorg"
    assert caps == Caps(
        "xorg", has_menu=False, has_default_action=True, has_radio=False, has_notification=False
    )


def test_no_display_is_a_clear_error(monkeypatch):
    from clawd_client.tray import backend
    from clawd_gateway.errors import UserError

    monkeypatch.setattr(backend.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(UserError, match="no graphical session") as info:
        backend.load_pystray()
    assert "clawd up PROFILE" in (info.value.fix or "")
    with pytest.raises(UserError, match="unknown tray backend"):
        backend.load_pystray("qt")


def test_session_bus_detection(tmp_path):
    from clawd_client.tray.backend import session_bus_available

    assert session_bus_available({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/x"})
    assert not session_bus_available({"XDG_RUNTIME_DIR": str(tmp_path)})
    (tmp_path / "bus").touch()
    assert session_bus_available({"XDG_RUNTIME_DIR": str(tmp_path)})


# --- start at login bridge -----------------------------------------------------------------------------


def test_autostart_bridge_uses_the_autostart_module_api():
    from clawd_client.tray.desktop import AutostartBridge

    calls: list[bool] = []
    state = {"on": False}

    def set_tray_autostart(enabled: bool) -> None:
        calls.append(enabled)
        state["on"] = enabled

    fake = types.SimpleNamespace(
        tray_autostart_enabled=lambda: state["on"], set_tray_autostart=set_tray_autostart
    )
    bridge = AutostartBridge(loader=lambda: fake)
    assert bridge.query() is False
    assert bridge.set(True) is True and calls == [True]
    assert bridge.set(False) is False and calls == [True, False]


def test_autostart_bridge_degrades_when_the_module_is_missing_or_failing():
    from clawd_client.tray.desktop import AutostartBridge, DesktopError
    from clawd_gateway.errors import UserError

    def missing() -> Any:
        raise ImportError("No module named 'clawd_client.autostart'")

    bridge = AutostartBridge(loader=missing)
    assert bridge.query() is None and "not available" in (bridge.problem or "")
    with pytest.raises(DesktopError):
        bridge.set(True)
    partial = AutostartBridge(loader=lambda: types.SimpleNamespace(tray_autostart_enabled=lambda: True))
    assert partial.query() is None and "set_tray_autostart" in (partial.problem or "")

    def refuse(enabled: bool) -> None:
        raise UserError("clawd runs from a temp dir", fix="pipx install clawd")

    failing = AutostartBridge(
        loader=lambda: types.SimpleNamespace(tray_autostart_enabled=lambda: False, set_tray_autostart=refuse)
    )
    with pytest.raises(DesktopError, match=r"temp dir.*fix: pipx install clawd"):
        failing.set(True)


def test_clipboard_tools_per_platform():
    from clawd_client.tray.desktop import clipboard_commands

    assert clipboard_commands({}, "darwin") == [["pbcopy"]]
    assert clipboard_commands({}, "win32") == [["clip"]]
    assert [c[0] for c in clipboard_commands({"WAYLAND_DISPLAY": "w", "DISPLAY": ":0"}, "linux")] == [
        "wl-copy",
        "xclip",
        "xsel",
    ]
    assert clipboard_commands({}, "linux") == []


def test_copy_without_any_tool_says_what_to_install(monkeypatch):
    from clawd_client.tray import desktop

    monkeypatch.setattr(desktop.shutil, "which", lambda name: None)
    with pytest.raises(desktop.DesktopError, match="install xclip") as info:
        desktop.copy_text(URL, env={"DISPLAY": ":0"})
    assert URL in str(info.value)
