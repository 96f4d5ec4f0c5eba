#!/usr/bin/env python3
"""The clawd agent under an sshd outage, many sshd restarts, and at rest (loopback only).

    python bench/agent_bench.py                 # full: 200 cycles, 60 s idle (about 15 min)
    python bench/agent_bench.py --quick         # 20 cycles, 15 s idle (about 3 min)
    python bench/agent_bench.py --only outage --skip-ssh

A real OpenSSH sshd (tests/support/sshd.py), a clawd-gateway process (token auth), a real Secret
Service keyring (tests/support/keyring_session.py), and the agent as a user runs it: profiles made
with `clawd profile add` + `clawd secret set`, brought up with `clawd up` (which starts the
detached agent), in an isolated HOME / CLAWD_CONFIG_DIR / CLAWD_STATE_DIR. Each phase gets its own
CLAWD_STATE_DIR, so its own agent process. Measured:

  (1) outage: sshd killed (master, then sessions: see kill_sshd), down --outage-seconds (3 s),
      started again. --outage-clients (100) clients start evenly spread over the outage; each
      opens the agent's local port and does the gateway handshake (challenge, connect with the
      token) and a `health` call. Counted: refused, answered, other failures; and how long after
      sshd was back the last one was answered. Run against the stock gateway; against
      a second gateway whose pre-auth cap per IP is raised (--raised-cap), because every client
      behind a tunnel arrives from the SSH server's loopback and 100 released at once meet the
      stock cap of 32; and against the stock gateway behind a relay that adds --slow-rtt-ms
      (200 ms) between sshd and the gateway, so each client stays in pre-auth longer. Then
      against `ssh -N -L` restarted by a loop whenever it exits (autossh-style,
      --ssh-restart-delay between runs) and the stock gateway.
  (2) cycles: --cycles (200) sshd kill/restart cycles (down --downtime s each) under light
      traffic (one handshake + health every 0.5 s through the tunnel); the tunnel is healthy for
      2 s before each kill. Per cycle: sshd back ("Server listening") to `healthy`, taken from
      the agent's state stream (the status's `since`). The agent's fds, threads and RSS at the
      start and the end.
  (3) idle: the agent with 3 profiles up, idle for --idle-seconds (60): CPU in % of one core
      (schedstat, ns resolution), wake-ups and RSS (max of 1 s samples); then `clawd status` and
      `clawd status --json` wall time (median of 20 runs each).

It prints a table with every figure beside its target; it asserts nothing (exit 0 unless the
setup fails). Everything listens on 127.0.0.1; every process started here is stopped by pid in a
finally block, and the temp dir goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
import websockets  # noqa: E402
from tests.support.keyring_session import secret_service_session  # noqa: E402
from tests.support.sshd import SSHD, SshdServer  # noqa: E402
from tests.support.wsclient import connect_params  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402

from clawd_client import api  # noqa: E402
from clawd_client.engine import TunnelStatus  # noqa: E402

HOST = "127.0.0.1"
TOKEN = "agent-bench-token-0123456789abcdef0123"
CLIENT_TIMEOUT_S = 40.0  # longer than the profile's 30 s hold: a client fails only if the agent drops it

# Targets (issue 11 "Numbers").
T_REFUSED = 0
T_LAST_ANSWER_S = 1.0
T_CYCLE_S = 2.0
T_RSS_GROWTH_MB = 10.0
T_IDLE_CPU_PCT = 0.2
T_IDLE_RSS_MB = 60.0
T_STATUS_S = 0.15


# -- small utilities ------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_open(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        if time.monotonic() > deadline:
            raise TimeoutError(f"port {port} not open after {timeout:g}s")
        time.sleep(0.01)


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def stop_popen(proc: subprocess.Popen[Any] | None, grace: float = 5.0) -> None:
    """SIGTERM by pid, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(5)


def cpu_ticks_s(pid: int) -> float:
    """user+system CPU seconds (10 ms clock ticks; counts threads that have ended too)."""
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def cpu_ns_s(pid: int) -> float:
    """CPU seconds of all live threads in ns resolution (/proc/PID/task/*/schedstat), as
    bench/tray_bench.py measures it: 0.1 % over 60 s is only 6 clock ticks."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def voluntary_switches(pid: int) -> int:
    """Voluntary context switches of all threads: each is a sleep, so a wake-up follows."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


def clawd_exe() -> list[str]:
    """The `clawd` a user runs: the venv's console script beside this interpreter."""
    exe = Path(sys.executable).parent / "clawd"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "clawd_client"]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_sshd(sshd: SshdServer) -> int:
    """sshd gone, master and sessions; returns how many rescans still found a session.

    Not SshdServer.close(), for two reasons. It kills the sessions before the master, and an agent
    whose healthy link drops reconnects at once (flap guard), so it reaches the still-listening
    master within those milliseconds and its new session outlives the master. And its session
    scan after the master is gone sees only sockets (psutil.net_connections, errors suppressed):
    in one of 200 cycles on a busy box it found nothing and the tunnel stayed up. So: take the
    master's children first, stop the master, kill, and rescan until a scan finds nothing."""
    pids = set(sshd.sessions())  # the master still runs: its children, plus sockets on the port
    sshd.stop()
    extra = 0
    for scan in range(5):
        pids |= set(sshd.sessions())
        pids = {p for p in pids if _alive(p)}
        if not pids:
            break
        extra += scan > 0
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.005)
        pids = set()
    return extra


