"""In-flight `node.invoke` calls and idempotency keys, without sockets, tasks or clocks.

A call is owned by two parties: the caller that asked and the node connection it was sent to.
Only that node connection may settle it (a node cannot answer, or learn about, another node's
calls), and idempotency keys are scoped per caller, so two callers choosing the same key never
interfere.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass

# A key stays "used" this long after its call began; retries within the window are refused.
KEY_RETENTION_MS = 10 * 60 * 1000
MAX_KEYS_PER_CALLER = 1024
# Callers whose keys are remembered (least recently active forgotten first): a caller without a
# device is known by its socket, so reconnecting must not grow the table without end.
MAX_CALLERS = 256
MAX_IN_FLIGHT = 1024
# One caller cannot take every in-flight slot from the others.
MAX_IN_FLIGHT_PER_CALLER = 128


class RouterError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Call:
    id: str
    node_id: str
    node_conn: str
    caller: str
    command: str
    idempotency_key: str
    started_ms: int
    deadline_ms: int


class InvokeRouter:
    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self._keys: OrderedDict[str, OrderedDict[str, int]] = OrderedDict()

    def open(
        self,
        *,
        node_id: str,
        node_conn: str,
        caller: str,
        command: str,
        idempotency_key: str,
        timeout_ms: int,
        now_ms: int,
    ) -> Call:
        self._prune(now_ms)
        keys = self._keys.get(caller, OrderedDict())
        # In-flight calls are checked directly: their key may have left a forgotten caller's table.
        in_flight = any(
            c.caller == caller and c.idempotency_key == idempotency_key for c in self.calls.values()
        )
        if in_flight or idempotency_key in keys:
            state = "is still in flight" if in_flight else "was already used"
            raise RouterError(
                "DUPLICATE_IDEMPOTENCY_KEY",
                f"duplicate idempotencyKey {idempotency_key!r}: a node.invoke with this key {state}; "
                "use a fresh key for a new call",
            )
        if len(self.calls) >= MAX_IN_FLIGHT:
            raise RouterError("TOO_MANY_CALLS", "too many node.invoke calls in flight; retry later")
        if sum(1 for c in self.calls.values() if c.caller == caller) >= MAX_IN_FLIGHT_PER_CALLER:
            raise RouterError(
                "TOO_MANY_CALLS",
                f"this caller already has {MAX_IN_FLIGHT_PER_CALLER} node.invoke calls in flight; "
                "wait for some to finish",
            )
        self._keys[caller] = keys
        self._keys.move_to_end(caller)
        while len(self._keys) > MAX_CALLERS:
            self._keys.popitem(last=False)
        keys[idempotency_key] = now_ms + KEY_RETENTION_MS
        while len(keys) > MAX_KEYS_PER_CALLER:
            keys.popitem(last=False)
        call = Call(
            id=str(uuid.uuid4()),
            node_id=node_id,
            node_conn=node_conn,
            caller=caller,
            command=command,
            idempotency_key=idempotency_key,
            started_ms=now_ms,
            deadline_ms=now_ms + timeout_ms,
        )
        self.calls[call.id] = call
        return call

    def settle(self, call_id: str, node_conn: str) -> Call | None:
        """The call, removed, if `node_conn` is the connection it was sent to; else None."""
        call = self.calls.get(call_id)
        if call is None or call.node_conn != node_conn:
            return None
        del self.calls[call_id]
        return call

    def drop(self, call_id: str) -> None:
        self.calls.pop(call_id, None)

    def for_node_conn(self, node_conn: str) -> list[Call]:
        return [c for c in self.calls.values() if c.node_conn == node_conn]

    def _prune(self, now_ms: int) -> None:
        for caller in list(self._keys):
            keys = self._keys[caller]
            while keys and next(iter(keys.values())) <= now_ms:
                keys.popitem(last=False)
            if not keys:
                del self._keys[caller]
