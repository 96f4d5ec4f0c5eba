"""How an OS keeps a login entry: where it lives, and loading/unloading it (the I/O layer).

One class per mechanism; each handles the entries clawd writes now (agent, tray) and the
per-profile ones older versions wrote (mode "headless"), which only need finding and removing
the way the old code removed them. Content comes from render.py; commands go through the Host.
Here: the base class and the two mechanisms with no service manager behind them (XDG autostart,
the Windows Run key); launchd.py and systemd_user.py hold the supervised ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from clawd_gateway.paths import atomic_write

from .model import Outcome
from .names import (
    DESKTOP_MARKER_KEY,
    MARKER,
    PACKAGE,
    RUN_PREFIX,
    Mode,
    desktop_name,
    run_value_name,
)
from .quoting import split_windows_command
from .render import (
    desktop_entry,
    desktop_entry_argv,
    run_key_command,
)
from .spec import Spec
from .system import Host, RunKey, WinregRunKey, xdg_config_home

HANDOVER = "clawd agent --stop && "  # the running agent keeps its up-set in agent.json for the next


class Mechanism:
    """How one OS keeps one kind of entry: where it lives, its content, load/unload."""

    name = ""
    supervised = False  # a service manager runs the agent (`agent --foreground`) and restarts it

    def __init__(self, host: Host, env: Mapping[str, str]) -> None:
        self.host = host
        self.env = env

    # storage: files by default
    def path(self, mode: Mode, profile: str | None = None) -> Path:
        raise NotImplementedError

    def location(self, mode: Mode, profile: str | None = None) -> str:
        return str(self.path(mode, profile))

    def read(self, mode: Mode, profile: str | None = None) -> str | None:
        try:
            return self.path(mode, profile).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            return f"<unreadable: {exc}>"

    def write(self, mode: Mode, text: str) -> None:
        atomic_write(self.path(mode), text, mode=0o644)

    def remove(self, mode: Mode, profile: str | None = None) -> None:
        self.path(mode, profile).unlink(missing_ok=True)

    def legacy_profiles(self) -> list[str]:
        """Profiles that have an old per-profile entry here (file names only; not yet judged ours)."""
        return []

    # content
    def render(self, spec: Spec) -> str:
        raise NotImplementedError

    def argv_of(self, text: str) -> list[str] | None:
        raise NotImplementedError

    def ours(self, text: str) -> bool:
        return MARKER in text

    # load/unload
    def after_write(self, spec: Spec, changed: bool, out: Outcome) -> None:
        pass

    def before_remove(self, mode: Mode, profile: str | None, out: Outcome) -> None:
        pass

    def after_remove(self, mode: Mode, profile: str | None, out: Outcome) -> None:
        pass

    def loaded(self, mode: Mode, profile: str | None = None) -> bool | None:
        return None

    def _agent_elsewhere(self, out: Outcome) -> int | None:
        """The pid of an agent this entry did not start (e.g. by `clawd up`), said in `out`."""
        pid = self.host.agent_pid()
        if pid is not None:
            out.lines.append(
                f"a clawd agent started outside autostart is running (pid {pid}); it keeps its tunnels "
                "until it stops, and the login entry starts the agent from then on"
            )
        return pid


class XdgAutostart(Mechanism):
    name = "xdg-autostart"

    def path(self, mode: Mode, profile: str | None = None) -> Path:
        return xdg_config_home(self.env) / "autostart" / desktop_name(mode)

    def render(self, spec: Spec) -> str:
        return desktop_entry(spec)

    def argv_of(self, text: str) -> list[str] | None:
        return desktop_entry_argv(text)

    def ours(self, text: str) -> bool:
        return f"\n{DESKTOP_MARKER_KEY}=" in text

    def after_write(self, spec: Spec, changed: bool, out: Outcome) -> None:
        if spec.mode == "tray":
            if changed:
                out.lines.append("your desktop starts it at the next login; to start it now: clawd tray")
            return
        if self._agent_elsewhere(out) is None and changed:
            out.lines.append("your desktop starts it at the next login; to start it now: clawd agent")


class RunKeyValue(Mechanism):
    name = "run-key"

    def __init__(self, host: Host, env: Mapping[str, str], key: RunKey | None = None) -> None:
        super().__init__(host, env)
        self.key: RunKey = key if key is not None else WinregRunKey()

    def location(self, mode: Mode, profile: str | None = None) -> str:
        return f"{self.key.location}\\{run_value_name(mode, profile)}"

    def read(self, mode: Mode, profile: str | None = None) -> str | None:
        return self.key.get(run_value_name(mode, profile))

    def write(self, mode: Mode, text: str) -> None:
        self.key.set(run_value_name(mode), text)

    def remove(self, mode: Mode, profile: str | None = None) -> None:
        self.key.delete(run_value_name(mode, profile))

    def legacy_profiles(self) -> list[str]:
        return sorted(n[len(RUN_PREFIX) :] for n in self.key.names() if n.startswith(RUN_PREFIX))

    def render(self, spec: Spec) -> str:
        return run_key_command(spec)

    def argv_of(self, text: str) -> list[str] | None:
        return split_windows_command(text)

    def ours(self, text: str) -> bool:
        return PACKAGE in text

    def after_write(self, spec: Spec, changed: bool, out: Outcome) -> None:
        if changed:
            now = "clawd tray" if spec.mode == "tray" else "clawd agent"
            out.lines.append(f"Windows runs it at your next sign-in; to start it now: {now}")

    def before_remove(self, mode: Mode, profile: str | None, out: Outcome) -> None:
        if mode == "headless":
            out.lines.append(
                f"an old `clawd connect {profile}` started at sign-in keeps running until you sign out"
            )


__all__ = ["HANDOVER", "Mechanism", "RunKeyValue", "XdgAutostart"]