# -- one gateway round trip, the way a client does it ---------------------------------------------


async def _round_trip(port: int, timeout: float) -> str:
    async with ws_connect(
        f"ws://{HOST}:{port}",
        open_timeout=timeout,
        compression=None,
        proxy=None,
        max_size=16 * 1024 * 1024,
        ping_interval=None,
    ) as ws:

        async def res(rid: str) -> dict[str, Any]:
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("type") == "res" and frame.get("id") == rid:
                    return dict(frame)

        first = json.loads(await ws.recv())
        if first.get("event") != "connect.challenge":
            return f"no challenge: {str(first)[:60]}"
        connect = {"type": "req", "id": "c1", "method": "connect", "params": connect_params(TOKEN)}
        await ws.send(json.dumps(connect))
        hello = await res("c1")
        if not hello.get("ok"):
            return f"connect refused: {hello.get('error')}"
        await ws.send(json.dumps({"type": "req", "id": "h1", "method": "health"}))
        health = await res("h1")
        ok = health.get("ok") and (health.get("payload") or {}).get("ok", True)
        return "answered" if ok else f"health not ok: {str(health)[:80]}"


async def gateway_call(port: int, timeout: float = CLIENT_TIMEOUT_S) -> str:
    """Open ws://127.0.0.1:PORT, read the challenge, connect with the token, call `health`.
    Returns "answered", "refused" (TCP refused), "http NNN" (the upgrade was answered with an
    HTTP error), "timeout", or the name of the exception that ended it."""
    try:
        return await asyncio.wait_for(_round_trip(port, timeout), timeout)
    except ConnectionRefusedError:
        return "refused"
    except websockets.exceptions.InvalidStatus as exc:
        return f"http {exc.response.status_code}"
    except (TimeoutError, asyncio.TimeoutError):
        return "timeout"
    except Exception as exc:  # every way a client can fail is a figure, not a crash
        return type(exc).__name__


# -- processes: gateway, keyring, the agent's environment -----------------------------------------


def clean_env(base: dict[str, str], home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in base.items()
        if not k.startswith(("OPENCLAW_", "CLAWDBOT_", "CLAWD_", "SSH_AUTH_SOCK", "SSH_AGENT", "XDG_RUNTIME"))
    }
    env.update({"HOME": str(home), "PYTHONUNBUFFERED": "1", **extra})
    return env


# The gateway with its pre-auth cap per client address raised: every client behind a tunnel arrives
# from the SSH server's loopback, so 100 held clients released at once meet the cap of 32
# unauthenticated sockets per IP. This launcher (bench only) separates the agent's figure from that.
_RAISED_CAP = """
import runpy, sys
import clawd_gateway.server as s
s.MAX_PREAUTH_CONNECTIONS_PER_IP = int(sys.argv.pop(1))
sys.argv[0] = "clawd_gateway"
runpy.run_module("clawd_gateway", run_name="__main__", alter_sys=True)
"""


@contextlib.contextmanager
def gateway_process(work: Path, tag: str = "gw", preauth_cap: int | None = None) -> Iterator[int]:
    """clawd-gateway as a process (token auth) on a free loopback port; yields the port."""
    home = work / tag
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = clean_env(dict(os.environ), home, CLAWD_STATE_DIR=str(home / "state"), OPENCLAW_GATEWAY_TOKEN=TOKEN)
    launch = ["-m", "clawd_gateway"] if preauth_cap is None else ["-c", _RAISED_CAP, str(preauth_cap)]
    cmd = [sys.executable, *launch, "run", "--port", str(port), "--bind", "loopback"]
    with open(home / "gateway.log", "wb") as fh:
        proc = subprocess.Popen(
            [*cmd, "--log-level", "warning"],
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=fh,
        )
    try:
        wait_port(port, 30, proc)
        outcome = asyncio.run(gateway_call(port, 10))
        if outcome != "answered":
            raise RuntimeError(f"gateway health: {outcome}")
        yield port
    finally:
        stop_popen(proc, grace=10)


