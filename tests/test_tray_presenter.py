"""The tray's presentation as pure functions: every engine state in; icon, tooltip, menu,
default click and notices out. Plus the icons themselves, the Linux backend advice, the
start-at-login bridge and the engine-side mapping of failures to "needs you"."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from clawd_client.engine import machine as m
from clawd_client.tray.icons import DOT, ICON_SIZE, IconKind, contact_sheet, render, render_master
from clawd_client.tray.presenter import (
    Action,
    Attention,
    Caps,
    NotifyPolicy,
    NotifyState,
    TrayInput,
    control_ui_url,
    icon_kind,
    notify_step,
    present,
)

URL = "ws://127.0.0.1:18789"


def _pixels(image: Any) -> Any:
    """All pixels in order, without Pillow's deprecated getdata() where the new name exists."""
    flat = getattr(image, "get_flattened_data", None)
    return flat() if flat is not None else image.getdata()


def status(state: str, **kw: Any) -> dict[str, Any]:
    """A status dict shaped like Supervisor.status()."""
    base: dict[str, Any] = {
        "profile": "vps",
        "pid": 4242,
        "method": "ssh",
        "target": "me@203.0.113.7",
        "localUrl": URL,
        "state": state,
        "degraded": None,
        "since": 1_700_000_000.0,
        "lastError": None,
        "detailCode": None,
        "latencyMs": None,
        "reconnects": 0,
        "attempts": 0,
        "nextAttemptInS": None,
        "note": None,
        "server": None,
    }
    base.update(kw)
    return base


def view(st: dict[str, Any] | None, **kw: Any) -> Any:
    kw.setdefault("profiles", ("vps",))
    kw.setdefault("profile", "vps")
    kw.setdefault("autostart", False)
    return present(TrayInput(status=st, **kw))


def enabled(v: Any) -> set[str]:
    return {i.id for i in v.menu if i.id and i.enabled and not i.separator}


HOSTKEY = Attention(
    "host-key-unknown", "unknown key", fingerprint="SHA256:abcdefghijklmnopqrstuvwxyz0123456789"
)
ALWAYS = {"copy-url", "diagnose", "open-logs", "autostart", "quit"}

# state -> (status kwargs, attention, icon, headline fragment, enabled actions, default click)
CASES: dict[str, tuple[dict[str, Any], Attention | None, IconKind, str, set[str], str | None]] = {
    "idle": ({}, None, IconKind.CONNECTING, "starting", {"disconnect", "reconnect"}, "reconnect"),
    "connecting": ({}, None, IconKind.CONNECTING, "connecting…", {"disconnect", "reconnect"}, "reconnect"),
    "reconnecting": (
        {"state": "connecting", "lastError": "Server not responding to keepalive"},
        None,
        IconKind.CONNECTING,
        "reconnecting…",
        {"disconnect", "reconnect"},
        "reconnect",
    ),
    "forwarding": (
        {},
        None,
        IconKind.CONNECTING,
        "checking the gateway",
        {"disconnect", "reconnect"},
        "reconnect",
    ),
    "healthy": (
        {"latencyMs": 41.3},
        None,
        IconKind.HEALTHY,
        "connected",
        {"disconnect", "reconnect", "open-ui"},
        "open-ui",
    ),
    "degraded-unreachable": (
        {"state": "degraded", "degraded": "gateway-unreachable", "lastError": "connection refused"},
        None,
        IconKind.DEGRADED,
        "gateway not answering",
        {"disconnect", "reconnect"},
        "reconnect",
    ),
    "degraded-unhealthy": (
        {"state": "degraded", "degraded": "gateway-unhealthy", "lastError": "health not ok"},
        None,
        IconKind.DEGRADED,
        "gateway unhealthy",
        {"disconnect", "reconnect", "open-ui"},
        "open-ui",
    ),
    "degraded-auth": (
        {"state": "degraded", "degraded": "gateway-auth-rejected", "lastError": "token mismatch"},
        Attention("gateway-auth", "refused", fix="clawd secret set vps"),
        IconKind.NEEDS_USER,
        "refused the secret",
        {"disconnect", "reconnect", "open-ui"},
        "diagnose",
    ),
    "backoff": (
        {
            "attempts": 3,
            "lastError": "SSH to me@203.0.113.7 failed: Network is unreachable",
            "nextAttemptInS": 3.2,
        },
        None,
        IconKind.CONNECTING,
        "retrying (attempt 4)",
        {"disconnect", "reconnect"},
        "reconnect",
    ),
    "fatal-hostkey-unknown": (
        {"state": "fatal", "lastError": "the SSH host key of [h]:22 is not known yet"},
        HOSTKEY,
        IconKind.NEEDS_USER,
        "unknown SSH host key",
        {"connect", "reconnect", "trust-host-key"},
        "diagnose",
    ),
    "fatal-hostkey-changed": (
        {"state": "fatal", "lastError": "REMOTE HOST KEY CHANGED"},
        Attention("host-key-changed", "changed", fingerprint="SHA256:xyz"),
        IconKind.NEEDS_USER,
        "host key CHANGED",
        {"connect", "reconnect"},
        "diagnose",
    ),
    "fatal-ssh-auth": (
        {"state": "fatal", "lastError": "SSH authentication to me@h was refused"},
        Attention("ssh-auth", "refused"),
        IconKind.NEEDS_USER,
        "SSH login refused",
        {"connect", "reconnect"},
        "diagnose",
    ),
    "fatal-unexplained": (
        {"state": "fatal", "lastError": "file not found: /k"},
        None,
        IconKind.NEEDS_USER,
        "needs you",
        {"connect", "reconnect"},
        "diagnose",
    ),
    "stopped": ({}, None, IconKind.STOPPED, "disconnected", {"connect"}, "connect"),
    "not running": ({}, None, IconKind.STOPPED, "not running", {"connect"}, "connect"),
}


