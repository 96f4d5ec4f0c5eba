"""What a request through Tailscale Serve looks like to the gateway, for tests that play the proxy.

Serve connects from loopback and writes exactly these three headers (one X-Forwarded-For entry:
the tailnet client's address); tests add the login headers themselves when they need them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SERVE_HOST = "gw.tail1234.ts.net"


def via_serve(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip, "X-Forwarded-Proto": "https", "X-Forwarded-Host": SERVE_HOST}


def no_tailscale_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that send no login header expect no whois; make sure none could reach a real daemon."""
    monkeypatch.setenv("CLAWD_TAILSCALE_SOCKET", str(tmp_path / "no-such.sock"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
