"""The audit rules: Facts in, Findings out, no I/O (each rule is unit-tested on plain data).

Severity: `critical` means someone other than you can get in, or a secret is readable by
others, now; `warn` means weaker than it should be or one mistake from critical; `info` is
context worth knowing. Ids are stable: scripts and --json consumers may key on them.
"""

from __future__ import annotations

import ipaddress
import stat
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from ..bind import TAILNET_V4, TAILNET_V6, is_loopback
from .facts import ConfigFacts, Facts, Listener, PathFact, SecretFact, TailscaleRoute
from .model import Finding, ModeFix, Severity, masked, sort_findings
from .sshd import forwarding_blocked, password_login
from .strength import weakness

DEFAULT_CONFIG = "~/.openclaw/openclaw.json"
SSHD_RELOAD = "`sudo sshd -t && sudo systemctl reload ssh` (the unit is sshd on some systems)"


def _cfg_file(cfg: ConfigFacts | None) -> str:
    return (cfg.path if cfg and cfg.path else None) or DEFAULT_CONFIG


def _is_tailnet(host: str) -> bool:
    if host == "<tailnet>":  # bind tailnet on a host without a Tailscale address (yet)
        return True
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return addr in TAILNET_V4 if addr.version == 4 else addr in TAILNET_V6


def exposed_by_config(cfg: ConfigFacts | None) -> bool:
    """Reachable from beyond this host by configuration: a network bind or Serve/Funnel."""
    if cfg is None:
        return False
    return not all(is_loopback(h) for h in cfg.bind_hosts) or cfg.tailscale_mode in ("serve", "funnel")


def gateway_ports(f: Facts) -> set[int]:
    ports = {li.port for li in f.listeners if li.is_gateway}
    if f.config is not None:
        ports.add(f.config.port)
    return ports


def exposed(f: Facts) -> bool:
    """Reachable from beyond this host: by config, as observed, or through a Tailscale route."""
    observed = any(not is_loopback(li.address) for li in f.listeners if li.is_gateway)
    ports = gateway_ports(f)
    routed = f.tailscale is not None and any(
        r.target_loopback and r.target_port in ports for r in f.tailscale.routes
    )
    return exposed_by_config(f.config) or observed or routed


def _active_secret(cfg: ConfigFacts) -> SecretFact | None:
    return cfg.password if cfg.auth_mode == "password" else cfg.token if cfg.auth_mode == "token" else None


def _describe_auth(cfg: ConfigFacts) -> str:
    if cfg.auth_mode == "none":
        return "auth none"
    s = _active_secret(cfg)
    if s is None:
        return f"auth {cfg.auth_mode}, no secret" + (
            " (one is generated on loopback)" if cfg.token_generated else ""
        )
    return f"auth {cfg.auth_mode}, {s.kind} {masked(s.length)} from {s.source}"


# --- configuration ---------------------------------------------------------------------------------


def check_config_state(f: Facts) -> Iterable[Finding]:
    cfg = f.config
    if cfg is None:
        return
    if cfg.error:
        yield Finding(
            "config.invalid",
            "warn",
            "The config file does not load; the gateway will not start with it",
            cfg.error,
            (
                cfg.refused_fix
                or f"correct {_cfg_file(cfg)} (`clawd-gateway config check` shows the same error)"
            )
            + "; then audit again",
        )
    elif cfg.refused:
        yield Finding(
            "config.refused",
            "info",
            "clawd-gateway refuses to start with this config",
            cfg.refused,
            cfg.refused_fix or "`clawd-gateway config check` names the key to change",
        )


