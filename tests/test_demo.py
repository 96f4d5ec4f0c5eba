"""`clawd demo --once`, the README's main-job command, as a real process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from clawd_client.demo import pick_port


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


def test_pick_port_keeps_the_standard_port_while_old_connections_linger(tmp_path):
    """A connection closed by the server side leaves TIME_WAIT on the port; it is still free for us."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio servers (the gateway) do
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.listen(1)
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.close()  # the server closes first: its end of the connection goes to TIME_WAIT
    listener.close()
    client.recv(1)
    client.close()
    if sys.platform.startswith("linux"):  # the situation: a plain bind is refused now
        with socket.socket() as plain, pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    assert pick_port(port) == port


def test_pick_port_moves_off_a_port_someone_listens_on(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        assert pick_port(port) != port
