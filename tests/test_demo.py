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
    assert "[ok ] handshake" in proc.stdout and "[ok ] health" in proc.stdout
    assert "gateway reachable and authenticated" in proc.stdout
    assert "Traceback" not in proc.stderr
