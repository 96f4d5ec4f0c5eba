#!/usr/bin/env python3
"""Build dist/clawd-gateway_<version>_<arch>.deb with standard Debian tooling (dpkg-deb).

Why a private venv: the gateway's dependencies (websockets 14+, cryptography 42+, json5, ...)
are newer than a stable distribution ships, so the package carries its own virtual environment
in /opt/clawd-gateway/venv, built here from the local clawd wheel plus its dependencies from
the configured package index. After the build nothing needs the network: `dpkg -i` works
offline. Give `--wheelhouse DIR` (wheels for every dependency) to build offline as well.

The venv is created with the *target* interpreter (Debian's /usr/bin/python3 → python3.X, the
package depends on exactly that python3.X) inside a staging root, then relocated: scripts and
pyvenv.cfg have the staging prefix rewritten, and bytecode is compiled with the final paths.
The systemd unit comes from clawd_gateway.service.package_spec(), the one source of truth that
packaging/systemd/clawd-gateway.service is checked against.

Usage: python3 packaging/deb/build.py [--out DIR] [--python /usr/bin/python3] [--wheelhouse DIR]
Needs: dpkg-deb (package dpkg), python3-venv for the target interpreter.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "gateway"))  # render from this checkout, not an installed copy

from clawd_gateway import __version__  # noqa: E402
from clawd_gateway.service import (  # noqa: E402
    PACKAGE_CONFIG,
    PACKAGE_PREFIX,
    UNIT_NAME,
    package_spec,
    render_systemd_unit,
)

VENV = PACKAGE_PREFIX / "venv"
# What the wheel needs from the checkout; nothing else (no .venv, .git, build litter).
SOURCES = ("pyproject.toml", "README.md", "gateway", "client")


def log(msg: str) -> None:
    print(f"build.py: {msg}", file=sys.stderr, flush=True)


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a build step; on failure show its output and stop with that exit code."""
    proc = subprocess.run(argv, text=True, capture_output=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"build.py: `{' '.join(argv)}` failed with exit {proc.returncode}")
    return proc


