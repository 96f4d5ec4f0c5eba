"""`clawd profile ...` and `clawd secret ...`: set up gateway connections and their secrets.

The main CLI (cli.py) owns the top-level parser; this module only adds its subcommands via
`register(subparsers)`, each with `set_defaults(func=handler)` where `handler(args) -> int`.
Handlers catch UserError themselves and print `clawd: <message>` plus `fix:` on stderr, so they
behave the same whether the main CLI catches errors or not.

Secrets come only from a no-echo prompt or stdin, never from argv (visible in `ps` and shell
history), and are never printed: output says where a secret went, not what it is.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from clawd_gateway.errors import ConfigError, UserError
from clawd_gateway.protocol.constants import DEFAULT_PORT

from .cli_common import EXIT_OK, EXIT_USAGE, Handler, handled
from .profiles import Profile, ProfileStore, SshTarget, parse_ssh_target, replace

MAX_STDIN_SECRET = 4096


def _lazy(name: str) -> Any:
    """The module, loaded at its first use: the keyring and the ssh_config resolver cost tens of
    milliseconds at import, and every `clawd` command (`clawd status` too) builds this parser."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module.__spec__.loader = spec.loader
    sys.modules[name] = module  # one module object: a later plain import gets this one
    spec.loader.exec_module(module)
    return module


secrets = _lazy("clawd_client.secrets")
importers = _lazy("clawd_client.importers")


_handled = handled


def _out() -> TextIO:
    return sys.stdout


def _err(text: str) -> None:
    print(text, file=sys.stderr)


# --- formatting -------------------------------------------------------------------------------------


def describe_target(p: Profile) -> str:
    if p.method == "ssh" and p.ssh is not None:
        text = p.ssh.display()
        if p.ssh.jump:
            text += f" via {p.ssh.jump}"
        return text
    return p.url or "-"


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
    if status["source"] and status["source"].startswith("env "):
        return status["source"]
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


def _existing_file(text: str, flag: str) -> str:
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(f"{flag} {text}: no such file", fix=f"check the path, or leave {flag} out")
    return str(path.resolve())


def _check_jump(text: str) -> str:
    for hop in text.split(","):
        try:
            parse_ssh_target(hop)
        except UserError:
            raise ConfigError(
                f"--jump {text!r}: {hop!r} is not a jump host",
                fix="use [user@]host[:port], several separated by commas (as ProxyJump)",
            ) from None
    return text


_SSH_ONLY = ("identity", "jump", "known_hosts", "keepalive", "remote_host", "remote_port")
_URL_ONLY = ("serve", "port", "ca_file", "no_relay", "allow_insecure_ws")


def _refuse_flags(args: argparse.Namespace, names: tuple[str, ...], method: str) -> None:
    given = [n for n in names if getattr(args, n, None) not in (None, False)]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise ConfigError(f"{flags}: not used with {method}", fix="leave it out")


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def tailscale_url(host: str, serve: bool, port: int | None) -> str:
    """`--tailscale HOST [--serve | --port P]` -> the gateway URL.

    Serve terminates TLS with a certificate for the MagicDNS name, so it needs a name, not an
    IP; a name with neither flag means Serve (the recommended setup), an IP means a tailnet bind.
    """
    from .engine import is_tailnet_ip

    raw = host.strip().rstrip(".")
    if not raw or any(c.isspace() or c in "/?#@" for c in raw) or raw.startswith("-"):
        raise ConfigError(
            f"--tailscale {host!r} is not a host name or tailnet IP", fix="e.g. gateway.tail1234.ts.net"
        )
    bare = raw.strip("[]")
    is_ip = is_tailnet_ip(bare) or _looks_like_ip(bare)
    if serve and is_ip:
        raise ConfigError(
            f"--serve needs the MagicDNS name, not the address {bare}: "
            "Serve's certificate is issued for the name",
            fix="use --tailscale NAME.TAILNET.ts.net --serve, "
            "or --port 18789 for a gateway bound to the tailnet",
        )
    if serve or (port is None and not is_ip):
        return f"wss://{raw}/" if port in (None, 443) else f"wss://{raw}:{port}/"
    return f"ws://{_host_for_url(bare)}:{port or DEFAULT_PORT}"


def _looks_like_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _url_profile(args: argparse.Namespace, method: str | None = None) -> Profile:
    method = method or ("tailscale" if args.tailscale is not None else "direct")
    if method == "tailscale":
        url = tailscale_url(args.tailscale, args.serve, args.port)
    else:
        if args.tailscale is None:
            _refuse_flags(args, ("serve", "port"), "--url")
        url = args.url.strip()
    ca_file = _existing_file(args.ca_file, "--ca-file") if args.ca_file else None
    several = sum(1 for v in (args.ssh, args.tailscale, args.url) if v) > 1
    if several and not url.startswith("wss://"):
        ca_file = None  # with several paths, --ca-file is for the wss:// ones
    profile = Profile(
        name=args.name,
        method=method,
        url=url,
        local_port=args.local_port,
        auth=args.auth,
        ca_file=ca_file,
        relay=not args.no_relay,
        allow_insecure_ws=args.allow_insecure_ws,
    )
    from .profiles import validate

    validate(profile)
    if method == "direct":
        _check_plain_ws(profile)
    return profile


