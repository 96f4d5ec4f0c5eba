"""Which interpreter a login entry runs `-m clawd_client` with.

Entries record the interpreter actually running clawd now (a venv's or pipx's own `bin/python`,
never its symlink target, which lacks the venv), so they keep working as long as that install
exists, and `status` flags them stale once it does not. A temporary interpreter (pip build
isolation, anything under the temp dir) is refused outright: it is gone after the next reboot,
and an entry pointing there would fail silently at every login.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clawd_gateway.errors import UserError

from .names import PACKAGE, Mode, check_profile_name

if TYPE_CHECKING:
    from .system import Host

_BUILD_DIR = re.compile(r"^(pip-build-env-|pip-req-build-|pip-install-|pip-ephem-wheel-cache-|build-env-)")


@dataclass(frozen=True)
class Launcher:
    """The interpreter an entry runs `-m clawd_client` with, and how it was installed."""

    python: str
    kind: str  # "pipx", "venv" or "system"

    def argv(self, mode: Mode, profile: str | None = None, *, foreground: bool = True) -> tuple[str, ...]:
        """The command an entry runs.

        The agent runs `agent --foreground` under a service manager (it supervises the process and
        collects stderr) and plain `agent` elsewhere: that form starts a detached agent logging to
        the state dir and returns at once, and exits 0 when one already runs, which is what a
        desktop autostart or a Run value wants. "headless" is what older versions ran.
        """
        base = (self.python, "-m", PACKAGE)
        if mode == "agent":
            return (*base, "agent", "--foreground") if foreground else (*base, "agent")
        if mode == "tray":
            return (*base, "tray")
        if profile is None:
            raise ValueError("headless mode needs a profile")
        return (*base, "connect", check_profile_name(profile))


def _temp_roots() -> list[str]:
    roots = {tempfile.gettempdir(), "/tmp", "/var/tmp", "/private/tmp"}  # noqa: S108 - checked, not used
    roots |= {os.path.realpath(r) for r in list(roots)}
    return sorted(roots)


def temp_reason(path: str, temp_roots: Sequence[str] | None = None) -> str | None:
    """Why `path` is unfit for an entry that must work at every future login, or None."""
    if temp_roots is None and os.environ.get("CLAWD_AUTOSTART_ALLOW_TEMP") == "1":
        temp_roots = []  # test suites run from a checkout that may well live under /tmp
    roots = _temp_roots() if temp_roots is None else list(temp_roots)
    for candidate in {path, os.path.realpath(path)}:
        parts = Path(candidate).parts
        if any(_BUILD_DIR.match(p) for p in parts):
            return f"{candidate} is inside a temporary build environment"
        for root in roots:
            if root and (candidate == root or candidate.startswith(root.rstrip(os.sep) + os.sep)):
                return f"{candidate} is under the temporary directory {root}"
    return None


def install_kind(path: str, prefix: str, base_prefix: str, env: Mapping[str, str]) -> str:
    """pipx, venv or system: said in `status` so the user knows which install an entry depends on."""
    parts = Path(path).parts
    pipx_home = env.get("PIPX_HOME")
    if pipx_home and os.path.abspath(path).startswith(os.path.abspath(pipx_home) + os.sep):
        return "pipx"
    if any(a == "pipx" and b == "venvs" for a, b in itertools.pairwise(parts)):
        return "pipx"
    if prefix != base_prefix:
        return "venv"
    return "system"


def stable_python(path: str) -> str:
    """A path to the same interpreter that survives upgrades, if there is one; else `path`.

    Homebrew runs Python out of a versioned `Cellar/<formula>/<version>/` directory that `brew
    upgrade` deletes; its `opt/<formula>/` alias follows upgrades. Symlinks are otherwise kept as
    given: resolving a venv's `bin/python` would escape the venv and lose clawd's packages.
    """
    parts = Path(path).parts
    if "Cellar" in parts:
        i = parts.index("Cellar")
        if len(parts) > i + 3:
            alias = Path(*parts[:i], "opt", parts[i + 1], *parts[i + 3 :])
            try:
                if os.path.samefile(alias, path):
                    return str(alias)
            except OSError:
                pass
    return path


def detect_launcher(
    executable: str | None = None,
    *,
    prefix: str | None = None,
    base_prefix: str | None = None,
    env: Mapping[str, str] | None = None,
    temp_roots: Sequence[str] | None = None,
) -> Launcher:
    """The interpreter running clawd now, as an entry should record it (not yet checked to work)."""
    exe = sys.executable if executable is None else executable
    if not exe:
        raise UserError(
            "cannot tell which Python runs clawd (sys.executable is empty, e.g. an embedded interpreter)",
            fix="run it as `python -m clawd_client autostart ...` with the Python clawd is installed in",
        )
    path = stable_python(console_python(os.path.abspath(exe)))
    kind = install_kind(
        path,
        sys.prefix if prefix is None else prefix,
        sys.base_prefix if base_prefix is None else base_prefix,
        os.environ if env is None else env,
    )
    why = temp_reason(path, temp_roots)
    if why:
        raise UserError(
            f"refusing to write an autostart entry for a temporary interpreter: {why}",
            fix="install clawd for good first (pipx install clawd, or pip install into a lasting venv)",
        )
    return Launcher(path, kind)


def _win_split(path: str) -> tuple[str, str]:
    i = max(path.rfind("\\"), path.rfind("/"))
    return (path[:i], path[i + 1 :]) if i >= 0 else ("", path)


def windowless_python(python: str, exists: Callable[[str], bool] = os.path.exists) -> str:
    """pythonw.exe next to python.exe, so nothing opens a console window at sign-in, when present."""
    head, tail = _win_split(python)
    low = tail.lower()
    if low.startswith("python") and low.endswith(".exe") and not low.startswith("pythonw"):
        sep = "\\" if "\\" in python else "/"
        candidate = (head + sep if head else "") + "pythonw" + tail[len("python") :]
        if exists(candidate):
            return candidate
    return python


def console_python(python: str, exists: Callable[[str], bool] = os.path.exists) -> str:
    """python.exe for a pythonw.exe (the tray runs under pythonw, which has no stdout for the import
    probe); make_spec picks pythonw again where a windowless start is wanted."""
    head, tail = _win_split(python)
    if tail.lower().startswith("pythonw") and tail.lower().endswith(".exe"):
        sep = "\\" if "\\" in python else "/"
        candidate = (head + sep if head else "") + "python" + tail[len("pythonw") :]
        if exists(candidate):
            return candidate
    return python


def probe_import(python: str, host: Host | None = None) -> str:
    """Check that `python` imports clawd_client on its own (no PYTHONPATH), as it must at login,
    and not from a temp dir; return where the package lives. Catches an uninstalled source tree.
    """
    from .system import Host

    runner = host or Host()
    code = (
        "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "  # not the cwd
        f"import {PACKAGE}; sys.stdout.write({PACKAGE}.__file__ or '')"
    )
    res = runner.run([python, "-E", "-c", code], timeout=30)
    where = res.stdout.strip()
    if res.returncode != 0 or not where:
        last = (res.stderr or "").strip().splitlines()
        raise UserError(
            f"{python} cannot import {PACKAGE} without this shell's PYTHONPATH or working directory, "
            "so an autostart entry would fail at login" + (f" ({last[-1]})" if last else ""),
            fix="install clawd into that interpreter (pipx install clawd, or pip install into a venv)",
        )
    why = temp_reason(where)
    if why:
        raise UserError(
            f"clawd itself is loaded from a temporary location ({why}); an autostart entry would break",
            fix="install clawd for good first (pipx install clawd, or pip install into a lasting venv)",
        )
    return where


__all__ = [
    "Launcher",
    "console_python",
    "detect_launcher",
    "install_kind",
    "probe_import",
    "stable_python",
    "temp_reason",
    "windowless_python",
]