class DelayRelay:
    """127.0.0.1:port -> 127.0.0.1:target, every chunk delivered `one_way_s` late (order kept), on
    its own loop in a thread: a slow leg between sshd and the gateway, so that every client stays
    in the gateway's pre-auth state about one round trip longer."""

    def __init__(self, target: int, one_way_s: float) -> None:
        self.target, self.one_way_s = target, one_way_s
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="delay-relay")
        self._server: asyncio.Server | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - self._loop.time()))
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        task = asyncio.ensure_future(deliver())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((self._loop.time() + self.one_way_s, data))
            queue.put_nowait((self._loop.time() + self.one_way_s, b""))
            await task
        except (OSError, ConnectionError):
            task.cancel()
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            w.close()

    def __enter__(self) -> DelayRelay:
        self._thread.start()

        async def start() -> int:
            self._server = await asyncio.start_server(self._handle, HOST, 0)
            return int(self._server.sockets[0].getsockname()[1])

        self.port = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class Clawd:
    """The client as a user runs it, in an isolated HOME / config / state (one agent per state dir)."""

    def __init__(self, base_env: dict[str, str], work: Path, tag: str) -> None:
        self.home = work / "home"
        self.state = work / f"state-{tag}"
        for d in (self.home, self.state):
            d.mkdir(parents=True, exist_ok=True)
        self.env = clean_env(
            base_env, self.home, CLAWD_CONFIG_DIR=str(work / "cfg"), CLAWD_STATE_DIR=str(self.state)
        )

    def run(
        self, args: list[str], *, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*clawd_exe(), *args], env=self.env, capture_output=True, text=True, input=input, timeout=timeout
        )

    def check(self, args: list[str], **kw: Any) -> str:
        r = self.run(args, **kw)
        if r.returncode != 0:
            raise RuntimeError(f"clawd {' '.join(args)} exited {r.returncode}: {r.stdout}{r.stderr}")
        return r.stdout

    def add_profile(self, name: str, sshd: SshdServer, remote_port: int) -> int:
        port = free_port()
        self.check(
            [
                "profile", "add", name,
                "--ssh", f"{sshd.user}@{HOST}:{sshd.port}",
                "--identity", str(sshd.client_key_path),
                "--known-hosts", str(sshd.known_hosts),
                "--remote-port", str(remote_port),
                "--local-port", str(port),
            ]
        )  # fmt: skip
        self.check(["secret", "set", name], input=TOKEN + "\n")
        return port

    @property
    def socket_path(self) -> Path:
        saved = {k: os.environ.get(k) for k in ("CLAWD_RUNTIME_DIR", "CLAWD_STATE_DIR")}
        os.environ.pop("CLAWD_RUNTIME_DIR", None)
        os.environ["CLAWD_STATE_DIR"] = str(self.state)
        try:
            from clawd_client.paths import agent_socket

            return agent_socket()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def agent_pid(self) -> int | None:
        try:
            data = json.loads((self.state / "run" / "agent.lock").read_text().split("\0")[0] or "{}")
        except (OSError, ValueError):
            return None
        pid = data.get("pid")
        return pid if isinstance(pid, int) and psutil.pid_exists(pid) else None

    def client(self) -> api.AgentClient:
        return api.AgentClient.connect(self.socket_path)

    def log_tail(self, n: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.state / "client" / "agent.log").read_text().splitlines()[-n:])
        return ""

    def stop_agent(self) -> None:
        pid = self.agent_pid()
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.run(["agent", "--stop"], timeout=20)
        if pid is None:
            return
        try:
            proc = psutil.Process(pid)
            proc.wait(20)
        except psutil.NoSuchProcess:
            return
        except psutil.TimeoutExpired:
            with contextlib.suppress(psutil.Error):
                proc.kill()


@contextlib.contextmanager
def agent_session(base_env: dict[str, str], work: Path, tag: str) -> Iterator[Clawd]:
    c = Clawd(base_env, work, tag)
    try:
        yield c
    finally:
        c.stop_agent()


