"""The pure half of installing clawd-gateway on the VPS (setup_remote/install.py): where things
live, what the VPS's Python accepts, which package to name when venv is missing, the pip, unit and
launch command lines. No I/O here (no asyncio, no ssh, no files), so every rule is unit-testable;
the modules that talk to the VPS or run pip here build their commands with these functions.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from clawd_gateway.errors import UserError

UNIT_NAME = "clawd-gateway.service"
MIN_PYTHON = (3, 10)
#: PEP 600's aliases: glibc minor -> (old tag, the architectures it was defined for)
LEGACY_MANYLINUX = {
    17: ("manylinux2014", ("x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x")),
    12: ("manylinux2010", ("x86_64", "i686")),
    5: ("manylinux1", ("x86_64", "i686")),
}
SYSTEM_ENV_FILE = "/etc/clawd-gateway/env"


def q(text: str) -> str:
    return shlex.quote(text)


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


def parse_layout(stdout: str) -> Layout | None:
    """vpsenv.LAYOUT_SCRIPT's output as a Layout; None when it printed too little."""
    lines = stdout.splitlines()
    if len(lines) < 6:
        return None
    user, uid, home, data, config_home, state = lines[:6]
    return Layout(user, int(uid), home, f"{data}/clawd-gateway", config_home, f"{state}/clawd/gateway")


def parse_os_release(text: str) -> dict[str, str]:
    """os-release(5): KEY=value lines, values shell-unquoted (kept as written when they cannot be)."""
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


def parse_python_probe(stdout: str) -> PythonInfo | None:
    """vpsenv.PYTHON_PROBE's last output line as a PythonInfo; None when it is not what the probe prints."""
    try:
        raw = json.loads(stdout.strip().splitlines()[-1])
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


def no_venv_error(target: str, release: dict[str, str], py: PythonInfo | None, detail: str) -> UserError:
    """The error for a VPS whose python3 cannot make a venv, naming the package that fixes it."""
    pkg, cmd = venv_package_hint(release, py.version if py else None)
    distro = release.get("PRETTY_NAME") or release.get("ID") or "this system"
    what = "has no python3" if py is None else f"has python3 {py.version[0]}.{py.version[1]} without venv"
    return UserError(
        f"{target} ({distro}) {what}: clawd-gateway needs `python3 -m venv`; "
        f"install the {pkg} package there" + (f" ({detail})" if detail else ""),
        fix=f"on the VPS: {cmd} — then run setup-remote again",
    )


def venv_failure_detail(output: str) -> str | None:
    """Why `python3 -m venv` failed, when its output says venv/ensurepip is missing; None when it
    failed for another reason."""
    if "ensurepip" in output:
        return "`python3 -m venv` says ensurepip is not available"
    if "venv" in output:
        return (output.strip().splitlines() or [""])[-1].strip()
    return None


def parse_gateway_version(ok: bool, stdout: str) -> str | None:
    """The version `clawd-gateway --version` printed, if it ran."""
    m = re.search(r"clawd-gateway (\S+)", stdout)
    return m.group(1) if ok and m else None


# --- wheels and pip ----------------------------------------------------------------------------------


def wheel_version(name: str) -> str | None:
    """The version in a clawd wheel's file name; None for any other file."""
    parts = Path(name).name.split("-")
    return parts[1] if len(parts) >= 5 and parts[0].lower() == "clawd" else None


def pip_wheel_argv(python: str, source_dir: Path, dest: Path) -> list[str]:
    """`pip wheel --no-deps SOURCE -w DEST`: clawd's own wheel from a checkout."""
    return [python, "-m", "pip", "wheel", "--no-deps", "--quiet", str(source_dir), "-w", str(dest)]


def pip_download_argv(python: str, dest: Path, target: PythonInfo | None) -> list[str]:
    """`pip download` of binary wheels into `dest`, for `target`'s Python (this one's without it)."""
    base = [python, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(dest)]
    return base + (target.pip_target_args() if target else [])


def constraints_text(dists: Iterable[tuple[str | None, str]]) -> str:
    """pip constraints pinning (name, version) pairs: the first of each normalised name wins;
    clawd itself and the packaging tools are left free."""
    seen: dict[str, str] = {}
    for name, version in dists:
        if name and name.lower() not in ("clawd", "pip", "setuptools", "wheel"):
            seen.setdefault(re.sub(r"[-_.]+", "-", name).lower(), version)
    return "".join(f"{n}=={v}\n" for n, v in sorted(seen.items()))


