"""Command-line quoting for each launcher format, and the inverse of each.

Every format has its own rules and each was once got wrong somewhere (a `%` taken as a
specifier, a `$` expanded, a backslash eaten), so each quoter comes with a parser that the tests
round-trip with hypothesis. The parsers also read what is already on disk: `status` compares the
command an entry runs with the one clawd would write now.

systemd's rules live in clawd_gateway.systemd, shared with the gateway's own service unit.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Sequence

from clawd_gateway.systemd import exec_line, parse_exec

from .names import ENV_PROGRAM

_DESKTOP_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")


def _desktop_quote(arg: str) -> str:
    """Desktop Entry spec "The Exec key": quote reserved characters, then escape `%` as `%%`."""
    if arg and not any(c in _DESKTOP_RESERVED for c in arg):
        quoted = arg
    else:
        quoted = '"' + re.sub(r'(["`$\\])', r"\\\1", arg) + '"'
    return quoted.replace("%", "%%")


def desktop_exec(argv: Sequence[str]) -> str:
    """The Exec value as it appears in the file: the string-level escape doubles each backslash."""
    return " ".join(_desktop_quote(a) for a in argv).replace("\\", "\\\\")


def parse_desktop_exec(value: str) -> list[str]:
    """Inverse of desktop_exec: the string-level escapes first, then the Exec quoting rules
    (inside double quotes, a backslash escapes `"`, `` ` ``, `$` and `\\`); `%%` is `%`."""
    text = re.sub(r"\\(.)", lambda m: {"s": " ", "n": "\n", "t": "\t", "r": "\r"}.get(m[1], m[1]), value)
    args: list[str] = []
    cur: list[str] = []
    in_arg = quoted = False
    i = 0
    while i < len(text):
        c = text[i]
        if quoted and c == "\\" and i + 1 < len(text) and text[i + 1] in '"`$\\':
            cur.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            quoted, in_arg = not quoted, True
        elif c in " \t" and not quoted:
            if in_arg:
                args.append("".join(cur))
                cur, in_arg = [], False
        else:
            cur.append(c)
            in_arg = True
        i += 1
    if quoted:
        raise ValueError("unterminated quote in Exec")
    if in_arg:
        args.append("".join(cur))
    return [a.replace("%%", "%") for a in args]


def strip_env_prefix(argv: list[str]) -> list[str]:
    """The command without a leading `env VAR=...`: what status compares is the program run."""
    if argv and argv[0] == ENV_PROGRAM:
        rest = argv[1:]
        while rest and "=" in rest[0] and not rest[0].startswith("/"):
            rest = rest[1:]
        return rest
    return argv


def systemd_exec(argv: Sequence[str]) -> str:
    """An ExecStart value: clawd_gateway.systemd's quoting, shared with the gateway's own unit."""
    return exec_line(argv)


def parse_systemd_exec(value: str) -> list[str]:
    """Inverse of systemd_exec; also drops an `env VAR=...` prefix a hand-written unit may carry."""
    return strip_env_prefix(parse_exec(value))


def split_windows_command(command: str) -> list[str]:
    """Inverse of subprocess.list2cmdline (the MS C runtime's argv rules)."""
    args: list[str] = []
    cur: list[str] = []
    in_arg = quoted = False
    i, n = 0, len(command)
    while i < n:
        c = command[i]
        if c == "\\":
            j = i
            while j < n and command[j] == "\\":
                j += 1
            count = j - i
            if j < n and command[j] == '"':
                cur.append("\\" * (count // 2))
                if count % 2:
                    cur.append('"')
                    j += 1
                i, in_arg = j, True
                continue
            cur.append("\\" * count)
            i, in_arg = j, True
            continue
        if c == '"':
            quoted, in_arg = not quoted, True
        elif c in " \t" and not quoted:
            if in_arg:
                args.append("".join(cur))
                cur, in_arg = [], False
        else:
            cur.append(c)
            in_arg = True
        i += 1
    if in_arg:
        args.append("".join(cur))
    return args


def display_command(argv: Sequence[str], windows: bool = False) -> str:
    """A command as the user would type it in their shell (cmd.exe rules on Windows)."""
    return subprocess.list2cmdline(list(argv)) if windows else " ".join(shlex.quote(a) for a in argv)


__all__ = [
    "desktop_exec",
    "display_command",
    "parse_desktop_exec",
    "parse_systemd_exec",
    "split_windows_command",
    "strip_env_prefix",
    "systemd_exec",
]
