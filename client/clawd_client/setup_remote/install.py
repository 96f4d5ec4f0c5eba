"""Install clawd-gateway for the VPS account (issue 12, part 4), and remove it again.

What lands on the VPS, all under the account's own data dir (`${XDG_DATA_HOME:-~/.local/share}`):

    clawd-gateway/venv/          a venv with clawd (the same version as this client, or --from's)
    clawd-gateway/openclaw.json  the gateway's config: the port, bind loopback, token auth
    clawd-gateway/gateway.log    the detached gateway's log (only where no systemd runs)
    clawd-gateway/gateway.pid    the detached gateway's pid

plus what `clawd-gateway install-service --user` writes: the unit and its 0600 env file
(`~/.config/clawd-gateway/env`, the generated token: `InstallResult.token_file`), and the gateway's
state dir (`~/.local/state/clawd/gateway`).

Where the packages come from: without `source`, the VPS's own package index (`pip install
clawd==VERSION`). With `source` (`--from`), a wheel, a source dir (built into a wheel here with
`pip wheel --no-deps`), or a directory of wheels: whatever can be gathered here for the VPS's
Python (its version, platform and libc, asked first) is put in a wheelhouse on this machine,
uploaded over SFTP and installed with `pip install --no-index --find-links`, so a VPS without a
package index works. Only when the dependencies cannot be gathered here does the VPS's index fill
them in.

How it runs: a systemd user service with lingering (`--system`: a system unit through sudo) where
systemd runs; elsewhere (containers, some VPS images) detached with setsid/nohup, which
`InstallResult.note` says plainly will not come back after a reboot.

Every command that changes the VPS goes through `Remote.run(..., changes=True)` or
`Remote.would()`, so `--dry-run` lists it and runs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import posixpath
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from clawd_gateway.errors import UserError
from clawd_gateway.service.spec import MARKER

from .. import __version__
from .remote import Remote, RemoteError

UNIT_NAME = "clawd-gateway.service"
MIN_PYTHON = (3, 10)
HEALTH_TIMEOUT = 30.0
Progress = Callable[[str], None]
#: PEP 600's aliases: glibc minor -> (old tag, the architectures it was defined for)
LEGACY_MANYLINUX = {
    17: ("manylinux2014", ("x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x")),
    12: ("manylinux2010", ("x86_64", "i686")),
    5: ("manylinux1", ("x86_64", "i686")),
}


@dataclass(frozen=True)
class InstallResult:
    venv: str  # the remote venv
    token_file: str  # the remote 0600 env file holding OPENCLAW_GATEWAY_TOKEN
    service: str  # "systemd-user" | "systemd-system" | "detached"
    note: str | None = None  # what the user must know (e.g. "will not come back after a reboot")


@dataclass(frozen=True)
class Layout:
    """Where everything lives on the VPS, from the account's own environment."""

    user: str
    uid: int
    home: str
    data: str  # ${XDG_DATA_HOME:-~/.local/share}/clawd-gateway
    config_home: str  # ${XDG_CONFIG_HOME:-~/.config}
    state_dir: str  # ${XDG_STATE_HOME:-~/.local/state}/clawd/gateway (the gateway's own default)

    @property
    def venv(self) -> str:
        return f"{self.data}/venv"

    @property
    def python(self) -> str:
        return f"{self.venv}/bin/python"

    @property
    def config(self) -> str:
        return f"{self.data}/openclaw.json"

    @property
    def log(self) -> str:
        return f"{self.data}/gateway.log"

    @property
    def pid_file(self) -> str:
        return f"{self.data}/gateway.pid"

    @property
    def wheels(self) -> str:
        return f"{self.data}/wheels"

    @property
    def user_env_file(self) -> str:
        return f"{self.config_home}/clawd-gateway/env"

    @property
    def user_unit(self) -> str:
        return f"{self.config_home}/systemd/user/{UNIT_NAME}"


