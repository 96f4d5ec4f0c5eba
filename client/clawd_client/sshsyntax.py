"""The pieces of ssh_config(5) syntax, each written after the OpenSSH function that reads it.

Why a module of its own: sshconfig.py decides *which* lines apply to a host; this one only says
what a single line or value means (argv_split, strdelim, a2port, parse_forward, parse_jump,
percent_expand), so each stays small and both are checked against `ssh -G` by the tests.
Every error names FILE:LINE and is one that ssh itself stops on.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from clawd_gateway.errors import ConfigError

WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class Account:
    """Who runs ssh. OpenSSH takes `~` in IdentityFile, %d and %u from the passwd entry, but `~`
    in Include from $HOME (glob's GLOB_TILDE); the two differ when tests (or sudo) set HOME."""

    name: str
    uid: int
    pw_dir: str
    home: str

    @classmethod
    def current(cls) -> Account:
        home = str(Path.home())
        try:
            import pwd

            pw = pwd.getpwuid(os.getuid())
            return cls(pw.pw_name, pw.pw_uid, pw.pw_dir, home)
        except (ImportError, KeyError, AttributeError):  # Windows, or a uid without an entry
            return cls(getpass.getuser(), -1, home, home)

    @classmethod
    def at(cls, home: str | Path) -> Account:
        """The current user with both homes at `home` (tests, and `--home`-style overrides)."""
        me = cls.current()
        return cls(me.name, me.uid, str(home), str(home))

    def expand_home(self, path: str) -> str:
        """`~` and `~/x` from $HOME (Include); `~user/x` from that user's passwd entry."""
        if path == "~" or path.startswith("~/"):
            return self.home + path[1:]
        return os.path.expanduser(path)

    def expand_tilde(self, path: str, where: str) -> str:
        """ssh's tilde_expand_filename: `~` from the passwd entry (never $HOME)."""
        if not path.startswith("~"):
            return path
        user, _, tail = path[1:].partition("/")
        if not user:
            base = self.pw_dir
        else:
            try:
                import pwd

                base = pwd.getpwnam(user).pw_dir
            except (ImportError, KeyError):
                raise ConfigError(f"no such user {user!r} in {path!r}", file=where) from None
        return base.rstrip("/") + "/" + tail if tail else base


def split_args(text: str, where: str) -> list[str]:
    """OpenSSH's argv_split: quotes group words; a backslash escapes only a quote, a backslash or
    (outside quotes) a space, and is kept otherwise (Windows paths survive); `#` starting a word
    outside quotes begins a comment."""
    args: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] == "#":
            break
        word: list[str] = []
        quote: str | None = None
        while i < n:
            c = text[i]
            if c == "\\" and i + 1 < n:
                nxt = text[i + 1]
                if nxt in "'\"\\" or (quote is None and nxt == " "):
                    word.append(nxt)
                    i += 2
                    continue
                word.append(c)
                i += 1
                continue
            if quote is None and c in " \t":
                break
            if quote is None and c in "'\"":
                quote = c
            elif c == quote:
                quote = None
            else:
                word.append(c)
            i += 1
        if quote is not None:
            raise ConfigError("unterminated quoted string", file=where)
        args.append("".join(word))
    return args


def strdelim(s: str | None) -> tuple[str | None, str | None]:
    """OpenSSH's strdelim: one token ending at whitespace, `"` or one `=`; (token, rest or None)."""
    if s is None:
        return None, None
    m = next((i for i, c in enumerate(s) if c in WHITESPACE + '"='), None)
    if m is None:
        return s, None
    if s[m] == '"':
        s = s[:m] + s[m + 1 :]
        end = s.find('"', m)
        if end < 0:
            return None, None  # no matching quote
        return s[:end], s[end + 1 :].lstrip(WHITESPACE)
    rest = s[m + 1 :].lstrip(WHITESPACE)
    if s[m] != "=" and rest.startswith("="):
        rest = rest[1:].lstrip(WHITESPACE)
    return s[:m], rest


def split_line(line: str, where: str) -> tuple[str, str] | None:
    """(lowercased keyword, the rest) as process_config_line sees them; None for blanks/comments."""
    keyword, rest = strdelim(line)
    if keyword == "":
        keyword, rest = strdelim(rest)
    if not keyword or keyword.startswith("#"):
        return None
    rest = (rest or "").lstrip(WHITESPACE)
    if not rest:
        raise ConfigError(f"no argument after keyword {keyword.lower()!r}", file=where)
    return keyword.lower(), rest


