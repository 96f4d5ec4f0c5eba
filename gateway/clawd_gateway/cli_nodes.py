"""`clawd-gateway nodes list|pending|approve|reject|invoke`: parsing and output; node_ops does the work.

Each command connects to the running gateway like `clawd-gateway health` does (same --url,
--token/--password and credential fallbacks) and asks for the least scopes it needs, as the
OpenClaw CLI does; `approve` asks for exactly the scopes the request says it needs.

Exit codes: 0 ok · 1 the gateway refused the request (its error code is printed) · 2 usage (bad
--params, unknown or ambiguous node) · 3 gateway unreachable · 4 auth refused · 5 protocol error ·
7 the node could not answer (not connected, timed out, disconnected, or reported an error).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the work's modules load only when a `nodes` command runs, not for `run`
    from .target import Target

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NODE = 0, 1, 2, 7
_EXIT_FOR = {"refused": EXIT_REFUSED, "usage": EXIT_USAGE, "unavailable": EXIT_NODE}


def credential_help(kind: str) -> str:
    """--token/--password help, saying target.resolve_target's order; shared with `health`."""
    var = f"OPENCLAW_GATEWAY_{kind.upper()}"
    return f"{kind} (default: the local config, then env {var}; with --url: only the env)"


def add_parser(sub: Any, add_config: Callable[[argparse.ArgumentParser], None]) -> None:
    nodes = sub.add_parser("nodes", help="list, pair and invoke device nodes on the running gateway")
    nsub = nodes.add_subparsers(dest="nodes_command", metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        add_config(p)
        p.add_argument("--url", help="gateway URL (default ws://127.0.0.1:<configured port>)")
        cred = p.add_mutually_exclusive_group()
        cred.add_argument("--token", help=credential_help("token"))
        cred.add_argument("--password", help=credential_help("password"))
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument(
            "--timeout", type=float, default=10.0, metavar="S", help="connect/RPC seconds (default 10)"
        )

    common(nsub.add_parser("list", help="connected and paired nodes"))
    common(nsub.add_parser("pending", help="pairing requests waiting for approval"))
    for name, what in (("approve", "approve"), ("reject", "reject")):
        p = nsub.add_parser(name, help=f"{what} a pending node or device pairing request")
        p.add_argument("request_id", metavar="REQUEST_ID", help="from `clawd-gateway nodes pending`")
        common(p)
    inv = nsub.add_parser("invoke", help="run one command on a node and print its result")
    inv.add_argument("node", metavar="NODE", help="node id, unique id prefix, or display name")
    inv.add_argument(
        "node_command", metavar="COMMAND", help="a command the node advertises, e.g. system.which"
    )
    inv.add_argument("--params", default=None, metavar="JSON", help="command params as a JSON value")
    inv.add_argument(
        "--invoke-timeout", type=int, default=30_000, metavar="MS", help="how long the node may take (ms)"
    )
    inv.add_argument("--idempotency-key", metavar="KEY", help="default: a fresh random key")
    common(inv)
    nodes.set_defaults(nodes_parser=nodes)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from .client import GatewayAuthError, GatewayCallError, GatewayError
    from .node_ops import NodeOpError
    from .target import NO_CREDENTIALS_HINT, resolve_target

    action = getattr(args, "nodes_command", None)
    if action is None:
        args.nodes_parser.print_help()
        return EXIT_USAGE
    target = resolve_target(url=args.url, token=args.token, password=args.password, config=args.config)
    try:
        result = asyncio.run(_dispatch(action, args, target))
    except NodeOpError as exc:
        return _fail(args, str(exc), _EXIT_FOR[exc.reason], error=exc.error, target=target)
    except _BadParams as exc:
        return _fail(args, str(exc), EXIT_USAGE, error=None, target=target)
    except GatewayError as exc:
        error = exc.error.to_json() if isinstance(exc, (GatewayAuthError, GatewayCallError)) else None
        message = f"{exc} (at the {exc.hop} hop)"
        if isinstance(exc, GatewayAuthError) and target.secret is None:
            message += "; " + NO_CREDENTIALS_HINT
        return _fail(args, message, exc.exit_code, error=error, target=target)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _PRINTERS[action](result)
    return EXIT_OK


class _BadParams(Exception):
    """--params is not JSON: a usage error, reported like the others (with target and credentials)."""


def _params(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _BadParams(f"--params is not valid JSON: {exc}") from None


async def _dispatch(action: str, args: argparse.Namespace, target: Target) -> Any:
    from . import node_ops

    if action == "list":
        return await node_ops.list_nodes(target, args.timeout)
    if action == "pending":
        return await node_ops.pending(target, args.timeout)
    if action == "approve":
        return await node_ops.decide(target, args.request_id, "approve", args.timeout)
    if action == "reject":
        return await node_ops.decide(target, args.request_id, "reject", args.timeout)
    return await node_ops.invoke(
        target,
        args.node,
        args.node_command,
        params=_params(args.params),
        invoke_timeout_ms=args.invoke_timeout,
        idempotency_key=args.idempotency_key,
        timeout=args.timeout,
    )


def _fail(
    args: argparse.Namespace, message: str, code: int, *, error: dict[str, Any] | None, target: Target
) -> int:
    if args.json:
        print(
            json.dumps(
                {"ok": False, "exitCode": code, "message": message, "error": error, "url": target.url},
                indent=2,
            )
        )
    else:
        print(f"clawd-gateway nodes {args.nodes_command}: {message}", file=sys.stderr)
        detail = ((error or {}).get("details") or {}).get("code")
        if detail:
            print(f"  code: {detail}", file=sys.stderr)
        print(f"  target: {target.url} · credentials: {target.source}", file=sys.stderr)
    return code


# -- text output ----------------------------------------------------------------------------------


def _ago(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return "-"
    s = max(0, int(time.time() - ms / 1000))
    if s < 60:
        return f"{s}s ago"
    if s < 3600:
        return f"{s // 60}m ago"
    if s < 86400:
        return f"{s // 3600}h ago"
    return f"{s // 86400}d ago"


def _print_list(result: dict[str, Any]) -> None:
    nodes = result.get("nodes", [])
    connected = sum(1 for n in nodes if n.get("connected"))
    paired = sum(1 for n in nodes if n.get("paired"))
    print(f"Nodes: {len(nodes)} · Connected: {connected} · Paired: {paired}")
    for n in nodes:
        state = "connected" if n.get("connected") else f"offline (last seen {_ago(n.get('lastSeenAtMs'))})"
        approval = n.get("approvalState", "approved")
        print(
            f"  {n.get('displayName') or '-'}  {str(n.get('nodeId'))[:12]}  {state} · "
            f"{'paired' if n.get('paired') else 'not paired'} · {approval} · "
            f"{n.get('platform') or '?'} {n.get('version') or ''} · {n.get('remoteIp') or '-'} · "
            f"{len(n.get('commands') or [])} commands"
        )
        if n.get("pendingRequestId"):
            print(
                f"      pending request {n['pendingRequestId']}: "
                f"clawd-gateway nodes approve {n['pendingRequestId']}"
            )


def _print_pending(result: dict[str, Any]) -> None:
    pending = result.get("pending", [])
    print(f"Pending: {len(pending)}")
    for r in pending:
        who = r.get("nodeId") or r.get("deviceId") or "?"
        needs = "+".join(r.get("requiredApproveScopes") or ["operator.pairing"])
        what = f"{len(r.get('commands') or [])} commands" if r["kind"] == "node" else "device identity"
        print(
            f"  {r.get('requestId')}  {r['kind']:<6} {r.get('displayName') or '-'}  {str(who)[:12]}  "
            f"{r.get('remoteIp') or '-'}  {what}  needs {needs}  {_ago(r.get('ts'))}"
        )
    if pending:
        print("Approve with: clawd-gateway nodes approve <REQUEST_ID>")


def _print_decision(result: dict[str, Any]) -> None:
    req = result.get("request") or {}
    who = req.get("nodeId") or req.get("deviceId") or "?"
    line = f"{result['decision'].capitalize()} {result['kind']} request {req.get('requestId')}: "
    line += f"{req.get('displayName') or '-'} ({str(who)[:12]})"
    if result["kind"] == "node" and result["decision"] == "approved":
        line += f" · {len(req.get('commands') or [])} commands usable now"
    if result["kind"] == "device" and result["decision"] == "approved":
        line += " · the node can reconnect now"
    print(line)


def _print_invoke(result: dict[str, Any]) -> None:
    payload = result.get("payload")
    print(json.dumps(payload, indent=2) if not isinstance(payload, str) else payload)


_PRINTERS: dict[str, Callable[[Any], None]] = {
    "list": _print_list,
    "pending": _print_pending,
    "approve": _print_decision,
    "reject": _print_decision,
    "invoke": _print_invoke,
}
