"""A new profile from what `clawd profile add` was told: one way in, or several with failover.

The CLI parses the flags into `AddOptions` and prints the result; what the flags mean (the
Tailscale URL, which flags go with which path, the order of several paths, refusing plain ws://
off loopback and the tailnet) is decided here. Messages name the flags, as the user gave them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clawd_gateway.errors import ConfigError, UserError
from clawd_gateway.protocol.constants import DEFAULT_PORT

from .profiles import Profile, SshTarget, parse_ssh_target, replace, validate

# Flags that only one kind of path uses: given with the other kind alone, they are refused.
SSH_ONLY = ("identity", "jump", "known_hosts", "keepalive", "remote_host", "remote_port")
URL_ONLY = ("serve", "port", "ca_file", "no_relay", "allow_insecure_ws")


@dataclass(frozen=True)
class AddOptions:
    """`clawd profile add NAME ...`, one field per flag (the flag's dest), defaults as the parser's."""

    name: str
    ssh: str | None = None
    tailscale: str | None = None
    url: str | None = None
    serve: bool = False
    port: int | None = None
    ca_file: str | None = None
    no_relay: bool = False
    allow_insecure_ws: bool = False
    identity: str | None = None
    jump: str | None = None
    remote_host: str | None = None
    remote_port: int | None = None
    local_port: int = DEFAULT_PORT
    auth: str = "token"
    known_hosts: str | None = None
    keepalive: float | None = None
    prefer: str = "order"
    order: str | None = None
    hold: float = 30.0
    no_autoconnect: bool = False

    def paths_given(self) -> list[str]:
        """The ways in that were given, in the default order: ssh, tailscale, direct (--url)."""
        return [m for m, v in (("ssh", self.ssh), ("tailscale", self.tailscale), ("direct", self.url)) if v]


def build_profile(o: AddOptions) -> Profile:
    """The validated profile for `o`, which gives at least one way in (the CLI checks that)."""
    given = o.paths_given()
    if not given:
        raise ConfigError("say how to reach the gateway: --ssh, --tailscale or --url (or several)")
    if len(given) == 1:
        if o.order:
            raise ConfigError("--order is for a profile with several paths (--ssh/--tailscale/--url)")
        if given[0] != "ssh":
            _refuse_flags(o, SSH_ONLY, "--tailscale/--url")
            profile = _url_profile(o)
        else:
            _refuse_flags(o, URL_ONLY, "--ssh")
            profile = _ssh_profile(o)
    else:
        if o.no_relay:
            raise ConfigError(
                "--no-relay does not go with several paths: failover happens on the local port",
                fix="drop --no-relay",
            )
        ways = {m: _ssh_profile(o) if m == "ssh" else _url_profile(o, m) for m in given}
        order = path_order(o.order, given)
        first, *rest = (ways[m] for m in order)
        profile = replace(first, alternates=tuple(rest), prefer=o.prefer)
    return validate(replace(profile, hold=o.hold, autoconnect=not o.no_autoconnect))


def path_order(text: str | None, given: list[str]) -> list[str]:
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


def check_plain_ws(profile: Profile) -> None:
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


# --- one path -----------------------------------------------------------------------------------------


def _url_profile(o: AddOptions, method: str | None = None) -> Profile:
    method = method or ("tailscale" if o.tailscale is not None else "direct")
    if method == "tailscale":
        assert o.tailscale is not None
        url = tailscale_url(o.tailscale, o.serve, o.port)
    else:
        if o.tailscale is None:
            _refuse_flags(o, ("serve", "port"), "--url")
        assert o.url is not None
        url = o.url.strip()
    ca_file = _existing_file(o.ca_file, "--ca-file") if o.ca_file else None
    several = sum(1 for v in (o.ssh, o.tailscale, o.url) if v) > 1
    if several and not url.startswith("wss://"):
        ca_file = None  # with several paths, --ca-file is for the wss:// ones
    profile = Profile(
        name=o.name,
        method=method,
        url=url,
        local_port=o.local_port,
        auth=o.auth,
        ca_file=ca_file,
        relay=not o.no_relay,
        allow_insecure_ws=o.allow_insecure_ws,
    )
    validate(profile)
    if method == "direct":
        check_plain_ws(profile)
    return profile


def _ssh_profile(o: AddOptions) -> Profile:
    assert o.ssh is not None
    target = parse_ssh_target(o.ssh)
    if o.keepalive is not None and not o.keepalive > 0:
        raise ConfigError(f"--keepalive {o.keepalive:g}: must be more than 0 seconds")
    ssh = SshTarget(
        host=target.host,
        user=target.user,
        port=target.port,
        identity=_existing_file(o.identity, "--identity") if o.identity else None,
        jump=_check_jump(o.jump) if o.jump else None,
        known_hosts=str(Path(o.known_hosts).expanduser().resolve()) if o.known_hosts else None,
    )
    profile = Profile(
        name=o.name,
        method="ssh",
        ssh=ssh,
        remote_host=o.remote_host or "127.0.0.1",
        remote_port=o.remote_port or DEFAULT_PORT,
        local_port=o.local_port,
        auth=o.auth,
    )
    if o.keepalive is not None:
        profile = replace(profile, keepalive_interval=float(o.keepalive))
    return profile


def _refuse_flags(o: AddOptions, names: tuple[str, ...], method: str) -> None:
    given = [n for n in names if getattr(o, n, None) not in (None, False)]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise ConfigError(f"{flags}: not used with {method}", fix="leave it out")


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


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _looks_like_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


__all__ = [
    "SSH_ONLY",
    "URL_ONLY",
    "AddOptions",
    "build_profile",
    "check_plain_ws",
    "path_order",
    "tailscale_url",
]
