#!/usr/bin/env python3
"""Regenerate (or `--check`) the reference service files under packaging/.

They are rendered by clawd_gateway.service, the same code `clawd-gateway install-service` and
the .deb builder use, so a hand edit here would silently diverge: tests/test_service.py fails
when a checked-in copy differs from a fresh render.

- systemd/clawd-gateway.service: the unit the .deb installs (/usr/bin/clawd-gateway, user
  clawd-gateway, secret in /etc/clawd-gateway/env).
- launchd/dev.clawd.gateway.plist: the LaunchDaemon `install-service --manager launchd` writes
  for a venv in /opt/clawd-gateway/venv run as `_clawd-gateway`; the secret stays in a 0600
  env file read by the `python -m clawd_gateway.service launch` wrapper.
"""

from __future__ import annotations

import sys
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "gateway"))

from clawd_gateway.service import (  # noqa: E402
    LAUNCHD_LABEL,
    SERVICE_NAME,
    UNIT_NAME,
    ServiceSpec,
    launchd_plist,
    package_spec,
    render_launchd_plist,
    render_systemd_unit,
)

MAC_SUPPORT = PurePosixPath("/Library/Application Support", SERVICE_NAME)
MAC_PYTHON = "/opt/clawd-gateway/venv/bin/python"


def launchd_example_spec() -> ServiceSpec:
    return ServiceSpec(
        program=(MAC_PYTHON, "-m", "clawd_gateway"),
        args=("run", "--config", str(MAC_SUPPORT / "openclaw.json")),
        env_file=MAC_SUPPORT / "env",
        scope="system",
        user="_clawd-gateway",
        state_dir=MAC_SUPPORT / "state",
        log_dir=PurePosixPath("/Library/Logs", SERVICE_NAME),
    )


def rendered() -> dict[Path, bytes]:
    return {
        HERE / "systemd" / UNIT_NAME: render_systemd_unit(package_spec()).encode("utf-8"),
        HERE / "launchd" / f"{LAUNCHD_LABEL}.plist": render_launchd_plist(
            launchd_plist(launchd_example_spec(), MAC_PYTHON)
        ),
    }


def main(argv: list[str]) -> int:
    stale = [path for path, data in rendered().items() if not path.exists() or path.read_bytes() != data]
    if "--check" in argv:
        for path in stale:
            print(f"templates.py: {path} is stale; run python3 packaging/templates.py", file=sys.stderr)
        return 1 if stale else 0
    for path, data in rendered().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"templates.py: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
