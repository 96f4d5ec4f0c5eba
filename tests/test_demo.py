"""`clawd demo --once`, the README's main-job command, as a real process."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_once_checks_end_to_end(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "clawd_client", "demo", "--once", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "healthy    ws://127.0.0.1:" in proc.stdout and "authenticated health check" in proc.stdout
    assert "reaches the gateway through SSH" in proc.stdout
    lines = [line.split("]")[-1].split()[0] for line in proc.stdout.splitlines() if line.startswith("  [")]
    assert lines[:4] == ["idle", "connecting", "forwarding", "healthy"]
    assert "Traceback" not in proc.stderr