def check_bind(f: Facts) -> Iterable[Finding]:
    cfg = f.config
    if cfg is None or cfg.error or all(is_loopback(h) for h in cfg.bind_hosts):
        return
    where = f'gateway.bind "{cfg.bind_mode}" in {_cfg_file(cfg)} → listens on {", ".join(cfg.bind_hosts)}'
    fix = (
        f'set "gateway": {{"bind": "loopback"}} in {_cfg_file(cfg)} and reach the gateway through an SSH '
        f"tunnel (`clawd connect` / `ssh -N -L {cfg.port}:127.0.0.1:{cfg.port} HOST`) or Tailscale Serve "
        '("tailscale": {"mode": "serve"})'
    )
    if all(_is_tailnet(h) for h in cfg.bind_hosts):
        yield Finding(
            "gateway.bind.tailnet",
            "warn",
            "The gateway listens on the Tailscale address: every tailnet device can reach it over plain ws://",
            f"{where}; {_describe_auth(cfg)}",
            fix,
        )
    else:
        yield Finding(
            "gateway.bind.exposed",
            "critical",
            "The gateway is bound to a network address, not loopback",
            f"{where}; the secret travels in plain ws:// to anyone on those networks; {_describe_auth(cfg)}",
            fix,
        )
    if cfg.auth_mode == "none" or _active_secret(cfg) is None:
        yield Finding(
            "gateway.bind.no_auth",
            "critical",
            "A network bind without a secret",
            f"{where}; {_describe_auth(cfg)}",
            'set "gateway": {"bind": "loopback"}, or export OPENCLAW_GATEWAY_TOKEN="$(python3 -c '
            '\'import secrets; print(secrets.token_hex(24))\')" and set gateway.auth.mode "token"',
        )


def check_tailscale_config(f: Facts) -> Iterable[Finding]:
    cfg = f.config
    if cfg is None or cfg.error or cfg.tailscale_mode == "off":
        return
    mode = cfg.tailscale_mode
    where = f'gateway.tailscale.mode "{mode}" in {_cfg_file(cfg)}; {_describe_auth(cfg)}'
    if mode == "funnel" and cfg.auth_mode != "password":
        yield Finding(
            "gateway.tailscale.funnel_without_password",
            "critical",
            "Tailscale Funnel (public internet) without password auth",
            where,
            'set "gateway": {"auth": {"mode": "password"}} and export OPENCLAW_GATEWAY_PASSWORD (not in the '
            'file), or use "tailscale": {"mode": "serve"} (tailnet only)',
        )
    elif mode == "funnel":
        yield Finding(
            "gateway.tailscale.funnel_public",
            "warn",
            "Tailscale Funnel puts the gateway on the public internet",
            where,
            'use Funnel only for temporary tests; prefer "tailscale": {"mode": "serve"} (tailnet only) or an '
            "SSH tunnel",
        )
    if mode == "funnel" and cfg.allow_tailscale:
        yield Finding(
            "gateway.tailscale.funnel_allow_tailscale",
            "critical",
            "allowTailscale is on together with Funnel",
            f"gateway.auth.allowTailscale true with {where}; Funnel traffic arrives through the same "
            "local proxy as Serve, so identity-header auth must not stand in for the password",
            f'set "gateway": {{"auth": {{"allowTailscale": false}}}} in {_cfg_file(cfg)}',
        )
    if cfg.auth_mode == "none":
        yield Finding(
            "gateway.tailscale.no_auth",
            "critical",
            f"Tailscale {mode} with auth none",
            where,
            'set "gateway": {"auth": {"mode": "token"}} (or "password" for funnel)',
        )
    elif mode == "serve" and cfg.allow_tailscale:
        yield Finding(
            "gateway.tailscale.serve_identity",
            "info",
            "Tailnet users are admitted by their Tailscale identity without the token",
            f"gateway.auth.allowTailscale {'true' if cfg.allow_tailscale_explicit else 'defaults to true'} "
            f"with {where}",
            f'to require the secret from everyone: "gateway": {{"auth": {{"allowTailscale": false}}}} in '
            f"{_cfg_file(cfg)}",
        )


