"""Shared logic of the fake `tailscale` CLI and the fake LocalAPI (stdlib only).

The executable next to this file and `FakeTailscale.start_localapi()` both answer from one JSON
state file, so a scenario set from a test is seen identically by CLI calls and LocalAPI calls.
Texts, exit codes and JSON shapes follow Tailscale's source (cmd/tailscale/cli/serve_v2.go,
serve_legacy.go, funnel.go, status.go, whois.go, version.go, ip.go; ipn/serve.go;
ipn/ipnstate/ipnstate.go; ipn/localapi/localapi.go; client/local/local.go).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import os
import posixpath
import signal
import sys
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

STATE_ENV = "FAKE_TAILSCALE_STATE"
CALLS_NAME = "calls.jsonl"
DEFAULT_SOCKET = "/var/run/tailscale/tailscaled.sock"
ZERO_TIME = "0001-01-01T00:00:00Z"
CREATED = "2026-01-05T09:30:00.123456789Z"
KEY_EXPIRY = "2026-07-04T09:30:00Z"
FUNNEL_PORTS_CAP = "https://tailscale.com/cap/funnel-ports"
LEGACY_BELOW = (1, 52)  # serve/funnel v2 CLI ("--bg", "--https=") arrived in 1.52


# --------------------------------------------------------------------------- state file


def default_state() -> dict[str, Any]:
    return {
        "daemon_running": True,
        "backend_state": "Running",
        "auth_url": "",
        "version": "1.94.2",
        "tun": True,
        "health": [],
        "tailnet": {
            "name": "alice@example.com",
            "magic_dns_suffix": "tail1234.ts.net",
            "magic_dns_enabled": True,
        },
        "self": {
            "hostname": "gw",
            "dns_name": "gw.tail1234.ts.net.",
            "ips": ["100.101.102.103", "fd7a:115c:a1e0::1234:5678"],
            "online": True,
            "os": "linux",
            "user_login": "alice@example.com",
            "user_display_name": "Alice Example",
            "tags": [],
            "extra_caps": [],
        },
        "https_enabled": True,
        "https_enable_wait": False,
        "funnel_attr": True,
        "funnel_ports": "443,8443,10000",
        "funnel_enable_prompt": False,
        "access_denied": False,
        "peers": [],
        "whois_extra": [],
        "serve_config": None,
        "fg_sessions": {},
        "socket_path": "",
        "localapi_socket": "",
    }


@contextlib.contextmanager
def locked_state(path: str, write: bool = True) -> Iterator[dict[str, Any]]:
    """Read-modify-write under an exclusive fcntl lock so concurrent calls never corrupt state."""
    lock_path = path + ".lock"
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                with open(path, encoding="utf-8") as f:
                    state = json.load(f)
            except FileNotFoundError:
                state = default_state()
            before = json.dumps(state, sort_keys=True)
            _prune_dead_sessions(state)
            yield state
            if write or json.dumps(state, sort_keys=True) != before:
                tmp = f"{path}.tmp{os.getpid()}"
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(state, f, indent=1)
                os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_state(path: str) -> dict[str, Any]:
    with locked_state(path, write=False) as state:
        return copy.deepcopy(state)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    except (OSError, IndexError):
        return True


def _prune_dead_sessions(state: dict[str, Any]) -> None:
    """tailscaled drops a foreground session's config when its IPN bus watcher goes away."""
    sessions: dict[str, int] = state.get("fg_sessions") or {}
    dead = [sid for sid, pid in sessions.items() if not _pid_alive(int(pid))]
    for sid in dead:
        drop_foreground(state, sid)


def drop_foreground(state: dict[str, Any], sid: str) -> None:
    state.get("fg_sessions", {}).pop(sid, None)
    sc = state.get("serve_config")
    if isinstance(sc, dict) and isinstance(sc.get("Foreground"), dict):
        sc["Foreground"].pop(sid, None)
        if not sc["Foreground"]:
            del sc["Foreground"]


def record_call(state_path: str, argv: list[str], socket: str | None) -> None:
    rec = {"argv": argv, "cwd": os.getcwd(), "t": time.time(), "pid": os.getpid(), "socket": socket}
    calls = os.path.join(os.path.dirname(os.path.abspath(state_path)), CALLS_NAME)
    line = json.dumps(rec) + "\n"
    fd = os.open(calls, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode())
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- identities


