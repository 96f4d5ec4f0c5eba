"""What every `clawd` subcommand module shares: exit codes and the error-printing wrapper."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from clawd_gateway.errors import UserError

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


def handled(fn: Handler) -> Handler:
    """Print UserError the way the main CLI does and return its exit code; Ctrl-C is 130."""

    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except UserError as exc:
            print(f"clawd: {exc.render()}", file=sys.stderr)
            return int(exc.exit_code)
        except KeyboardInterrupt:
            print("", file=sys.stderr)
            return 130

    return wrapper


def help_for(parser: argparse.ArgumentParser) -> Handler:
    """A command group run without its subcommand (`clawd profile`): its help, exit 2."""

    def show(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    return show