def check_auth(f: Facts) -> Iterable[Finding]:
    cfg = f.config
    if cfg is None or cfg.error:
        return
    reach = exposed(f)
    sev: Severity = "critical" if reach else "warn"
    if cfg.auth_mode == "none":
        yield Finding(
            "gateway.auth.none",
            sev,
            "Gateway auth is disabled",
            f'gateway.auth.mode "none" in {_cfg_file(cfg)}: every local process'
            + (
                ", and every remote peer that reaches it,"
                if reach
                else " (and anyone coming through a tunnel)"
            )
            + " is an operator",
            'set "gateway": {"auth": {"mode": "token"}} and export OPENCLAW_GATEWAY_TOKEN="$(python3 -c '
            "'import secrets; print(secrets.token_hex(24))')\"",
        )
        return
    secret = _active_secret(cfg)
    if secret is None:
        return
    why = weakness(secret.length, secret.bits, secret.placeholder)
    if why:
        var = "OPENCLAW_GATEWAY_PASSWORD" if secret.kind == "password" else "OPENCLAW_GATEWAY_TOKEN"
        yield Finding(
            f"gateway.auth.{secret.kind}_weak",
            sev,
            f"The gateway {secret.kind} is weak",
            f"{secret.kind} {masked(secret.length)} from {secret.source}: {why}"
            + ("; the gateway is reachable from beyond this host" if reach else ""),
            f"generate a new one: export {var}=\"$(python3 -c 'import secrets; "
            "print(secrets.token_hex(24))')\" (or put it in the service's env file), "
            "restart the gateway, update clients",
        )


def check_config_secrets(f: Facts) -> Iterable[Finding]:
    cfg = f.config
    if cfg is None:
        return
    for key in cfg.literal_secret_keys:
        kind = key.rsplit(".", 1)[-1]
        if key.startswith("gateway.remote."):
            yield Finding(
                "config.secrets.remote_in_config",
                "warn",
                f"A client {kind} is written in the config file",
                f"{key} in {_cfg_file(cfg)} holds a literal secret",
                f"remove {key} and set OPENCLAW_GATEWAY_{kind.upper()} in the environment instead "
                "(or keep it in the OS keyring with `clawd secret set PROFILE`)",
            )
            continue
        var = f"OPENCLAW_GATEWAY_{kind.upper()}"
        yield Finding(
            f"config.secrets.{kind}_in_config",
            "warn",
            f"The gateway {kind} is written in the config file, not taken from the environment",
            f"{key} in {_cfg_file(cfg)} holds a literal secret",
            f'remove {key} (or write "${{{var}}}") and set {var} in the environment; for a service, '
            f"`clawd-gateway install-service` keeps it in a 0600 env file",
        )


def check_rate_limit(f: Facts) -> Iterable[Finding]:
    cfg = f.config
    if cfg is None or cfg.error or cfg.auth_mode == "none":
        return
    rl = cfg.rate_limit
    if rl.get("enabled") is False:
        yield Finding(
            "gateway.auth.rate_limit_off",
            "warn",
            "Failed-auth rate limiting is off",
            f"gateway.auth.rateLimit.enabled false in {_cfg_file(cfg)}: unlimited guesses at the secret",
            f'remove "enabled": false from gateway.auth.rateLimit in {_cfg_file(cfg)} (default: 10 failures '
            "per minute → 60 s lockout)",
        )
        return
    weak = []
    if int(rl.get("maxAttempts", 10)) > 100:
        weak.append(f"maxAttempts {rl['maxAttempts']}")
    if int(rl.get("lockoutMs", 60_000)) == 0:
        weak.append("lockoutMs 0")
    if weak:
        yield Finding(
            "gateway.auth.rate_limit_weak",
            "warn",
            "Failed-auth rate limiting barely limits",
            f"gateway.auth.rateLimit {', '.join(weak)} in {_cfg_file(cfg)}",
            "use the defaults: maxAttempts 10, windowMs 60000, lockoutMs 60000",
        )


