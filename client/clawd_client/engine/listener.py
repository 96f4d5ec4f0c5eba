"""The local listeners a tunnel owns from `up` to `down`: accept, hold while the path is down, splice.

Why the agent keeps its own listener instead of asking asyncssh (or the old relay) to listen:
a forward that is torn down and rebuilt on every reconnect closes the port for the length of the
outage, so every client that connects meanwhile gets "connection refused" and any other process
can take the port. Here the port stays bound across reconnects; the path only supplies an
*opener* (a direct-tcpip channel on the current SSH connection, or a TCP/TLS connection to the
tailnet or direct gateway). A client that arrives while there is no opener, or while the opener
fails, is held: what it sends is kept in order (engine/splice.py), so its bytes can be neither
lost nor reordered, and it is spliced through as soon as a working opener exists. Past the hold
deadline it is closed (hold 0 refuses at once: closes right after accept).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

from .splice import CHUNK, Attachable, Half, Opener, Reader, Writer, _Client, describe, pump

log = logging.getLogger("clawd.listener")

RETRY_MIN_S = 0.1  # an opener that fails (e.g. the gateway restarting behind a live SSH link)
RETRY_MAX_S = 1.0  # is retried with a short backoff until the hold deadline
# Held connections are let through a few at a time when a path comes back. A gateway counts
# unauthenticated sockets per address (behind a tunnel they all share one: OpenClaw's and ours
# allow 32), so a herd of handshakes released at once after an outage is refused there (HTTP
# 503). What must be bounded is how many released clients are *in their handshake at once*,
# not a release rate: a rate (the first version: 16 per 100 ms) still overflowed the cap once
# the gateway leg's round trip neared 200 ms, because each client then sat in pre-auth longer.
# So a released client holds one of RELEASE_SLOTS until its upstream has answered twice, each
# answer after the client spoke (the gateway: 101 + challenge, then the connect response, by
# which time its pre-auth slot is free), or until it ends, or SLOT_MAX_S for protocols that
# do not take turns. Clients that never had to wait take no slot.
RELEASE_SLOTS = 24  # of the 32 a gateway allows per address: room is left for clients that never waited
SLOT_TURNS = 2
SLOT_MAX_S = 1.0


class HeldListener:
    """127.0.0.1:PORT (and [::1]:PORT when the host has IPv6 loopback), bound until `close()`."""

    def __init__(self, hold_s: float = 30.0) -> None:
        self.hold_s = hold_s
        self.port = 0
        self.last_error: str | None = None  # why the latest upstream open failed, for the status
        self.held = 0  # connections waiting for a path right now
        self.active = 0  # connections spliced through right now
        self.expired = 0  # connections closed because no path came back within hold_s
        self.spliced = 0  # connections ever spliced through
        self._opener: Opener | None = None
        self._label = "upstream"
        self._slots = asyncio.Semaphore(RELEASE_SLOTS)
        self._changed = asyncio.Event()
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._clients: set[_Client] = set()
        self.on_open_failed: Callable[[str], None] | None = None

    @property
    def bound(self) -> bool:
        return bool(self._servers)

    async def bind(self, port: int) -> int:
        """Raises OSError when 127.0.0.1:port is taken (the port guard runs before this)."""
        loop = asyncio.get_running_loop()
        first = await loop.create_server(lambda: _Client(self), "127.0.0.1", port)
        self._servers.append(first)
        self.port = int(first.sockets[0].getsockname()[1])
        with contextlib.suppress(OSError):
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(("::1", self.port))
            except OSError:
                sock.close()
                raise
            self._servers.append(await loop.create_server(lambda: _Client(self), sock=sock))
        return self.port

    def set_opener(self, opener: Opener | None, label: str = "upstream") -> None:
        """A path came up (or went down): held connections retry at once with the new opener.
        `label` names what the opener dials, for the error a failed open leaves in `last_error`."""
        self._opener = opener
        self._label = label
        if opener is not None:
            self.last_error = None
        self._changed.set()
        self._changed = asyncio.Event()

    def _spawn(self, client: _Client) -> None:
        task = asyncio.ensure_future(self._handle(client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wait_change(self, changed: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)

    async def _upstream(self) -> tuple[tuple[Any, Any], bool] | None:
        """An open upstream for one client and whether it holds a release slot (it was held),
        or None once its hold deadline has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hold_s
        delay = RETRY_MIN_S
        holding = False
        try:
            while True:
                opener, changed = self._opener, self._changed
                if opener is not None:
                    if holding:
                        await self._slots.acquire()
                        # The queue for a slot can take a while: the path may have gone (or
                        # changed) meanwhile, and the hold deadline still applies.
                        opener, changed = self._opener, self._changed
                        if opener is None or loop.time() >= deadline:
                            self._slots.release()
                            if opener is not None:
                                return None
                            continue
                    try:
                        return await opener(), holding
                    except BaseException as exc:
                        if holding:
                            self._slots.release()
                        if not isinstance(exc, Exception):
                            raise
                        self.last_error = f"{self._label}: {describe(exc)}"
                        if self.on_open_failed is not None:
                            self.on_open_failed(self.last_error)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                if not holding:
                    holding = True
                    self.held += 1
                if opener is None:
                    await self._wait_change(changed, remaining)
                else:  # the path is up but the open failed: retry soon, or at once on a new path
                    await self._wait_change(changed, min(delay, remaining))
                    delay = min(RETRY_MAX_S, delay * 2)
        finally:
            if holding:
                self.held -= 1

    def _slot_releaser(self, client: _Client) -> Callable[[], None]:
        """Frees a released client's slot once: after SLOT_TURNS answers, at SLOT_MAX_S, or at
        its end, whichever comes first."""
        freed = False

        def free() -> None:
            nonlocal freed
            if not freed:
                freed = True
                timer.cancel()
                client.on_turn = None
                self._slots.release()

        def on_turn(turns: int) -> None:
            if turns >= SLOT_TURNS:
                free()

        timer = asyncio.get_running_loop().call_later(SLOT_MAX_S, free)
        client.on_turn = on_turn
        return free

    async def _handle(self, client: _Client) -> None:
        self._clients.add(client)
        up_writer: Any = None
        free_slot: Callable[[], None] | None = None
        opening = asyncio.ensure_future(self._upstream())
        taken = False  # the open's result is ours to close (through up_writer / free_slot)
        try:
            await asyncio.wait({opening, client.done}, return_when=asyncio.FIRST_COMPLETED)
            if not opening.done():  # the client gave up while held: stop waiting for it
                opening.cancel()
                await asyncio.wait({opening})  # an opener may finish anyway: then it is discarded
                return
            opened = opening.result()
            if opened is None:
                self.expired += 1
                return
            taken = True
            (up_reader, up_writer), slotted = opened
            if slotted:
                free_slot = self._slot_releaser(client)
            self.spliced += 1
            self.active += 1
            try:
                if client.done.done():  # the client left while held: nothing to splice
                    return
                attach = getattr(up_reader, "attach", None)
                if attach is not None:
                    up_writer = attach(client)
                    client.attach(up_writer)
                    client.resume_reading()
                    await client.done
                else:
                    reader, writer = client.as_stream()
                    client.resume_reading()
                    await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
            finally:
                self.active -= 1
        finally:
            if not opening.done():  # this task was cancelled (listener.close) mid-open
                opening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({opening})
            if not taken:
                self._discard(opening)
            if free_slot is not None:
                free_slot()
            self._clients.discard(client)
            client.close()
            if up_writer is not None:
                with contextlib.suppress(Exception):
                    up_writer.close()

    def _discard(self, opening: asyncio.Future[tuple[tuple[Any, Any], bool] | None]) -> None:
        """An upstream that was opened for a client no longer there: close it, free its slot."""
        if not opening.done() or opening.cancelled() or opening.exception() is not None:
            return
        opened = opening.result()
        if opened is None:
            return
        (_, writer), slotted = opened
        with contextlib.suppress(Exception):
            writer.close()
        if slotted:
            self._slots.release()

    async def close(self) -> None:
        """Unbind and end every connection, held or spliced."""
        for server in self._servers:
            server.close()
        for c in list(self._clients):
            with contextlib.suppress(Exception):
                c.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self._servers.clear()


__all__ = ["CHUNK", "Attachable", "Half", "HeldListener", "Opener", "Reader", "Writer", "describe", "pump"]
