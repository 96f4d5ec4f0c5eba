"""Two fixes for pystray's plain-X11 (`xorg`) backend, applied to the Icon before its loop runs.

Why: this is the backend every Linux user gets without PyGObject, so it must at least be
reliable, and as shipped (pystray 0.19.5, python-xlib 0.33) it is not:

1. Clicks never arrive. Its window selects only Exposure and StructureNotify events, so the
   tray host receives the ButtonPress and the default action never runs (ci-recipes.md 4a).
2. It can deadlock. pystray sends UI updates from other threads (the setup thread, our engine
   thread) as a ClientMessage on the *shared* Xlib connection and flushes it there, while the
   loop thread may be inside an event handler waiting for a reply (Expose -> get_geometry).
   python-xlib's threaded send/receive hand-over can then leave the loop thread waiting for a
   reply forever while the sender waits for the loop: the icon freezes and ignores clicks.
   Seen here about once in 40 starts, with both stacks in the log (`kill -USR1`).
   The fix serialises the two: one lock held while a non-loop thread sends and flushes its
   message, and while the loop thread runs any event handler.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("clawd.tray")

__all__ = ["harden_xorg_icon"]

# The methods pystray's xorg Icon marshals onto its loop thread (its _rewrite_implementation).
DISPATCHED = ("_show", "_hide", "_update_icon", "_update_title", "_stop")


def harden_xorg_icon(icon: Any) -> bool:
    """Enable clicks and make cross-thread updates safe; call on the main thread before run().

    Returns False (and logs) when pystray's internals are not what this was written against,
    in which case the icon is left as pystray made it.
    """
    try:
        from Xlib import X

        display = icon._display
        window = icon._window
        handlers = icon._message_handlers
        queue = icon._queue
        cls = type(icon)
        originals = {name: getattr(cls, name).__get__(icon, cls) for name in DISPATCHED}
    except (ImportError, AttributeError) as exc:
        log.warning("pystray's xorg backend is not the expected version (%s); not hardening it", exc)
        return False

    window.change_attributes(event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask)
    display.flush()

    lock = threading.RLock()

    def make_dispatch(name: str) -> Any:
        original = originals[name]
        atom = display.intern_atom(f"_PYSTRAY_{name.upper()}")  # the atom pystray's loop handles

        def dispatch() -> None:
            loop_thread = getattr(icon, "_thread", None)
            if loop_thread is not None and threading.current_thread().ident == loop_thread.ident:
                original()
                return
            with lock:
                icon._send_message(window, atom)
                display.flush()
            result = queue.get()  # put by pystray's loop after it ran `original`
            if result is not True:
                raise result[1].with_traceback(result[2])

        return dispatch

    for name in DISPATCHED:
        setattr(icon, name, make_dispatch(name))

    def locked(handler: Any) -> Any:
        def run(event: Any) -> Any:
            with lock:
                return handler(event)

        return run

    for event_type, handler in list(handlers.items()):
        handlers[event_type] = locked(handler)
    return True
