"""Read sshd's effective settings: `sshd -T` when it runs, else the config files themselves.

`sshd -T` is the truth (defaults, Include, first-value-wins) but needs root to load the host
keys. The fallback parser follows sshd's own rules: keywords are case-insensitive, the first
value obtained wins, `Include` expands globs in place (relative paths are under the main
config's directory, /etc/ssh), and a `Match` block lasts until the next `Match`. Match blocks
cannot be evaluated without a connection, so they are reported separately, as caveats.
"""

from __future__ import annotations

import glob as globmod
import os
import shlex
from collections.abc import Callable
from pathlib import Path

from .facts import MatchBlock

# OpenSSH 9.x defaults for the keywords we judge (sshd_config(5)).
DEFAULTS = {
    "passwordauthentication": "yes",
    "kbdinteractiveauthentication": "yes",
    "usepam": "no",
    "permitrootlogin": "prohibit-password",
    "allowtcpforwarding": "yes",
    "disableforwarding": "no",
    "permitopen": "any",
    "authenticationmethods": "any",
    "permitemptypasswords": "no",
}
ALIASES = {"challengeresponseauthentication": "kbdinteractiveauthentication"}
VALUE_ALIASES = {"without-password": "prohibit-password"}
JUDGED = frozenset(DEFAULTS)
MAX_INCLUDE_DEPTH = 16

Reader = Callable[[str], "str | None"]
Globber = Callable[[str], list[str]]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _split(line: str) -> tuple[str, str] | None:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if "=" in text.split(None, 1)[0]:
        key, _, rest = text.partition("=")
    else:
        parts = text.split(None, 1)
        key, rest = parts[0], (parts[1] if len(parts) > 1 else "")
        if rest.startswith("="):
            rest = rest[1:]
    key = key.strip().lower()
    return ALIASES.get(key, key), rest.strip()


def parse_sshd_config(
    main: str, read: Reader = _read, glob: Globber | None = None
) -> tuple[dict[str, str], list[MatchBlock], list[str]]:
    """Effective global settings (defaults filled in), Match blocks, and caveats."""
    glob = glob or (lambda pattern: sorted(globmod.glob(pattern)))
    base = os.path.dirname(main) or "."
    settings: dict[str, str] = {}
    matches: list[MatchBlock] = []
    caveats: list[str] = []
    current: list[MatchBlock | None] = [None]

    def walk(path: str, depth: int) -> None:
        text = read(path)
        if text is None:
            caveats.append(f"could not read {path}")
            return
        for no, line in enumerate(text.splitlines(), 1):
            kv = _split(line)
            if kv is None:
                continue
            key, value = kv
            if key == "include":
                if depth >= MAX_INCLUDE_DEPTH:
                    caveats.append(f"{path}:{no}: Include nested too deeply")
                    continue
                try:
                    patterns = shlex.split(value)
                except ValueError:
                    patterns = value.split()
                for pattern in patterns:
                    full = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
                    for inc in glob(full):
                        walk(inc, depth + 1)
                continue
            if key == "match":
                if value.lower() == "all":
                    current[0] = None
                else:
                    opened = MatchBlock(value, f"{path}:{no}")
                    matches.append(opened)
                    current[0] = opened
                continue
            block = current[0]
            target = settings if block is None else block.settings
            if key in JUDGED and value:
                word = value.split()[0].lower() if key != "permitopen" else value.lower()
                target.setdefault(key, VALUE_ALIASES.get(word, word))

    walk(main, 0)
    effective = dict(DEFAULTS)
    effective.update(settings)
    return effective, matches, caveats


def parse_sshd_t(output: str) -> dict[str, str]:
    """`sshd -T` prints one lowercase `keyword value` per line (multi-valued ones repeat)."""
    out: dict[str, str] = {}
    for line in output.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0] in JUDGED:
            out.setdefault(parts[0], VALUE_ALIASES.get(parts[1].lower(), parts[1].lower()))
    effective = dict(DEFAULTS)
    effective.update(out)
    return effective


def password_login(settings: dict[str, str]) -> str | None:
    """Why a password alone can log in, or None (publickey-only AuthenticationMethods close it)."""
    methods = settings.get("authenticationmethods", "any")
    if methods != "any":
        lists = [m.split(",") for m in methods.split()]
        if all("publickey" in lst for lst in lists):
            return None
    if settings.get("passwordauthentication") == "yes":
        return "PasswordAuthentication yes"
    if settings.get("kbdinteractiveauthentication") == "yes" and settings.get("usepam") == "yes":
        return "KbdInteractiveAuthentication yes with UsePAM yes (PAM asks for the password)"
    return None


def forwarding_blocked(settings: dict[str, str], port: int) -> str | None:
    """Why `ssh -L PORT:127.0.0.1:PORT` (the tunnel to the gateway) would be refused, or None."""
    if settings.get("disableforwarding") == "yes":
        return "DisableForwarding yes"
    allow = settings.get("allowtcpforwarding", "yes")
    if allow in ("no", "remote"):
        return f"AllowTcpForwarding {allow}"
    permit = settings.get("permitopen", "any")
    if permit not in ("any", "any any"):
        targets = permit.split()
        ok = {f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1:*", "localhost:*", f"[::1]:{port}"}
        if permit == "none" or not ok.intersection(targets):
            return f"PermitOpen {permit} (does not allow 127.0.0.1:{port})"
    return None