def copy_sources(dest: Path) -> None:
    """A clean copy, so setuptools' build/ and egg-info litter never lands in the checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    dest.mkdir(parents=True)
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)


def build_venv(root: Path, python: Path, work: Path, wheelhouse: Path | None) -> str:
    """Create the venv in the staging root, install the wheel and deps; returns 'pythonX.Y'."""
    venv = root / str(VENV).lstrip("/")
    venv.parent.mkdir(parents=True)
    run([str(python), "-m", "venv", str(venv)])
    vpy = venv / "bin" / "python"
    pyver = run([str(vpy), "-c", "import sys; print(f'python{sys.version_info[0]}.{sys.version_info[1]}')"])
    index = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse else []
    src, wheels = work / "src", work / "wheels"
    copy_sources(src)
    pip = [str(vpy), "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    run([*pip, "wheel", *index, "--no-deps", "-w", str(wheels), str(src)])
    wheel = next(wheels.glob("clawd-*.whl"))
    run([*pip, "install", *index, "--no-compile", "--no-warn-script-location", str(wheel)])
    # A lean, sealed venv: nobody pip-installs into a packaged one.
    run([*pip, "uninstall", "-y", "pip", "setuptools"])
    return pyver.stdout.strip()


def relocate(root: Path) -> None:
    """Rewrite the staging prefix to the final one in scripts and pyvenv.cfg; fail on leftovers."""
    venv = root / str(VENV).lstrip("/")
    staged = str(venv).encode()
    for path in venv.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if staged in data:
            path.write_bytes(data.replace(staged, str(VENV).encode()))
    # pip records the temporary wheel's file:// URL here; it means nothing on the target.
    for direct in venv.rglob("*.dist-info/direct_url.json"):
        record = direct.parent / "RECORD"
        lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
        record.write_text("".join(ln for ln in lines if "/direct_url.json," not in ln), encoding="utf-8")
        direct.unlink()
    for cache in list(venv.rglob("__pycache__")):
        shutil.rmtree(cache)
    files = [p for p in venv.rglob("*") if p.is_file() and not p.is_symlink()]
    leftovers = [p for p in files if staged in p.read_bytes()]
    if leftovers:
        raise SystemExit(f"build.py: staging path left in {leftovers[:5]}")
    for link in venv.rglob("*"):
        if link.is_symlink() and str(os.readlink(link)).startswith(str(root)):
            raise SystemExit(f"build.py: {link} points into the staging root")


def compile_bytecode(root: Path, python: Path) -> None:
    """Bytecode with the final paths: the clawd-gateway user cannot write __pycache__ in /opt."""
    lib = root / str(VENV).lstrip("/") / "lib"
    run([str(python), "-m", "compileall", "-q", "-j0", "-s", str(root), "-p", "/", str(lib)])


def add_files(root: Path) -> None:
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/clawd-gateway").symlink_to(VENV / "bin" / "clawd-gateway")
    unit = root / "lib/systemd/system" / UNIT_NAME
    unit.parent.mkdir(parents=True)
    unit.write_text(render_systemd_unit(package_spec()), encoding="utf-8")
    conf = root / str(PACKAGE_CONFIG).lstrip("/")
    conf.parent.mkdir(parents=True)
    shutil.copy2(HERE / "openclaw.json", conf)
    doc = root / "usr/share/doc/clawd-gateway"
    doc.mkdir(parents=True)
    shutil.copy2(HERE / "copyright", doc / "copyright")


def write_control(root: Path, arch: str, pyver: str) -> None:
    debian = root / "DEBIAN"
    debian.mkdir()
    size_kib = sum(p.lstat().st_size for p in root.rglob("*") if not p.is_dir()) // 1024 + 1
    control = (HERE / "control.in").read_text(encoding="utf-8")
    for key, value in {
        "VERSION": __version__,
        "ARCH": arch,
        "INSTALLED_SIZE": str(size_kib),
        "PYTHON_PACKAGE": pyver,  # the venv links to /usr/bin/pythonX.Y: depend on exactly it
    }.items():
        control = control.replace(f"@{key}@", value)
    if "@" in re.sub(r"<[^>]*>", "", control):
        raise SystemExit("build.py: unreplaced placeholder in control.in")
    (debian / "control").write_text(control, encoding="utf-8")
    (debian / "conffiles").write_text(f"{PACKAGE_CONFIG}\n", encoding="utf-8")
    for script in ("postinst", "prerm", "postrm"):
        shutil.copy2(HERE / script, debian / script)
        (debian / script).chmod(0o755)


def normalize_modes(root: Path) -> None:
    """0755 dirs and executables, 0644 files: independent of the builder's umask."""
    root.chmod(0o755)
    for p in root.rglob("*"):
        if p.is_symlink():
            continue
        if p.is_dir():
            p.chmod(0o755)
        else:
            p.chmod(0o755 if p.stat().st_mode & 0o111 else 0o644)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "dist", help="output directory (default: dist/)")
    ap.add_argument(
        "--python", type=Path, default=Path("/usr/bin/python3"), help="target interpreter (%(default)s)"
    )
    ap.add_argument("--wheelhouse", type=Path, help="build offline from the wheels in this directory")
    args = ap.parse_args(argv)
    for tool in ("dpkg-deb", "dpkg"):
        if not shutil.which(tool):
            raise SystemExit(f"build.py: {tool} not found (apt-get install dpkg)")
    python = Path(os.path.realpath(args.python))  # /usr/bin/python3 -> /usr/bin/python3.11
    if not python.is_file():
        raise SystemExit(f"build.py: {args.python} not found (apt-get install python3 python3-venv)")
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clawd-deb-") as tmp:
        work = Path(tmp)
        root = work / "root"
        pyver = build_venv(root, python, work, args.wheelhouse)
        log(f"venv with {pyver} built in {time.monotonic() - t0:.1f}s")
        relocate(root)
        compile_bytecode(root, python)
        add_files(root)
        write_control(root, arch, pyver)
        normalize_modes(root)
        args.out.mkdir(parents=True, exist_ok=True)
        deb = args.out / f"clawd-gateway_{__version__}_{arch}.deb"
        run(["dpkg-deb", "--build", "--root-owner-group", "-Zxz", str(root), str(deb)])
    log(f"wrote {deb} ({deb.stat().st_size // 1024} KiB) in {time.monotonic() - t0:.1f}s")
    print(deb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