def check_control_ui(f: Facts) -> Iterable[Finding]:
    cfg = f.config
    if cfg is None or cfg.error or not cfg.control_ui_enabled:
        return
    reach = exposed(f)
    file = _cfg_file(cfg)
    wild = [o for o in cfg.allowed_origins if "*" in o]
    if wild:
        yield Finding(
            "gateway.control_ui.allowed_origins_wildcard",
            "critical" if reach else "warn",
            "A wildcard in Control UI allowedOrigins",
            f"gateway.controlUi.allowedOrigins contains {', '.join(repr(o) for o in wild)} in {file}; "
            "clawd-gateway matches origins exactly, but OpenClaw reading the same file accepts any page",
            f'list exact origins instead, e.g. "allowedOrigins": ["https://HOST.TAILNET.ts.net"] in {file}',
        )
    plain = []
    for origin in cfg.allowed_origins:
        parts = urlsplit(origin.strip())
        if parts.scheme == "http" and parts.hostname and not is_loopback(parts.hostname):
            plain.append(origin)
    if plain:
        yield Finding(
            "gateway.control_ui.allowed_origins_http",
            "warn",
            "Control UI allowed over plain http from another host",
            f"gateway.controlUi.allowedOrigins allows {', '.join(repr(o) for o in plain)} in {file}: the "
            "secret typed into that page crosses the network unencrypted",
            "serve the UI over https (Tailscale Serve) or through an SSH tunnel, and list only https:// "
            "or loopback origins",
        )
    if not cfg.allowed_origins and not all(is_loopback(h) for h in cfg.bind_hosts):
        yield Finding(
            "gateway.control_ui.allowed_origins_required",
            "warn",
            "Network-bound Control UI without allowedOrigins",
            f"gateway.bind {cfg.bind_mode} with the Control UI on and "
            f"gateway.controlUi.allowedOrigins empty in {file}; OpenClaw refuses to start like this, "
            "clawd-gateway falls back to same-origin on the "
            "listen address",
            f'set "controlUi": {{"allowedOrigins": ["https://YOUR-HOST"]}} in {file}, or disable the UI with '
            '"enabled": false',
        )
    names: dict[str, tuple[str, Severity]] = {
        "dangerouslyDisableDeviceAuth": ("gateway.control_ui.device_auth_disabled", "critical"),
        "allowInsecureAuth": ("gateway.control_ui.insecure_auth", "warn"),
        "dangerouslyAllowHostHeaderOriginFallback": (
            "gateway.control_ui.host_header_origin_fallback",
            "critical" if reach else "warn",
        ),
    }
    for key, value in cfg.dangerous_flags:
        if key in names and value is True:
            fid, sev = names[key]
            yield Finding(
                fid,
                sev,
                f"controlUi.{key} is on",
                f"gateway.controlUi.{key} true in {file}; clawd-gateway ignores it, OpenClaw reading the "
                "same file honours it",
                f"remove gateway.controlUi.{key} from {file}",
            )


# --- what is listening ------------------------------------------------------------------------------


def _who(li: Listener) -> str:
    name = li.process or "unknown process"
    pid = f" (pid {li.pid})" if li.pid else ""
    return f"{name}{pid}"


