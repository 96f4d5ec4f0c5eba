"""pystray widgets from the tray's pure values: the icon image, the title, the menu.

Why apart from the adapter: each works around a quirk of one pystray backend (xorg's missing
alpha mask and Latin-1 titles, GTK's notifier without a notification server, the click that
only reaches a top-level default item), and those fixes are easier to check one by one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .icons import ICON_SIZE, IconKind, render
from .presenter import MenuItem

log = logging.getLogger("clawd.tray")

__all__ = ["build_menu", "guard_gtk_notifier", "icon_image", "icon_title"]

Handler = Callable[[str, str | None], Callable[[Any, Any], None]]


def icon_image(kind: IconKind, backend: str) -> Any:
    """The state's icon. pystray's xorg backend pastes it onto black with no alpha mask, which
    shows the colour of fully transparent pixels and jagged edges, so there it is composited
    over black first: a clean dark tile instead of artefacts."""
    image = render(kind, ICON_SIZE)
    if backend != "xorg":
        return image
    from PIL import Image

    return Image.alpha_composite(Image.new("RGBA", image.size, (0, 0, 0, 255)), image)


def icon_title(text: str, backend: str) -> str:
    """pystray's xorg backend writes the title as a Latin-1 WM_NAME and raises on anything
    else (an ellipsis, a non-Latin profile name): fold to Latin-1 there, keep Unicode elsewhere."""
    if backend != "xorg":
        return text
    for uni, ascii_ in (("…", "..."), ("—", "-"), ("–", "-"), ("“", '"'), ("”", '"'), ("’", "'")):
        text = text.replace(uni, ascii_)
    return text.encode("latin-1", "replace").decode("latin-1")


def build_menu(pystray: Any, model: tuple[MenuItem, ...], default: str | None, handler: Handler) -> Any:
    """pystray's menu for the model. A plain click runs the top-level default item, so when the
    default lives in a profile's submenu (or nowhere) a hidden top-level item carries it."""

    def convert(item: MenuItem) -> Any:
        if item.separator:
            return pystray.Menu.SEPARATOR
        if item.submenu:
            return pystray.MenuItem(item.text, pystray.Menu(*[convert(s) for s in item.submenu]))
        action = handler(item.id, item.arg) if item.id and item.enabled else None
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
    items = [convert(i) for i in model]
    if default is not None and not any(i.default for i in model):
        items.append(pystray.MenuItem("", handler(default, None), default=True, visible=False))
    return pystray.Menu(*items)


def guard_gtk_notifier(icon: Any) -> None:
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