class StateWatch:
    """The agent's state stream on a thread: every event with its arrival time (wall clock)."""

    def __init__(self, c: Clawd) -> None:
        self.client = c.client()
        self.events: list[tuple[float, TunnelStatus]] = []
        self.cond = threading.Condition()
        initial = self.client.subscribe()
        now = time.time()
        with self.cond:
            self.events += [(now, st) for st in initial]
        self.thread = threading.Thread(target=self._read, daemon=True, name="state-watch")
        self.thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):
            for st in self.client.events():
                with self.cond:
                    self.events.append((time.time(), st))
                    self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.events)

    def last(self, name: str) -> TunnelStatus | None:
        with self.cond:
            for _, st in reversed(self.events):
                if st.profile == name:
                    return st
        return None

    def wait(
        self, name: str, pred: Callable[[TunnelStatus], bool], start: int, timeout: float, what: str
    ) -> tuple[int, float, TunnelStatus]:
        """The first event for `name` at index >= start that satisfies pred: (index, arrival, status)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.events):
                    t, st = self.events[i]
                    if st.profile == name and pred(st):
                        return i, t, st
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    last = self.last(name)
                    raise TimeoutError(f"{name}: no {what} within {timeout:g}s (last: {last})")
                self.cond.wait(left)

    def since(self, start: int, name: str) -> list[tuple[float, TunnelStatus]]:
        with self.cond:
            return [(t, st) for t, st in self.events[start:] if st.profile == name]

    def close(self) -> None:
        self.client.close()
        self.thread.join(5)


# -- (1) outage with 100 clients -----------------------------------------------------------------


@dataclass
class OutageResult:
    label: str
    peer: bool = False  # OpenSSH: no target, for comparison
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    last_answer_after_s: float | None = None  # last answered client, from sshd back
    first_answer_after_s: float | None = None
    failures: list[str] = field(default_factory=list)  # which clients failed other than refused, and when
    note: str = ""
    error: str | None = None

    @property
    def refused(self) -> int:
        return self.outcomes.get("refused", 0)

    @property
    def answered(self) -> int:
        return self.outcomes.get("answered", 0)


def run_outage(res: OutageResult, sshd: SshdServer, port: int, clients: int, outage_s: float) -> None:
    """Kill sshd (sessions and master); once it is gone, start `clients` clients evenly spread over
    `outage_s`; start sshd again `outage_s` after it went; wait for every client to end."""
    done: list[tuple[int, float, float, str]] = []  # (client, start, end, outcome), monotonic

    async def one(i: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        t = time.monotonic()
        outcome = await gateway_call(port)
        done.append((i, t, time.monotonic(), outcome))

    async def all_clients(t0: float) -> None:
        await asyncio.gather(*(one(i, t0 + i * outage_s / clients) for i in range(clients)))

    kill_sshd(sshd)
    t0 = time.monotonic()
    th = threading.Thread(target=lambda: asyncio.run(all_clients(t0)), daemon=True, name="outage-clients")
    th.start()
    time.sleep(max(0.0, t0 + outage_s - time.monotonic()))
    sshd.start()
    back = time.monotonic()
    th.join(CLIENT_TIMEOUT_S + outage_s + 20)
    if th.is_alive():
        raise RuntimeError("outage clients did not finish")
    for i, t, e, outcome in sorted(done):
        res.outcomes[outcome] += 1
        if outcome not in ("answered", "refused"):
            res.failures.append(
                f"#{i} started {t - t0:.2f} s into the outage, ended {e - back:+.2f} s: {outcome}"
            )
    answered = [e - back for _, _, e, o in done if o == "answered"]
    if answered:
        res.last_answer_after_s = max(answered)
        res.first_answer_after_s = min(answered)
    say(
        f"outage, {res.label}: {dict(res.outcomes)}; last answered "
        + (f"{res.last_answer_after_s:.3f} s after sshd back" if answered else "never")
    )


def measure_outage_agent(runs: list[tuple[OutageResult, int]], kr_env: dict[str, str], work: Path,
                         sshd: SshdServer, args: argparse.Namespace) -> None:  # fmt: skip
    """One agent; for each (result, gateway port) a profile that alone is up during its outage."""
    with agent_session(kr_env, work, "outage") as c:
        for k, (res, gw) in enumerate(runs):
            name = f"outage{k}"
            try:
                port = c.add_profile(name, sshd, gw)
                c.check(["up", name])
                if asyncio.run(gateway_call(port, 10)) != "answered":
                    raise RuntimeError("no answer through the tunnel before the outage")
                time.sleep(2.0)  # healthy well past the 1 s flap guard, as a tunnel that has been up a while
                run_outage(res, sshd, port, args.outage_clients, args.outage_seconds)
                res.note = f"agent pid {c.agent_pid()}, profile hold 30 s (default)"
                c.check(["down", name])
            except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
                res.error = f"{type(exc).__name__}: {exc}\nagent log:\n{c.log_tail()}"
                say(f"outage, {res.label}: {res.error}")
            finally:
                if not sshd.running:
                    sshd.start()


class SshLoop:
    """`ssh -N -L` restarted whenever it exits, after `delay` s: what autossh does for OpenSSH."""

    def __init__(self, sshd: SshdServer, target: int, delay: float, log: Path) -> None:
        self.port = free_port()
        self.cmd = [
            "ssh", "-F", "/dev/null", "-N",
            "-p", str(sshd.port),
            "-i", str(sshd.client_key_path),
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
            "-o", "ExitOnForwardFailure=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={sshd.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=3",
            "-L", f"{HOST}:{self.port}:{HOST}:{target}",
            f"{sshd.user}@{HOST}",
        ]  # fmt: skip
        self.delay = delay
        self.log = log
        self.starts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True, name="ssh-loop")

    def _loop(self) -> None:
        with open(self.log, "ab") as fh:
            while not self._stop.is_set():
                with self._lock:
                    if self._stop.is_set():
                        return
                    self._proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh)
                    self.starts += 1
                self._proc.wait()
                self._stop.wait(self.delay)

    def __enter__(self) -> SshLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._stop.set()
            stop_popen(self._proc)
        self._thread.join(10)


def measure_outage_ssh(
    res: OutageResult, work: Path, sshd: SshdServer, gw: int, args: argparse.Namespace
) -> None:
    with SshLoop(sshd, gw, args.ssh_restart_delay, work / "ssh-loop.log") as loop:
        wait_port(loop.port, 20)
        if asyncio.run(gateway_call(loop.port, 10)) != "answered":
            raise RuntimeError("no answer through ssh -L before the outage")
        time.sleep(2.0)
        before = loop.starts
        run_outage(res, sshd, loop.port, args.outage_clients, args.outage_seconds)
        res.note = f"ssh restarted {loop.starts - before} times, {args.ssh_restart_delay:g} s apart"


# -- (2) kill/restart cycles ----------------------------------------------------------------------


@dataclass
class Resources:
    fds: int
    threads: int
    rss_mb: float
    fd_kinds: collections.Counter[str]
    thread_names: collections.Counter[str]


def sshd_processes() -> str:
    """Every sshd process and its TCP connections (for a kill that left a tunnel up)."""
    out = []
    for p in psutil.process_iter(["pid", "ppid", "name", "cmdline"]):
        if p.info["name"] != "sshd":
            continue
        with contextlib.suppress(psutil.Error):
            conns = [f"{c.laddr.port}->{c.raddr.port if c.raddr else '-'}" for c in p.net_connections("tcp")]
            out.append(f"{p.info['pid']}<{p.info['ppid']} {' '.join(p.info['cmdline'] or [])[:40]} {conns}")
    return "; ".join(out) or "no sshd process"


def resources(pid: int) -> Resources:
    p = psutil.Process(pid)
    kinds: collections.Counter[str] = collections.Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            kinds[target.split(":")[0] if ":" in target else target] += 1
    names: collections.Counter[str] = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            names[Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()] += 1
    return Resources(p.num_fds(), p.num_threads(), p.memory_info().rss / 1e6, kinds, names)


@dataclass
class CycleResult:
    times: list[float] = field(default_factory=list)  # sshd back -> healthy, per cycle
    start: Resources | None = None
    end: Resources | None = None
    traffic: collections.Counter[str] = field(default_factory=collections.Counter)
    slow: list[str] = field(default_factory=list)  # what the slowest cycles went through
    peak_fds: int = 0  # sampled once per cycle, at the kill
    peak_threads: int = 0
    rescans: int = 0  # kills where a rescan still found an sshd session
    missed_kills: list[str] = field(default_factory=list)  # the tunnel outlived a kill: what ran
    wall_s: float = 0.0
    error: str | None = None


class Traffic:
    """Light traffic through the tunnel: one handshake + health every `every` s, on a thread."""

    def __init__(self, port: int, every: float = 0.5) -> None:
        self.port, self.every = port, every
        self.outcomes: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="traffic")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.outcomes[asyncio.run(gateway_call(self.port))] += 1
            self._stop.wait(self.every)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(CLIENT_TIMEOUT_S + 5)


def _describe_cycle(events: list[tuple[float, TunnelStatus]], t_kill: float, t_ready: float) -> str:
    steps = []
    for t, st in events:
        s = f"{t - t_ready:+.2f} {st.state}"
        if st.state == "backoff":
            s += f"(attempts {st.attempts}, retry in {st.next_attempt_in_s})"
        steps.append(s)
    return f"killed {t_kill - t_ready:+.2f}, back 0: " + ", ".join(steps)


def measure_cycles(res: CycleResult, kr_env: dict[str, str], work: Path, sshd: SshdServer, gw: int,
                   args: argparse.Namespace) -> None:  # fmt: skip
    name = "cycles"
    with agent_session(kr_env, work, "cycles") as c:
        port = c.add_profile(name, sshd, gw)
        c.check(["up", name])
        pid = c.agent_pid()
        assert pid is not None
        watch = StateWatch(c)
        try:
            with Traffic(port) as traffic:
                time.sleep(args.healthy_seconds)
                res.start = resources(pid)
                say(
                    f"cycles: agent pid {pid} at start: {res.start.fds} fds, {res.start.threads} threads, "
                    f"{res.start.rss_mb:.1f} MB"
                )
                t_begin = time.monotonic()
                mark = 0
                per_cycle: list[tuple[float, str]] = []
                for i in range(args.cycles):
                    mark, _, _ = watch.wait(name, lambda s: s.state == "healthy", mark, 60, "healthy")
                    time.sleep(args.healthy_seconds)  # healthy for 2 s before each kill
                    last = watch.last(name)
                    if last is None or last.state != "healthy":
                        raise RuntimeError(f"cycle {i + 1}: not healthy before the kill: {last}")
                    with contextlib.suppress(psutil.Error):
                        p = psutil.Process(pid)
                        res.peak_fds = max(res.peak_fds, p.num_fds())
                        res.peak_threads = max(res.peak_threads, p.num_threads())
                    kill_mark = watch.mark()
                    t_kill = time.time()
                    res.rescans += kill_sshd(sshd)
                    try:  # a link that survived the kill shows within the 4 s keepalive
                        down_i, _, _ = watch.wait(
                            name, lambda s: s.state != "healthy", kill_mark, 6, "outage noticed"
                        )
                    except TimeoutError:
                        res.missed_kills.append(f"cycle {i + 1}: {sshd_processes()}")
                        kill_sshd(sshd)
                        down_i, _, _ = watch.wait(
                            name, lambda s: s.state != "healthy", kill_mark, 10, "outage noticed"
                        )
                    time.sleep(max(0.0, t_kill + args.downtime - time.time()))
                    sshd.start()
                    t_ready = time.time()
                    mark, _, st = watch.wait(
                        name, lambda s: s.state == "healthy", down_i, 60, "healthy again"
                    )
                    dt = st.since - t_ready
                    res.times.append(dt)
                    per_cycle.append((dt, _describe_cycle(watch.since(kill_mark, name), t_kill, t_ready)))
                    if (i + 1) % 10 == 0 or i + 1 == args.cycles:
                        say(
                            f"cycle {i + 1}/{args.cycles}: {dt:.3f} s (p50 so far "
                            f"{statistics.median(res.times):.3f}, max {max(res.times):.3f})"
                        )
                _, _, _ = watch.wait(name, lambda s: s.state == "healthy", mark, 60, "healthy at the end")
                time.sleep(args.healthy_seconds)
            res.traffic = traffic.outcomes
            res.wall_s = time.monotonic() - t_begin
            res.end = resources(pid)
            per_cycle.sort(key=lambda x: -x[0])
            res.slow = [f"{dt:.3f} s: {d}" for dt, d in per_cycle[:3]]
        finally:
            watch.close()


# -- (3) idle -------------------------------------------------------------------------------------


@dataclass
class IdleResult:
    cpu_pct: float | None = None  # schedstat, ns resolution
    cpu_ticks_pct: float | None = None  # utime + stime, 10 ms ticks
    seconds: float = 0.0
    rss_mb: float | None = None
    threads: int | None = None
    ctx_per_s: float | None = None
    status_s: list[float] = field(default_factory=list)
    status_json_s: list[float] = field(default_factory=list)
    status_exit: str = ""
    error: str | None = None


def measure_idle(res: IdleResult, kr_env: dict[str, str], work: Path, sshd: SshdServer, gw: int,
                 args: argparse.Namespace) -> None:  # fmt: skip
    names = ["idle1", "idle2", "idle3"]
    with agent_session(kr_env, work, "idle") as c:
        for n in names:
            c.add_profile(n, sshd, gw)
        c.check(["up", *names])
        pid = c.agent_pid()
        assert pid is not None
        time.sleep(3.0)  # the first probes and port guards settle
        proc = psutil.Process(pid)
        say(f"idle: 3 tunnels up in agent pid {pid}; measuring {args.idle_seconds:g} s ...")
        c0, k0, t0, x0 = cpu_ns_s(pid), cpu_ticks_s(pid), time.monotonic(), voluntary_switches(pid)
        rss_max = proc.memory_info().rss
        end = t0 + args.idle_seconds
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            rss_max = max(rss_max, proc.memory_info().rss)
        c1, k1, t1, x1 = cpu_ns_s(pid), cpu_ticks_s(pid), time.monotonic(), voluntary_switches(pid)
        res.seconds = t1 - t0
        res.cpu_pct = (c1 - c0) / res.seconds * 100
        res.cpu_ticks_pct = (k1 - k0) / res.seconds * 100
        res.ctx_per_s = (x1 - x0) / res.seconds
        res.rss_mb = rss_max / 1e6
        res.threads = proc.num_threads()
        states = [t["state"] for t in json.loads(c.check(["status", "--json"]))["tunnels"]]
        if states != ["healthy"] * 3:
            res.error = f"not all healthy after the idle window: {states}"
        say(f"idle: {res.cpu_pct:.3f} % of a core, RSS max {res.rss_mb:.1f} MB; timing clawd status ...")
        codes: collections.Counter[int] = collections.Counter()
        for argv, out in ((["status"], res.status_s), (["status", "--json"], res.status_json_s)):
            c.run(argv)  # warm the page cache once
            for _ in range(args.status_runs):
                t = time.perf_counter()
                r = c.run(argv)
                out.append(time.perf_counter() - t)
                codes[r.returncode] += 1
        res.status_exit = ", ".join(f"exit {k} x{v}" for k, v in sorted(codes.items()))


# -- report ---------------------------------------------------------------------------------------


def _f(v: float | None, spec: str, unit: str = "") -> str:
    return "n/a" if v is None else format(v, spec) + unit


def _v(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class Table:
    """Rows of (metric, value, target, result); `check` is None where there is nothing to judge."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []
        self.notes: list[str] = []

    def add(self, metric: str, value: str, target: str = "info", check: bool | None = None) -> None:
        judged = target not in ("info", "(peer)", "")
        self.rows.append((metric, value, target, _v(check) if judged else ""))

    def render(self, title: str) -> str:
        header = ("metric", "value", "target", "result")
        widths = [max(len(r[i]) for r in [header, *self.rows]) for i in range(4)]
        sep = "  ".join("-" * w for w in widths)
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *self.rows]
        ]
        return "\n".join([title, lines[0], sep, *lines[1:], sep, *self.notes])


def report_outage(tab: Table, outages: list[OutageResult], args: argparse.Namespace) -> None:
    n = args.outage_clients
    tab.add(f"(1) outage: sshd down {args.outage_seconds:g} s, {n} clients spread over it", "", "")
    for res in outages:
        got = bool(res.outcomes)
        other = {k: v for k, v in res.outcomes.items() if k not in ("answered", "refused")}
        last = res.last_answer_after_s

        def target(t: str) -> str:
            return "(peer)" if res.peer else t  # noqa: B023 - used at once, inside the loop

        tab.add(
            f"(1) {res.label}: refused",
            str(res.refused) if got else "n/a",
            target(str(T_REFUSED)),
            res.refused <= T_REFUSED if got else None,
        )
        tab.add(
            "(1)   answered (handshake + health)",
            str(res.answered) if got else "n/a",
            target(str(n)),
            res.answered == n if got else None,
        )
        failures = ", ".join(f"{k} x{v}" for k, v in other.items()) or ("0" if got else "n/a")
        tab.add("(1)   other failures", failures, target("0"), not other if got else None)
        tab.add(
            "(1)   last answered after sshd back [s]",
            _f(last, ".3f"),
            target(f"<= {T_LAST_ANSWER_S:g}"),
            last <= T_LAST_ANSWER_S if last is not None else None,
        )
        if not res.peer:
            tab.add("(1)   first answered after sshd back [s]", _f(res.first_answer_after_s, ".3f"))
        if res.note:
            tab.notes.append(f"(1) {res.label}: {res.note}")
        tab.notes += [f"(1) {res.label}: client {line}" for line in res.failures[:3]]
        if len(res.failures) > 3:
            tab.notes.append(f"(1) {res.label}: ... and {len(res.failures) - 3} more such clients")
        if res.error:
            tab.notes.append(f"(1) {res.label}: ERROR {res.error}")