def check_listeners(f: Facts) -> Iterable[Finding]:
    cfg = f.config
    by_port: dict[int, list[Listener]] = {}
    for li in f.listeners:
        by_port.setdefault(li.port, []).append(li)
    for port, group in sorted(by_port.items()):
        open_ = [li for li in group if not is_loopback(li.address)]
        if open_:
            tail = all(_is_tailnet(li.address) for li in open_)
            desc = "; ".join(
                f"{_who(li)} listens on {li.address}:{li.port}" + (f" — {li.cmdline}" if li.cmdline else "")
                for li in open_
            )
            if cfg is not None and all(is_loopback(h) for h in cfg.bind_hosts):
                desc += (
                    f"; the config ({_cfg_file(cfg)}) says loopback, so this process was started otherwise"
                )
            yield Finding(
                f"gateway.listen.{'tailnet' if tail else 'exposed'}",
                "warn" if tail else "critical",
                f"Observed: port {port} is reachable from "
                + ("the tailnet" if tail else "the network")
                + ", not only loopback",
                desc,
                "stop it and start it bound to loopback: `clawd-gateway run` (default bind loopback), "
                'or set "gateway": {"bind": "loopback"}; find it with `ss -ltnp "sport = :'
                + str(port)
                + '"`',
            )
        strangers = [li for li in group if not li.is_gateway]
        if strangers and cfg is not None and port == cfg.port:
            yield Finding(
                "gateway.listen.other_process",
                "info",
                f"The gateway port {port} is held by something that is not a gateway",
                "; ".join(f"{_who(li)} on {li.address}:{li.port}" for li in strangers),
                "if that is an SSH tunnel to a remote gateway, fine; else stop it or change gateway.port",
            )
    seen: set[int | None] = set()
    for li in f.listeners:
        if li.argv_secrets and li.pid not in seen:
            seen.add(li.pid)
            yield Finding(
                "gateway.process.secret_in_argv",
                "critical",
                "The gateway secret is on a command line (visible to every user in `ps`)",
                f"{_who(li)}: {', '.join(li.argv_secrets)}",
                "restart it without --token/--password: export OPENCLAW_GATEWAY_TOKEN / "
                "OPENCLAW_GATEWAY_PASSWORD, or use `clawd-gateway install-service` (0600 env file)",
            )


# --- files ---------------------------------------------------------------------------------------


def _mode(m: int) -> str:
    return f"{stat.filemode(m)[1:]} ({m & 0o777:04o})"


def _can_autofix(p: PathFact, f: Facts) -> bool:
    """Changing modes is safe only when it cannot lock the gateway out of its own files."""
    if f.current_uid not in (0, p.uid):
        return False
    if p.role == "env_file":  # read by the service manager as root, or by its owner
        return True
    others = {u for u in f.gateway_uids if u != 0}
    return others <= {p.uid}


def _owner_note(p: PathFact) -> str:
    return f", owner {p.owner or p.uid}"


def check_paths(f: Facts) -> Iterable[Finding]:
    for p in f.paths:
        if not p.exists:
            continue
        mode = _mode(p.mode)
        where = f"{p.path}: {mode}{_owner_note(p)}"
        if p.role == "config":
            yield from _check_config_file(p, f, where)
        elif p.role == "state_dir":
            target = ModeFix(p.path, 0o700) if _can_autofix(p, f) else None
            if p.mode & 0o022:
                yield Finding(
                    "fs.state_dir.writable",
                    "critical",
                    "The gateway state dir is writable by other users",
                    where,
                    f"chmod 700 {p.path}",
                    target,
                )
            elif p.mode & 0o077:
                yield Finding(
                    "fs.state_dir.perms",
                    "warn",
                    "The gateway state dir is open to other users",
                    where + " (it holds the generated token and paired devices)",
                    f"chmod 700 {p.path}",
                    target,
                )
            if p.uid not in (f.current_uid, 0) and p.uid not in f.gateway_uids:
                yield Finding(
                    "fs.state_dir.owner",
                    "warn",
                    "The gateway state dir belongs to another user",
                    where,
                    f"chown -R $(id -un) {p.path}   # or the account the gateway runs as",
                )
        elif p.holds_secret or p.role in ("token_file", "env_file"):
            if p.mode & 0o077:
                yield Finding(
                    f"fs.{p.role}.perms",
                    "critical",
                    "A file holding the gateway secret is readable or writable by other users",
                    where,
                    f"chmod 600 {p.path}",
                    ModeFix(p.path, 0o600) if _can_autofix(p, f) else None,
                )
        elif p.role == "state_file" and p.mode & 0o066:
            yield Finding(
                "fs.state_file.perms",
                "warn",
                "A gateway state file is readable or writable by other users",
                where,
                f"chmod 600 {p.path}",
                ModeFix(p.path, 0o600) if _can_autofix(p, f) else None,
            )


