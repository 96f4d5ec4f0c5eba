"""The pystray adapter: turns presentations into an icon and menu, and clicks into commands.

Threads (capability 3; pain point E.11):
- main thread: pystray's `Icon.run()` (required on macOS, where AppKit must own the main thread);
- `clawd-engine`: the asyncio loop with the Supervisor (`engine.EngineHost`);
- menu callbacks arrive on the backend's UI thread (GTK: the main thread) and only post
  commands to the engine or start short desktop actions (xdg-open, clipboard).

Every state change is computed into a `Presentation` on the engine thread and pushed to pystray
with `_ui()`. pystray's GTK, AppIndicator, xorg and win32 backends marshal `icon.icon`,
`icon.title` and `update_menu()` onto their own loop; its darwin backend does not, and AppKit
crashes when touched from another thread, so there `_ui()` hops to the main thread with
`PyObjCTools.AppHelper.callAfter`. Only what changed is pushed (the menu is rebuilt only when
its model changes), so a healthy tunnel costs the UI nothing between state changes.

Quit (menu, SIGTERM or SIGINT) asks the engine to stop: the supervisor closes the tunnel,
clears its status file and releases the profile lock, and the engine thread then stops the
icon; a watchdog stops the icon anyway after SHUTDOWN_TIMEOUT_S. `run()` returns 0.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..paths import client_state_dir
from . import backend as backends
from .desktop import AutostartBridge, DesktopError, copy_text, open_target
from .engine import SHUTDOWN_TIMEOUT_S, EngineHost
from .icons import ICON_SIZE, IconKind, render
from .presenter import (
    Action,
    Caps,
    MenuItem,
    Notice,
    NotifyState,
    Presentation,
    TrayInput,
    control_ui_url,
    notify_step,
    present,
)
from .xorg import harden_xorg_icon

log = logging.getLogger("clawd.tray")

__all__ = ["TrayApp", "log_dir", "log_path", "setup_logging"]

LOG_MAX_BYTES = 1_000_000
LOG_BACKUPS = 3


def log_dir() -> Path:
    return client_state_dir() / "logs"


def log_path() -> Path:
    return log_dir() / "tray.log"


def setup_logging(level: int = logging.INFO) -> Path:
    """The tray has no terminal (it starts at login), so it logs to a file that "Open logs" shows.

    Rotated at 1 MB x 3. The engine never logs secrets, and neither does the tray.
    """
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger("clawd")
    root.setLevel(level)
    for old in [h for h in root.handlers if getattr(h, "_clawd_tray", False)]:
        root.removeHandler(old)
        old.close()
    handler._clawd_tray = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if path.exists():
        os.chmod(path, 0o600)
    return path


def _default_label(action: str | None) -> str:
    return {
        Action.OPEN_UI.value: "open the Control UI",
        Action.CONNECT.value: "connect",
        Action.RECONNECT.value: "reconnect",
        Action.DIAGNOSE.value: "run a diagnosis",
    }.get(action or "", "do nothing")


class TrayApp:
    """One tray icon for one selected profile (switchable from the menu)."""

    def __init__(
        self,
        *,
        profile: str | None = None,
        connect: bool = True,
        backend: str | None = None,
        stderr: Any = None,
    ) -> None:
        self._stderr = stderr or sys.stderr
        self.pystray, self._backend_note = backends.load_pystray(backend)
        self.caps: Caps = backends.caps_of(self.pystray.Icon)
        self.autostart = AutostartBridge()
        self._autostart_state: bool | None = None
        self._ui_busy: set[str] = set()
        self._notify_state = NotifyState()
        self._notify_timer: Any = None
        self._shown: Presentation | None = None
        self._icon: Any = None
        self._stopping = threading.Event()
        self._icon_stopped = threading.Event()
        self._visible = threading.Event()  # pystray's loop runs and the icon is shown
        self._loop_done = threading.Event()  # pystray's loop has returned: nothing may be pushed
        self.engine = EngineHost(
            profile=profile, connect=connect, on_change=self._refresh, on_finished=self._engine_finished
        )

    # -- startup --------------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        print(text, file=self._stderr, flush=True)

    def _announce_backend(self) -> None:
        caps = self.caps
        log.info(
            "tray backend %s (menu %s, default click %s, radio %s, notifications %s)",
            caps.backend,
            caps.has_menu,
            caps.has_default_action,
            caps.has_radio,
            caps.has_notification,
        )
        if self._backend_note:
            log.warning("%s", self._backend_note)
        if caps.has_menu:
            return
        facts = backends.python_facts()
        text = (
            f'clawd tray: the tray backend in use is "{caps.backend}", which CANNOT SHOW A MENU'
            + (f" ({self._backend_note})" if self._backend_note else "")
            + ".\n  A click on the icon will connect / reconnect, or open the Control UI while connected.\n"
        )
        forced = bool(self._backend_note and self._backend_note.startswith("chosen with"))
        if forced and backends.gi_importable():
            text += (
                "  PyGObject is installed: for the full menu, run `clawd tray` without --backend and "
                f"without {backends.ENV} (or choose appindicator or gtk)."
            )
        else:
            text += "  For the full menu, give this Python the GTK/AppIndicator bindings (PyGObject):\n" + (
                backends.menu_fix(
                    backends.read_os_release(),
                    in_venv=facts["in_venv"],
                    system_python=facts["system_python"],
                    python=facts["python"],
                )
            )
        if os.environ.get("WAYLAND_DISPLAY") and caps.backend == "xorg":
            text += "\n  On Wayland the xorg backend usually shows no icon at all."
        self._say(text)
        log.warning("%s", text)

    def run(self) -> int:
        """Blocks in pystray's loop on this (main) thread until Quit; returns the exit code."""
        self._announce_backend()
        self._autostart_state = self.autostart.query()
        if self._autostart_state is None and self.autostart.problem:
            log.warning("start at login is unavailable: %s", self.autostart.problem)
        self._icon = self.pystray.Icon(
            "clawd",
            self._image(IconKind.CONNECTING),
            self._title("clawd · starting…"),
            self._build_menu(()),
        )
        if self.caps.backend == "xorg":
            # Here, on the main thread before pystray's loop runs: nothing else uses Xlib yet.
            harden_xorg_icon(self._icon)
        self._install_signal_handlers_main()
        self.engine.start()
        try:
            self._icon.run(setup=self._setup)
        finally:
            self._loop_done.set()
            self._stopping.set()
            self.engine.quit()
            clean = self.engine.join(SHUTDOWN_TIMEOUT_S)
            if not clean:
                log.error("the engine did not stop within %.0f s", SHUTDOWN_TIMEOUT_S)
        log.info("tray exited")
        return 0 if clean and self.engine.exit_error is None else 1

    def _setup(self, icon: Any) -> None:
        """pystray's setup thread: show the icon, then backend-specific fixes."""
        icon.visible = True
        if self.caps.backend in ("gtk", "appindicator"):
            self._install_signal_handlers_glib()
            self._guard_gtk_notifier(icon)
        log.info("tray icon visible")
        self._visible.set()
        self.engine.call(self._refresh)  # push whatever the engine reached in the meantime

    def _guard_gtk_notifier(self, icon: Any) -> None:
        """pystray's D-Bus notifier raises when no notification server runs (a bare session, CI),
        and its `hide()` at shutdown would then crash the exit path: log such failures instead."""
        notifier = getattr(icon, "_notifier", None)
        for name in ("notify", "hide"):
            original = getattr(notifier, name, None)
            if original is None:
                continue

            def safe(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
                try:
                    return _original(*args, **kwargs)
                except Exception as exc:
                    log.warning("desktop notification (%s) failed: %s", _name, exc)
                    return None

            setattr(notifier, name, safe)

    # -- signals --------------------------------------------------------------------------------

    def _install_signal_handlers_main(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, lambda *_: self.quit())

    def _install_signal_handlers_glib(self) -> None:
        """GTK's loop runs in C and pystray resets SIGINT to SIG_DFL; GLib's own handler gets both."""
        try:
            from gi.repository import GLib

            for sig in (signal.SIGTERM, signal.SIGINT):
                GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, self._glib_signal)
        except Exception:
            log.exception("could not install signal handlers")

    def _glib_signal(self, *_: Any) -> bool:
        self.quit()
        return True

    # -- quitting -------------------------------------------------------------------------------

    def quit(self) -> None:
        """Stop the tunnel, then the icon; safe from any thread, and more than once."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        log.info("quitting")
        self.engine.quit()
        watchdog = threading.Timer(SHUTDOWN_TIMEOUT_S, self._stop_icon)
        watchdog.daemon = True
        watchdog.start()

    def _engine_finished(self) -> None:
        self._stop_icon()

    def _stop_icon(self) -> None:
        if self._icon_stopped.is_set() or self._icon is None:
            return
        self._icon_stopped.set()
        self._ui(self._icon.stop)

    def _image(self, kind: IconKind) -> Any:
        """The state's icon. pystray's xorg backend pastes it onto black with no alpha mask, which
        shows the colour of fully transparent pixels and jagged edges, so there it is composited
        over black first: a clean dark tile instead of artefacts."""
        image = render(kind, ICON_SIZE)
        if self.caps.backend != "xorg":
            return image
        from PIL import Image

        return Image.alpha_composite(Image.new("RGBA", image.size, (0, 0, 0, 255)), image)

    def _title(self, text: str) -> str:
        """pystray's xorg backend writes the title as a Latin-1 WM_NAME and raises on anything
        else (an ellipsis, a non-Latin profile name): fold to Latin-1 there, keep Unicode elsewhere."""
        if self.caps.backend != "xorg":
            return text
        for uni, ascii_ in (("…", "..."), ("—", "-"), ("–", "-"), ("“", '"'), ("”", '"'), ("’", "'")):
            text = text.replace(uni, ascii_)
        return text.encode("latin-1", "replace").decode("latin-1")

    # -- UI marshalling -------------------------------------------------------------------------

    def _ui(self, fn: Callable[[], Any]) -> None:
        """Run fn where pystray wants it: inline for backends that marshal themselves, else on
        the AppKit main thread. Once pystray's loop has returned nothing is pushed: the xorg
        backend would wait forever for its loop to run the call."""
        if self._loop_done.is_set():
            return
        if self.caps.backend == "darwin" and threading.current_thread() is not threading.main_thread():
            try:
                from PyObjCTools import AppHelper

                AppHelper.callAfter(fn)
                return
            except Exception:
                log.exception("cannot reach the macOS main thread")
                return
        try:
            fn()
        except Exception:
            log.exception("tray UI update failed")

    # -- presentation (engine thread) -----------------------------------------------------------

    def _input(self) -> TrayInput:
        eng = self.engine
        return TrayInput(
            status=eng.status,
            profiles=eng.profiles,
            profile=eng.profile.name if eng.profile is not None else None,
            autostart=self._autostart_state,
            caps=self.caps,
            attention=eng.attention,
            blocked=eng.blocked,
            busy=frozenset(eng.busy | self._ui_busy),
        )

    def _refresh(self) -> None:
        """On the engine thread: recompute, push what changed, and decide on notices.

        Nothing is pushed before the icon is visible: until then pystray's setup thread is
        talking to the backend, and the setup hook refreshes once it is done.
        """
        if self._icon is None or not self._visible.is_set():
            return
        inp = self._input()
        view = present(inp)
        old = self._shown
        self._shown = view
        if old is None or old.icon != view.icon:
            image = self._image(view.icon)
            self._ui(lambda: setattr(self._icon, "icon", image))
        if old is None or old.tooltip != view.tooltip:
            title = self._title(view.tooltip)
            self._ui(lambda: setattr(self._icon, "title", title))
        if old is None or old.menu != view.menu or old.default_action != view.default_action:
            menu = self._build_menu(view.menu)
            self._ui(lambda: setattr(self._icon, "menu", menu))
        if old is None or old.icon != view.icon or old.headline != view.headline:
            log.info("%s [%s]", view.headline, view.icon.value)
        self._notices(view, inp)

    def _notices(self, view: Presentation, inp: TrayInput) -> None:
        if self._stopping.is_set():
            return
        now = time.monotonic()
        self._notify_state, notices, again = notify_step(
            self._notify_state,
            view.icon,
            inp.status,
            now,
            profile=inp.profile or "clawd",
            attention=inp.attention,
        )
        if self._notify_timer is not None:
            self._notify_timer.cancel()
            self._notify_timer = None
        if again is not None:
            self._notify_timer = self.engine.loop.call_later(max(0.0, again - now), self._refresh)
        for notice in notices:
            self.notify(notice)

    def notify(self, notice: Notice) -> None:
        log.info("notice (%s): %s: %s", notice.kind, notice.title, notice.message.replace("\n", " / "))
        if not self.caps.has_notification or self._icon is None:
            return
        self._ui(lambda: self._icon.notify(notice.message, notice.title))

    # -- menu -----------------------------------------------------------------------------------

    def _build_menu(self, model: tuple[MenuItem, ...]) -> Any:
        pystray = self.pystray

        def convert(item: MenuItem) -> Any:
            if item.separator:
                return pystray.Menu.SEPARATOR
            if item.submenu:
                return pystray.MenuItem(item.text, pystray.Menu(*[convert(s) for s in item.submenu]))
            action = self._handler(item.id) if item.id and item.enabled else None
            checked = None if item.checked is None else (lambda _i, value=item.checked: value)
            return pystray.MenuItem(
                item.text,
                action,
                checked=checked,
                radio=item.radio,
                default=item.default,
                enabled=item.enabled,
            )

        if not model:
            return pystray.Menu(pystray.MenuItem("clawd: starting…", None, enabled=False))
        return pystray.Menu(*[convert(i) for i in model])

    def _handler(self, item_id: str) -> Callable[[Any, Any], None]:
        def handler(_icon: Any, _item: Any) -> None:
            try:
                self.activate(item_id)
            except Exception:
                log.exception("menu action %s failed", item_id)

        return handler

    # -- actions (UI thread) ----------------------------------------------------------------------

    def activate(self, item_id: str) -> None:
        """A menu click (or the default click): engine commands, or a desktop action."""
        log.info("menu: %s", item_id)
        status = self.engine.status
        if item_id in (Action.CONNECT.value, Action.DISCONNECT.value, Action.RECONNECT.value):
            self.engine.command(item_id)
        elif item_id == Action.TRUST_HOST_KEY.value:
            self.engine.command("trust-host-key")
        elif item_id.startswith(Action.SELECT_PROFILE.value + ":"):
            self.engine.command("profile", item_id.split(":", 1)[1])
        elif item_id == Action.OPEN_UI.value:
            page = control_ui_url(status)
            if page is not None:
                self._desktop(lambda: open_target(page), f"open {page}")
        elif item_id == Action.COPY_URL.value:
            url = (status or {}).get("localUrl")
            if url:
                use_gtk = self.caps.backend in ("gtk", "appindicator")
                self._desktop(
                    lambda: log.info("copied %s via %s", url, copy_text(url, use_gtk=use_gtk)), "copy"
                )
        elif item_id == Action.DIAGNOSE.value:
            self._diagnose()
        elif item_id == Action.OPEN_LOGS.value:
            self._desktop(lambda: open_target(log_path()), "open the log")
        elif item_id == Action.AUTOSTART.value:
            self._toggle_autostart()
        elif item_id == Action.QUIT.value:
            self.quit()

    def _desktop(self, fn: Callable[[], Any], what: str) -> None:
        try:
            fn()
        except (DesktopError, OSError) as exc:
            log.warning("could not %s: %s", what, exc)
            self.notify(Notice("error", f"clawd: could not {what}", str(exc)))

    def _toggle_autostart(self) -> None:
        want = not bool(self._autostart_state)
        self._ui_busy.add("autostart")
        self.engine.call(self._refresh)

        def work() -> None:
            try:
                self._autostart_state = self.autostart.set(want)
            except DesktopError as exc:
                self._autostart_state = self.autostart.query()
                self.notify(Notice("error", "clawd: start at login", str(exc)))
            finally:
                self._ui_busy.discard("autostart")
                self.engine.call(self._refresh)

        threading.Thread(target=work, name="clawd-autostart", daemon=True).start()

    def _diagnose(self) -> None:
        eng = self.engine

        async def run() -> None:
            eng.busy.add("diagnose")
            self._refresh()
            try:
                report = await eng.diagnose()
            except Exception as exc:
                log.exception("diagnosis failed")
                self.notify(Notice("diagnosis", "clawd doctor failed", str(exc)))
                return
            finally:
                eng.busy.discard("diagnose")
                self._refresh()
            self._show_report(report)

        eng.submit(run())

    def _show_report(self, report: Any) -> None:
        """The doctor's verdict as a notification, and in full in a small text report."""
        lines = [f"clawd doctor: {report.profile}  ({time.strftime('%Y-%m-%d %H:%M:%S')})", ""]
        for hop in report.hops:
            ms = f" ({hop.ms} ms)" if hop.ms is not None else ""
            lines.append(f"[{'ok ' if hop.ok else 'FAIL'}] {hop.name:<12} {hop.detail}{ms}")
        broken = report.first_broken
        if broken:
            lines += ["", f"first broken hop: {broken.name}"] + ([f"fix: {broken.fix}"] if broken.fix else [])
            title = f"clawd doctor: {report.profile}: {broken.name} is broken"
            message = broken.detail + (f"\nFix: {broken.fix}" if broken.fix else "")
        else:
            lines += ["", "all hops ok: the gateway is reachable and accepts this profile's secret"]
            title = f"clawd doctor: {report.profile}: all hops ok"
            message = "The gateway is reachable and accepts this profile's secret."
        path = log_dir() / f"doctor-{report.profile}.txt"
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        except OSError:
            log.exception("cannot write %s", path)
        for line in lines:
            log.info("doctor: %s", line)
        if self.caps.has_notification:
            self.notify(Notice("diagnosis", title, message))
        else:  # no notifications (xorg): show the report itself
            self._desktop(lambda: open_target(path), "open the diagnosis report")


def _enable_stack_dumps(path: Path) -> None:
    """`kill -USR1 <pid>` appends every thread's stack to the log: a hung tray can be diagnosed
    without a debugger (the UI, the engine and pystray's helpers each run in their own thread)."""
    if not hasattr(signal, "SIGUSR1"):
        return
    import faulthandler

    stream = path.open("a", encoding="utf-8")  # kept open for the life of the process
    faulthandler.register(signal.SIGUSR1, file=stream, all_threads=True)


def main(profile: str | None, *, connect: bool = True, backend: str | None = None) -> int:
    """`clawd tray`: configure logging, build the app, run it on this (main) thread."""
    path = setup_logging()
    _enable_stack_dumps(path)
    log.info("clawd tray starting (pid %d, log %s)", os.getpid(), path)
    app = TrayApp(profile=profile, connect=connect, backend=backend)
    return app.run()
