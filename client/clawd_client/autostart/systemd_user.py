"""Linux with systemd: the agent as a `systemd --user` service (journal logs, restart on failure).

Everything that acts goes through `systemctl --user`, and only when a user manager answers and
reads units from the directory we write to; otherwise the unit is written and the commands to
run in the login session are printed. Older versions' `clawd-connect-PROFILE.service` units are
stopped, disabled and removed by the migration, exactly as their own `disable` did.
"""

from __future__ import annotations

import os
from pathlib import Path

from .mechanisms import HANDOVER, Mechanism
from .model import Outcome
from .names import UNIT_PREFIX, Mode, systemd_unit_name
from .render import systemd_unit, systemd_unit_argv
from .spec import Spec
from .system import xdg_config_home


class SystemdUser(Mechanism):
    name = "systemd-user"
    supervised = True

    def unit_dir(self) -> Path:
        return xdg_config_home(self.env) / "systemd" / "user"

    def path(self, mode: Mode, profile: str | None = None) -> Path:
        return self.unit_dir() / systemd_unit_name(mode, profile)

    def legacy_profiles(self) -> list[str]:
        return sorted(
            p.name[len(UNIT_PREFIX) : -len(".service")]
            for p in self.unit_dir().glob(f"{UNIT_PREFIX}*.service")
            if "@" not in p.name
        )

    def render(self, spec: Spec) -> str:
        return systemd_unit(spec)

    def argv_of(self, text: str) -> list[str] | None:
        return systemd_unit_argv(text)

    def manager(self) -> tuple[str | None, str]:
        """systemctl, if a user manager answers AND reads units from our directory; else why not.

        The second check matters whenever XDG_CONFIG_HOME differs between this shell and the
        manager (tests, `sudo -u`, a one-off override): enabling there would act on other files.
        """
        tool = self.host.which("systemctl")
        if not tool:
            return None, "systemctl not found"
        res = self.host.run([tool, "--user", "show-environment"], timeout=5)
        if res.returncode != 0:
            why = (res.stderr or res.stdout).strip().splitlines()
            return None, "no systemd user manager answers" + (f" ({why[0]})" if why else "")
        manager_env = dict(
            line.split("=", 1) for line in res.stdout.splitlines() if "=" in line and not line[0].isspace()
        )
        theirs = xdg_config_home(manager_env) / "systemd" / "user"
        if os.path.abspath(theirs) != os.path.abspath(self.unit_dir()):
            return None, f"the user manager reads units from {theirs}, not {self.unit_dir()}"
        return tool, ""

    def loaded(self, mode: Mode, profile: str | None = None) -> bool | None:
        tool, _ = self.manager()
        if not tool:
            return None
        unit = systemd_unit_name(mode, profile)
        return self.host.run([tool, "--user", "is-active", unit], timeout=5).returncode == 0

    def after_write(self, spec: Spec, changed: bool, out: Outcome) -> None:
        unit = systemd_unit_name(spec.mode)
        tool, why = self.manager()
        if tool is None:
            out.lines.append(f"did not start it: {why}; run these in your login session:")
            out.suggest(["systemctl --user daemon-reload", f"systemctl --user enable --now {unit}"])
            self._linger_note(out)
            return
        steps = [[tool, "--user", "daemon-reload"]] if changed else []
        active = self.host.run([tool, "--user", "is-active", unit], timeout=5).returncode == 0
        handover = not active and self._agent_elsewhere(out) is not None
        if handover:  # starting now would only meet the running agent's lock and fail
            steps.append([tool, "--user", "enable", unit])
        else:
            steps.append([tool, "--user", "enable", "--now", unit])
            if changed and active:  # a running unit keeps its old command line until restarted
                steps.append([tool, "--user", "try-restart", unit])
        for step in steps:
            res = self.host.run(step)
            if res.returncode != 0:
                out.ok = False
                why = (res.stderr or res.stdout).strip()
                out.lines.append(f"{' '.join(step[1:])} failed (exit {res.returncode}): {why}")
                return
        if handover:
            out.lines.append(f"enabled {unit} for the next login; to hand the tunnels over to it now:")
            out.suggest([f"{HANDOVER}systemctl --user start {unit}"])
        else:
            out.lines.append(f"enabled and started {unit}; logs: journalctl --user -u {unit}")
        self._linger_note(out)

    def _linger_note(self, out: Outcome) -> None:
        try:
            user = self.host.user()
        except (OSError, KeyError):
            user = "$USER"
        if not Path("/var/lib/systemd/linger", user).exists():
            out.notes.append(
                f"to run it from boot, before you log in: loginctl enable-linger {user} "
                "(the keyring holding the gateway secrets must then be unlocked without a login)"
            )

    def _wants_link(self, mode: Mode, profile: str | None) -> Path:
        return self.unit_dir() / "default.target.wants" / systemd_unit_name(mode, profile)

    def before_remove(self, mode: Mode, profile: str | None, out: Outcome) -> None:
        unit = systemd_unit_name(mode, profile)
        tool, why = self.manager()
        if tool is None:
            # Do what `systemctl disable` would: drop the WantedBy symlink if it points at our file.
            link = self._wants_link(mode, profile)
            if link.is_symlink() and Path(os.path.abspath(link.parent / os.readlink(link))) == self.path(
                mode, profile
            ):
                link.unlink()
                out.lines.append(f"removed {link}")
            out.lines.append(f"did not stop it: {why}; if it is running, in your login session run:")
            out.suggest([f"systemctl --user stop {unit}", "systemctl --user daemon-reload"])
            return
        res = self.host.run([tool, "--user", "disable", "--now", unit])
        if res.returncode != 0:
            out.ok = False
            out.lines.append(f"systemctl --user disable --now {unit} failed: {(res.stderr or '').strip()}")
        else:
            out.lines.append(f"stopped and disabled {unit}")

    def after_remove(self, mode: Mode, profile: str | None, out: Outcome) -> None:
        tool, _ = self.manager()
        if tool is not None:
            self.host.run([tool, "--user", "daemon-reload"])


__all__ = ["SystemdUser"]
