"""The pure half of `clawd setup-remote`: the step list, the restricted key line, authorized_keys
edits and the parsing of what the VPS reported. No I/O here, so every rule is unit-testable.

Why the key line is exactly this: `restrict` turns off everything (pty, agent and X11
forwarding, ~/.ssh/rc, port forwarding), `port-forwarding` turns forwarding back on, the two
`permitopen` limit it to the gateway port on both loopback spellings (sshd matches the requested
host string literally), and `command="/bin/false"` replaces any command a session asks for. A
tunnel (`ssh -N -L`, asyncssh's direct-tcpip) opens no session, so it still works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from clawd_gateway import secret_sources

#: The steps in the order they run: (id, title). The progress reporter shows them as a list.
STEPS: tuple[tuple[str, str], ...] = (
    ("login", "log in to the VPS"),
    ("discover", "find the gateway on the VPS"),
    ("install", "install clawd-gateway on the VPS"),
    ("key", "add a key for the tunnel only"),
    ("audit", "audit the VPS"),
    ("local", "write the profile and the secret"),
    ("autostart", "start at login"),
    ("up", "bring the tunnel up and check health"),
)
UNDO_STEPS: tuple[tuple[str, str], ...] = (
    ("down", "bring the tunnel down"),
    ("login", "log in to the VPS"),
    ("key", "remove the tunnel key from the VPS"),
    ("purge", "remove the clawd-gateway it installed"),
    ("local", "remove the key pair, profile, secret and autostart mark"),
)

KEY_COMMENT_PREFIX = "clawd-"


def key_path_name(name: str) -> str:
    """`~/.ssh/clawd_NAME`: one key per profile, named so a user knows what it is for."""
    return f"clawd_{name}"


def key_line(public_key: str, name: str, port: int) -> str:
    """The authorized_keys line (no newline) for the tunnel key of profile `name`."""
    algo, blob = public_key.split()[:2]
    opts = (
        f'restrict,port-forwarding,permitopen="127.0.0.1:{port}",permitopen="[::1]:{port}",'
        'command="/bin/false"'
    )
    return f"{opts} {algo} {blob} {KEY_COMMENT_PREFIX}{name}"


class KeyLineConflict(ValueError):
    """authorized_keys already has a line for our key that setup did not write (or that does not
    restrict it): sshd uses the first line whose key matches, so adding ours would change nothing."""

    def __init__(self, lineno: int, why: str) -> None:
        super().__init__(f"line {lineno} {why}")
        self.lineno, self.why = lineno, why


def parse_key_line(line: str) -> tuple[str, str, str, str] | None:
    """(options, key type, base64 blob, comment) of an authorized_keys line; None for a blank
    line, a comment or something that is no key. Options may hold quoted spaces (`command="a b"`),
    so the options field ends at the first whitespace outside quotes, as sshd reads it."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    fields = text.split(None, 2)
    if len(fields) >= 2 and _is_key_type(fields[0]):
        return "", fields[0], fields[1], fields[2].strip() if len(fields) > 2 else ""
    quoted, end = False, len(text)
    for i, c in enumerate(text):
        if c == '"':
            quoted = not quoted
        elif c in " \t" and not quoted:
            end = i
            break
    rest = text[end:].split(None, 2)
    if len(rest) < 2 or not _is_key_type(rest[0]):
        return None
    return text[:end], rest[0], rest[1], rest[2].strip() if len(rest) > 2 else ""


def _is_key_type(word: str) -> bool:
    return word.startswith(("ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-")) or word.endswith("@openssh.com")


def _restricted(options: str) -> bool:
    return "restrict" in [opt.strip().lower() for opt in options.split(",")]


