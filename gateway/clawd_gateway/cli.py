"""`clawd-gateway`: argument parsing and output only; the work happens elsewhere.

Exit codes: 0 ok · 1 gateway error/unhealthy · 2 usage · 3 unreachable / not running ·
4 auth refused · 5 protocol error · 78 configuration error or unsafe configuration refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, Literal

from . import __version__, cli_nodes
from .cli_audit import add_audit_parser, cmd_audit
from .errors import ConfigError, UserError, stdout_gone
from .log import setup_logging
from .settings import Overrides, resolve_settings

# Start to ready: `run` (the default command) imports only what serving needs. The client side
# (inspection, target, websockets' client) loads in the commands that use it.

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_DOWN = 0, 1, 2, 3
SUBCOMMANDS = {"run", "health", "status", "config", "install-service", "uninstall-service", "nodes", "audit"}


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $OPENCLAW_CONFIG_PATH, "
        "~/.openclaw/openclaw.json, ~/.clawdbot/clawdbot.json)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clawd-gateway",
        description="An OpenClaw-compatible gateway: WebSocket + HTTP on one port, secure by default.",
    )
    parser.add_argument("--version", action="version", version=f"clawd-gateway {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the gateway in the foreground (the default command)")
    _add_config(run)
    run.add_argument("--port", type=int, help="listen port (default 18789; env OPENCLAW_GATEWAY_PORT)")
    run.add_argument(
        "--bind",
        choices=["loopback", "lan", "tailnet", "auto", "custom"],
        help="where to listen (default loopback)",
    )
    run.add_argument("--host", help="address for --bind custom (implies it)")
    run.add_argument("--auth", choices=["token", "password", "none"], help="auth mode")
    run.add_argument("--token", help="shared token (prefer env OPENCLAW_GATEWAY_TOKEN: flags show in ps)")
    run.add_argument("--password", help="shared password (prefer env OPENCLAW_GATEWAY_PASSWORD)")
    run.add_argument("--tailscale", choices=["off", "serve", "funnel"], help="Tailscale exposure mode")
    run.add_argument(
        "--reset-on-exit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="remove the tailscale serve/funnel route we added when the gateway stops "
        "(default: on for funnel, off for serve; config gateway.tailscale.resetOnExit)",
    )
    run.add_argument(
        "--tick-interval", type=float, metavar="SECONDS", help="tick event interval (default 30)"
    )
    run.add_argument(
        "--log-level",
        default=os.environ.get("CLAWD_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    run.add_argument("--log-json", action="store_true", help="JSON log lines on stderr")

    health = sub.add_parser("health", help="connect over the protocol and check health")
    _add_config(health)
    health.add_argument("--url", help="gateway URL (default ws://127.0.0.1:<configured port>)")
    cred = health.add_mutually_exclusive_group()
    cred.add_argument("--token", help=cli_nodes.credential_help("token"))
    cred.add_argument("--password", help=cli_nodes.credential_help("password"))
    health.add_argument("--json", action="store_true", help="machine-readable output")
    health.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds (default 10)")

    status = sub.add_parser("status", help="is a gateway running here, and who is connected")
    _add_config(status)
    scred = status.add_mutually_exclusive_group()
    scred.add_argument("--token")
    scred.add_argument("--password")
    status.add_argument("--json", action="store_true")
    status.add_argument("--timeout", type=float, default=3.0, metavar="S")

    config = sub.add_parser("config", help="configuration tools")
    csub = config.add_subparsers(dest="config_command", metavar="ACTION")
    check = csub.add_parser("check", help="validate the config and show effective settings (secrets masked)")
    _add_config(check)
    check.add_argument("--json", action="store_true")
    add_audit_parser(sub)

    inst = sub.add_parser(
        "install-service",
        help="install a hardened systemd unit (launchd plist on macOS) that runs the gateway",
    )
    inst.add_argument(
        "--user", action="store_true", help="a per-user service (systemd --user, LaunchAgent) instead"
    )
    inst.add_argument(
        "--print", dest="print_only", action="store_true", help="print the unit instead of writing it"
    )
    _add_config(inst)
    inst.add_argument(
        "--run-as",
        metavar="USER",
        help="system service: the account it runs as (default: whoever ran sudo, else you)",
    )
    inst.add_argument(
        "--enable",
        action="store_true",
        help="also run systemctl daemon-reload + enable --now (launchctl bootstrap on macOS)",
    )
    inst.add_argument(
        "--manager", choices=["systemd", "launchd"], help="service manager (default: this OS's)"
    )

    uninst = sub.add_parser("uninstall-service", help="remove what install-service wrote")
    uninst.add_argument("--user", action="store_true", help="the per-user service")
    uninst.add_argument("--purge", action="store_true", help="also delete the environment file (the secret)")
    uninst.add_argument(
        "--disable",
        action="store_true",
        help="first run systemctl disable --now (launchctl bootout on macOS)",
    )
    uninst.add_argument(
        "--manager", choices=["systemd", "launchd"], help="service manager (default: this OS's)"
    )
    cli_nodes.add_parser(sub, _add_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help", "--version")):
        args_list.insert(0, "run")
    parser = build_parser()
    args = parser.parse_args(args_list)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "health":
            return cmd_health(args)
        if args.command == "status":
            return cmd_status(args)
        if args.command == "config":
            if args.config_command != "check":
                parser.parse_args(["config", "--help"])
            return cmd_config_check(args)
        if args.command == "audit":
            return cmd_audit(args)
        if args.command == "install-service":
            return cmd_install_service(args)
        if args.command == "uninstall-service":
            return cmd_uninstall_service(args)
        if args.command == "nodes":
            return cli_nodes.run(args)
    except UserError as exc:
        print(f"clawd-gateway: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return stdout_gone()
    parser.print_help()
    return EXIT_USAGE


# --- run -----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import serve_until_stopped

    overrides = Overrides(
        config=args.config,
        port=args.port,
        bind=args.bind,
        host=args.host,
        auth=args.auth,
        token=args.token,
        password=args.password,
        tailscale=args.tailscale,
        reset_on_exit=args.reset_on_exit,
        tick_interval_ms=int(args.tick_interval * 1000) if args.tick_interval else None,
    )
    settings = resolve_settings(overrides)
    logger = setup_logging(args.log_level, args.log_json)
    for warning in settings.config.warnings:
        logger.warning(warning)
    return asyncio.run(serve_until_stopped(settings, logger))


# --- health --------------------------------------------------------------------------------------


def cmd_health(args: argparse.Namespace) -> int:
    from .inspection import check_health
    from .target import resolve_target

    target = resolve_target(url=args.url, token=args.token, password=args.password, config=args.config)
    result = asyncio.run(check_health(target, args.timeout))
    result["credentials"] = target.source
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_health(result)
    return int(result.get("exitCode", 0))


def _print_health(r: dict[str, Any]) -> None:
    if r.get("ok"):
        h = r["health"]
        server = r.get("server") or {}
        print("Gateway Health")
        print(
            f"OK ({h.get('durationMs', 0)}ms) · {r['url']} · server {server.get('version', '?')} · "
            f"protocol {r['protocol']}"
        )
        scopes = ",".join((r.get("auth") or {}).get("scopes") or []) or "-"
        print(
            f"handshake {r['handshakeMs']:.1f} ms · health rpc {r['rpcMs']:.1f} ms · "
            f"credentials: {r['credentials']} · scopes {scopes}"
        )
        return
    print(f"Gateway Health: FAILED at the {r.get('hop', '?')} hop", file=sys.stderr)
    print(f"  {r.get('message')}", file=sys.stderr)
    detail = ((r.get("error") or {}).get("details") or {}).get("code")
    if detail:
        print(f"  code: {detail}", file=sys.stderr)
    if r.get("hint"):
        print(f"  hint: {r['hint']}", file=sys.stderr)
    print(f"  target: {r['url']} · credentials: {r.get('credentials')}", file=sys.stderr)


# --- status --------------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from .inspection import gather_status

    status = gather_status(config=args.config, token=args.token, password=args.password, timeout=args.timeout)
    if args.json:
        print(json.dumps(status.report, indent=2))
    else:
        _print_status(status.report, status.auth_mode)
    return EXIT_OK if status.running else EXIT_DOWN


def _print_status(r: dict[str, Any], auth_mode: str) -> None:
    if not r["running"]:
        print(f"Gateway: not running ({r.get('error')})")
        return
    gw = r.get("gateway") or {}
    rt = r.get("runtime") or {}
    print(f"Gateway: running at {r['url']} ({'ready' if r.get('ready') else 'not ready'})")
    pid = gw.get("pid") or rt.get("pid")
    if pid:
        print(f"  pid {pid} · version {gw.get('version', '?')}")
    listen = gw.get("listen") or rt.get("listen")
    if listen:
        mode = gw.get("authMode") or rt.get("authMode") or auth_mode
        print(f"  bind {gw.get('bind') or rt.get('bind')} ({', '.join(listen)}) · auth {mode}")
    ts = r.get("tailscale")
    if ts:
        print(f"  tailscale {ts['mode']}: {ts['url']} (WS via {ts['wsUrl']})")
    if "clients" in gw:
        clients = gw["clients"]
        print(f"  clients: {len(clients)}")
        for c in clients:
            print(f"    - {c['clientId']} ({c['mode']}, {c['platform']} {c['version']}) from {c['remote']}")
    elif r.get("gatewayError"):
        e = r["gatewayError"]
        print(f"  clients: unknown ({e['hop']}: {e['message']})")


# --- config check --------------------------------------------------------------------------------


def cmd_config_check(args: argparse.Namespace) -> int:
    from .inspection import effective_config

    try:
        eff = effective_config(args.config)
    except ConfigError as exc:
        if args.json:
            print(
                json.dumps(
                    {
                        "valid": False,
                        "error": str(exc),
                        "file": str(exc.file) if exc.file else None,
                        "key": exc.key,
                        "fix": exc.fix,
                    },
                    indent=2,
                )
            )
            return exc.exit_code
        raise
    if args.json:
        print(json.dumps({"valid": True, "effective": eff}, indent=2))
        return EXIT_OK
    print(f"config: {eff['configFile'] or '(none: built-in defaults)'} ({eff['configSource']}) — valid")
    print(f"  port {eff['port']} ({eff['portSource']}) · bind {eff['bind']} → {', '.join(eff['listen'])}")
    auth = eff["auth"]
    secret = auth["password"] if auth["mode"] == "password" else auth["token"]
    shown = f"{secret['value']} from {secret['source']}" if secret else "not set"
    print(f"  auth {auth['mode']} · secret {shown}")
    rl = auth["rateLimit"]
    print(
        f"  rate limit {'on' if rl['enabled'] else 'OFF'}: {rl['maxAttempts']} failures / "
        f"{rl['windowMs'] // 1000}s → lockout {rl['lockoutMs'] // 1000}s"
    )
    print(
        f"  tailscale {eff['tailscale']['mode']} · control UI "
        f"{'on at ' + eff['controlUi']['basePath'] if eff['controlUi']['enabled'] else 'off'}"
    )
    for w in eff["warnings"]:
        print(f"  warning: {w}")
    for n in eff["notes"]:
        print(f"  note: {n}")
    return EXIT_OK


# --- install-service / uninstall-service ---------------------------------------------------------


def cmd_install_service(args: argparse.Namespace) -> int:
    from . import service

    scope: Literal["user", "system"] = "user" if args.user else "system"
    plan = service.plan_install(scope=scope, manager=args.manager, config=args.config, run_as=args.run_as)
    sp = plan.paths
    if args.print_only:
        sys.stdout.write(plan.content.decode("utf-8"))
        secret = {
            "keep": "exists and keeps its secret",
            "unreadable": "exists (readable by root only)",
            "none-needed": f"would be created without a secret ({plan.secret.source})",
        }.get(plan.secret.action, f"would get {plan.secret.var} ({plan.secret.source})")
        print(f"clawd-gateway: would write {sp.real(sp.unit)}", file=sys.stderr)
        print(
            f"clawd-gateway: environment file {sp.real(sp.env_file)} (mode 0600): {secret}", file=sys.stderr
        )
        return EXIT_OK
    result = service.install(plan, enable=args.enable)
    kind = f"{sp.manager} {'user' if args.user else 'system'} service"
    print(f"clawd-gateway: installed the {kind} {'(unchanged)' if not result.unit_written else ''}".rstrip())
    print(f"  unit     {sp.real(sp.unit)}")
    who = "" if args.user else f" as user {plan.run_as}"
    print(f"  runs     {' '.join(plan.spec.argv)}{who}")
    print(f"  secret   {result.secret_message}")
    print(f"  state    {plan.state_dir}")
    for note in plan.notes:
        print(f"  note     {note}")
    _print_steps(result.ran, result.next_steps, "Start it now and at every boot:")
    print("Check it: " + " · ".join(s.display() for s in service.status_steps(sp)))
    return EXIT_OK


def _print_steps(ran: Any, next_steps: Any, heading: str) -> None:
    """What systemctl/launchctl commands were run, or which ones the user should run."""
    if ran:
        print("Ran:")
        for cmd in ran:
            print(f"  {cmd}")
    else:
        print(heading)
        for step in next_steps:
            print(f"  {step.display()}")


def cmd_uninstall_service(args: argparse.Namespace) -> int:
    from . import service

    scope: Literal["user", "system"] = "user" if args.user else "system"
    result = service.uninstall(scope=scope, manager=args.manager, purge=args.purge, disable=args.disable)
    for path in result.removed:
        print(f"clawd-gateway: removed {path}")
    for path in result.missing:
        print(f"clawd-gateway: {path} was not there")
    _print_steps(result.ran, result.next_steps, "If it is still running, stop it:")
    if not args.purge:
        sp = service.service_paths(args.manager or service.default_manager(), scope)
        if sp.real(sp.env_file).exists():
            print(f"The environment file (the secret) stays: {sp.real(sp.env_file)}; --purge deletes it.")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
