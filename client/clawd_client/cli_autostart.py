"""`clawd autostart enable|disable|status`: start the clawd agent (and the tray) at login.

Registered into the main CLI by `register(subparsers)`, like cli_profiles. Nothing changes on the
machine unless asked: `enable` writes (and loads, where launchctl / a systemd user manager is
reachable) the agent's one entry, after migrating the per-profile entries older versions wrote;
`disable` removes what clawd starts at login; both say what they did and are safe to repeat.
`status` exits 1 when an entry is stale or an old one awaits migration, so scripts can notice.

Per-profile flags: there are no per-profile entries any more (the agent brings back whatever was
up), so `enable --profile NAME` (and the older spelling `--headless NAME`) means "enable the
agent's entry and mark NAME up"; `disable`/`status --headless NAME` are refused with what to run
instead.

Exit codes: 0 ok · 1 failure (or, for status, a stale or old entry) · 2 usage.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from clawd_gateway.errors import UserError

from . import autostart
from .autostart import Autostart, Launcher
from .cli_common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, handled, help_for


class _NoPerProfile(UserError):
    exit_code = EXIT_USAGE


def _autostart() -> Autostart:
    """The real machine's autostart layer (tests substitute one for a given platform)."""
    return Autostart()


def _profiles(args: argparse.Namespace) -> list[str]:
    """--profile NAME and the older --headless NAME, checked to exist: better now than at login."""
    from .profiles import ProfileStore

    names = [*(args.profile or []), *([args.headless] if args.headless else [])]
    store = ProfileStore()
    return list(dict.fromkeys(store.get(autostart.check_profile_name(n)).name for n in names))


def _refuse_per_profile(args: argparse.Namespace, action: str) -> None:
    if getattr(args, "headless", None) is None:
        return
    name = args.headless
    if action == "disable":
        raise _NoPerProfile(
            f"autostart has no per-profile entries any more: the agent brings back what was up, {name} "
            "included",
            fix=f"keep {name} from coming back: clawd down {name}; nothing at login: clawd autostart disable",
        )
    raise _NoPerProfile(
        "autostart has no per-profile entries any more: one entry starts the agent, which brings back "
        f"what was up (clawd status {name} shows whether {name} is)",
        fix="clawd autostart status",
    )


def _launcher() -> Launcher:
    """The current interpreter, checked to import clawd on its own as it must at login."""
    launcher = autostart.detect_launcher()
    autostart.probe_import(launcher.python)
    return launcher


def _interpreter(launcher: Launcher | None) -> dict[str, str] | None:
    return {"path": launcher.python, "kind": launcher.kind} if launcher else None


def _print_outcome(out: autostart.Outcome) -> None:
    for line in out.lines:
        print(line)
    for note in out.notes:
        print(f"note: {note}")


@handled
def cmd_enable(args: argparse.Namespace) -> int:
    profiles = _profiles(args)
    launcher = _launcher()
    auto = _autostart()
    if args.print:
        for mode in ("agent", "tray") if args.tray else ("agent",):
            where, content = auto.render(auto.spec(mode, launcher))
            print(f"# {where} (not written: --print)")
            print(content, end="" if content.endswith("\n") else "\n")
        for entry in auto.legacy():
            if entry.state == "legacy":
                print(f"# would migrate: headless {entry.profile} ({entry.location})")
        return EXIT_OK
    out = autostart.enable_login(auto, launcher, tray=args.tray, profiles=profiles)
    if args.json:
        body = {
            "platform": auto.family,
            "interpreter": _interpreter(launcher),
            **out.to_json(),
            "entries": [e.to_json() for e in auto.status(launcher)],
        }
        print(json.dumps(body, indent=2))
        return EXIT_OK if out.ok else EXIT_FAIL
    at = next((i + 1 for i, line in enumerate(out.lines) if line.startswith("  runs: ")), len(out.lines))
    out.lines.insert(at, f"  interpreter: {launcher.kind} ({launcher.python})")
    _print_outcome(out)
    return EXIT_OK if out.ok else EXIT_FAIL


@handled
def cmd_disable(args: argparse.Namespace) -> int:
    _refuse_per_profile(args, "disable")
    out = autostart.disable_login(_autostart(), tray_only=args.tray)
    if args.json:
        print(json.dumps(out.to_json(), indent=2))
    else:
        _print_outcome(out)
    return EXIT_OK if out.ok else EXIT_FAIL


def _remembered() -> list[str]:
    from .agent.host import load_remembered

    return load_remembered()


