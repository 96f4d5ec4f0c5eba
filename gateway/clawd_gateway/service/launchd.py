"""The launchd wrapper: `python -m clawd_gateway.service launch --env-file F -- ARGS`.

launchd has no EnvironmentFile, and a plist's EnvironmentVariables would put the secret in a file
that stays readable by everyone, so the plist runs this wrapper: it reads the 0600 env file into
the environment, then runs the gateway CLI in-process.

The CLI is passed in (`run_cli`) rather than imported: the service package is domain code the CLI
calls, and must not call the CLI back. `__main__` is the entry point that joins the two.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import UserError
from .envfile import load_env_file_strict

USAGE = "usage: python -m clawd_gateway.service launch --env-file FILE -- ARGS..."


def launch_main(argv: Sequence[str], run_cli: Callable[[list[str]], int]) -> int:
    """Load the env file into os.environ, then `run_cli(ARGS)`; 2 on bad usage, 78 on a bad file."""
    args = list(argv)
    if len(args) < 3 or args[:2] != ["launch", "--env-file"]:
        print(USAGE, file=sys.stderr)
        return 2
    env_file, rest = Path(args[2]), args[3:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    try:
        os.environ.update(load_env_file_strict(env_file))
    except UserError as exc:
        print(f"clawd-gateway: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    return run_cli(rest)


__all__ = ["USAGE", "launch_main"]
