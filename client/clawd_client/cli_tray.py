"""`clawd tray [PROFILE]`: the system tray app, a client of the clawd agent.

Like cli_profiles.py, this module only adds its subcommand via `register(subparsers)`; the tray
itself lives in `clawd_client.tray` and is imported only when the command runs, so the CLI (and
a VPS without any GUI libraries) never pays for pystray, Pillow or GTK.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from clawd_gateway.errors import UserError

BACKENDS = ("appindicator", "gtk", "xorg", "darwin", "win32")


def register(subparsers: Any) -> None:
    tray = subparsers.add_parser(
        "tray",
        help="tray icon: every tunnel's state at a glance, connect/disconnect, notifications",
        description=(
            "A tray icon for the tunnels the clawd agent runs (the agent is started when none runs): "
            "every profile with its state and its own Connect/Disconnect. Quit leaves the tunnels up; "
            "'Disconnect all and quit' brings them down first. Logs go to the client state dir "
            "(logs/tray.log). On Linux the menu needs PyGObject (AppIndicator or GTK backend); "
            "without it the tray says how to install it."
        ),
    )
    tray.add_argument("name", nargs="?", help="profile to bring up at start (as `clawd up NAME --no-wait`)")
    tray.add_argument("--no-connect", action="store_true", help="do not bring NAME up (it is only shown)")
    tray.add_argument(
        "--backend",
        choices=BACKENDS,
        help="pystray backend (default: $PYSTRAY_BACKEND, else the best available)",
    )
    tray.set_defaults(func=cmd_tray)


def cmd_tray(args: argparse.Namespace) -> int:
    try:
        from .tray.app import main
    except ImportError as exc:  # pystray/Pillow missing: the VPS-style install
        print(
            f"clawd: the tray needs the tray extra ({exc})\n  fix: pip install 'clawd[tray]'", file=sys.stderr
        )
        return 78
    try:
        return main(args.name, connect=not args.no_connect, backend=args.backend)
    except UserError as exc:
        print(f"clawd: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
