"""`clawd profile add/list/remove`, and the registration of `clawd profile ...` and `clawd secret ...`.

The main CLI (cli.py) owns the top-level parser; this module only adds its subcommands via
`register(subparsers)`, each with `set_defaults(func=handler)` where `handler(args) -> int`:
`profile import` is cli_import's, `secret set/clear` cli_secret's, and what `profile add`'s
flags mean is profilebuild's. Handlers catch UserError themselves and print `clawd: <message>`
plus `fix:` on stderr, so they behave the same whether the main CLI catches errors or not.

Secrets are never printed: output says where a secret is, not what it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from typing import Any, TextIO

from clawd_gateway.errors import UserError
from clawd_gateway.protocol.constants import DEFAULT_PORT

from . import cli_import, cli_secret
from .cli_common import EXIT_OK, EXIT_USAGE, handled, help_for
from .lazy import lazy_module
from .profilebuild import AddOptions, build_profile
from .profiles import Profile, ProfileStore, describe_target

secrets = lazy_module("clawd_client.secrets")

_handled = handled


def _out() -> TextIO:
    return sys.stdout


def _err(text: str) -> None:
    print(text, file=sys.stderr)


# --- formatting -------------------------------------------------------------------------------------


def _url_kind(p: Profile) -> str:
    url = p.url or ""
    if p.method == "tailscale":
        return "Tailscale Serve, TLS verified" if url.startswith("wss://") else "tailnet bind"
    return "TLS verified" if url.startswith("wss://") else "plain ws"


def _remote(p: Profile) -> str:
    host = f"[{p.remote_host}]" if ":" in p.remote_host else p.remote_host
    return f"{host}:{p.remote_port}"


def _secret_status(p: Profile) -> dict[str, Any]:
    """Whether a secret is available for the profile, and from where, without ever reading it out."""
    override = secrets.env_override(p.auth)
    if override is not None:
        return {"available": True, "stored": None, "source": override.source}
    try:
        stored = secrets.stored_secret(p.name, p.auth)
    except secrets.NoKeyringBackend as exc:
        return {"available": False, "stored": None, "source": None, "error": str(exc), "why": "no keyring"}
    except UserError as exc:  # locked, D-Bus trouble: the keyring exists but did not answer
        return {"available": False, "stored": None, "source": None, "error": str(exc), "why": "keyring error"}
    return {
        "available": stored is not None,
        "stored": stored is not None,
        "source": stored.source if stored else None,
    }


def _secret_word(status: dict[str, Any]) -> str:
    if status.get("error"):
        return f"unknown ({status['why']})"
    source = status["source"]
    if isinstance(source, str) and source.startswith("env "):
        return source
    return "stored" if status["stored"] else "missing"


def _keyring_line(info: dict[str, Any]) -> str:
    if info["usable"]:
        prio = f", priority {info['priority']:g}" if info["priority"] is not None else ""
        warn = " — PLAINTEXT, not encrypted" if info["plaintext"] else ""
        return f"keyring: {info['label']} ({info['backend']}{prio}){warn}"
    return f"keyring: not usable — {info['reason']}"


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n")


# --- profile add / list / remove ---------------------------------------------------------------------


@_handled
def cmd_profile_add(args: argparse.Namespace) -> int:
    options = AddOptions(**{f.name: getattr(args, f.name) for f in fields(AddOptions)})
    if not options.paths_given():
        missing = UserError("say how to reach the gateway: --ssh, --tailscale or --url (or several)")
        missing.exit_code = EXIT_USAGE
        raise missing
    return _save_added(args, build_profile(options))


def _save_added(args: argparse.Namespace, profile: Profile) -> int:
    store = ProfileStore()
    store.add(profile, replace_existing=args.replace)
    out = _out()
    if profile.method == "ssh":
        out.write(
            f"profile {profile.name}: ssh {describe_target(profile)} -> {_remote(profile)}, "
            f"local {profile.local_url} (saved in {store.path})\n"
        )
    else:
        kind = _url_kind(profile)
        local = f"local {profile.local_url}" if profile.relay else "no local relay"
        out.write(
            f"profile {profile.name}: {profile.method} {profile.url} ({kind}), {local} "
            f"(saved in {store.path})\n"
        )
    if profile.alternates:
        ways = " → ".join(w.method for w in profile.ways())
        out.write(f"  paths: {ways} (prefer {profile.prefer}; the agent fails over between them)\n")
    if secrets.env_override(profile.auth) is None:
        out.write(
            f"next: store the gateway {profile.auth} with "
            f"`clawd secret set {profile.name}{' --password' if profile.auth == 'password' else ''}`\n"
        )
    return EXIT_OK


def _profile_row(p: Profile) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": p.name,
        "method": p.method,
        "target": describe_target(p),
        "remote": _remote(p) if p.method == "ssh" else None,
        "local_url": p.local_url if p.method == "ssh" or p.relay else None,
        "url": p.url,
        "auth": p.auth,
        "secret": _secret_status(p),
        "paths": [{"path": w.method, "target": describe_target(w)} for w in p.ways()],
        "prefer": p.prefer,
    }
    if p.alternates:
        data["method"] = "+".join(w.method for w in p.ways())
        data["target"] = " | ".join(describe_target(w) for w in p.ways())
    return data


@_handled
def cmd_profile_list(args: argparse.Namespace) -> int:
    store = ProfileStore()
    profiles = store.load()
    info = secrets.backend_info()
    rows = [_profile_row(p) for p in sorted(profiles.values(), key=lambda p: p.name)]
    out = _out()
    if args.json:
        json.dump({"profiles_file": str(store.path), "profiles": rows, "keyring": info}, out, indent=2)
        out.write("\n")
        return EXIT_OK
    if not rows:
        out.write(f"no profiles yet ({store.path})\n")
        out.write("add one: clawd profile add NAME --ssh user@host   or: clawd profile import\n")
    else:
        table = [["NAME", "METHOD", "TARGET", "LOCAL URL", "AUTH", "SECRET"]]
        for r in rows:
            table.append(
                [
                    r["name"],
                    r["method"],
                    r["target"],
                    r["local_url"] or r["url"] or "-",
                    r["auth"],
                    _secret_word(r["secret"]),
                ]
            )
        _table(table, out)
    out.write(_keyring_line(info) + "\n")
    return EXIT_OK


@_handled
def cmd_profile_remove(args: argparse.Namespace) -> int:
    store = ProfileStore()
    gone = store.remove(args.name)
    out = _out()
    out.write(f"removed profile {gone.name} from {store.path}\n")
    try:
        cleared = secrets.clear_secret(gone.name)
    except UserError as exc:
        _err(f"clawd: warning: could not clear its keyring secrets: {exc.render()}")
        return EXIT_OK
    if cleared:
        out.write(f"cleared its stored {' and '.join(cleared)} from the keyring\n")
    return EXIT_OK


# --- registration ----------------------------------------------------------------------------------


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


def register(subparsers: Any) -> None:
    """Add `profile` and `secret` to the main CLI's `add_subparsers()` object.

    Every leaf parser sets `func`; the main CLI calls `args.func(args)` and exits with the result.
    """
    profile = subparsers.add_parser("profile", help="gateway connection profiles (add, list, remove, import)")
    profile.set_defaults(func=help_for(profile))
    psub = profile.add_subparsers(dest="profile_command", metavar="ACTION")

    add = psub.add_parser(
        "add",
        help="add a gateway profile: SSH tunnel, Tailscale, or a direct ws(s):// URL",
        description=(
            "One of --ssh, --tailscale or --url. Tailscale: --tailscale NAME reaches a gateway behind "
            "Tailscale Serve at wss://NAME/; --tailscale HOST --port 18789 one bound to the tailnet "
            "(ws://HOST:18789). Both are relayed on ws://127.0.0.1:LOCAL-PORT unless --no-relay."
        ),
    )
    add.add_argument("name", metavar="NAME")
    how = add.add_argument_group("ways in (one or several: the agent fails over between them)")
    how.add_argument("--ssh", metavar="[USER@]HOST[:PORT]", help="SSH server (or ~/.ssh/config alias)")
    how.add_argument(
        "--tailscale", metavar="HOST", help="the gateway's MagicDNS name (or tailnet IP with --port)"
    )
    how.add_argument(
        "--url", metavar="URL", help="a ws:// or wss:// gateway URL, e.g. a Tailscale Funnel URL"
    )
    add.add_argument(
        "--serve", action="store_true", help="tailscale: the gateway is behind Tailscale Serve (wss://HOST/)"
    )
    add.add_argument(
        "--port",
        type=_port,
        help="tailscale: the gateway's tailnet port (ws://HOST:PORT); with --serve the HTTPS port",
    )
    add.add_argument("--ca-file", metavar="FILE", help="wss: also trust this PEM CA (private CAs, tests)")
    add.add_argument(
        "--no-relay",
        action="store_true",
        help="tailscale/url: do not listen on ws://127.0.0.1:LOCAL-PORT; clients use the URL itself",
    )
    add.add_argument(
        "--allow-insecure-ws",
        action="store_true",
        help="url: allow plain ws:// to a host neither on loopback nor in your tailnet (secret unencrypted)",
    )
    add.add_argument("--identity", metavar="FILE", help="private key file (default: agent and default keys)")
    add.add_argument("--jump", metavar="HOST", help="jump host(s), as ProxyJump: [user@]host[:port][,...]")
    add.add_argument(
        "--remote-host", help="ssh: gateway host as seen from the SSH server (default 127.0.0.1)"
    )
    add.add_argument(
        "--remote-port", type=_port, help=f"ssh: gateway port on the server (default {DEFAULT_PORT})"
    )
    add.add_argument(
        "--local-port", type=_port, default=DEFAULT_PORT, help=f"local port (default {DEFAULT_PORT})"
    )
    add.add_argument(
        "--auth", choices=("token", "password"), default="token", help="gateway auth (default token)"
    )
    add.add_argument("--known-hosts", metavar="FILE", help="known_hosts file (default ~/.ssh/known_hosts)")
    add.add_argument("--keepalive", type=float, metavar="SECONDS", help="SSH keepalive interval (default 1)")
    add.add_argument(
        "--prefer",
        choices=("order", "fastest"),
        default="order",
        help="several paths: the first healthy in order (default), or the lowest health latency",
    )
    add.add_argument(
        "--order", metavar="P,P,...", help="several paths: their order, e.g. tailscale,ssh,direct"
    )
    add.add_argument(
        "--hold",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a client connecting while the path is down is held (default 30; 0 refuses at once)",
    )
    add.add_argument(
        "--no-autoconnect",
        action="store_true",
        help="the agent does not bring this profile back up after a restart or reboot",
    )
    add.add_argument("--replace", action="store_true", help="overwrite a profile with the same name")
    add.set_defaults(func=cmd_profile_add)

    lst = psub.add_parser("list", help="list profiles, whether a secret is stored, and the keyring backend")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(func=cmd_profile_list)

    rm = psub.add_parser("remove", help="remove a profile and its keyring secrets")
    rm.add_argument("name", metavar="NAME")
    rm.set_defaults(func=cmd_profile_remove)

    cli_import.register(psub)

    cli_secret.register(subparsers)


__all__ = ["describe_target", "register"]
