"""Which pystray backend runs the icon, what it can do, and how to get a better one on Linux.

Why this exists: on Linux pystray tries AppIndicator, then GTK, then plain xorg. The first two
need PyGObject (`gi`), which pip does not install and which a plain venv cannot see, so a
`pip install 'clawd[tray]'` silently ends up on xorg: an icon with no menu at all, no
notifications, and nothing whatsoever on Wayland (tunnel-peers.md B.3; pain point E.10).
`clawd tray` therefore detects the backend and, when it cannot show a menu, says so at start
with the exact fix for the user's distribution (`menu_fix`, pure, tested).

pystray picks its backend at import time (module-level `Icon = backend().Icon`), and importing
it without a display raises an Xlib error deep inside; `load_pystray` checks the environment
first and turns every such failure into a UserError with a fix.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from clawd_gateway.errors import UserError

from .presenter import Caps

__all__ = [
    "BACKENDS",
    "caps_of",
    "load_pystray",
    "menu_fix",
    "no_menu_explanation",
    "notifications_available",
    "read_os_release",
    "session_bus_available",
]

BACKENDS = ("appindicator", "gtk", "xorg", "darwin", "win32", "dummy")
ENV = "PYSTRAY_BACKEND"
NOTIFICATIONS = "org.freedesktop.Notifications"


def read_os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    """/etc/os-release as a dict (ID, ID_LIKE, VERSION_ID, PRETTY_NAME); empty when unreadable."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def _family(os_release: Mapping[str, str]) -> str:
    ids = {os_release.get("ID", "").lower(), *os_release.get("ID_LIKE", "").lower().split()}
    if ids & {"debian", "ubuntu"}:
        return "debian"
    if ids & {"fedora", "rhel", "centos"}:
        return "fedora"
    if ids & {"arch"}:
        return "arch"
    return "other"


def _debian_pip_build(os_release: Mapping[str, str]) -> str:
    """PyGObject built with pip: 3.51+ needs girepository-2.0 (GLib >= 2.80), which Debian 12 and
    Ubuntu 22.04 lack; there the last version that builds is 3.50 (checked on Debian 12)."""
    old = (os_release.get("ID") == "debian" and os_release.get("VERSION_ID", "") in ("11", "12")) or (
        os_release.get("ID") == "ubuntu" and os_release.get("VERSION_ID", "") < "24.04"
    )
    if old:
        return (
            "sudo apt install libgirepository1.0-dev libcairo2-dev pkg-config python3-dev gir1.2-gtk-3.0 "
            "gir1.2-ayatanaappindicator3-0.1 && pip install 'PyGObject<3.51'"
        )
    return (
        "sudo apt install libgirepository-2.0-dev libcairo2-dev pkg-config python3-dev gir1.2-gtk-3.0 "
        "gir1.2-ayatanaappindicator3-0.1 && pip install PyGObject"
    )


def menu_fix(
    os_release: Mapping[str, str],
    *,
    in_venv: bool,
    system_python: bool,
    python: str = "python3",
) -> str:
    """The steps that give this Python the GTK/AppIndicator bindings, for this distribution.

    `system_python`: the interpreter is the distribution's own (so its python3-gi package can be
    made visible with --system-site-packages); otherwise only a pip build of PyGObject helps.
    """
    family = _family(os_release)
    lines: list[str] = []
    venv_hint = (
        "then use a venv that sees the system packages: "
        "python3 -m venv --system-site-packages ~/.venvs/clawd && "
        "~/.venvs/clawd/bin/pip install 'clawd[tray]' "
        "(or: pipx install --system-site-packages 'clawd[tray]')"
    )
    if family == "debian":
        if system_python:
            lines.append("sudo apt install python3-gi gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1")
            if in_venv:
                lines.append(venv_hint)
            lines.append("or build PyGObject into this Python: " + _debian_pip_build(os_release))
        else:
            lines.append(
                f"this Python ({python}) is not the system one, so build PyGObject into it: "
                + _debian_pip_build(os_release)
            )
    elif family == "fedora":
        if system_python:
            lines.append("sudo dnf install python3-gobject gtk3 libappindicator-gtk3")
            if in_venv:
                lines.append(venv_hint)
        else:
            lines.append(
                f"this Python ({python}) is not the system one: sudo dnf install gobject-introspection-devel "
                "cairo-gobject-devel pkgconf-pkg-config python3-devel gtk3 libappindicator-gtk3 && "
                "pip install PyGObject"
            )
    elif family == "arch":
        lines.append("sudo pacman -S python-gobject gtk3 libappindicator-gtk3")
        if in_venv and system_python:
            lines.append(venv_hint)
    else:
        lines.append(
            "install PyGObject (python3-gi / python3-gobject) with GTK 3 and AyatanaAppIndicator3 (or "
            "AppIndicator3) typelibs from your distribution, and run clawd from a venv created with "
            "--system-site-packages; or pip install PyGObject after installing the GObject-introspection "
            "and cairo development packages"
        )
    lines.append(
        "GNOME shows tray icons only with the AppIndicator extension "
        "(Ubuntu has it; elsewhere install gnome-shell-extension-appindicator)"
    )
    return "\n".join(f"  - {line}" for line in lines)


