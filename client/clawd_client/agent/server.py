"""The agent's control socket: a Unix socket in the user's runtime dir, same uid only.

Why both a 0600 socket in a 0700 directory *and* a peer-credential check: the file modes keep
other accounts out where the filesystem honours them, and SO_PEERCRED (Linux) / getpeereid
(BSD, macOS) proves who connected even where it does not (a runtime dir created by someone
else, a bind-mounted path, root's clients). A connection from another uid is closed before a
single request is read. Windows would use loopback TCP with a token file; not built yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import stat
import struct
import sys
from pathlib import Path
from typing import Any

from clawd_gateway.errors import UserError

from ..engine import TunnelStatus
from . import protocol as p
from .host import AgentError, AgentHost

log = logging.getLogger("clawd.agent")


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket, or None if the OS won't say."""
    if sys.platform == "linux":
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        uid: int | None = int(struct.unpack("3i", creds)[1])
    else:  # macOS / BSD: struct xucred { u_int version; uid_t uid; ... } at level SOL_LOCAL (0)
        local_peercred = getattr(socket, "LOCAL_PEERCRED", None)
        uid = None
        if local_peercred is not None:
            uid = int(struct.unpack_from("2I", sock.getsockopt(0, local_peercred, 256))[1])
    return uid


class ControlServer:
    def __init__(self, host: AgentHost, path: Path, *, info: dict[str, Any]) -> None:
        self.host = host
        self.path = path
        self.info = info
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._subscribers: set[asyncio.StreamWriter] = set()
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = directory.lstat()
        if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
            raise UserError(
                f"{directory} is a symlink or belongs to another user: no agent socket goes there",
                fix="set CLAWD_RUNTIME_DIR to a directory of your own",
            )
        os.chmod(directory, 0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a leftover of a dead agent: the single-instance lock is held by us
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._accept, path=str(self.path), limit=p.MAX_LINE
            )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._serve(reader, writer))
        self._conns.add(task)
        task.add_done_callback(self._conns.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            uid = peer_uid(sock) if sock is not None else None
        except OSError:
            uid = None
        if uid != os.getuid():
            log.warning("refused a control connection from uid %s", uid)
            writer.close()
            return
        unsubscribe = None
        try:
            while True:
                try:
                    line = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    writer.write(p.error_reply(0, "protocol", f"request longer than {p.MAX_LINE} bytes"))
                    break
                if not line:
                    break
                try:
                    req = p.parse_request(line)
                except p.ProtocolError as exc:
                    writer.write(p.error_reply(0, "protocol", str(exc), exit_code=2))
                    await writer.drain()
                    continue
                if req.op == "subscribe" and unsubscribe is None:
                    unsubscribe = self.host.subscribe(functools.partial(_push, writer))
                    self._subscribers.add(writer)
                writer.write(await self._answer(req))
                await writer.drain()
                if req.op == "shutdown":
                    self.stopping.set()
        except (ConnectionError, OSError):
            pass
        finally:
            if unsubscribe is not None:
                unsubscribe()
                self._subscribers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(self, req: p.Request) -> bytes:
        try:
            return await self._dispatch(req)
        except AgentError as exc:
            return p.error_reply(req.id, exc.code, str(exc), exc.fix, exc.exit_code)
        except UserError as exc:
            return p.error_reply(req.id, "user", str(exc), exc.fix, int(exc.exit_code))
        except Exception as exc:  # the agent must outlive a bad request
            log.exception("request %s failed", req.op)
            return p.error_reply(req.id, "internal", f"{type(exc).__name__}: {exc}")

    async def _dispatch(self, req: p.Request) -> bytes:
        host = self.host
        if req.op == "hello":
            return p.reply(req.id, agent={**self.info, "profiles": sorted(host.tunnels)})
        if req.op in ("status", "subscribe"):
            return p.reply(req.id, tunnels=[s.to_json() for s in host.statuses(req.profiles)])
        if req.op == "up":
            names = await host.up(req.profiles, accept_new=req.accept_new, local_port=req.local_port)
            if req.wait:  # all together, within the one deadline the client was given
                settled = await asyncio.gather(*(host.wait_settled(n, req.timeout) for n in names))
            else:
                settled = [(host.statuses((n,))[0], 0) for n in names]
            results = [{"tunnel": st.to_json(), "exit": code} for st, code in settled]
            return p.reply(req.id, results=results)
        if req.op == "down":
            return p.reply(req.id, down=await host.down(req.profiles, req.all))
        if req.op == "reconnect":
            return p.reply(req.id, reconnecting=host.reconnect(req.profiles, req.accept_new))
        first = req.profiles[0] if req.profiles else None
        if req.op == "trust":
            return p.reply(req.id, trusted=host.trust(first, req.fingerprint))
        if req.op == "pin":
            return p.reply(req.id, pinned=host.pin(first, req.path))
        if req.op == "diagnose":
            return p.reply(req.id, report=await host.diagnose(first))
        if req.op == "shutdown":
            return p.reply(req.id, stopping=True)
        raise AgentError("protocol", f"unknown op {req.op}")  # parse_request already refused it

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._subscribers):  # say so before the stream just ends
            with contextlib.suppress(Exception):
                writer.write(p.stopping_event())
                await asyncio.wait_for(writer.drain(), 1)
        for task in list(self._conns):
            task.cancel()
        for task in list(self._conns):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _push(writer: asyncio.StreamWriter, status: TunnelStatus) -> None:
    """Queue one state event; a subscriber that stops reading is cut off rather than buffered."""
    if writer.is_closing():
        return
    transport = writer.transport
    if transport.get_write_buffer_size() > 1024 * 1024:
        writer.close()
        return
    writer.write(p.event(status.to_json()))


__all__ = ["ControlServer", "peer_uid"]
