"""`clawd`: the laptop-side command. Parsing and output only; the engine decides.

Exit codes: 0 ok · 1 failure / not healthy · 2 usage · 3 not running / unreachable ·
4 auth or host-key problem (needs the user) · 78 configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from clawd_gateway.errors import UserError, stdout_gone
from clawd_gateway.secret import Secret

from . import __version__

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_DOWN, EXIT_NEEDS_USER = 0, 1, 2, 3, 4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clawd",
        description="Keep a connection to a remote OpenClaw gateway alive, and say which hop is broken.",
    )
    parser.add_argument("--version", action="version", version=f"clawd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="local gateway + embedded SSH endpoint + tunnel, checked end to end")
    demo.add_argument("--once", action="store_true", help="exit once healthy instead of serving")
    demo.add_argument("--port", type=int, help="local tunnel port (default 18789, or a free one if taken)")
    demo.set_defaults(func=cmd_demo)

    health = sub.add_parser("health", help="one-shot authenticated health check")
    health.add_argument("name", nargs="?")
    health.add_argument("--url", help="gateway URL (default: the profile's local URL)")
    health.add_argument("--json", action="store_true")
    health.add_argument("--timeout", type=float, default=10.0)
    health.set_defaults(func=cmd_health)

    doctor = sub.add_parser("doctor", help="check every hop and name the first broken one")
    doctor.add_argument("name", nargs="?")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(func=cmd_doctor)

    try:
        from .cli_profiles import register
    except ImportError:  # pragma: no cover - during development only
        pass
    else:
        register(sub)
    from .cli_agent import register as register_agent
    from .cli_autostart import register as register_autostart
    from .cli_setup_remote import register as register_setup_remote
    from .cli_tray import register as register_tray

    register_agent(sub)
    register_autostart(sub)
    register_tray(sub)
    register_setup_remote(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(func(args))
    except UserError as exc:
        print(f"clawd: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return stdout_gone()


# --- helpers -------------------------------------------------------------------------------------


def _profile(name: str | None) -> Any:
    from .profiles import ProfileStore

    return ProfileStore().get(name)


def _secret_for(profile: Any) -> tuple[Secret | None, str | None]:
    """The profile's secret, or None with the reason (no backend, nothing stored)."""
    from .secrets import get_secret

    try:
        return get_secret(profile), None
    except UserError as exc:
        return None, str(exc)


# --- health / doctor ------------------------------------------------------------------------------


def cmd_health(args: argparse.Namespace) -> int:
    from .engine import probe_gateway

    profile = None
    if args.name or not args.url:
        profile = _profile(args.name)
    if profile is not None and not args.url and profile.method != "ssh" and not _running_url(profile.name):
        return _health_url_profile(args, profile)
    if args.url:
        url = args.url
    else:
        assert profile is not None  # without --url a profile was loaded above
        url = _running_url(profile.name) or profile.local_url
    auth = profile.auth if profile else "token"
    secret: Secret | None = None
    if profile is not None:
        secret, _ = _secret_for(profile)
    else:
        import os

        from .secrets import secret_from_env

        found = secret_from_env(os.environ)
        if found is not None:
            secret, auth = found
    import asyncio

    result = asyncio.run(probe_gateway(url, auth, secret, timeout=args.timeout))
    return _print_health(args, result, url, secret)


def _print_health(args: argparse.Namespace, result: Any, url: str, secret: Secret | None) -> int:
    data = {
        "ok": result.ok,
        "url": url,
        "latencyMs": round(result.latency_ms, 1) if result.ok else None,
        "failure": result.failure.value if result.failure else None,
        "message": result.message or None,
        "detailCode": result.detail_code,
        "server": result.server,
        "credentials": secret.source if secret else None,
    }
    if args.json:
        print(json.dumps(data, indent=2))
    elif result.ok:
        print(
            f"healthy: {url} · gateway {(result.server or {}).get('version', '?')} · "
            f"{result.latency_ms:.1f} ms"
        )
    else:
        print(f"NOT healthy: {url}: {result.message}", file=sys.stderr)
    if result.ok:
        return EXIT_OK
    kind = result.failure.value if result.failure else ""
    return {"auth": EXIT_NEEDS_USER, "unreachable": EXIT_DOWN}.get(kind, EXIT_FAIL)


def _running_url(name: str) -> str | None:
    """The loopback URL the agent serves for this profile (it may have moved off a taken port);
    None when no agent runs, the profile is not up, or it serves no local port (--no-relay)."""
    from . import api

    client = api.running()
    if client is None:
        return None
    with client:
        try:
            states = client.statuses((name,))
        except UserError:
            return None
    url = states[0].local_url if states else ""
    return url if url.startswith("ws://127.0.0.1:") else None


def _health_url_profile(args: argparse.Namespace, profile: Any) -> int:
    """tailscale/direct with no supervisor running: check the gateway itself, with the profile's
    Tailscale checks and TLS settings (and its refusal of plain ws:// off the tailnet)."""
    from .doctor import probe_url_profile
    from .engine import TunnelError, UrlPath

    secret, _ = _secret_for(profile)

    async def run() -> Any:
        path = UrlPath(profile)
        try:
            up = await path.resolve()
        except TunnelError as exc:
            cause = exc.cause
            if isinstance(cause, UserError):
                raise cause from None
            return None, str(exc)
        return await probe_url_profile(path, up, secret), profile.url

    import asyncio

    result, where = asyncio.run(run())
    if result is None:
        if args.json:
            print(json.dumps({"ok": False, "url": profile.url, "failure": "unreachable", "message": where}))
        else:
            print(f"NOT healthy: {profile.url}: {where}", file=sys.stderr)
        return EXIT_DOWN
    return _print_health(args, result, str(where), secret)


def cmd_doctor(args: argparse.Namespace) -> int:
    import asyncio

    from .doctor import diagnose_paths, exit_code, report_json

    profile = _profile(args.name)
    secret, why = _secret_for(profile)
    reports = asyncio.run(diagnose_paths(profile, secret, why))
    if args.json:
        print(json.dumps(report_json(profile, reports), indent=2))
        return exit_code([r for _, r in reports])
    for name, report in reports:
        if len(reports) > 1:
            print(f"== path {name}")
        for hop in report.hops:
            mark = "ok " if hop.ok else "FAIL"
            ms = f" ({hop.ms} ms)" if hop.ms is not None else ""
            print(f"[{mark}] {hop.name:<12} {hop.detail}{ms}")
        broken = report.first_broken
        if broken:
            print(f"\nfirst broken hop{f' of {name}' if len(reports) > 1 else ''}: {broken.name}")
            if broken.fix:
                print(f"fix: {broken.fix}")
        elif len(reports) == 1:
            print("\nall hops ok: the gateway is reachable and accepts this profile's secret")
        if len(reports) > 1:
            print()
    if len(reports) > 1:
        sound = [name for name, r in reports if r.ok]
        print(f"paths that work: {', '.join(sound) or 'none'}")
    return exit_code([r for _, r in reports])


def cmd_demo(args: argparse.Namespace) -> int:
    import asyncio

    from .demo import run_demo

    return asyncio.run(run_demo(args.once, args.port, sys.stdout))


if __name__ == "__main__":
    sys.exit(main())
