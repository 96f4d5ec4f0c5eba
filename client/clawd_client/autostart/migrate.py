"""From per-profile login entries to the agent's one: remove each, and keep its profile up.

Older versions started `clawd connect NAME` at login, one entry per profile. Now `connect` is a
client of the agent, so such an entry would start an agent inside the entry's own service
(systemd kills it with the unit; launchd with the job) and fight the agent's own entry. For
each one found, `clawd autostart enable` stops and removes it exactly as the old `disable`
did, then adds NAME to the agent's remembered up-set (agent.json), which the agent restores
when it starts (for profiles with autoconnect), so NAME keeps coming up at login.
"""

from __future__ import annotations

from collections.abc import Sequence

from clawd_gateway.errors import UserError

from .core import Autostart
from .model import Migrated, Outcome


def profile_notes(names: Sequence[str]) -> tuple[set[str], dict[str, str]]:
    """(profiles that no longer exist, why the agent will not bring a profile back)."""
    from ..profiles import ProfileStore

    try:
        profiles = ProfileStore().load()
    except UserError as exc:
        return set(), dict.fromkeys(names, f"cannot read the profiles to check it ({exc})")
    missing: set[str] = set()
    notes = {}
    for name in names:
        profile = profiles.get(name)
        if profile is None:
            missing.add(name)
            notes[name] = "no such profile any more, so there is nothing to bring back"
        elif not profile.autoconnect:
            notes[name] = (
                "its autoconnect is off, so the agent will not bring it back at login "
                f"(re-add it without --no-autoconnect, or run: clawd up {name})"
            )
    return missing, notes


def mark_up(
    auto: Autostart,
    names: Sequence[str],
    *,
    why: str,
    checked: tuple[set[str], dict[str, str]] | None = None,
) -> Outcome:
    """Make the agent bring `names` back at its next start, and now if one is running.

    Both, because a running agent rewrites agent.json from its own set on every up/down: a name
    only written to the file would be dropped by the next `clawd down` of anything else.
    """
    out = Outcome()
    if not names:
        return out
    from ..agent.host import remember_up

    missing, notes = checked if checked is not None else profile_notes(names)
    live = [n for n in names if n not in missing]  # one unknown name would fail the whole `up`
    for name in names:
        if name in notes:
            out.notes.append(f"{name}: {notes[name]}")
    if not live:
        return out
    try:
        added = remember_up(live)
    except OSError as exc:
        out.ok = False
        out.lines.append(f"could not record {', '.join(live)} in the agent's up-set: {exc}")
        return out
    out.marked_up = live
    out.changed = bool(added)
    if auto.host.agent_pid() is not None:
        problem = auto.host.agent_up(live)
        if problem is None:
            out.lines.append(f"  the running agent brings {', '.join(live)} up now")
        else:
            out.notes.append(f"the running agent did not take {', '.join(live)}: {problem}")
    if added:
        out.lines.insert(0, f"{why}: the agent brings {', '.join(added)} back when it starts (agent.json)")
    return out


def migrate_legacy(auto: Autostart) -> Outcome:
    """Remove every old per-profile entry clawd wrote, and mark its profile up in the agent."""
    out = Outcome()
    mech = auto.mechanism("headless")
    moved: list[str] = []
    for entry in auto.legacy(loaded=False):
        if entry.state != "legacy" or entry.profile is None:
            continue  # a stranger's file with one of our names: reported by status, never touched
        gone = auto.remove_entry(mech, "headless", entry.profile)
        if gone is None:
            continue
        gone.lines[0] = gone.lines[0].replace("disabled", "migrated", 1)
        out.merge(gone)
        out.migrated.append(Migrated(entry.profile, entry.mechanism, entry.location))
        moved.append(entry.profile)
    if moved:
        checked = profile_notes(moved)
        for item in out.migrated:
            item.note = checked[1].get(item.profile)
        out.merge(mark_up(auto, moved, why="migrated", checked=checked))
        out.changed = True
    return out


__all__ = ["mark_up", "migrate_legacy", "profile_notes"]