def _check_config_file(p: PathFact, f: Facts, where: str) -> Iterable[Finding]:
    cfg = f.config
    has_secret = bool(cfg and cfg.literal_secret_keys)
    ok = _can_autofix(p, f)
    if p.mode & 0o022:
        target = 0o600 if has_secret else p.mode & ~0o022 & 0o777
        yield Finding(
            "fs.config.writable",
            "critical",
            "The config file is writable by other users (they can turn auth off)",
            where,
            f"chmod {target:o} {p.path}",
            ModeFix(p.path, target) if ok else None,
        )
    if p.mode & 0o044 and has_secret:
        yield Finding(
            "fs.config.secret_readable",
            "critical",
            "The config file holds a secret and other users can read it",
            f"{where}; literal secret in {', '.join(cfg.literal_secret_keys if cfg else ())}",
            f"chmod 600 {p.path}, then move the secret to the environment (see config.secrets.*)"
            + ("" if ok else "; the gateway runs as another user: chown that user first"),
            ModeFix(p.path, 0o600) if ok else None,
        )
    elif p.mode & 0o044:
        yield Finding(
            "fs.config.readable",
            "info",
            "The config file is readable by other users (it holds no secret)",
            where,
            f"chmod 600 {p.path} if only its owner runs the gateway (a packaged service may need to read it)",
        )
    if p.parent_mode & 0o002 and not p.parent_mode & stat.S_ISVTX:
        yield Finding(
            "fs.config.dir_writable",
            "critical",
            "The config file's directory is writable by everyone (the file can be replaced)",
            f"{p.parent}: {_mode(p.parent_mode)}",
            f"chmod o-w {p.parent}, or move the config to a private directory",
        )
    if p.is_symlink:
        yield Finding(
            "fs.config.symlink",
            "info",
            "The config file is a symlink",
            f"{p.path} is a symlink; permissions shown are the target's",
            "make sure the link target's directory is not writable by others",
        )
    if p.uid not in (f.current_uid, 0) and p.uid not in f.gateway_uids:
        yield Finding(
            "fs.config.owner",
            "warn",
            "The config file belongs to another user (who can change the gateway's auth)",
            where,
            f"sudo chown $(id -un) {p.path}   # or root, with mode 644",
        )


# --- services ----------------------------------------------------------------------------------------


def check_units(f: Facts) -> Iterable[Finding]:
    for u in f.units:
        if not u.inline_secrets:
            continue
        parts = [
            f"{'line ' + str(s.line) + ': ' if s.line else ''}{s.how} {s.var}={masked(s.length)}"
            for s in u.inline_secrets
        ]
        readable = "world-readable" if u.mode & 0o004 else f"mode {u.mode & 0o777:04o}"
        if u.manager == "systemd":
            fix = (
                "move the secret into a root-owned 0600 env file and reference it: "
                "`sudo install -m 600 /dev/null /etc/clawd-gateway/env`, put VAR=VALUE there, replace the "
                "Environment= line with EnvironmentFile=/etc/clawd-gateway/env, then `sudo systemctl "
                "daemon-reload && sudo systemctl restart UNIT` and rotate the secret (it was exposed); "
                "`clawd-gateway install-service` writes such a unit for you"
            )
            extra = "; `systemctl show -p Environment` prints it to any user"
        else:
            fix = (
                "remove the secret from the plist and use `clawd-gateway install-service` (a 0600 env file "
                "read by a small wrapper), then rotate the secret"
            )
            extra = ""
        yield Finding(
            f"service.{u.manager}.inline_secret",
            "critical",
            "A service definition carries the gateway secret inline",
            f"{u.path} ({readable}): {'; '.join(parts)}{extra}",
            fix,
        )


# --- sshd -----------------------------------------------------------------------------------------------


