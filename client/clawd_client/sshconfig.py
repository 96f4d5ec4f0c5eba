"""ssh_config(5) resolved the way OpenSSH's `ssh` resolves it (checked against `ssh -G`, OpenSSH 9.2).

Why our own resolver: `clawd profile import` must land exactly where `ssh ALIAS` lands, and the
only other reader at hand, asyncssh (clawd's SSH library), ignores LocalForward and departs from
ssh in ways that move a connection: `Match final`/`canonical`, `Host a,b` split on the comma, `~`
taken from $HOME, unsorted Include globs, fewer %-tokens. So this module reads the files once
(`load`: the only I/O, files and their Include globs) and then answers "what does ssh use for
ALIAS" (`resolve`) by ssh's rules: the first value obtained for a keyword wins, across every
matching Host/Match block in file order, wildcards included; an Include keeps the active state of
the block it sits in; `Match final`/`canonical` trigger a second pass in which Host lines match the
final host name. What only the outside world decides (`Match exec`, DNS canonicalization, criteria
newer than ssh 9.2) raises Unfollowable naming FILE:LINE; lines ssh rejects raise ConfigError.
"""

from __future__ import annotations

import glob
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from clawd_gateway.errors import ConfigError

from .sshsyntax import (
    WHITESPACE,
    Account,
    Forward,
    Jump,
    check_line,
    expand_tokens,
    parse_forward,
    parse_jump,
    parse_match,
    parse_port,
    split_args,
    split_line,
)

MAX_INCLUDE_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH
MAX_FILES = 512  # every Include expanded: a file that includes itself twice would explode
MAX_SSH_CONFIG_BYTES = 1024 * 1024
SYSTEM_DIR = "/etc/ssh"


class Unfollowable(ConfigError):
    """The config asks ssh to consult the outside world (a command, DNS, the network): clawd would guess."""


@dataclass(frozen=True)
class Line:
    where: str  # "FILE:LINE"
    keyword: str  # lowercased
    args: tuple[str, ...]
    rest: str  # the raw text after the keyword (ProxyJump, ProxyCommand and Match read it raw)
    included: tuple[Source, ...] = ()  # Include: the files it reads, in glob order


@dataclass(frozen=True)
class Source:
    path: str
    lines: tuple[Line, ...]
    user_conf: bool  # ~/.ssh/config or -F (and what they include), not /etc/ssh/ssh_config


@dataclass
class Effective:
    """What ssh uses for one alias (the fields `ssh -G` prints that decide where it lands)."""

    alias: str
    hostname: str = ""  # %h-expanded and lowercased, as ssh -G prints it
    user: str | None = None  # None: the local account's name
    port: int | None = None  # None: 22
    identity_files: list[tuple[str, bool, str]] = field(
        default_factory=list
    )  # (as written, user conf, where)
    jump: Jump | None = None  # None also for "ProxyJump none"
    proxy_command: str | None = None
    forwards: list[Forward] = field(default_factory=list)
    clear_forwardings: bool = False
    host_key_alias: str | None = None
    origin: dict[str, str] = field(default_factory=dict)  # keyword -> "FILE:LINE" of the winning value

    def local_forwards(self) -> list[Forward]:
        """The forwards ssh really opens (ClearAllForwardings yes drops them all)."""
        return [] if self.clear_forwardings else list(self.forwards)


# --- loading -------------------------------------------------------------------------------------


class _Loader:
    def __init__(self, account: Account) -> None:
        self.account = account
        self.files = 0

    def read(self, path: Path, *, depth: int, user_conf: bool, check_perm: bool) -> Source:
        self.files += 1
        if self.files > MAX_FILES:
            raise ConfigError(f"more than {MAX_FILES} files through Include lines", file=path)
        try:
            if check_perm:
                _check_perm(path)
            size = path.stat().st_size
            if size > MAX_SSH_CONFIG_BYTES:
                raise ConfigError(f"file is {size} bytes; the limit is {MAX_SSH_CONFIG_BYTES}", file=path)
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise ConfigError("SSH config file not found", file=path) from None
        except IsADirectoryError:
            raise ConfigError("is a directory, not an SSH config file", file=path) from None
        except PermissionError:
            raise ConfigError("permission denied reading the SSH config file", file=path) from None
        lines: list[Line] = []
        for lineno, raw in enumerate(text.split("\n"), 1):  # getline: only \n ends a line
            where = f"{path}:{lineno}"
            split = split_line(raw.rstrip(WHITESPACE + "\f"), where)
            if split is None:
                continue
            keyword, rest = split
            args = tuple(split_args(rest, where))
            included: tuple[Source, ...] = ()
            if keyword == "include":
                included = self._include(args, where, depth, user_conf)
            else:
                check_line(keyword, args, rest, where)
            lines.append(Line(where, keyword, args, rest, included))
        return Source(str(path), tuple(lines), user_conf)

    def _include(self, args: tuple[str, ...], where: str, depth: int, user_conf: bool) -> tuple[Source, ...]:
        if depth >= MAX_INCLUDE_DEPTH:
            raise ConfigError(
                f"Include nested more than {MAX_INCLUDE_DEPTH} deep (an Include loop?)",
                file=where,
                fix="check the Include lines for a file that includes itself",
            )
        sources: list[Source] = []
        for arg in args:
            if not arg:
                raise ConfigError("Include has an empty argument", file=where)
            if arg.startswith("~") and not user_conf:
                raise ConfigError(f"bad include path {arg} ('~' only in a user config)", file=where)
            if arg.startswith("~"):
                pattern = self.account.expand_home(arg)  # glob(3) GLOB_TILDE: $HOME, not passwd
            elif os.path.isabs(arg):
                pattern = arg
            else:
                base = os.path.join(self.account.home, ".ssh") if user_conf else SYSTEM_DIR
                pattern = os.path.join(base, arg)
            for match in sorted(glob.glob(pattern)):
                if os.path.isdir(match):
                    continue  # ssh opens it, reads no line, and goes on
                path = Path(match)
                sources.append(self.read(path, depth=depth + 1, user_conf=user_conf, check_perm=True))
        return tuple(sources)


