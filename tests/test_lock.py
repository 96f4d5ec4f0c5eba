"""The single-instance lock per profile, with real processes holding and dying with it."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawd_client.engine.lock import AlreadyRunning, InstanceLock, previous_owner, read_lock
from clawd_gateway.errors import UserError

HOLDER = """
import sys
from pathlib import Path
from clawd_client.engine.lock import InstanceLock
lock = InstanceLock(sys.argv[1], Path(sys.argv[2])).acquire()
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of profile 'work'."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "work", str(tmp_path / "locks")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def test_acquire_writes_our_pid_and_release_unlocks(tmp_path: Path) -> None:
    lock = InstanceLock("work", tmp_path / "locks")
    before = time.time()
    with lock:
        assert lock.held
        record = json.loads(lock.path.read_text())
        assert record["pid"] == os.getpid()
        assert record["profile"] == "work"
        assert before - 1 <= record["started_at"] <= time.time() + 1
        assert record["create_time"] > 0
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(lock.path.parent.stat().st_mode) == 0o700
        assert read_lock("work", tmp_path / "locks").pid == os.getpid()  # type: ignore[union-attr]
    assert not lock.held
    # The record stays (to recognise a lingering instance), but nothing holds the lock.
    assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert read_lock("work", tmp_path / "locks") is None
    with InstanceLock("work", tmp_path / "locks") as again:
        assert again.previous is not None and again.previous.pid == os.getpid()
        assert previous_owner("work") is None  # ourselves: never a stale instance


def test_second_lock_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with InstanceLock("work", tmp_path):
        with pytest.raises(AlreadyRunning) as err:
            InstanceLock("work", tmp_path).acquire(wait=0)
        assert err.value.pid == os.getpid()
        assert "this same process" in str(err.value)
        with InstanceLock("home", tmp_path):  # other profiles are independent
            pass


def test_other_process_holding_the_lock_is_named_and_its_death_frees_it(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    lock = InstanceLock("work", tmp_path / "locks")
    # acquire() gives up rather than waiting for the holder: it raises, in a thread so that a
    # hang fails here (deadline) instead of blocking the run. How soon: bench/timings_bench.py.
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        with pytest.raises(AlreadyRunning) as err:
            pool.submit(lock.acquire).result(timeout=60)
    finally:
        pool.shutdown(wait=False)
    exc = err.value
    assert isinstance(exc, UserError)
    assert exc.pid == holder.pid
    assert exc.profile == "work"
    text = exc.render()
    assert "profile 'work' is already running" in text
    assert f"pid {holder.pid}" in text
    assert f"kill {holder.pid}" in text and "clawd status work" in text
    assert str(lock.path) in text
    assert not lock.held
    assert read_lock("work", tmp_path / "locks").pid == holder.pid  # type: ignore[union-attr]

    holder.send_signal(signal.SIGKILL)
    holder.wait(5)
    # The dead holder's pid is still in the file; it must not block.
    assert json.loads(lock.path.read_text())["pid"] == holder.pid
    assert read_lock("work", tmp_path / "locks") is None
    with lock:
        assert lock.previous_pid == holder.pid  # available to recognise a stale instance
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_a_stale_record_of_a_live_pid_without_the_lock_does_not_block(tmp_path: Path) -> None:
    path = tmp_path / "work.lock"
    path.write_text(json.dumps({"pid": os.getppid(), "started_at": 1.0}))
    with InstanceLock("work", tmp_path) as lock:
        assert lock.previous_pid == os.getppid()
    path.write_text("garbage\x00\x01")
    with InstanceLock("work", tmp_path) as lock:
        assert lock.previous is None


def test_default_directory_follows_the_state_dir(tmp_path: Path) -> None:
    # conftest points CLAWD_STATE_DIR at tmp_path/"state".
    lock = InstanceLock("work")
    assert lock.path == tmp_path / "state" / "client" / "locks" / "work.lock"
    with lock:
        assert lock.path.exists()


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "-x", "a b"])
def test_names_that_could_escape_the_directory_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        InstanceLock(bad, tmp_path)


def test_lock_is_not_inherited_by_child_processes(tmp_path: Path) -> None:
    """A child we spawn must not keep the profile locked after we exit."""
    with InstanceLock("work", tmp_path) as lock:
        assert lock._fd is not None
        assert not os.get_inheritable(lock._fd)