def test_every_engine_state_has_a_case():
    covered = {CASES[name][0].get("state", name) for name in CASES}
    assert {s.value for s in m.State} <= covered


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_presentation(name):
    kw, attention, icon, headline, actions, default = CASES[name]
    st = status(kw.pop("state", name), **kw)
    v = view(st, attention=attention)
    assert v.icon is icon
    assert icon_kind(st, attention) is icon
    assert headline in v.headline and v.headline.startswith("vps: ")
    assert v.menu[0].text == v.headline and not v.menu[0].enabled
    assert enabled(v) == actions | ALWAYS, name
    assert v.default_action == default
    if default is not None:
        assert default in enabled(v) | {"diagnose"}
    # tooltip: profile, state, local URL; latency when healthy; within the Windows limit
    assert "vps" in v.tooltip and URL in v.tooltip and len(v.tooltip) <= 127
    assert ("41.3 ms" in v.tooltip) == (name == "healthy")
    # the greyed detail line explains failures
    if kw.get("lastError") and st["state"] != "healthy":
        assert not v.menu[1].enabled and not v.menu[1].separator
    # exactly one of Connect / Disconnect makes sense at a time
    assert not ({"connect", "disconnect"} <= enabled(v))
    # the menu always ends with Quit, and Start at login is a check item
    assert v.menu[-1].id == "quit"
    assert v.find("autostart").checked is False


def test_trust_host_key_item_only_for_an_unknown_key_and_shows_the_fingerprint():
    v = view(status("fatal", lastError="unknown"), attention=HOSTKEY)
    item = v.find("trust-host-key")
    assert item is not None and item.enabled and "SHA256:abcdefghijklmnopqrstu" in item.text
    assert len(item.text) < 60
    assert "server key SHA256:" in v.menu[1].text
    changed = Attention("host-key-changed", "x", fingerprint="SHA256:xyz")
    assert view(status("fatal"), attention=changed).find("trust-host-key") is None
    assert view(status("healthy"), attention=HOSTKEY).find("trust-host-key") is None


def test_before_the_first_status_and_when_blocked():
    v = view(None)
    assert v.icon is IconKind.CONNECTING and "starting" in v.headline
    assert enabled(v) == {"diagnose", "open-logs", "autostart", "quit"} and v.default_action is None
    blocked = view(None, blocked="vps: already connected by pid 77")
    assert blocked.icon is IconKind.NEEDS_USER
    assert blocked.headline == "vps: already connected by pid 77"
    assert enabled(blocked) == {"connect", "diagnose", "open-logs", "autostart", "quit"}
    assert blocked.default_action == "connect"
    none = view(None, blocked="no gateway profile yet", profiles=(), profile=None)
    assert "diagnose" not in enabled(none)


