"""`clawd autostart enable|disable|status [--tray | --headless PROFILE]`: start clawd at login.

Registered into the main CLI by `register(subparsers)`, like cli_profiles. Nothing changes on the
machine unless asked: `enable` writes (and loads, where launchctl / a systemd user manager is
reachable) exactly one entry; `disable` removes exactly that entry; both say what they did and
are safe to repeat. `status` exits 1 when an entry is stale, so scripts can notice a broken install.

Exit codes: 0 ok · 1 failure (or a stale entry, for status) · 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from clawd_gateway.errors import UserError

from . import autostart
from .autostart import Autostart, Launcher, Mode
from .cli_common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, Handler, handled

_handled = handled


def _autostart() -> Autostart:
    """The real machine's autostart layer (tests substitute one for a given platform)."""
    return Autostart()


def _target(args: argparse.Namespace) -> tuple[Mode, str | None]:
    if args.headless is not None:
        return "headless", autostart.check_profile_name(args.headless)
    return "tray", None


def _check_profile(profile: str) -> None:
    """Refuse to autostart a profile `clawd connect` could not run: better now than at every login."""
    from .profiles import ProfileStore

    p = ProfileStore().get(profile)
    if p.method != "ssh":
        raise UserError(
            f"profile {p.name!r} uses method {p.method!r}, which `clawd connect` does not drive yet "
            "(only ssh in this version), so a headless autostart of it would fail",
        )


def _launcher() -> Launcher:
    """The current interpreter, checked to import clawd on its own as it must at login."""
    launcher = autostart.detect_launcher()
    autostart.probe_import(launcher.python)
    return launcher


def _print_outcome(out: autostart.Outcome) -> None:
    for line in out.lines:
        print(line)


@_handled
def cmd_enable(args: argparse.Namespace) -> int:
    mode, profile = _target(args)
    if profile is not None:
        _check_profile(profile)
    launcher = _launcher()
    auto = _autostart()
    spec = auto.spec(mode, profile, launcher)
    if args.print:
        where, content = auto.render(spec)
        print(f"# {where} (not written: --print)")
        print(content, end="" if content.endswith("\n") else "\n")
        return EXIT_OK
    out = auto.enable(spec)
    at = next((i + 1 for i, line in enumerate(out.lines) if line.startswith("  runs: ")), len(out.lines))
    out.lines.insert(at, f"  interpreter: {launcher.kind} ({launcher.python})")
    _print_outcome(out)
    for note in auto.notes(spec):
        print(f"note: {note}")
    return EXIT_OK if out.ok else EXIT_FAIL


@_handled
def cmd_disable(args: argparse.Namespace) -> int:
    mode, profile = _target(args)
    out = _autostart().disable(mode, profile)
    _print_outcome(out)
    return EXIT_OK if out.ok else EXIT_FAIL


@_handled
def cmd_status(args: argparse.Namespace) -> int:
    auto = _autostart()
    launcher: Launcher | None
    launcher_error = None
    try:
        launcher = autostart.detect_launcher()
    except UserError as exc:
        launcher, launcher_error = None, str(exc)
    mode: Mode | None = None
    profile = None
    if args.tray:
        mode = "tray"
    elif args.headless is not None:
        mode, profile = "headless", autostart.check_profile_name(args.headless)
    entries = auto.status(launcher, mode, profile)
    others = auto.others()
    stale = any(e.state == "stale" for e in entries)
    if args.json:
        body: dict[str, Any] = {
            "platform": auto.family,
            "interpreter": {"path": launcher.python, "kind": launcher.kind} if launcher else None,
            "interpreterError": launcher_error,
            "entries": [e.to_json() for e in entries],
            "others": [o.to_json() for o in others],
        }
        print(json.dumps(body, indent=2))
        return EXIT_FAIL if stale else EXIT_OK
    if launcher:
        print(f"current interpreter: {launcher.python} ({launcher.kind})")
    else:
        print(f"current interpreter: unknown ({launcher_error})")
    if not entries:
        if mode is None:
            print("no autostart entry is enabled")
            print(
                "  enable one: clawd autostart enable --tray   or: clawd autostart enable --headless PROFILE"
            )
        else:
            title = "tray" if mode == "tray" else f"headless {profile}"
            where = auto.mechanism(mode).location(mode, profile)
            print(f"{title} autostart is not enabled (it would be {where})")
    for e in entries:
        title = "tray" if e.mode == "tray" else f"headless {e.profile}"
        loaded = {True: ", loaded", False: ", not loaded", None: ""}[e.loaded]
        print(f"{title}: {e.state}{loaded} ({e.mechanism}) {e.location}")
        if e.command:
            print(f"  runs: {autostart.display_command(e.command)}")
        if e.reason:
            print(f"  {e.reason}")
    for o in others:
        print(f"note: hand-made tunnel launcher {o.location} also holds the gateway port; remove it: {o.fix}")
    return EXIT_FAIL if stale else EXIT_OK


def _help_for(parser: argparse.ArgumentParser) -> Handler:
    def show(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    return show


def _which(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--tray", action="store_true", help="the tray app (the default)")
    group.add_argument(
        "--headless", metavar="PROFILE", help="a background `clawd connect PROFILE` supervisor, no tray"
    )


def register(subparsers: Any) -> None:
    """Add `autostart` to the main CLI's `add_subparsers()` object."""
    top = subparsers.add_parser(
        "autostart",
        help="start the tray or a headless tunnel at login (enable, disable, status)",
        description=(
            "macOS: a LaunchAgent · Linux: XDG autostart (tray) or a systemd --user unit "
            "(headless) · Windows: the per-user Run key. Entries run the Python running this "
            "command; they never contain secrets."
        ),
    )
    top.set_defaults(func=_help_for(top))
    sub = top.add_subparsers(dest="autostart_command", metavar="ACTION")

    enable = sub.add_parser("enable", help="write (and load, where possible) the autostart entry")
    _which(enable)
    enable.add_argument(
        "--print", action="store_true", help="show the entry and where it goes; write nothing"
    )
    enable.set_defaults(func=cmd_enable)

    disable = sub.add_parser("disable", help="remove the entry enable wrote (and unload it)")
    _which(disable)
    disable.set_defaults(func=cmd_disable)

    status = sub.add_parser("status", help="which entries exist, where, and whether they are stale")
    _which(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)


__all__ = ["register"]