def _check_perm(path: Path) -> None:
    """ssh refuses (fatal) a config it did not get from -F that others could have written."""
    if not hasattr(os, "getuid"):
        return
    st = path.stat()
    if (st.st_uid not in (0, os.getuid())) or st.st_mode & 0o022:
        raise ConfigError(
            "bad owner or permissions: ssh refuses to read this file",
            file=path,
            fix=f"chmod go-w {path}",
        )


def load(path: str | Path, account: Account, *, user_conf: bool = True, check_perm: bool = False) -> Source:
    """Read one config file and everything it Includes (relative Includes: ~/.ssh, or /etc/ssh)."""
    return _Loader(account).read(Path(path), depth=0, user_conf=user_conf, check_perm=check_perm)


# --- resolution ----------------------------------------------------------------------------------


def _match_pattern(text: str, pattern: str) -> bool:
    """OpenSSH's match_pattern: only `*` and `?` are special, case-sensitive."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def _match_list(text: str, patterns: str, lower: bool) -> int:
    """OpenSSH's match_pattern_list: 1 positive, -1 negated match, 0 none; `lower` is match_hostname
    (host and patterns lowercased)."""
    text = text.lower() if lower else text
    positive = 0
    for sub in patterns.split(","):
        negated = sub.startswith("!")
        sub = sub[1:] if negated else sub
        if _match_pattern(text, sub.lower() if lower else sub):
            if negated:
                return -1
            positive = 1
    return positive


class _Pass:
    """One reading of all the files for one host, as ssh's read_config_file does."""

    def __init__(self, eff: Effective, account: Account, host: str, final: bool) -> None:
        self.eff = eff
        self.account = account
        self.host = host  # what Host lines match: the alias, or the final host name in pass 2
        self.final = final
        self.want_final = False
        self.canonicalize: str | None = None
        self.cnames: str | None = None

    def run(self, sources: list[Source]) -> None:
        for source in sources:
            self._file(source, active=True, never=False)

    def _file(self, source: Source, *, active: bool, never: bool) -> bool:
        for line in source.lines:
            active = self._line(line, active, never, source.user_conf)
        return active

    def _line(self, line: Line, active: bool, never: bool, user_conf: bool) -> bool:
        kw = line.keyword
        if kw == "host":
            if never:
                return False
            hit = False
            for pattern in line.args:
                negated = pattern.startswith("!")
                if _match_pattern(self.host, pattern[1:] if negated else pattern):
                    if negated:
                        return False
                    hit = True
            return hit
        if kw == "match":
            return self._match(line, never)
        if kw == "include":
            for source in line.included:
                self._file(source, active=active, never=never or not active)
            return active
        if active:
            self._set(line, user_conf)
        return active

    def _match(self, line: Line, never: bool) -> bool:
        """match_cfg_line. Under a never-matching Include ssh still evaluates the line (a `Match
        final` there still asks for the final pass) but ignores its outcome: so do we, unraised."""
        eff = self.eff
        if self.final:
            host = eff.hostname
        elif "hostname" in eff.origin:
            host = _expand_hostname(eff.hostname, eff.alias, eff.origin["hostname"])
        else:
            host = eff.alias
        user = eff.user if eff.user is not None else self.account.name
        result = True
        unknown: tuple[str, str] | None = None
        for negate, attrib, arg in parse_match(line.rest, line.where):
            if attrib == "all":
                return result and not negate
            if attrib in ("canonical", "final"):
                self.want_final |= attrib == "final" and not negate
                hit = self.final
            elif attrib == "host":
                hit = _match_list(host, arg, lower=True) == 1
            elif attrib == "originalhost":
                hit = _match_list(eff.alias, arg, lower=True) == 1
            elif attrib == "user":
                hit = _match_list(user, arg, lower=False) == 1
            elif attrib == "localuser":
                hit = _match_list(self.account.name, arg, lower=False) == 1
            else:  # exec, localnetwork, tagged, ...: decided outside the file
                if result and unknown is None:
                    unknown = (attrib, arg)
                continue
            if hit == negate:
                result = False
        if never:
            return False
        if result and unknown is not None:
            attrib, arg = unknown
            why = (
                "it runs a command, which clawd does not do while importing"
                if attrib == "exec"
                else "its outcome depends on the machine or ssh's command line, not on the file"
            )
            raise Unfollowable(
                f"cannot follow 'Match {attrib} {arg}' for {eff.alias}: {why}",
                file=line.where,
                fix="add the profile by hand: clawd profile add NAME --ssh user@host[:port] ...",
            )
        return result

    def _set(self, line: Line, user_conf: bool) -> None:
        eff, kw, args, where = self.eff, line.keyword, line.args, line.where

        def first(key: str) -> bool:
            if key in eff.origin:
                return False
            eff.origin[key] = where
            return True

        if kw == "hostname" and not self.final and first("hostname"):
            eff.hostname = args[0]  # in the final pass the name is settled (ssh sets it before pass 2)
        elif kw == "user" and first("user"):
            eff.user = args[0]
        elif kw == "port" and first("port"):
            eff.port = parse_port(args[0], "Port", where)
        elif kw == "hostkeyalias" and first("hostkeyalias"):
            eff.host_key_alias = args[0]
        elif kw == "clearallforwardings" and first("clearallforwardings"):
            eff.clear_forwardings = args[0].lower() in ("yes", "true")
        elif kw == "identityfile":
            # add_identity_file: no duplicates among the user's (or among the system's) files
            if all((raw, conf) != (args[0], user_conf) for raw, conf, _ in eff.identity_files):
                eff.identity_files.append((args[0], user_conf, where))
                eff.origin.setdefault("identityfile", where)
        elif kw == "localforward":
            fwd = parse_forward(list(args), where)
            if fwd not in eff.forwards:  # forward_equals: the same forward written twice opens once
                eff.forwards.append(fwd)
        elif kw == "proxyjump":
            # `ProxyJump none` or any ProxyCommand (even `none`) before it: later ProxyJumps lose.
            if "proxyjump" not in eff.origin and "proxycommand" not in eff.origin:
                eff.origin["proxyjump"] = where
                eff.jump = parse_jump(line.rest, where)
                if eff.jump is not None:
                    eff.origin["proxycommand"] = where  # a real jump is ssh's ProxyCommand
        elif kw == "proxycommand" and first("proxycommand"):
            command = line.rest.lstrip(WHITESPACE + "=")
            eff.proxy_command = None if command == "none" else command
        elif kw == "canonicalizehostname" and self.canonicalize is None:
            self.canonicalize = args[0].lower()
            eff.origin["canonicalizehostname"] = where
        elif kw == "canonicalizepermittedcnames" and self.cnames is None:
            self.cnames = " ".join(args)
            eff.origin["canonicalizepermittedcnames"] = where


