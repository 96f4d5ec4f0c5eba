"""Live node connections joined to the pairing store and the invoke router (the asyncio side).

Pairing policy (the reference gateway's, kept on purpose so real node hosts behave the same):

* A `role: "node"` connection must carry a signed device identity; the node id is the device id.
* Device identity: a new device on a direct-local connection (loopback socket, no proxy headers:
  the gateway host itself or an SSH tunnel endpoint) is approved silently. From anywhere else the
  connect is refused with NOT_PAIRED / PAIRING_REQUIRED and a device pairing request that an
  operator approves (`device.pair.approve`, or `clawd-gateway nodes approve`); the node then
  reconnects.
* Command surface: never auto-approved, not even on loopback. A connected node whose advertised
  commands are not all approved stays connected with only its approved commands usable and a
  node pairing request pending; `node.pair.approve` (by an operator holding the request's
  `requiredApproveScopes`) makes them usable at once and tells the node (`node.pair.resolved`).
  Loopback therefore never widens what a node may be asked to do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..log import log
from ..presence import ClientRecord
from ..protocol.constants import ROLE_NODE, DetailCode, ErrorCode
from ..protocol.frames import ConnectParams, ErrorShape
from ..protocol.scopes import satisfies
from .policy import MAX_NAME_LEN, blocked, clean_names, clean_text, required_approve_scopes
from .router import InvokeRouter, RouterError
from .store import Entry, PairingState, load_state, save_state, state_file

DEFAULT_INVOKE_TIMEOUT_MS = 30_000
MAX_INVOKE_TIMEOUT_MS = 10 * 60 * 1000
PAIRING_REQUIRED = "PAIRING_REQUIRED"

# emit(event, payload, scope): broadcast to operators holding `scope`.
Emit = Callable[[str, dict[str, Any], str], None]
# send_to(conn_id, event, payload): a targeted event to one connection; False if it is gone.
SendTo = Callable[[str, str, dict[str, Any]], bool]


class NodeError(Exception):
    def __init__(self, error: ErrorShape) -> None:
        super().__init__(error.message)
        self.error = error


def _bad(message: str, **details: Any) -> NodeError:
    return NodeError(ErrorShape(ErrorCode.INVALID_REQUEST, message, details=details or None))


def _unavailable(message: str, **details: Any) -> NodeError:
    return NodeError(ErrorShape(ErrorCode.UNAVAILABLE, message, details=details or None))


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class LiveNode:
    conn_id: str
    node_id: str
    info: Entry
    caps: list[str]
    commands: list[str]  # advertised at connect
    connected_ms: int
    rejected: bool = False


@dataclass
class _Waiter:
    future: asyncio.Future[dict[str, Any]]
    node_id: str
    command: str

    def fail(self, message: str, code: str, **details: Any) -> None:
        """The caller gets UNAVAILABLE naming the node and command (once; later answers drop)."""
        if not self.future.done():
            self.future.set_exception(
                _unavailable(message, code=code, nodeId=self.node_id, command=self.command, **details)
            )


@dataclass
class NodeHub:
    state_dir: Path
    emit: Emit
    send_to: SendTo
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("clawd.nodes"))

    def __post_init__(self) -> None:
        self.path = state_file(self.state_dir)
        self.state: PairingState = load_state(self.path)
        self.router = InvokeRouter()
        self.live: dict[str, LiveNode] = {}
        self._by_node: dict[str, str] = {}
        self._waiters: dict[str, _Waiter] = {}

    def _save(self) -> None:
        save_state(self.path, self.state)

    # -- connect / disconnect -------------------------------------------------------------------

    def admit(self, params: ConnectParams, *, direct_local: bool, remote: str) -> ErrorShape | None:
        """After shared-secret auth and device signature checks: may this node connect?"""
        if params.role != ROLE_NODE:
            return None
        dev = params.device
        if dev is None:
            return ErrorShape(
                ErrorCode.NOT_PAIRED,
                "device identity required (nodes must connect with a signed device identity)",
                details={"code": DetailCode.DEVICE_IDENTITY_REQUIRED},
            )
        device_id = dev.id.lower()
        if self.state.device_paired(device_id):
            return None
        info = {
            "deviceId": device_id,
            "publicKey": dev.public_key,
            "role": ROLE_NODE,
            "roles": [ROLE_NODE],
            "displayName": clean_text(params.client.display_name, MAX_NAME_LEN),
            "platform": clean_text(params.client.platform),
            "clientId": clean_text(params.client.id),
            "remoteIp": remote,
        }
        now = _now_ms()
        if direct_local:
            self.state.pair_device(info, now, auto=True)
            self._save()
            log(
                self.logger,
                logging.INFO,
                "device pairing auto-approved (loopback)",
                device=device_id,
                role="node",
            )
            return None
        req, _created = self.state.request_device(info, now)
        self._save()
        log(self.logger, logging.INFO, "device pairing requested", device=device_id, request=req["requestId"])
        self.emit("device.pair.requested", dict(req), "operator.pairing")
        return ErrorShape(
            ErrorCode.NOT_PAIRED,
            "pairing required",
            details={
                "code": PAIRING_REQUIRED,
                "requestId": req["requestId"],
                "reason": "not-paired",
                "deviceId": device_id,
            },
        )

    def attach(self, record: ClientRecord, params: ConnectParams) -> None:
        """The node's hello-ok is on its way: track it, and ask operators for what is unapproved."""
        if params.role != ROLE_NODE or params.device is None:
            return
        node_id = params.device.id.lower()
        now = _now_ms()
        client = params.client
        info: Entry = {
            "displayName": clean_text(client.display_name, MAX_NAME_LEN) or node_id[:12],
            "platform": clean_text(client.platform),
            "version": clean_text(client.version),
            "deviceFamily": clean_text(client.device_family),
            "clientId": clean_text(client.id),
            "clientMode": clean_text(client.mode),
            "remoteIp": record.remote,
        }
        commands = clean_names(params.commands)
        caps = clean_names(params.caps)
        live = LiveNode(record.conn_id, node_id, info, caps, commands, now)
        self.live[record.conn_id] = live
        self._by_node[node_id] = record.conn_id
        record.extra["nodeId"] = node_id
        paired = node_id in self.state.nodes_paired
        if paired:
            self.state.touch_node(node_id, info, now, connected=True)
        if not paired or not set(commands) <= set(self.state.approved_commands(node_id)):
            req, _created = self.state.request_node(
                node_id, {**info, "caps": caps, "commands": commands}, now
            )
            log(
                self.logger,
                logging.INFO,
                "node pairing requested",
                node=node_id,
                request=req["requestId"],
                commands=len(commands),
            )
            self.emit("node.pair.requested", dict(req), "operator.pairing")
        self._save()

    def detach(self, conn_id: str) -> None:
        live = self.live.pop(conn_id, None)
        if live is None:
            return
        if self._by_node.get(live.node_id) == conn_id:
            del self._by_node[live.node_id]
            # The same device may hold an older connection still: it stays reachable.
            other = next((n for n in self.live.values() if n.node_id == live.node_id), None)
            if other is not None:
                self._by_node[live.node_id] = other.conn_id
        for call in self.router.for_node_conn(conn_id):
            self.router.drop(call.id)
            waiter = self._waiters.pop(call.id, None)
            if waiter is not None:
                waiter.fail(
                    f"node {live.node_id} disconnected before answering {call.command}", "NODE_DISCONNECTED"
                )
        if live.node_id in self.state.nodes_paired and live.node_id not in self._by_node:
            self.state.touch_node(live.node_id, live.info, _now_ms(), connected=False)
            self._save()

    # -- views ----------------------------------------------------------------------------------

    def _live_for(self, node_id: str) -> LiveNode | None:
        conn = self._by_node.get(node_id)
        return self.live.get(conn) if conn else None

    def usable_commands(self, live: LiveNode) -> list[str]:
        approved = set(self.state.approved_commands(live.node_id))
        return [c for c in live.commands if c in approved]

    def node_view(self, node_id: str) -> dict[str, Any] | None:
        paired = self.state.nodes_paired.get(node_id)
        live = self._live_for(node_id)
        if paired is None and live is None:
            return None
        pending = self.state.pending_for(node_id)
        base: Entry = dict(live.info) if live else {}
        for src in (paired, pending):
            for k, v in (src or {}).items():
                if k in ("platform", "version", "deviceFamily", "clientId", "clientMode", "remoteIp"):
                    base.setdefault(k, v)
        # The operator's name (paired or pending entry) wins over what the node calls itself.
        base["displayName"] = ((paired or {}).get("displayName") or (pending or {}).get("displayName")
                               or base.get("displayName"))  # fmt: skip
        view: dict[str, Any] = {"nodeId": node_id}
        view.update({k: v for k, v in base.items() if v is not None})
        if live:
            view["caps"] = list(live.caps)
            view["commands"] = self.usable_commands(live)
            view["advertisedCommands"] = list(live.commands)
            view["connectedAtMs"] = live.connected_ms
        else:
            assert paired is not None
            view["caps"] = list(paired.get("caps") or [])
            view["commands"] = list(paired.get("commands") or [])
        view["paired"] = paired is not None
        view["connected"] = live is not None
        if paired:
            view["approvedAtMs"] = paired.get("approvedAtMs")
        last_seen = _now_ms() if live else (paired or {}).get("lastSeenAtMs")
        if last_seen is not None:
            view["lastSeenAtMs"] = last_seen
        if pending:
            view["approvalState"] = "pending-approval"
            view["pendingRequestId"] = pending["requestId"]
        elif live and live.rejected and not paired:
            view["approvalState"] = "rejected"
        else:
            view["approvalState"] = "approved"
        return view

    def list_nodes(self) -> list[dict[str, Any]]:
        ids = set(self.state.nodes_paired) | set(self._by_node)
        views = [v for v in (self.node_view(i) for i in ids) if v is not None]
        views.sort(key=lambda v: (not v["connected"], str(v.get("displayName") or "").lower(), v["nodeId"]))
        return views

    def pair_list(self) -> dict[str, Any]:
        pending = sorted(self.state.nodes_pending.values(), key=lambda r: r.get("ts", 0))
        paired = sorted(self.state.nodes_paired.values(), key=lambda e: e.get("approvedAtMs", 0))
        return {
            "pending": [{k: v for k, v in r.items() if v is not None} for r in pending],
            "paired": [{k: v for k, v in e.items() if v is not None} for e in paired],
        }

    def device_pair_list(self) -> dict[str, Any]:
        return {
            "pending": sorted(self.state.devices_pending.values(), key=lambda r: r.get("ts", 0)),
            "paired": sorted(self.state.devices_paired.values(), key=lambda e: e.get("approvedAtMs", 0)),
        }

    # -- operator decisions ---------------------------------------------------------------------

    def _resolved(self, req: Entry, decision: str, id_key: str = "nodeId") -> dict[str, Any]:
        return {"requestId": req["requestId"], id_key: req[id_key], "decision": decision, "ts": _now_ms()}

    def approve(self, request_id: str, caller: ClientRecord) -> dict[str, Any]:
        req = self.state.nodes_pending.get(request_id)
        if req is None:
            raise _bad("unknown requestId", code="UNKNOWN_REQUEST", requestId=request_id)
        # From the commands being granted, not the stored field: what is approved decides who may.
        needed = required_approve_scopes(req.get("commands") or [])
        missing = [s for s in needed if not satisfies(caller.scopes, s)]
        if missing:
            raise NodeError(
                ErrorShape(
                    ErrorCode.FORBIDDEN,
                    f"missing scope: {missing[0]} (approving this node's commands needs "
                    f"{' + '.join(needed)})",
                    details={
                        "code": DetailCode.MISSING_SCOPE,
                        "missingScope": missing[0],
                        "requiredScopes": needed,
                    },
                )
            )
        entry = self.state.approve_node(request_id, _now_ms())
        assert entry is not None
        live = self._live_for(entry["nodeId"])
        if live is not None:
            live.rejected = False
            self.state.touch_node(entry["nodeId"], live.info, _now_ms(), connected=True)
        self._save()
        log(self.logger, logging.INFO, "node pairing approved", node=entry["nodeId"], request=request_id)
        payload = self._resolved(req, "approved")
        self.emit("node.pair.resolved", payload, "operator.pairing")
        if live is not None:
            self.send_to(live.conn_id, "node.pair.resolved", payload)
        return {"requestId": request_id, "node": {k: v for k, v in entry.items() if v is not None}}

    def reject(self, request_id: str) -> dict[str, Any]:
        req = self.state.reject_node(request_id)
        if req is None:
            raise _bad("unknown requestId", code="UNKNOWN_REQUEST", requestId=request_id)
        self._save()
        live = self._live_for(req["nodeId"])
        log(self.logger, logging.INFO, "node pairing rejected", node=req["nodeId"], request=request_id)
        payload = self._resolved(req, "rejected")
        self.emit("node.pair.resolved", payload, "operator.pairing")
        if live is not None:
            live.rejected = True
            self.send_to(live.conn_id, "node.pair.resolved", payload)
        return {"requestId": request_id, "nodeId": req["nodeId"]}

    def device_approve(self, request_id: str) -> dict[str, Any]:
        req = self.state.devices_pending.get(request_id)
        entry = self.state.approve_device(request_id, _now_ms()) if req else None
        if req is None or entry is None:
            raise _bad("unknown requestId", code="UNKNOWN_REQUEST", requestId=request_id)
        self._save()
        log(
            self.logger, logging.INFO, "device pairing approved", device=entry["deviceId"], request=request_id
        )
        self.emit("device.pair.resolved", self._resolved(req, "approved", "deviceId"), "operator.pairing")
        return {"requestId": request_id, "device": entry}

    def device_reject(self, request_id: str) -> dict[str, Any]:
        req = self.state.reject_device(request_id)
        if req is None:
            raise _bad("unknown requestId", code="UNKNOWN_REQUEST", requestId=request_id)
        self._save()
        self.emit("device.pair.resolved", self._resolved(req, "rejected", "deviceId"), "operator.pairing")
        return {"requestId": request_id, "deviceId": req["deviceId"]}

    def rename(self, node_id: str, name: str) -> dict[str, Any]:
        name = clean_text(name, MAX_NAME_LEN + 1) or ""
        if not name or len(name) > MAX_NAME_LEN:
            raise _bad(f"displayName must be 1-{MAX_NAME_LEN} characters")
        found = self.state.rename_node(node_id, name)
        live = self._live_for(node_id)
        if live is not None:
            live.info["displayName"] = name
            found = True
        if not found:
            raise _bad("unknown nodeId", code="UNKNOWN_NODE", nodeId=node_id)
        self._save()
        return {"nodeId": node_id, "displayName": name}

    # -- invoke ---------------------------------------------------------------------------------

    async def invoke(self, caller: ClientRecord, params: dict[str, Any]) -> dict[str, Any]:
        node_id, command = params["nodeId"], params["command"]
        timeout_ms = params.get("timeoutMs") or DEFAULT_INVOKE_TIMEOUT_MS
        timeout_ms = max(1, min(int(timeout_ms), MAX_INVOKE_TIMEOUT_MS))
        live = self._live_for(node_id)
        if live is None:
            if node_id in self.state.nodes_paired:
                raise _unavailable("node not connected", code="NOT_CONNECTED", nodeId=node_id)
            raise _bad("unknown nodeId", code="UNKNOWN_NODE", nodeId=node_id)
        if blocked(command):
            raise _bad(
                f"{command} cannot be invoked through node.invoke",
                reason="command blocked",
                code="COMMAND_BLOCKED",
                command=command,
            )
        if command not in live.commands:
            raise _bad(
                f"command not advertised by node {node_id}: {command}",
                reason="command not advertised",
                code="COMMAND_NOT_ADVERTISED",
                command=command,
            )
        if command not in self.usable_commands(live):
            pending = self.state.pending_for(node_id)
            hint = f" (approve pairing request {pending['requestId']})" if pending else ""
            raise _bad(
                f"command not approved for node {node_id}: {command}{hint}",
                reason="command not approved",
                code="COMMAND_NOT_APPROVED",
                command=command,
            )
        try:
            call = self.router.open(
                node_id=node_id,
                node_conn=live.conn_id,
                caller=_caller_key(caller),
                command=command,
                idempotency_key=params["idempotencyKey"],
                timeout_ms=timeout_ms,
                now_ms=_now_ms(),
            )
        except RouterError as exc:
            raise _bad(exc.message, code=exc.code) from None
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[call.id] = _Waiter(future, node_id, command)
        request = {
            "id": call.id,
            "nodeId": node_id,
            "command": command,
            "paramsJSON": json.dumps(params["params"]) if "params" in params else None,
            "timeoutMs": timeout_ms,
            "idempotencyKey": call.idempotency_key,
        }
        try:
            if not self.send_to(live.conn_id, "node.invoke.request", request):
                raise _unavailable("node not connected", code="NOT_CONNECTED", nodeId=node_id)
            try:
                result = await asyncio.wait_for(asyncio.shield(future), timeout_ms / 1000)
            except asyncio.TimeoutError:
                raise _unavailable(
                    f"node {node_id} did not answer {command} within {timeout_ms} ms",
                    code="TIMEOUT",
                    nodeId=node_id,
                    command=command,
                    timeoutMs=timeout_ms,
                ) from None
        finally:
            self.router.drop(call.id)
            self._waiters.pop(call.id, None)
            if not future.done():
                future.cancel()
        return result

    def invoke_result(self, record: ClientRecord, params: dict[str, Any]) -> dict[str, Any]:
        """A node answers; only the connection the call was sent to can settle it."""
        call = self.router.settle(str(params.get("id")), record.conn_id)
        waiter = self._waiters.pop(call.id, None) if call else None
        if call is None or waiter is None or waiter.future.done():
            # Late (after a timeout) or not this node's call: accepted and dropped, nothing leaks.
            return {"ok": True, "ignored": True}
        if params.get("ok") is True:
            raw = params.get("payloadJSON")
            if isinstance(raw, str):
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = raw
                payload_json: str | None = raw
            else:
                payload = params.get("payload")
                payload_json = json.dumps(payload) if "payload" in params else None
            waiter.future.set_result(
                {"ok": True, "nodeId": call.node_id, "command": call.command, "payload": payload,
                 "payloadJSON": payload_json}
            )  # fmt: skip
        else:
            err = found if isinstance(found := params.get("error"), dict) else {}
            code = str(err.get("code") or "NODE_ERROR")
            message = str(err.get("message") or "node reported an error")
            waiter.fail(f"{code}: {message}", "NODE_ERROR", nodeError={"code": code, "message": message})
        return {"ok": True}


def _caller_key(record: ClientRecord) -> str:
    """Idempotency keys are per caller: its device identity, else its connection (a shared-secret
    caller without a device is only known by its socket; instanceId is self-declared)."""
    return f"device:{record.device_id}" if record.device_id else f"conn:{record.conn_id}"
