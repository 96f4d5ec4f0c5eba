"""macOS: LaunchAgents in ~/Library/LaunchAgents, loaded into the GUI domain with launchctl.

The agent's job is kept alive (respawned after a failed exit only); the tray's runs once per
login in the Aqua session. Older versions' `ai.clawd.connect.PROFILE` jobs are booted out and
removed by the migration, exactly as their own `disable` did.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from .mechanisms import HANDOVER, Mechanism
from .model import Outcome
from .names import LABEL_PREFIX, PACKAGE, Mode, launchd_label
from .render import launchd_plist, plist_argv, plist_text
from .spec import Spec
from .system import home_dir


class LaunchAgent(Mechanism):
    name = "launchagent"
    supervised = True

    def agents_dir(self) -> Path:
        return home_dir(self.env) / "Library" / "LaunchAgents"

    def log_dir(self) -> Path:
        return home_dir(self.env) / "Library" / "Logs" / "clawd"

    def path(self, mode: Mode, profile: str | None = None) -> Path:
        return self.agents_dir() / f"{launchd_label(mode, profile)}.plist"

    def legacy_profiles(self) -> list[str]:
        prefix = f"{LABEL_PREFIX}.connect."
        return sorted(
            p.name[len(prefix) : -len(".plist")] for p in self.agents_dir().glob(f"{prefix}*.plist")
        )

    def render(self, spec: Spec) -> str:
        return plist_text(launchd_plist(spec, self.log_dir()))

    def argv_of(self, text: str) -> list[str] | None:
        return plist_argv(text)

    def ours(self, text: str) -> bool:
        argv = plist_argv(text)
        return bool(argv) and PACKAGE in (argv or [])

    def _launchctl(self) -> str | None:
        return self.host.which("launchctl")

    def _target(self, mode: Mode, profile: str | None = None) -> str:
        return f"gui/{self.host.uid()}/{launchd_label(mode, profile)}"

    def loaded(self, mode: Mode, profile: str | None = None) -> bool | None:
        tool = self._launchctl()
        if not tool:
            return None
        return self.host.run([tool, "print", self._target(mode, profile)]).returncode == 0

    def write(self, mode: Mode, text: str) -> None:
        self.log_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
        super().write(mode, text)

    def after_write(self, spec: Spec, changed: bool, out: Outcome) -> None:
        path = self.path(spec.mode)
        domain = f"gui/{self.host.uid()}"
        target = self._target(spec.mode)
        bootstrap = f"launchctl bootstrap gui/$(id -u) {shlex.quote(str(path))}"
        tool = self._launchctl()
        if not tool:
            out.lines.append("launchctl not found (not macOS?): it loads at the next login")
            out.suggest([bootstrap])
            return
        loaded = self.host.run([tool, "print", target]).returncode == 0
        if loaded and not changed:
            out.lines.append(f"already loaded in launchd ({target})")
            return
        if not loaded and spec.mode == "agent" and self._agent_elsewhere(out) is not None:
            # Loading now would start a second agent that exits at once and is respawned forever.
            self.host.run([tool, "enable", target])
            out.lines.append("to hand its tunnels over to launchd now:")
            out.suggest([HANDOVER + bootstrap])
            return
        if loaded:  # reload so launchd runs the new command line
            self.host.run([tool, "bootout", target])
        self.host.run([tool, "enable", target])  # undo an earlier `launchctl disable`, if any
        res = self.host.run([tool, "bootstrap", domain, str(path)])
        if res.returncode != 0:
            out.ok = False
            out.lines.append(
                f"launchctl bootstrap {domain} {path} failed (exit {res.returncode}): "
                f"{(res.stderr or res.stdout).strip()}"
            )
            return
        out.changed = True
        out.lines.append(f"loaded into launchd as {target}; logs in {self.log_dir()}")

    def before_remove(self, mode: Mode, profile: str | None, out: Outcome) -> None:
        tool = self._launchctl()
        target = self._target(mode, profile)
        if not tool:
            out.lines.append("launchctl not found (not macOS?): removed the file only")
            return
        if self.host.run([tool, "print", target]).returncode != 0:
            return
        res = self.host.run([tool, "bootout", target])
        if res.returncode == 0:
            out.lines.append(f"unloaded {target} from launchd")
        else:
            out.ok = False
            out.lines.append(
                f"launchctl bootout {target} failed (exit {res.returncode}): "
                f"{(res.stderr or res.stdout).strip()}"
            )

    def after_remove(self, mode: Mode, profile: str | None, out: Outcome) -> None:
        logs = self.log_dir()
        try:
            logs.rmdir()  # only if empty: logs are the user's to keep
        except OSError:
            if logs.is_dir():
                out.lines.append(f"logs kept in {logs}")


__all__ = ["LaunchAgent"]