@dataclass(frozen=True)
class PythonInfo:
    """The VPS's python3: what a wheelhouse built here must match."""

    path: str
    version: tuple[int, int]
    implementation: str  # "cp", "pp"
    machine: str  # x86_64, aarch64
    libc: str  # "glibc" | "musl" | ""
    libc_version: tuple[int, int]
    venv_module: bool

    def pip_target_args(self) -> list[str]:
        """`pip download` flags that select wheels for this interpreter and platform."""
        major, minor = self.version
        args = ["--python-version", f"{major}.{minor}", "--implementation", self.implementation]
        if self.implementation == "cp":
            args += ["--abi", f"cp{major}{minor}", "--abi", "abi3", "--abi", "none"]
        for tag in platform_tags(self.libc, self.libc_version, self.machine):
            args += ["--platform", tag]
        return args


def platform_tags(libc: str, libc_version: tuple[int, int], machine: str) -> list[str]:
    """The wheel platform tags a Linux interpreter accepts, newest first (PEP 600 / 656)."""
    arch = machine.replace("-", "_").replace(".", "_")
    major, minor = libc_version
    tags: list[str] = []
    if libc == "glibc" and major == 2:
        for m in range(minor, 4, -1):
            tags.append(f"manylinux_2_{m}_{arch}")
            legacy = LEGACY_MANYLINUX.get(m)
            if legacy and arch in legacy[1]:
                tags.append(f"{legacy[0]}_{arch}")
    elif libc == "musl" and major == 1:
        tags += [f"musllinux_1_{m}_{arch}" for m in range(minor, -1, -1)]
    return tags


# --- the VPS account and its Python ----------------------------------------------------------------

_LAYOUT_SCRIPT = r"""
printf '%s\n' "$(id -un)" "$(id -u)" "$HOME" \
  "${XDG_DATA_HOME:-$HOME/.local/share}" "${XDG_CONFIG_HOME:-$HOME/.config}" \
  "${XDG_STATE_HOME:-$HOME/.local/state}"
"""

_PYTHON_PROBE = r"""
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
    res = await remote.run(_LAYOUT_SCRIPT, check=True)
    lines = res.stdout.splitlines()
    if len(lines) < 6:
        raise RemoteError(f"{remote.target}: cannot read the account's environment: {res.stdout!r}")
    user, uid, home, data, config_home, state = lines[:6]
    return Layout(user, int(uid), home, f"{data}/clawd-gateway", config_home, f"{state}/clawd/gateway")


async def os_release(remote: Remote) -> dict[str, str]:
    text = await remote.read_file("/etc/os-release")
    if text is None:
        text = await remote.read_file("/usr/lib/os-release") or ""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            with contextlib.suppress(ValueError):
                value = " ".join(shlex.split(value))
            out[key.strip()] = value
    return out


def venv_package_hint(release: dict[str, str], version: tuple[int, int] | None) -> tuple[str, str]:
    """(package, install command) that brings `python3 -m venv` to this distribution."""
    ids = {release.get("ID", "").lower(), *release.get("ID_LIKE", "").lower().split()}
    if ids & {"debian", "ubuntu", "raspbian", "linuxmint", "pop"}:
        pkg = f"python{version[0]}.{version[1]}-venv" if version else "python3-venv"
        return pkg, f"sudo apt install {pkg}"
    if ids & {"fedora", "rhel", "centos", "rocky", "almalinux", "amzn", "ol"}:
        return "python3", "sudo dnf install python3   # its venv module is part of python3"
    if "alpine" in ids:
        return "python3", "sudo apk add python3 py3-virtualenv   # venv comes with python3"
    if ids & {"arch", "manjaro", "endeavouros"}:
        return "python", "sudo pacman -S python   # venv is part of Arch's python"
    if ids & {"opensuse", "suse", "opensuse-leap", "opensuse-tumbleweed", "sles"}:
        return "python3", "sudo zypper install python3"
    return "python3-venv", "install your distribution's package with Python's venv and ensurepip modules"


async def probe_python(remote: Remote) -> PythonInfo | None:
    res = await remote.run("python3 -c " + shlex.quote(_PYTHON_PROBE))
    if not res.ok:
        return None
    try:
        raw = json.loads(res.stdout.strip().splitlines()[-1])
        lv = [int(x) for x in re.findall(r"\d+", str(raw.get("libc_version") or ""))[:2]] or [0, 0]
        return PythonInfo(
            path=str(raw["path"]),
            version=(int(raw["version"][0]), int(raw["version"][1])),
            implementation=str(raw["implementation"]),
            machine=str(raw["machine"]),
            libc=str(raw["libc"] or ""),
            libc_version=(lv[0], lv[1] if len(lv) > 1 else 0),
            venv_module=bool(raw["venv"]),
        )
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _no_venv_error(remote: Remote, release: dict[str, str], py: PythonInfo | None, detail: str) -> UserError:
    pkg, cmd = venv_package_hint(release, py.version if py else None)
    distro = release.get("PRETTY_NAME") or release.get("ID") or "this system"
    what = "has no python3" if py is None else f"has python3 {py.version[0]}.{py.version[1]} without venv"
    return UserError(
        f"{remote.target} ({distro}) {what}: clawd-gateway needs `python3 -m venv`; "
        f"install the {pkg} package there" + (f" ({detail})" if detail else ""),
        fix=f"on the VPS: {cmd} — then run setup-remote again",
    )


# --- the wheelhouse (built here, for the VPS's Python) ---------------------------------------------


def _wheel_version(name: str) -> str | None:
    parts = Path(name).name.split("-")
    return parts[1] if len(parts) >= 5 and parts[0].lower() == "clawd" else None


def _clawd_wheels(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.whl") if _wheel_version(p.name))


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
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in ("clawd", "pip", "setuptools", "wheel"):
            seen.setdefault(re.sub(r"[-_.]+", "-", name).lower(), dist.version)
    path.write_text("".join(f"{n}=={v}\n" for n, v in sorted(seen.items())))
    return path


async def build_wheel(source_dir: Path, dest: Path) -> Path:
    """`pip wheel --no-deps SOURCE -w DEST`: clawd's own wheel from a checkout."""
    dest.mkdir(parents=True, exist_ok=True)
    status, out = await _local(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", str(source_dir), "-w", str(dest)]
    )
    wheels = _clawd_wheels(dest)
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
    base = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(dest)]
    base += target.pip_target_args() if target else []
    with tempfile.TemporaryDirectory(prefix="clawd-constraints-") as tmp:
        pins = _constraints(Path(tmp) / "constraints.txt")
        detail = ""
        for extra in (["-c", str(pins)], []):
            status, out = await _local([*base, *extra, str(wheel)])
            if status == 0:
                return True, ""
            detail = "\n".join(out.strip().splitlines()[-3:])
    return False, detail