def add_line(text: str, line: str) -> tuple[str, str]:
    """authorized_keys with our `line` for its key exactly once: (text, "added" | "replaced" |
    "unchanged"). Lines are matched by key (type and base64 blob), not as whole lines, because
    sshd uses the FIRST line whose key matches: our own restricted `clawd-NAME` line for this key
    (an older gateway port) is replaced in place, and later copies of it are dropped; any other
    line for the key (another comment, or one without `restrict`) raises KeyLineConflict, since it
    would keep its own rights whatever we add. A file without a final newline gets one before an
    appended line, so the new line never joins the last key."""
    ours = parse_key_line(line)
    assert ours is not None, line
    _opts, algo, blob, comment = ours
    out: list[str] = []
    placed = False
    for lineno, raw in enumerate(text.splitlines(keepends=True), 1):
        body = raw.rstrip("\r\n")
        parsed = parse_key_line(body)
        if parsed is None or (parsed[1], parsed[2]) != (algo, blob):
            out.append(raw)
            continue
        if parsed[3] != comment or not _restricted(parsed[0]):
            why = "is not the one setup-remote writes" if parsed[3] != comment else "does not restrict it"
            raise KeyLineConflict(lineno, f"already holds this key ({parsed[3] or 'no comment'}) and {why}")
        if not placed:
            out.append(line + raw[len(body) :])
            placed = True
    if placed:
        new = "".join(out)
        return new, "unchanged" if new == text else "replaced"
    if text and not text.endswith("\n"):
        text += "\n"
    return text + line + "\n", "added"


def remove_line(text: str, line: str, added_newline: bool) -> tuple[str, bool]:
    """Undo `add_line` byte for byte: drop exactly our line (and the newline it had to add
    before it, if it did and our line is still the last one). Other lines are untouched."""
    ours = line + "\n"
    if text.endswith(ours) and (len(text) == len(ours) or text[-len(ours) - 1] == "\n"):
        body = text[: -len(ours)]
        if added_newline and body.endswith("\n"):
            body = body[:-1]
        return body, True
    lines = text.splitlines(keepends=True)
    kept = [raw for raw in lines if raw.rstrip("\r\n") != line]
    if len(kept) == len(lines):
        return text, False
    return "".join(kept), True


@dataclass
class Listener:
    """One TCP listener on the gateway port, as `ss -ltnp` (or /proc/net/tcp) showed it."""

    address: str
    port: int
    process: str | None = None  # None: not ours to see (another user's) or no ss
    pid: int | None = None


_SS_PROC = re.compile(r'users:\(\("([^"]*)",pid=(\d+)')


def parse_ss(text: str, port: int) -> list[Listener]:
    """`ss -ltnpH` lines for `port` (both families)."""
    out: list[Listener] = []
    for raw in text.splitlines():
        parts = raw.split()
        if len(parts) < 4:
            continue
        local = parts[3]
        addr, _, port_text = local.rpartition(":")
        if not port_text.isdigit() or int(port_text) != port:
            continue
        found = _SS_PROC.search(raw)
        out.append(
            Listener(
                addr.strip("[]"),
                port,
                found.group(1) if found else None,
                int(found.group(2)) if found else None,
            )
        )
    return out


def parse_proc_net_tcp(text: str, port: int) -> list[Listener]:
    """/proc/net/tcp{,6} rows in state 0A (LISTEN) on `port`; used where `ss` is missing."""
    out: list[Listener] = []
    for raw in text.splitlines():
        parts = raw.split()
        if len(parts) < 4 or parts[3] != "0A" or ":" not in parts[1]:
            continue
        addr_hex, _, port_hex = parts[1].partition(":")
        try:
            if int(port_hex, 16) != port:
                continue
        except ValueError:
            continue
        out.append(Listener(_hex_addr(addr_hex), port))
    return out


def _hex_addr(addr_hex: str) -> str:
    if len(addr_hex) == 8:
        return ".".join(str(int(addr_hex[i : i + 2], 16)) for i in (6, 4, 2, 0))
    return "::1" if addr_hex.endswith("01000000") and set(addr_hex[:24]) == {"0"} else addr_hex