def report_cycles(tab: Table, cyc: CycleResult, args: argparse.Namespace) -> None:
    t = cyc.times
    within = sum(1 for x in t if x <= T_CYCLE_S)
    tab.add(f"(2) {len(t)}/{args.cycles} cycles: sshd back -> healthy, p50 [s]", _f(pct(t, 50), ".3f"))
    tab.add("(2)   p95 [s]", _f(pct(t, 95), ".3f"))
    tab.add("(2)   max [s]", _f(max(t) if t else None, ".3f"))
    tab.add(
        f"(2)   cycles <= {T_CYCLE_S:g} s",
        f"{within}/{len(t)}",
        f"{len(t)}/{len(t)}",
        within == len(t) if t else None,
    )
    s, e = cyc.start, cyc.end
    if s and e:
        tab.add("(2)   agent fds start -> end", f"{s.fds} -> {e.fds}", "end = start", e.fds <= s.fds)
        tab.add(
            "(2)   agent threads start -> end",
            f"{s.threads} -> {e.threads}",
            "end = start",
            e.threads <= s.threads,
        )
        growth = e.rss_mb - s.rss_mb
        tab.add(
            "(2)   agent RSS start -> end [MB]",
            f"{s.rss_mb:.1f} -> {e.rss_mb:.1f} ({growth:+.1f})",
            f"<= +{T_RSS_GROWTH_MB:g}",
            growth <= T_RSS_GROWTH_MB,
        )
        tab.notes.append(
            f"(2) agent peak over the cycles (sampled at each kill, the tunnel healthy): {cyc.peak_fds} fds, "
            f"{cyc.peak_threads} threads; asyncio's default executor (asyncio.to_thread: wake samples, "
            f"keyring reads) grows on demand up to min(32, CPUs + 4) = {min(32, (os.cpu_count() or 1) + 4)} "
            "threads and never shrinks"
        )
        if e.fds != s.fds:
            tab.notes.append(f"(2) fds by kind, start {dict(s.fd_kinds)}; end {dict(e.fd_kinds)}")
        if e.threads != s.threads:
            tab.notes.append(f"(2) threads by name, start {dict(s.thread_names)}; end {dict(e.thread_names)}")
    tab.notes.append(
        f"(2) light traffic (handshake + health every 0.5 s): {dict(cyc.traffic)}; "
        f"sshd down {args.downtime:g} s per cycle; {cyc.wall_s:.0f} s for the cycles"
    )
    tab.notes += [f"(2) slowest: {line}" for line in cyc.slow]
    if cyc.rescans or cyc.missed_kills:
        tab.notes.append(f"(2) harness: {cyc.rescans} kills needed a rescan for a live sshd session")
    tab.notes += [
        f"(2) harness: the tunnel outlived the kill, killed again; sshd then: {m}" for m in cyc.missed_kills
    ]
    if cyc.error:
        tab.notes.append(f"(2) ERROR {cyc.error}")


