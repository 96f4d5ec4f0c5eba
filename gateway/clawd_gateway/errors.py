"""User-facing errors: each names the file, key or host at fault and how to fix it."""

from __future__ import annotations

import os
import sys
from pathlib import Path


class UserError(Exception):
    """A mistake the user can fix; the CLI prints it without a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix

    def render(self) -> str:
        text = str(self)
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class ConfigError(UserError):
    """The configuration is invalid; names the file and the key path."""

    exit_code = 78  # EX_CONFIG, as OpenClaw uses for a missing config

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        key: str | None = None,
        fix: str | None = None,
    ) -> None:
        where = []
        if file is not None:
            where.append(str(file))
        if key:
            where.append(key)
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message, fix=fix)
        self.file = file
        self.key = key


class RefusalError(ConfigError):
    """A configuration that would expose the gateway unsafely; we refuse to start."""


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool whose reader went away


def stdout_gone() -> int:
    """Our reader went away (`| head`): stop quietly like other Unix tools.

    Pointing stdout at /dev/null keeps the interpreter's final flush from printing a traceback
    about the same closed pipe. Shared by both CLIs' top-level handlers.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE
