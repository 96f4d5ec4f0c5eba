"""`python -m clawd_client.tray [PROFILE] [--no-connect] [--backend NAME]`: the same as `clawd tray`.

Why: a launcher that works whether or not the main CLI has registered the `tray` subcommand, and
a stable target for autostart entries and tests.
"""

from __future__ import annotations

import argparse
import sys

from ..cli_tray import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clawd")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["tray", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