def report_idle(tab: Table, idle: IdleResult) -> None:
    cpu, rss = idle.cpu_pct, idle.rss_mb
    tab.add(
        f"(3) idle, 3 tunnels up, {idle.seconds:.0f} s: agent CPU [% of a core]",
        _f(cpu, ".3f", "%"),
        f"< {T_IDLE_CPU_PCT:g}%",
        cpu < T_IDLE_CPU_PCT if cpu is not None else None,
    )
    tab.add(
        "(3)   agent RSS (max) [MB]",
        _f(rss, ".1f"),
        f"<= {T_IDLE_RSS_MB:g}",
        rss <= T_IDLE_RSS_MB if rss else None,
    )
    tab.add("(3)   agent wake-ups [voluntary ctx switches/s]", _f(idle.ctx_per_s, ".1f"))
    for label, values in (("clawd status", idle.status_s), ("clawd status --json", idle.status_json_s)):
        med = _median(values)
        tab.add(
            f"(3) {label} wall, median of {len(values)} [s]",
            _f(med, ".3f"),
            f"<= {T_STATUS_S:g}",
            med <= T_STATUS_S if med is not None else None,
        )
    if idle.status_s and idle.status_json_s:
        tab.notes.append(
            f"(3) clawd status {min(idle.status_s):.3f}-{max(idle.status_s):.3f} s, --json "
            f"{min(idle.status_json_s):.3f}-{max(idle.status_json_s):.3f} s ({idle.status_exit}); "
            f"command: {' '.join(clawd_exe())}"
        )
    if cpu is not None:
        tab.notes.append(
            f"(3) agent CPU from utime+stime (10 ms ticks): {_f(idle.cpu_ticks_pct, '.3f', '%')}; "
            f"agent threads {idle.threads}"
        )
    if idle.error:
        tab.notes.append(f"(3) ERROR {idle.error}")


