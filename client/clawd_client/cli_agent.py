"""`clawd agent`, `up`, `down`, `status`, `connect`: parse, ask the agent, print.

The agent decides everything about tunnels; these commands only turn its answers into lines,
JSON and exit codes (0 ok · 1 not healthy · 2 usage · 3 nothing up / agent not running ·
4 needs the user: host key, auth · 78 configuration).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

from clawd_gateway.errors import UserError

from . import api
from .cli_common import handled
from .engine import TunnelStatus, worst

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_DOWN, EXIT_NEEDS_USER = 0, 1, 2, 3, 4


def line(st: TunnelStatus, *, name: bool = False) -> str:
    """One line per state, as `clawd connect` has always printed them."""
    text = f"{time.strftime('%H:%M:%S')} "
    if name:
        text += f"{st.profile}: "
    text += f"{st.state:<10} {st.local_url}"
    if st.state == "healthy" and st.latency_ms is not None:
        text += f" · gateway ok in {st.latency_ms} ms"
    if st.degraded:
        text += f" · {st.degraded}"
    if st.last_error and st.state in ("backoff", "degraded", "fatal", "connecting"):
        text += f" · {st.last_error}"
    if st.state == "backoff" and st.next_attempt_in_s is not None:
        text += f" · retry in {st.next_attempt_in_s}s"
    if st.held:
        text += f" · {st.held} connection(s) held"
    if st.note:
        text += f" · {st.note}"
    return text


def _details(st: TunnelStatus) -> list[str]:
    since = time.strftime("%H:%M:%S", time.localtime(st.since or 0))
    first = f"{st.profile}: {st.state}"
    if st.degraded:
        first += f" ({st.degraded})"
    first += f" since {since} · {st.local_url} → {st.target}"
    out = [first]
    if st.latency_ms is not None:
        out.append(
            f"  latency {st.latency_ms} ms · reconnects {st.reconnects} · "
            f"connections {st.connections} · held {st.held}"
        )
    if st.last_error:
        out.append(f"  last error: {st.last_error}")
    if st.fix and st.needs_user:
        out.append(f"  fix: {st.fix}")
    if st.note:
        out.append(f"  note: {st.note}")
    for way in st.paths:
        mark = "→" if way.active else " "
        ms = f" {way.latency_ms} ms" if way.latency_ms is not None else ""
        why = f" · {way.last_error}" if way.last_error and way.state != "healthy" else ""
        out.append(f"  {mark} path {way.path:<9} {way.state}{ms} · {way.target}{why}")
    for hop in st.hops:
        mark = "ok " if hop.ok else "FAIL"
        out.append(f"  [{mark}] {hop.hop:<9} {hop.detail}")
        if not hop.ok and hop.fix:
            out.append(f"         fix: {hop.fix}")
    return out


def _exit_for(states: list[TunnelStatus]) -> int:
    if not states:
        return EXIT_DOWN
    return EXIT_OK if all(s.state == "healthy" for s in states) else EXIT_FAIL


def _terminate_as_interrupt() -> None:
    """SIGTERM ends a foreground command like Ctrl-C does (cleanly, through `finally`)."""

    def raise_interrupt(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGTERM, raise_interrupt)


# --- agent ----------------------------------------------------------------------------------------


@handled
def cmd_agent(args: argparse.Namespace) -> int:
    if args.foreground:
        from .agent.main import run_foreground

        return run_foreground()
    if args.stop:
        client = api.running()
        if client is None:
            print("no clawd agent is running")
            return EXIT_OK
        with client:
            info = client.request("hello")["agent"]
            client.request("shutdown")
        print(
            f"clawd agent (pid {info['pid']}) is stopping; its tunnels go down "
            "(they come back at its next start)"
        )
        return EXIT_OK
    client = api.running()
    if client is not None:
        with client:
            info = client.request("hello")["agent"]
        print(
            f"clawd agent already running: pid {info['pid']}, socket {info['socket']}, "
            f"{info.get('loop', 'asyncio')} loop"
        )
        return EXIT_OK
    client, _pid = api.start_agent()
    with client:
        info = client.request("hello")["agent"]
    up = ", ".join(info.get("profiles") or []) or "none yet"
    print(f"clawd agent started: pid {info['pid']}, socket {info['socket']} · up: {up}")
    return EXIT_OK


# --- up / down ------------------------------------------------------------------------------------


@handled
def cmd_up(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {
        "profiles": args.names,
        "accept_new": args.accept_new,
        "wait": not args.no_wait,
        "timeout": args.timeout,
    }
    if args.local_port:
        params["local_port"] = args.local_port
    with api.ensure_agent() as client:
        reply = client.request("up", reply_within=args.timeout + 10, **params)
    results = reply.get("results") or []
    code = max((int(r.get("exit") or 0) for r in results), default=EXIT_OK)
    if args.json:
        print(json.dumps({"tunnels": [r["tunnel"] for r in results], "exit": code}, indent=2))
        return code
    for r in results:
        st = TunnelStatus.from_json(r["tunnel"])
        if st.state == "healthy":
            print(f"{st.profile}: healthy · {st.local_url} · gateway ok in {st.latency_ms} ms")
        elif args.no_wait:
            print(f"{st.profile}: {st.state} · {st.local_url} (not waiting; follow it: clawd status --watch)")
        else:
            why = st.last_error or f"not healthy within {args.timeout:g}s"
            print(f"{st.profile}: {st.state} · {st.local_url} · {why}", file=sys.stderr)
            if st.fix:
                print(f"  fix: {st.fix}", file=sys.stderr)
            if st.held:
                print(f"  {st.held} connection(s) are held until the path heals", file=sys.stderr)
    return code


@handled
def cmd_down(args: argparse.Namespace) -> int:
    if args.all and args.names:
        raise UserError("name profiles or use --all, not both")
    client = api.running()
    if client is None:
        print("no clawd agent is running, so no tunnel is up")
        return EXIT_OK
    with client:
        gone = client.request("down", profiles=args.names, all=args.all)["down"]
    if args.json:
        print(json.dumps({"down": gone}))
    elif gone:
        print(f"down: {', '.join(gone)}")
    else:
        print(
            "nothing to bring down: "
            + (", ".join(args.names) + " not up" if args.names else "no tunnel is up")
        )
    return EXIT_OK


# --- status ---------------------------------------------------------------------------------------


def _no_agent(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps({"agent": None, "tunnels": []}, indent=2))
    else:
        print("no clawd agent is running, so no tunnel is up (start one: clawd up NAME)")
    return EXIT_DOWN


@handled
def cmd_status(args: argparse.Namespace) -> int:
    client = api.running()
    if client is None:
        return _no_agent(args)
    names = (args.name,) if args.name else ()
    with client:
        info = client.request("hello")["agent"]
        if args.watch:
            return _watch(client, names, args.json)
        states = client.statuses(names)
    if args.json:
        print(json.dumps({"agent": info, "tunnels": [s.to_json() for s in states]}, indent=2))
    elif not states:
        print(f"clawd agent pid {info['pid']}: no tunnel is up (start one: clawd up NAME)")
    else:
        for st in states:
            print("\n".join(_details(st)))
    return _exit_for(states)


def _watch(client: api.AgentClient, names: tuple[str, ...], as_json: bool) -> int:
    _terminate_as_interrupt()
    current = [s for s in client.subscribe() if not names or s.profile in names]
    for st in current:
        print(json.dumps(st.to_json()) if as_json else line(st, name=True), flush=True)
    last: dict[str, TunnelStatus] = {s.profile: s for s in current}
    try:
        for st in client.events():
            if names and st.profile not in names:
                continue
            last[st.profile] = st
            print(json.dumps(st.to_json()) if as_json else line(st, name=True), flush=True)
    except KeyboardInterrupt:
        return _exit_for(list(last.values()))
    print("the clawd agent stopped", file=sys.stderr)
    return EXIT_DOWN


# --- pin -----------------------------------------------------------------------------------------


@handled
def cmd_pin(args: argparse.Namespace) -> int:
    if (args.path is None) == (not args.auto):
        raise UserError("name a path (ssh, tailscale, direct) or --auto, not both")
    with api.AgentClient.connect() as client:  # no agent: "not running", exit 3
        client.request("pin", profiles=[args.name], path=args.path)
        st = client.statuses((args.name,))[0]
    how = f"pinned to {args.path} while it is healthy" if args.path else "automatic again"
    print(f"{args.name}: {how} · new connections go {st.active_path or 'nowhere yet (held)'}")
    return EXIT_OK


# --- connect: up + watch + down -------------------------------------------------------------------


def _follow(client: api.AgentClient, name: str) -> Iterator[TunnelStatus]:
    for st in client.events():
        if st.profile == name:
            yield st


@handled
def cmd_connect(args: argparse.Namespace) -> int:
    from .profiles import ProfileStore

    name = ProfileStore().get(args.name).name
    _terminate_as_interrupt()
    watcher = api.ensure_agent()
    commands = api.AgentClient.connect()
    with watcher, commands:
        already = [s for s in watcher.subscribe() if s.profile == name]
        params: dict[str, Any] = {"profiles": [name], "accept_new": args.accept_new, "wait": False}
        if args.local_port:
            params["local_port"] = args.local_port
        try:
            commands.request("up", **params)
            return _connect_loop(watcher, commands, name)
        except KeyboardInterrupt:
            return EXIT_OK
        finally:
            if already and already[0].state not in ("fatal", "stopped"):
                print(
                    f"clawd: {name} was up before `connect`; it stays up (clawd down {name})", file=sys.stderr
                )
            else:
                with contextlib.suppress(UserError, OSError):
                    commands.request("down", profiles=[name])


def _connect_loop(watcher: api.AgentClient, commands: api.AgentClient, name: str) -> int:
    printed = ""
    for st in _follow(watcher, name):
        key = f"{st.state}|{st.degraded}|{st.last_error}|{st.held > 0}"
        if key != printed:
            printed = key
            print(line(st), flush=True)
        if st.needs_user == "host-key-unknown" and sys.stdin.isatty():
            print(f"clawd: {st.last_error}")
            answer = input("Trust this host key and continue? [y/N] ")
            if answer.strip().lower() in ("y", "yes"):
                commands.request("trust", profiles=[name], fingerprint=st.fingerprint)
                print("trusted; connecting")
                continue
        if st.state == "fatal":
            print(f"clawd: {st.last_error or 'stopped'}", file=sys.stderr)
            if st.fix:
                print(f"fix: {st.fix}", file=sys.stderr)
            return st.exit_code or EXIT_NEEDS_USER
    print("clawd: the agent stopped", file=sys.stderr)
    return EXIT_DOWN


def register(sub: Any) -> None:
    agent = sub.add_parser("agent", help="the background process that owns every tunnel")
    mode = agent.add_mutually_exclusive_group()
    mode.add_argument(
        "--foreground", action="store_true", help="run here, logging to stderr (systemd/launchd)"
    )
    mode.add_argument("--stop", action="store_true", help="stop the running agent (its tunnels go down)")
    agent.set_defaults(func=cmd_agent)

    up = sub.add_parser("up", help="bring tunnels up in the agent; returns once healthy or says why not")
    up.add_argument("names", nargs="*", metavar="NAME", help="profiles (default: the only one)")
    up.add_argument(
        "--accept-new", action="store_true", help="trust an unknown SSH host key (never a changed one)"
    )
    up.add_argument("--local-port", type=int, help="override the profile's local port")
    up.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for healthy (default 30)")
    up.add_argument("--no-wait", action="store_true", help="return at once; the agent keeps trying")
    up.add_argument("--json", action="store_true")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="bring tunnels down (the agent stops holding their ports)")
    down.add_argument("names", nargs="*", metavar="NAME")
    down.add_argument("--all", action="store_true", help="every tunnel that is up")
    down.add_argument("--json", action="store_true")
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="live state of the tunnels that are up, from the agent")
    status.add_argument("name", nargs="?")
    status.add_argument("--json", action="store_true")
    status.add_argument("--watch", action="store_true", help="keep printing every state change")
    status.set_defaults(func=cmd_status)

    pin = sub.add_parser("pin", help="multi-path profile: send new connections one way while it is healthy")
    pin.add_argument("name", metavar="NAME")
    pin.add_argument("path", nargs="?", choices=("ssh", "tailscale", "direct"))
    pin.add_argument("--auto", action="store_true", help="back to the profile's own preference")
    pin.set_defaults(func=cmd_pin)

    connect = sub.add_parser("connect", help="up + one line per state change; Ctrl-C brings it down")
    connect.add_argument("name", nargs="?", help="profile (default: the only one)")
    connect.add_argument(
        "--accept-new", action="store_true", help="trust an unknown SSH host key (never a changed one)"
    )
    connect.add_argument("--local-port", type=int, help="override the profile's local port")
    connect.set_defaults(func=cmd_connect)


__all__ = ["line", "register", "worst"]