def _h(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def node_key(hostname: str) -> str:
    return "nodekey:" + _h("node", hostname)


def stable_id(hostname: str) -> str:
    return "n" + _h("stable", hostname)[:10].upper() + "CNTRL"


def node_int_id(hostname: str) -> int:
    return int(_h("id", hostname)[:13], 16)


def user_id(login: str) -> int:
    return int(_h("user", login)[:13], 16)


def version_tuple(v: str) -> tuple[int, int]:
    parts = ([*v.split("-")[0].split("."), "0", "0"])[:2]
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        return (99, 0)


def is_legacy(state: dict[str, Any]) -> bool:
    return version_tuple(state["version"]) < LEGACY_BELOW


def version_long(v: str) -> str:
    return f"{v}-t{_h('commit', v)[:9]}-g{_h('other', v)[:9]}"


def version_string(v: str) -> str:
    lines = [v, f"  tailscale commit: {_h('commit', v)[:40]}"]
    if not is_legacy({"version": v}):
        lines.append(f"  long version: {version_long(v)}")
    lines += [f"  other commit: {_h('other', v)[:40]}", "  go version: go1.25.5"]
    return "\n".join(lines)


def version_meta(v: str) -> dict[str, Any]:
    return {
        "majorMinorPatch": v.split("-")[0],
        "short": v,
        "long": version_long(v),
        "unstableBranch": version_tuple(v)[1] % 2 == 1,
        "gitCommit": _h("commit", v)[:40],
        "extraGitCommit": _h("other", v)[:40],
        "cap": 120,
    }


# --------------------------------------------------------------------------- status JSON


def self_caps(state: dict[str, Any]) -> list[str]:
    caps = [
        "https://tailscale.com/cap/file-sharing",
        "https://tailscale.com/cap/is-admin",
        "https://tailscale.com/cap/ssh",
    ]
    if state.get("https_enabled"):
        caps.append("https")
    if state.get("funnel_attr"):
        caps.append("funnel")
        if state.get("funnel_ports"):
            caps.append(f"{FUNNEL_PORTS_CAP}?ports={state['funnel_ports']}")
    caps += list(state["self"].get("extra_caps") or [])
    return sorted(set(caps))


def has_cap(state: dict[str, Any], cap: str) -> bool:
    return cap in self_caps(state)


def _allowed_ips(ips: list[str]) -> list[str]:
    return [ip + ("/128" if ":" in ip else "/32") for ip in ips]


def _peer_status(
    node: dict[str, Any], caps: list[str] | None, is_self: bool, running: bool
) -> dict[str, Any]:
    login = node.get("user_login") or ""
    ips = list(node.get("ips") or []) if running else []
    ps: dict[str, Any] = {
        "ID": stable_id(node["hostname"]),
        "PublicKey": node_key(node["hostname"]),
        "HostName": node["hostname"],
        "DNSName": node.get("dns_name") or "",
        "OS": node.get("os") or "linux",
        "UserID": user_id("tagged-devices" if node.get("tags") else login),
        "TailscaleIPs": ips or None,
        "AllowedIPs": _allowed_ips(ips),
    }
    if node.get("tags"):
        ps["Tags"] = list(node["tags"])
    ps.update(
        {
            "Addrs": ["192.0.2.10:41641"] if is_self else None,
            "CurAddr": "",
            "Relay": "fra",
            "RxBytes": 0,
            "TxBytes": 0,
            "Created": CREATED,
            "LastWrite": ZERO_TIME,
            "LastSeen": ZERO_TIME if node.get("online", True) else "2026-11-20T08:00:00Z",
            "LastHandshake": ZERO_TIME,
            "Online": bool(node.get("online", True)) and running,
            "ExitNode": False,
            "ExitNodeOption": False,
            "Active": False,
            "PeerAPIURL": [f"http://{ip}:41900" if ":" not in ip else f"http://[{ip}]:41900" for ip in ips],
        }
    )
    if caps:
        ps["Capabilities"] = caps
        ps["CapMap"] = {c: None for c in caps}
    ps.update({"InNetworkMap": running, "InMagicSock": False, "InEngine": False, "KeyExpiry": KEY_EXPIRY})
    return ps


def _user_profile(login: str, display: str, tagged: bool = False) -> dict[str, Any]:
    if tagged:
        login, display = "tagged-devices", "Tagged Devices"
    up: dict[str, Any] = {"ID": user_id(login), "LoginName": login, "DisplayName": display}
    if not tagged:
        up["ProfilePicURL"] = f"https://example.com/pic/{_h('pic', login)[:8]}.png"
    return up


def build_status(state: dict[str, Any], peers: bool = True) -> dict[str, Any]:
    backend = state["backend_state"]
    running = backend in ("Running", "Starting", "Stopped")
    logged_in = backend not in ("NeedsLogin", "NoState")
    me = state["self"]
    tn = state["tailnet"]
    health = list(state.get("health") or [])
    if backend == "NeedsLogin" and not health:
        health = ["You are logged out."]
    st: dict[str, Any] = {
        "Version": version_long(state["version"]),
        "TUN": bool(state.get("tun", True)),
        "BackendState": backend,
        "HaveNodeKey": logged_in,
        "AuthURL": state.get("auth_url") or "",
        "TailscaleIPs": (list(me["ips"]) or None) if logged_in and running else None,
        "Self": _peer_status(me, self_caps(state) if logged_in else None, True, logged_in and running),
        "Health": health,
        "MagicDNSSuffix": tn["magic_dns_suffix"] if logged_in else "",
        "CurrentTailnet": (
            {
                "Name": tn["name"],
                "MagicDNSSuffix": tn["magic_dns_suffix"],
                "MagicDNSEnabled": bool(tn["magic_dns_enabled"]),
            }
            if logged_in
            else None
        ),
        "CertDomains": [me["dns_name"].rstrip(".")] if logged_in and state.get("https_enabled") else None,
        "Peer": None,
        "User": None,
        "ClientVersion": {"RunningLatest": True} if logged_in else None,
    }
    if not logged_in:
        st["Self"]["DNSName"] = ""
        st["Self"]["UserID"] = 0
        return st
    users: dict[str, Any] = {}
    users[str(user_id(me["user_login"]))] = _user_profile(me["user_login"], me["user_display_name"])
    if peers and backend == "Running":
        st["Peer"] = {}
        for p in state.get("peers") or []:
            st["Peer"][node_key(p["hostname"])] = _peer_status(p, p.get("caps"), False, True)
            tagged = bool(p.get("tags"))
            up = _user_profile(p.get("user_login") or "", p.get("user_display_name") or "", tagged)
            users[str(up["ID"])] = up
    elif backend == "Running":
        st["Peer"] = None
    if st["Peer"]:
        st["Peer"] = dict(sorted(st["Peer"].items()))
    st["User"] = dict(sorted(users.items()))
    return st


# --------------------------------------------------------------------------- whois


def whois_lookup(state: dict[str, Any], addr: str) -> tuple[int, Any]:
    """Returns (http_status, body) exactly as LocalAPI /localapi/v0/whois answers."""
    if not addr:
        return 400, "missing 'addr' parameter"
    ip = _parse_addr(addr)
    if ip is None:
        if addr.startswith("nodekey:"):
            for node in _whois_nodes(state):
                if node_key(node["hostname"]) == addr:
                    return 200, whois_response(state, node)
            return 404, "no match for IP:port"
        return 400, "invalid 'addr' parameter"
    if state["backend_state"] not in ("Running", "Starting"):
        return 404, "no match for IP:port"
    for node in _whois_nodes(state):
        if ip in [i.lower() for i in node.get("ips") or []]:
            return 200, whois_response(state, node)
    return 404, "no match for IP:port"


def _parse_addr(addr: str) -> str | None:
    import ipaddress

    try:
        return str(ipaddress.ip_address(addr)).lower()
    except ValueError:
        pass
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            return str(ipaddress.IPv6Address(host)).lower()
        except ValueError:
            return None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        return None


def _whois_nodes(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [state["self"], *(state.get("peers") or []), *(state.get("whois_extra") or [])]


def whois_response(state: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    tagged = bool(node.get("tags"))
    login = node.get("user_login") or ""
    up = _user_profile(login, node.get("user_display_name") or "", tagged)
    name = node.get("dns_name") or f"{node['hostname']}.{state['tailnet']['magic_dns_suffix']}."
    short = name.split(".")[0]
    ips = list(node.get("ips") or [])
    n: dict[str, Any] = {
        "ID": node_int_id(node["hostname"]),
        "StableID": stable_id(node["hostname"]),
        "Name": name,
        "User": up["ID"],
        "Key": node_key(node["hostname"]),
        "KeyExpiry": KEY_EXPIRY,
        "Machine": "mkey:" + _h("machine", node["hostname"]),
        "DiscoKey": "discokey:" + _h("disco", node["hostname"]),
        "Addresses": _allowed_ips(ips),
        "AllowedIPs": _allowed_ips(ips),
        "Endpoints": ["192.0.2.20:41641"],
        "HomeDERP": 4,
        "Hostinfo": {"OS": node.get("os") or "linux", "Hostname": node["hostname"]},
        "Created": CREATED,
        "Cap": 120,
    }
    if tagged:
        n["Tags"] = list(node["tags"])
    n.update(
        {
            "Online": bool(node.get("online", True)),
            "MachineAuthorized": True,
            "ComputedName": short,
            "ComputedNameWithHost": short if short == node["hostname"] else f"{short} ({node['hostname']})",
        }
    )
    return {"Node": n, "UserProfile": up, "CapMap": node.get("peer_cap_map") or None}


# --------------------------------------------------------------------------- ServeConfig (ipn/serve.go)


def _sorted_map(m: dict[str, Any], numeric: bool = False) -> dict[str, Any]:
    keys = sorted(m, key=(lambda k: int(k)) if numeric else None)
    return {k: m[k] for k in keys}


def normalize_sc(sc: Any) -> Any:
    """Key order and omitempty exactly as Go's encoding/json renders ipn.ServeConfig."""
    if not isinstance(sc, dict):
        return sc
    out: dict[str, Any] = {}
    if sc.get("TCP"):
        tcp = {}
        for port, h in _sorted_map(sc["TCP"], numeric=True).items():
            tcp[str(port)] = {k: h[k] for k in ("HTTPS", "HTTP", "TCPForward", "TerminateTLS") if h.get(k)}
        out["TCP"] = tcp
    if sc.get("Web"):
        web = {}
        for hp, wc in _sorted_map(sc["Web"]).items():
            handlers = {}
            for mount, h in _sorted_map((wc or {}).get("Handlers") or {}).items():
                handlers[mount] = {k: h[k] for k in ("Path", "Proxy", "Text") if h.get(k)}
            web[hp] = {"Handlers": handlers or None}
        out["Web"] = web
    if sc.get("Services"):
        out["Services"] = _sorted_map(sc["Services"])
    if sc.get("AllowFunnel"):
        out["AllowFunnel"] = _sorted_map(sc["AllowFunnel"])
    if sc.get("Foreground"):
        out["Foreground"] = {k: normalize_sc(v) for k, v in _sorted_map(sc["Foreground"]).items()}
    return out


def go_json(obj: Any, indent: str | int | None = 2) -> str:
    """encoding/json output: UTF-8 kept, but <, > and & escaped as Go's HTML-safe default does."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def sc_json(sc: Any) -> str:
    return go_json(normalize_sc(sc))


def find_config(sc: dict[str, Any], port: int) -> tuple[dict[str, Any] | None, bool]:
    if str(port) in (sc.get("TCP") or {}):
        return sc, False
    for fsc in (sc.get("Foreground") or {}).values():
        if str(port) in (fsc.get("TCP") or {}):
            return fsc, True
    return None, False


def _tcp(sc: dict[str, Any], port: int) -> dict[str, Any] | None:
    return (sc.get("TCP") or {}).get(str(port))


def is_serving_web(sc: dict[str, Any], port: int) -> bool:
    h = _tcp(sc, port)
    return bool(h and (h.get("HTTP") or h.get("HTTPS")))


def is_tcp_forwarding_on_port(sc: dict[str, Any], port: int) -> bool:
    return _tcp(sc, port) is not None and not is_serving_web(sc, port)


def set_web_handler(
    sc: dict[str, Any], handler: dict[str, str], host: str, port: int, mount: str, tls: bool
) -> None:
    sc.setdefault("TCP", {})[str(port)] = {"HTTPS": True} if tls else {"HTTP": True}
    hp = f"{host}:{port}"
    web = sc.setdefault("Web", {})
    wc = web.setdefault(hp, {"Handlers": {}})
    if wc.get("Handlers") is None:
        wc["Handlers"] = {}
    wc["Handlers"][mount] = handler
    for k in list(wc["Handlers"]):
        if k != mount and k.rstrip("/") == mount.rstrip("/"):
            del wc["Handlers"][k]


def set_tcp_forwarding(sc: dict[str, Any], port: int, fwd: str, terminate_tls: bool, host: str) -> None:
    h: dict[str, Any] = {"TCPForward": fwd}
    if terminate_tls:
        h["TerminateTLS"] = host
    sc.setdefault("TCP", {})[str(port)] = h


def set_funnel(sc: dict[str, Any], host: str, port: int, on: bool) -> None:
    hp = f"{host}:{port}"
    if on:
        sc.setdefault("AllowFunnel", {})[hp] = True
    elif hp in (sc.get("AllowFunnel") or {}):
        del sc["AllowFunnel"][hp]
        if not sc["AllowFunnel"]:
            del sc["AllowFunnel"]


def remove_web_handler(
    sc: dict[str, Any], host: str, port: int, mounts: list[str], cleanup_funnel: bool
) -> None:
    hp = f"{host}:{port}"
    handlers = ((sc.get("Web") or {}).get(hp) or {}).get("Handlers") or {}
    for m in mounts:
        handlers.pop(m, None)
    if not handlers:
        (sc.get("Web") or {}).pop(hp, None)
        (sc.get("TCP") or {}).pop(str(port), None)
        if cleanup_funnel:
            (sc.get("AllowFunnel") or {}).pop(hp, None)
    for k in ("Web", "TCP", "AllowFunnel"):
        if k in sc and not sc[k]:
            del sc[k]


def is_funnel_on(sc: Any) -> bool:
    return isinstance(sc, dict) and any((sc.get("AllowFunnel") or {}).values())


def expand_proxy_target(target: str, schemes: list[str], default_scheme: str) -> str:
    """ipn.ExpandProxyTargetValue."""
    if target.isdigit() and 0 <= int(target) <= 65535:
        return f"{default_scheme}://127.0.0.1:{int(target)}"
    if "://" not in target:
        target = f"{default_scheme}://{target}"
    u = urllib.parse.urlsplit(target)
    if not u.scheme or not u.netloc:
        raise ValueError(f'invalid URL parse "{target}": invalid URI for request')
    if u.scheme not in schemes:
        raise ValueError(f"must be a URL starting with one of the supported schemes: [{' '.join(schemes)}]")
    if u.hostname not in ("localhost", "127.0.0.1"):
        raise ValueError("only localhost or 127.0.0.1 proxies are currently supported")
    port_str = u.netloc.rpartition(":")[2] if ":" in u.netloc else ""
    if not port_str.isdigit() or not 0 < int(port_str) <= 65535:
        raise ValueError(f'invalid port "{port_str}"')
    out = f"{u.scheme}://{u.hostname}:{int(port_str)}{u.path}"
    if u.query:
        out += "?" + u.query
    return out


def clean_url_path(p: str) -> str:
    if p == "":
        return "/"
    if not p.startswith("/"):
        p = "/" + p
    c = posixpath.normpath(p)
    if c.startswith("//"):
        c = "/" + c.lstrip("/")
    if p in (c, c + "/"):
        return p
    raise ValueError(f'invalid mount point "{p}"')


# --------------------------------------------------------------------------- CLI plumbing


class Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class CLIError(Exception):
    """An error returned from a command's Exec: main prints it to stderr and exits 1."""


def out(s: str) -> None:
    sys.stdout.write(s)
    sys.stdout.flush()


def err(s: str) -> None:
    sys.stderr.write(s)
    sys.stderr.flush()


def parse_flags(args: list[str], spec: dict[str, str], usage: str) -> tuple[dict[str, Any], list[str]]:
    """Go's flag package: -x/--x, -x=v, -x v (non-bool), parsing stops at the first non-flag."""
    vals: dict[str, Any] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        name = a.lstrip("-")
        if a.startswith("---"):
            _flag_fail(f"bad flag syntax: {a}", usage)
        value: str | None = None
        if "=" in name:
            name, value = name.split("=", 1)
        if name in ("h", "help"):
            err(usage + "\n")
            raise Exit(0)
        if name not in spec:
            _flag_fail(f"flag provided but not defined: -{name}", usage)
        kind = spec[name]
        if kind == "bool":
            if value is None or value.lower() in ("1", "t", "true"):
                vals[name] = True
            elif value.lower() in ("0", "f", "false"):
                vals[name] = False
            else:
                _flag_fail(f'invalid boolean value "{value}" for -{name}: parse error', usage)
        else:
            if value is None:
                i += 1
                if i >= len(args):
                    _flag_fail(f"flag needs an argument: -{name}", usage)
                value = args[i]
            if kind == "uint":
                if not value.isdigit():
                    _flag_fail(f'invalid value "{value}" for flag -{name}: parse error', usage)
                vals[name] = int(value)
            else:
                vals[name] = value
        i += 1
    return vals, args[i:]


def _flag_fail(msg: str, usage: str) -> None:
    err(msg + "\n" + usage + "\n")
    raise Exit(2)


def tabwrite(rows: list[list[str]], minwidth: int, padding: int) -> str:
    """text/tabwriter with padchar ' ': rows are lists of tab-terminated cells plus a trailing cell.

    Each row here is [cell, cell, ..., tail]; only cells followed by a tab are aligned, and a
    column block ends at the first row without that column (as tabwriter does).
    """
    lines = [""] * len(rows)
    ncols = max((len(r) - 1 for r in rows), default=0)
    widths: list[dict[int, int]] = [{} for _ in rows]
    for col in range(ncols):
        i = 0
        while i < len(rows):
            if len(rows[i]) - 1 <= col:
                i += 1
                continue
            j = i
            while j < len(rows) and len(rows[j]) - 1 > col:
                j += 1
            w = max(max(len(rows[k][col]) for k in range(i, j)) + padding, minwidth)
            for k in range(i, j):
                widths[k][col] = w
            i = j
    for k, r in enumerate(rows):
        lines[k] = "".join(c.ljust(widths[k][n]) for n, c in enumerate(r[:-1])) + r[-1]
    return "\n".join(lines) + "\n"


def last_seen_fmt(t: str) -> str:
    if not t or t == ZERO_TIME:
        return ""
    import datetime

    when = datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
    secs = max((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds(), 60)
    if secs < 3600:
        return f", last seen {int(secs // 60)}m ago"
    if secs < 86400:
        return f", last seen {int(secs // 3600)}h ago"
    return f", last seen {int(secs // 86400)}d ago"


def connect_error(path: str, socket: str) -> str:
    return (
        f"Failed to connect to local Tailscale daemon for {path}; not running? "
        f"Error: dial unix {socket}: connect: no such file or directory"
    )


FIXED_CONNECT_ERROR = "failed to connect to local tailscaled; it doesn't appear to be running (sudo systemctl start tailscaled ?)"


def running_description(state: dict[str, Any]) -> tuple[str, bool]:
    """cli.isRunningOrStarting."""
    b = state["backend_state"]
    if b == "Stopped":
        return "Tailscale is stopped.", False
    if b == "NeedsLogin":
        s = "Logged out."
        if state.get("auth_url"):
            s += f"\nLog in at: {state['auth_url']}"
        return s, False
    if b == "NeedsMachineAuth":
        return "Machine is not yet approved by tailnet admin.", False
    if b in ("Running", "Starting"):
        return b, True
    return f"unexpected state: {b}", False


class Ctx:
    def __init__(self, state_path: str, socket: str | None, argv: list[str]) -> None:
        self.state_path = state_path
        self.socket_flag = socket
        self.argv = argv

    def state(self) -> dict[str, Any]:
        return read_state(self.state_path)

    def socket(self, st: dict[str, Any]) -> str:
        return self.socket_flag or DEFAULT_SOCKET

    def daemon_ok(self, st: dict[str, Any]) -> bool:
        if not st.get("daemon_running"):
            return False
        s = self.socket_flag
        return not (
            s and s not in (st.get("socket_path"), st.get("localapi_socket")) and not os.path.exists(s)
        )

    def require_daemon(self, st: dict[str, Any], path: str, prefix: str = "") -> None:
        if not self.daemon_ok(st):
            raise CLIError(prefix + connect_error(path, self.socket(st)))

    def status_without_peers(self, st: dict[str, Any]) -> dict[str, Any]:
        """serveEnv.getLocalClientStatusWithoutPeers: exits 1 when not Running/Starting."""
        if not self.daemon_ok(st):
            raise CLIError("getting client status: " + FIXED_CONNECT_ERROR)
        desc, ok = running_description(st)
        if not ok:
            err(desc + "\n")
            raise Exit(1)
        return st


ROOT_USAGE = """USAGE
  tailscale [flags] <subcommand> [command flags]

For help on subcommands, add --help after: "tailscale status --help".

This CLI is still under active development. Commands and flags will
change in the future.

SUBCOMMANDS
  up          Connect to Tailscale, logging in if needed
  down        Disconnect from Tailscale
  ip          Show Tailscale IP addresses
  status      Show state of tailscaled and its connections
  serve       Serve content and local servers on your tailnet
  funnel      Serve content and local servers on the internet
  version     Print Tailscale version
  whois       Show the machine and user associated with a Tailscale IP (v4 or v6)

FLAGS
  --socket string
        path to tailscaled socket (default /var/run/tailscale/tailscaled.sock)"""


def main(argv: list[str]) -> int:
    state_path = os.environ.get(STATE_ENV)
    if not state_path:
        err(f"fake tailscale: {STATE_ENV} is not set (use tests.support.fake_tailscale.FakeTailscale)\n")
        return 3
    socket: str | None = None
    args = list(argv)
    if args in (["-V"], ["--version"]):
        args = ["version"]
    elif args == ["help"]:
        args = ["--help"]
    try:
        root, rest = parse_flags(args, {"socket": "string", "json-docs": "bool"}, ROOT_USAGE)
        socket = root.get("socket")
    except Exit as e:
        record_call(state_path, argv, socket)
        return e.code
    record_call(state_path, argv, socket)
    ctx = Ctx(state_path, socket, argv)
    try:
        if not rest:
            err(ROOT_USAGE + "\n")
            return 0
        cmd, args = rest[0], rest[1:]
        handler = COMMANDS.get(cmd)
        if handler is None:
            err(f"tailscale: unknown subcommand: {cmd}\n")
            return 1
        handler(ctx, args)
        return 0
    except Exit as e:
        return e.code
    except CLIError as e:
        err(str(e) + "\n")
        return 1


# --------------------------------------------------------------------------- simple commands


def cmd_version(ctx: Ctx, args: list[str]) -> None:
    usage = "USAGE\n  tailscale version [flags]\n\nPrint Tailscale version"
    flags, rest = parse_flags(args, {"daemon": "bool", "json": "bool", "upstream": "bool"}, usage)
    if rest:
        raise CLIError(f"too many non-flag arguments: {json.dumps(rest)}")
    st = ctx.state()
    v = st["version"]
    if flags.get("daemon"):
        ctx.require_daemon(st, "/localapi/v0/status")
    if flags.get("json"):
        meta = version_meta(v)
        if flags.get("daemon"):
            meta["daemonLong"] = version_long(v)
        out(go_json(meta, indent="\t") + "\n")
        return
    if flags.get("daemon"):
        out(f"Client: {version_string(v)}\nDaemon: {version_long(v)}\n")
        return
    out(version_string(v) + "\n")


def cmd_status(ctx: Ctx, args: list[str]) -> None:
    usage = "USAGE\n  tailscale status [--active] [--web] [--json]\n\nShow state of tailscaled and its connections"
    spec = {
        "json": "bool",
        "web": "bool",
        "active": "bool",
        "self": "bool",
        "peers": "bool",
        "listen": "string",
        "browser": "bool",
        "header": "bool",
    }
    flags, rest = parse_flags(args, spec, usage)
    if rest:
        raise CLIError("unexpected non-flag arguments to 'tailscale status'")
    st = ctx.state()
    if not ctx.daemon_ok(st):
        raise CLIError(FIXED_CONNECT_ERROR)
    status = build_status(st, peers=flags.get("peers", True))
    if flags.get("json"):
        out(go_json(status))
        return
    desc, ok = running_description(st)
    if not ok:
        out(desc + "\n")
        raise Exit(1)
    rows: list[list[str]] = []
    if flags.get("header"):
        rows += [
            ["IP", "Hostname", "Owner", "OS", "Status", ""],
            ["--", "--------", "-----", "--", "------", ""],
        ]
    peers = [status["Self"]] if flags.get("self", True) else []
    if flags.get("peers", True):
        peers += sorted((status["Peer"] or {}).values(), key=lambda p: (p["DNSName"], p["HostName"]))
    suffix = "." + st["tailnet"]["magic_dns_suffix"] + "."
    users = status["User"] or {}
    for ps in peers:
        dn = ps["DNSName"]
        base = dn[: -len(suffix)] if dn.endswith(suffix) else dn.rstrip(".")
        base = base or f'("{ps["HostName"]}")'
        login = (users.get(str(ps["UserID"])) or {}).get("LoginName", str(ps["UserID"]))
        owner = "-" if not ps["UserID"] else login[: login.index("@") + 1] if "@" in login else login
        state_txt = "-" if ps["Online"] else "offline" + last_seen_fmt(ps["LastSeen"])
        ip = (ps["TailscaleIPs"] or [""])[0]
        rows.append([ip, base, owner, ps["OS"], state_txt, ""])
    text = tabwrite(rows, 0, 2) if rows else ""
    if status["Health"]:
        text += "\n# Health check:\n" + "".join(f"#     - {h}\n" for h in status["Health"])
    out(text)
    sc = st.get("serve_config")
    if is_funnel_on(sc):
        out(funnel_status_text(sc))


def cmd_ip(ctx: Ctx, args: list[str]) -> None:
    """cli/ip.go runIP."""
    usage = (
        "USAGE\n  tailscale ip [-1] [-4] [-6] [peer hostname or ip address]\n\nShow Tailscale IP addresses"
    )
    flags, rest = parse_flags(args, {"1": "bool", "4": "bool", "6": "bool"}, usage)
    if len(rest) > 1:
        raise CLIError("too many arguments, expected at most one peer")
    if sum(bool(flags.get(k)) for k in ("1", "4", "6")) > 1:
        raise CLIError("tailscale ip -1, -4, and -6 are mutually exclusive")
    want4, want6 = bool(flags.get("4")), bool(flags.get("6"))
    v4, v6 = (True, True) if not want4 and not want6 else (want4, want6)
    st = ctx.state()
    ctx.require_daemon(st, "/localapi/v0/status")
    status = build_status(st)
    ips = list(status["TailscaleIPs"] or [])
    if rest:
        want = rest[0]
        nodes = [*(status["Peer"] or {}).values(), status["Self"]]
        ip = want
        if _parse_addr(want) is None:
            named = [
                n
                for n in nodes
                if want in (n["HostName"], n["DNSName"].rstrip("."), n["DNSName"].split(".")[0])
            ]
            if not named or not named[0]["TailscaleIPs"]:
                raise CLIError(f"no IP found for hostname {want!r}".replace("'", '"'))
            ip = named[0]["TailscaleIPs"][0]
        match = [n for n in nodes if ip in (n["TailscaleIPs"] or [])]
        if not match:
            raise CLIError(f"no peer found with IP {ip}")
        ips = list(match[0]["TailscaleIPs"] or [])
    if not ips:
        raise CLIError(f"no current Tailscale IPs; state: {st['backend_state']}")
    if flags.get("1"):
        ips = ips[:1]
    shown = [i for i in ips if (":" not in i and v4) or (":" in i and v6)]
    out("".join(i + "\n" for i in shown))
    if not shown:
        if want4:
            raise CLIError("no Tailscale IPv4 address")
        if want6:
            raise CLIError("no Tailscale IPv6 address")


def cmd_whois(ctx: Ctx, args: list[str]) -> None:
    usage = (
        "USAGE\n  tailscale whois [--json] ip[:port]\n\n"
        "Show the machine and user associated with a Tailscale IP (v4 or v6)"
    )
    flags, rest = parse_flags(args, {"json": "bool", "proto": "string"}, usage)
    if len(rest) > 1:
        raise CLIError("too many arguments, expected at most one peer")
    if not rest:
        raise CLIError("missing argument, expected one peer")
    st = ctx.state()
    ctx.require_daemon(st, "/localapi/v0/whois")
    code, body = whois_lookup(st, rest[0])
    if code == 404:
        raise CLIError("peer not found")
    if code != 200:
        raise CLIError(f"{code} Bad Request: {body}")
    if flags.get("json"):
        out(go_json(body) + "\n")
        return
    n, up = body["Node"], body["UserProfile"]
    rows = [
        ["Machine:"],
        ["  Name:", n["Name"].rstrip(".")],
        ["  ID:", n["StableID"]],
        ["  Addresses:", "[" + " ".join(n["Addresses"]) + "]"],
    ]
    if n.get("Tags"):
        rows.append(["  Tags:", ", ".join(n["Tags"])])
    else:
        rows += [["User:"], ["  Name:", up["LoginName"]], ["  ID:", str(up["ID"])]]
    text = tabwrite(rows, 10, 5)
    cm = body.get("CapMap") or {}
    if cm:
        text += "Capabilities:\n"
        for cap, vals in cm.items():
            if vals:
                v = json.dumps(vals, indent=2).replace("\n", "\n      ")
                text += f"  - {cap}:\n      {v}\n"
            else:
                text += f"  - {cap}\n"
    out(text)


# --------------------------------------------------------------------------- serve / funnel


SERVE_HELP = {
    "serve": "try `tailscale serve --help` for usage info",
    "funnel": "try `tailscale funnel --help` for usage info",
}


def serve_usage(mode: str) -> str:
    return (
        f"USAGE\n  tailscale {mode} <target>\n  tailscale {mode} status [--json]\n  tailscale {mode} reset\n\n"
        + (
            "Serve content and local servers on your tailnet"
            if mode == "serve"
            else "Serve content and local servers on the internet"
        )
    )


def serve_flag_spec(mode: str) -> dict[str, str]:
    spec = {
        "bg": "bool",
        "set-path": "string",
        "https": "uint",
        "tcp": "uint",
        "tls-terminated-tcp": "uint",
        "service": "string",
        "yes": "bool",
        "tun": "bool",
    }
    if mode == "serve":
        spec["http"] = "uint"
    return spec


def cmd_serve(ctx: Ctx, args: list[str]) -> None:
    serve_entry(ctx, "serve", args)


def cmd_funnel(ctx: Ctx, args: list[str]) -> None:
    serve_entry(ctx, "funnel", args)


def serve_entry(ctx: Ctx, mode: str, args: list[str]) -> None:
    st = ctx.state()
    if is_legacy(st):
        legacy_entry(ctx, mode, args)
        return
    usage = serve_usage(mode)
    flags, rest = parse_flags(args, serve_flag_spec(mode), usage)
    if rest and rest[0] == "status":
        sflags, srest = parse_flags(rest[1:], {"json": "bool"}, f"USAGE\n  tailscale {mode} status [--json]")
        serve_status(ctx, bool(sflags.get("json")))
        return
    if rest and rest[0] == "reset":
        _, rrest = parse_flags(rest[1:], {}, f"USAGE\n  tailscale {mode} reset")
        serve_reset(ctx, rrest, usage)
        return
    run_serve_combined(ctx, mode, flags, rest, usage)


def serve_status(ctx: Ctx, as_json: bool) -> None:
    st = ctx.state()
    ctx.require_daemon(st, "/localapi/v0/serve-config")
    sc = st.get("serve_config")
    if as_json:
        out(("null" if sc is None else sc_json(sc)) + "\n")
        return
    if is_funnel_on(sc):
        out(funnel_status_text(sc))
    if not sc or not (sc.get("TCP") or sc.get("Web") or sc.get("AllowFunnel")):
        out("No serve config\n")
        return
    ctx.status_without_peers(st)
    dns = st["self"]["dns_name"].rstrip(".")
    text = []
    for port, h in sorted((sc.get("TCP") or {}).items(), key=lambda kv: int(kv[0])):
        if not h.get("TCPForward"):
            continue
        hp = f"{dns}:{port}"
        tls = "TLS terminated" if h.get("TerminateTLS") else "TLS over TCP"
        fs = "Funnel on" if (sc.get("AllowFunnel") or {}).get(hp) else "tailnet only"
        text.append(f"|-- tcp://{hp} ({tls}, {fs})")
        text += [f"|-- tcp://{ip if ':' not in ip else '[' + ip + ']'}:{port}" for ip in st["self"]["ips"]]
        text.append(f"|--> tcp://{h['TCPForward']}")
        text.append("")
    for hp, wc in sorted((sc.get("Web") or {}).items()):
        host, _, port = hp.rpartition(":")
        fs = "Funnel on" if (sc.get("AllowFunnel") or {}).get(hp) else "tailnet only"
        scheme = "http" if (_tcp(sc, int(port)) or {}).get("HTTP") else "https"
        port_part = "" if (scheme, port) in (("http", "80"), ("https", "443")) else ":" + port
        if scheme == "http":
            text.append(f"{scheme}://{host.split('.')[0]}{port_part} ({fs})")
        text.append(f"{scheme}://{host}{port_part} ({fs})")
        mounts = sorted((wc.get("Handlers") or {}), key=len)
        width = len(mounts[-1]) if mounts else 0
        for m in mounts:
            t, d = handler_desc(wc["Handlers"][m])
            text.append(f"|-- {m}{' ' * (width - len(m))} {t:<5} {d}")
        text.append("")
    out("\n".join(text) + "\n")


def funnel_status_text(sc: dict[str, Any]) -> str:
    lines = ["", "# Funnel on:"]
    for hp, on in sorted((sc.get("AllowFunnel") or {}).items()):
        if not on:
            continue
        sni, _, port = hp.rpartition(":")
        is_tcp = is_tcp_forwarding_on_port(sc, int(port))
        url = ("tcp://" if is_tcp else "https://") + sni
        if is_tcp or port != "443":
            url += ":" + port
        lines.append(f"#     - {url}")
    return "\n".join(lines) + "\n\n"


def handler_desc(h: dict[str, str]) -> tuple[str, str]:
    if h.get("Path"):
        return "path", h["Path"]
    if h.get("Proxy"):
        return "proxy", h["Proxy"]
    if h.get("Text"):
        t = h["Text"]
        return "text", '"' + (t if len(t) <= 20 else t[:17] + "...") + '"'
    return "", ""


def serve_reset(ctx: Ctx, args: list[str], usage: str) -> None:
    if args:
        err(usage + "\n")
        raise Exit(0)
    with locked_state(ctx.state_path) as st:
        ctx.require_daemon(st, "/localapi/v0/serve-config")
        check_access(ctx, st)
        st["serve_config"] = {}
        st["fg_sessions"] = {}


def check_access(ctx: Ctx, st: dict[str, Any]) -> None:
    if st.get("access_denied"):
        raise CLIError(
            "Access denied: serve config denied\n\n"
            f"Use 'sudo tailscale {' '.join(ctx.argv)}'.\n"
            "To not require root, use 'sudo tailscale set --operator=$USER' once."
        )


def legacy_translation(mode: str, args: list[str]) -> tuple[str, bool]:
    """serve_v2.go isLegacyInvocation."""
    if mode == "funnel":
        if len(args) != 2:
            return "", False
        return "", args[0].isdigit() and int(args[0]) <= 65535 and args[1] in ("on", "off")
    turn_off = len(args) > 1 and args[-1] == "off"
    if turn_off:
        args = args[:-1]
    if not args:
        return "", False
    src_type, found, port = args[0].partition(":")
    if not found:
        if src_type == "https" and port == "":
            port = "443"
        elif src_type == "http" and port == "":
            port = "80"
        else:
            return "", False
    if src_type in ("https", "http"):
        want = 3
    elif src_type in ("tcp", "tls-terminated-tcp"):
        want = 2
    else:
        return "", False
    if len(args) != want and not (turn_off and len(args) == want - 1):
        return "", False
    cmd = ["tailscale", "serve", "--bg"]
    if src_type == "https":
        if port != "443":
            cmd.append(f"--https {port}")
    elif src_type == "http":
        cmd.append(f"--http {port}")
    else:
        cmd.append(f"--{src_type} {port}")
    if src_type in ("https", "http"):
        mount = args[1]
        try:
            clean_url_path(mount)
        except ValueError:
            return "", False
        if mount != "/":
            cmd.append("--set-path " + mount)
    if not turn_off or len(args) == want:
        dest = args[-1]
        cmd.append(json.dumps(dest) if " " in dest else dest)
    if turn_off:
        cmd.append("off")
    return " ".join(cmd), True


SERVE_TYPES = ("https", "http", "tcp", "tls-terminated-tcp")


def run_serve_combined(ctx: Ctx, mode: str, flags: dict[str, Any], args: list[str], usage: str) -> None:
    help_err = SERVE_HELP[mode]
    translation, legacy = legacy_translation(mode, args)
    if legacy:
        msg = "Error: the CLI for serve and funnel has changed."
        if translation:
            msg += f" You can run the following command instead:\n\t- {translation}\n"
        err(msg + "\nPlease see https://tailscale.com/kb/1242/tailscale-serve for more information.\n")
        raise CLIError(help_err)
    if not args and not flags.get("tun"):
        err(usage + "\n")
        raise Exit(0)
    if len(args) > 2:
        err(f"Error: invalid number of arguments ({len(args)})\n")
        raise CLIError(help_err)
    turn_off = bool(args) and args[-1] == "off"
    if len(args) == 2 and not turn_off:
        err("Error: invalid argument format\n")
        raise CLIError(help_err)
    service = flags.get("service") or ""
    bg = flags.get("bg", bool(service))
    funnel = mode == "funnel"
    if service and funnel:
        raise CLIError("Error: --service flag is not supported with funnel")
    if service:
        raise CLIError("fake tailscale: --service (Tailscale Services) is not modelled by this test double")

    types = [(t, flags[t]) for t in SERVE_TYPES if flags.get(t)]
    if flags.get("tun"):
        types.append(("tun", 0))
    if len(types) > 1:
        err("error: cannot serve multiple types for a single mount point\n\n")
        raise CLIError(help_err)
    srv_type, srv_port = types[0] if types else ("https", 443)
    if srv_port > 65535:
        err(f"error: port number {srv_port} is too high for {srv_type} flag\n\n")
        raise CLIError(help_err)
    if funnel:
        verify_funnel_enabled(ctx, srv_port if srv_type == "https" else 443)
    try:
        mount = clean_url_path(flags.get("set-path", ""))
    except ValueError as e:
        raise CLIError(f"failed to clean the mount point: {e}") from None
    if srv_type == "tun":
        raise CLIError("tun mode is only supported for services")

    st0 = ctx.state()
    ctx.require_daemon(st0, "/localapi/v0/serve-config", "error getting serve config: ")
    ctx.status_without_peers(st0)
    if not turn_off and srv_type == "https":
        enable_feature_interactive(ctx, "serve")

    want_fg = not bg and not turn_off
    sid = ""
    msg = ""
    with locked_state(ctx.state_path) as st:
        ctx.status_without_peers(st)
        parent = st.get("serve_config")
        if not isinstance(parent, dict):
            parent = {}
        dns = st["self"]["dns_name"].rstrip(".")
        sc = parent
        if want_fg:
            validate_config(parent, srv_port, srv_type, bg, mode)
            sid = _h("session", str(os.getpid()), str(time.time()))[:16]
            parent.setdefault("Foreground", {})[sid] = {}
            sc = parent["Foreground"][sid]
        try:
            if turn_off:
                unset_serve(sc, dns, srv_type, srv_port, mount, flags)
            else:
                validate_config(parent, srv_port, srv_type, bg, mode)
                set_serve(sc, dns, srv_type, srv_port, mount, args[0] if args else "", funnel, flags)
                msg = message_for_port(sc, st, dns, srv_type, srv_port, bg, mode)
        except ValueError as e:
            err(f"error: {e}\n\n")
            raise CLIError(help_err) from None
        check_access(ctx, st)
        st["serve_config"] = parent
        if sid:
            st.setdefault("fg_sessions", {})[sid] = os.getpid()
    if msg:
        out(msg + "\n")
    if sid:
        hold_foreground(ctx, sid)


def validate_config(sc: dict[str, Any], port: int, want: str, bg: bool, mode: str) -> None:
    found, is_fg = find_config(sc, port)
    if found is None:
        return
    if is_fg:
        raise CLIError("foreground already exists under this port")
    if not bg:
        raise CLIError(
            f"background configuration already exists, use `tailscale {mode} --{want}={port} off` "
            "to remove the existing configuration"
        )
    h = _tcp(found, port) or {}
    existing = (
        "http"
        if h.get("HTTP")
        else "https"
        if h.get("HTTPS")
        else "tls-terminated-tcp"
        if h.get("TerminateTLS")
        else "tcp"
        if h.get("TCPForward")
        else "unknownServeType"
    )
    if existing != want:
        raise CLIError(f'want to serve "{want}" but port is already serving "{existing}" for "machine"')


def set_serve(
    sc: dict[str, Any],
    dns: str,
    srv_type: str,
    port: int,
    mount: str,
    target: str,
    funnel: bool,
    flags: dict[str, Any],
) -> None:
    if srv_type in ("https", "http"):
        try:
            h: dict[str, str] = {}
            if target.startswith("text:"):
                text = target[len("text:") :]
                if not text:
                    raise ValueError("unable to serve; text cannot be an empty string")
                h["Text"] = text
            elif target.startswith("/"):
                path = os.path.normpath(target)
                if not os.path.exists(path):
                    raise ValueError("invalid path")
                if os.path.isdir(path) and not mount.endswith("/"):
                    mount += "/"
                h["Path"] = path
            else:
                h["Proxy"] = expand_proxy_target(target, ["http", "https", "https+insecure"], "http")
            if is_tcp_forwarding_on_port(sc, port):
                raise ValueError("cannot serve web; already serving TCP")
        except ValueError as e:
            raise ValueError(f"failed apply web serve: {e}") from None
        set_web_handler(sc, h, dns, port, mount, srv_type == "https")
    else:
        if flags.get("set-path"):
            raise ValueError("cannot mount a path for TCP serve")
        try:
            url = expand_proxy_target(target, ["tcp"], "tcp")
        except ValueError as e:
            raise ValueError(f"failed to apply TCP serve: unable to expand target: {e}") from None
        if is_serving_web(sc, port):
            raise ValueError(
                f"failed to apply TCP serve: cannot serve TCP; already serving web on {port} for {dns}"
            )
        host = urllib.parse.urlsplit(url).netloc
        set_tcp_forwarding(sc, port, host, srv_type == "tls-terminated-tcp", dns)
    hp = f"{dns}:{port}"
    if hp in (sc.get("AllowFunnel") or {}) and not funnel:
        err(f"Removing Funnel for {dns}:{hp}\n")
    set_funnel(sc, dns, port, funnel)


def unset_serve(
    sc: dict[str, Any], dns: str, srv_type: str, port: int, mount: str, flags: dict[str, Any]
) -> None:
    if srv_type in ("https", "http"):
        hp = f"{dns}:{port}"
        if is_tcp_forwarding_on_port(sc, port):
            raise ValueError("failed to remove web serve: cannot remove web handler; currently serving TCP")
        handlers = ((sc.get("Web") or {}).get(hp) or {}).get("Handlers") or {}
        mounts = list(handlers) if not flags.get("set-path") else [mount] if mount in handlers else []
        if not mounts:
            raise ValueError("failed to remove web serve: handler does not exist")
        if len(mounts) > 1 and not flags.get("yes"):
            out(f"Are you sure you want to delete {len(mounts)} handlers under port {port}? [y/N] ")
            answer = sys.stdin.readline().strip().lower()
            if answer not in ("y", "yes"):
                return
        remove_web_handler(sc, dns, port, mounts, cleanup_funnel=True)
    else:
        h = _tcp(sc, port)
        if h is None:
            raise ValueError("failed to remove TCP serve: serve config does not exist")
        if is_serving_web(sc, port):
            raise ValueError(
                f"failed to remove TCP serve: unable to remove; serving web, not TCP forwarding on serve port {port}"
            )
        del sc["TCP"][str(port)]
        if not sc["TCP"]:
            del sc["TCP"]


def message_for_port(
    sc: dict[str, Any], st: dict[str, Any], dns: str, srv_type: str, port: int, bg: bool, mode: str
) -> str:
    hp = f"{dns}:{port}"
    scheme = "http" if (_tcp(sc, port) or {}).get("HTTP") else "https"
    port_part = "" if (scheme == "http" and port == 80) or (scheme == "https" and port == 443) else f":{port}"
    o = (
        "Available on the internet:"
        if (sc.get("AllowFunnel") or {}).get(hp)
        else "Available within your tailnet:"
    )
    o += "\n\n"
    wc = (sc.get("Web") or {}).get(hp)
    th = _tcp(sc, port)
    if wc is not None:
        for m in sorted(wc.get("Handlers") or {}, key=len):
            t, d = handler_desc(wc["Handlers"][m])
            o += f"{scheme}://{dns}{port_part}{m}\n"
            o += f"|-- {t:<5} {d}\n\n"
    elif th is not None:
        tls = "TLS terminated" if th.get("TerminateTLS") else "TLS over TCP"
        o += f"|-- tcp://{dns}:{port} ({tls})\n"
        for ip in st["self"]["ips"]:
            o += f"|-- tcp://{ip if ':' not in ip else '[' + ip + ']'}:{port}\n"
        o += f"|--> tcp://{th.get('TCPForward', '')}\n\n"
    if not bg:
        return o + "Press Ctrl+C to exit."
    o += f"{mode[0].upper() + mode[1:]} started and running in the background.\n"
    o += f"To disable the proxy, run: tailscale {mode} --{srv_type}={port} off"
    return o


def enable_feature_interactive(ctx: Ctx, feature: str) -> None:
    """serveEnv.enableFeatureInteractive as control answers when the feature is off."""
    st = ctx.status_without_peers(ctx.state())
    caps = ["https"] if feature == "serve" else ["https", "funnel"]
    if all(has_cap(st, c) for c in caps):
        return
    node = stable_id(st["self"]["hostname"])
    title = "Serve" if feature == "serve" else "Funnel"
    out(f"\n{title} is not enabled on your tailnet.\nTo enable, visit:\n")
    out(f"\n         https://login.tailscale.com/f/{feature}?node={node}\n\n")
    if not st.get("https_enable_wait"):
        raise Exit(0)
    while True:
        time.sleep(0.05)
        st = ctx.state()
        if not st.get("daemon_running"):
            err("lost connection to tailscaled: EOF\n")
            raise Exit(1)
        if all(has_cap(st, c) for c in caps):
            out("Success.\n")
            return


def verify_funnel_enabled(ctx: Ctx, port: int) -> None:
    st = ctx.status_without_peers(ctx.state())
    if st.get("funnel_enable_prompt") and not (has_cap(st, "https") and has_cap(st, "funnel")):
        enable_feature_interactive(ctx, "funnel")
        st = ctx.status_without_peers(ctx.state())
    if not has_cap(st, "https"):
        raise CLIError("Funnel not available; HTTPS must be enabled. See https://tailscale.com/s/https.")
    if not has_cap(st, "funnel"):
        raise CLIError(
            'Funnel not available; "funnel" node attribute not set. See https://tailscale.com/s/no-funnel.'
        )
    check_funnel_port(st, port)


def check_funnel_port(st: dict[str, Any], port: int) -> None:
    allowed = st.get("funnel_ports") or ""
    if not allowed:
        raise CLIError(f"port {port} is not allowed for funnel")
    for part in allowed.split(","):
        if not part:
            continue
        first, dash, last = part.partition("-")
        if not dash and first == str(port):
            return
        if dash and first.isdigit() and last.isdigit() and int(first) <= port <= int(last):
            return
    raise CLIError(f"port {port} is not allowed for funnel; allowed ports are: {allowed}")


def hold_foreground(ctx: Ctx, sid: str) -> None:
    """Foreground serve: the route lives exactly as long as this process (its IPN bus session)."""
    got: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        got.append(signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    while not got:
        time.sleep(0.1)
        st = ctx.state()
        if not st.get("daemon_running"):
            with locked_state(ctx.state_path) as w:
                drop_foreground(w, sid)
            err("EOF\n")
            raise Exit(1)
    with locked_state(ctx.state_path) as w:
        drop_foreground(w, sid)
    if got[0] == signal.SIGINT:
        raise Exit(0)
    # Go's runtime dies from SIGTERM/SIGHUP (only os.Interrupt is caught): exit by the signal.
    signal.signal(got[0], signal.SIG_DFL)
    os.kill(os.getpid(), got[0])
    time.sleep(1)
    raise Exit(128 + got[0])


# --------------------------------------------------------------------------- legacy (< 1.52) serve/funnel


def legacy_entry(ctx: Ctx, mode: str, args: list[str]) -> None:
    if mode == "serve":
        usage = (
            "USAGE\n  serve http:<port> <mount-point> <source> [off]\n  serve https:<port> <mount-point> <source> [off]\n"
            "  serve tcp:<port> tcp://localhost:<local-port> [off]\n"
            "  serve tls-terminated-tcp:<port> tcp://localhost:<local-port> [off]\n"
            "  serve status [--json]\n  serve reset"
        )
    else:
        usage = "USAGE\n  funnel <serve-port> {on|off}\n  funnel status [--json]"
    _, rest = parse_flags(args, {}, usage)
    if rest and rest[0] == "status":
        sflags, _ = parse_flags(rest[1:], {"json": "bool"}, usage)
        serve_status(ctx, bool(sflags.get("json")))
        return
    if mode == "serve" and rest and rest[0] == "reset":
        serve_reset(ctx, rest[1:], usage)
        return
    if mode == "funnel":
        legacy_funnel(ctx, rest, usage)
        return
    legacy_serve(ctx, rest, usage)


def legacy_funnel(ctx: Ctx, args: list[str], usage: str) -> None:
    if len(args) != 2 or args[1] not in ("on", "off"):
        err(usage + "\n")
        raise Exit(0)
    on = args[1] == "on"
    if not args[0].isdigit() or int(args[0]) > 65535:
        raise CLIError(f'strconv.ParseUint: parsing "{args[0]}": invalid syntax')
    port = int(args[0])
    st = ctx.state()
    ctx.require_daemon(st, "/localapi/v0/serve-config")
    if on:
        verify_funnel_enabled(ctx, port)
    with locked_state(ctx.state_path) as w:
        ctx.status_without_peers(w)
        sc = w.get("serve_config") if isinstance(w.get("serve_config"), dict) else {}
        dns = w["self"]["dns_name"].rstrip(".")
        if on == bool((sc.get("AllowFunnel") or {}).get(f"{dns}:{port}")):
            return
        check_access(ctx, w)
        set_funnel(sc, dns, port, on)
        w["serve_config"] = sc


def legacy_serve(ctx: Ctx, args: list[str], usage: str) -> None:
    help_err = "try `tailscale serve --help` for usage info"
    if not args:
        err(usage + "\n")
        raise Exit(0)
    src_type, found, port_str = args[0].partition(":")
    if not found:
        if src_type == "https" and not port_str:
            port_str = "443"
        elif src_type == "http" and not port_str:
            port_str = "80"
        else:
            err(usage + "\n")
            raise Exit(0)
    turn_off = args[-1] == "off"
    if len(args) < 2 or (src_type in ("https", "http") and not turn_off and len(args) < 3):
        err("error: invalid number of arguments\n\n")
        raise CLIError(help_err)
    if not port_str.isdigit() or not 0 < int(port_str) <= 65535:
        raise CLIError(f'invalid port "{port_str}": strconv.ParseUint: parsing "{port_str}": invalid syntax')
    port = int(port_str)
    st = ctx.state()
    ctx.require_daemon(st, "/localapi/v0/serve-config")
    if src_type == "https" and not turn_off and not has_cap(st, "https"):
        ctx.status_without_peers(st)
        node = stable_id(st["self"]["hostname"])
        out("\nServe is not enabled on your tailnet.\nTo enable, visit:\n")
        out(f"\n         https://login.tailscale.com/f/serve?node={node}\n\n")
        raise Exit(0)
    with locked_state(ctx.state_path) as w:
        ctx.status_without_peers(w)
        sc = w.get("serve_config") if isinstance(w.get("serve_config"), dict) else {}
        dns = w["self"]["dns_name"].rstrip(".")
        if src_type in ("https", "http"):
            try:
                mount = clean_url_path(args[1]) if args[1] else ""
            except ValueError as e:
                raise CLIError(str(e)) from None
            if not mount:
                raise CLIError("mount point cannot be empty")
            if turn_off:
                hp = f"{dns}:{port}"
                if not (((sc.get("Web") or {}).get(hp) or {}).get("Handlers") or {}).get(mount):
                    raise CLIError("error: handler does not exist")
                check_access(ctx, w)
                remove_web_handler(sc, dns, port, [mount], cleanup_funnel=False)
            else:
                src = args[2]
                if src.startswith("text:"):
                    h = {"Text": src[5:]}
                elif src.startswith("/"):
                    h = {"Path": os.path.normpath(src)}
                else:
                    try:
                        h = {"Proxy": expand_proxy_target(src, ["http", "https", "https+insecure"], "http")}
                    except ValueError as e:
                        raise CLIError(str(e)) from None
                if is_tcp_forwarding_on_port(sc, port):
                    err("error: cannot serve web; already serving TCP\n")
                    raise CLIError(help_err)
                check_access(ctx, w)
                set_web_handler(sc, h, dns, port, mount, src_type == "https")
        elif src_type in ("tcp", "tls-terminated-tcp"):
            if turn_off:
                if _tcp(sc, port) is None:
                    raise CLIError("error: serve config does not exist")
                check_access(ctx, w)
                del sc["TCP"][str(port)]
            else:
                try:
                    fwd = urllib.parse.urlsplit(expand_proxy_target(args[1], ["tcp"], "tcp")).netloc
                except ValueError as e:
                    err(f'error: invalid TCP source "{args[1]}": {e}\n\n')
                    raise CLIError(help_err) from None
                if is_serving_web(sc, port):
                    raise CLIError(f"cannot serve TCP; already serving web on {port}")
                check_access(ctx, w)
                set_tcp_forwarding(sc, port, "127.0.0.1:" + fwd.rpartition(":")[2], src_type != "tcp", dns)
        else:
            err(f'error: invalid serve type "{src_type}"\n')
            err("must be one of: http:<port>, https:<port>, tcp:<port> or tls-terminated-tcp:<port>\n\n")
            raise CLIError(help_err)
        w["serve_config"] = sc


COMMANDS = {
    "version": cmd_version,
    "status": cmd_status,
    "ip": cmd_ip,
    "whois": cmd_whois,
    "serve": cmd_serve,
    "funnel": cmd_funnel,
}