# --- remote helpers ----------------------------------------------------------------------------------


def _q(text: str) -> str:
    return shlex.quote(text)


async def _installed_version(remote: Remote, lay: Layout) -> str | None:
    res = await remote.run(f"{_q(lay.python)} -m clawd_gateway --version 2>/dev/null")
    m = re.search(r"clawd-gateway (\S+)", res.stdout)
    return m.group(1) if res.ok and m else None


async def _upload(remote: Remote, files: list[Path], directory: str, progress: Progress) -> None:
    size = sum(f.stat().st_size for f in files)
    remote.would(f"upload {len(files)} wheel(s) ({size / 1e6:.1f} MB) to {directory} over SFTP")
    if remote.dry_run:
        return
    await remote.run(f"mkdir -p -m 700 {_q(directory)}", check=True)
    sftp = await remote.sftp()
    progress(f"uploading {len(files)} wheel(s), {size / 1e6:.1f} MB, over SFTP")
    try:
        await sftp.put([str(f) for f in files], directory)
    except Exception as exc:
        raise RemoteError(f"{remote.target}: uploading the wheels to {directory} failed: {exc}") from None


async def _systemd(remote: Remote, lay: Layout, system: bool) -> bool:
    """Does systemd run on the VPS (and, for a user service, can this account reach its manager)?"""
    if not (await remote.run("test -d /run/systemd/system && command -v systemctl >/dev/null")).ok:
        return False
    if system:
        return True
    # The user manager exists once the user is logged in through PAM or lingers.
    res = await remote.run(f"XDG_RUNTIME_DIR=/run/user/{lay.uid} systemctl --user is-system-running")
    state = res.stdout.strip()
    return state in ("running", "degraded", "starting", "initializing") or (
        (await remote.run("command -v loginctl >/dev/null")).ok and "Failed to connect" in res.stderr
    )


async def _sudo_ok(remote: Remote) -> bool:
    return (await remote.run("sudo -n true")).ok


def _ask(question: str) -> bool:
    if not sys.stdin or not sys.stdin.isatty():
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


