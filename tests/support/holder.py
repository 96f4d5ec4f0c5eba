"""A local port held by another process that can say it is alive, and how it was stopped.

Why another process: "the holder was never killed" means nothing for a socket of the test
process itself (nothing would kill the test). Why an answer and not `poll() is None` after a
pause: a process signalled a moment ago may still be running, so a pause proves nothing and only
costs time. The holder echoes each line sent to it; a SIGTERM makes it print `SIGTERM` and exit at
once. Its Python handler runs before it reads or echoes anything more, so an echo of a line sent
*now* proves no SIGTERM came before, and (SIGKILL aside, which leaves no line) the `SIGTERM` line
names the signal that ended it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from itertools import count
from pathlib import Path

LISTENER = """
import os, signal, socket, sys

def _term(signum, frame):
    print("SIGTERM", flush=True)
    os._exit(0)

signal.signal(signal.SIGTERM, _term)
s = socket.socket()
s.bind(("127.0.0.1", int(os.environ["HOLD_PORT"])))
s.listen()
print("ready", flush=True)
for line in sys.stdin:
    print("echo " + line.strip(), flush=True)
"""

_pings = count()


def next_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str | None:
    """The holder's next output line, without its newline; None at EOF or after `timeout`."""
    assert proc.stdout is not None
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        line = pool.submit(proc.stdout.readline).result(timeout)
    except concurrent.futures.TimeoutError:
        return None
    finally:
        pool.shutdown(wait=False)  # a readline still blocked ends when the holder does
    return line.rstrip("\n") if line else None


def answers(proc: subprocess.Popen[str], timeout: float = 30.0) -> bool:
    """Whether the holder echoes a line sent now: it is alive and was sent no SIGTERM before."""
    assert proc.stdin is not None
    token = f"ping {next(_pings)}"
    try:
        proc.stdin.write(token + "\n")
        proc.stdin.flush()
    except (BrokenPipeError, ValueError):  # gone, or its pipe already closed
        return False
    return next_line(proc, timeout) == f"echo {token}"


@contextlib.contextmanager
def holder_process(tmp_path: Path, port: int, name: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A real process listening on 127.0.0.1:`port`, with `name` as its script (so `clawd connect
    ...` or `webserver.py ...` is what psutil shows as its command line)."""
    script = tmp_path / name
    script.write_text(LISTENER)
    env = dict(os.environ, HOLD_PORT=str(port))
    proc = subprocess.Popen(
        [sys.executable, str(script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert next_line(proc) == "ready"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
