"""The VPS account and its Python, as install.py sees them: where the account keeps its data, which
distribution and python3 it has, the gateway's venv and pip install into it.

The decisions (what the probes' output means, which package to name, the pip command line) are in
install_rules.py; here are only the remote commands.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .install_rules import (
    Layout,
    PythonInfo,
    no_venv_error,
    parse_gateway_version,
    parse_layout,
    parse_os_release,
    parse_python_probe,
    pip_failure_fix,
    pip_install_command,
    q,
    venv_failure_detail,
)
from .remote import Remote, RemoteError
from .wheels import upload

Progress = Callable[[str], None]

#: Prints what parse_layout reads: user, uid, home and the three XDG base dirs (with defaults).
LAYOUT_SCRIPT = r"""
printf '%s\n' "$(id -un)" "$(id -u)" "$HOME" \
  "${XDG_DATA_HOME:-$HOME/.local/share}" "${XDG_CONFIG_HOME:-$HOME/.config}" \
  "${XDG_STATE_HOME:-$HOME/.local/state}"
"""

#: Run by the VPS's python3; prints one JSON line that parse_python_probe reads.
PYTHON_PROBE = r"""
import json, platform, sys, importlib.util
libc, ver = platform.libc_ver()
if not libc:
    import glob
    if glob.glob("/lib/ld-musl-*"):
        libc = "musl"
        import subprocess
        try:
            out = subprocess.run(glob.glob("/lib/ld-musl-*")[:1], capture_output=True, text=True).stderr
            ver = next((l.split()[1] for l in out.splitlines() if l.startswith("Version")), "1.1")
        except Exception:
            ver = "1.1"
print(json.dumps({
    "path": sys.executable,
    "version": list(sys.version_info[:2]),
    "implementation": {"cpython": "cp", "pypy": "pp"}.get(sys.implementation.name, sys.implementation.name),
    "machine": platform.machine(),
    "libc": libc,
    "libc_version": ver,
    "venv": all(importlib.util.find_spec(m) is not None for m in ("venv", "ensurepip")),
}))
"""


async def remote_layout(remote: Remote) -> Layout:
    res = await remote.run(LAYOUT_SCRIPT, check=True)
    lay = parse_layout(res.stdout)
    if lay is None:
        raise RemoteError(f"{remote.target}: cannot read the account's environment: {res.stdout!r}")
    return lay


async def os_release(remote: Remote) -> dict[str, str]:
    text = await remote.read_file("/etc/os-release")
    if text is None:
        text = await remote.read_file("/usr/lib/os-release") or ""
    return parse_os_release(text)


async def probe_python(remote: Remote) -> PythonInfo | None:
    res = await remote.run("python3 -c " + q(PYTHON_PROBE))
    if not res.ok:
        return None
    return parse_python_probe(res.stdout)


async def installed_version(remote: Remote, lay: Layout) -> str | None:
    res = await remote.run(f"{q(lay.python)} -m clawd_gateway --version 2>/dev/null")
    return parse_gateway_version(res.ok, res.stdout)


async def make_venv(
    remote: Remote, lay: Layout, release: dict[str, str], py: PythonInfo, progress: Progress
) -> None:
    progress(f"creating a venv in {lay.venv}")
    await remote.run(f"mkdir -p -m 700 {q(lay.data)}", check=True, changes=True)
    res = await remote.run(
        f"rm -rf {q(lay.venv)} && python3 -m venv {q(lay.venv)}", changes=True, timeout=300
    )
    if res.ok:
        return
    text = res.stdout + res.stderr
    await remote.run(f"rm -rf {q(lay.venv)}", changes=True)  # never leave a half-made venv
    detail = venv_failure_detail(text)
    if detail is not None:
        raise no_venv_error(remote.target, release, py, detail)
    raise RemoteError(
        f"{remote.target}: `python3 -m venv {lay.venv}` failed (exit {res.exit_status}): {text.strip()}"
    )


async def pip_install(
    remote: Remote, lay: Layout, wheels: list[Path], offline: bool, version: str, progress: Progress
) -> None:
    """Install clawd==version into the venv: from `wheels` uploaded to the VPS (and, unless
    `offline`, its package index), or from the index alone when there are none."""
    command, where = pip_install_command(lay, version, bool(wheels), offline)
    if wheels:
        await upload(remote, wheels, lay.wheels, progress)
    progress(f"installing clawd {version} from {where}")
    res = await remote.run(command, changes=True, timeout=900)
    if wheels:
        await remote.run(f"rm -rf {q(lay.wheels)}", changes=True)
    if not res.ok:
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-4:])
        raise RemoteError(
            f"{remote.target}: pip could not install clawd {version}: {tail}", fix=pip_failure_fix(offline)
        )


__all__ = [
    "LAYOUT_SCRIPT",
    "PYTHON_PROBE",
    "installed_version",
    "make_venv",
    "os_release",
    "pip_install",
    "probe_python",
    "remote_layout",
]