async def _gateway_pid(remote: Remote, lay: Layout) -> int | None:
    """The detached gateway's pid, if it is still that process (never a recycled pid)."""
    text = await remote.read_file(lay.pid_file)
    if not text or not text.strip().isdigit():
        return None
    pid = int(text.strip())
    res = await remote.run(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
    return pid if res.ok and "clawd_gateway" in res.stdout and lay.config in res.stdout else None


async def _ready(remote: Remote, lay: Layout, port: int) -> bool:
    code = (
        "import urllib.request,sys\n"
        f"try: urllib.request.urlopen('http://127.0.0.1:{port}/readyz', timeout=2); sys.exit(0)\n"
        "except Exception: sys.exit(1)\n"
    )
    return (await remote.run(f"{_q(lay.python)} -c {_q(code)}", timeout=10)).ok


async def _wait_ready(
    remote: Remote,
    lay: Layout,
    port: int,
    why_not: Callable[[], Awaitable[str]],
    alive: Callable[[], Awaitable[bool]] | None = None,
) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    exited = False
    while time.monotonic() < deadline:
        if await _ready(remote, lay, port):
            return
        if alive is not None and not await alive():
            exited = True
            break
        await asyncio.sleep(0.5)
    detail = await why_not()
    what = "exited" if exited else f"did not become ready within {HEALTH_TIMEOUT:g}s"
    raise RemoteError(
        f"{remote.target}: clawd-gateway (127.0.0.1:{port}) {what}" + (f":\n{detail}" if detail else ""),
        fix="read the log shown above; `--install` again after fixing it",
    )


def _config_text(port: int) -> str:
    conf = {"gateway": {"port": port, "bind": "loopback", "auth": {"mode": "token"}}}
    header = "// clawd-gateway, installed by `clawd setup-remote` (the secret is in its env file, not here)\n"
    return header + json.dumps(conf, indent=2) + "\n"


# --- install ---------------------------------------------------------------------------------------------


async def install_gateway(
    remote: Remote,
    *,
    port: int,
    source: str | None,
    system: bool,
    yes: bool,
    progress: Progress,
) -> InstallResult:
    """Install clawd-gateway for the remote account and start it; see the module docstring."""
    lay = await remote_layout(remote)
    progress(f"checking python3 on {remote.target}")
    release = await os_release(remote)
    py = await probe_python(remote)
    if py is None:
        raise _no_venv_error(remote, release, None, "")
    if py.version < MIN_PYTHON:
        raise UserError(
            f"{remote.target} has python3 {py.version[0]}.{py.version[1]}; clawd-gateway needs "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer",
            fix="install a newer python3 there (or use a newer distribution release)",
        )

    with tempfile.TemporaryDirectory(prefix="clawd-wheelhouse-") as tmp:
        clawd_wheel, wheels, version = await _source_wheels(source, Path(tmp), progress)
        have = await _installed_version(remote, lay)
        fresh_install = have != version
        if not fresh_install:
            progress(f"clawd-gateway {have} is already installed in {lay.venv}")
        else:
            if not py.venv_module:
                raise _no_venv_error(remote, release, py, "its ensurepip module is missing")
            await _make_venv(remote, lay, release, py, progress)  # first: a VPS without venv fails fast
            offline = bool(wheels)
            if clawd_wheel is not None:
                wheels, offline = await _wheelhouse(clawd_wheel, Path(tmp) / "wheelhouse", py, progress)
            await _pip_install(remote, lay, wheels, offline, version, progress)

    old_config = await remote.read_file(lay.config)
    config_changed = old_config != _config_text(port)
    if config_changed:
        await remote.run(f"mkdir -p -m 700 {_q(lay.data)}", check=True, changes=True)
        await remote.write_file_atomic(lay.config, _config_text(port), 0o600)
    restart = fresh_install or config_changed

    if await _systemd(remote, lay, system):
        if system:
            return await _service_system(remote, lay, port, yes, restart, progress)
        return await _service_user(remote, lay, port, restart, progress)
    return await _detached(remote, lay, port, restart, system, progress)


async def _source_wheels(
    source: str | None, tmp: Path, progress: Progress
) -> tuple[Path | None, list[Path], str]:
    """What `source` gives: (clawd's wheel still to be completed with its dependencies, a
    complete directory of wheels, the clawd version to install). Without a source: the VPS's
    package index, this client's version."""
    if source is None:
        return None, [], __version__
    src = Path(source).expanduser()
    if src.is_file() and src.suffix == ".whl" and _wheel_version(src.name):
        return src, [], _wheel_version(src.name) or __version__
    if src.is_dir() and ((src / "pyproject.toml").exists() or (src / "setup.py").exists()):
        progress(f"building a wheel from {src} (pip wheel --no-deps)")
        wheel = await build_wheel(src, tmp / "built")
        return wheel, [], _wheel_version(wheel.name) or __version__
    if src.is_dir() and _clawd_wheels(src):
        version = _wheel_version(_clawd_wheels(src)[-1].name) or __version__
        return None, sorted(src.glob("*.whl")), version
    raise UserError(
        f"--from {source}: not a clawd wheel, a clawd source dir or a directory of wheels holding clawd",
        fix="pass a clawd-*.whl, a checkout (with pyproject.toml) or a directory of wheels",
    )


async def _wheelhouse(
    wheel: Path, house: Path, py: PythonInfo, progress: Progress
) -> tuple[list[Path], bool]:
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


async def _make_venv(
    remote: Remote, lay: Layout, release: dict[str, str], py: PythonInfo, progress: Progress
) -> None:
    progress(f"creating a venv in {lay.venv}")
    await remote.run(f"mkdir -p -m 700 {_q(lay.data)}", check=True, changes=True)
    res = await remote.run(
        f"rm -rf {_q(lay.venv)} && python3 -m venv {_q(lay.venv)}", changes=True, timeout=300
    )
    if res.ok:
        return
    text = res.stdout + res.stderr
    await remote.run(f"rm -rf {_q(lay.venv)}", changes=True)  # never leave a half-made venv
    if "ensurepip" in text:
        raise _no_venv_error(remote, release, py, "`python3 -m venv` says ensurepip is not available")
    if "venv" in text:
        raise _no_venv_error(remote, release, py, (text.strip().splitlines() or [""])[-1].strip())
    raise RemoteError(
        f"{remote.target}: `python3 -m venv {lay.venv}` failed (exit {res.exit_status}): {text.strip()}"
    )


async def _pip_install(
    remote: Remote, lay: Layout, wheels: list[Path], offline: bool, version: str, progress: Progress
) -> None:
    pip = f"{_q(lay.python)} -m pip install --disable-pip-version-check --quiet"
    if wheels:
        await _upload(remote, wheels, lay.wheels, progress)
        # A complete wheelhouse needs no index: the VPS's own pip configuration (a mirror, extra
        # find-links, constraints) stays out of it, so what was gathered here is what lands there.
        env = "PIP_CONFIG_FILE=/dev/null " if offline else ""
        index = "--no-index " if offline else ""
        command = f"{env}{pip} {index}--find-links {_q(lay.wheels)} {_q(f'clawd=={version}')}"
        where = "the uploaded wheels" + ("" if offline else " and the VPS's package index")
    else:
        command = f"{pip} {_q(f'clawd=={version}')}"
        where = "the VPS's package index"
    progress(f"installing clawd {version} from {where}")
    res = await remote.run(command, changes=True, timeout=900)
    if wheels:
        await remote.run(f"rm -rf {_q(lay.wheels)}", changes=True)
    if not res.ok:
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-4:])
        fix = (
            "pass --from with a directory of wheels built for the VPS (clawd and every dependency)"
            if not offline
            else "check that the wheels match the VPS's Python and platform"
        )
        raise RemoteError(f"{remote.target}: pip could not install clawd {version}: {tail}", fix=fix)


