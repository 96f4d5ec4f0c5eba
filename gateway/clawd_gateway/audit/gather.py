"""Collect the facts the checks judge: files, listeners, service units, sshd, Tailscale, a live probe.

Everything here is I/O and tolerant: a fact that cannot be read becomes a `skipped` entry
with the reason, never a traceback, because an audit is most needed on a half-broken host.
Secret values are read only to measure them (length, entropy) and are dropped right after.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import json5

from .. import paths
from ..bind import is_loopback, resolve_bind
from ..config import _VAR, LoadedConfig, locate_config, parse_config_text
from ..errors import ConfigError
from ..service import ROOT_ENV, SECRET_VARS, parse_env_file
from ..settings import GENERATED_TOKEN_FILE, Overrides, resolve_settings
from .facts import (
    ConfigFacts,
    Facts,
    Listener,
    PathFact,
    ProbeFacts,
    SecretFact,
    SshdFacts,
    TailscaleFacts,
    UnitFact,
)
from .sshd import parse_sshd_config, parse_sshd_t
from .strength import estimate_bits, is_placeholder
from .tsroutes import merge_routes, routes_from_serve_config
from .units import argv_secrets, mask_argv, parse_launchd_plist, parse_systemd_unit

SSHD_CONFIG_ENV = "CLAWD_AUDIT_SSHD_CONFIG"  # point the sshd checks at another file (tests, chroots)
MACOS_TAILSCALE = "/Applications/Tailscale.app/Contents/MacOS/Tailscale"
UNIT_NAMES = ("clawd-gateway*", "openclaw-gateway*", "clawdbot-gateway*", "clawdbot", "openclaw", "moltbot*")
PLIST_NAMES = ("dev.clawd.gateway*", "ai.openclaw.*", "com.clawdbot.*", "bot.molt.*")
SYSTEM_UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
SECRETISH = re.compile(r"(token|secret|password|\.key$)", re.IGNORECASE)
MAX_STATE_FILES = 500
_MISSING = "\x00clawd-audit-missing:"


@dataclass
class Gathered:
    facts: Facts
    audited: dict[str, Any] = field(default_factory=dict)


# --- small helpers --------------------------------------------------------------------------------


def _owner(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):  # no pwd module on Windows
        return str(uid)


def _uid_of(name: str) -> int | None:
    try:
        import pwd

        return pwd.getpwnam(name).pw_uid
    except (ImportError, KeyError):
        return None


def path_fact(path: Path, role: str, holds_secret: bool = False) -> PathFact:
    try:
        lst = path.lstat()
    except OSError:
        return PathFact(str(path), role, exists=False)
    try:
        st = path.stat()
    except OSError:
        st = lst
    try:
        pst = path.parent.stat()
        parent_mode = stat.S_IMODE(pst.st_mode)
    except OSError:
        parent_mode = 0o755
    return PathFact(
        str(path),
        role,
        exists=True,
        is_dir=stat.S_ISDIR(st.st_mode),
        is_symlink=stat.S_ISLNK(lst.st_mode),
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        owner=_owner(st.st_uid),
        holds_secret=holds_secret,
        parent_mode=parent_mode,
        parent=str(path.parent),
    )


def _secret_fact(kind: str, source: str, value: str | None, literal: bool) -> SecretFact:
    if value is None or value.startswith(_MISSING):
        return SecretFact(kind, source, literal, None, None)
    return SecretFact(kind, source, literal, len(value), estimate_bits(value), is_placeholder(value))


def _get(d: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)
    return d


# --- services -------------------------------------------------------------------------------------


def _root(env: Mapping[str, str]) -> Path | None:
    return Path(env[ROOT_ENV]) if env.get(ROOT_ENV) else None


def _system_path(p: str, root: Path | None) -> Path:
    return root / p.lstrip("/") if root else Path(p)


def gather_units(env: Mapping[str, str]) -> list[UnitFact]:
    root = _root(env)
    home = Path(env.get("HOME") or Path.home())
    xdg = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    unit_dirs = [_system_path(d, root) for d in SYSTEM_UNIT_DIRS] + [xdg / "systemd" / "user"]
    found: list[UnitFact] = []
    seen: set[str] = set()
    for d in unit_dirs:
        for name in UNIT_NAMES:
            for p in [*sorted(d.glob(f"{name}.service")), *sorted(d.glob(f"{name}.service.d/*.conf"))]:
                if str(p) in seen or not p.is_file():
                    continue
                seen.add(str(p))
                try:
                    text = p.read_text(encoding="utf-8", errors="replace")
                    mode = stat.S_IMODE(p.stat().st_mode)
                except OSError:
                    continue
                found.append(parse_systemd_unit(str(p), text, mode))
    plist_dirs = [home / "Library" / "LaunchAgents", _system_path("/Library/LaunchDaemons", root)]
    for d in plist_dirs:
        for name in PLIST_NAMES:
            for p in sorted(d.glob(f"{name}.plist")):
                try:
                    found.append(parse_launchd_plist(str(p), p.read_bytes(), stat.S_IMODE(p.stat().st_mode)))
                except OSError:
                    continue
    return found


def _env_file_path(unit: UnitFact, raw: str, env: Mapping[str, str]) -> Path:
    home = env.get("HOME") or str(Path.home())
    user_unit = unit.path.startswith(home + "/")
    return Path(raw) if user_unit else _system_path(raw, _root(env))


# --- config ---------------------------------------------------------------------------------------


def _raw_gateway(text: str) -> dict[str, Any]:
    try:
        data = json5.loads(text)
    except (ValueError, RecursionError):
        return {}
    gw = data.get("gateway") if isinstance(data, dict) else None
    return gw if isinstance(gw, dict) else {}


def _literal_secrets(raw: dict[str, Any]) -> list[str]:
    out = []
    for key in ("auth.token", "auth.password", "remote.token", "remote.password"):
        v = _get(raw, key)
        if isinstance(v, str) and v.strip() and not _VAR.search(v):
            out.append(f"gateway.{key}")
    return out


def gather_config(
    path: Path | None, source: str, env: Mapping[str, str], service_env: Mapping[str, str]
) -> tuple[ConfigFacts, str | None]:
    """The config as the gateway would see it (with the service's env file), and its raw text."""
    text: str | None = None
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if source == "--config" or source.startswith("env "):
                raise ConfigError(
                    f"config file not found (from {source})",
                    file=path,
                    fix="check the path given to --config / OPENCLAW_CONFIG_PATH",
                ) from None
            path = None
        except (OSError, UnicodeDecodeError) as exc:
            return ConfigFacts(str(path), source, error=f"cannot read {path}: {exc}"), None
    raw = _raw_gateway(text) if text else {}
    load_env: dict[str, str] = {**env, **service_env}
    for m in _VAR.finditer(text or ""):
        if not m.group(1) and m.group(2) not in load_env:
            load_env[m.group(2)] = _MISSING + m.group(2)
    literal = tuple(_literal_secrets(raw))
    loaded: LoadedConfig
    if text is None:
        loaded = LoadedConfig(None, source)
    else:
        try:
            loaded = parse_config_text(text, path, load_env, source)
        except ConfigError as exc:
            facts = ConfigFacts(
                str(path), source, error=str(exc), refused_fix=exc.fix, literal_secret_keys=literal
            )
            return facts, text
    refused = refused_fix = None
    try:
        resolve_settings(Overrides(), env=load_env, loaded=loaded, create_token=False)
    except ConfigError as exc:
        refused, refused_fix = str(exc), exc.fix

    port = loaded.get("port") or 18789
    for var in ("OPENCLAW_GATEWAY_PORT", "CLAWDBOT_GATEWAY_PORT"):
        if load_env.get(var):
            digits = load_env[var].rsplit(":", 1)[-1]
            port = int(digits) if digits.isdigit() else port
            break
    tailscale_mode = loaded.get("tailscale.mode") or "off"
    bind_mode = loaded.get("bind") or "loopback"
    try:
        bind_hosts = resolve_bind(bind_mode, loaded.get("customBindHost")).hosts
    except ConfigError:
        bind_hosts = (f"<{bind_mode}>",)

    def pick(kind: str) -> SecretFact | None:
        key = f"auth.{kind}"
        conf_val = loaded.get(key)
        raw_val = _get(raw, key)
        if isinstance(conf_val, str) and conf_val:
            if f"gateway.{key}" in literal:
                src = f"config gateway.{key} (written in the file)"
            else:
                names = [m.group(2) for m in _VAR.finditer(str(raw_val)) if not m.group(1)]
                where = ", ".join(
                    f"${{{n}}}" + (" from the service env file" if n in service_env else "") for n in names
                )
                src = f"config gateway.{key} = {where or 'substituted'}"
            return _secret_fact(kind, src, conf_val, f"gateway.{key}" in literal)
        for var in (f"OPENCLAW_GATEWAY_{kind.upper()}", f"CLAWDBOT_GATEWAY_{kind.upper()}"):
            if load_env.get(var):
                src = f"env {var}" + (" (service env file)" if var in service_env else "")
                return _secret_fact(kind, src, load_env[var], False)
        return None

    token, password = pick("token"), pick("password")
    auth_mode = loaded.get("auth.mode") or ("password" if password is not None and token is None else "token")
    token_generated = False
    if auth_mode == "token" and token is None:
        token_generated = True
        gen = paths.state_dir(env) / GENERATED_TOKEN_FILE
        try:
            value = gen.read_text(encoding="utf-8").strip()
            token = _secret_fact("token", f"generated token file {gen}", value, False)
        except OSError:
            pass
    allow_conf = loaded.get("auth.allowTailscale")
    rl = loaded.get("auth.rateLimit") or {}
    ui = loaded.get("controlUi") or {}
    flags = tuple(
        (k, ui[k])
        for k in (
            "dangerouslyDisableDeviceAuth",
            "allowInsecureAuth",
            "dangerouslyAllowHostHeaderOriginFallback",
        )
        if k in ui
    )
    facts = ConfigFacts(
        path=str(path) if path else None,
        source=source,
        refused=refused,
        refused_fix=refused_fix,
        bind_mode=bind_mode,
        bind_hosts=tuple(bind_hosts),
        port=int(port),
        auth_mode=auth_mode,
        token=token,
        password=password,
        token_generated=token_generated,
        allow_tailscale=bool(allow_conf)
        if allow_conf is not None
        else (tailscale_mode == "serve" and auth_mode != "password"),
        allow_tailscale_explicit=allow_conf is not None,
        tailscale_mode=tailscale_mode,
        rate_limit=dict(rl),
        control_ui_enabled=bool(ui.get("enabled", True)),
        allowed_origins=tuple(ui.get("allowedOrigins") or ()),
        dangerous_flags=flags,
        literal_secret_keys=literal,
    )
    return facts, text


# --- files in the state dir -----------------------------------------------------------------------


def gather_state(state_dirs: list[Path]) -> list[PathFact]:
    out: list[PathFact] = []
    for d in state_dirs:
        fact = path_fact(d, "state_dir")
        if not fact.exists:
            continue
        out.append(fact)
        count = 0
        for dirpath, dirnames, filenames in os.walk(d):
            depth = Path(dirpath).relative_to(d).parts
            if len(depth) >= 3:
                dirnames[:] = []
            for name in sorted(filenames):
                count += 1
                if count > MAX_STATE_FILES:
                    return out
                p = Path(dirpath) / name
                if depth[:1] == ("run",) and name.endswith(".json"):
                    continue  # runtime files (pid, port) are meant to be readable
                if name == GENERATED_TOKEN_FILE:
                    out.append(path_fact(p, "token_file", holds_secret=True))
                else:
                    out.append(path_fact(p, "state_file", holds_secret=bool(SECRETISH.search(name))))
    return out


# --- listeners ------------------------------------------------------------------------------------


def _is_gateway_cmd(argv: list[str]) -> bool:
    text = " ".join(argv)
    if "audit" in argv:
        return False
    return (
        "clawd_gateway" in text
        or "clawd-gateway" in text
        or ("openclaw" in text and "gateway" in text)
        or ("clawdbot" in text and "gateway" in text)
    )


def gather_listeners(ports: set[int]) -> tuple[list[Listener], str | None]:
    """TCP listeners on this setup's ports (configured, and those in its state dir's runtime files).

    Gateways of other setups on the same host (another config, another state dir) are theirs
    to audit; mixing them in would blame this config for them.
    """
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError, OSError) as exc:
        return [], f"cannot list sockets ({exc}); run as root to see all of them"
    procs: dict[int, tuple[str | None, list[str], int | None]] = {}
    out: list[Listener] = []
    for c in conns:
        if c.status != psutil.CONN_LISTEN or not c.laddr:
            continue
        name: str | None = None
        argv: list[str] = []
        uid: int | None = None
        if c.pid:
            if c.pid not in procs:
                try:
                    p = psutil.Process(c.pid)
                    procs[c.pid] = (p.name(), p.cmdline(), p.uids().real)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    procs[c.pid] = (None, [], None)
            name, argv, uid = procs[c.pid]
        if c.laddr.port not in ports:
            continue
        gw = _is_gateway_cmd(argv)
        out.append(
            Listener(
                address=c.laddr.ip,
                port=c.laddr.port,
                pid=c.pid,
                process=name,
                cmdline=mask_argv(argv)[:300] if argv else None,
                is_gateway=gw,
                argv_secrets=tuple(f"{flag} **** ({n} chars)" for flag, n in argv_secrets(argv)),
                uid=uid,
            )
        )
    out.sort(key=lambda li: (li.port, li.address))
    return out, None


