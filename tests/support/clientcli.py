"""Running the real `clawd` CLI as a user would: one-shot commands, and `clawd connect` held open
until it reports healthy.

Shared by the CLI tests of each method (ssh, direct, tailscale) so they differ only in how the
profile is made, not in how the client is started, watched and stopped.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

CONNECT_HEALTHY_S = 30.0


def clawd(
    args: list[str], env: Mapping[str, str], *, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`clawd ARGS...` to completion, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "clawd_client", *args],
        capture_output=True,
        text=True,
        env=dict(env),
        input=input,
        timeout=timeout,
    )


def isolated_env(tmp_path: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) without the user's OpenClaw settings, with the
    client's home, config and state under `tmp_path`."""
    src = os.environ if base is None else base
    env = {k: v for k, v in src.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_"))}
    env.update(
        HOME=str(tmp_path / "home"),
        CLAWD_CONFIG_DIR=str(tmp_path / "cfg"),
        CLAWD_STATE_DIR=str(tmp_path / "state"),
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Connected:
    """A running `clawd connect`; `returncode` is set once it has been stopped."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    returncode: int | None = None

    @property
    def output(self) -> str:
        """Everything it printed so far, stdout and stderr."""
        return "".join(self.lines)


@contextlib.contextmanager
def connected(
    profile: str, env: Mapping[str, str], timeout: float = CONNECT_HEALTHY_S
) -> Iterator[Connected]:
    """`clawd connect PROFILE`, yielded once it prints a healthy state line; SIGTERM on exit.

    Both pipes are always drained (a full pipe would stall the client); the healthy line is
    the one `connect` prints on stdout for each state change."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "clawd_client", "connect", profile],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env),
    )
    run = Connected(proc)
    healthy = threading.Event()

    def pump(stream: IO[str] | None, watch: bool) -> None:
        assert stream is not None
        for line in stream:
            run.lines.append(line)
            if watch and " healthy " in line:
                healthy.set()

    threads = [
        threading.Thread(target=pump, args=(proc.stdout, True), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, False), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        assert healthy.wait(timeout), run.output
        yield run
    finally:
        proc.terminate()
        run.returncode = proc.wait(15)
        for t in threads:
            t.join(5)


def agent_pid(env: Mapping[str, str]) -> int | None:
    """The pid of the clawd agent running for this environment, from its lock record."""
    import json

    for lock in (Path(env["CLAWD_STATE_DIR"]) / "run").glob("agent.lock"):
        try:
            data = json.loads(lock.read_text().split("\0")[0] or "{}")
        except (OSError, ValueError):
            return None
        pid = data.get("pid")
        return pid if isinstance(pid, int) else None
    return None


def stop_agent(env: Mapping[str, str], timeout: float = 20.0) -> None:
    """Stop the agent a test started (through the CLI, as a user would), and make sure it is gone."""
    import psutil

    pid = agent_pid(env)
    clawd(["agent", "--stop"], env, timeout=timeout)
    if pid is None:
        return
    try:
        proc = psutil.Process(pid)
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        proc.kill()


def reap_agents(state_prefix: str, timeout: float = 10.0) -> list[int]:
    """Stop every clawd agent whose state dir lies under `state_prefix` (a test session's temp
    root): the safety net for a test that started one (any `clawd up`/`connect` does) without the
    `client_env` fixture that stops it. Returns the pids it had to stop."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if "clawd_client" not in cmd or "agent" not in cmd:
            continue
        try:
            if proc.environ().get("CLAWD_STATE_DIR", "").startswith(state_prefix):
                proc.terminate()
                found.append(proc)
        except psutil.Error:
            continue
    _gone, alive = psutil.wait_procs(found, timeout=timeout)
    for proc in alive:
        proc.kill()
    return [p.pid for p in found]


def ssh_profile_args(sshd: object, remote_port: int, local_port: int) -> list[str]:
    """`clawd profile add` flags for the test sshd: its client key, its pinned host key, the
    gateway's port behind it and a local port."""
    s: Any = sshd
    return [
        "--ssh", f"{s.user}@127.0.0.1:{s.port}",
        "--identity", str(s.client_key_path),
        "--known-hosts", str(s.known_hosts),
        "--remote-port", str(remote_port),
        "--local-port", str(local_port),
    ]  # fmt: skip


def add_ssh_profile(
    env: Mapping[str, str],
    sshd: object,
    remote_port: int,
    name: str,
    *extra: str,
    token: str | None = None,
    local_port: int | None = None,
) -> int:
    """`clawd profile add NAME --ssh ...` (+ `clawd secret set` when a token is given), as a user
    types them; returns the profile's local port."""
    from tests.support.servers import free_port

    port = local_port or free_port()
    r = clawd(["profile", "add", name, *ssh_profile_args(sshd, remote_port, port), *extra], env)
    assert r.returncode == 0, r.stdout + r.stderr
    if token is not None:
        r = clawd(["secret", "set", name], env, input=token + "\n")
        assert r.returncode == 0, r.stderr
    return port
