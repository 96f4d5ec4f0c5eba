"""Where an SSH connection lands: what `ssh ALIAS` does, what clawd does with a profile, and the
smallest profile that makes the two agree.

Why: the issue asks to let asyncssh resolve the alias at connect time whenever that matches ssh
(a profile that says just `vps` follows later edits of ~/.ssh/config, like ssh does), and to copy
values into the profile only where asyncssh would read the config differently. asyncssh agrees
with ssh on ordinary configs (first value wins, `Host *` included) but not on all of them, so the
import asks asyncssh itself, through the same options call the engine makes, and compares.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass, replace
from pathlib import Path

from .profiles import SshTarget
from .sshconfig import Effective, Unfollowable
from .sshsyntax import Account, Hop, expand_tokens

DEFAULT_KEYS = None  # Landing.identities for "agent and the default key files"
# What ssh tries when no IdentityFile applies (ssh -G lists them): the same idea as asyncssh's list.
DEFAULT_KEY_FILES = ("id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss", "id_dsa")
_PLAIN_COMMAND = re.compile(r"[A-Za-z0-9_./:@%+=, -]*")


@dataclass(frozen=True)
class Landing:
    """The parts of a connection that decide where it ends up and as whom."""

    host: str  # compared case-insensitively (DNS names are)
    port: int
    user: str
    identities: tuple[str, ...] | None  # expanded paths in the order tried; None: the default keys
    jump: tuple[Hop, ...]
    proxy_command: str | None = None

    def same_as(self, other: Landing) -> list[str]:
        """The names of the fields that differ."""
        fields = ("port", "user", "identities", "jump", "proxy_command")
        diff = [f for f in fields if getattr(self, f) != getattr(other, f)]
        return (["host"] if self.host.lower() != other.host.lower() else []) + diff

    def describe(self) -> str:
        keys = "default keys" if self.identities is None else ", ".join(self.identities) or "no key file"
        via = f" via {','.join(h.text() for h in self.jump)}" if self.jump else ""
        via += f" via ProxyCommand {self.proxy_command}" if self.proxy_command else ""
        return f"{self.user}@{self.host}:{self.port}{via} with {keys}"


def identity_tokens(
    account: Account, *, alias: str, host: str, port: int, user: str, key_alias: str | None
) -> dict[str, str]:
    """The tokens ssh 9.2 knows in IdentityFile (DEFAULT_CLIENT_PERCENT_EXPAND_ARGS)."""
    this = socket.gethostname()
    conn = hashlib.sha1(f"{this}{host}{port}{user}".encode(), usedforsecurity=False).hexdigest()
    return {
        "C": conn,
        "L": this.split(".")[0],
        "i": str(account.uid),
        "k": key_alias or alias,
        "l": this,
        "n": alias,
        "p": str(port),
        "d": account.pw_dir,
        "h": host,
        "r": user,
        "u": account.name,
    }


def openssh_landing(eff: Effective, account: Account) -> Landing:
    """What ssh 9.2 does with the resolved options (ssh.c: tilde, then %-tokens and ${VAR})."""
    user = eff.user if eff.user is not None else account.name
    port = eff.port or 22
    identities: tuple[str, ...] | None = None
    if eff.identity_files:
        tokens = identity_tokens(
            account, alias=eff.alias, host=eff.hostname, port=port, user=user, key_alias=eff.host_key_alias
        )
        # ssh opens a relative path from its own cwd: take it as of now.
        identities = tuple(
            os.path.abspath(
                expand_tokens(account.expand_tilde(raw, where), tokens, where, what="IdentityFile")
            )
            for raw, _, where in eff.identity_files
            if raw.lower() != "none"
        )
    command = None
    if eff.proxy_command is not None:
        where = eff.origin.get("proxycommand", eff.alias)
        tokens = {"h": eff.hostname, "n": eff.alias, "p": str(port), "r": user}
        command = expand_tokens(eff.proxy_command, tokens, where, what="ProxyCommand", env=False)
    jump = eff.jump.hops if eff.jump else ()
    return Landing(eff.hostname, port, user, identities, jump, command)


def _asyncssh_hops(tunnel: object) -> tuple[Hop, ...]:
    """How asyncssh's _open_tunnel reads a ProxyJump string: hops split on `,`, then `@`, then `:`."""
    if not isinstance(tunnel, str):
        return ()
    hops = []
    for part in tunnel.split(","):
        user, _, hostport = part.rpartition("@")
        host, colon, port = hostport.rpartition(":")
        if not colon:
            host, port = hostport, ""
        hops.append(Hop(user or None, host, int(port) if port.isdigit() else None))
    return tuple(hops)


