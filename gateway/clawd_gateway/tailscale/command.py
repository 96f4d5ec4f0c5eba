"""Find the `tailscale` CLI and run it with a deadline.

Every call has a timeout: `tailscale serve` on a tailnet without HTTPS can wait forever for
someone to click the enable link, and a gateway must not hang at startup because of that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass

MACOS_APP_BINARY = "/Applications/Tailscale.app/Contents/MacOS/Tailscale"
STATUS_TIMEOUT_S = 5.0
SERVE_TIMEOUT_S = 15.0
MAX_OUTPUT = 1024 * 1024


def find_binary(env: Mapping[str, str] | None = None) -> str | None:
    """PATH first (Linux packages, Homebrew, the macOS CLI symlink), then the macOS app bundle."""
    env = os.environ if env is None else env
    found = shutil.which("tailscale", path=env.get("PATH", os.defpath))
    if found:
        return found
    if os.path.isfile(MACOS_APP_BINARY) and os.access(MACOS_APP_BINARY, os.X_OK):
        return MACOS_APP_BINARY
    return None


SECRET_ENV = (
    "OPENCLAW_GATEWAY_TOKEN",
    "OPENCLAW_GATEWAY_PASSWORD",
    "CLAWDBOT_GATEWAY_TOKEN",
    "CLAWDBOT_GATEWAY_PASSWORD",
)


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The gateway's environment minus its secrets: the tailscale CLI has no use for them."""
    env = os.environ if env is None else env
    return {k: v for k, v in env.items() if k.upper() not in SECRET_ENV}


@dataclass(frozen=True)
class RunResult:
    argv: tuple[str, ...]
    returncode: int | None  # None: killed at the deadline
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def output(self) -> str:
        return "\n".join(s for s in (self.stderr.strip(), self.stdout.strip()) if s)


async def _read_all(stream: asyncio.StreamReader) -> bytes:
    """Everything up to EOF (StreamReader.read(n) returns whatever arrived first), capped."""
    buf = bytearray()
    while len(buf) < MAX_OUTPUT:
        chunk = await stream.read(65536)
        if not chunk:
            break
        buf += chunk
    return bytes(buf[:MAX_OUTPUT])


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """The CLI runs in its own session, so the whole group goes, not just the first process."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()


async def run(binary: str, *args: str, timeout: float = STATUS_TIMEOUT_S) -> RunResult:
    """Run `binary args...` without a shell; on the deadline kill it and keep what it printed."""
    argv = (binary, *args)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        env=child_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    out_task = asyncio.ensure_future(_read_all(proc.stdout))
    err_task = asyncio.ensure_future(_read_all(proc.stderr))
    code: int | None
    try:
        code = await asyncio.wait_for(proc.wait(), timeout)
    except asyncio.TimeoutError:
        _kill_group(proc)
        await proc.wait()
        code = None
    except asyncio.CancelledError:
        _kill_group(proc)
        out_task.cancel()
        err_task.cancel()
        raise
    try:
        out, err = await asyncio.wait_for(asyncio.gather(out_task, err_task), 2.0)
    except asyncio.TimeoutError:  # a grandchild kept the pipes open
        _kill_group(proc)
        out, err = b"", b""
    return RunResult(argv, code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