def parse_match(rest: str, where: str) -> list[tuple[bool, str, str]]:
    """A Match line's criteria as (negated, lowercased attribute, argument), checked as ssh checks them."""
    criteria: list[tuple[bool, str, str]] = []
    cp: str | None = rest
    while True:
        attrib, cp = strdelim(cp)
        if not attrib or attrib.startswith("#"):
            break
        negate = attrib.startswith("!")
        name = (attrib[1:] if negate else attrib).lower()
        if name == "all":  # alone, or after one criterion (ssh_config(5): canonical or final)
            after, _ = strdelim(cp)
            if len(criteria) > 1 or (after and not after.startswith("#")):
                raise ConfigError("'all' cannot be combined with other Match attributes", file=where)
            criteria.append((negate, name, ""))
            break
        if name in ("canonical", "final"):
            criteria.append((negate, name, ""))
            continue
        arg, cp = strdelim(cp)
        if not arg or arg.startswith("#"):
            raise ConfigError(f"missing Match criteria for {name}", file=where)
        criteria.append((negate, name, arg))
    if not criteria:
        raise ConfigError("Match needs one or more attributes", file=where)
    return criteria


def a2port(text: str) -> int:
    """OpenSSH's a2port: 0-65535, or a service name from the services database; -1 otherwise."""
    if text.isdigit():
        return int(text) if int(text) <= 65535 else -1
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        return -1


def parse_port(text: str, what: str, where: str) -> int:
    port = a2port(text)
    if port <= 0:
        raise ConfigError(f"{what} {text!r} is not a port number (1-65535)", file=where)
    return port


_DOLLAR = re.compile(r"\$\{([^}]*)\}")