def session_bus_available(env: Mapping[str, str] | None = None) -> bool:
    """GTK backends need a D-Bus session bus (pystray's notifier connects at start and fails hard
    without one); a desktop session always has one, a bare X server or ssh -X may not."""
    env = os.environ if env is None else env
    if env.get("DBUS_SESSION_BUS_ADDRESS"):
        return True
    runtime = env.get("XDG_RUNTIME_DIR")
    return runtime is not None and runtime != "" and Path(runtime, "bus").exists()


def load_pystray(backend: str | None = None) -> tuple[ModuleType, str | None]:
    """Import pystray with a backend that can work here; returns (module, a note on the choice).

    An explicit choice (argument, else $PYSTRAY_BACKEND) is honoured. Without one on Linux, and
    with no session bus, GTK backends would crash at start, so xorg is chosen and the note says why.
    """
    note: str | None = None
    if backend:
        if backend not in BACKENDS:
            raise UserError(f"unknown tray backend {backend!r}", fix=f"one of: {', '.join(BACKENDS)}")
        os.environ[ENV] = backend
        note = f"chosen with --backend {backend}"
    elif os.environ.get(ENV):
        note = f"chosen with {ENV}={os.environ[ENV]}"
    if sys.platform.startswith("linux"):
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            raise UserError(
                "no graphical session here (neither DISPLAY nor WAYLAND_DISPLAY is set), so there is no "
                "tray to put an icon in",
                fix="run `clawd tray` inside your desktop session; for a tunnel without a desktop use "
                "`clawd up PROFILE` (or `clawd autostart enable --headless PROFILE`)",
            )
        if not os.environ.get(ENV) and not session_bus_available():
            os.environ[ENV] = "xorg"
            note = "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS unset), so the GTK backends cannot start"
    gl_set_here = False
    if sys.platform.startswith("linux"):
        _name_the_program()
        # GDK probes OpenGL when it opens the display, which maps the whole Mesa driver (with
        # Mesa's software renderer that is libLLVM: +55 MB RSS). A tray icon never draws with GL.
        if "GDK_GL" not in os.environ:
            os.environ["GDK_GL"] = "disable"
            gl_set_here = True
    try:
        import pystray
    except ImportError as exc:
        if "pystray" in str(exc) and "No module named" in str(exc):
            raise UserError(
                "the tray needs pystray and Pillow, which are not installed",
                fix="pip install 'clawd[tray]'",
            ) from None
        raise UserError(f"no usable tray backend: {exc}", fix="see `clawd tray --help`") from None
    except Exception as exc:  # Xlib raises DisplayNameError / ConnectionClosedError at import time
        raise UserError(
            f"cannot reach the display for the tray icon: {type(exc).__name__}: {exc}",
            fix="run `clawd tray` inside your desktop session (check DISPLAY / WAYLAND_DISPLAY)",
        ) from None
    finally:
        if gl_set_here:  # GDK has read it by now; programs we launch (a browser) must not inherit it
            os.environ.pop("GDK_GL", None)
    return pystray, note


