"""The pystray adapter: turns presentations into an icon and menu, and clicks into agent commands.

The tray is a client of the clawd agent, which owns every tunnel: it sends commands and shows
state, and decides nothing about a tunnel. Quitting (or crashing) the tray leaves every tunnel
up; "Disconnect all and quit" asks the agent to bring them all down first.

Threads:
- main thread: pystray's `Icon.run()` (required on macOS, where AppKit must own the main thread);
  menu callbacks arrive on the backend's UI thread (GTK: the main thread) and only queue agent
  commands (`AgentLink.send`) or start short desktop actions (xdg-open, clipboard);
- `clawd-agent-link`: the agent's state stream (`agentlink.AgentLink`);
- `clawd-present`: recomputes the `Presentation` whenever the link or a busy flag changes (and
  when a notification's grace period ends), and pushes only what changed to pystray with
  `_ui()`. Never the UI thread: pystray's xorg backend must not be updated from its own loop.

pystray's GTK, AppIndicator, xorg and win32 backends marshal `icon.icon`, `icon.title` and the
menu onto their own loop; its darwin backend does not, and AppKit crashes when touched from
another thread, so there `_ui()` hops to the main thread with `PyObjCTools.AppHelper.callAfter`.
A healthy tunnel costs the UI nothing between state changes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..engine import TunnelStatus
from . import backend as backends
from .agentlink import COMMAND_TIMEOUT_S, AgentLink
from .desktop import AutostartBridge, DesktopError, copy_text, open_target
from .icons import IconKind
from .logfiles import enable_stack_dumps, log_path, setup_logging, write_report
from .notify import Notice, NotifyState, notify_step
from .presenter import (
    Action,
    Caps,
    Presentation,
    TrayInput,
    agent_request,
    parse_item_id,
    present,
)
from .tunnel import control_ui_url, icon_kind
from .widgets import build_menu, guard_gtk_notifier, icon_image, icon_title
from .xorg import harden_xorg_icon

log = logging.getLogger("clawd.tray")

__all__ = ["TrayApp", "main"]

SHUTDOWN_TIMEOUT_S = 10.0


class TrayApp:
    """One tray icon for every profile, as a client of the agent."""

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
        self._preferred = profile
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self._notify: dict[str, NotifyState] = {}
        self._again: float | None = None  # when a notification's grace period ends
        self._shown: Presentation | None = None
        self._icon: Any = None
        self._stopping = threading.Event()
        self._visible = threading.Event()  # pystray's loop runs and the icon is shown
        self._loop_done = threading.Event()  # pystray's loop has returned: nothing may be pushed
        self._wake = threading.Event()
        self._presenter = threading.Thread(target=self._present_loop, name="clawd-present", daemon=True)
        self.link = AgentLink(
            self._changed,
            on_error=lambda title, text: self.notify(Notice("error", title, text)),
            bring_up=(profile,) if profile and connect else (),
        )

    # -- running --------------------------------------------------------------------------------

    def run(self) -> int:
        """Blocks in pystray's loop on this (main) thread until Quit; returns the exit code."""
        caps = self.caps
        log.info(
            "tray backend %s (menu %s, default click %s, notifications %s)",
            caps.backend,
            caps.has_menu,
            caps.has_default_action,
            caps.has_notification,
        )
        if self._backend_note:
            log.warning("%s", self._backend_note)
        explanation = backends.no_menu_explanation(caps, self._backend_note)
        if explanation:
            print(explanation, file=self._stderr, flush=True)
            log.warning("%s", explanation)
        self._autostart_state = self.autostart.query()
        if self._autostart_state is None and self.autostart.problem:
            log.warning("start at login is unavailable: %s", self.autostart.problem)
        self._icon = self.pystray.Icon(
            "clawd",
            icon_image(IconKind.CONNECTING, caps.backend),
            icon_title("clawd · starting…", caps.backend),
            build_menu(self.pystray, (), None, self._handler),
        )
        if caps.backend == "xorg":
            # Here, on the main thread before pystray's loop runs: nothing else uses Xlib yet.
            harden_xorg_icon(self._icon)
        self._install_signal_handlers_main()
        self.link.start()
        self._presenter.start()
        try:
            self._icon.run(setup=self._setup)
        finally:
            self._loop_done.set()
            self._stopping.set()
            self._wake.set()
            clean = self.link.stop(SHUTDOWN_TIMEOUT_S)
            self._presenter.join(SHUTDOWN_TIMEOUT_S)
        log.info("tray exited")
        return 0 if clean else 1

    def _setup(self, icon: Any) -> None:
        """pystray's setup thread: show the icon, then backend-specific fixes."""
        icon.visible = True
        if self.caps.backend in ("gtk", "appindicator"):
            self._install_signal_handlers_glib()
            guard_gtk_notifier(icon)
        log.info("tray icon visible")
        self._visible.set()
        self._changed()  # push whatever the link reached in the meantime

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

    def quit(self, disconnect_all: bool = False) -> None:
        """Stop the icon (every tunnel stays up in the agent); safe from any thread, more than once.

        With `disconnect_all`, the agent first brings every tunnel down; if it cannot, the tray
        says so and stays, rather than quitting with tunnels the user meant to close still up.
        The work runs on a thread of its own: a signal handler or a menu callback must not wait.
        """
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._set_busy("quit", True)
        threading.Thread(target=self._quit, args=(disconnect_all,), name="clawd-quit", daemon=True).start()

    def _quit(self, disconnect_all: bool) -> None:
        if disconnect_all:
            try:
                gone = self.link.send("down", all=True).result(COMMAND_TIMEOUT_S + 5)
                log.info("disconnected all: %s", ", ".join(gone.get("down") or []) or "nothing was up")
            except Exception as exc:
                log.warning("disconnect all failed, not quitting: %s", exc)
                self._stopping.clear()
                self._set_busy("quit", False)
                return
        log.info("quitting (%s)", "tunnels down" if disconnect_all else "tunnels stay up")
        if self._icon is not None:
            self._ui(self._icon.stop)

    # -- presentation (clawd-present thread) ----------------------------------------------------

    def _changed(self) -> None:
        """Something the presentation depends on changed: recompute it on the presenter thread."""
        self._wake.set()

    def _set_busy(self, what: str, on: bool) -> None:
        with self._busy_lock:
            (self._busy.add if on else self._busy.discard)(what)
        self._changed()

    def _input(self) -> TrayInput:
        view = self.link.view()
        with self._busy_lock:
            busy = frozenset(self._busy)
        return TrayInput(
            profiles=view.profiles,
            tunnels=view.tunnels,
            agent=view.agent,
            autostart=self._autostart_state,
            caps=self.caps,
            busy=busy,
            preferred=self._preferred,
            problem=view.problem,
            prefer=view.prefer,
        )

    def _present_loop(self) -> None:
        while not self._loop_done.is_set():
            again = self._again
            self._wake.wait(None if again is None else max(0.0, again - time.monotonic()))
            self._wake.clear()
            if self._loop_done.is_set():
                return
            try:
                self._refresh()
            except Exception:
                log.exception("tray update failed")

    def _refresh(self) -> None:
        """Recompute, push what changed, and decide on notices. Nothing is pushed before the icon
        is visible: until then pystray's setup thread is talking to the backend."""
        if self._icon is None or not self._visible.is_set():
            return
        inp = self._input()
        view = present(inp)
        old = self._shown
        self._shown = view
        if old is None or old.icon != view.icon:
            image = icon_image(view.icon, self.caps.backend)
            self._ui(lambda: setattr(self._icon, "icon", image))
        if old is None or old.tooltip != view.tooltip:
            title = icon_title(view.tooltip, self.caps.backend)
            self._ui(lambda: setattr(self._icon, "title", title))
        if old is None or old.menu != view.menu or old.default_action != view.default_action:
            menu = build_menu(self.pystray, view.menu, view.default_action, self._handler)
            self._ui(lambda: setattr(self._icon, "menu", menu))
        if old is None or old.icon != view.icon or old.headline != view.headline:
            log.info("%s [%s]", view.headline, view.icon.value)
        self._notices(inp)

    def _notices(self, inp: TrayInput) -> None:
        """One notification policy per profile; none while detached (the states are unknown)."""
        self._again = None
        if self._stopping.is_set() or not inp.agent.attached:
            return
        now = time.monotonic()
        up = inp.up()
        for name in sorted(set(self._notify) | set(up)):
            st = up.get(name)
            state, notices, again = notify_step(
                self._notify.get(name, NotifyState()), icon_kind(st), st, now, profile=name
            )
            self._notify[name] = state
            if again is not None:
                self._again = again if self._again is None else min(self._again, again)
            for notice in notices:
                self.notify(notice)

    def notify(self, notice: Notice) -> None:
        log.info("notice (%s): %s: %s", notice.kind, notice.title, notice.message.replace("\n", " / "))
        if not self.caps.has_notification or self._icon is None:
            return
        self._ui(lambda: self._icon.notify(notice.message, notice.title))

    # -- pystray --------------------------------------------------------------------------------

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
            except Exception:
                log.exception("cannot reach the macOS main thread")
            return
        try:
            fn()
        except Exception:
            log.exception("tray UI update failed")

    def _handler(self, item_id: str, arg: str | None) -> Callable[[Any, Any], None]:
        def handler(_icon: Any, _item: Any) -> None:
            try:
                self.activate(item_id, arg)
            except Exception:
                log.exception("menu action %s failed", item_id)

        return handler

    # -- actions (UI thread) --------------------------------------------------------------------

    def activate(self, item_id: str, arg: str | None = None) -> None:
        """A menu click (or the default click): an agent command, or a desktop action.

        `arg` is what the item showed: the fingerprint the user accepts, the URL to open or copy;
        for a plain click (no menu) it comes from the state the click was decided on.
        """
        log.info("menu: %s", item_id)
        action, name = parse_item_id(item_id)
        st = self._status_of(name)
        request = agent_request(action, name, arg)  # up, down, reconnect, trust, pin
        if request is not None:
            op, params = request
            self.link.send(op, **params)
        elif action is Action.OPEN_UI:
            page = arg or control_ui_url(st.local_url if st else None)
            if page:
                self._desktop(lambda: open_target(page), f"open {page}")
        elif action is Action.COPY_URL:
            url = arg or (st.local_url if st else None)
            if url:
                use_gtk = self.caps.backend in ("gtk", "appindicator")
                self._desktop(
                    lambda: log.info("copied %s via %s", url, copy_text(url, use_gtk=use_gtk)), "copy"
                )
        elif action is Action.DIAGNOSE and name:
            self._diagnose(name)
        elif action is Action.OPEN_LOGS:
            self._desktop(lambda: open_target(log_path()), "open the log")
        elif action is Action.AUTOSTART:
            self._toggle_autostart()
        elif action is Action.QUIT:
            self.quit()
        elif action is Action.DISCONNECT_ALL_QUIT:
            self.quit(disconnect_all=True)

    def _status_of(self, name: str | None) -> TunnelStatus | None:
        return self.link.view().tunnels.get(name) if name else None

    def _desktop(self, fn: Callable[[], Any], what: str) -> None:
        try:
            fn()
        except (DesktopError, OSError) as exc:
            log.warning("could not %s: %s", what, exc)
            self.notify(Notice("error", f"clawd: could not {what}", str(exc)))

    def _toggle_autostart(self) -> None:
        want = not bool(self._autostart_state)
        self._set_busy("autostart", True)

        def work() -> None:
            try:
                self._autostart_state = self.autostart.set(want)
            except DesktopError as exc:
                self._autostart_state = self.autostart.query()
                self.notify(Notice("error", "clawd: start at login", str(exc)))
            finally:
                self._set_busy("autostart", False)

        threading.Thread(target=work, name="clawd-autostart", daemon=True).start()

    def _diagnose(self, name: str) -> None:
        """The agent runs `clawd doctor` for the profile; the verdict comes back as a notification
        (or, where there are none, as the report itself opened for the user)."""
        busy = f"diagnose:{name}"
        with self._busy_lock:
            if busy in self._busy:
                return  # one at a time per profile: a second click waits for the first verdict
        self._set_busy(busy, True)

        def work() -> None:
            try:
                report = self.link.diagnose(name)
            except Exception:
                return  # already reported by the link
            finally:
                self._set_busy(busy, False)
            path, notice = write_report(report)
            if self.caps.has_notification:
                self.notify(notice)
            else:
                self._desktop(lambda: open_target(path), "open the diagnosis report")

        threading.Thread(target=work, name="clawd-diagnose", daemon=True).start()


def main(profile: str | None, *, connect: bool = True, backend: str | None = None) -> int:
    """`clawd tray`: configure logging, build the app, run it on this (main) thread."""
    path = setup_logging()
    enable_stack_dumps(path)
    log.info("clawd tray starting (pid %d, log %s)", os.getpid(), path)
    return TrayApp(profile=profile, connect=connect, backend=backend).run()