def test_profile_submenu_only_with_several_profiles_and_radio_only_where_supported():
    assert all(not i.submenu for i in view(status("healthy")).menu)
    v = view(status("healthy"), profiles=("home", "vps", "work"))
    sub = next(i for i in v.menu if i.submenu)
    assert sub.text == "Profile: vps"
    assert [(s.id, s.checked, s.radio) for s in sub.submenu] == [
        ("profile:home", False, True),
        ("profile:vps", True, True),
        ("profile:work", False, True),
    ]
    no_radio = view(status("healthy"), profiles=("a", "vps"), caps=Caps("darwin", has_radio=False))
    assert all(s.radio is False and s.checked is not None for i in no_radio.menu for s in i.submenu)


def test_default_item_is_marked_only_where_a_click_runs_it():
    gtk = view(status("healthy"), caps=Caps("gtk"))
    assert [i.id for i in gtk.menu if i.default] == ["open-ui"]
    appind = view(status("healthy"), caps=Caps("appindicator", has_default_action=False))
    assert not any(i.default for i in appind.menu)
    assert appind.default_action == "open-ui"  # still the answer for a menu-less click


def test_autostart_item_states():
    assert view(status("healthy"), autostart=True).find("autostart").checked is True
    missing = view(status("healthy"), autostart=None).find("autostart")
    assert not missing.enabled and "unavailable" in missing.text
    busy = view(status("healthy"), autostart=True, busy=frozenset({"autostart"})).find("autostart")
    assert not busy.enabled


def test_diagnosis_in_flight_disables_the_item():
    item = view(status("healthy"), busy=frozenset({"diagnose"})).find("diagnose")
    assert not item.enabled and item.text.startswith("Running diagnosis")


def test_copy_item_names_the_url_and_control_ui_url_never_carries_a_secret():
    assert URL in view(status("healthy")).find("copy-url").text
    assert control_ui_url(status("healthy")) == "http://127.0.0.1:18789/"
    assert control_ui_url(status("healthy", localUrl="wss://gw.example:443")) == "https://gw.example:443/"
    assert control_ui_url(None) is None
    assert control_ui_url(status("healthy", localUrl=None)) is None


def test_long_errors_are_shortened_and_the_tooltip_is_capped():
    st = status("backoff", lastError="x" * 500, localUrl="ws://127.0.0.1:18789", attempts=1)
    v = view(st, profile="p" * 100, profiles=("p" * 100,))
    assert len(v.tooltip) <= 127
    assert all(len(i.text) <= 72 for i in v.menu)


def test_action_ids_are_stable():
    assert {a.value for a in Action} == {
        "connect",
        "disconnect",
        "reconnect",
        "trust-host-key",
        "profile",
        "open-ui",
        "copy-url",
        "diagnose",
        "open-logs",
        "autostart",
        "quit",
    }


# --- notifications --------------------------------------------------------------------------------


class Feed:
    """Drive notify_step like the adapter does: on each change, and again when it asks."""

    def __init__(self, policy: NotifyPolicy | None = None) -> None:
        self.state = NotifyState()
        self.policy = policy or NotifyPolicy(grace_s=20, lost_every_s=600, attention_every_s=600)
        self.shown: list[tuple[float, str, str]] = []
        self.again: float | None = None

    def at(self, now: float, st: dict[str, Any] | None, attention: Attention | None = None) -> list[str]:
        kind = icon_kind(st, attention)
        self.state, notices, self.again = notify_step(
            self.state, kind, st, now, profile="vps", attention=attention, policy=self.policy
        )
        for n in notices:
            self.shown.append((now, n.kind, n.title + " / " + n.message))
        return [n.kind for n in notices]


def test_first_connection_that_just_works_says_nothing():
    f = Feed()
    assert f.at(0, status("connecting")) == []
    assert f.at(0.2, status("forwarding")) == []
    assert f.at(0.3, status("healthy")) == []
    assert f.shown == []


