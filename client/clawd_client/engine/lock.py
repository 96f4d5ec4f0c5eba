"""One supervisor per profile: an OS file lock held for the life of the process.

Why an OS lock and not a pid file: the kernel drops the lock when the process dies, however it
dies (SIGKILL, power loss of a laptop that then resumes, a crash), so a stale lock can never block
the next start. The pid written into the file is only *information* for the message ("already
running as pid 1234") and for recognising a stale instance of ours that still holds the port; it
never decides anything, so a stale pid in the file does not block.

POSIX: fcntl.flock on the open file (per open file description: a second lock attempt in the
same process fails too, as it should). Windows: msvcrt.locking on one byte far past the record,
because Windows locks are mandatory and would otherwise stop others from *reading* the pid.
The file is never deleted: unlinking a lock file races with a process that just opened it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from clawd_gateway.errors import UserError

from ..paths import client_state_dir

__all__ = [
    "AlreadyRunning",
    "InstanceLock",
    "LockError",
    "LockRecord",
    "default_lock_dir",
    "previous_owner",
    "read_lock",
]

_IS_WINDOWS = sys.platform == "win32"
_WIN_LOCK_OFFSET = 1 << 20  # the locked byte on Windows; the JSON record stays readable before it
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


# profile name -> what its lock file said when this process took the lock (the previous owner).
_PREVIOUS: dict[str, LockRecord] = {}


def previous_owner(name: str) -> LockRecord | None:
    """The record the last owner left in `name`'s lock file before this process acquired it.

    That owner is dead or lost the lock (else we could not have it); if its pid still holds our
    port it is a stale instance of ours (engine.ports.own_pids uses this).
    """
    return _PREVIOUS.get(name)


def default_lock_dir() -> Path:
    return client_state_dir() / "locks"


@dataclass(frozen=True)
class LockRecord:
    """What a lock holder wrote about itself."""

    pid: int | None
    started_at: float | None = None  # wall clock (time.time()) when the lock was taken
    create_time: float | None = None  # the process start time (psutil), to tell pid reuse apart
    profile: str | None = None

    def since(self) -> str:
        if self.started_at is None:
            return ""
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))


def _parse(text: str) -> LockRecord | None:
    text = text.strip("\0 \r\n\t")
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        pid = data.get("pid")

        def num(key: str) -> float | None:
            value = data.get(key)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        return LockRecord(
            pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None,
            num("started_at"),
            num("create_time"),
            data.get("profile") if isinstance(data.get("profile"), str) else None,
        )
    first = text.split()[0] if text.split() else ""
    return LockRecord(int(first)) if first.isdigit() and int(first) > 0 else None


class LockError(UserError):
    """The lock file cannot be created or locked at all (permissions, a filesystem without locks)."""


class AlreadyRunning(UserError):
    """Another live clawd process already runs this profile."""

    def __init__(self, profile: str, pid: int | None, path: Path, record: LockRecord | None = None) -> None:
        self.profile = profile
        self.pid = pid
        self.path = path
        self.record = record
        if pid is None:
            who = "another clawd process"
        elif pid == os.getpid():
            who = f"this same process (pid {pid})"
        else:
            who = f"clawd (pid {pid}"
            if record and record.started_at is not None:
                who += f", since {record.since()}"
            who += ")"
            if not _pid_alive(pid):
                who += f", or a child process that inherited its lock (pid {pid} itself has exited)"
        message = f"profile {profile!r} is already running in {who}; lock file {path}"
        if pid is not None and pid != os.getpid():
            fix = (
                f"use that one (clawd status {profile}), or stop it first "
                f"({'taskkill /PID' if _IS_WINDOWS else 'kill'} {pid}, or Ctrl-C in its terminal)"
            )
        else:
            fix = f"use the running one (clawd status {profile}), or stop it first"
        super().__init__(message, fix=fix)


def _pid_alive(pid: int) -> bool:
    try:
        import psutil

        return bool(psutil.pid_exists(pid))
    except Exception:
        return True


def _lock_fd(fd: int, *, shared: bool = False) -> bool:
    """Try to lock without blocking. True: locked; False: someone else holds it."""
    if _IS_WINDOWS:
        import msvcrt

        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EDEADLK):
                return False
            raise
        return True
    import fcntl

    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _unlock_fd(fd: int) -> None:
    if _IS_WINDOWS:
        import msvcrt

        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


def _read_fd(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
        if sum(map(len, chunks)) > 65536:
            break
    return b"".join(chunks).decode("utf-8", "replace")


def _open(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOINHERIT", 0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise LockError(
            f"cannot open the lock file {path}: {exc.strerror or exc}",
            fix="check the permissions of that directory, or set CLAWD_STATE_DIR to a writable one",
        ) from None
    os.set_inheritable(fd, False)  # a child we spawn must not keep our lock alive after we die
    return fd


def _own_create_time() -> float | None:
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:
        return None


class InstanceLock:
    """The single-instance lock of one profile: `with InstanceLock("work"): ...`.

    acquire() raises AlreadyRunning when another live process holds it; a lock left by a dead
    process is simply taken (the kernel released it). `previous` is what the file said before we
    took it (a dead or stale instance of ours), so the port logic can recognise its pid.
    """

    def __init__(self, name: str, directory: Path | None = None) -> None:
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not usable as a lock name")
        self.name = name
        self.directory = Path(directory) if directory is not None else default_lock_dir()
        self.path = self.directory / f"{name}.lock"
        self.previous: LockRecord | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def previous_pid(self) -> int | None:
        return self.previous.pid if self.previous else None

    def acquire(self, wait: float = 0.2) -> InstanceLock:
        """Take the lock, or raise AlreadyRunning.

        `wait` retries that long first: it covers a `read_lock` probe or a predecessor that is
        just exiting, and costs nothing when the lock is free.
        """
        if self._fd is not None:
            return self
        fd = _open(self.path)
        deadline = time.monotonic() + wait
        try:
            while True:
                try:
                    locked = _lock_fd(fd)
                except OSError as exc:
                    raise LockError(
                        f"cannot lock {self.path}: {exc.strerror or exc}",
                        fix="keep the state directory on a local filesystem (CLAWD_STATE_DIR)",
                    ) from None
                if locked:
                    break
                if time.monotonic() >= deadline:
                    record = self._read_holder(fd)
                    raise AlreadyRunning(self.name, record.pid if record else None, self.path, record)
                time.sleep(0.02)
            self.previous = _parse(_read_fd(fd))
            if self.previous is not None and self.previous.pid not in (None, os.getpid()):
                _PREVIOUS[self.name] = self.previous
            else:
                _PREVIOUS.pop(self.name, None)
            self._write_record(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def _read_holder(self, fd: int) -> LockRecord | None:
        """The holder's record; it may have locked a moment ago and not written yet, so wait a bit."""
        deadline = time.monotonic() + 0.5
        while True:
            record = _parse(_read_fd(fd))
            if record is not None or time.monotonic() >= deadline:
                return record
            time.sleep(0.02)

    def _write_record(self, fd: int) -> None:
        body = {
            "pid": os.getpid(),
            "started_at": time.time(),
            "create_time": _own_create_time(),
            "profile": self.name,
        }
        data = (json.dumps(body) + "\n").encode()
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, data)
        with contextlib.suppress(OSError):
            os.fsync(fd)

    def release(self) -> None:
        """Drop the lock. The file and our record stay: no one races an unlink, and should this
        process linger after releasing (a shutdown hung with the port still bound), the next
        owner can still recognise it as a stale instance of ours (its start time guards against
        pid reuse)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                _unlock_fd(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> InstanceLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        # Only a safety net; the kernel would release it at exit anyway.
        if getattr(self, "_fd", None) is not None:
            with contextlib.suppress(Exception):
                self.release()


def read_lock(name: str, directory: Path | None = None) -> LockRecord | None:
    """Who runs profile `name` right now: the holder's record, or None when no live process does.

    Never blocks a real acquire for long: on POSIX it tests with a shared lock, dropped at once.
    """
    lock = InstanceLock(name, directory)
    try:
        fd = os.open(lock.path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return None
    except OSError:
        return None
    try:
        if _lock_fd(fd, shared=True):
            _unlock_fd(fd)
            return None
        return _parse(_read_fd(fd)) or LockRecord(None)
    except OSError:
        return None
    finally:
        os.close(fd)
