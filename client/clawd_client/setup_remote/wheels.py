"""The wheels for the VPS, gathered on this machine (`--from`): clawd's own wheel (as given, or
built from a checkout with `pip wheel --no-deps`) plus every dependency as wheels for the VPS's
Python (its version, platform and libc), then uploaded over SFTP. Only when the dependencies cannot
be gathered here does the VPS's package index fill them in.

The pip command lines and the constraints file's text are in install_rules.py.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from clawd_gateway.errors import UserError

from .. import __version__
from .install_rules import PythonInfo, constraints_text, pip_download_argv, pip_wheel_argv, q, wheel_version
from .remote import Remote, RemoteError

Progress = Callable[[str], None]


def clawd_wheels(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.whl") if wheel_version(p.name))


async def _local(argv: list[str], timeout: float = 600) -> tuple[int, str]:
    """Run a local command (pip) without blocking the event loop; (exit status, output)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return 124, f"timed out after {timeout:g}s"
    return proc.returncode or 0, out.decode("utf-8", errors="replace")


def _constraints(path: Path) -> Path:
    """Pins to the versions installed with this client: what it was tested with, and what pip's
    cache most likely holds (so a laptop offline still builds the wheelhouse)."""
    dists = ((dist.metadata["Name"], dist.version) for dist in importlib.metadata.distributions())
    path.write_text(constraints_text(dists))
    return path


async def build_wheel(source_dir: Path, dest: Path) -> Path:
    """`pip wheel --no-deps SOURCE -w DEST`: clawd's own wheel from a checkout."""
    dest.mkdir(parents=True, exist_ok=True)
    status, out = await _local(pip_wheel_argv(sys.executable, source_dir, dest))
    wheels = clawd_wheels(dest)
    if status != 0 or not wheels:
        tail = "\n".join(out.strip().splitlines()[-5:])
        raise UserError(
            f"cannot build a wheel from {source_dir} (pip wheel exit {status}): {tail}",
            fix="check that the directory is a clawd checkout (it has pyproject.toml)",
        )
    return wheels[-1]


async def build_wheelhouse(wheel: Path, dest: Path, target: PythonInfo | None) -> tuple[bool, str]:
    """Gather `wheel` and every dependency as wheels for `target` into `dest`.

    (complete, detail): complete when pip found them all (here, from its cache, the configured
    find-links or the index this machine reaches); else only clawd's wheel is in `dest`.
    """
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(wheel, dest / wheel.name)
    base = pip_download_argv(sys.executable, dest, target)
    with tempfile.TemporaryDirectory(prefix="clawd-constraints-") as tmp:
        pins = _constraints(Path(tmp) / "constraints.txt")
        detail = ""
        for extra in (["-c", str(pins)], []):
            status, out = await _local([*base, *extra, str(wheel)])
            if status == 0:
                return True, ""
            detail = "\n".join(out.strip().splitlines()[-3:])
    return False, detail


async def source_wheels(
    source: str | None, tmp: Path, progress: Progress
) -> tuple[Path | None, list[Path], str]:
    """What `source` gives: (clawd's wheel still to be completed with its dependencies, a
    complete directory of wheels, the clawd version to install). Without a source: the VPS's
    package index, this client's version."""
    if source is None:
        return None, [], __version__
    src = Path(source).expanduser()
    if src.is_file() and src.suffix == ".whl" and wheel_version(src.name):
        return src, [], wheel_version(src.name) or __version__
    if src.is_dir() and ((src / "pyproject.toml").exists() or (src / "setup.py").exists()):
        progress(f"building a wheel from {src} (pip wheel --no-deps)")
        wheel = await build_wheel(src, tmp / "built")
        return wheel, [], wheel_version(wheel.name) or __version__
    if src.is_dir() and clawd_wheels(src):
        version = wheel_version(clawd_wheels(src)[-1].name) or __version__
        return None, sorted(src.glob("*.whl")), version
    raise UserError(
        f"--from {source}: not a clawd wheel, a clawd source dir or a directory of wheels holding clawd",
        fix="pass a clawd-*.whl, a checkout (with pyproject.toml) or a directory of wheels",
    )


async def wheelhouse(wheel: Path, house: Path, py: PythonInfo, progress: Progress) -> tuple[list[Path], bool]:
    """clawd's wheel plus its dependencies for the VPS's Python: (wheels, complete?)."""
    where = f"{py.version[0]}.{py.version[1]} ({py.machine}, {py.libc or 'unknown libc'})"
    progress(f"gathering clawd's dependencies as wheels for the VPS's Python {where}")
    complete, detail = await build_wheelhouse(wheel, house, py)
    if not complete:
        progress(
            "could not gather every dependency here; the VPS's package index supplies them"
            + (f" ({detail.splitlines()[-1]})" if detail else "")
        )
    return sorted(house.glob("*.whl")), complete


async def upload(remote: Remote, files: list[Path], directory: str, progress: Progress) -> None:
    """Put `files` into the remote `directory` (made 0700) over SFTP; only listed under --dry-run."""
    size = sum(f.stat().st_size for f in files)
    remote.would(f"upload {len(files)} wheel(s) ({size / 1e6:.1f} MB) to {directory} over SFTP")
    if remote.dry_run:
        return
    await remote.run(f"mkdir -p -m 700 {q(directory)}", check=True)
    sftp = await remote.sftp()
    progress(f"uploading {len(files)} wheel(s), {size / 1e6:.1f} MB, over SFTP")
    try:
        await sftp.put([str(f) for f in files], directory)
    except Exception as exc:
        raise RemoteError(f"{remote.target}: uploading the wheels to {directory} failed: {exc}") from None


__all__ = [
    "build_wheel",
    "build_wheelhouse",
    "clawd_wheels",
    "source_wheels",
    "upload",
    "wheelhouse",
]
