"""Step "key": a key pair that can do nothing but reach the gateway port, and its line in the
VPS account's authorized_keys.

Why a separate key: the admin key (or password) the user logged in with can do anything on the
VPS; the laptop's login autostart should hold something that can only open the tunnel. The line's
options are in plan.key_line. sshd (StrictModes, the default) ignores authorized_keys when the
home, ~/.ssh or the file is writable by group/others or owned by someone else, so those are
checked before writing and the file keeps 0600; it is replaced by temp file + rename, so Ctrl-C
leaves the old or the new file, never half of one.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from clawd_gateway.errors import UserError

from .._asyncssh import asyncssh
from .plan import KeyLineConflict, add_line, key_line, key_path_name, remove_line
from .remote import Remote


def local_key_path(name: str) -> Path:
    return Path.home() / ".ssh" / key_path_name(name)


def ensure_local_key(name: str, *, dry_run: bool) -> tuple[Path, str, bool]:
    """(private key path, public key line, created now). An existing ~/.ssh/clawd_NAME is reused
    (a re-run, or the user's own), so its authorized_keys line stays the same."""
    path = local_key_path(name)
    if path.exists():
        try:
            key = asyncssh.read_private_key(str(path))
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            raise _unusable_key(path, str(exc)) from None
        except OSError as exc:
            raise UserError(
                f"cannot read the tunnel key {path}: {exc.strerror or exc}",
                fix=f"check its owner and mode (ls -l {shlex.quote(str(path))}), then run setup-remote again",
            ) from None
        return path, key.export_public_key("openssh").decode().strip(), False
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"clawd-{name}")
    public = key.export_public_key("openssh").decode().strip()
    if dry_run:
        return path, public, False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.export_private_key("openssh"))
            fh.flush()
            os.fsync(fh.fileno())
        pub_tmp = path.with_name(f".{path.name}.pub.tmp{os.getpid()}")
        pub_tmp.write_text(public + "\n", encoding="utf-8")
        os.replace(pub_tmp, path.with_name(path.name + ".pub"))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path, public, True


def _unusable_key(path: Path, reason: str) -> UserError:
    """An existing ~/.ssh/clawd_NAME setup cannot use: the login autostart has nobody to type a
    passphrase, so the tunnel key must open without one."""
    quoted = shlex.quote(str(path))
    if "passphrase" in reason.lower():
        return UserError(
            f"the tunnel key {path} is protected by a passphrase, which the tunnel started at login "
            "cannot type",
            fix=f"remove the passphrase (ssh-keygen -p -N '' -f {quoted}), or move the key aside "
            "(setup-remote then makes a new one), and run setup-remote again",
        )
    return UserError(
        f"{path} exists but is not a private key setup-remote can read ({reason})",
        fix=f"move it aside (mv {quoted} {quoted}.old; setup-remote then makes a new one) or pass "
        "another --name, and run setup-remote again",
    )


def remove_local_key(path: Path) -> list[str]:
    gone = []
    for p in (path, path.with_name(path.name + ".pub")):
        if p.exists():
            p.unlink()
            gone.append(str(p))
    return gone


async def _strict_modes(remote: Remote) -> int:
    """The account's uid, after checking home and creating/fixing ~/.ssh the way sshd wants."""
    uid_text = (await remote.run("id -u", check=True)).stdout.strip()
    uid = int(uid_text) if uid_text.isdigit() else -1
    home = await remote.home()
    found = await remote.stat_mode(home)
    if found is not None:
        mode, owner = found
        if owner not in (uid, 0) or mode & 0o022:
            raise UserError(
                f"{remote.target}: the home directory {home} is writable by others (mode {mode:o}) or "
                "not owned by the account, so sshd (StrictModes) would ignore authorized_keys",
                fix=f"on the VPS: chmod go-w {shlex.quote(home)} (clawd does not change it by itself)",
            )
    ssh_dir = f"{home}/.ssh"
    found = await remote.stat_mode(ssh_dir)
    if found is None:
        await remote.run(f"mkdir -m 700 {shlex.quote(ssh_dir)}", check=True, changes=True)
    else:
        mode, owner = found
        if owner not in (uid, 0):
            raise UserError(f"{remote.target}: {ssh_dir} is not owned by the account (uid {owner})")
        if mode & 0o022:
            await remote.run(f"chmod go-w {shlex.quote(ssh_dir)}", check=True, changes=True)
    return uid


async def install_key_line(remote: Remote, public: str, name: str, port: int) -> tuple[str, str, str, bool]:
    """Our restricted line for the key, once (plan.add_line). Returns (line, authorized_keys path,
    "added" | "replaced" | "unchanged", newline added before it)."""
    line = key_line(public, name, port)
    await _strict_modes(remote)
    path = f"{await remote.home()}/.ssh/authorized_keys"
    text = await remote.read_file(path) or ""
    try:
        new, how = add_line(text, line)
    except KeyLineConflict as exc:
        raise UserError(
            f"{remote.target}: {path} {exc}: sshd uses the first line for a key, so a tunnel-only "
            "line added after it would not restrict anything",
            fix=f"on the VPS, remove line {exc.lineno} of {path} (or pass another --name for "
            f"a new key), then run setup-remote again",
        ) from None
    if how == "unchanged":
        return line, path, how, False
    found = await remote.stat_mode(path)
    mode = 0o600 if found is None else (found[0] & 0o700) | 0o600
    await remote.write_file_atomic(path, new, mode)
    return line, path, how, how == "added" and bool(text) and not text.endswith("\n")


async def remove_key_line(remote: Remote, path: str, line: str, added_newline: bool) -> bool:
    """Remove exactly our line (the file is otherwise byte-identical); False when it was gone."""
    text = await remote.read_file(path)
    if text is None:
        return False
    new, removed = remove_line(text, line, added_newline)
    if not removed:
        return False
    found = await remote.stat_mode(path)
    await remote.write_file_atomic(path, new, found[0] if found else 0o600)
    return True


__all__ = ["ensure_local_key", "install_key_line", "local_key_path", "remove_key_line", "remove_local_key"]