def runtime_ports(state_dirs: list[Path]) -> set[int]:
    ports: set[int] = set()
    for d in state_dirs:
        for f in (d / "run").glob("gateway-*.json"):
            try:
                data = json.loads(f.read_text())
                ports.add(int(data["port"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return ports


# --- sshd -----------------------------------------------------------------------------------------


def sshd_binary() -> str | None:
    return shutil.which("sshd") or next(
        (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.access(p, os.X_OK)), None
    )


def gather_sshd(config: Path, binary: str | None) -> tuple[SshdFacts | None, str | None]:
    """sshd's effective settings, or (None, why not)."""
    if not config.exists():
        return None, f"no {config} (OpenSSH server not installed?)"
    readable = os.access(config, os.R_OK)
    caveats: list[str] = []
    matches: list[Any] = []
    if readable:
        _, matches, parse_caveats = parse_sshd_config(str(config))
        caveats += parse_caveats
    if binary:
        try:
            proc = subprocess.run(
                [binary, "-T", "-f", str(config)], capture_output=True, text=True, timeout=10, check=False
            )
            if proc.returncode == 0 and proc.stdout.strip():
                return SshdFacts(
                    f"`sshd -T -f {config}`", parse_sshd_t(proc.stdout), tuple(matches), ()
                ), None
            why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = str(exc)
        caveats.append(f"`sshd -T` failed ({why}); read the files instead")
    if not readable:
        return None, f"{config} is not readable and `sshd -T` did not run (audit as root to include sshd)"
    settings, matches, _ = parse_sshd_config(str(config))
    return SshdFacts(f"parsed {config}", settings, tuple(matches), tuple(caveats)), None


# --- tailscale (--deep) ---------------------------------------------------------------------------


def tailscale_binary(env: Mapping[str, str]) -> str | None:
    found = shutil.which("tailscale", path=env.get("PATH"))
    if found:
        return found
    return MACOS_TAILSCALE if os.access(MACOS_TAILSCALE, os.X_OK) else None


def _json_from(output: str) -> Any:
    text = output.strip()
    if text == "null" or not text:
        return None
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError(f"not JSON: {text[:120]!r}")
    return json.loads(text[start : end + 1])


def gather_tailscale(binary: str, env: Mapping[str, str]) -> TailscaleFacts:
    lists = []
    for what in ("serve", "funnel"):
        try:
            proc = subprocess.run(
                [binary, what, "status", "--json"],
                capture_output=True,
                text=True,
                timeout=15,
                check=False,
                env=dict(env),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return TailscaleFacts(binary, error=f"`tailscale {what} status --json`: {exc}")
        if proc.returncode != 0:
            msg = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()[0]
            return TailscaleFacts(binary, error=f"`tailscale {what} status --json` failed: {msg}")
        try:
            lists.append(routes_from_serve_config(_json_from(proc.stdout)))
        except ValueError as exc:
            return TailscaleFacts(binary, error=f"`tailscale {what} status --json`: {exc}")
    return TailscaleFacts(binary, merge_routes(*lists))


# --- live probe (--deep) --------------------------------------------------------------------------


def probe_gateway(host: str, port: int, timeout: float = 5.0) -> ProbeFacts:
    from ..client import GatewayAuthError, GatewayCallError, GatewayUnreachable, open_session

    hostpart = f"[{host}]" if ":" in host else host
    url = f"ws://{hostpart}:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{hostpart}:{port}/readyz", timeout=timeout) as resp:
            readyz = f"{resp.status} {resp.read(200).decode('utf-8', 'replace').strip()}"
    except urllib.error.HTTPError as exc:
        readyz = f"{exc.code} {exc.read(200).decode('utf-8', 'replace').strip()}"
    except (OSError, ValueError) as exc:
        readyz = f"no answer ({getattr(exc, 'reason', exc)})"

    async def attempt() -> str:
        try:
            session = await open_session(url, timeout=timeout)
        except (GatewayAuthError, GatewayCallError) as exc:
            code = (exc.error.details or {}).get("code") or exc.error.code
            return f"refused {code}"
        except GatewayUnreachable as exc:
            return f"unreachable: {exc}"
        except Exception as exc:  # the probe reports, never crashes the audit
            return f"error: {exc}"
        await session.close()
        return "accepted"

    return ProbeFacts(url, readyz, asyncio.run(attempt()))


# --- everything -----------------------------------------------------------------------------------


def gather(
    *,
    config: str | None,
    env: Mapping[str, str] | None = None,
    deep: bool = False,
) -> Gathered:
    env = dict(os.environ if env is None else env)
    skipped: list[tuple[str, str]] = []
    units = gather_units(env)

    # The service's env file is the environment the gateway really gets.
    env_paths: list[Path] = []
    for u in units:
        env_paths += [_env_file_path(u, raw, env) for raw in u.env_files]
    service_env: dict[str, str] = {}
    path_facts: list[PathFact] = []
    for p in dict.fromkeys(env_paths):
        if not p.exists():
            continue
        try:
            vars_ = parse_env_file(p.read_text(encoding="utf-8"))
            service_env.update(vars_)
            holds = any(vars_.get(v) for v in SECRET_VARS) or any(
                v for k, v in vars_.items() if SECRETISH.search(k)
            )
        except OSError:
            holds = True
            skipped.append(("service env file", f"{p} is not readable (audit as root to measure its secret)"))
        path_facts.append(path_fact(p, "env_file", holds_secret=holds))

    cfg_path, source = locate_config(config, env)
    if cfg_path is None:
        for u in units:
            if u.config_arg:
                cfg_path, source = _env_file_path(u, u.config_arg, env), f"ExecStart of {u.path}"
                break
    cfg, _ = gather_config(cfg_path, source, env, service_env)
    if cfg.path:
        path_facts.insert(0, path_fact(Path(cfg.path), "config"))

    state_dirs = [paths.state_dir(env)]
    system_state = _system_path("/var/lib/clawd-gateway", _root(env))
    if system_state.exists() and system_state not in state_dirs:
        state_dirs.append(system_state)
    path_facts += gather_state(state_dirs)

    ports = {cfg.port} | runtime_ports(state_dirs)
    listeners, why = gather_listeners(ports)
    if why:
        skipped.append(("listeners", why))

    gateway_uids = {li.uid for li in listeners if li.is_gateway and li.uid is not None}
    for u in units:
        uid = _uid_of(u.run_as) if u.run_as else None
        if uid is not None:
            gateway_uids.add(uid)

    sshd_conf = Path(env.get(SSHD_CONFIG_ENV) or "/etc/ssh/sshd_config")
    sshd, why = gather_sshd(sshd_conf, sshd_binary())
    if why:
        skipped.append(("sshd", why))

    tailscale = probe = None
    if deep:
        binary = tailscale_binary(env)
        if binary:
            tailscale = gather_tailscale(binary, env)
        else:
            skipped.append(("tailscale", "no `tailscale` binary on PATH (or in /Applications)"))
        gw = [li for li in listeners if li.is_gateway and li.port == cfg.port] or [
            li for li in listeners if li.is_gateway
        ]
        if gw:
            addrs = {li.address for li in gw}
            host = (
                "127.0.0.1"
                if addrs & {"127.0.0.1", "0.0.0.0"}
                else "::1"
                if addrs & {"::1", "::"}
                else sorted(addrs)[0]
            )
            probe = probe_gateway(host, gw[0].port)
            if probe.unauthenticated.startswith("unreachable"):
                skipped.append(("live probe", probe.unauthenticated))
                probe = None
        else:
            skipped.append(("live probe", f"no gateway is listening (port {cfg.port})"))
    else:
        skipped.append(("tailscale, live probe", "only with --deep"))

    facts = Facts(
        config=cfg,
        paths=tuple(path_facts),
        listeners=tuple(listeners),
        units=tuple(units),
        sshd=sshd,
        tailscale=tailscale,
        probe=probe,
        gateway_uids=frozenset(gateway_uids),
        current_uid=os.geteuid() if hasattr(os, "geteuid") else -1,
        deep=deep,
        skipped=tuple(skipped),
    )
    audited: dict[str, Any] = {
        "configFile": cfg.path,
        "configSource": cfg.source,
        "stateDirs": [str(d) for d in state_dirs],
        "serviceFiles": [u.path for u in units],
        "envFiles": [str(p) for p in dict.fromkeys(env_paths)],
        "sshd": sshd.source if sshd else None,
        "listeners": [
            {
                "address": li.address,
                "port": li.port,
                "pid": li.pid,
                "process": li.process,
                "gateway": li.is_gateway,
            }
            for li in listeners
        ],
    }
    if tailscale is not None:
        audited["tailscale"] = {
            "binary": tailscale.binary,
            "error": tailscale.error,
            "routes": [
                {"listen": r.listen, "path": r.path, "target": r.target, "funnel": r.funnel}
                for r in tailscale.routes
            ],
        }
    if probe is not None:
        audited["probe"] = {
            "url": probe.url,
            "readyz": probe.readyz,
            "unauthenticated": probe.unauthenticated,
        }
    return Gathered(facts, audited)


def loopback_only(hosts: tuple[str, ...]) -> bool:
    return all(is_loopback(h) for h in hosts)