def _install_service_cmd(lay: Layout, *flags: str) -> str:
    return shlex.join([lay.python, "-m", "clawd_gateway", "install-service", *flags, "--config", lay.config])


async def _service_user(
    remote: Remote, lay: Layout, port: int, restart: bool, progress: Progress
) -> InstallResult:
    runtime = f"XDG_RUNTIME_DIR=/run/user/{lay.uid}"
    note: str | None = None
    progress(f"keeping {lay.user}'s services running after logout (loginctl enable-linger)")
    linger = f"loginctl enable-linger {_q(lay.user)}"
    if not (await remote.run(linger, changes=True)).ok and not (
        await remote.run(f"sudo -n {linger}", changes=True)
    ).ok:
        note = (
            f"lingering could not be turned on for {lay.user}: the gateway stops when the last login "
            f"session ends (an admin can run: sudo {linger})"
        )
    if not remote.dry_run:
        for _ in range(40):  # the user manager starts once lingering is on
            if (await remote.run(f"test -S /run/user/{lay.uid}/systemd/private")).ok:
                break
            await asyncio.sleep(0.25)
    progress("installing the systemd user service (clawd-gateway install-service --user --enable)")
    await remote.run(f"{runtime} {_install_service_cmd(lay, '--user', '--enable')}", check=True, changes=True)
    if restart:
        await remote.run(f"{runtime} systemctl --user restart {UNIT_NAME}", check=True, changes=True)
    if not remote.dry_run:

        async def journal() -> str:
            res = await remote.run(f"{runtime} journalctl --user -u {UNIT_NAME} -n 15 --no-pager")
            return res.stdout.strip()

        await _wait_ready(remote, lay, port, journal)
    return InstallResult(lay.venv, lay.user_env_file, "systemd-user", note)