def check_sshd(f: Facts) -> Iterable[Finding]:
    s = f.sshd
    if s is None:
        return
    port = f.config.port if f.config else 18789
    caveat = ("; " + "; ".join(s.caveats)) if s.caveats else ""
    pw = password_login(s.settings)
    root = s.settings.get("permitrootlogin", "prohibit-password")
    if s.settings.get("permitemptypasswords") == "yes":
        yield Finding(
            "sshd.empty_passwords",
            "critical",
            "sshd accepts empty passwords",
            f"PermitEmptyPasswords yes ({s.source})",
            f"set PermitEmptyPasswords no in the sshd config, then {SSHD_RELOAD}",
        )
    if pw and root == "yes":
        yield Finding(
            "sshd.root_password_login",
            "critical",
            "sshd lets root log in with a password",
            f"PermitRootLogin yes and {pw} ({s.source}){caveat}",
            "set PermitRootLogin prohibit-password and PasswordAuthentication no (put them in "
            f"/etc/ssh/sshd_config.d/10-clawd.conf: the first value wins), then {SSHD_RELOAD}",
        )
    elif root == "yes":
        yield Finding(
            "sshd.root_login",
            "warn",
            "sshd permits root login",
            f"PermitRootLogin yes ({s.source}){caveat}",
            f"set PermitRootLogin prohibit-password (or no), then {SSHD_RELOAD}",
        )
    if pw:
        yield Finding(
            "sshd.password_auth",
            "warn",
            "sshd allows password logins",
            f"{pw} ({s.source}){caveat}",
            "use SSH keys (`ssh-copy-id`), then set PasswordAuthentication no and "
            "KbdInteractiveAuthentication no (in /etc/ssh/sshd_config.d/10-clawd.conf: the first value "
            f"wins), then {SSHD_RELOAD}",
        )
    blocked = forwarding_blocked(s.settings, port)
    if blocked:
        yield Finding(
            "sshd.tcp_forwarding_disabled",
            "warn",
            "sshd refuses the local port forwarding the SSH tunnel needs",
            f"{blocked} ({s.source}): `clawd connect` / `ssh -L {port}:127.0.0.1:{port}` "
            "cannot reach the gateway" + caveat,
            f"set AllowTcpForwarding local (and PermitOpen 127.0.0.1:{port} to allow only the gateway), "
            f"then {SSHD_RELOAD}",
        )
    for m in s.matches:
        ms = dict(s.settings)
        ms.update(m.settings)
        if "passwordauthentication" in m.settings or "kbdinteractiveauthentication" in m.settings:
            mpw = password_login(ms)
            if mpw and not pw:
                yield Finding(
                    "sshd.password_auth_match",
                    "warn",
                    "sshd allows password logins for some connections",
                    f"Match {m.criteria} ({m.where}): {mpw}",
                    f"remove the password setting from that Match block, then {SSHD_RELOAD}",
                )
        if {"allowtcpforwarding", "disableforwarding", "permitopen"} & set(m.settings):
            mb = forwarding_blocked(ms, port)
            if mb and not blocked:
                yield Finding(
                    "sshd.tcp_forwarding_match",
                    "info",
                    "sshd blocks port forwarding for some connections",
                    f"Match {m.criteria} ({m.where}): {mb}; the tunnel fails for users/hosts it matches",
                    "make sure the tunnel's account is not matched, or allow local forwarding there",
                )


# --- --deep: what Tailscale exposes, what the running gateway does -----------------------------------------


def _route_off(binary: str, kind: str, r: TailscaleRoute) -> str:
    """The command that removes this one route, never `serve reset` (which would also wipe the
    user's other Serve/Funnel routes, the thing clawd-gateway promises never to touch)."""
    if r.listen.startswith("tcp:"):
        return f"`{binary} {kind} --tcp={r.listen[4:]} off`"
    port = r.listen.rsplit(":", 1)[-1]
    return f"`{binary} {kind} --https={port} --set-path={r.path or '/'} off`"


