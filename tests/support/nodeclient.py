"""A real protocol node for tests: role "node", its own Ed25519 device identity, a command handler.

It speaks the same frames as `openclaw node run` (connect.challenge -> signed connect with caps and
commands -> hello-ok; `node.invoke.request` events answered with `node.invoke.result` requests), over
a real websockets connection, so gateway tests exercise the node path end to end without npm.

    with NodeClient(gw.url, token=TOKEN, commands=["echo"], handler=lambda cmd, p: {"echo": p}) as node:
        node.wait_event("node.pair.resolved")      # an operator approved it

A background thread reads frames; each invoke runs the handler on its own thread, so a handler may
block (to test timeouts) without stalling the connection.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from clawd_gateway.protocol.device import DeviceKey

Handler = Callable[[str, Any], Any]


class NodeRefused(Exception):
    """The gateway refused the connect; `error` is the protocol error object."""

    def __init__(self, error: dict[str, Any], close_code: int | None = None) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error
        self.close_code = close_code

    @property
    def detail_code(self) -> str | None:
        return (self.error.get("details") or {}).get("code")


class NodeCallError(Exception):
    """A request the node sent was answered with an error."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error


class NodeInvokeError(Exception):
    """Raise from a handler to answer the invoke with ok:false and this code/message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def echo_handler(command: str, params: Any) -> Any:
    return {"command": command, "params": params}


class NodeClient:
    """One node connection. `node_id` is the device id (sha256 of the public key), as in OpenClaw."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        password: str | None = None,
        display_name: str = "test-node",
        commands: Sequence[str] = ("echo",),
        caps: Sequence[str] = ("test",),
        handler: Handler = echo_handler,
        key: DeviceKey | None = None,
        platform: str = "linux",
        send_device: bool = True,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.key = key or DeviceKey()
        self.display_name = display_name
        self.commands = list(commands)
        self.caps = list(caps)
        self.handler = handler
        self.platform = platform
        self.send_device = send_device
        self.headers = headers  # e.g. {"X-Forwarded-For": ...} to look like a proxied, remote node
        self._auth = {k: v for k, v in (("token", token), ("password", password)) if v}
        self.ws: ClientConnection | None = None
        self.hello: dict[str, Any] | None = None
        self.events: list[dict[str, Any]] = []  # {"event": name, "payload": ...}, in arrival order
        self.invocations: list[dict[str, Any]] = []  # node.invoke.request payloads
        self.results: list[dict[str, Any]] = []  # replies the gateway gave to our node.invoke.result
        self.close_code: int | None = None
        self._cond = threading.Condition()
        self._replies: dict[str, dict[str, Any]] = {}
        self._reader: threading.Thread | None = None
        self._closed = False

    @property
    def node_id(self) -> str:
        return self.key.device_id

    # -- lifecycle ------------------------------------------------------------------------------

    def connect(self, timeout: float = 5.0) -> dict[str, Any]:
        """Handshake; returns hello-ok or raises NodeRefused (e.g. PAIRING_REQUIRED)."""
        ws = connect(
            self.url,
            open_timeout=timeout,
            compression=None,
            max_size=None,
            proxy=None,
            additional_headers=self.headers,
            legacy=True,  # a plain connection object, closed by close(), as tests/support/wsclient does
        )
        self.ws = ws
        challenge = json.loads(ws.recv(timeout=timeout))
        nonce = challenge["payload"]["nonce"]
        params: dict[str, Any] = {
            "minProtocol": 4,
            "maxProtocol": 4,
            "client": {
                "id": "node-host",
                "version": "test",
                "platform": self.platform,
                "mode": "node",
                "displayName": self.display_name,
                "deviceFamily": "Linux",
                "instanceId": str(uuid.uuid4()),
            },
            "role": "node",
            "scopes": [],
            "caps": self.caps,
            "commands": self.commands,
        }
        if self._auth:
            params["auth"] = dict(self._auth)
        if self.send_device:
            params["device"] = self.key.sign_connect(nonce, int(time.time() * 1000), params)
        rid = str(uuid.uuid4())
        ws.send(json.dumps({"type": "req", "id": rid, "method": "connect", "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            try:
                frame = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            except ConnectionClosed as exc:
                raise NodeRefused({"code": "CLOSED", "message": str(exc)}, _code(exc)) from None
            if frame.get("type") == "res" and frame.get("id") == rid:
                break
        if not frame.get("ok"):
            code: int | None = None
            try:
                ws.recv(timeout=timeout)
            except ConnectionClosed as exc:
                code = _code(exc)
            except TimeoutError:
                ws.close()
            self.close_code = code
            raise NodeRefused(frame.get("error") or {}, code)
        self.hello = frame["payload"]
        self._reader = threading.Thread(target=self._read_loop, name="nodeclient-reader", daemon=True)
        self._reader.start()
        return self.hello

    def close(self) -> None:
        self._closed = True
        if self.ws is not None:
            self.ws.close()
        if self._reader is not None:
            self._reader.join(5)

    def __enter__(self) -> NodeClient:
        if self.ws is None:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- waiting and calling --------------------------------------------------------------------

    def wait_event(
        self, name: str, timeout: float = 10.0, predicate: Callable[[Any], bool] | None = None
    ) -> Any:
        """Payload of the first event `name` (already received or arriving within `timeout`)."""

        def find() -> dict[str, Any] | None:
            for ev in self.events:
                if ev["event"] == name and (predicate is None or predicate(ev["payload"])):
                    return ev
            return None

        with self._cond:
            if not self._cond.wait_for(lambda: find() is not None or self.closed, timeout):
                raise AssertionError(
                    f"no {name} event within {timeout}s; got {[e['event'] for e in self.events]}"
                )
            found = find()
        if found is None:
            raise AssertionError(f"connection closed (code {self.close_code}) before a {name} event")
        return found["payload"]

    def wait_invocations(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.invocations) >= count, timeout):
                raise AssertionError(f"{len(self.invocations)} of {count} invocations within {timeout}s")
            return list(self.invocations)

    def call(self, method: str, params: Any = None, timeout: float = 5.0) -> Any:
        """Send a request as the node; returns the payload or raises NodeCallError."""
        rid = str(uuid.uuid4())
        self._send({"type": "req", "id": rid, "method": method, "params": params})
        with self._cond:
            if not self._cond.wait_for(lambda: rid in self._replies or self.closed, timeout):
                raise AssertionError(f"no reply to {method} within {timeout}s")
            reply = self._replies.pop(rid, None)
        if reply is None:
            raise AssertionError(f"connection closed (code {self.close_code}) before the reply to {method}")
        if not reply.get("ok"):
            raise NodeCallError(reply.get("error") or {})
        return reply.get("payload")

    @property
    def closed(self) -> bool:
        return self.close_code is not None or self._closed

    # -- internals ------------------------------------------------------------------------------

    def _send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None, "connect() first"
        self.ws.send(json.dumps(frame))

    def _read_loop(self) -> None:
        assert self.ws is not None
        try:
            for data in self.ws:
                frame = json.loads(data)
                kind = frame.get("type")
                with self._cond:
                    if kind == "event":
                        self.events.append({"event": frame.get("event"), "payload": frame.get("payload")})
                        if frame.get("event") == "node.invoke.request":
                            self.invocations.append(frame.get("payload") or {})
                            threading.Thread(
                                target=self._invoke, args=(frame.get("payload") or {},), daemon=True
                            ).start()
                    elif kind == "res":
                        self._replies[frame.get("id")] = frame
                    self._cond.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                code = self.ws.close_code
                self.close_code = code if code is not None else 1006
                self._cond.notify_all()

    def _invoke(self, req: dict[str, Any]) -> None:
        raw = req.get("paramsJSON")
        params = json.loads(raw) if isinstance(raw, str) else None
        result: dict[str, Any] = {"id": req.get("id"), "nodeId": req.get("nodeId")}
        try:
            payload = self.handler(str(req.get("command")), params)
            result.update(ok=True, payloadJSON=json.dumps(payload))
        except NodeInvokeError as exc:
            result.update(ok=False, error={"code": exc.code, "message": exc.message})
        if self.closed:
            return
        try:
            self.results.append({"id": req.get("id"), "reply": self.call("node.invoke.result", result)})
        except (NodeCallError, AssertionError, ConnectionClosed) as exc:
            self.results.append({"id": req.get("id"), "error": str(exc)})


def _code(exc: ConnectionClosed) -> int | None:
    return exc.rcvd.code if exc.rcvd is not None else None