def clawd_landing(target: SshTarget, config: list[Path], account: Account) -> Landing:
    """What clawd's engine will do with `target`: asyncssh's options from the same arguments the
    engine passes (engine/ssh.py connect_options), reading `config` as asyncssh reads ~/.ssh/config
    by default. Raises Unfollowable when asyncssh cannot read that config at all."""
    from ._asyncssh import asyncssh

    try:
        opts = asyncssh.SSHClientConnectionOptions(
            config=[str(p) for p in config],
            host=target.host,
            port=target.port if target.port is not None else (),
            username=target.user or (),
            tunnel=target.jump or (),
            client_keys=None,
        )
        if opts.config.has_match_final():  # what asyncssh's _connect does before connecting
            opts.update(host=target.host, reload=True, canonical=False, final=True)
    except (ValueError, OSError, asyncssh.Error) as exc:
        raise Unfollowable(
            f"clawd's SSH library (asyncssh) cannot read this config: {exc}",
            file=config[0] if config else None,
            fix="clawd connect stops on this too: asyncssh reads ssh_config more strictly than ssh "
            "(no comment after a value, no service name as Port, fewer %-tokens); simplify that line",
        ) from None
    if target.identity:
        identities: tuple[str, ...] | None = (account.expand_home(target.identity),)
    else:
        listed = opts.config.get("IdentityFile")
        if isinstance(listed, list) and listed:
            identities = tuple(account.expand_home(str(p)) for p in listed)
        else:
            identities = DEFAULT_KEYS  # asyncssh loads the default keys for an empty list too
    command = " ".join(opts.proxy_command) if opts.proxy_command else None
    hops = _asyncssh_hops(opts.tunnel)
    return Landing(str(opts.host), int(opts.port), str(opts.username), identities, hops, command)


def _pin(target: SshTarget, want: Landing, diff: list[str]) -> SshTarget | None:
    """The target with the differing values written out; None when a difference cannot be written."""
    if "proxy_command" in diff or "host" in diff:
        return None
    identity, jump = target.identity, target.jump
    if "identities" in diff:
        if want.identities is None or len(want.identities) != 1:
            return None  # a profile names one key; "default keys" and several keys come from the config
        identity = want.identities[0]
    if "jump" in diff:
        if not want.jump or any(":" in h.host for h in want.jump):
            return None  # "no jump" cannot be written, and asyncssh cannot parse an IPv6 hop
        jump = ",".join(h.text() for h in want.jump)
    return replace(
        target,
        user=want.user if "user" in diff else target.user,
        port=want.port if "port" in diff else target.port,
        identity=identity,
        jump=jump,
    )


def choose_target(eff: Effective, account: Account, config: list[Path]) -> tuple[SshTarget, list[str]]:
    """The SshTarget that lands where ssh lands, preferring the bare alias; plus notes on what was
    written into it and why. Raises Unfollowable naming the config line when none does."""
    want = openssh_landing(eff, account)
    if want.proxy_command is not None and not _PLAIN_COMMAND.fullmatch(want.proxy_command):
        raise Unfollowable(
            f"cannot follow ProxyCommand for {eff.alias}: it needs a shell, and clawd's SSH library runs "
            "the command without one",
            file=eff.origin.get("proxycommand"),
        )
    last = want
    for host in dict.fromkeys([eff.alias, want.host]):
        target = SshTarget(host=host)
        for _ in range(4):
            got = clawd_landing(target, config, account)
            diff = want.same_as(got)
            if not diff:
                return target, _notes(eff, target, want)
            last = got
            pinned = _pin(target, want, diff)
            if pinned is None or pinned == target:
                break
            target = pinned
    diff = want.same_as(last)
    lines = sorted({eff.origin[k] for k in _ORIGIN_KEYS[diff[0]] if k in eff.origin}) or [eff.alias]
    raise Unfollowable(
        f"clawd cannot make its SSH library land where `ssh {eff.alias}` lands: ssh uses "
        f"{want.describe()}, asyncssh would use {last.describe()} ({', '.join(diff)} differ)",
        file=lines[0],
        fix=f"add the profile by hand: clawd profile add NAME --ssh {want.user}@{want.host}:{want.port} ...",
    )


_ORIGIN_KEYS = {
    "host": ("hostname",),
    "port": ("port",),
    "user": ("user",),
    "identities": ("identityfile",),
    "jump": ("proxyjump",),
    "proxy_command": ("proxycommand",),
}


def _notes(eff: Effective, target: SshTarget, want: Landing) -> list[str]:
    notes = [f"ssh {eff.alias} lands on {want.describe()}"]
    written = [f for f in ("user", "port", "identity", "jump") if getattr(target, f) is not None]
    if target.host != eff.alias:
        notes.append(f"host written as {target.host}: asyncssh reads the alias {eff.alias} differently")
    if written:
        notes.append(
            f"{', '.join(written)} written into the profile: asyncssh would read them differently "
            "from the config"
        )
    missing = [p for p in want.identities or () if not os.path.exists(p)]
    if missing:
        notes.append(f"key file {missing[0]} does not exist: ssh skips it, clawd stops with 'file not found'")
    return notes


def ssh_g(eff: Effective, account: Account) -> dict[str, list[str]]:
    """The lines `ssh -G ALIAS` prints for the keywords that decide where ssh lands."""
    identities = [raw for raw, _, _ in eff.identity_files] or [f"~/.ssh/{n}" for n in DEFAULT_KEY_FILES]
    return {
        "user": [eff.user if eff.user is not None else account.name],
        "hostname": [eff.hostname],
        "port": [str(eff.port or 22)],
        "identityfile": identities,
        "localforward": [f.ssh_g() for f in eff.local_forwards()],
        "proxyjump": [eff.jump.ssh_g] if eff.jump else [],
        "proxycommand": [eff.proxy_command] if eff.proxy_command else [],
    }


__all__ = ["DEFAULT_KEY_FILES", "Landing", "choose_target", "clawd_landing", "openssh_landing", "ssh_g"]
