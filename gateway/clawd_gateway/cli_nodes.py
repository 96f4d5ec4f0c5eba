"""`clawd-gateway nodes list|pending|approve|reject|invoke`: operate device nodes over the protocol.

Each command connects to the running gateway like `clawd-gateway health` does (same --url,
--token/--password and credential fallbacks) and asks for the least scopes it needs, as the
OpenClaw CLI does; `approve` asks for exactly the scopes the request says it needs.

Exit codes: 0 ok · 1 the gateway refused the request (its error code is printed) · 2 usage (bad
--params, unknown or ambiguous node) · 3 gateway unreachable · 4 auth refused · 5 protocol error ·
7 the node could not answer (not connected, timed out, disconnected, or reported an error).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from .client import GatewayAuthError, GatewayCallError, GatewayError, Session, open_session

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NODE = 0, 1, 2, 7
READ, WRITE, PAIRING = "operator.read", "operator.write", "operator.pairing"


class NodesCliError(Exception):
    def __init__(self, message: str, exit_code: int, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.error = error


def add_parser(sub: Any, add_config: Callable[[argparse.ArgumentParser], None]) -> None:
    nodes = sub.add_parser("nodes", help="list, pair and invoke device nodes on the running gateway")
    nsub = nodes.add_subparsers(dest="nodes_command", metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        add_config(p)
        p.add_argument("--url", help="gateway URL (default ws://127.0.0.1:<configured port>)")
        cred = p.add_mutually_exclusive_group()
        cred.add_argument("--token", help="token (default: env OPENCLAW_GATEWAY_TOKEN, then config)")
        cred.add_argument("--password", help="password (default: env OPENCLAW_GATEWAY_PASSWORD, then config)")
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
    action = getattr(args, "nodes_command", None)
    if action is None:
        args.nodes_parser.print_help()
        return EXIT_USAGE
    from .cli import _client_credentials, _local_url

    url = args.url or _local_url(args)
    token, password, source = _client_credentials(args, explicit_url=bool(args.url))
    handler = {"list": _list, "pending": _pending, "approve": _approve, "reject": _reject, "invoke": _invoke}
    try:
        result = asyncio.run(handler[action](args, url, token, password))
    except NodesCliError as exc:
        return _fail(args, str(exc), exc.exit_code, error=exc.error, url=url, source=source)
    except GatewayError as exc:
        error = exc.error.to_json() if isinstance(exc, (GatewayAuthError, GatewayCallError)) else None
        message = f"{exc} (at the {exc.hop} hop)"
        if isinstance(exc, GatewayAuthError) and not token and not password:
            message += (
                "; no token or password was given: pass --token/--password or set OPENCLAW_GATEWAY_TOKEN"
            )
        return _fail(args, message, exc.exit_code, error=error, url=url, source=source)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _PRINTERS[action](result)
    return EXIT_OK


def _fail(
    args: argparse.Namespace, message: str, code: int, *, error: dict[str, Any] | None, url: str, source: str
) -> int:
    if args.json:
        print(
            json.dumps(
                {"ok": False, "exitCode": code, "message": message, "error": error, "url": url}, indent=2
            )
        )
    else:
        print(f"clawd-gateway nodes {args.nodes_command}: {message}", file=sys.stderr)
        detail = ((error or {}).get("details") or {}).get("code")
        if detail:
            print(f"  code: {detail}", file=sys.stderr)
        print(f"  target: {url} · credentials: {source}", file=sys.stderr)
    return code


async def _session(
    args: argparse.Namespace, url: str, token: str | None, password: str | None, scopes: tuple[str, ...]
) -> Session:
    return await open_session(url, token=token, password=password, timeout=args.timeout, scopes=scopes)


async def _call(session: Session, method: str, params: Any, timeout: float) -> Any:
    try:
        return await session.call(method, params, timeout=timeout)
    except GatewayCallError as exc:
        err = exc.error
        code = EXIT_NODE if err.code == "UNAVAILABLE" else EXIT_REFUSED
        raise NodesCliError(f"{method} refused: {err.code}: {err.message}", code, err.to_json()) from None


# -- actions --------------------------------------------------------------------------------------


async def _list(args: argparse.Namespace, url: str, token: str | None, password: str | None) -> Any:
    session = await _session(args, url, token, password, (READ,))
    try:
        return await _call(session, "node.list", {}, args.timeout)
    finally:
        await session.close()


async def _pending_lists(session: Session, timeout: float) -> dict[str, Any]:
    nodes = await _call(session, "node.pair.list", {}, timeout)
    devices = await _call(session, "device.pair.list", {}, timeout)
    return {"nodes": nodes, "devices": devices}


async def _pending(args: argparse.Namespace, url: str, token: str | None, password: str | None) -> Any:
    session = await _session(args, url, token, password, (PAIRING,))
    try:
        lists = await _pending_lists(session, args.timeout)
    finally:
        await session.close()
    out = [{"kind": "node", **r} for r in lists["nodes"].get("pending", [])]
    out += [{"kind": "device", **r} for r in lists["devices"].get("pending", [])]
    out.sort(key=lambda r: r.get("ts", 0))
    return {"pending": out}


async def _decide(
    args: argparse.Namespace, url: str, token: str | None, password: str | None, decision: str
) -> Any:
    rid = args.request_id
    session = await _session(args, url, token, password, (PAIRING,))
    try:
        lists = await _pending_lists(session, args.timeout)
    finally:
        await session.close()
    node_req = next((r for r in lists["nodes"].get("pending", []) if r.get("requestId") == rid), None)
    dev_req = next((r for r in lists["devices"].get("pending", []) if r.get("requestId") == rid), None)
    if node_req is None and dev_req is None:
        raise NodesCliError(
            f"no pending request {rid!r} (see `clawd-gateway nodes pending`)",
            EXIT_REFUSED,
            {
                "code": "INVALID_REQUEST",
                "message": "unknown requestId",
                "details": {"code": "UNKNOWN_REQUEST"},
            },
        )
    kind = "node" if node_req is not None else "device"
    scopes: tuple[str, ...] = (PAIRING,)
    if node_req is not None and decision == "approve":
        scopes = tuple(dict.fromkeys([PAIRING, *node_req.get("requiredApproveScopes", [])]))
    session = await _session(args, url, token, password, scopes)
    try:
        payload = await _call(session, f"{kind}.pair.{decision}", {"requestId": rid}, args.timeout)
    finally:
        await session.close()
    done = {"approve": "approved", "reject": "rejected"}[decision]
    return {"kind": kind, "decision": done, "request": node_req or dev_req, "result": payload}


async def _approve(args: argparse.Namespace, url: str, token: str | None, password: str | None) -> Any:
    return await _decide(args, url, token, password, "approve")


async def _reject(args: argparse.Namespace, url: str, token: str | None, password: str | None) -> Any:
    return await _decide(args, url, token, password, "reject")


def resolve_node(nodes: list[dict[str, Any]], wanted: str) -> dict[str, Any]:
    """Exact id, then exact display name (case-insensitive), then a unique id prefix (6+ chars)."""
    exact = [n for n in nodes if n.get("nodeId") == wanted]
    if exact:
        return exact[0]
    named = [n for n in nodes if str(n.get("displayName") or "").lower() == wanted.lower()]
    if len(named) == 1:
        return named[0]
    prefixed = [n for n in nodes if len(wanted) >= 6 and str(n.get("nodeId", "")).startswith(wanted.lower())]
    matches = named or prefixed
    if len(matches) == 1:
        return matches[0]
    if matches:
        ids = ", ".join(f"{n.get('displayName')} ({str(n.get('nodeId'))[:12]})" for n in matches)
        raise NodesCliError(f"{wanted!r} matches several nodes: {ids}; use the node id", EXIT_USAGE)
    known = ", ".join(str(n.get("displayName") or n.get("nodeId")) for n in nodes) or "none"
    raise NodesCliError(f"no node {wanted!r} on this gateway (known: {known})", EXIT_USAGE)


async def _invoke(args: argparse.Namespace, url: str, token: str | None, password: str | None) -> Any:
    params: Any = None
    if args.params is not None:
        try:
            params = json.loads(args.params)
        except ValueError as exc:
            raise NodesCliError(f"--params is not valid JSON: {exc}", EXIT_USAGE) from None
    session = await _session(args, url, token, password, (WRITE,))
    try:
        listed = await _call(session, "node.list", {}, args.timeout)
        node = resolve_node(listed.get("nodes", []), args.node)
        request: dict[str, Any] = {
            "nodeId": node["nodeId"],
            "command": args.node_command,
            "timeoutMs": args.invoke_timeout,
            "idempotencyKey": args.idempotency_key or str(uuid.uuid4()),
        }
        if params is not None:
            request["params"] = params
        return await _call(session, "node.invoke", request, args.invoke_timeout / 1000 + args.timeout)
    finally:
        await session.close()


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
