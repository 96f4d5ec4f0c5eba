"""`clawd secret set/clear`: a profile's gateway token or password in the OS keyring.

Registered by cli_profiles.register (`register(subparsers)`). Secrets come only from a no-echo
prompt or stdin, never from argv (visible in `ps` and shell history), and are never printed:
output says where a secret went, not what it is.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from clawd_gateway.errors import UserError

from .cli_common import EXIT_OK, handled, help_for
from .lazy import lazy_module
from .profiles import ProfileStore

secrets = lazy_module("clawd_client.secrets")

MAX_STDIN_SECRET = 4096


def _read_secret(prompt: str) -> str:
    """A no-echo prompt on a terminal, else exactly one line from stdin (never argv)."""
    stdin = sys.stdin
    if stdin is not None and stdin.isatty():
        try:
            value = getpass.getpass(prompt)
        except EOFError:
            value = ""
    else:
        if stdin is None:
            raise UserError(
                "no terminal and no stdin to read the secret from",
                fix="pipe it in: ... | clawd secret set NAME",
            )
        value = stdin.readline(MAX_STDIN_SECRET + 2)
    value = value.rstrip("\r\n")
    if not value.strip():
        raise UserError(
            "no secret given (the input was empty)",
            fix='type it at the prompt, or pipe it in: printf %s "$TOKEN" | clawd secret set NAME',
        )
    return value


@handled
def cmd_secret_set(args: argparse.Namespace) -> int:
    profile = ProfileStore().get(args.name)
    kind = "password" if args.password else profile.auth
    what = "gateway password" if kind == "password" else "gateway token"
    secrets.usable_backend()  # say "no keyring" before asking the user to type anything
    value = _read_secret(f"{what} for profile {profile.name}: ")
    where = secrets.set_secret(profile.name, kind, value)
    del value
    out = sys.stdout
    out.write(f"stored the {what} for profile {profile.name} in the {where}\n")
    if kind != profile.auth:
        out.write(f"note: profile {profile.name} uses {profile.auth} auth, so this {kind} is not used yet\n")
    override = secrets.env_override(kind)
    if override is not None:
        out.write(
            f"note: {override.source.removeprefix('env ')} is set here and overrides the stored {kind}\n"
        )
    if kind == profile.auth and _reconnect_if_up(profile.name):
        out.write(f"the agent reconnects {profile.name} with it now\n")
    return EXIT_OK


def _reconnect_if_up(name: str) -> bool:
    """A tunnel that is up keeps the secret it read for its connection: have it read the new one."""
    from . import api

    client = api.running()
    if client is None:
        return False
    with client:
        try:
            return bool(client.request("reconnect", profiles=[name]).get("reconnecting"))
        except UserError:  # not up: it reads the keyring when it comes up
            return False


@handled
def cmd_secret_clear(args: argparse.Namespace) -> int:
    known = args.name in ProfileStore().load()
    cleared = secrets.clear_secret(args.name)
    out = sys.stdout
    if cleared:
        out.write(f"cleared the stored {' and '.join(cleared)} of profile {args.name}\n")
        return EXIT_OK
    if not known:
        raise UserError(f"no profile named {args.name!r} and no stored secret for it")
    out.write(f"profile {args.name} had no stored secret\n")
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add `secret` (set, clear) to the main CLI's `add_subparsers()` object."""
    secret = subparsers.add_parser("secret", help="gateway secrets in the OS keyring (set, clear)")
    secret.set_defaults(func=help_for(secret))
    ssub = secret.add_subparsers(dest="secret_command", metavar="ACTION")
    sset = ssub.add_parser(
        "set",
        help="store a profile's gateway token (or --password) in the keyring",
        description="Reads the secret from a no-echo prompt, or one line from stdin when piped; never argv.",
    )
    sset.add_argument("name", metavar="NAME")
    sset.add_argument("--password", action="store_true", help="store a gateway password instead of a token")
    sset.set_defaults(func=cmd_secret_set)
    sclear = ssub.add_parser("clear", help="delete a profile's stored secrets from the keyring")
    sclear.add_argument("name", metavar="NAME")
    sclear.set_defaults(func=cmd_secret_clear)


__all__ = ["cmd_secret_clear", "cmd_secret_set", "register"]
