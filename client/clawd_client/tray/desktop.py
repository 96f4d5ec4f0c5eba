"""Desktop side effects the tray needs: open a URL or file, copy text, toggle start-at-login.

Why not `webbrowser` and pyperclip: `webbrowser` may pick a console browser and block the UI
thread, and pyperclip is one more dependency that shells out to the same tools anyway. Here:
the platform opener (xdg-open / open / os.startfile) started detached, and a clipboard chain
that prefers what the process already has (GTK's clipboard under the GTK backends), then the
platform tools. Each failure is a `DesktopError` whose message says what to install.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "AutostartBridge",
    "DesktopError",
    "clipboard_commands",
    "copy_text",
    "open_target",
]

log = logging.getLogger("clawd.tray")


class DesktopError(Exception):
    """An action the desktop could not do; the message is for a notification."""


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Wait for a launcher in a daemon thread so it never lingers as a zombie."""
    threading.Thread(target=proc.wait, name="clawd-reap", daemon=True).start()


def _spawn(argv: list[str], stdin_text: str | None = None) -> None:
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
        # DEVNULL, not pipes: xclip/xsel fork a child that keeps serving the selection, and an
        # inherited pipe would make us wait for that child forever.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    if stdin_text is not None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(stdin_text.encode("utf-8"))
        finally:
            proc.stdin.close()
    _reap(proc)


def open_target(target: str | Path) -> None:
    """Open a URL in the default browser, or a file in its default application, without blocking."""
    text = str(target)
    if sys.platform == "darwin":
        _spawn(["open", text])
    elif sys.platform.startswith("win"):
        os.startfile(text)  # type: ignore[attr-defined]  # noqa: S606 - the user's own default app
    else:
        opener = shutil.which("xdg-open") or shutil.which("gio")
        if opener is None:
            import webbrowser

            # No opener: webbrowser may pick a console browser, so never on the UI thread.
            threading.Thread(target=webbrowser.open, args=(text,), name="clawd-open", daemon=True).start()
            return
        _spawn([opener, "open", text] if opener.endswith("gio") else [opener, text])


def clipboard_commands(env: Mapping[str, str] | None = None, platform: str = sys.platform) -> list[list[str]]:
    """Clipboard tools to try, best first, for this platform and session."""
    env = os.environ if env is None else env
    if platform == "darwin":
        return [["pbcopy"]]
    if platform.startswith("win"):
        return [["clip"]]
    cmds: list[list[str]] = []
    if env.get("WAYLAND_DISPLAY"):
        cmds.append(["wl-copy"])
    if env.get("DISPLAY"):
        cmds.append(["xclip", "-selection", "clipboard", "-in"])
        cmds.append(["xsel", "--clipboard", "--input"])
    return cmds


def _gtk_copy(text: str) -> bool:
    """Use GTK's clipboard when the GTK backends already run a GTK main loop in this process.

    Must run on the GTK main thread (pystray calls menu actions there). The text stays available
    for as long as the tray runs, and a clipboard manager keeps it after that via store().
    """
    gi_repo = sys.modules.get("gi.repository.Gtk")
    if gi_repo is None:
        return False
    try:
        from gi.repository import Gdk, Gtk

        clipboard = Gtk.Clipboard.get(Gdk.SELECTION_CLIPBOARD)
        clipboard.set_text(text, -1)
        clipboard.store()
        return True
    except Exception:
        log.exception("GTK clipboard failed")
        return False


def copy_text(text: str, *, use_gtk: bool = False, env: Mapping[str, str] | None = None) -> str:
    """Put text on the clipboard; returns how (for the log), or raises DesktopError with a fix."""
    if use_gtk and _gtk_copy(text):
        return "GTK clipboard"
    tried: list[str] = []
    for argv in clipboard_commands(env):
        if shutil.which(argv[0]) is None:
            tried.append(argv[0])
            continue
        try:
            _spawn(argv, stdin_text=text)
        except OSError as exc:
            tried.append(f"{argv[0]} ({exc.strerror or exc})")
            continue
        return argv[0]
    fix = "install xclip (Debian/Ubuntu: sudo apt install xclip; Fedora: sudo dnf install xclip)"
    if (env or os.environ).get("WAYLAND_DISPLAY"):
        fix = "install wl-clipboard (sudo apt install wl-clipboard / sudo dnf install wl-clipboard)"
    raise DesktopError(
        f"no clipboard tool found (tried: {', '.join(tried) or 'none for this session'}); "
        f"the URL is {text}. To enable copying: {fix}"
    )


# --- start at login ---------------------------------------------------------------------------------


class AutostartBridge:
    """Start-at-login for the tray, through `clawd_client.autostart`, imported lazily.

    Uses `tray_autostart_enabled()` and `set_tray_autostart(enabled)` (which raises UserError
    with a fix). Anything missing or failing at import leaves the item disabled with the
    reason in `problem` (logged at start) instead of breaking the tray.
    """

    def __init__(self, loader: Callable[[], Any] | None = None) -> None:
        self._loader = loader or self._import
        self.module: Any = None
        self.problem: str | None = None
        self._loaded = False

    @staticmethod
    def _import() -> Any:
        from .. import autostart

        return autostart

    def _get(self) -> Any:
        if not self._loaded:
            self._loaded = True
            try:
                module = self._loader()
            except Exception as exc:  # ImportError, or any import-time failure of that module
                self.problem = f"start-at-login support is not available: {type(exc).__name__}: {exc}"
                return None
            missing = [n for n in ("tray_autostart_enabled", "set_tray_autostart") if not hasattr(module, n)]
            if missing:
                self.problem = f"clawd_client.autostart lacks {', '.join(missing)}()"
                return None
            self.module = module
        return self.module

    def query(self) -> bool | None:
        """True/False, or None when it cannot be told (then `problem` says why)."""
        module = self._get()
        if module is None:
            return None
        try:
            value = bool(module.tray_autostart_enabled())
        except Exception as exc:
            self.problem = f"cannot tell whether the tray starts at login: {exc}"
            return None
        self.problem = None
        return value

    def set(self, enabled: bool) -> bool:
        """Install or remove the entry; returns the state read back afterwards."""
        module = self._get()
        if module is None:
            raise DesktopError(self.problem or "start-at-login support is not available")
        try:
            module.set_tray_autostart(enabled)
        except Exception as exc:
            fix = getattr(exc, "fix", None)
            raise DesktopError(
                f"could not {'enable' if enabled else 'disable'} start at login: {exc}"
                + (f" — fix: {fix}" if fix else "")
            ) from exc
        state = self.query()
        log.info("start at login %s (read back: %s)", "enabled" if enabled else "disabled", state)
        return bool(state)