def _name_the_program() -> None:
    """Call the GTK program "clawd" before pystray initialises GTK, so the icon's window class
    (what trays, window rules and xdotool see) is clawd's and not the interpreter's script name."""
    try:
        from gi.repository import GLib
    except Exception:  # no PyGObject: the xorg backend names its window itself
        return
    GLib.set_prgname("clawd")
    GLib.set_application_name("clawd")


def backend_name(icon_class: Any) -> str:
    """`pystray._appindicator` -> `appindicator`."""
    module = getattr(icon_class, "__module__", "") or ""
    return module.rsplit(".", 1)[-1].lstrip("_") or "unknown"


def gi_importable() -> bool:
    """Is PyGObject installed for this interpreter (without importing GTK)?"""
    import importlib.util

    return importlib.util.find_spec("gi") is not None


def notifications_available() -> bool:
    """Does a notification server answer on the session bus? (GTK backends only: they talk to
    org.freedesktop.Notifications, and with nobody there every notice is silently lost.)"""
    try:
        from gi.repository import Gio, GLib

        bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)

        def call(method: str, args: Any, reply: str) -> Any:
            result = bus.call_sync(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                method,
                args,
                GLib.VariantType(reply),
                Gio.DBusCallFlags.NONE,
                1000,
                None,
            )
            return result.unpack()[0]

        if call("NameHasOwner", GLib.Variant("(s)", (NOTIFICATIONS,)), "(b)"):
            return True
        return NOTIFICATIONS in call("ListActivatableNames", None, "(as)")
    except Exception:
        return False


def caps_of(icon_class: Any) -> Caps:
    """The backend's HAS_* flags, and for GTK backends whether notifications can be delivered."""
    name = backend_name(icon_class)
    has_notification = bool(getattr(icon_class, "HAS_NOTIFICATION", False))
    if has_notification and name in ("appindicator", "gtk"):
        has_notification = notifications_available()
    return Caps(
        backend=name,
        has_menu=bool(getattr(icon_class, "HAS_MENU", False)),
        has_default_action=bool(getattr(icon_class, "HAS_DEFAULT_ACTION", False)),
        has_radio=bool(getattr(icon_class, "HAS_MENU_RADIO", False)),
        has_notification=has_notification,
    )


def python_facts() -> dict[str, Any]:
    """Facts `menu_fix` needs about the running interpreter."""
    in_venv = sys.prefix != sys.base_prefix
    # The distribution's interpreter lives in /usr; pyenv, uv, conda or a /usr/local build cannot
    # import the distribution's python3-gi, whatever the venv flags say.
    system_python = Path(sys.base_prefix).resolve() == Path("/usr")
    return {"in_venv": in_venv, "system_python": system_python, "python": sys.executable}


def no_menu_explanation(caps: Caps, note: str | None) -> str | None:
    """What to tell the user at start when the backend in use cannot show a menu (None: it can)."""
    if caps.has_menu:
        return None
    facts = python_facts()
    text = (
        f'clawd tray: the tray backend in use is "{caps.backend}", which CANNOT SHOW A MENU'
        + (f" ({note})" if note else "")
        + ".\n  A click on the icon will connect / reconnect, or open the Control UI while connected.\n"
    )
    forced = bool(note and note.startswith("chosen with"))
    if forced and gi_importable():
        text += (
            "  PyGObject is installed: for the full menu, run `clawd tray` without --backend and "
            f"without {ENV} (or choose appindicator or gtk)."
        )
    else:
        text += "  For the full menu, give this Python the GTK/AppIndicator bindings (PyGObject):\n" + (
            menu_fix(
                read_os_release(),
                in_venv=facts["in_venv"],
                system_python=facts["system_python"],
                python=facts["python"],
            )
        )
    if os.environ.get("WAYLAND_DISPLAY") and caps.backend == "xorg":
        text += "\n  On Wayland the xorg backend usually shows no icon at all."
    return text