def pip_install_command(lay: Layout, version: str, from_wheels: bool, offline: bool) -> tuple[str, str]:
    """(the remote pip command installing clawd==version, where it installs from)."""
    pip = f"{q(lay.python)} -m pip install --disable-pip-version-check --quiet"
    if not from_wheels:
        return f"{pip} {q(f'clawd=={version}')}", "the VPS's package index"
    # A complete wheelhouse needs no index: the VPS's own pip configuration (a mirror, extra
    # find-links, constraints) stays out of it, so what was gathered here is what lands there.
    env = "PIP_CONFIG_FILE=/dev/null " if offline else ""
    index = "--no-index " if offline else ""
    command = f"{env}{pip} {index}--find-links {q(lay.wheels)} {q(f'clawd=={version}')}"
    return command, "the uploaded wheels" + ("" if offline else " and the VPS's package index")


def pip_failure_fix(offline: bool) -> str:
    if offline:
        return "check that the wheels match the VPS's Python and platform"
    return "pass --from with a directory of wheels built for the VPS (clawd and every dependency)"


# --- the gateway's config, units and launch ----------------------------------------------------------


def config_text(port: int) -> str:
    """The openclaw.json written on the VPS: the port, bind loopback, token auth (no secret)."""
    conf = {"gateway": {"port": port, "bind": "loopback", "auth": {"mode": "token"}}}
    header = "// clawd-gateway, installed by `clawd setup-remote` (the secret is in its env file, not here)\n"
    return header + json.dumps(conf, indent=2) + "\n"


def install_service_cmd(lay: Layout, *flags: str) -> str:
    return shlex.join([lay.python, "-m", "clawd_gateway", "install-service", *flags, "--config", lay.config])


def uninstall_service_cmd(lay: Layout, *, user: bool, systemd: bool) -> str:
    flags = [*(["--user"] if user else []), "--purge", *(["--disable"] if systemd else [])]
    return shlex.join([lay.python, "-m", "clawd_gateway", "uninstall-service", *flags])


def user_runtime(lay: Layout) -> str:
    """The environment `systemctl --user` needs to find the account's manager from an ssh command."""
    return f"XDG_RUNTIME_DIR=/run/user/{lay.uid}"


def linger_cmd(lay: Layout) -> str:
    return f"loginctl enable-linger {q(lay.user)}"


def user_manager_up(state: str) -> bool:
    """`systemctl --user is-system-running` printed a state where the manager answers."""
    return state in ("running", "degraded", "starting", "initializing")


def ready_probe(lay: Layout, port: int) -> str:
    """A remote command that exits 0 when the gateway on `port` answers /readyz."""
    code = (
        "import urllib.request,sys\n"
        f"try: urllib.request.urlopen('http://127.0.0.1:{port}/readyz', timeout=2); sys.exit(0)\n"
        "except Exception: sys.exit(1)\n"
    )
    return f"{q(lay.python)} -c {q(code)}"


def is_our_gateway(cmdline: str, lay: Layout) -> bool:
    """Is a process with this (NUL-separated, spaced) command line the gateway installed here?"""
    return "clawd_gateway" in cmdline and lay.config in cmdline


def launch_argv(lay: Layout) -> list[str]:
    """The detached gateway: the launcher reads the 0600 env file, then runs the gateway."""
    return [
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


def detached_starter(lay: Layout) -> str:
    """The remote shell line that starts the gateway detached (setsid where there is one, nohup),
    logging to lay.log (first line: the command, to start it again by hand) and writing its pid."""
    run = shlex.join(launch_argv(lay))
    return (
        f"cd {q(lay.home)} && "
        f"echo {q('# started by clawd setup-remote: ' + run)} >> {q(lay.log)} && "
        f"chmod 600 {q(lay.log)} && "
        f"if command -v setsid >/dev/null; then S=setsid; else S=; fi; "
        f"nohup $S {run} >> {q(lay.log)} 2>&1 < /dev/null & "
        f"echo $! > {q(lay.pid_file)}"
    )


def detached_note(target: str, lay: Layout, system: bool) -> str:
    note = (
        f"systemd is not running on {target}, so clawd-gateway was started detached "
        f"(setsid/nohup, log {lay.log}): it will NOT come back after a reboot; start it again with "
        "`clawd setup-remote` (or the command in the log's first line)"
    )
    if system:
        note += "; --system needs systemd, so it runs as this account"
    return note


__all__ = [
    "LEGACY_MANYLINUX",
    "MIN_PYTHON",
    "SYSTEM_ENV_FILE",
    "UNIT_NAME",
    "InstallResult",
    "Layout",
    "PythonInfo",
    "config_text",
    "constraints_text",
    "detached_note",
    "detached_starter",
    "install_service_cmd",
    "is_our_gateway",
    "launch_argv",
    "linger_cmd",
    "no_venv_error",
    "parse_gateway_version",
    "parse_layout",
    "parse_os_release",
    "parse_python_probe",
    "pip_download_argv",
    "pip_failure_fix",
    "pip_install_command",
    "pip_wheel_argv",
    "platform_tags",
    "q",
    "ready_probe",
    "uninstall_service_cmd",
    "user_manager_up",
    "user_runtime",
    "venv_package_hint",
    "wheel_version",
]
