"""Step 1: log in to the VPS with what the user already has (agent, default keys, a ~/.ssh/config
alias, a jump host, --identity), host key checked the way `clawd connect` checks it.

Why it reuses the engine's options and host-key policy: setup must land where the tunnel will
land later (same config reading, same known_hosts), and a changed host key must stop here with
exactly the message `clawd connect` gives. An unknown key is shown (SHA256) and asked about; the
answer is written to known_hosts by the engine's `remember` and the login is retried, so the
second connection is verified against what the user accepted. `--yes` accepts a new key, never a
changed one. When every key is refused and someone is at the terminal, the account's password is
asked once and used for this session only (never stored).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clawd_gateway.errors import UserError

from .._asyncssh import asyncssh
from ..engine import (
    HostKeyChanged,
    HostKeyPolicy,
    HostKeyUnknown,
    SshClient,
    connect_options,
    default_known_hosts,
    fingerprint,
    host_pattern,
    remember,
)
from ..profiles import Profile, SshTarget
from .remote import Remote


class LoginFailed(UserError):
    exit_code = 4  # needs the user, like `clawd connect`


class Unreachable(UserError):
    exit_code = 3


@dataclass
class Asker:
    """How to ask the person at the terminal; `interactive` False means nobody is there."""

    interactive: bool
    confirm: Callable[[str], bool]
    password: Callable[[str], str]


@dataclass
class LoginResult:
    remote: Remote
    known_hosts: Path
    accepted_key: str | None  # the fingerprint this run added to known_hosts, if any
    used_password: bool


async def login(
    target: SshTarget, *, yes: bool, asker: Asker, dry_run: bool, on_would: Callable[[str], None]
) -> LoginResult:
    known = Path(target.known_hosts).expanduser() if target.known_hosts else default_known_hosts()
    accepted: str | None = None
    password: str | None = None
    for _ in range(3):  # at most: unknown key accepted, then password asked, then in
        try:
            conn = await _connect(target, known, password)
        except HostKeyUnknown as unknown:
            fp = fingerprint(unknown.key)
            if not (yes or _ask_host_key(asker, unknown, fp)):
                raise
            remember(known, unknown.host, unknown.port, unknown.key)
            accepted = fp
            continue
        except LoginFailed:
            if password is not None or not asker.interactive:
                raise
            password = asker.password(f"{target.display()}: no key was accepted; the account's password: ")
            if not password:
                raise
            continue
        remote = Remote(conn, dry_run=dry_run, target=target.display(), on_would=on_would)
        return LoginResult(remote, known, accepted, password is not None)
    raise LoginFailed(f"SSH login to {target.display()} did not succeed")


def _ask_host_key(asker: Asker, unknown: HostKeyUnknown, fp: str) -> bool:
    if not asker.interactive:
        return False
    return asker.confirm(
        f"The SSH host key of {host_pattern(unknown.host, unknown.port)} is not known yet:\n"
        f"  {unknown.key.get_algorithm()} {fp}\n"
        "Compare it with the server's (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub). Trust it? [y/N] "
    )


async def _connect(target: SshTarget, known: Path, password: str | None) -> asyncssh.SSHClientConnection:
    policy = HostKeyPolicy(known, accept_new=False)
    client = SshClient(policy, lambda _why: None)
    opts = connect_options(Profile(name="setup", ssh=target), policy)
    opts["keepalive_interval"] = 15
    if password is not None:
        opts["password"] = password
    else:
        opts["password_auth"] = False
        opts["kbdint_auth"] = False
    where = target.display()
    try:
        conn, _ = await asyncssh.create_connection(lambda: client, target.host, **opts)
    except asyncssh.HostKeyNotVerifiable as exc:
        verdict = policy.verdict
        if isinstance(verdict, HostKeyUnknown | HostKeyChanged):
            raise verdict from None
        raise LoginFailed(f"{where}: {exc}") from None
    except asyncssh.PermissionDenied:
        how = "the password was refused" if password is not None else "no key was accepted"
        keys = f"identity {target.identity}" if target.identity else "agent, ~/.ssh keys and ~/.ssh/config"
        raise LoginFailed(
            f"SSH login to {where} was refused: {how} (tried: {keys})",
            fix=f"check that `ssh {where}` works (or pass --identity FILE); on a terminal clawd asks for "
            "the account's password once",
        ) from None
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
        raise LoginFailed(f"cannot use the SSH key {target.identity}: {exc}") from None
    except asyncssh.ConfigParseError as exc:
        raise UserError(f"~/.ssh/config: {exc}") from None
    except socket.gaierror as exc:
        raise Unreachable(
            f"cannot resolve {target.host}: {exc.strerror}", fix="check the host name"
        ) from None
    except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise Unreachable(
            f"cannot reach {where} over SSH: {reason}",
            fix="check the address and port, and that sshd runs there (`ssh -v " + where + "`)",
        ) from None
    return conn


__all__ = ["Asker", "LoginFailed", "LoginResult", "Unreachable", "login"]
