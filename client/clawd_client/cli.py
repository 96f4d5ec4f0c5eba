"""`clawd`: the laptop-side command. Parsing and output only.

Exit codes: 0 ok · 1 check failed · 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from clawd_gateway.errors import UserError

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clawd",
        description="Keep a connection to a remote OpenClaw gateway alive, and say which hop is broken.",
    )
    parser.add_argument("--version", action="version", version=f"clawd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run a local gateway and check it end to end (no VPS needed)")
    demo.add_argument("--once", action="store_true", help="exit after the check instead of serving")
    demo.add_argument("--port", type=int, help="gateway port (default 18789, or a free one if taken)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo

            return asyncio.run(run_demo(args.once, args.port, sys.stdout))
    except UserError as exc:
        print(f"clawd: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
