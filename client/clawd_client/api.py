"""The client side of the agent's control API, for the CLI and the tray (blocking sockets).

Why blocking sockets: the CLI does one request and exits, and the tray reads the state stream on
a worker thread; neither needs an event loop, and `clawd status` stays fast because importing
this module pulls in no asyncio, asyncssh or websockets.

`ensure_agent()` starts the agent when none runs: a detached `clawd agent --foreground` in its
own session (it outlives the command and the terminal), logging to the client state dir.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clawd_gateway.errors import UserError

from .agent.protocol import API_VERSION, EXIT_ALREADY_RUNNING, MAX_LINE, encode_request
from .engine import TunnelStatus
from .paths import agent_log, agent_socket

START_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 10.0


class AgentNotRunning(UserError):
    exit_code = 3

    def __init__(self, path: Path) -> None:
        super().__init__(f"the clawd agent is not running (no answer on {path})", fix="clawd agent")


class AgentRequestFailed(UserError):
    """The agent answered with an error; carries the API's code and the exit code it chose."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(str(error.get("message") or "the agent refused the request"), fix=error.get("fix"))
        self.code = str(error.get("code") or "error")
        self.exit_code = int(error.get("exit") or 1)


class AgentClient:
    def __init__(self, sock: socket.socket, path: Path) -> None:
        self.sock = sock
        self.path = path
        self._buf = b""
        self._next_id = 0
        self.pending_events: list[dict[str, Any]] = []
        self.closed = False  # the agent closed the connection (it stopped, or crashed)
        self.agent_stopping = False  # it said it is stopping on purpose (`shutdown`, SIGTERM)

    @classmethod
    def connect(cls, path: Path | None = None, timeout: float = REQUEST_TIMEOUT_S) -> AgentClient:
        path = path or agent_socket()
        if not hasattr(socket, "AF_UNIX"):
            raise UserError("the clawd agent is not available on this platform yet", fix="clawd connect NAME")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK):
                raise AgentNotRunning(path) from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise UserError(f"cannot open the agent's socket {path}: {exc.strerror}") from None
            raise AgentNotRunning(path) from None
        return cls(sock, path)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_line(self, timeout: float | None) -> dict[str, Any] | None:
        self.sock.settimeout(timeout)
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buf += chunk
            if len(self._buf) > 16 * MAX_LINE:
                raise UserError("the agent sent a line that is too long")
        line, self._buf = self._buf.split(b"\n", 1)
        data = json.loads(line)
        return data if isinstance(data, dict) else None

    def request(self, op: str, *, reply_within: float = REQUEST_TIMEOUT_S, **params: Any) -> dict[str, Any]:
        """One request, its reply; events that arrive meanwhile are kept for `events()`."""
        self._next_id += 1
        rid = self._next_id
        timeout = reply_within
        self.sock.settimeout(timeout)
        gone = UserError("the clawd agent closed the connection (it may be stopping)", fix="try again")
        try:
            self.sock.sendall(encode_request(op, rid, **params))
        except OSError:
            raise gone from None
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self._read_line(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                raise UserError(f"the clawd agent did not answer '{op}' within {timeout:g}s") from None
            except (OSError, ValueError):  # reset mid-reply, or not our protocol
                raise gone from None
            if msg is None:
                raise gone
            if "event" in msg:
                self.pending_events.append(msg)
                continue
            if msg.get("id") != rid:
                continue
            if not msg.get("ok"):
                raise AgentRequestFailed(msg.get("error") or {})
            return msg

    def statuses(self, names: tuple[str, ...] = ()) -> list[TunnelStatus]:
        reply = self.request("status", profiles=list(names))
        return [TunnelStatus.from_json(t) for t in reply.get("tunnels") or []]

    def subscribe(self) -> list[TunnelStatus]:
        """Start the state stream; returns the current states (events follow from `events()`)."""
        reply = self.request("subscribe")
        return [TunnelStatus.from_json(t) for t in reply.get("tunnels") or []]

    def events(self, timeout: float | None = None) -> Iterator[TunnelStatus]:
        """State changes as they come. Ends on `timeout` idle (`closed` stays False), or when the
        agent goes away (`closed`; `agent_stopping` too when it said it stops on purpose)."""
        while True:
            while self.pending_events:
                queued = self.pending_events.pop(0)
                if queued.get("event") == "stopping":
                    self.agent_stopping = True
                    continue
                yield TunnelStatus.from_json(queued.get("tunnel") or {})
            msg: dict[str, Any] | None
            try:
                msg = self._read_line(timeout)
            except TimeoutError:
                return
            except OSError:
                msg = None
            if msg is None:
                self.closed = True
                return
            if msg.get("event") == "stopping":
                self.agent_stopping = True
            elif msg.get("event") == "state":
                yield TunnelStatus.from_json(msg.get("tunnel") or {})


def running(path: Path | None = None) -> AgentClient | None:
    """A connection to the running agent, or None when none runs."""
    try:
        return AgentClient.connect(path)
    except AgentNotRunning:
        return None


def start_agent(path: Path | None = None, timeout: float = START_TIMEOUT_S) -> tuple[AgentClient, int]:
    """Start a detached agent and wait until it answers; (client, pid)."""
    path = path or agent_socket()
    log_path = agent_log()
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        if log_path.stat().st_size > 1024 * 1024:
            log_path.replace(log_path.with_suffix(".log.1"))
    deadline = time.monotonic() + timeout
    proc = _spawn(log_path)
    while time.monotonic() < deadline:
        client = running(path)
        if client is not None:
            return client, proc.pid
        if proc.poll() is not None:
            client = running(path)  # lost a start race to another agent: use that one
            if client is not None:
                return client, proc.pid
            if proc.returncode != EXIT_ALREADY_RUNNING:
                tail = _tail(log_path)
                why = f"the clawd agent exited at start (code {proc.returncode})"
                raise UserError(
                    why + (f": {tail}" if tail else ""),
                    fix=f"see {log_path}, or run it in the foreground: clawd agent --foreground",
                )
            # Another agent still holds the lock (`clawd agent --stop` just before): once it has
            # let go, start ours.
            time.sleep(0.1)
            proc = _spawn(log_path)
            continue
        time.sleep(0.05)  # the socket appears once the agent listens; nothing to wait on but it
    raise UserError(f"the clawd agent did not answer on {path} within {timeout:g}s", fix=f"see {log_path}")


def _spawn(log_path: Path) -> subprocess.Popen[bytes]:
    """`clawd agent --foreground`, detached in its own session, logging to `log_path`."""
    # The gateway-secret variables of this shell would apply to every profile for the agent's
    # whole life (and differ from an agent started at login): the agent reads the keyring only.
    from clawd_gateway.secret_sources import SECRET_VARS

    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARS}
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "clawd_client", "agent", "--foreground"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,  # outlives this command, its terminal and its Ctrl-C
            close_fds=True,
            cwd="/",
        )
    finally:
        os.close(fd)


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def ensure_agent(path: Path | None = None) -> AgentClient:
    """The running agent, started first when none runs."""
    client = running(path)
    if client is not None:
        return client
    return start_agent(path)[0]


__all__ = [
    "API_VERSION",
    "AgentClient",
    "AgentNotRunning",
    "AgentRequestFailed",
    "ensure_agent",
    "running",
    "start_agent",
]