def dollar_expand(text: str, where: str) -> str:
    def var(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            raise ConfigError(f"environment variable ${{{m.group(1)}}} is not set", file=where)
        return value

    return _DOLLAR.sub(var, text)


def expand_tokens(text: str, tokens: dict[str, str], where: str, *, what: str, env: bool = True) -> str:
    """percent_dollar_expand: `%x` from tokens, `%%`, and `${VAR}` when env; unknown tokens stop ssh."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            key = text[i + 1 : i + 2]
            if key == "%":
                out.append("%")
            elif key in tokens:
                out.append(tokens[key])
            else:
                raise ConfigError(f"{what} {text!r}: unknown token %{key} (ssh stops here too)", file=where)
            i += 2
        elif env and text.startswith("${", i):
            end = text.find("}", i)
            if end < 0:
                raise ConfigError(f"{what} {text!r}: unterminated ${{", file=where)
            out.append(dollar_expand(text[i : end + 1], where))
            i = end + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class Forward:
    """One LocalForward as parse_forward reads it; a `*_path` is a Unix socket."""

    bind: str | None  # None: ssh's default (loopback unless GatewayPorts)
    port: int
    host: str | None
    host_port: int
    where: str = field(compare=False)  # equal forwards are one forward wherever written
    listen_path: str | None = None
    connect_path: str | None = None

    def ssh_g(self) -> str:
        """The value `ssh -G` prints on its `localforward` line."""
        listen = self.listen_path or (str(self.port) if self.bind is None else f"[{self.bind}]:{self.port}")
        target = self.connect_path or f"[{self.host}]:{self.host_port}"
        return f"{listen} {target}"


def _fwd_fields(spec: str) -> list[tuple[str, bool]] | None:
    """parse_fwd_field over a whole spec: up to four `:` fields, `[...]` literal, `\\` escapes."""
    rest = spec.lstrip(" \t\n\r\f\v")
    fields: list[tuple[str, bool]] = []
    while len(fields) < 4 and rest:
        if rest[0] == "[":
            end = rest.find("]")
            if end < 0 or (end + 1 < len(rest) and rest[end + 1] != ":"):
                return None
            arg = rest[1:end]
            fields.append((arg, "/" in arg))
            rest = rest[end + 2 :]
            continue
        buf: list[str] = []
        j = 0
        while j < len(rest) and rest[j] != ":":
            if rest[j] == "\\":
                if j + 1 >= len(rest):
                    return None
                j += 1
            buf.append(rest[j])
            j += 1
        arg = "".join(buf)
        fields.append((arg, "/" in arg))
        rest = rest[j + 1 :]
    return fields if not rest else None


def parse_forward(args: list[str], where: str) -> Forward:
    """`LocalForward [bind_address:]port host:hostport` (or Unix socket paths), as ssh reads it."""
    usage = "LocalForward [bind_address:]port host:hostport, e.g. LocalForward 18789 127.0.0.1:18789"
    if len(args) == 1:
        raise ConfigError(
            f"LocalForward {args[0]!r} has no target argument (OpenSSH rejects this line too)",
            file=where,
            fix=f"write it as two arguments: {usage}",
        )
    if len(args) != 2:
        raise ConfigError(f"LocalForward takes two arguments, got {len(args)}", file=where, fix=usage)
    spec = f"{args[0]}:{args[1]}"
    fields = _fwd_fields(dollar_expand(spec, where))
    bad = ConfigError(f"bad forwarding specification {args[0]} {args[1]}", file=where, fix=usage)
    if fields is None or len(fields) < 2:
        raise bad
    (a, a_path), (b, b_path) = fields[0], fields[1]
    if len(fields) == 2 and a_path and b_path:
        return Forward(None, 0, None, 0, where, listen_path=a, connect_path=b)
    if len(fields) == 2 and b_path:
        return Forward(None, parse_port(a, "LocalForward port", where), None, 0, where, connect_path=b)
    if len(fields) == 3 and a_path:
        port = parse_port(fields[2][0], "LocalForward hostport", where)
        return Forward(None, 0, b, port, where, listen_path=a)
    if len(fields) == 3 and fields[2][1]:
        port = parse_port(b, "LocalForward port", where)
        return Forward(a, port, None, 0, where, connect_path=fields[2][0])
    if len(fields) == 3:
        bind, listen, host, target = None, a, b, fields[2][0]
    elif len(fields) == 4:
        bind, listen, host, target = a, b, fields[2][0], fields[3][0]
    else:
        raise bad
    return Forward(
        bind,
        parse_port(listen, "LocalForward port", where),
        host,
        parse_port(target, "LocalForward hostport", where),
        where,
    )


_SINGLE_VALUE = {"hostname", "user", "port", "identityfile", "hostkeyalias", "clearallforwardings"}
_NEEDS_ARG = _SINGLE_VALUE | {"host", "localforward", "canonicalizehostname"}
_YES_NO = ("yes", "no", "true", "false")


def check_line(keyword: str, args: tuple[str, ...], rest: str, where: str) -> None:
    """Reject what ssh rejects on any line, active or not (ssh parses every line for every host)."""
    if keyword in _NEEDS_ARG and (not args or not args[0]):
        raise ConfigError(f"{keyword} is missing its argument", file=where)
    if keyword in _SINGLE_VALUE and len(args) > 1:
        raise ConfigError(f"{keyword} takes one argument; extra arguments at end of line", file=where)
    if keyword == "host" and not all(args):
        raise ConfigError("Host has an empty pattern", file=where)
    elif keyword == "match":
        parse_match(rest, where)
    elif keyword == "port":
        parse_port(args[0], "Port", where)
    elif keyword == "localforward":
        parse_forward(list(args), where)
    elif keyword == "proxyjump":
        parse_jump(rest, where)
    elif keyword == "clearallforwardings" and args[0].lower() not in _YES_NO:
        raise ConfigError(f"ClearAllForwardings {args[0]!r} is not yes or no", file=where)
    elif keyword == "canonicalizehostname" and args[0].lower() not in (*_YES_NO, "always"):
        raise ConfigError(f"CanonicalizeHostname {args[0]!r} is not yes, no or always", file=where)


@dataclass(frozen=True)
class Hop:
    user: str | None
    host: str
    port: int | None

    def text(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        return f"{user}{host}:{self.port}" if self.port else f"{user}{host}"


@dataclass(frozen=True)
class Jump:
    """A ProxyJump chain, hops in connection order, plus what `ssh -G` prints for it."""

    hops: tuple[Hop, ...]
    ssh_g: str


def _hop(text: str, where: str) -> Hop:
    """parse_ssh_uri, else parse_user_host_port."""
    bad = ConfigError(f"invalid ProxyJump host {text!r}", file=where)
    if text.startswith("ssh://"):
        text = text[len("ssh://") :].rstrip("/")
        if "/" in text:
            raise bad
    user, at, hostport = text.rpartition("@")
    if at and not user:
        raise bad
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise bad
        host, tail = hostport[1:end], hostport[end + 1 :]
        if tail and not tail.startswith((":", "/")):
            raise bad
        port_text = tail[1:]
    else:
        cut = next((i for i, c in enumerate(hostport) if c in ":/"), len(hostport))
        host, port_text = hostport[:cut], hostport[cut + 1 :]
    if not host:
        raise bad
    port = None
    if port_text:
        port = a2port(port_text)
        if port <= 0:
            raise bad
    return Hop(user or None, host, port)


def parse_jump(rest: str, where: str) -> Jump | None:
    """ProxyJump's raw value (comment cut, first word): None for `none`, else the checked chain."""
    words = rest.lstrip(WHITESPACE + "=").split("#", 1)[0].split()
    if not words:
        raise ConfigError("ProxyJump needs an argument", file=where)
    value = words[0]
    if value.lower() == "none":
        return None
    hops = tuple(_hop(part, where) for part in value.split(","))
    extra = value.rsplit(",", 1)[0] + "," if "," in value else ""
    return Jump(hops, extra + hops[-1].text())
