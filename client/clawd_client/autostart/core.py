"""`Autostart`: write, remove and judge one platform's login entries.

One entry starts the agent (the process that owns every tunnel and brings back the ones that
were up); the tray, a client of that agent, may have its own. Mixing launchers for the same
tunnel caused duplicate processes and port races in peers (tailscale#17656, openclaw#67544), so
there is exactly one agent entry per user: on Linux, a systemd --user unit where systemd is the
init and an XDG autostart entry otherwise, and writing one removes the other.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from collections.abc import Mapping

from clawd_gateway.errors import UserError

from .launchd import LaunchAgent
from .launcher import Launcher
from .mechanisms import Mechanism, RunKeyValue, XdgAutostart
from .model import Entry, Other, Outcome
from .names import (
    LEGACY_DARWIN,
    LEGACY_LINUX,
    MIGRATE_COMMAND,
    Mode,
    flag,
    platform_family,
    title,
    valid_profile_name,
)
from .quoting import display_command
from .spec import CARRIED_ENV, Spec, make_spec
from .system import Host, RunKey, home_dir, xdg_config_home
from .systemd_user import SystemdUser


class Autostart:
    """enable / disable / status for one platform, environment and host."""

    def __init__(
        self,
        platform: str | None = None,
        env: Mapping[str, str] | None = None,
        host: Host | None = None,
        run_key: RunKey | None = None,
    ) -> None:
        self.platform = sys.platform if platform is None else platform
        self.family = platform_family(self.platform)
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.host = host or Host()
        self.run_key = run_key

    # -- where entries live ----------------------------------------------------------------------

    def mechanism(self, mode: Mode) -> Mechanism:
        """Where this OS keeps `mode`'s entry (for the agent on Linux: where it goes now)."""
        if self.family == "darwin":
            return LaunchAgent(self.host, self.env)
        if self.family == "win32":
            return RunKeyValue(self.host, self.env, self.run_key)
        if mode == "tray":
            return XdgAutostart(self.host, self.env)
        if mode == "headless" or self.host.systemd_booted():
            return SystemdUser(self.host, self.env)
        return XdgAutostart(self.host, self.env)

    def agent_places(self) -> list[Mechanism]:
        """Every place an agent entry may be, the current one first (Linux has two)."""
        current = self.mechanism("agent")
        if self.family != "linux":
            return [current]
        other: Mechanism = (
            XdgAutostart(self.host, self.env)
            if isinstance(current, SystemdUser)
            else SystemdUser(self.host, self.env)
        )
        return [current, other]

    def spec(self, mode: Mode, launcher: Launcher) -> Spec:
        """The entry this clawd would write for `mode` here (the agent's command depends on
        whether a service manager runs it)."""
        foreground = self.mechanism(mode).supervised
        return make_spec(mode, launcher, self.platform, self.env, foreground=foreground)

    def render(self, spec: Spec) -> tuple[str, str]:
        """(location, content) for `enable --print`."""
        mech = self.mechanism(spec.mode)
        return mech.location(spec.mode), mech.render(spec)

    def notes(self, spec: Spec) -> list[str]:
        """Caveats worth saying at enable time."""
        notes = []
        if self.family == "win32":
            for name in CARRIED_ENV:
                if self.env.get(name):
                    notes.append(
                        f"{name} is set in this shell, but a Run-key entry cannot carry it: "
                        f'make it a user variable (setx {name} "{self.env[name]}")'
                    )
            if spec.mode == "agent" and os.name == "nt" and not hasattr(socket, "AF_UNIX"):
                notes.append(
                    "this Python has no Unix sockets, which the agent's control API needs; "
                    "until it does, the entry starts nothing useful"
                )
        return notes

    # -- one entry ---------------------------------------------------------------------------------

    def enable(self, spec: Spec) -> Outcome:
        """Write (and load) `spec`'s entry; a no-op when it is already exactly that."""
        mech = self.mechanism(spec.mode)
        where = mech.location(spec.mode)
        text = mech.render(spec)
        old = mech.read(spec.mode)
        out = Outcome()
        if old is not None and not mech.ours(old):
            raise UserError(
                f"{where} exists and was not written by clawd; leaving it alone",
                fix=f"move it away, then: clawd autostart enable{flag(spec.mode)}",
            )
        if spec.mode == "agent":
            for other in self.agent_places()[1:]:  # the agent's entry in the place it no longer goes
                gone = self.remove_entry(other, "agent", None, strict=False)
                if gone is not None:
                    out.merge(gone)
        changed = old != text
        if not changed:
            out.lines.append(f"{spec.title} autostart already enabled: {where} is up to date")
        else:
            before = mech.argv_of(old) if old is not None else None
            mech.write(spec.mode, text)
            out.changed = True
            verb = "updated" if old is not None else "wrote"
            was = f" (it ran: {' '.join(before)})" if before and before != list(spec.argv) else ""
            out.lines.append(f"enabled {spec.title} autostart ({mech.name}): {verb} {where}{was}")
        out.lines.append(f"  runs: {display_command(spec.argv, windows=self.family == 'win32')}")
        mech.after_write(spec, changed, out)
        out.notes += self.notes(spec)
        return out

    def disable(self, mode: Mode) -> Outcome:
        """Remove (and unload) `mode`'s entry, wherever this OS may keep it."""
        places = self.agent_places() if mode == "agent" else [self.mechanism(mode)]
        out = Outcome()
        for i, mech in enumerate(places):
            gone = self.remove_entry(mech, mode, None, strict=i == 0)
            if gone is not None:
                out.merge(gone)
        if not out.changed:
            where = places[0].location(mode)
            out.lines.append(f"{mode} autostart was not enabled (no {where}): nothing to do")
        return out

    def remove_entry(
        self, mech: Mechanism, mode: Mode, profile: str | None, *, strict: bool = True
    ) -> Outcome | None:
        """Stop and remove one entry the way the code that wrote it would; None when there is none
        (or, unless `strict`, when the file there is not ours: it is left alone without a word)."""
        old = mech.read(mode, profile)
        if old is None:
            return None
        where = mech.location(mode, profile)
        if not mech.ours(old):
            if not strict:
                return None
            raise UserError(
                f"{where} was not written by clawd; leaving it alone",
                fix="remove it yourself if you no longer want it",
            )
        out = Outcome()
        mech.before_remove(mode, profile, out)
        mech.remove(mode, profile)
        out.changed = True
        out.lines.insert(0, f"disabled {title(mode, profile)} autostart: removed {where}")
        mech.after_remove(mode, profile, out)
        return out

    # -- what is there ------------------------------------------------------------------------------

    def status(self, launcher: Launcher | None, mode: Mode | None = None) -> list[Entry]:
        """The agent and tray entries that exist (or the one asked about), judged against `launcher`."""
        entries = []
        if mode in (None, "agent"):
            for mech in self.agent_places():
                text = mech.read("agent")
                if text is not None:
                    entries.append(self._judge(mech, "agent", text, launcher))
        if mode in (None, "tray"):
            mech = self.mechanism("tray")
            text = mech.read("tray")
            if text is not None:
                entries.append(self._judge(mech, "tray", text, launcher))
        return entries

    def legacy(self, *, loaded: bool = True) -> list[Entry]:
        """Per-profile entries written by older versions (`clawd connect NAME` at login); with
        `loaded`, also ask launchd/systemd whether each is running (status wants to know)."""
        mech = self.mechanism("headless")
        found = []
        for profile in mech.legacy_profiles():
            if not valid_profile_name(profile):
                continue
            text = mech.read("headless", profile)
            if text is None:
                continue
            entry = Entry("headless", profile, mech.name, mech.location("headless", profile), "legacy")
            entry.command = mech.argv_of(text)
            if mech.ours(text):
                entry.loaded = mech.loaded("headless", profile) if loaded else None
                entry.reason = (
                    f"replaced by the one agent entry; migrate it (the agent then brings {profile} "
                    f"back at login): {MIGRATE_COMMAND}"
                )
            else:
                entry.state, entry.reason = "foreign", "not written by clawd (left alone)"
            found.append(entry)
        return found

    def _judge(self, mech: Mechanism, mode: Mode, text: str, launcher: Launcher | None) -> Entry:
        where = mech.location(mode)
        argv = mech.argv_of(text)
        entry = Entry(mode, None, mech.name, where, "current", command=argv)
        if not mech.ours(text):
            entry.state, entry.reason = "foreign", "not written by clawd (left alone)"
            return entry
        entry.loaded = mech.loaded(mode)
        python = argv[0] if argv else None
        current = self.mechanism(mode)
        if python is None:
            entry.state, entry.reason = "stale", "cannot read the command it runs"
        elif (self.family == "win32") == (os.name == "nt") and not os.path.exists(python):
            entry.state, entry.reason = "stale", f"its interpreter {python} no longer exists"
        elif type(mech) is not type(current):
            entry.state = "stale"
            entry.reason = f"this machine now gets a {current.name} entry instead"
        elif launcher is not None:
            try:
                expected = self.spec(mode, launcher)
                wanted = mech.render(expected)
            except UserError as exc:  # the current interpreter could not be written at all
                entry.state, entry.reason = "stale", str(exc)
                return entry
            if python != expected.argv[0]:
                entry.state = "stale"
                entry.reason = f"runs {python}, not the current interpreter {expected.argv[0]}"
            elif wanted != text:
                entry.state = "stale"
                entry.reason = "differs from what this clawd would write (environment or version changed)"
        if entry.state == "stale":
            entry.reason = (entry.reason or "") + f"; refresh: clawd autostart enable{flag(mode)}"
        return entry

    def others(self) -> list[Other]:
        """Hand-made tunnel launchers from the seed tutorial: they hold the same local port."""
        found = []
        if self.family == "darwin":
            for label in LEGACY_DARWIN:
                path = home_dir(self.env) / "Library" / "LaunchAgents" / f"{label}.plist"
                if path.exists():
                    fix = f"launchctl bootout gui/$(id -u)/{label} && rm {shlex.quote(str(path))}"
                    found.append(Other(str(path), fix))
        elif self.family == "linux":
            for name in LEGACY_LINUX:
                path = xdg_config_home(self.env) / "systemd" / "user" / name
                if path.exists():
                    fix = f"systemctl --user disable --now {name} && rm {shlex.quote(str(path))}"
                    found.append(Other(str(path), fix))
        return found


__all__ = ["Autostart"]
