"""What enable/disable/status report: kept as data so the CLI prints lines or JSON from one source."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .names import Mode


@dataclass
class Migrated:
    """One old per-profile entry that `enable` removed, and what became of its profile."""

    profile: str
    mechanism: str
    location: str
    removed: bool = True
    note: str | None = None  # why the agent will not bring it back (no such profile, autoconnect off)

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "mechanism": self.mechanism,
            "location": self.location,
            "removed": self.removed,
            "note": self.note,
        }


@dataclass
class Outcome:
    """What enable/disable did: lines to print, commands left for the user, and success."""

    ok: bool = True
    changed: bool = False
    lines: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    migrated: list[Migrated] = field(default_factory=list)
    marked_up: list[str] = field(default_factory=list)  # profiles added to the agent's up-set

    def suggest(self, commands: Sequence[str]) -> None:
        """Commands left for the user: kept as data (todo) and shown indented where they belong."""
        self.todo += commands
        self.lines += [f"  {c}" for c in commands]

    def merge(self, other: Outcome) -> Outcome:
        self.ok = self.ok and other.ok
        self.changed = self.changed or other.changed
        self.lines += other.lines
        self.todo += other.todo
        self.notes += other.notes
        self.migrated += other.migrated
        self.marked_up += [n for n in other.marked_up if n not in self.marked_up]
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "changed": self.changed,
            "migrated": [m.to_json() for m in self.migrated],
            "markedUp": list(self.marked_up),
            "todo": list(self.todo),
            "notes": list(self.notes),
            "lines": list(self.lines),
        }


@dataclass
class Entry:
    """One login entry as `status` sees it."""

    mode: Mode
    profile: str | None
    mechanism: str
    location: str
    # "current", "stale", "foreign" (exists but not written by clawd) or "legacy" (an old
    # per-profile entry that `clawd autostart enable` migrates)
    state: str
    reason: str | None = None
    command: list[str] | None = None
    loaded: bool | None = None  # launchd/systemd say it is loaded/active; None: cannot tell

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "profile": self.profile,
            "mechanism": self.mechanism,
            "location": self.location,
            "state": self.state,
            "reason": self.reason,
            "command": self.command,
            "loaded": self.loaded,
        }


@dataclass
class Other:
    """A launcher clawd did not write that starts a tunnel on the same port (seed tutorial)."""

    location: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"location": self.location, "fix": self.fix}


__all__ = ["Entry", "Migrated", "Other", "Outcome"]