@dataclass
class GatewayAuth:
    """What the VPS says about the gateway's auth; `secret` never leaves memory except into the
    local keyring."""

    mode: str = "token"  # "token" | "password" | "none"
    secret: str | None = field(default=None, repr=False)
    source: str = ""  # where the secret was read, for the summary (a path or "process environment")


def auth_from_config(config: Any, env: dict[str, str], mode: str | None = None) -> GatewayAuth:
    """gateway.auth.{mode,token,password} of an OpenClaw/clawd config; `${VAR}` values are looked
    up in `env` (the gateway's own environment or env file). `mode` (the gateway's `--auth` flag)
    overrides the config's, so the secret returned is the one of the mode in force."""
    gateway = config.get("gateway") if isinstance(config, dict) else None
    auth = gateway.get("auth") if isinstance(gateway, dict) else None
    auth = auth if isinstance(auth, dict) else {}
    if mode is None:
        mode = auth.get("mode") if isinstance(auth.get("mode"), str) else None
    token, password = _value(auth.get("token"), env), _value(auth.get("password"), env)
    if mode is None:
        mode = "password" if password and not token else "token"
    secret = password if mode == "password" else token if mode == "token" else None
    return GatewayAuth(mode, secret, "")


def _value(raw: Any, env: dict[str, str]) -> str | None:
    if isinstance(raw, dict):  # a SecretRef such as {"$env": "VAR"} / {"source": "env", "id": "VAR"}
        var = raw.get("$env") or (raw.get("id") if raw.get("source") == "env" else None)
        return env.get(var) if isinstance(var, str) else None
    if not isinstance(raw, str) or not raw:
        return None
    ref = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", raw.strip())
    return env.get(ref.group(1)) if ref else raw


def choose_secret(
    mode: str,
    *,
    flag: str | None,
    config_secret: str | None,
    config_source: str,
    proc_env: dict[str, str],
    unit_env: dict[str, str],
) -> tuple[str, str] | None:
    """(secret, where it was read) for the gateway's auth `mode`, in the project's one order
    (clawd_gateway.secret_sources): its command-line flag > its config > OPENCLAW_* > CLAWDBOT_*.
    The environment is the process's, with its systemd unit's filling in what the process's
    (unreadable, or not shown) lacks."""
    env = {**unit_env, **proc_env}
    found = secret_sources.pick(
        mode, env, flag=flag, flag_name="the gateway's command line",
        config=config_secret, config_key=config_source,
    )  # fmt: skip
    if found is None:
        return None
    if found.source == "the gateway's command line":
        return found.value, found.source
    if found.source.startswith("config "):
        return found.value, config_source or found.source
    var = found.source.removeprefix("env ")
    where = "the gateway's environment" if proc_env.get(var) == found.value else "its systemd unit"
    return found.value, f"{where} ({var})"


def config_port(config: Any) -> int | None:
    gateway = config.get("gateway") if isinstance(config, dict) else None
    port = gateway.get("port") if isinstance(gateway, dict) else None
    return port if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536 else None


def parse_environ(raw: str) -> dict[str, str]:
    """/proc/PID/environ (NUL-separated)."""
    out: dict[str, str] = {}
    for item in raw.split("\0"):
        key, sep, value = item.partition("=")
        if sep and key:
            out[key] = value
    return out


def flag_value(argv: list[str], flag: str) -> str | None:
    """`--token X` or `--token=X` in a command line."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1 :]
    return None


__all__ = [
    "STEPS",
    "UNDO_STEPS",
    "GatewayAuth",
    "KeyLineConflict",
    "Listener",
    "add_line",
    "auth_from_config",
    "choose_secret",
    "config_port",
    "flag_value",
    "key_line",
    "key_path_name",
    "parse_environ",
    "parse_key_line",
    "parse_proc_net_tcp",
    "parse_ss",
    "remove_line",
]