def _expand_hostname(value: str, alias: str, where: str) -> str:
    """HostName knows %h (the alias) and %%; ssh stops on any other token."""
    return expand_tokens(value, {"h": alias}, where, what="HostName", env=False)


def _is_ip(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except (OSError, ValueError):
            pass
    return False


def resolve(sources: list[Source], alias: str, account: Account) -> Effective:
    """The options `ssh ALIAS` uses, given the files ssh reads in order (user config, then system)."""
    eff = Effective(alias=alias)
    first = _Pass(eff, account, alias, final=False)
    first.run(sources)
    host = alias
    if "hostname" in eff.origin:
        host = _expand_hostname(eff.hostname, alias, eff.origin["hostname"])
    host = host.lower()
    canon = first.canonicalize if first.canonicalize in ("yes", "true", "always") else None
    direct = eff.jump is None and eff.proxy_command is None
    if canon is not None and (direct or canon == "always") and not _is_ip(host):
        raise Unfollowable(
            f"cannot follow CanonicalizeHostname {canon} for {alias}: ssh would look the name up in DNS",
            file=eff.origin["canonicalizehostname"],
            fix="give the full name in HostName and drop CanonicalizeHostname for this host",
        )
    if first.cnames is not None and first.cnames.lower() != "none" and (direct or canon == "always"):
        raise Unfollowable(
            f"cannot follow CanonicalizePermittedCNAMEs for {alias}: ssh would follow DNS CNAMEs",
            file=eff.origin["canonicalizepermittedcnames"],
        )
    eff.hostname = host
    if first.want_final or canon is not None:
        _Pass(eff, account, host, final=True).run(sources)
    return eff


__all__ = [
    "Effective",
    "Line",
    "Source",
    "Unfollowable",
    "load",
    "resolve",
]
