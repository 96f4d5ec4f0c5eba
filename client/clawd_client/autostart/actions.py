"""What `clawd autostart enable|disable` and the tray's "Start at login" checkbox do, end to end.

Enable: migrate older per-profile entries, mark any profiles asked for as up, then write the
agent's entry (and the tray's, when asked). Disable: remove everything clawd starts at login,
so nothing of clawd starts at the next login; `--tray` removes only the tray's entry.
"""

from __future__ import annotations

from collections.abc import Sequence

from .core import Autostart
from .launcher import Launcher, detect_launcher, probe_import
from .migrate import mark_up, migrate_legacy
from .model import Outcome


def enable_login(
    auto: Autostart, launcher: Launcher, *, tray: bool = False, profiles: Sequence[str] = ()
) -> Outcome:
    """The one agent entry (plus the tray's with `tray`), after migrating old per-profile ones.

    Order matters: old entries are stopped before the agent's service starts, so an old
    `clawd connect NAME` cannot hold NAME's lock or port when the agent restores it.
    """
    out = migrate_legacy(auto)
    if profiles:
        out.merge(mark_up(auto, list(profiles), why="marked up"))
    out.merge(auto.enable(auto.spec("agent", launcher)))
    if tray:
        out.merge(auto.enable(auto.spec("tray", launcher)))
    return out


def disable_login(auto: Autostart, *, tray_only: bool = False) -> Outcome:
    """Remove the agent's entry, the tray's (it would start the agent again) and any old
    per-profile ones; with `tray_only`, just the tray's. The agent's remembered up-set is kept:
    it is what `clawd up` and the next agent start restore, not a login setting."""
    if tray_only:
        return auto.disable("tray")
    out = auto.disable("agent")
    tray = auto.mechanism("tray")
    gone = auto.remove_entry(tray, "tray", None, strict=False)
    if gone is not None:
        out.merge(gone)
    legacy = auto.mechanism("headless")
    for entry in auto.legacy(loaded=False):
        if entry.state == "legacy" and entry.profile is not None:
            removed = auto.remove_entry(legacy, "headless", entry.profile)
            if removed is not None:
                out.merge(removed)
    if out.changed:
        out.lines = [line for line in out.lines if not line.endswith("nothing to do")]
    return out


def tray_autostart_enabled(auto: Autostart | None = None) -> bool:
    """For the tray's "Start at login" checkbox: is a clawd-written tray entry in place?"""
    auto = auto or Autostart()
    mech = auto.mechanism("tray")
    text = mech.read("tray")
    return text is not None and mech.ours(text)


def set_tray_autostart(enabled: bool, auto: Autostart | None = None) -> Outcome:
    """The tray's checkbox action: what `clawd autostart enable --tray` / `disable --tray` do.

    Checking it installs the agent's entry too: the tray only shows and steers tunnels the agent
    owns, and a service-managed agent keeps them up when the tray is quit or crashes.
    Raises UserError (with a fix) when it cannot; the caller shows it as a notification.
    """
    auto = auto or Autostart()
    if not enabled:
        return auto.disable("tray")
    launcher = detect_launcher()
    probe_import(launcher.python, auto.host)
    return enable_login(auto, launcher, tray=True)


__all__ = ["disable_login", "enable_login", "set_tray_autostart", "tray_autostart_enabled"]
