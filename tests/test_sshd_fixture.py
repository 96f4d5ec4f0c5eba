"""The real-sshd fixture and the freezable relay behave as the tunnel tests will rely on.

Every connection verifies the host key against the fixture's known_hosts file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import psutil
import pytest
from tests.support import sshd as sshd_support
from tests.support.relay import Relay, relay
from tests.support.sshd import SshdServer, running_sshd


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshdServer]:
    with running_sshd(tmp_path / "sshd") as server:
        yield server


class Recorder(asyncssh.SSHClient):
    """Remembers why the connection ended."""

    def __init__(self) -> None:
        self.lost: Exception | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc


async def start_echo() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def roundtrip(port: int, payload: bytes = b"ping through the tunnel", timeout: float = 30.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), timeout)
    finally:
        writer.close()


async def connect(server: SshdServer, **overrides: object) -> tuple[asyncssh.SSHClientConnection, Recorder]:
    recorder = Recorder()
    conn = await asyncio.wait_for(
        asyncssh.connect(**server.connect_options(client_factory=lambda: recorder, **overrides)), 30
    )
    return conn, recorder


def test_missing_sshd_skips_on_a_laptop_and_fails_in_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sshd_support, "SSHD", tmp_path / "no-sshd")
    monkeypatch.delenv("CLAWD_REQUIRE_SERVERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install openssh-server"), running_sshd(tmp_path):
        pass
    monkeypatch.setenv("CLAWD_REQUIRE_SERVERS", "1")
    with (
        pytest.raises(pytest.fail.Exception, match="openssh-server is not installed"),
        running_sshd(tmp_path),
    ):
        pass


def test_files_and_known_hosts(sshd: SshdServer) -> None:
    assert sshd.running and sshd.master_pid
    line = sshd.known_hosts.read_text()
    assert line.startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    assert line.split()[2] == sshd.host_public_key_line.split()[1]
    assert (sshd.host_key_path.stat().st_mode & 0o077) == 0
    assert "Server listening on 127.0.0.1 port" in sshd.log_text()
    assert sshd.sessions() == []


def test_local_forward_echo_roundtrip(sshd: SshdServer) -> None:
    async def main() -> None:
        echo, echo_port = await start_echo()
        conn, _ = await connect(sshd)
        try:
            assert conn.get_extra_info("username") == sshd.user
            listener = await conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", echo_port)
            assert await roundtrip(listener.get_port()) == b"ping through the tunnel"
            big = bytes(range(256)) * 4096  # 1 MiB, several windows
            assert await roundtrip(listener.get_port(), big) == big
            assert len(sshd.sessions()) >= 1
        finally:
            conn.close()
            await conn.wait_closed()
            echo.close()

    asyncio.run(main())


def test_kill_sessions_closes_the_connection(sshd: SshdServer) -> None:
    async def main() -> None:
        conn, rec = await connect(sshd)
        await conn.run("true", check=True)
        killed = await asyncio.to_thread(sshd.kill_sessions)
        assert killed
        await asyncio.wait_for(conn.wait_closed(), 30)  # a deadline, not a bound: bench/timings_bench.py
        assert isinstance(rec.lost, asyncssh.ConnectionLost), rec.lost  # lost, not closed by us
        assert sshd.running  # the master still listens
        conn2, _ = await connect(sshd)
        conn2.close()
        await conn2.wait_closed()

    asyncio.run(main())


def test_stopped_master_leaves_sessions_and_restarts_on_the_same_port(sshd: SshdServer) -> None:
    async def main() -> None:
        echo, echo_port = await start_echo()
        port = sshd.port
        conn, _ = await connect(sshd)
        listener = await conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", echo_port)
        master = sshd.master_pid
        await asyncio.to_thread(sshd.stop)
        assert not sshd.running and master and not psutil.pid_exists(master)
        with pytest.raises(OSError):
            await connect(sshd)
        # What bites real tunnels: the old session survives its master and keeps forwarding.
        assert await roundtrip(listener.get_port()) == b"ping through the tunnel"
        orphans = sshd.sessions()
        assert orphans
        await asyncio.to_thread(sshd.start)
        assert sshd.running and sshd.port == port
        conn2, _ = await connect(sshd)  # same port, same host key, same known_hosts
        assert await conn2.run("true", check=True)
        assert set(orphans) <= set(sshd.sessions())
        await asyncio.to_thread(sshd.kill_sessions)
        await asyncio.wait_for(conn.wait_closed(), 30)
        await asyncio.wait_for(conn2.wait_closed(), 30)
        echo.close()

    asyncio.run(main())


def test_changed_host_key_is_refused(sshd: SshdServer) -> None:
    old_line = sshd.host_public_key_line
    new_line = sshd.regenerate_host_key()
    assert new_line.split()[1] != old_line.split()[1]

    async def main() -> None:
        with pytest.raises(asyncssh.HostKeyNotVerifiable):
            await connect(sshd)  # known_hosts still has the old key
        fresh = sshd.write_known_hosts()
        conn, _ = await connect(sshd, known_hosts=str(fresh))
        conn.close()
        await conn.wait_closed()

    asyncio.run(main())


def test_unknown_client_key_is_refused(sshd: SshdServer) -> None:
    stranger = sshd.make_client_key("stranger")

    async def main() -> None:
        with pytest.raises(asyncssh.PermissionDenied):
            await connect(sshd, client_keys=[str(stranger)])

    asyncio.run(main())


def test_close_leaves_no_process_behind(tmp_path: Path) -> None:
    async def open_session(server: SshdServer) -> asyncssh.SSHClientConnection:
        conn, _ = await connect(server)
        return conn

    with running_sshd(tmp_path / "s") as server:
        loop = asyncio.new_event_loop()
        try:
            conn = loop.run_until_complete(open_session(server))
            master = server.master_pid
            sessions = server.sessions()
            assert master and sessions
            server.close()
            for pid in [master, *sessions]:
                with contextlib.suppress(psutil.NoSuchProcess):  # gone, or a zombie awaiting its reaper
                    assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            loop.run_until_complete(asyncio.wait_for(conn.wait_closed(), 30))
        finally:
            loop.close()


# --- the relay ----------------------------------------------------------------------------------


def test_frozen_relay_is_detected_by_keepalive(sshd: SshdServer) -> None:
    """keepalive 1 s x 3: a silent link is noticed, and by the keepalive (nothing else can notice
    it). How soon (about 3-4 s) is a figure in bench/timings_bench.py, not a bound here."""

    async def main() -> None:
        echo, echo_port = await start_echo()
        with relay(sshd.port) as r:
            known = sshd.write_known_hosts(port=r.port)
            conn, rec = await connect(
                sshd, port=r.port, known_hosts=str(known), keepalive_interval=1, keepalive_count_max=3
            )
            listener = await conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", echo_port)
            assert await roundtrip(listener.get_port()) == b"ping through the tunnel"
            assert r.connections == 1
            r.freeze()
            await asyncio.wait_for(conn.wait_closed(), 60)
            assert isinstance(rec.lost, asyncssh.ConnectionLost), rec.lost
            assert "not responding to keepalive" in str(rec.lost), rec.lost
        echo.close()

    asyncio.run(main())


def test_relay_thaw_delivers_held_bytes_and_cut_closes() -> None:
    async def main() -> None:
        echo, echo_port = await start_echo()
        with relay(echo_port) as r:
            reader, writer = await asyncio.open_connection("127.0.0.1", r.port)
            writer.write(b"a")
            assert await asyncio.wait_for(reader.readexactly(1), 30) == b"a"
            await asyncio.to_thread(r.freeze)
            writer.write(b"held")
            await writer.drain()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(reader.readexactly(4), 0.3)
            assert r.connections == 1  # frozen, not closed
            await asyncio.to_thread(r.thaw)
            assert await asyncio.wait_for(reader.readexactly(4), 30) == b"held"
            assert await asyncio.to_thread(r.cut) == 1
            assert await asyncio.wait_for(reader.read(), 30) == b""  # EOF: the link is gone
            writer.close()
            # The listener survives a cut: new connections work.
            reader2, writer2 = await asyncio.open_connection("127.0.0.1", r.port)
            writer2.write(b"again")
            assert await asyncio.wait_for(reader2.readexactly(5), 30) == b"again"
            writer2.close()
        echo.close()

    asyncio.run(main())


def test_relay_close_is_idempotent_and_frees_its_port() -> None:
    r = Relay(9).start()
    port = r.port
    r.close()
    r.close()
    from clawd_client.engine.ports import check_port

    assert check_port(port).free
