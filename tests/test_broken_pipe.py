"""Both CLIs piped into a reader that already left (`clawd demo --once | head -1`): a quiet stop with
the shell's SIGPIPE status, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "clawd_client", "demo", "--once", "--port", "0"],
        ["-m", "clawd_gateway", "config", "check"],
    ],
    ids=["clawd demo", "clawd-gateway config check"],
)
def test_closed_stdout_pipe_is_a_quiet_stop(argv: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_"))}
    env.update(HOME=str(tmp_path), CLAWD_STATE_DIR=str(tmp_path / "state"))
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is written
    try:
        proc = subprocess.run(
            [sys.executable, *argv], stdout=write_end, stderr=subprocess.PIPE, text=True, env=env, timeout=60
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 141, proc.stderr