def _check_plain_ws(profile: Profile) -> None:
    """Refuse plain ws:// off loopback and the tailnet now, not at the first connect."""
    import asyncio

    from .engine import UrlPath

    path = UrlPath(profile)
    if path.scheme != "ws" or path.insecure_ws_ok_offline():
        return
    try:
        asyncio.run(path.resolve())
    except Exception as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, UserError):
            raise cause from None
        raise


@_handled
def cmd_profile_add(args: argparse.Namespace) -> int:
    given = [m for m, v in (("ssh", args.ssh), ("tailscale", args.tailscale), ("direct", args.url)) if v]
    if not given:
        missing = UserError("say how to reach the gateway: --ssh, --tailscale or --url (or several)")
        missing.exit_code = EXIT_USAGE
        raise missing
    if len(given) == 1:
        if args.order:
            raise ConfigError("--order is for a profile with several paths (--ssh/--tailscale/--url)")
        if given[0] != "ssh":
            _refuse_flags(args, _SSH_ONLY, "--tailscale/--url")
            return _save_added(args, _url_profile(args))
        _refuse_flags(args, _URL_ONLY, "--ssh")
        return _save_added(args, _ssh_profile(args))
    if args.no_relay:
        raise ConfigError(
            "--no-relay does not go with several paths: failover happens on the local port",
            fix="drop --no-relay",
        )
    ways = {m: _ssh_profile(args) if m == "ssh" else _url_profile(args, m) for m in given}
    order = _path_order(args.order, given)
    first, *rest = (ways[m] for m in order)
    return _save_added(args, replace(first, alternates=tuple(rest), prefer=args.prefer))


def _path_order(text: str | None, given: list[str]) -> list[str]:
    """`--order ssh,direct,tailscale`: every given path once; default --ssh, --tailscale, --url."""
    if not text:
        return given
    names = [n.strip() for n in text.split(",") if n.strip()]
    aliases = {"url": "direct"}
    names = [aliases.get(n, n) for n in names]
    if sorted(names) != sorted(given):
        raise ConfigError(
            f"--order {text}: list each path given exactly once ({', '.join(given)})",
            key="--order",
            fix=f"--order {','.join(given)}",
        )
    return names


def _ssh_profile(args: argparse.Namespace) -> Profile:
    target = parse_ssh_target(args.ssh)
    if args.keepalive is not None and not args.keepalive > 0:
        raise ConfigError(f"--keepalive {args.keepalive:g}: must be more than 0 seconds")
    ssh = SshTarget(
        host=target.host,
        user=target.user,
        port=target.port,
        identity=_existing_file(args.identity, "--identity") if args.identity else None,
        jump=_check_jump(args.jump) if args.jump else None,
        known_hosts=str(Path(args.known_hosts).expanduser().resolve()) if args.known_hosts else None,
    )
    profile = Profile(
        name=args.name,
        method="ssh",
        ssh=ssh,
        remote_host=args.remote_host or "127.0.0.1",
        remote_port=args.remote_port or DEFAULT_PORT,
        local_port=args.local_port,
        auth=args.auth,
    )
    if args.keepalive is not None:
        profile = replace(profile, keepalive_interval=float(args.keepalive))
    return profile


def _save_added(args: argparse.Namespace, profile: Profile) -> int:
    from .profiles import validate

    profile = validate(replace(profile, hold=args.hold, autoconnect=not args.no_autoconnect))
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


# --- profile import ------------------------------------------------------------------------------


