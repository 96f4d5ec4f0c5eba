"""Paired devices and nodes, and the requests waiting for an operator: state and its JSON file.

`PairingState` is plain data with the transitions (no I/O, no clock: callers pass `now_ms`), so
the rules are testable on their own. One file holds everything, written atomically after every
change, so an approval can never be half-persisted (pending gone but not yet paired) and a
restart keeps exactly what operators decided.

Layout of `<state_dir>/nodes/pairing.json`::

    {"version": 1,
     "devices": {"paired": {deviceId: {...}}, "pending": {requestId: {...}}},
     "nodes":   {"paired": {nodeId: {...}},   "pending": {requestId: {...}}}}
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..paths import atomic_write
from .policy import required_approve_scopes

FILE_VERSION = 1
# Requests come from anyone holding the shared secret; keep the oldest-first list bounded.
MAX_PENDING = 256
Entry = dict[str, Any]

# What a node tells us about itself at connect; copied into requests and paired entries.
NODE_INFO_KEYS = ("displayName", "platform", "version", "deviceFamily", "clientId", "clientMode", "remoteIp")


def state_file(state_dir: Path) -> Path:
    return state_dir / "nodes" / "pairing.json"


@dataclass
class PairingState:
    devices_paired: dict[str, Entry] = field(default_factory=dict)
    devices_pending: dict[str, Entry] = field(default_factory=dict)
    nodes_paired: dict[str, Entry] = field(default_factory=dict)
    nodes_pending: dict[str, Entry] = field(default_factory=dict)

    # -- serialisation --------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FILE_VERSION,
            "devices": {"paired": self.devices_paired, "pending": self.devices_pending},
            "nodes": {"paired": self.nodes_paired, "pending": self.nodes_pending},
        }

    @classmethod
    def from_json(cls, obj: Any) -> PairingState:
        """Raises ValueError naming the first malformed part."""
        if not isinstance(obj, dict):
            raise ValueError("top level must be an object")
        if obj.get("version") != FILE_VERSION:
            raise ValueError(f"unsupported version {obj.get('version')!r} (expected {FILE_VERSION})")
        parts: dict[str, dict[str, Entry]] = {}
        for kind in ("devices", "nodes"):
            sect = obj.get(kind, {})
            if not isinstance(sect, dict):
                raise ValueError(f"{kind} must be an object")
            for sub in ("paired", "pending"):
                table = sect.get(sub, {})
                if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
                    raise ValueError(f"{kind}.{sub} must be an object of objects")
                for key, entry in table.items():
                    _check_entry(f"{kind}.{sub}[{key!r}]", key, entry, kind, sub)
                parts[f"{kind}_{sub}"] = table
        return cls(**parts)

    # -- devices --------------------------------------------------------------------------------

    def device_paired(self, device_id: str) -> bool:
        return device_id in self.devices_paired

    def pair_device(self, info: Entry, now_ms: int, *, auto: bool) -> Entry:
        entry = {
            "deviceId": info["deviceId"],
            "publicKey": info.get("publicKey"),
            "roles": sorted(set(info.get("roles") or [])),
            "displayName": info.get("displayName"),
            "platform": info.get("platform"),
            "clientId": info.get("clientId"),
            "remoteIp": info.get("remoteIp"),
            "createdAtMs": now_ms,
            "approvedAtMs": now_ms,
            "approvedBy": "auto-loopback" if auto else "operator",
        }
        self.devices_paired[entry["deviceId"]] = entry
        for rid in [r for r, req in self.devices_pending.items() if req["deviceId"] == entry["deviceId"]]:
            del self.devices_pending[rid]
        return entry

    def request_device(self, info: Entry, now_ms: int) -> tuple[Entry, bool]:
        """One pending request per device: a retry refreshes it instead of piling up."""
        for req in self.devices_pending.values():
            if req["deviceId"] == info["deviceId"]:
                req.update({k: info.get(k) for k in ("displayName", "platform", "clientId", "remoteIp")})
                req["ts"] = now_ms
                return req, False
        req = {
            "requestId": str(uuid.uuid4()),
            "deviceId": info["deviceId"],
            "publicKey": info.get("publicKey"),
            "role": info.get("role", "node"),
            "roles": [info.get("role", "node")],
            "scopes": [],
            "displayName": info.get("displayName"),
            "platform": info.get("platform"),
            "clientId": info.get("clientId"),
            "remoteIp": info.get("remoteIp"),
            "ts": now_ms,
        }
        self.devices_pending[req["requestId"]] = req
        _bound(self.devices_pending)
        return req, True

    def approve_device(self, request_id: str, now_ms: int) -> Entry | None:
        req = self.devices_pending.get(request_id)
        if req is None:
            return None
        return self.pair_device({**req, "roles": req.get("roles") or [req.get("role")]}, now_ms, auto=False)

    def reject_device(self, request_id: str) -> Entry | None:
        return self.devices_pending.pop(request_id, None)

    # -- nodes ----------------------------------------------------------------------------------

    def approved_commands(self, node_id: str) -> list[str]:
        entry = self.nodes_paired.get(node_id)
        return list(entry.get("commands") or []) if entry else []

    def pending_for(self, node_id: str) -> Entry | None:
        for req in self.nodes_pending.values():
            if req["nodeId"] == node_id:
                return req
        return None

    def request_node(self, node_id: str, info: Entry, now_ms: int) -> tuple[Entry, bool]:
        """Ask for `info["commands"]`; an existing request for the node is refreshed in place,
        unless the node now asks for more: then the old request is replaced by one with a new id,
        so an approval given for the list an operator saw can never grant commands it did not show
        (and its requiredApproveScopes are those of the new list)."""
        commands = sorted(set(info.get("commands") or []))
        caps = sorted(set(info.get("caps") or []))
        req = self.pending_for(node_id)
        if req is not None and not set(commands) <= set(req.get("commands") or []):
            del self.nodes_pending[req["requestId"]]
            req = None
        created = req is None
        if req is None:
            req = {"requestId": str(uuid.uuid4()), "nodeId": node_id}
            self.nodes_pending[req["requestId"]] = req
            _bound(self.nodes_pending, keep=req["requestId"])
        req.update({k: info.get(k) for k in NODE_INFO_KEYS})
        req.update(
            caps=caps,
            commands=commands,
            ts=now_ms,
            isRepair=node_id in self.nodes_paired,
            requiredApproveScopes=required_approve_scopes(commands),
        )
        return req, created

    def approve_node(self, request_id: str, now_ms: int) -> Entry | None:
        req = self.nodes_pending.pop(request_id, None)
        if req is None:
            return None
        old = self.nodes_paired.get(req["nodeId"], {})
        entry = {
            "nodeId": req["nodeId"],
            **{k: req.get(k) for k in NODE_INFO_KEYS},
            "caps": list(req.get("caps") or []),
            "commands": list(req.get("commands") or []),
            "createdAtMs": old.get("createdAtMs", now_ms),
            "approvedAtMs": now_ms,
            "lastConnectedAtMs": old.get("lastConnectedAtMs"),
            "lastSeenAtMs": old.get("lastSeenAtMs"),
        }
        if old.get("renamed"):
            entry["displayName"] = old.get("displayName")
            entry["renamed"] = True
        self.nodes_paired[entry["nodeId"]] = entry
        return entry

    def reject_node(self, request_id: str) -> Entry | None:
        return self.nodes_pending.pop(request_id, None)

    def rename_node(self, node_id: str, name: str) -> bool:
        """Operator-chosen names survive the node reconnecting with its own displayName."""
        found = False
        if node_id in self.nodes_paired:
            self.nodes_paired[node_id].update(displayName=name, renamed=True)
            found = True
        req = self.pending_for(node_id)
        if req is not None:
            req["displayName"] = name
            found = True
        return found

    def touch_node(self, node_id: str, info: Entry, now_ms: int, *, connected: bool) -> None:
        entry = self.nodes_paired.get(node_id)
        if entry is None:
            return
        if connected:
            entry["lastConnectedAtMs"] = now_ms
            for k in NODE_INFO_KEYS:
                if k == "displayName" and entry.get("renamed"):
                    continue
                if info.get(k) is not None:
                    entry[k] = info[k]
        entry["lastSeenAtMs"] = now_ms


def _check_entry(where: str, key: str, entry: Entry, kind: str, sub: str) -> None:
    """The fields the gateway indexes by and authorizes with: a hand-edited entry missing one would
    otherwise fail every later connect or approval, far from the file that caused it."""
    id_key = "deviceId" if kind == "devices" else "nodeId"
    own = "requestId" if sub == "pending" else id_key
    for field_name in {own, id_key}:
        if not isinstance(entry.get(field_name), str) or not entry[field_name]:
            raise ValueError(f"{where}.{field_name} must be a non-empty string")
    if entry[own] != key:
        raise ValueError(f"{where}.{own} is {entry[own]!r}, but the entry is filed under {key!r}")
    for list_name in ("commands", "caps", "roles", "requiredApproveScopes"):
        value = entry.get(list_name)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ValueError(f"{where}.{list_name} must be a list of strings")


def _bound(pending: dict[str, Entry], keep: str | None = None) -> None:
    while len(pending) > MAX_PENDING:
        oldest = min((r for r in pending if r != keep), key=lambda r: pending[r].get("ts", 0))
        del pending[oldest]


def load_state(path: Path) -> PairingState:
    """Missing file: empty state. A damaged file stops the gateway with the file named."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return PairingState()
    except OSError as exc:
        raise UserError(f"cannot read the node pairing store {path}: {exc.strerror or exc}") from None
    try:
        return PairingState.from_json(json.loads(text))
    except ValueError as exc:
        raise UserError(
            f"the node pairing store {path} is damaged: {exc}",
            fix=f"restore it from a backup, or move it aside (mv {path} {path}.bad) to start with no "
            "paired nodes",
        ) from None


def save_state(path: Path, state: PairingState) -> None:
    atomic_write(path, json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n")