def report(outages: list[OutageResult], cyc: CycleResult, idle: IdleResult, args: argparse.Namespace) -> str:
    tab = Table()
    if "outage" in args.phases:
        report_outage(tab, outages, args)
    if "cycles" in args.phases:
        report_cycles(tab, cyc, args)
    if "idle" in args.phases:
        report_idle(tab, idle)
    title = (
        f"agent benchmark · {platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()} · "
        f"load avg {args.load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    )
    return tab.render(title)


# -- main -----------------------------------------------------------------------------------------

PHASES = ("outage", "cycles", "idle")


def run(args: argparse.Namespace) -> str:
    args.load_start = os.getloadavg()[0]
    cyc, idle = CycleResult(), IdleResult()
    stock = OutageResult("clawd agent, stock gateway")
    raised = OutageResult(f"clawd agent, gateway pre-auth cap {args.raised_cap} per IP*")
    slow = OutageResult(f"clawd agent, stock gateway, +{args.slow_rtt_ms:g} ms RTT sshd<->gateway**")
    ssh = OutageResult("ssh -N -L in a restart loop, stock gateway", peer=True)
    outages = (
        [stock]
        + ([raised] if args.raised_cap else [])
        + ([slow] if args.slow_rtt_ms else [])
        + ([] if args.skip_ssh else [ssh])
    )
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clawd-agent-bench-")))
        kr = stack.enter_context(secret_service_session())
        sshd = SshdServer(work / "sshd")
        stack.callback(sshd.close)
        sshd.start()
        gw = stack.enter_context(gateway_process(work))
        say(f"sshd on {HOST}:{sshd.port}, clawd-gateway on {HOST}:{gw}")

        def guarded(name: str, res: Any, fn: Callable[[], None], log_of: str | None) -> None:
            try:
                fn()
            except (RuntimeError, TimeoutError, AssertionError, OSError, subprocess.SubprocessError) as exc:
                res.error = f"{type(exc).__name__}: {exc}"
                if log_of:
                    tail = Clawd(kr.env, work, log_of).log_tail()
                    res.error += f"\nagent log ({log_of}):\n{tail}" if tail else ""
                say(f"{name}: {res.error}")
            finally:
                if not sshd.running:
                    sshd.start()

        if "outage" in args.phases:
            runs = [(stock, gw)]
            if args.raised_cap:
                gw_raised = stack.enter_context(gateway_process(work, "gw-raised", args.raised_cap))
                runs.append((raised, gw_raised))
            if args.slow_rtt_ms:
                delayed = stack.enter_context(DelayRelay(gw, args.slow_rtt_ms / 2000))
                runs.append((slow, delayed.port))
            measure_outage_agent(runs, kr.env, work, sshd, args)
            if not args.skip_ssh:
                guarded("outage ssh", ssh, lambda: measure_outage_ssh(ssh, work, sshd, gw, args), None)
        if "cycles" in args.phases:
            guarded("cycles", cyc, lambda: measure_cycles(cyc, kr.env, work, sshd, gw, args), "cycles")
        if "idle" in args.phases:
            guarded("idle", idle, lambda: measure_idle(idle, kr.env, work, sshd, gw, args), "idle")
    text = report(outages, cyc, idle, args)
    if args.raised_cap and "outage" in args.phases:
        text += (
            f"\n* a second gateway whose MAX_PREAUTH_CONNECTIONS_PER_IP (32) is raised to {args.raised_cap}, "
            "in this bench only: every client behind a tunnel reaches the gateway from the SSH server's "
            "loopback address, so this row shows what the agent alone does with the held clients."
        )
    if args.slow_rtt_ms and "outage" in args.phases:
        text += (
            f"\n** a relay between sshd and the gateway holds every chunk {args.slow_rtt_ms / 2:g} ms "
            "each way, so each client spends about one more round trip in the gateway's pre-auth state, as "
            "over a slow link."
        )
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="development run: 20 cycles, 15 s idle")
    ap.add_argument("--cycles", type=int, help="sshd kill/restart cycles (default 200; 20 with --quick)")
    ap.add_argument(
        "--downtime", type=float, default=0.5, help="seconds sshd stays down per cycle (default 0.5)"
    )
    ap.add_argument(
        "--healthy-seconds", type=float, default=2.0, help="healthy time before each kill (default 2)"
    )
    ap.add_argument("--idle-seconds", type=float, help="idle CPU window (default 60; 15 with --quick)")
    ap.add_argument("--status-runs", type=int, default=20, help="clawd status runs (default 20)")
    ap.add_argument("--outage-seconds", type=float, default=3.0, help="sshd down in (1) (default 3)")
    ap.add_argument("--outage-clients", type=int, default=100, help="clients during (1) (default 100)")
    ap.add_argument(
        "--ssh-restart-delay",
        type=float,
        default=0.2,
        help="pause before the loop restarts ssh (default 0.2)",
    )
    ap.add_argument("--skip-ssh", action="store_true", help="no OpenSSH peer in (1)")
    ap.add_argument(
        "--slow-rtt-ms",
        type=float,
        default=200.0,
        help="(1) again with this round trip added between sshd and the gateway (default 200; 0: skip)",
    )
    ap.add_argument(
        "--raised-cap",
        type=int,
        default=1000,
        help="(1) again against a gateway with this pre-auth cap per IP (default 1000; 0: skip)",
    )
    ap.add_argument("--only", nargs="*", choices=PHASES, default=list(PHASES), help="run only these phases")
    args = ap.parse_args(argv)
    if args.cycles is None:
        args.cycles = 20 if args.quick else 200
    if args.idle_seconds is None:
        args.idle_seconds = 15.0 if args.quick else 60.0
    args.phases = set(args.only)
    if min(args.cycles, args.status_runs, args.outage_clients) < 1 or args.idle_seconds <= 0:
        ap.error("counts and --idle-seconds must be positive")
    if not SSHD.exists() or (shutil.which("ssh") is None and not args.skip_ssh):
        print(
            "agent benchmark needs OpenSSH (apt-get install openssh-server openssh-client)", file=sys.stderr
        )
        return 2
    t0 = time.monotonic()
    text = run(args)
    print(text)
    print(f"(whole run {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
