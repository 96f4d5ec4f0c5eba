"""Step "discover": what listens on the gateway port of the VPS, what it is, and its secret.

Why it looks where it looks: the secret lives wherever the gateway got it from — its own process
environment (a systemd Environment=/EnvironmentFile=, a shell export), OpenClaw's config
(`gateway.auth.token`/`password`, possibly a `${VAR}` reference), clawd-gateway's env file or the
token it generated for itself. All of these are readable by the account that runs the gateway,
which is the account setup logs in as. Everything here only reads; the secret is returned in
memory for the keyring and never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import shlex
from dataclasses import dataclass, field

import json5

from clawd_gateway import secret_sources
from clawd_gateway.errors import UserError
from clawd_gateway.service.envfile import parse_env_file

from .plan import (
    GatewayAuth,
    Listener,
    auth_from_config,
    choose_secret,
    config_port,
    flag_value,
    parse_environ,
    parse_proc_net_tcp,
    parse_ss,
)
from .remote import Remote

DEFAULT_PORT = 18789
OPENCLAW_CONFIGS = ("~/.openclaw/openclaw.json", "~/.clawdbot/clawdbot.json")
CLAWD_ENV_FILE = "~/.config/clawd-gateway/env"
CLAWD_TOKEN_FILE = "~/.local/state/clawd/gateway/gateway.token"  # noqa: S105 - a path


class PortTaken(UserError):
    exit_code = 1


@dataclass
class Found:
    kind: str  # "openclaw" | "clawd" | "none"
    port: int
    listeners: list[Listener] = field(default_factory=list)
    auth: GatewayAuth = field(default_factory=GatewayAuth)
    process: str = ""  # e.g. "openclaw-gateway (pid 1234)"
    config: str | None = None  # the config file read, if any
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.kind == "none":
            return f"nothing listens on port {self.port}"
        name = {"openclaw": "OpenClaw gateway", "clawd": "clawd-gateway"}[self.kind]
        where = f" ({self.process})" if self.process else ""
        how = f", {self.auth.mode} auth" + (f" from {self.auth.source}" if self.auth.source else "")
        return f"{name} on 127.0.0.1:{self.port}{where}{how}"


async def session_env(remote: Remote) -> dict[str, str]:
    result = await remote.run("env -0 2>/dev/null || true")
    return parse_environ(result.stdout)


async def _config(remote: Remote, env: dict[str, str]) -> tuple[str | None, object]:
    """(path, parsed JSON) of the first OpenClaw/Clawdbot config that exists."""
    candidates = []
    for var in ("OPENCLAW_CONFIG_PATH", "CLAWDBOT_CONFIG_PATH"):
        if env.get(var):
            candidates.append(env[var])
    if env.get("OPENCLAW_STATE_DIR"):
        candidates.append(posixpath.join(env["OPENCLAW_STATE_DIR"], "openclaw.json"))
    candidates += list(OPENCLAW_CONFIGS)
    for path in dict.fromkeys(candidates):
        text = await remote.read_file(path)
        if text is None:
            continue
        try:
            return await remote.path(path), json5.loads(text)  # OpenClaw's config is JSON5
        except ValueError as exc:
            raise UserError(
                f"{remote.target}: {path} is not valid JSON5 ({exc})", fix="fix the file on the VPS"
            ) from None
    return None, None


async def _listeners(remote: Remote, port: int) -> list[Listener]:
    ss = await remote.run("ss -ltnpH 2>/dev/null")
    if ss.ok and ss.stdout.strip():
        return parse_ss(ss.stdout, port)
    tcp = await remote.run("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null")
    return parse_proc_net_tcp(tcp.stdout, port)


async def _process(remote: Remote, pid: int) -> tuple[str, list[str], dict[str, str]]:
    """(comm + exe, argv, environment) of a listener's process (readable: it is the account's)."""
    out = await remote.run(
        f"cat /proc/{pid}/comm; readlink /proc/{pid}/exe; echo @@; cat /proc/{pid}/cmdline; echo @@; "
        f"cat /proc/{pid}/environ"
    )
    head, _, rest = out.stdout.partition("@@\n")
    argv_raw, _, environ_raw = rest.partition("@@\n")
    argv = [a for a in argv_raw.rstrip("\n").split("\0") if a]
    return head.replace("\n", " ").strip(), argv, parse_environ(environ_raw)


async def _unit_env(remote: Remote) -> dict[str, str]:
    """Environment= and EnvironmentFile= of an OpenClaw/Clawdbot systemd unit, if there is one."""
    units = await remote.run(
        "grep -lis -e openclaw -e clawdbot ~/.config/systemd/user/*.service /etc/systemd/system/*.service "
        "2>/dev/null | head -n 3"
    )
    env: dict[str, str] = {}
    for unit in units.stdout.split():
        text = await _maybe_read(remote, unit) or ""
        for raw in text.splitlines():
            key, _, value = raw.strip().partition("=")
            if key == "Environment":
                for item in shlex.split(value):
                    k, sep, v = item.partition("=")
                    if sep:
                        env.setdefault(k, v)
            elif key == "EnvironmentFile":
                env_text = await _maybe_read(remote, value.lstrip("-").strip()) or ""
                env.update({k: v for k, v in parse_env_file(env_text).items() if k not in env})
    return env


async def _maybe_read(remote: Remote, path: str) -> str | None:
    try:
        return await remote.read_file(path)
    except UserError:
        return None  # unreadable (another user's, or root's): not a source


async def is_gateway(remote: Remote, port: int) -> bool:
    """Does 127.0.0.1:port answer the gateways' unauthenticated `GET /health` liveness probe?"""
    try:
        reader, writer = await asyncio.wait_for(remote.conn.open_connection("127.0.0.1", port), 10)
    except (OSError, asyncio.TimeoutError, Exception):
        return False
    try:
        writer.write(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        body = await asyncio.wait_for(reader.read(4096), 10)
    except (OSError, asyncio.TimeoutError, Exception):
        return False
    finally:
        with contextlib.suppress(Exception):
            writer.close()
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return text.startswith("HTTP/1.") and " 200 " in text.split("\r\n", 1)[0] and '"ok":true' in text


async def discover(remote: Remote, *, port: int | None) -> Found:
    env = await session_env(remote)
    config_path, config = await _config(remote, env)
    chosen = port or config_port(config) or DEFAULT_PORT
    found = Found("none", chosen, config=config_path)
    found.listeners = await _listeners(remote, chosen)
    if not found.listeners:
        return found
    proc_env: dict[str, str] = {}
    argv: list[str] = []
    pids = {lst.pid for lst in found.listeners if lst.pid}
    label = ""
    if pids:
        pid = min(pids)
        label, argv, proc_env = await _process(remote, pid)
        found.process = f"{label.split()[0] if label else '?'} (pid {pid})"
        if proc_env.get("OPENCLAW_CONFIG_PATH") and proc_env["OPENCLAW_CONFIG_PATH"] != config_path:
            path, parsed = await _config(remote, proc_env)
            if path is not None:
                config_path, config, found.config = path, parsed, path
    if not await is_gateway(remote, chosen):
        who = found.process or "a process of another user"
        raise PortTaken(
            f"{remote.target}: port {chosen} is held by {who}, which does not answer like a gateway",
            fix="stop that process on the VPS, or pass --remote-port P for the gateway's real port",
        )
    text = " ".join([label, *argv]).lower()
    found.kind = "clawd" if "clawd-gateway" in text or "clawd_gateway" in text else "openclaw"
    found.auth = await _auth(remote, found, config, config_path, proc_env, argv)
    return found


async def _auth(
    remote: Remote,
    found: Found,
    config: object,
    config_path: str | None,
    proc_env: dict[str, str],
    argv: list[str],
) -> GatewayAuth:
    unit_env = await _unit_env(remote) if found.kind == "openclaw" else {}
    merged = {**unit_env, **proc_env}
    cmd_mode = flag_value(argv, "--auth")
    mode = cmd_mode if cmd_mode in ("token", "password", "none") else None
    auth = auth_from_config(config, merged, mode)  # the mode in force and the config's secret for it
    config_secret, auth.secret = auth.secret, None
    if auth.mode in ("token", "password"):
        chosen = choose_secret(
            auth.mode,
            flag=flag_value(argv, f"--{auth.mode}"),
            config_secret=config_secret,
            config_source=config_path or "",
            proc_env=proc_env,
            unit_env=unit_env,
        )
        if chosen is not None:
            auth.secret, auth.source = chosen
    if not auth.secret and found.kind == "clawd" and auth.mode == "token":
        env_file = parse_env_file(await _maybe_read(remote, CLAWD_ENV_FILE) or "")
        value = secret_sources.find_env("token", env_file)
        if value:
            auth.secret, auth.source = value[1], CLAWD_ENV_FILE
        else:
            state = proc_env.get("CLAWD_STATE_DIR")
            token_file = posixpath.join(state, "gateway.token") if state else CLAWD_TOKEN_FILE
            generated = (await _maybe_read(remote, token_file) or "").strip()
            if generated:
                auth.secret, auth.source = generated, token_file
    if auth.mode != "none" and not auth.secret:
        raise UserError(
            f"{remote.target}: found the gateway on port {found.port} ({auth.mode} auth) "
            f"but not its {auth.mode}",
            fix=f"set it on the VPS in gateway.auth.{auth.mode} of its config (or the service's "
            "environment), then run setup-remote again",
        )
    return auth


__all__ = ["DEFAULT_PORT", "Found", "PortTaken", "discover", "is_gateway"]