async def _service_system(
    remote: Remote, lay: Layout, port: int, yes: bool, restart: bool, progress: Progress
) -> InstallResult:
    command = _install_service_cmd(lay, "--enable")
    if not yes and not _ask(f"Install a system service on {remote.target} with `sudo {command}`?"):
        raise UserError(
            f"--system installs a system unit on {remote.target} through sudo, which was not confirmed",
            fix="answer yes, pass --yes, or leave out --system for a per-user service",
        )
    if not remote.dry_run and not await _sudo_ok(remote):
        raise UserError(
            f"sudo on {remote.target} needs a password, which setup-remote does not ask for",
            fix=f"run on the VPS: sudo {command}; or leave out --system for a per-user service",
        )
    progress("installing the systemd system service through sudo")
    await remote.run(f"sudo -n {command}", check=True, changes=True)
    if restart:
        await remote.run(f"sudo -n systemctl restart {UNIT_NAME}", check=True, changes=True)
    if not remote.dry_run:

        async def journal() -> str:
            res = await remote.run(f"sudo -n journalctl -u {UNIT_NAME} -n 15 --no-pager")
            return res.stdout.strip()

        await _wait_ready(remote, lay, port, journal)
    return InstallResult(
        lay.venv,
        "/etc/clawd-gateway/env",
        "systemd-system",
        "the token file is readable by root only (sudo cat /etc/clawd-gateway/env)",
    )


async def _detached(
    remote: Remote, lay: Layout, port: int, restart: bool, system: bool, progress: Progress
) -> InstallResult:
    note = (
        f"systemd is not running on {remote.target}, so clawd-gateway was started detached "
        f"(setsid/nohup, log {lay.log}): it will NOT come back after a reboot; start it again with "
        "`clawd setup-remote` (or the command in the log's first line)"
    )
    if system:
        note += "; --system needs systemd, so it runs as this account"
    progress("the gateway's 0600 env file: a generated token, kept on re-runs (install-service --user)")
    # Writes the 0600 env file (generating the token once; a re-run keeps it) and the user unit,
    # which a systemd that appears later (or the user) can use.
    await remote.run(_install_service_cmd(lay, "--user"), check=True, changes=True)
    pid = None if remote.dry_run else await _gateway_pid(remote, lay)
    if pid is not None and not restart and await _ready(remote, lay, port):
        progress(f"clawd-gateway is already running detached (pid {pid})")
        return InstallResult(lay.venv, lay.user_env_file, "detached", note)
    if pid is not None:
        progress(f"stopping the detached gateway (pid {pid}) to restart it")
        await _stop_pid(remote, pid)
    elif not remote.dry_run and await _ready(remote, lay, port):
        # Something that is not our gateway answers there: starting ours would fail to bind, and
        # the readiness check would be fooled by the other one.
        raise RemoteError(
            f"{remote.target}: port {port} on the VPS is already held by another process",
            fix="stop it, or choose another port with --remote-port",
        )
    argv = [
        lay.python,
        "-m",
        "clawd_gateway.service",
        "launch",
        "--env-file",
        lay.user_env_file,
        "--",
        "run",
        "--config",
        lay.config,
    ]
    run = shlex.join(argv)
    starter = (
        f"cd {_q(lay.home)} && "
        f"echo {_q('# started by clawd setup-remote: ' + run)} >> {_q(lay.log)} && "
        f"chmod 600 {_q(lay.log)} && "
        f"if command -v setsid >/dev/null; then S=setsid; else S=; fi; "
        f"nohup $S {run} >> {_q(lay.log)} 2>&1 < /dev/null & "
        f"echo $! > {_q(lay.pid_file)}"
    )
    progress(f"starting clawd-gateway detached on 127.0.0.1:{port} (no systemd here)")
    await remote.run(starter, check=True, changes=True)
    if not remote.dry_run:

        async def log_tail() -> str:
            res = await remote.run(f"tail -n 15 {_q(lay.log)}")
            return res.stdout.strip()

        async def alive() -> bool:
            return await _gateway_pid(remote, lay) is not None

        await _wait_ready(remote, lay, port, log_tail, alive)
    return InstallResult(lay.venv, lay.user_env_file, "detached", note)


