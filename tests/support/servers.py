"""Test helpers that start real servers: clawd-gateway in a thread or as a process.

`require(reason)` skips on a developer laptop when a real peer is missing, and fails instead
when CLAWD_REQUIRE_SERVERS=1 (set by .ci/run), so CI can never go green by skipping.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clawd_gateway.config import parse_config_text
from clawd_gateway.log import setup_logging
from clawd_gateway.server import Gateway
from clawd_gateway.settings import Overrides, Settings, resolve_settings

REQUIRE_ENV = "CLAWD_REQUIRE_SERVERS"


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1 turns this skip into a failure)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.01, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def make_settings(
    tmp_path: Path,
    config_text: str = "{}",
    env: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    full_env = {"HOME": str(tmp_path), "CLAWD_STATE_DIR": str(tmp_path / "state")}
    full_env.update(env or {})
    cfg = tmp_path / "openclaw.json"
    cfg.write_text(config_text)
    loaded = parse_config_text(config_text, cfg, full_env)
    overrides.setdefault("port", 0)
    return resolve_settings(Overrides(**overrides), env=full_env, loaded=loaded)


@dataclass
class RunningGateway:
    gateway: Gateway
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    settings: Settings

    @property
    def port(self) -> int:
        return self.gateway.port

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def token(self) -> str | None:
        return self.settings.token.value if self.settings.token else None

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call_soon(self, fn: Any, *args: Any) -> Any:
        async def _do() -> Any:
            return fn(*args)

        return self.run(_do())

    def stop(self) -> None:
        if self.loop.is_running():
            with contextlib.suppress(Exception):
                self.run(self.gateway.stop("test teardown"), timeout=15)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@contextlib.contextmanager
def gateway_in_thread(settings: Settings) -> Iterator[RunningGateway]:
    """A real Gateway on a real loopback socket, driven by its own event loop thread."""
    loop = asyncio.new_event_loop()
    gw = Gateway(settings, setup_logging("warning"))
    thread = threading.Thread(target=loop.run_forever, name="gateway-loop", daemon=True)
    thread.start()
    running = RunningGateway(gw, loop, thread, settings)
    try:
        running.run(gw.start())
        yield running
    finally:
        running.stop()
        loop.close()


@dataclass
class GatewayProcess:
    proc: subprocess.Popen[str]
    port: int
    token: str | None
    stdout_lines: list[str]
    stderr_lines: list[str]
    stderr_thread: threading.Thread

    def stderr_text(self, timeout: float = 10.0) -> str:
        """All of stderr, once the process has exited and the pipe is drained."""
        self.proc.wait(timeout)
        self.stderr_thread.join(timeout)
        return "".join(self.stderr_lines)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@contextlib.contextmanager
def gateway_process(
    tmp_path: Path,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    token: str | None = "test-token-0123456789abcdef",
    port: int | None = None,
    wrapper: Sequence[str] = (),
) -> Iterator[GatewayProcess]:
    """`clawd-gateway run` as a real process; waits for its readiness line, stops it with SIGTERM.

    `wrapper` goes in front of the command (e.g. a shell in a private network namespace that
    ends with `exec "$@"`), so the process we signal must end up being the gateway itself."""
    port = free_port() if port is None else port
    full_env = dict(os.environ)
    full_env.update(
        {"HOME": str(tmp_path), "CLAWD_STATE_DIR": str(tmp_path / "state"), "PYTHONUNBUFFERED": "1"}
    )
    for var in (
        "OPENCLAW_GATEWAY_TOKEN",
        "OPENCLAW_GATEWAY_PASSWORD",
        "OPENCLAW_CONFIG_PATH",
        "OPENCLAW_GATEWAY_PORT",
    ):
        full_env.pop(var, None)
    if token:
        full_env["OPENCLAW_GATEWAY_TOKEN"] = token
    full_env.update(env or {})
    cmd = [*wrapper, sys.executable, "-m", "clawd_gateway", "run", "--port", str(port), *(args or [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    lines: list[str] = []
    err_lines: list[str] = []
    ready = threading.Event()

    def drain_stderr() -> None:
        # Always read stderr: a full pipe would block the gateway's logging, and so the gateway.
        assert proc.stderr is not None
        for line in proc.stderr:
            err_lines.append(line)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "ready in" in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    err_thread = threading.Thread(target=drain_stderr, daemon=True)
    err_thread.start()
    try:
        if not ready.wait(20):
            proc.kill()
            proc.wait(5)
            err_thread.join(5)
            raise AssertionError(f"clawd-gateway did not start: {''.join(lines)}{''.join(err_lines)}")
        yield GatewayProcess(proc, port, token, lines, err_lines, err_thread)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
