"""The logged-in VPS account, as every setup step sees it: run a command, read or replace a file.

Why a wrapper and not the asyncssh connection itself: `--dry-run` must print every *changing*
remote command and run none of them, while read-only look-ups (what listens on the port, which
config exists) still run so the plan is real. Steps say which of their commands change the VPS
(`run(..., changes=True)`, `write_file_atomic`); here those are recorded with `would()` instead
of executed. Files are replaced by temp file + rename in the same directory, so an interrupted
setup (Ctrl-C, a dropped link) never leaves `authorized_keys` or a config half-written.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import secrets
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from clawd_gateway.errors import UserError

from .._asyncssh import asyncssh


@dataclass(frozen=True)
class RunResult:
    exit_status: int  # 255 when the command was killed by a signal or the channel closed
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class RemoteError(UserError):
    """A remote command or file operation failed; names the command and what it printed."""

    exit_code = 1


@dataclass
class Remote:
    """A logged-in asyncssh connection to the VPS account (see the module docstring)."""

    conn: asyncssh.SSHClientConnection
    dry_run: bool = False
    target: str = ""  # user@host[:port], for messages
    on_would: Callable[[str], None] | None = None  # told about each recorded change as it happens
    planned: list[str] = field(default_factory=list)
    _sftp: asyncssh.SFTPClient | None = field(default=None, repr=False)
    _home: str | None = field(default=None, repr=False)

    def would(self, what: str) -> None:
        """Record a remote change this run makes (or, with --dry-run, would make)."""
        self.planned.append(what)
        if self.on_would is not None:
            self.on_would(what)

    async def run(
        self,
        command: str,
        *,
        check: bool = False,
        input: str | None = None,
        timeout: float = 60,
        changes: bool = False,
    ) -> RunResult:
        """Run `command` through the account's shell. `changes=True` marks a command that alters
        the VPS: under --dry-run it is only recorded (and reported as succeeding)."""
        if changes:
            self.would(command)
            if self.dry_run:
                return RunResult(0, "", "")
        try:
            done = await self.conn.run(command, input=input, check=False, timeout=timeout)
        except asyncssh.TimeoutError as exc:
            result = RunResult(255, _text(exc.stdout), _text(exc.stderr) or f"no result within {timeout:g}s")
        except (asyncssh.Error, OSError) as exc:
            raise RemoteError(f"{self.target}: cannot run `{command}`: {exc}") from None
        else:
            status = done.exit_status if done.exit_status is not None else 255
            result = RunResult(status, _text(done.stdout), _text(done.stderr))
        if check and not result.ok:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise RemoteError(
                f"{self.target}: `{command}` failed (exit {result.exit_status})"
                + (f": {detail[-1]}" if detail else "")
            )
        return result

    async def sftp(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = await self.conn.start_sftp_client()
            except (asyncssh.Error, OSError) as exc:
                raise RemoteError(
                    f"{self.target}: the SFTP subsystem is not available: {exc}",
                    fix="enable it in the server's sshd_config (Subsystem sftp internal-sftp)",
                ) from None
        return self._sftp

    async def home(self) -> str:
        """The account's home directory (where SFTP starts), cached."""
        if self._home is None:
            sftp = await self.sftp()
            try:
                self._home = str(await sftp.realpath("."))
            except (asyncssh.Error, OSError) as exc:
                raise RemoteError(
                    f"{self.target}: cannot find the account's home directory over SFTP: {exc}",
                    fix="check that the account has a home directory it can enter (ls -ld ~ on the VPS)",
                ) from None
        return self._home

    async def path(self, path: str) -> str:
        """`~/x` → `$HOME/x`; absolute paths unchanged; relative paths are relative to home."""
        if path == "~":
            return await self.home()
        if path.startswith("~/"):
            return posixpath.join(await self.home(), path[2:])
        if not path.startswith("/"):
            return posixpath.join(await self.home(), path)
        return path

    async def read_file(self, path: str) -> str | None:
        """The file's text over SFTP; None when it does not exist (other errors raise)."""
        full = await self.path(path)
        sftp = await self.sftp()
        try:
            async with sftp.open(full, "rb") as fh:
                data = await fh.read()
        except asyncssh.SFTPNoSuchFile:
            return None
        except (asyncssh.SFTPError, OSError) as exc:
            raise RemoteError(f"{self.target}: cannot read {full}: {exc}") from None
        raw: object = data  # bytes at run time ("rb"); asyncssh's stubs say AnyStr
        return raw.decode("utf-8", errors="surrogateescape") if isinstance(raw, bytes) else str(raw)

    async def stat_mode(self, path: str) -> tuple[int, int] | None:
        """(permission bits, owner uid) of a remote path, or None when it does not exist."""
        full = await self.path(path)
        sftp = await self.sftp()
        try:
            attrs = await sftp.stat(full)
        except asyncssh.SFTPNoSuchFile:
            return None
        except (asyncssh.Error, OSError) as exc:
            raise RemoteError(
                f"{self.target}: cannot look at {full}: {exc}",
                fix=f"on the VPS, give the account access to {posixpath.dirname(full) or '/'} "
                "(ls -ld it), then run setup-remote again",
            ) from None
        return (attrs.permissions or 0) & 0o7777, attrs.uid if attrs.uid is not None else -1

    async def write_file_atomic(self, path: str, data: str, mode: int) -> None:
        """Replace `path` with `data` (mode `mode`) by writing a temp file beside it and renaming
        it over the original: a reader (sshd) sees the old or the new file, never a partial one."""
        full = await self.path(path)
        self.would(f"write {full} (mode {mode:o}, {len(data.encode())} bytes, temp file + rename)")
        if self.dry_run:
            return
        sftp = await self.sftp()
        tmp = posixpath.join(
            posixpath.dirname(full), f".{posixpath.basename(full)}.clawd-{secrets.token_hex(4)}"
        )
        try:
            attrs = asyncssh.SFTPAttrs(permissions=mode)
            async with sftp.open(tmp, "wb", attrs) as fh:
                await fh.write(data.encode("utf-8", errors="surrogateescape"))
                with contextlib.suppress(asyncssh.SFTPError):
                    await fh.fsync()  # an OpenSSH extension; fine to lack
            await sftp.chmod(tmp, mode)  # the umask may have trimmed the create mode
            await self._rename_over(tmp, full)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await asyncio.shield(sftp.remove(tmp))
            if isinstance(exc, (asyncssh.Error, OSError)):
                raise RemoteError(f"{self.target}: cannot write {full}: {exc}") from None
            raise

    async def _rename_over(self, src: str, dst: str) -> None:
        sftp = await self.sftp()
        try:
            await sftp.posix_rename(src, dst)
        except asyncssh.SFTPOpUnsupported:
            await self.run(f"mv -f -- {shlex.quote(src)} {shlex.quote(dst)}", check=True)

    async def close(self) -> None:
        if self._sftp is not None:
            self._sftp.exit()
            self._sftp = None
        self.conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.conn.wait_closed(), 5)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


__all__ = ["Remote", "RemoteError", "RunResult"]