async def _stop_pid(remote: Remote, pid: int) -> None:
    await remote.run(f"kill -TERM {pid}", changes=True)
    if remote.dry_run:
        return
    for _ in range(50):
        if not (await remote.run(f"kill -0 {pid} 2>/dev/null")).ok:
            return
        await asyncio.sleep(0.1)
    await remote.run(f"kill -KILL {pid}", changes=True)


# --- purge -----------------------------------------------------------------------------------------------


async def purge_gateway(remote: Remote, *, system: bool, progress: Progress) -> None:
    """Remove what install_gateway made: the service (stopped, disabled, unit and env file), the
    detached process, the venv, its config and log, and the gateway's state. Asks nothing."""
    lay = await remote_layout(remote)
    has_venv = (await remote.run(f"test -x {_q(lay.python)}")).ok
    pid = await _gateway_pid(remote, lay)
    if pid is not None:
        progress(f"stopping the detached clawd-gateway (pid {pid})")
        await _stop_pid(remote, pid)
    systemd = await _systemd(remote, lay, system)
    runtime = f"XDG_RUNTIME_DIR=/run/user/{lay.uid} "
    if system:
        progress("removing the system service through sudo")
        flags = ["--purge", *(["--disable"] if systemd else [])]
        if has_venv:
            cmd = shlex.join([lay.python, "-m", "clawd_gateway", "uninstall-service", *flags])
            await remote.run(f"sudo -n {cmd}", check=True, changes=True)
    unit = await remote.read_file(lay.user_unit)
    if unit is not None or await remote.read_file(lay.user_env_file) is not None:
        progress("removing the user service and its env file")
        if has_venv:
            flags = ["--user", "--purge", *(["--disable"] if systemd else [])]
            cmd = shlex.join([lay.python, "-m", "clawd_gateway", "uninstall-service", *flags])
            await remote.run((runtime if systemd else "") + cmd, check=True, changes=True)
        else:
            # No venv left to ask: remove the same two files by hand, the unit only if it is ours.
            if unit is not None and unit.startswith(MARKER):
                if systemd:
                    await remote.run(f"{runtime}systemctl --user disable --now {UNIT_NAME}", changes=True)
                await remote.run(f"rm -f {_q(lay.user_unit)}", changes=True)
            await remote.run(f"rm -f {_q(lay.user_env_file)}", changes=True)
            await remote.run(f"rmdir {_q(posixpath.dirname(lay.user_env_file))} 2>/dev/null", changes=True)
    progress(f"removing {lay.data} (venv, config, log) and the gateway state {lay.state_dir}")
    await remote.run(f"rm -rf {_q(lay.data)} {_q(lay.state_dir)}", check=True, changes=True)
    await remote.run(f"rmdir {_q(posixpath.dirname(lay.state_dir))} 2>/dev/null", changes=True)


__all__ = [
    "InstallResult",
    "Layout",
    "PythonInfo",
    "build_wheel",
    "build_wheelhouse",
    "install_gateway",
    "os_release",
    "platform_tags",
    "probe_python",
    "purge_gateway",
    "remote_layout",
    "venv_package_hint",
]
