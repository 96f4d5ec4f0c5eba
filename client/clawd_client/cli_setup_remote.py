"""`clawd setup-remote`: from plain SSH access to a healthy, autostarting tunnel in one command,
and `--undo NAME` to take it back. Parsing, prompting and printing only; the steps live in
`clawd_client.setup_remote` (imported when the command runs, so `clawd --help` stays quick).

Exit codes: 0 ok · 1 a step failed · 2 usage · 3 VPS unreachable · 4 needs the user (login
refused, host key unknown or changed) · 78 configuration · 130 interrupted.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from clawd_gateway.errors import UserError

from .cli_common import EXIT_OK, EXIT_USAGE, handled


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "setup-remote",
        help="set up a VPS over SSH: tunnel-only key, gateway secret, profile, autostart, tunnel up",
        description=(
            "Log in to the VPS with what you already have, add a key that can only reach the gateway "
            "port, find the gateway there (or install clawd-gateway), put its secret in the keyring, "
            "write the profile, turn on start at login and bring the tunnel up. Safe to re-run."
        ),
    )
    p.add_argument("target", nargs="?", metavar="[user@]host[:port]")
    p.add_argument("--name", help="profile name (default: from the host)")
    p.add_argument(
        "--identity", metavar="FILE", help="SSH key to log in with (default: agent and ~/.ssh keys)"
    )
    p.add_argument("--jump", metavar="HOST", help="jump host, [user@]host[:port]")
    p.add_argument(
        "--remote-port", type=int, metavar="P", help="gateway port on the VPS (default: its config, 18789)"
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--install", dest="install", action="store_const", const=True, default=None)
    group.add_argument("--no-install", dest="install", action="store_const", const=False)
    p.add_argument("--from", dest="source", metavar="WHEEL_OR_DIR", help="install clawd-gateway from this")
    p.add_argument("--system", action="store_true", help="install the gateway as a system service (sudo)")
    p.add_argument("--yes", action="store_true", help="accept a NEW host key and defaults without asking")
    p.add_argument("--dry-run", action="store_true", help="print every remote command; change nothing")
    p.add_argument("--json", action="store_true", help="one JSON event per step, then a summary object")
    p.add_argument("--undo", metavar="NAME", help="remove what setup-remote did for profile NAME")
    p.add_argument(
        "--purge-gateway", action="store_true", help="with --undo: also remove a gateway it installed"
    )
    p.set_defaults(func=cmd_setup_remote)


def _asker() -> Any:
    from .setup_remote.login import Asker

    interactive = sys.stdin.isatty() and sys.stderr.isatty()

    def confirm(question: str) -> bool:
        print(question, end="", file=sys.stderr, flush=True)
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    def password(prompt: str) -> str:
        return getpass.getpass(prompt)

    return Asker(interactive, confirm, password)


@handled
def cmd_setup_remote(args: argparse.Namespace) -> int:
    import asyncio

    from .setup_remote.progress import make_progress

    progress = make_progress(as_json=args.json)
    try:
        if args.undo:
            if args.target:
                raise _Usage("--undo NAME takes no target")
            return _undo(args, progress)
        if not args.target:
            raise _Usage("a target is needed: clawd setup-remote [user@]host[:port] (or --undo NAME)")
        if args.purge_gateway:
            raise _Usage("--purge-gateway only goes with --undo NAME")
        if args.remote_port is not None and not 1 <= args.remote_port <= 65535:
            raise _Usage(f"--remote-port {args.remote_port} is not a port")
        from .setup_remote.flow import Options, Run

        opts = Options(
            target=args.target, name=args.name, identity=args.identity, jump=args.jump,
            remote_port=args.remote_port, install=args.install, source=args.source, system=args.system,
            yes=args.yes, dry_run=args.dry_run,
        )  # fmt: skip
        summary = asyncio.run(Run(opts, progress, _asker()).execute())
    finally:
        progress.close()
    _print_summary(summary, as_json=args.json)
    return EXIT_OK


class _Usage(UserError):
    exit_code = EXIT_USAGE


def _undo(args: argparse.Namespace, progress: Any) -> int:
    import asyncio

    from .setup_remote.flow import undo

    asker = _asker()
    if not args.yes:
        if not asker.interactive:
            raise _Usage(f"--undo {args.undo} removes the profile, its key and secret: confirm with --yes")
        if not asker.confirm(f"Remove what setup-remote did for {args.undo}? [y/N] "):
            return 1
    removed = asyncio.run(undo(args.undo, purge_gateway=args.purge_gateway, progress=progress, asker=asker))
    if args.json:
        print(json.dumps({"event": "summary", "undone": args.undo, "removed": removed}))
    else:
        print(f"\nundone: {args.undo}")
        for item in removed:
            print(f"  removed {item}")
    return EXIT_OK


def _print_summary(summary: Any, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"event": "summary", **summary.to_json()}))
        return
    print()
    if summary.dry_run:
        print(f"dry run for {summary.name}: nothing was changed. It would run on the VPS:")
        for item in summary.would:
            print(f"  {item}")
        return
    if not summary.changed:
        print(f"{summary.name} is already set up: nothing changed.")
    else:
        print(f"{summary.name} is set up.")
    for side, items in (("on the VPS", summary.vps), ("on this machine", summary.laptop)):
        if items:
            print(f"  {side}:")
            for item in items:
                print(f"    - {item}")
    print(f"  gateway: {summary.gateway}")
    critical = [f for f in summary.findings if f.get("severity") == "critical"]
    for f in critical:
        print(f"  CRITICAL {f['id']}: {f['message']}" + (f"\n    fix: {f['fix']}" if f.get("fix") else ""))
    if summary.local_url:
        print(f"  local URL: {summary.local_url}")
    print(f"  undo: {summary.undo}")