def test_a_short_drop_is_healed_silently():
    f = Feed()
    f.at(0, status("healthy"))
    assert f.at(100, status("connecting", lastError="keepalive")) == []
    assert f.again == 120  # the adapter re-asks at the end of the grace period
    assert f.at(104, status("healthy")) == []
    assert f.again is None and f.shown == []


def test_a_long_drop_says_lost_once_then_restored_with_the_outage_length():
    f = Feed()
    f.at(0, status("healthy"))
    f.at(100, status("connecting", lastError="keepalive"))
    f.at(101, status("backoff", lastError="Network is unreachable", attempts=1))
    assert f.at(120, status("backoff", lastError="Network is unreachable", attempts=1)) == ["lost"]
    assert "connection lost" in f.shown[-1][2] and "Network is unreachable" in f.shown[-1][2]
    assert f.at(150, status("backoff", attempts=5)) == []  # no repeats while still down
    assert f.at(190, status("healthy")) == ["restored"]
    assert "after 1 min 30 s" in f.shown[-1][2]


def test_a_flapping_link_is_rate_limited_and_the_skipped_drops_are_counted():
    f = Feed()
    f.at(0, status("healthy"))
    t = 10.0
    kinds: list[str] = []
    for _ in range(12):  # a drop every 50 s, each lasting 25 s (longer than the grace period)
        kinds += f.at(t, status("connecting", lastError="flap"))
        kinds += f.at(t + 25, status("backoff", lastError="flap", attempts=1))
        kinds += f.at(t + 30, status("healthy"))
        t += 50
    assert kinds.count("lost") == 1 and kinds.count("restored") == 1
    # After the rate-limit window, the next long drop is announced with the count of skipped ones.
    f.at(t + 700, status("connecting", lastError="flap"))
    assert f.at(t + 725, status("backoff", lastError="flap", attempts=1)) == ["lost"]
    assert "(11 more drops since the last notice)" in f.shown[-1][2]


def test_cannot_connect_at_start_is_announced_after_the_grace_period():
    f = Feed()
    f.at(0, status("connecting"))
    assert f.at(20, status("backoff", lastError="Connection refused", attempts=2)) == ["lost"]
    assert "cannot connect to vps yet" in f.shown[-1][2]
    assert f.at(60, status("healthy")) == ["restored"]
    assert "established after 1 min" in f.shown[-1][2]


def test_needs_attention_is_immediate_with_the_fix_and_not_repeated_for_the_same_cause():
    f = Feed()
    f.at(0, status("healthy"))
    auth = Attention("gateway-auth", "The gateway refused vps's secret", fix="clawd secret set vps")
    st = status("degraded", degraded="gateway-auth-rejected", lastError="token mismatch")
    assert f.at(10, st, auth) == ["attention"]
    assert "Fix: clawd secret set vps" in f.shown[-1][2]
    assert f.at(15, st, auth) == []  # every re-probe republishes: still one notice
    assert f.at(20, status("fatal", lastError="hk"), HOSTKEY) == ["attention"]  # a new cause
    assert f.at(400, st, auth) == ["attention"]  # the cause changed back: say it again
    assert f.at(500, st, auth) == []
    assert f.at(1100, st, auth) == ["attention"]  # same cause, but after the rate-limit window


def test_user_actions_are_silent_and_cancel_a_pending_restored():
    f = Feed()
    f.at(0, status("healthy"))
    f.at(10, status("backoff", lastError="down", attempts=1))
    assert f.at(40, status("backoff", lastError="down", attempts=2)) == ["lost"]
    assert f.at(50, status("stopped")) == []  # the user pressed Disconnect
    assert f.at(60, status("connecting")) == []
    assert f.at(61, status("healthy")) == []  # no "restored" for a lost the user ended
    assert f.again is None