def check_tailscale_observed(f: Facts) -> Iterable[Finding]:
    ts = f.tailscale
    if ts is None:
        return
    if ts.error:
        yield Finding(
            "tailscale.status_failed",
            "warn",
            "Could not ask Tailscale what Serve/Funnel expose",
            f"{ts.binary}: {ts.error}",
            f"run `{ts.binary} serve status` and `{ts.binary} funnel status` yourself",
        )
        return
    cfg = f.config
    ports = gateway_ports(f)
    mode = cfg.tailscale_mode if cfg else "off"
    auth = cfg.auth_mode if cfg else "token"
    for r in ts.routes:
        url = f"{r.listen}{r.path}"
        if not (r.target_loopback and r.target_port in ports):
            if r.funnel:
                yield Finding(
                    "tailscale.funnel.other",
                    "info",
                    "Tailscale Funnel publishes something else on this host",
                    f"{url} → {r.target} (public internet)",
                    f"check it is meant to be public; remove it with {_route_off(ts.binary, 'funnel', r)}",
                )
            continue
        unmanaged = (
            f'; the config says tailscale.mode "{mode}", so this route was set up outside clawd-gateway '
            "and stays after it exits"
            if (r.funnel and mode != "funnel") or (not r.funnel and mode == "off")
            else ""
        )
        if r.funnel:
            yield Finding(
                "tailscale.funnel.exposes_gateway",
                "critical" if auth != "password" else "warn",
                "Observed: Tailscale Funnel exposes the gateway to the public internet",
                f"{url} → {r.target} (Funnel on); gateway auth {auth}{unmanaged}",
                f"{_route_off(ts.binary, 'funnel', r)} and use Serve; if Funnel is intended, set "
                '"auth": {"mode": "password"}',
            )
        else:
            yield Finding(
                "tailscale.serve.exposes_gateway",
                "critical" if auth == "none" else ("warn" if unmanaged else "info"),
                "Observed: Tailscale Serve exposes the gateway to the tailnet",
                f"{url} → {r.target}; gateway auth {auth}{unmanaged}",
                f"fine if intended; otherwise {_route_off(ts.binary, 'serve', r)}",
            )


def check_probe(f: Facts) -> Iterable[Finding]:
    p = f.probe
    if p is None:
        return
    if p.unauthenticated == "accepted":
        yield Finding(
            "gateway.probe.unauthenticated_accepted",
            "critical" if exposed(f) else "warn",
            "Observed: the running gateway accepts a WebSocket client with no credentials",
            f"{p.url}: connect without token/password got hello-ok; /readyz: {p.readyz}",
            'set "gateway": {"auth": {"mode": "token"}} with OPENCLAW_GATEWAY_TOKEN set, and restart it',
        )
    elif p.unauthenticated.startswith("error"):
        yield Finding(
            "gateway.probe.failed",
            "warn",
            "The live probe of the running gateway failed",
            f"{p.url}: {p.unauthenticated}; /readyz: {p.readyz}",
            "check it with `clawd-gateway status` and `clawd-gateway health`",
        )


def check_reminder(f: Facts) -> Iterable[Finding]:
    yield Finding(
        "audit.regular",
        "info",
        "Audit regularly",
        "a clean audit holds only until the next change",
        "run `clawd-gateway audit --deep` regularly (e.g. a weekly timer) and after every config change, "
        "upgrade, install-service, or `tailscale serve`/`funnel` change",
    )


CHECKS: tuple[Callable[[Facts], Iterable[Finding]], ...] = (
    check_config_state,
    check_bind,
    check_tailscale_config,
    check_auth,
    check_config_secrets,
    check_rate_limit,
    check_control_ui,
    check_listeners,
    check_paths,
    check_units,
    check_sshd,
    check_tailscale_observed,
    check_probe,
    check_reminder,
)


def run_checks(facts: Facts) -> list[Finding]:
    out: list[Finding] = []
    for check in CHECKS:
        out.extend(check(facts))
    return sort_findings(out)
