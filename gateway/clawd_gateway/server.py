"""The asyncio/websockets adapter: sockets in, protocol state machine, methods, sockets out.

Everything that decides something lives elsewhere (protocol/, auth.py, http.py, methods/);
this module moves bytes, keeps the connection table, and runs the timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import http
import inspect
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse

from . import __version__
from .auth import AuthDenied, Authenticator, client_key
from .bind import is_loopback
from .errors import UserError
from .http import RouteContext, origin_allowed, route
from .log import log
from .loopmon import LoopMonitor
from .methods import EVENTS, METHODS, MethodError
from .nodes import NodeHub
from .ports import listeners
from .presence import ClientRecord, self_entry
from .protocol import server as proto
from .protocol.constants import (
    CLOSE_POLICY,
    CLOSE_SERVICE_RESTART,
    MAX_BUFFERED_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_PREAUTH_CONNECTIONS_PER_IP,
    MAX_PREAUTH_PAYLOAD_BYTES,
    DetailCode,
    ErrorCode,
)
from .protocol.frames import ErrorShape, encode, event, res_error, res_ok
from .protocol.scopes import authorize, satisfies
from .settings import Settings
from .tailscale.identity import TailscaleIdentity, proxied_client

FORWARD_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip")
MAX_CONSECUTIVE_DENIALS = 10
# Unauthenticated sockets of all Serve/Funnel clients together, in multiples of the per-client cap:
# each forwarded address has its own slots, and this bounds what rotating (forged) addresses can hold.
PREAUTH_PROXIED_FACTOR = 4
MAX_PREAUTH_PROXIED = PREAUTH_PROXIED_FACTOR * MAX_PREAUTH_CONNECTIONS_PER_IP


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Conn:
    ws: ServerConnection
    machine: proto.ServerConnection
    remote: str
    direct_local: bool
    forwarded: str | None = None  # the Serve/Funnel client behind a loopback socket (Gateway._forwarded)
    record: ClientRecord | None = None
    preauth: bool = True
    denials: int = 0
    calls: set[asyncio.Task[None]] = field(default_factory=set)  # awaiting handlers (node.invoke)

    @property
    def slot(self) -> str:
        """Whose pre-auth slot this socket holds: an IP, or `fwd:<client>` behind Serve/Funnel."""
        return client_key(self.remote, self.forwarded)


class Gateway:
    """One running gateway: listeners, connections, presence, ticks."""

    def __init__(self, settings: Settings, logger: logging.Logger | None = None) -> None:
        self.settings = settings
        self.logger = logger or logging.getLogger("clawd.gateway")
        self.authenticator = Authenticator(settings)
        self.tailscale_identity = TailscaleIdentity.for_settings(settings, self.logger)
        self.instance_id = str(uuid.uuid4())
        self.started_ms = _now_ms()
        self._t0 = time.monotonic()
        self._conns: dict[str, _Conn] = {}
        # Authenticated clients, and the tracked ones among them (presence): every hello-ok
        # carries presence and a client count, so neither may cost a walk over all sockets.
        self._records: dict[str, ClientRecord] = {}
        self._tracked: dict[str, ClientRecord] = {}
        self._preauth: Counter[str] = Counter()  # unauthenticated sockets per auth.client_key
        self._preauth_proxied = 0  # ... of which came through Serve/Funnel (capped at MAX_PREAUTH_PROXIED)
        self._servers: list[Server] = []
        self._seq = 0
        self._presence_version = 1
        self._health_version = 1
        self._tick_task: asyncio.Task[None] | None = None
        self._identity: dict[str, str] | None = None
        self._background: set[asyncio.Future[None]] = set()
        self._loopmon = LoopMonitor()
        self.ready = False
        self.stopping = False
        self.port: int = settings.port
        self.listening: list[str] = []
        self.nodes = NodeHub(
            settings.state_dir,
            emit=self._emit_scoped,
            send_to=self._send_event_to,
            logger=logging.getLogger("clawd.nodes"),
        )

    # -- views for methods ---------------------------------------------------------------------

    def uptime_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000)

    def clients(self) -> list[ClientRecord]:
        return list(self._records.values())

    def client_count(self) -> int:
        return len(self._records)

    def presence(self) -> list[dict[str, Any]]:
        ip = self.settings.bind.hosts[0]
        entries = [self_entry(self.instance_id, self.started_ms, ip)]
        entries += [r.presence_entry() for r in self._tracked.values()]
        return entries

    def state_version(self) -> dict[str, int]:
        return {"presence": self._presence_version, "health": self._health_version}

    def event_loop(self) -> dict[str, Any]:
        return self._loopmon.summary()

    def identity(self) -> dict[str, str]:
        if self._identity is None:
            from .identity import load_or_create_identity  # cryptography: only when asked

            self._identity = load_or_create_identity(self.settings.state_dir)
        return dict(self._identity)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        hosts = list(self.settings.bind.hosts)
        port = self.settings.port
        first = await self._listen(hosts[0], port, required=True)
        assert first is not None
        self._servers.append(first)
        port = first.sockets[0].getsockname()[1]
        self.port = port
        self.listening.append(hosts[0])
        for host in hosts[1:]:
            srv = await self._listen(host, port, required=False)
            if srv is not None:
                self._servers.append(srv)
                self.listening.append(host)
        self._tick_task = asyncio.create_task(self._tick_loop(), name="clawd-tick")
        self._loopmon.start()
        self.ready = True
        log(
            self.logger,
            logging.INFO,
            "gateway listening",
            port=port,
            hosts=",".join(self.listening),
            auth=self.settings.auth_mode,
            bind=self.settings.bind.mode,
        )

    async def _listen(self, host: str, port: int, *, required: bool) -> Server | None:
        attempts = 4 if required and port else 1
        for attempt in range(attempts):
            try:
                server: Server = await serve(
                    self._handle,
                    host,
                    port,
                    process_request=self._process_request,
                    max_size=MAX_PREAUTH_PAYLOAD_BYTES,
                    compression=None,
                    open_timeout=self.settings.handshake_timeout_ms / 1000,
                    server_header=f"clawd-gateway/{__version__}",
                    logger=logging.getLogger("clawd.websockets"),
                )
                return server
            except OSError as exc:
                in_use = exc.errno == errno.EADDRINUSE
                if in_use and attempt + 1 < attempts:
                    await asyncio.sleep(0.5)
                    continue
                if not required:
                    log(
                        self.logger,
                        logging.WARNING,
                        "extra listener skipped",
                        host=host,
                        port=port,
                        error=exc.strerror or str(exc),
                    )
                    return None
                if in_use:
                    holders = listeners(port)
                    who = "; ".join(h.describe() for h in holders) or "another process"
                    raise UserError(
                        f"port {port} on {host} is already in use by {who}",
                        fix=f"stop that process, or start on another port: clawd-gateway --port {port + 1}",
                    ) from None
                if exc.errno == errno.EADDRNOTAVAIL:
                    raise UserError(
                        f"cannot listen on {host}: that address does not belong to this machine",
                        fix="check gateway.customBindHost / --host",
                    ) from None
                if exc.errno == errno.EACCES:
                    raise UserError(
                        f"permission denied listening on {host}:{port}",
                        fix="ports below 1024 need privileges; use the default 18789",
                    ) from None
                raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        return None

    async def stop(self, reason: str = "gateway stopping") -> None:
        if self.stopping:
            return
        self.stopping = True
        self.ready = False
        log(self.logger, logging.INFO, "gateway stopping", reason=reason, clients=len(self.clients()))
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
        await self._loopmon.stop()
        self._broadcast(event("shutdown", {"reason": reason}, seq=self._next_seq()))
        for server in self._servers:
            server.close(close_connections=False)
        closers = [c.ws.close(CLOSE_SERVICE_RESTART, "service restart") for c in list(self._conns.values())]
        if closers:
            await asyncio.wait([asyncio.ensure_future(x) for x in closers], timeout=5)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), timeout=5)
        log(self.logger, logging.INFO, "gateway stopped")

    # -- HTTP ----------------------------------------------------------------------------------

    def _forwarded(self, remote: str, headers: Headers) -> str | None:
        """The client tailscaled's Serve/Funnel proxy named, in serve/funnel mode only.

        Behind Serve every client's socket comes from 127.0.0.1, so per-peer limits (auth failures,
        pre-auth sockets) would let one tailnet or Funnel client lock out all of them.
        """
        if self.settings.tailscale_mode not in ("serve", "funnel"):
            return None
        return proxied_client(remote, headers)

    def _process_request(self, connection: ServerConnection, request: HttpRequest) -> HttpResponse | None:
        remote = _remote_ip(connection)
        headers = request.headers
        if any("websocket" in v.lower() for v in headers.get_all("Upgrade")):
            if self.stopping:
                return _response(503, {"Content-Type": "text/plain"}, b"gateway is shutting down\n")
            # Checked here, taken in _handle: websockets runs the handler without yielding to other
            # connections in between (only a socket that is already closing yields there).
            forwarded = self._forwarded(remote, headers)
            slot = client_key(remote, forwarded)
            shared_full = forwarded is not None and self._preauth_proxied >= MAX_PREAUTH_PROXIED
            if shared_full or self._preauth[slot] >= MAX_PREAUTH_CONNECTIONS_PER_IP:
                log(
                    self.logger,
                    logging.WARNING,
                    "too many unauthenticated sockets",
                    remote=remote,
                    **({"forwarded": forwarded} if forwarded else {}),
                    **({"limit": "all proxied clients"} if shared_full else {}),
                )
                return _response(503, {"Content-Type": "text/plain"}, b"Too many unauthenticated sockets\n")
            return None
        ctx = RouteContext(
            ready=self.ready,
            uptime_ms=self.uptime_ms(),
            local_caller=_direct_local(remote, headers),
            ui_enabled=self.settings.control_ui_enabled,
            base_path=self.settings.control_ui_base_path,
        )
        reply = route(getattr(request, "method", "GET"), request.path, ctx)
        return _response(reply.status, reply.headers, reply.body)

    # -- WebSocket -----------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        remote = _remote_ip(ws)
        conn_id = str(uuid.uuid4())
        machine = proto.ServerConnection(nonce=str(uuid.uuid4()), now_ms=_now_ms())
        headers = ws.request.headers if ws.request else Headers()
        conn = _Conn(ws, machine, remote, _direct_local(remote, headers), self._forwarded(remote, headers))
        self._conns[conn_id] = conn
        self._preauth[conn.slot] += 1
        if conn.forwarded is not None:
            self._preauth_proxied += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.handshake_timeout_ms / 1000
        try:
            await self._perform(conn, conn_id, machine.start())
            while machine.state is not proto.ConnState.CLOSED:
                if machine.state is proto.ConnState.OPEN:
                    data = await ws.recv()
                    actions = machine.receive(data)
                else:
                    remaining = deadline - loop.time()
                    try:
                        data = await asyncio.wait_for(ws.recv(), max(remaining, 0))
                    except asyncio.TimeoutError:
                        log(
                            self.logger,
                            logging.INFO,
                            "handshake timeout",
                            remote=remote,
                            conn=conn_id,
                            **({"forwarded": conn.forwarded} if conn.forwarded else {}),
                        )
                        actions = machine.handshake_expired()
                    else:
                        actions = machine.receive(data)
                await self._perform(conn, conn_id, actions)
        except ConnectionClosed:
            machine.peer_closed()
        finally:
            self._release_preauth(conn)
            self._conns.pop(conn_id, None)
            self._records.pop(conn_id, None)
            self._tracked.pop(conn_id, None)
            for task in list(conn.calls):
                task.cancel()
            self.nodes.detach(conn_id)
            if conn.record is not None:
                log(
                    self.logger,
                    logging.INFO,
                    "client disconnected",
                    conn=conn_id,
                    client=conn.record.client_id,
                    mode=conn.record.mode,
                    remote=remote,
                    code=ws.close_code,
                )
                if conn.record.tracked and not self.stopping:
                    self._presence_changed()

    def _release_preauth(self, conn: _Conn) -> None:
        if conn.preauth:
            conn.preauth = False
            slot = conn.slot
            self._preauth[slot] -= 1
            if self._preauth[slot] <= 0:
                del self._preauth[slot]
            if conn.forwarded is not None:
                self._preauth_proxied -= 1

    async def _perform(self, conn: _Conn, conn_id: str, actions: list[proto.Action]) -> None:
        for action in actions:
            if isinstance(action, proto.Send):
                await conn.ws.send(encode(action.frame))
            elif isinstance(action, proto.Close):
                log(
                    self.logger,
                    logging.INFO,
                    "closing connection",
                    conn=conn_id,
                    remote=conn.remote,
                    code=action.code,
                    reason=action.reason,
                )
                await conn.ws.close(action.code, action.reason)
            elif isinstance(action, proto.ConnectRequested):
                await self._perform(conn, conn_id, await self._connect(conn, conn_id, action))
            elif isinstance(action, proto.RequestReceived):
                await self._dispatch(conn, conn_id, action)

    async def _connect(self, conn: _Conn, conn_id: str, req: proto.ConnectRequested) -> list[proto.Action]:
        machine = conn.machine
        params = req.params
        headers = conn.ws.request.headers if conn.ws.request else Headers()
        origins, hosts = headers.get_all("Origin"), headers.get_all("Host")
        origin = origins[0] if origins else None
        if (
            len(origins) > 1
            or len(hosts) > 1
            or not origin_allowed(
                origin, hosts[0] if hosts else None, self.settings.allowed_origins, tuple(self.listening)
            )
        ):
            log(
                self.logger,
                logging.WARNING,
                "origin refused",
                conn=conn_id,
                remote=conn.remote,
                origin=origin,
            )
            return machine.reject(
                ErrorShape(
                    ErrorCode.INVALID_REQUEST,
                    "origin not allowed (open the Control UI from the gateway host or allow it in "
                    "gateway.controlUi.allowedOrigins)",
                    details={
                        "code": DetailCode.CONTROL_UI_ORIGIN_NOT_ALLOWED,
                        "reason": "origin not allowed",
                    },
                )
            )
        ts_user = await self.tailscale_identity.verify(
            params.auth, conn.remote, headers, conn_id, (conn.ws.remote_address, conn.ws.local_address)
        )
        # Behind Serve/Funnel every client is 127.0.0.1: count failures per forwarded client instead.
        forwarded = conn.forwarded
        outcome = self.authenticator.authenticate(
            params,
            remote=conn.remote,
            loopback=conn.direct_local,
            nonce=machine.nonce,
            now_ms=_now_ms(),
            now_mono=time.monotonic(),
            tailscale_user=ts_user.login if ts_user else None,
            forwarded=forwarded,
        )
        if isinstance(outcome, AuthDenied):
            details = outcome.error.details or {}
            log(
                self.logger,
                logging.WARNING,
                "connect refused",
                conn=conn_id,
                remote=conn.remote,
                **({"forwarded": forwarded} if forwarded else {}),
                client=params.client.id,
                mode=params.client.mode,
                reason=details.get("code", outcome.error.code),
            )
            return machine.reject(outcome.error, outcome.close_code)
        refusal = self.nodes.admit(params, direct_local=conn.direct_local, remote=conn.remote)
        if refusal is not None:
            log(
                self.logger,
                logging.WARNING,
                "node connect refused",
                conn=conn_id,
                remote=conn.remote,
                reason=(refusal.details or {}).get("code", refusal.code),
            )
            return machine.reject(refusal)
        record = ClientRecord(
            conn_id=conn_id,
            client_id=params.client.id,
            mode=params.client.mode,
            platform=params.client.platform,
            version=params.client.version,
            remote=conn.remote,
            since_ms=_now_ms(),
            role=outcome.role,
            scopes=outcome.scopes,
            auth_method=outcome.method,
            display_name=params.client.display_name,
            device_family=params.client.device_family,
            instance_id=params.client.instance_id,
            device_id=outcome.device_id,
        )
        self._release_preauth(conn)
        conn.ws.protocol.max_message_size = MAX_PAYLOAD_BYTES
        actions = machine.accept(self._hello(conn_id, record, machine.protocol or 4))
        conn.record = record
        self._records[conn_id] = record
        if record.tracked:
            self._tracked[conn_id] = record
        self.nodes.attach(record, params)
        log(
            self.logger,
            logging.INFO,
            "client connected",
            conn=conn_id,
            client=record.client_id,
            mode=record.mode,
            remote=conn.remote,
            protocol=machine.protocol,
            auth=record.auth_method,
            scopes=",".join(record.scopes),
        )
        if record.tracked:
            self._presence_changed()
        return actions

    def _hello(self, conn_id: str, record: ClientRecord, protocol: int) -> dict[str, Any]:
        from .methods.health import health_summary

        hello: dict[str, Any] = {
            "type": "hello-ok",
            "protocol": protocol,
            "server": {"version": __version__, "connId": conn_id},
            "features": {"methods": sorted(METHODS), "events": list(EVENTS)},
            "snapshot": {
                "presence": self.presence(),
                "health": health_summary(self),
                "stateVersion": self.state_version(),
                "uptimeMs": self.uptime_ms(),
                "sessionDefaults": {
                    "defaultAgentId": "main",
                    "mainKey": "main",
                    "mainSessionKey": "agent:main:main",
                    "scope": "per-sender",
                },
            },
            "policy": {
                "maxPayload": MAX_PAYLOAD_BYTES,
                "maxBufferedBytes": MAX_BUFFERED_BYTES,
                "tickIntervalMs": self.settings.tick_interval_ms,
            },
        }
        if protocol >= 4:
            hello["auth"] = {"method": record.auth_method, "role": record.role, "scopes": list(record.scopes)}
        return hello

    async def _dispatch(self, conn: _Conn, conn_id: str, action: proto.RequestReceived) -> None:
        req = action.request
        record = conn.record
        assert record is not None
        handler = METHODS.get(req.method)
        if handler is None:
            frame = res_error(req.id, ErrorShape(ErrorCode.INVALID_REQUEST, f"unknown method: {req.method}"))
        else:
            denied = authorize(req.method, record.role, record.scopes)
            if denied is not None:
                conn.denials += 1
                await conn.ws.send(encode(res_error(req.id, denied)))
                if conn.denials > MAX_CONSECUTIVE_DENIALS:
                    await self._perform(
                        conn, conn_id, conn.machine.close(CLOSE_POLICY, "repeated unauthorized calls")
                    )
                return
            conn.denials = 0
            try:
                result = handler(self, record, req.params)
                if inspect.isawaitable(result):
                    # Waits on another peer (a node): run apart so this socket keeps being served.
                    task = asyncio.ensure_future(self._finish_call(conn, req.id, req.method, result))
                    conn.calls.add(task)
                    task.add_done_callback(conn.calls.discard)
                    return
                frame = res_ok(req.id, result)
            except MethodError as exc:
                frame = res_error(req.id, exc.error)
            except Exception:
                self.logger.exception("method %s failed", req.method)
                frame = res_error(
                    req.id, ErrorShape(ErrorCode.UNAVAILABLE, f"{req.method} failed: internal error")
                )
        await conn.ws.send(encode(frame))

    async def _finish_call(self, conn: _Conn, req_id: str, method: str, pending: Any) -> None:
        try:
            frame = res_ok(req_id, await pending)
        except MethodError as exc:
            frame = res_error(req_id, exc.error)
        except Exception:
            self.logger.exception("method %s failed", method)
            frame = res_error(req_id, ErrorShape(ErrorCode.UNAVAILABLE, f"{method} failed: internal error"))
        with contextlib.suppress(ConnectionClosed):
            await conn.ws.send(encode(frame))

    # -- broadcasts ----------------------------------------------------------------------------

    def _emit_scoped(self, name: str, payload: dict[str, Any], scope: str) -> None:
        self._broadcast(event(name, payload, seq=self._next_seq()), scope=scope)

    def _send_event_to(self, conn_id: str, name: str, payload: dict[str, Any]) -> bool:
        """A targeted event (no seq, as in the reference gateway); False if the socket is gone."""
        conn = self._conns.get(conn_id)
        if conn is None or conn.record is None or conn.machine.state is not proto.ConnState.OPEN:
            return False
        broadcast([conn.ws], encode(event(name, payload)))
        return True

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _presence_changed(self) -> None:
        self._presence_version += 1
        self._broadcast(
            event(
                "presence",
                {"presence": self.presence()},
                seq=self._next_seq(),
                state_version=self.state_version(),
            )
        )

    def _broadcast(self, frame: dict[str, Any], scope: str | None = None) -> None:
        """To every open connection; with `scope`, only to operators holding it (pairing events)."""
        targets: list[ServerConnection] = []
        for conn in list(self._conns.values()):
            if conn.record is None or conn.machine.state is not proto.ConnState.OPEN:
                continue
            if scope is not None and (
                conn.record.role != "operator" or not satisfies(conn.record.scopes, scope)
            ):
                continue
            transport = conn.ws.transport
            if transport is not None and transport.get_write_buffer_size() > MAX_BUFFERED_BYTES:
                conn.machine.close(CLOSE_POLICY, "slow consumer")
                task = asyncio.ensure_future(conn.ws.close(CLOSE_POLICY, "slow consumer"))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
                continue
            targets.append(conn.ws)
        if targets:
            broadcast(targets, encode(frame))

    async def _tick_loop(self) -> None:
        interval = self.settings.tick_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            self._broadcast(event("tick", {"ts": _now_ms()}, seq=self._next_seq()))


def _remote_ip(ws: ServerConnection) -> str:
    addr = ws.remote_address
    if isinstance(addr, tuple) and addr:
        return str(addr[0])
    return "unknown"


def _direct_local(remote: str, headers: Headers) -> bool:
    """Loopback socket and no proxy headers: a tunnel endpoint, not a proxied stranger."""
    if not is_loopback(remote):
        return False
    return not any(h in headers for h in FORWARD_HEADERS)


def _response(status: int, headers: dict[str, str], body: bytes) -> HttpResponse:
    h = Headers(headers)
    if "Content-Length" not in h:
        h["Content-Length"] = str(len(body))
    return HttpResponse(status, http.HTTPStatus(status).phrase, h, body)