def test_a_drop_that_ends_in_needs_you_keeps_its_start_for_the_restored_notice():
    f = Feed()
    f.at(0, status("healthy"))
    f.at(10, status("backoff", lastError="down", attempts=1))
    assert f.at(30, status("backoff", lastError="down", attempts=2)) == ["lost"]
    assert f.at(35, status("fatal", lastError="hk"), HOSTKEY) == ["attention"]
    assert f.at(70, status("healthy")) == ["restored"]
    assert "after 1 min" in f.shown[-1][2]


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
    assert "clawd connect" in (info.value.fix or "")
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


# --- engine-side mapping of causes ---------------------------------------------------------------------


def test_attention_for_host_keys_auth_and_setup(tmp_path):
    import asyncssh

    from clawd_client.engine.hostkeys import HostKeyChanged, HostKeyUnknown, fingerprint
    from clawd_client.tray.engine import attention_for

    key = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    fp = fingerprint(key)
    unknown = attention_for(status("fatal"), HostKeyUnknown("h", 2222, key, tmp_path / "kh"), "vps")
    assert unknown is not None and unknown.kind == "host-key-unknown" and unknown.fingerprint == fp
    changed = attention_for(status("fatal"), HostKeyChanged("h", None, key, tmp_path / "kh"), "vps")
    assert (
        changed is not None and changed.kind == "host-key-changed" and "ssh-keygen -R" in (changed.fix or "")
    )
    auth = attention_for(
        status("fatal", lastError="SSH authentication to me@h was refused: no key"), None, "vps"
    )
    assert auth is not None and auth.kind == "ssh-auth"
    other = attention_for(status("fatal", lastError="file not found: /k"), None, "vps")
    assert other is not None and other.kind == "setup" and "clawd doctor vps" in (other.fix or "")
    gw = attention_for(
        status("degraded", degraded="gateway-auth-rejected", lastError="mismatch"), None, "vps"
    )
    assert (
        gw is not None
        and gw.kind == "gateway-auth"
        and gw.fix == "store the gateway's current secret: clawd secret set vps"
    )
    assert attention_for(status("healthy"), HostKeyUnknown("h", 22, key, tmp_path / "kh"), "vps") is None


# --- the engine host, without a desktop ----------------------------------------------------------------


class Changes:
    """Collects what the host shows after each change (as the adapter would), thread-safely."""

    def __init__(self) -> None:
        import threading

        self.cond = threading.Condition()
        self.seen: list[tuple[str | None, str | None]] = []
        self.host: Any = None

    def __call__(self) -> None:
        with self.cond:
            st = self.host.status
            self.seen.append((st["state"] if st else None, self.host.blocked))
            self.cond.notify_all()

    def wait(self, pred: Any, timeout: float = 10) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: any(pred(s) for s in self.seen), timeout), self.seen


def test_engine_host_is_blocked_without_profiles_and_quits_cleanly(tmp_path, monkeypatch):
    from clawd_client.profiles import ProfileStore
    from clawd_client.tray.engine import EngineHost

    monkeypatch.setenv("CLAWD_CONFIG_DIR", str(tmp_path / "cfg"))
    changes = Changes()
    host = EngineHost(profile=None, on_change=changes, store=ProfileStore(tmp_path / "cfg" / "profiles.json"))
    changes.host = host
    host.start()
    try:
        changes.wait(lambda s: s[1] is not None and "no gateway profile yet" in s[1])
        host.command("connect")  # "try again": still nothing to run, still blocked, no crash
    finally:
        host.quit()
        assert host.join(10) and host.finished.is_set() and host.exit_error is None


def test_engine_host_names_the_process_that_already_runs_the_profile(tmp_path):
    from clawd_client.engine.lock import InstanceLock
    from clawd_client.profiles import Profile, ProfileStore, SshTarget
    from clawd_client.tray.engine import EngineHost

    store = ProfileStore(tmp_path / "cfg" / "profiles.json")
    store.add(Profile(name="vps", ssh=SshTarget(host="127.0.0.1", port=2)))
    held = InstanceLock("vps")
    held.acquire()  # as `clawd connect vps` would
    changes = Changes()
    host = EngineHost(profile="vps", on_change=changes, store=store)
    changes.host = host
    host.start()
    try:
        changes.wait(lambda s: s[1] is not None and "already connected by" in s[1])
        assert host.status is None
    finally:
        host.quit()
        assert host.join(10)
        held.release()