@handled
def cmd_status(args: argparse.Namespace) -> int:
    _refuse_per_profile(args, "status")
    auto = _autostart()
    launcher: Launcher | None
    launcher_error = None
    try:
        launcher = autostart.detect_launcher()
    except UserError as exc:
        launcher, launcher_error = None, str(exc)
    entries = auto.status(launcher, "tray" if args.tray else None)
    legacy = [] if args.tray else auto.legacy()
    others = auto.others()
    remembered = _remembered()
    migrate = any(e.state == "legacy" for e in legacy)
    failing = migrate or any(e.state == "stale" for e in entries)
    if args.json:
        body: dict[str, Any] = {
            "platform": auto.family,
            "interpreter": _interpreter(launcher),
            "interpreterError": launcher_error,
            "entries": [e.to_json() for e in entries],
            "legacy": [e.to_json() for e in legacy],
            "migrate": autostart.MIGRATE_COMMAND if migrate else None,
            "remembered": remembered,
            "others": [o.to_json() for o in others],
        }
        print(json.dumps(body, indent=2))
        return EXIT_FAIL if failing else EXIT_OK
    if launcher:
        print(f"current interpreter: {launcher.python} ({launcher.kind})")
    else:
        print(f"current interpreter: unknown ({launcher_error})")
    shown = {e.mode for e in entries}
    if not args.tray and "agent" not in shown:
        where = auto.mechanism("agent").location("agent")
        print(f"agent autostart is not enabled (it would be {where})")
        print("  enable it: clawd autostart enable   (with --tray, the tray's entry too)")
    if args.tray and not entries:
        print(f"tray autostart is not enabled (it would be {auto.mechanism('tray').location('tray')})")
    for e in entries:
        loaded = {True: ", loaded", False: ", not loaded", None: ""}[e.loaded]
        print(f"{e.mode}: {e.state}{loaded} ({e.mechanism}) {e.location}")
        if e.command:
            print(f"  runs: {autostart.display_command(e.command)}")
        if e.reason:
            print(f"  {e.reason}")
    if not args.tray:
        print(f"remembered as up, brought back when the agent starts: {', '.join(remembered) or 'none'}")
        for name, why in autostart.profile_notes(remembered)[1].items():
            print(f"  {name}: {why}")
    for e in legacy:
        print(f"old per-profile entry, headless {e.profile}: {e.state} ({e.mechanism}) {e.location}")
        if e.reason:
            print(f"  {e.reason}")
    for o in others:
        print(f"note: hand-made tunnel launcher {o.location} also holds the gateway port; remove it: {o.fix}")
    return EXIT_FAIL if failing else EXIT_OK


def register(subparsers: Any) -> None:
    """Add `autostart` to the main CLI's `add_subparsers()` object."""
    top = subparsers.add_parser(
        "autostart",
        help="start the clawd agent (and the tray) at login (enable, disable, status)",
        description=(
            "One entry starts the agent at login, which brings back the tunnels that were up. "
            "Linux: a systemd --user unit (XDG autostart without systemd) · macOS: a LaunchAgent · "
            "Windows: the per-user Run key. The tray's own entry is optional (--tray). Entries run "
            "the Python running this command; they never contain secrets."
        ),
    )
    top.set_defaults(func=help_for(top))
    sub = top.add_subparsers(dest="autostart_command", metavar="ACTION")

    enable = sub.add_parser(
        "enable", help="write (and load) the agent's entry; migrate old per-profile entries"
    )
    enable.add_argument("--tray", action="store_true", help="also start the tray app at login")
    enable.add_argument(
        "--profile",
        action="append",
        metavar="NAME",
        help="also mark NAME as up, so the agent brings it back at login (repeatable)",
    )
    enable.add_argument("--headless", metavar="NAME", help="older spelling of --profile NAME")
    enable.add_argument(
        "--print", action="store_true", help="show the entries and where they go; write nothing"
    )
    enable.add_argument("--json", action="store_true", help="machine-readable output")
    enable.set_defaults(func=cmd_enable)

    disable = sub.add_parser("disable", help="remove what clawd starts at login (and unload it)")
    disable.add_argument("--tray", action="store_true", help="only the tray's entry")
    disable.add_argument("--headless", metavar="NAME", help=argparse.SUPPRESS)
    disable.add_argument("--json", action="store_true", help="machine-readable output")
    disable.set_defaults(func=cmd_disable)

    status = sub.add_parser("status", help="which entries exist, where, and whether they are stale")
    status.add_argument("--tray", action="store_true", help="only the tray's entry")
    status.add_argument("--headless", metavar="NAME", help=argparse.SUPPRESS)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)


__all__ = ["register"]
