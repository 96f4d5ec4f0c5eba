"""The gateway's state dir is private from the first write, whichever file comes first.

A gateway started with a token from the environment writes `<state>/run/gateway-PORT.json` before
anything else; the state dir must still come out 0700 (not the umask's 0755), so a fresh
`clawd-gateway audit` does not warn about a directory the gateway itself created.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.support.servers import gateway_process

from clawd_gateway.paths import atomic_write

STRONG = "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a1c3e5f"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_makes_every_missing_parent_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        (tmp_path / "existing").mkdir(mode=0o755)
        target = tmp_path / "existing" / "state" / "run" / "file.json"
        atomic_write(target, "{}\n")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "existing") == 0o755  # an existing directory is left alone
    assert _mode(tmp_path / "existing" / "state") == 0o700
    assert _mode(tmp_path / "existing" / "state" / "run") == 0o700
    assert _mode(target) == 0o600


def test_gateway_creates_its_state_dir_private_and_audit_agrees(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert not state.exists()
    with gateway_process(tmp_path, token=STRONG) as gw:
        assert (state / "run" / f"gateway-{gw.port}.json").is_file()
        assert _mode(state) == 0o700, oct(_mode(state))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_"))}
        env.update(HOME=str(tmp_path), CLAWD_STATE_DIR=str(state), OPENCLAW_GATEWAY_TOKEN=STRONG)
        r = subprocess.run(
            [sys.executable, "-m", "clawd_gateway", "audit", "--json"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    report = json.loads(r.stdout)
    ids = [f["id"] for f in report["findings"]]
    assert "fs.state_dir.perms" not in ids, ids
