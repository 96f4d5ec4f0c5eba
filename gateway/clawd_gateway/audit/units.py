"""Find secrets written into service definitions (pure: text in, facts out).

Unit files are world-readable and `systemctl show` prints Environment= to any user, so a
token there is as good as published; the same goes for a launchd plist's
EnvironmentVariables and for a --token/--password flag on the command line (`ps`).
"""

from __future__ import annotations

import plistlib
import re
import shlex
from typing import Any

from .facts import InlineSecret, UnitFact

SECRET_NAME = re.compile(r"(TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY)", re.IGNORECASE)
SECRET_FLAGS = ("--token", "--password")


def is_secret_var(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def _words(value: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


def argv_secrets(argv: list[str]) -> list[tuple[str, int]]:
    """(flag, value length) for every --token/--password value on a command line."""
    found: list[tuple[str, int]] = []
    for i, word in enumerate(argv):
        for flag in SECRET_FLAGS:
            if word == flag and i + 1 < len(argv):
                found.append((flag, len(argv[i + 1])))
            elif word.startswith(flag + "="):
                found.append((flag, len(word) - len(flag) - 1))
    return found


def mask_argv(argv: list[str]) -> str:
    out: list[str] = []
    hide = False
    for word in argv:
        if hide:
            out.append(f"**** ({len(word)} chars)")
            hide = False
            continue
        flag = next((f for f in SECRET_FLAGS if word.startswith(f + "=")), None)
        if flag:
            out.append(f"{flag}=**** ({len(word) - len(flag) - 1} chars)")
            continue
        hide = word in SECRET_FLAGS
        out.append(word)
    return " ".join(out)


def parse_systemd_unit(path: str, text: str, mode: int = 0o644) -> UnitFact:
    secrets: list[InlineSecret] = []
    env_files: list[str] = []
    run_as: str | None = None
    config_arg: str | None = None
    section = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        no = i + 1
        line = lines[i].strip()
        while line.endswith("\\") and i + 1 < len(lines):  # continuation lines
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        i += 1
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section != "Service" or "=" not in line:
            continue
        key, _, value = (part.strip() for part in line.partition("="))
        if key == "Environment":
            for word in _words(value):
                name, eq, val = word.partition("=")
                if eq and is_secret_var(name) and val:
                    secrets.append(InlineSecret(no, name, len(val), "Environment="))
        elif key == "EnvironmentFile":
            env_files.append(value.lstrip("-"))
        elif key == "User":
            run_as = value
        elif key == "ExecStart":
            argv = _words(value.lstrip("@-:+!"))
            for flag, length in argv_secrets(argv):
                secrets.append(InlineSecret(no, flag, length, "ExecStart= flag"))
            if "--config" in argv and argv.index("--config") + 1 < len(argv):
                config_arg = argv[argv.index("--config") + 1]
    return UnitFact(path, "systemd", tuple(secrets), tuple(env_files), run_as, config_arg, mode)


def parse_launchd_plist(path: str, data: bytes, mode: int = 0o644) -> UnitFact:
    try:
        plist: Any = plistlib.loads(data)
    except Exception:
        return UnitFact(path, "launchd", mode=mode)
    secrets: list[InlineSecret] = []
    env = plist.get("EnvironmentVariables") if isinstance(plist, dict) else None
    if isinstance(env, dict):
        for name, val in env.items():
            if isinstance(val, str) and val and is_secret_var(str(name)):
                secrets.append(InlineSecret(0, str(name), len(val), "EnvironmentVariables"))
    argv = plist.get("ProgramArguments") if isinstance(plist, dict) else None
    env_files: list[str] = []
    config_arg = None
    if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
        for flag, length in argv_secrets(argv):
            secrets.append(InlineSecret(0, flag, length, "ProgramArguments flag"))
        if "--env-file" in argv and argv.index("--env-file") + 1 < len(argv):
            env_files.append(argv[argv.index("--env-file") + 1])
        if "--config" in argv and argv.index("--config") + 1 < len(argv):
            config_arg = argv[argv.index("--config") + 1]
    user = plist.get("UserName") if isinstance(plist, dict) else None
    return UnitFact(
        path,
        "launchd",
        tuple(secrets),
        tuple(env_files),
        user if isinstance(user, str) else None,
        config_arg,
        mode,
    )
