"""systemd unit-file quoting, written once: ExecStart= command lines, their inverse, and words.

Why one module: the gateway's service unit and the laptop client's `clawd autostart` unit each had
their own rules, and they disagreed (one escaped `$` in the executable, which systemd does not
expand there, so the unit named a file that does not exist). The rules, per systemd.syntax(7) and
systemd.service(5):

- A word with anything but plain characters goes in double quotes, with `\\` and `"` escaped
  (C-style escapes are the only ones systemd's unquoting knows that we need).
- `%` starts a specifier almost everywhere, so a literal one is `%%`.
- In ExecStart= arguments `$VAR`/`${VAR}` are expanded from the environment, so a literal `$` is
  `$$`; the executable itself is never expanded, so there it stays `$`.
- systemd refuses an executable path containing quotes or a backslash ("Executable name contains
  special characters"); such a path is run through env(1), which takes it as a plain argument.
- Control characters cannot be carried at all; callers refuse them with their own message first.

Pure: text in, text out. The gateway package owns it because `clawd_gateway` must never import
`clawd_client`, while the client may import the gateway.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

ENV_PROGRAM = "/usr/bin/env"
# Characters that never need quotes in a unit file word. `%` is here because it is escaped as
# `%%` separately; `$` is not, so an argument holding one is quoted *and* escaped.
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
# systemd rejects these in the executable path outright, quoted or not.
_UNSAFE_EXECUTABLE = frozenset("\"'\\")
# ExecStart= prefixes that change how the command runs, not what it is (systemd.service(5)).
_EXEC_PREFIXES = "-@:+!"


def escape_specifiers(text: str) -> str:
    """`%` -> `%%`, for settings that take the rest of the line (EnvironmentFile=, WorkingDirectory=)."""
    return text.replace("%", "%%")


def _quoted(text: str) -> str:
    if _PLAIN.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_word(text: str) -> str:
    """One word for settings systemd splits on whitespace (ReadWritePaths=, Environment=, ...).

    No `$` escaping: those settings do not expand variables, so `$$` would be taken literally.
    """
    return escape_specifiers(_quoted(text))


def quote_environment(name: str, value: str) -> str:
    """The value of one `Environment=` line: the whole `NAME=value` assignment is a single word."""
    return quote_word(f"{name}={value}")


def _exec_arg(text: str) -> str:
    return quote_word(text).replace("$", "$$")


def _needs_env(argv: Sequence[str]) -> bool:
    """Whether exec_line runs argv through env(1): when the real executable is one systemd refuses.

    Leading env(1)s the caller wrote are looked through, so that parse_exec, which drops one env(1)
    exactly when the rest needs it, always gives back what exec_line was given.
    """
    for arg in argv:
        if arg != ENV_PROGRAM:
            return any(c in _UNSAFE_EXECUTABLE for c in arg)
    return False


def exec_line(argv: Sequence[str]) -> str:
    """The value of ExecStart= (or ExecStop=, ...) that runs exactly `argv`.

    The executable gets no `$$` (systemd does not expand it) and, if systemd would refuse its
    name, is run through env(1).
    """
    args = list(argv)
    if _needs_env(args):
        args.insert(0, ENV_PROGRAM)
    if not args:
        return ""
    return " ".join([quote_word(args[0]), *(_exec_arg(a) for a in args[1:])])


def parse_exec(value: str) -> list[str]:
    """Inverse of exec_line; ignores the `-@:+!` prefixes. ValueError on unbalanced quotes.

    Also reads hand-written lines in the same syntax, which is how an existing unit's command is
    compared with the one we would write.
    """
    tokens = shlex.split(value.strip().lstrip(_EXEC_PREFIXES), posix=True)
    args = [t.replace("%%", "%") for t in tokens]
    args[1:] = [t.replace("$$", "$") for t in args[1:]]
    if args and args[0] == ENV_PROGRAM and _needs_env(args[1:]):
        return args[1:]
    return args


__all__ = ["ENV_PROGRAM", "escape_specifiers", "exec_line", "parse_exec", "quote_environment", "quote_word"]