@_handled
def cmd_profile_import(args: argparse.Namespace) -> int:
    explicit = args.ssh_config is not None or args.openclaw_config is not None
    result = importers.import_all(
        args.ssh_config,
        args.openclaw_config,
        use_ssh=args.ssh_config is not None or not explicit,
        use_openclaw=args.openclaw_config is not None or not explicit,
    )
    store = ProfileStore()
    existing = store.load()
    todo = []
    skipped = [{"name": None, "reason": reason} for reason in result.skipped]
    for item in result.profiles:
        if item.profile.name in existing and not args.replace:
            skipped.append(
                {
                    "name": item.profile.name,
                    "reason": f"profile exists (from {item.origin}); --replace overwrites it",
                }
            )
            continue
        todo.append(item)

    destination = None
    if todo and any(item.secrets for item in todo):
        if args.dry_run:
            info = secrets.backend_info()
            destination = f"keyring ({info['label']})" if info["usable"] else None
        else:
            # Fail before writing anything: half an import (profiles without their secret) is worse.
            try:
                backend = secrets.usable_backend()
            except secrets.NoKeyringBackend as exc:
                exc.fix = (exc.fix or "") + (
                    "\n       or import only the SSH config (it carries no secret): "
                    "clawd profile import --ssh-config ~/.ssh/config"
                )
                raise
            destination = f"keyring ({secrets.backend_label(backend)})"

    imported = []
    for item in todo:
        stored: dict[str, str | None] = {}
        if not args.dry_run:
            store.add(item.profile, replace_existing=args.replace)
            for kind, secret in item.secrets.items():
                stored[kind] = secrets.set_secret(item.profile.name, kind, secret.value)
        else:
            stored = dict.fromkeys(item.secrets, destination)
        imported.append(
            {
                "name": item.profile.name,
                "method": item.profile.method,
                "target": describe_target(item.profile),
                "local_url": item.profile.local_url if item.profile.method == "ssh" else item.profile.url,
                "auth": item.profile.auth,
                "origin": item.origin,
                "secrets": [
                    {"kind": kind, "from": item.secrets[kind].source, "to": where}
                    for kind, where in stored.items()
                ],
                "notes": item.notes,
            }
        )

    out = _out()
    if args.json:
        body = {
            "dry_run": args.dry_run,
            "profiles_file": str(store.path),
            "sources": result.sources,
            "imported": imported,
            "skipped": skipped,
        }
        json.dump(body, out, indent=2)
        out.write("\n")
        return EXIT_OK
    verb = "would import" if args.dry_run else "imported"
    for entry in imported:
        out.write(
            f"{verb} {entry['name']}: {entry['method']} {entry['target']} -> {entry['local_url']} "
            f"(from {entry['origin']})\n"
        )
        for s in entry["secrets"]:
            where = s["to"] or "nowhere yet: no usable keyring"
            out.write(f"  {s['kind']} ({s['from']}) -> {where}\n")
        for note in entry["notes"]:
            out.write(f"  note: {note}\n")
    for entry in skipped:
        who = f"{entry['name']}: " if entry["name"] else ""
        out.write(f"skipped {who}{entry['reason']}\n")
    if not imported:
        out.write("nothing imported\n")
    elif not args.dry_run:
        out.write(f"profiles saved in {store.path}; secrets only in the keyring\n")
    return EXIT_OK


# --- secret set / clear ----------------------------------------------------------------------------


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


@_handled
def cmd_secret_set(args: argparse.Namespace) -> int:
    profile = ProfileStore().get(args.name)
    kind = "password" if args.password else profile.auth
    what = "gateway password" if kind == "password" else "gateway token"
    secrets.usable_backend()  # say "no keyring" before asking the user to type anything
    value = _read_secret(f"{what} for profile {profile.name}: ")
    where = secrets.set_secret(profile.name, kind, value)
    del value
    out = _out()
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


@_handled
def cmd_secret_clear(args: argparse.Namespace) -> int:
    known = args.name in ProfileStore().load()
    cleared = secrets.clear_secret(args.name)
    out = _out()
    if cleared:
        out.write(f"cleared the stored {' and '.join(cleared)} of profile {args.name}\n")
        return EXIT_OK
    if not known:
        raise UserError(f"no profile named {args.name!r} and no stored secret for it")
    out.write(f"profile {args.name} had no stored secret\n")
    return EXIT_OK


# --- registration ----------------------------------------------------------------------------------


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


def _help_for(parser: argparse.ArgumentParser) -> Handler:
    def show(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    return show


def register(subparsers: Any) -> None:
    """Add `profile` and `secret` to the main CLI's `add_subparsers()` object.

    Every leaf parser sets `func`; the main CLI calls `args.func(args)` and exits with the result.
    """
    profile = subparsers.add_parser("profile", help="gateway connection profiles (add, list, remove, import)")
    profile.set_defaults(func=_help_for(profile))
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

    imp = psub.add_parser(
        "import",
        help="import ~/.ssh/config LocalForward hosts and OpenClaw's gateway.remote",
        description=(
            "Without options, reads both ~/.ssh/config and OpenClaw's config. Naming one file "
            "imports from that source only (name both to read both). SSH hosts are resolved as "
            "`ssh ALIAS` resolves them; what only a command or DNS could decide (Match exec, "
            "CanonicalizeHostname) stops the import with the file and line (exit 78)."
        ),
    )
    imp.add_argument(
        "--ssh-config",
        metavar="FILE",
        help="an ssh_config file, read alone like ssh -F (default: ~/.ssh/config, then /etc/ssh/ssh_config)",
    )
    imp.add_argument(
        "--openclaw-config", metavar="FILE", help="OpenClaw config (default ~/.openclaw/openclaw.json)"
    )
    imp.add_argument("--dry-run", action="store_true", help="show what would be imported; change nothing")
    imp.add_argument("--replace", action="store_true", help="overwrite profiles that already exist")
    imp.add_argument("--json", action="store_true", help="machine-readable output")
    imp.set_defaults(func=cmd_profile_import)

    secret = subparsers.add_parser("secret", help="gateway secrets in the OS keyring (set, clear)")
    secret.set_defaults(func=_help_for(secret))
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


__all__ = ["describe_target", "register"]
