"""Running the agent: one per user, refusing to start beside another, until a signal or `shutdown`.

Why an OS lock beside the socket: the socket file alone cannot tell a live agent from a dead one's
leftover; the kernel drops the lock when the agent dies however it dies, so a crash never blocks
the next start, and a second agent is refused with the first one's pid and socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time

from clawd_gateway.errors import UserError

from .. import __version__
from ..engine import AlreadyRunning, InstanceLock
from ..paths import agent_socket, runtime_dir
from .host import AgentHost
from .protocol import API_VERSION, EXIT_ALREADY_RUNNING
from .server import ControlServer

log = logging.getLogger("clawd.agent")


class AgentRunning(UserError):
    """A second agent for the same user."""

    exit_code = EXIT_ALREADY_RUNNING

    def __init__(self, pid: int | None, socket: str) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"a clawd agent is already running ({who}, socket {socket})",
            fix="use it (clawd status), or stop it first: clawd agent --stop",
        )


def _lock() -> InstanceLock:
    directory = runtime_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    lock = InstanceLock("agent", directory=directory)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        raise AgentRunning(exc.pid, str(agent_socket())) from None
    return lock


IO_THREADS = 4  # keyring reads and wake samples (asyncio.to_thread); a few tunnels at a time


async def _fixed_io_threads() -> None:
    """A named pool of IO_THREADS threads, all started now: asyncio's default pool adds a thread
    whenever none is idle and never retires one, so an agent that runs for weeks would show its
    thread count creeping up to the pool's limit; this way it is the same from the first minute."""
    from concurrent.futures import ThreadPoolExecutor

    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="clawd-io")
    loop.set_default_executor(pool)
    started = threading.Barrier(IO_THREADS)
    await asyncio.gather(*(loop.run_in_executor(pool, started.wait) for _ in range(IO_THREADS)))


async def serve(loop_name: str = "asyncio") -> int:
    lock = _lock()
    try:
        await _fixed_io_threads()
        host = AgentHost()
        path = agent_socket()
        info = {
            "pid": os.getpid(),
            "version": __version__,
            "api": API_VERSION,
            "socket": str(path),
            "started": time.time(),
            "loop": loop_name,
        }
        server = ControlServer(host, path, info=info)
        await server.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, server.stopping.set)
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, lambda: None)  # a closed terminal is no reason to stop
        log.info(
            "clawd agent %s listening on %s (pid %d, %s loop)", __version__, path, os.getpid(), loop_name
        )
        restored = await host.restore()
        if restored:
            log.info("brought back up: %s", ", ".join(restored))
        await server.stopping.wait()
        log.info("stopping: %d tunnel(s) down", len(host.tunnels))
        await server.close()
        await host.close()
    finally:
        lock.release()
    return 0


def run_foreground() -> int:
    logging.basicConfig(
        level=logging.INFO if not os.environ.get("CLAWD_DEBUG") else logging.DEBUG,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    choice = os.environ.get("CLAWD_LOOP", "auto").strip().lower() or "auto"
    if choice not in ("auto", "uvloop", "asyncio"):
        raise UserError(f"CLAWD_LOOP={choice!r}: use auto, uvloop or asyncio")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise UserError(
                    "CLAWD_LOOP=uvloop, but uvloop is not installed (pip install 'clawd[fast]')"
                ) from None
        else:
            # uvloop's event loop (libuv) takes asyncio's per-event cost out of every splice
            # callback: measured in bench/tunnel_bench.py's "clawd uvloop" column.
            return int(uvloop.run(serve("uvloop")))
    return asyncio.run(serve())


__all__ = ["EXIT_ALREADY_RUNNING", "AgentRunning", "run_foreground", "serve"]
