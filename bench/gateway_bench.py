#!/usr/bin/env python3
"""clawd-gateway vs the real OpenClaw gateway, side by side, in one run (loopback only).

    python bench/gateway_bench.py [--clients 20] [--idle 1000] [--duration 5] [--skip-openclaw]

Measures, for each gateway started as a fresh process on 127.0.0.1:
  (a) process start -> first HTTP 200 on /readyz (median of --starts for clawd, 1 for OpenClaw);
  (b) handshakes/s: N concurrent clients each looping open WS -> connect.challenge -> connect
      (token) -> hello-ok -> close, for --duration seconds after a 1 s warm-up; median of
      --repeats runs (the rate on a shared 2-core box varies by up to 2x between runs);
  (c) `health` RPC round trip p50/p99 over one authenticated connection (--rpc-calls calls);
  (d) RSS of the gateway (plus its child processes, for OpenClaw) idle and with --idle
      authenticated clients connected.

The load generator (b-d) runs in a separate process (multiprocessing, spawn), one asyncio loop.
For (b) it is, by default, the lean raw-socket client in bench/wsload.py (`--loadgen lean`): the
websockets-based one (`--loadgen websockets`, clawd's sans-I/O `ClientConnection` over the
websockets client, still used for (c) and (d)) costs as much CPU per handshake as the gateway
and so capped the figure. With 2+ CPUs the gateways run on the first half of them and the load
generator on the other half (`--no-pin` turns that off), so each gateway gets the same budget and
never competes with its load. The "CPU" row shows which side saturated: a gateway at 1.00 core
is the bottleneck, as intended; a load generator near 1.00 means the figure is a lower bound.

The OpenClaw peer (openclaw@2026.9.6 on Node 24, both from npm) is found or installed by
tests/support/openclaw_peer.py into ${CLAWD_PEER_DIR:-~/.cache/clawd/openclaw-peer}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
from tests.support import openclaw_peer  # noqa: E402
from websockets.asyncio.client import ClientConnection as WsClient  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from clawd_gateway import __version__ as CLAWD_VERSION  # noqa: E402
from clawd_gateway.protocol import client as proto  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wsload  # noqa: E402

TOKEN = "bench-token-0123456789abcdef0123456789"
MAX_FRAME = 32 * 1024 * 1024
READY_TIMEOUT_S = 30.0
TARGET_START_S = 0.2
TARGET_HANDSHAKE_X = 2.0
TARGET_RSS_RATIO = 0.5
# Set by main() with --pin: the CPUs the load generator runs on (the gateways get the others).
LOAD_CPUS: set[int] | None = None
GATEWAY_CPUS: set[int] | None = None


# -- small utilities ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def tree_rss(pid: int) -> int:
    proc = psutil.Process(pid)
    total = int(proc.memory_info().rss)
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += int(child.memory_info().rss)
    return total


def tree_cpu(pid: int) -> float:
    """user+system CPU seconds of the process and its live children."""
    procs = [psutil.Process(pid)]
    with contextlib.suppress(psutil.Error):
        procs += procs[0].children(recursive=True)
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- load generator (runs in a child process) -----------------------------------------------------


class HandshakeFailed(Exception):
    pass


async def _authenticate(url: str, token: str) -> tuple[WsClient, proto.ClientConnection]:
    """Open a WebSocket and complete challenge -> connect -> hello-ok; returns the open socket."""
    machine = proto.ClientConnection(token=token, client_id="cli", client_mode="cli", platform="linux")
    ws = await connect(
        url,
        compression=None,
        max_size=MAX_FRAME,
        open_timeout=15,
        close_timeout=5,
        ping_interval=None,
        proxy=None,
        user_agent_header="clawd-bench",
    )
    try:
        while True:
            data = await asyncio.wait_for(ws.recv(), 15)
            for out in machine.receive(data):
                if isinstance(out, proto.SendText):
                    await ws.send(out.text)
                elif isinstance(out, proto.HelloReceived):
                    return ws, machine
                elif isinstance(out, proto.ConnectFailed):
                    raise HandshakeFailed(f"{out.error.code}: {out.error.message}")
                elif isinstance(out, proto.ProtocolViolation):
                    raise HandshakeFailed(out.message)
    except BaseException:
        await ws.close()
        raise


async def phase_handshakes(
    conn: Connection,
    url: str,
    token: str,
    clients: int,
    duration: float,
    warmup: float,
    loadgen: str = "websockets",
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup
    end = start + duration
    latencies: list[float] = []
    errors: list[str] = []
    cpu0 = 0.0
    host, port = url.removeprefix("ws://").rsplit(":", 1)

    async def once_websockets() -> None:
        ws, _ = await _authenticate(url, token)
        await ws.close()

    async def worker() -> None:
        if loadgen == "lean":
            plan = wsload.Plan.build(host, int(port), token)

            async def once() -> None:
                await wsload.handshake(host, int(port), plan)

        else:
            once = once_websockets
        while loop.time() < end:
            t0 = loop.time()
            try:
                await once()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.01)
                continue
            t1 = loop.time()
            if start <= t1 <= end:
                latencies.append(t1 - t0)

    async def window() -> None:
        nonlocal cpu0
        await asyncio.sleep(max(0.0, start - loop.time()))
        cpu0 = time.process_time()
        conn.send(("event", {"event": "window-start"}))
        await asyncio.sleep(max(0.0, end - loop.time()))
        conn.send(("event", {"event": "window-end"}))

    await asyncio.gather(window(), *(worker() for _ in range(clients)))
    return {
        "count": len(latencies),
        "rate": len(latencies) / duration,
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "errors": len(errors),
        "first_errors": sorted(set(errors))[:3],
        "loadgen_cpu": (time.process_time() - cpu0) / duration,
    }


async def phase_rpc(conn: Connection, url: str, token: str, calls: int, warmup: int) -> dict[str, Any]:
    ws, machine = await _authenticate(url, token)
    samples: list[float] = []
    try:
        for i in range(warmup + calls):
            req, send = machine.request("health", {})
            t0 = time.perf_counter()
            await ws.send(send.text)
            while True:
                data = await asyncio.wait_for(ws.recv(), 15)
                done = False
                for out in machine.receive(data):
                    if isinstance(out, proto.ReplyReceived) and out.response.id == req.id:
                        if not out.response.ok:
                            raise RuntimeError(f"health failed: {out.response.error}")
                        done = True
                if done:
                    break
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
    finally:
        await ws.close()
    return {
        "calls": len(samples),
        "p50_ms": pct(samples, 50) * 1000,
        "p99_ms": pct(samples, 99) * 1000,
        "mean_ms": statistics.fmean(samples) * 1000,
    }


async def phase_idle(conn: Connection, url: str, token: str, count: int, concurrency: int) -> dict[str, Any]:
    sem = asyncio.Semaphore(concurrency)
    sockets: list[WsClient] = []
    errors: list[str] = []

    async def open_one() -> None:
        async with sem:
            for attempt in range(3):
                try:
                    ws, _ = await _authenticate(url, token)
                except Exception as exc:
                    if attempt == 2:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                sockets.append(ws)
                return

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(open_one() for _ in range(count)))
        open_s = time.perf_counter() - t0
        alive = sum(1 for ws in sockets if ws.close_code is None)
        conn.send(("event", {"event": "opened", "opened": len(sockets), "alive": alive}))
        await asyncio.to_thread(conn.recv)  # the parent measured; now let go
        alive_after = sum(1 for ws in sockets if ws.close_code is None)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "opened": len(sockets),
        "alive_after": alive_after,
        "open_s": open_s,
        "errors": len(errors),
        "first_errors": sorted(set(errors))[:3],
    }


Phase = Callable[..., Coroutine[Any, Any, dict[str, Any]]]
PHASES: dict[str, Phase] = {"handshakes": phase_handshakes, "rpc": phase_rpc, "idle": phase_idle}


def _child_main(conn: Connection, phase: str, kwargs: dict[str, Any], cpus: set[int] | None) -> None:
    raise_nofile_limit()
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        result = asyncio.run(PHASES[phase](conn, **kwargs))
        conn.send(("done", result))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


def run_phase(
    phase: str,
    timeout: float,
    on_event: Callable[[dict[str, Any]], Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Run one load phase in a fresh child process; `on_event` answers its mid-phase events."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=_child_main, args=(child, phase, kwargs, LOAD_CPUS), daemon=True, name=f"bench-{phase}"
    )
    proc.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{phase} phase did not finish within {timeout:g}s")
            if parent.poll(min(remaining, 0.5)):
                kind, payload = parent.recv()
                if kind == "done":
                    return dict(payload)
                if kind == "error":
                    raise RuntimeError(f"{phase} phase failed: {payload}")
                reply = on_event(payload) if on_event else None
                if payload.get("event") == "opened":
                    parent.send(reply if reply is not None else "close")
            elif not proc.is_alive():
                raise RuntimeError(f"{phase} load generator exited with {proc.exitcode}")
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


# -- gateways -------------------------------------------------------------------------------------


@dataclass
class Running:
    name: str
    pid: int
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@dataclass
class Result:
    name: str
    version: str = ""
    start_s: list[float] = field(default_factory=list)
    rss_idle: int | None = None
    rss_loaded: int | None = None
    handshakes: dict[str, Any] | None = None
    gw_cpu_handshakes: float | None = None
    rpc: dict[str, Any] | None = None
    idle: dict[str, Any] | None = None
    error: str | None = None


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_", "CLAWD_"))}
    # An installed gateway starts from cached bytecode (pip compiles at install). A sandbox that
    # sets PYTHONDONTWRITEBYTECODE would make every start compile each changed module again
    # (tens of ms); without it the first start writes the cache and (a)'s median is the real one.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update({"HOME": str(home), "CLAWD_STATE_DIR": str(home / "state"), "OPENCLAW_GATEWAY_TOKEN": TOKEN})
    return env


def wait_ready(port: int, proc: subprocess.Popen[bytes], t0: float, timeout: float, log: Path) -> float:
    url = f"http://127.0.0.1:{port}/readyz"
    while True:
        if openclaw_peer.http_status(url, timeout=1.0) == 200:
            return time.monotonic() - t0
        if proc.poll() is not None:
            raise RuntimeError(
                f"gateway exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}"
            )
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(
                f"gateway not ready after {timeout:g}s: {log.read_text(errors='replace')[-2000:]}"
            )
        time.sleep(0.005)


@contextlib.contextmanager
def on_gateway_cpus() -> Iterator[None]:
    """Processes started inside inherit the gateways' CPUs; this process goes back to the load
    side afterwards, so its own polling (the /readyz wait) never competes with a gateway."""
    if GATEWAY_CPUS is None or LOAD_CPUS is None:
        yield
        return
    os.sched_setaffinity(0, GATEWAY_CPUS)
    try:
        yield
    finally:
        os.sched_setaffinity(0, LOAD_CPUS)


@contextlib.contextmanager
def clawd_gateway(home: Path) -> Iterator[tuple[Running, float]]:
    """Fresh `clawd-gateway run` process; yields it with its start -> /readyz time."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = home / "gateway.log"
    cmd = [
        sys.executable,
        "-m",
        "clawd_gateway",
        "run",
        "--port",
        str(port),
        "--bind",
        "loopback",
        "--log-level",
        "warning",
    ]
    with open(log, "wb") as fh, on_gateway_cpus():
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            env=_clean_env(home),
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        ready = wait_ready(port, proc, t0, READY_TIMEOUT_S, log)
        yield Running("clawd-gateway", proc.pid, port), ready
    finally:
        openclaw_peer.stop_process(proc)


def measure(result: Result, gw: Running, args: argparse.Namespace) -> None:
    """Phases (d) then (b) then (c) against one running gateway."""
    time.sleep(0.5)
    result.rss_idle = tree_rss(gw.pid)

    def on_opened(ev: dict[str, Any]) -> str:
        time.sleep(1.0)  # let the gateway settle after the last hello-ok
        result.rss_loaded = tree_rss(gw.pid)
        say(
            f"{gw.name}: {ev['opened']} idle clients open ({ev['alive']} alive), "
            f"RSS {result.rss_loaded / 2**20:.0f} MiB"
        )
        return "close"

    say(f"{gw.name}: opening {args.idle} idle authenticated clients ...")
    result.idle = run_phase(
        "idle",
        timeout=300,
        on_event=on_opened,
        url=gw.url,
        token=TOKEN,
        count=args.idle,
        concurrency=args.idle_concurrency,
    )
    time.sleep(1.0)

    runs: list[dict[str, Any]] = []
    for rep in range(args.repeats):
        say(
            f"{gw.name}: handshakes with {args.clients} concurrent clients for {args.duration:g} s "
            f"(run {rep + 1}/{args.repeats}) ..."
        )
        cpu: dict[str, float] = {}

        def on_window(ev: dict[str, Any], cpu: dict[str, float] = cpu) -> None:
            cpu[ev["event"]] = tree_cpu(gw.pid)

        run = run_phase(
            "handshakes",
            timeout=args.duration + 120,
            on_event=on_window,
            url=gw.url,
            token=TOKEN,
            clients=args.clients,
            duration=args.duration,
            warmup=1.0,
            loadgen=args.loadgen,
        )
        if "window-start" in cpu and "window-end" in cpu:
            run["gateway_cpu"] = (cpu["window-end"] - cpu["window-start"]) / args.duration
        runs.append(run)
    # The median run by rate represents the phase; all rates are kept for the spread.
    runs.sort(key=lambda r: float(r["rate"]))
    result.handshakes = dict(runs[len(runs) // 2])
    result.handshakes["rates"] = [r["rate"] for r in runs]
    result.handshakes["errors"] = sum(int(r["errors"]) for r in runs)
    result.gw_cpu_handshakes = result.handshakes.get("gateway_cpu")

    say(f"{gw.name}: {args.rpc_calls} health RPCs on one connection ...")
    result.rpc = run_phase("rpc", timeout=300, url=gw.url, token=TOKEN, calls=args.rpc_calls, warmup=20)


def bench_clawd(args: argparse.Namespace, work: Path) -> Result:
    result = Result("clawd-gateway", CLAWD_VERSION)
    for i in range(args.starts):
        last = i == args.starts - 1
        with clawd_gateway(work / f"clawd-{i}") as (gw, ready_s):
            result.start_s.append(ready_s)
            say(f"clawd-gateway: start {i + 1}/{args.starts} ready in {ready_s:.3f} s")
            if last:
                measure(result, gw, args)
    return result


def bench_openclaw(args: argparse.Namespace, work: Path, peer: openclaw_peer.Peer) -> Result:
    result = Result("openclaw", peer.version.replace("OpenClaw ", ""))
    say("openclaw: starting the real gateway (about 11 s) ...")
    try:
        with contextlib.ExitStack() as stack:
            # Node and every thread it starts inherit the gateways' CPUs (its start is waited
            # for inside, on the same CPUs: ~12 s either way).
            with on_gateway_cpus():
                gw = stack.enter_context(peer.gateway(work / "openclaw", free_port(), TOKEN))
            result.start_s.append(gw.ready_s)
            say(f"openclaw: ready in {gw.ready_s:.1f} s (pid {gw.pid})")
            measure(result, Running("openclaw", gw.pid, gw.port), args)
    except (RuntimeError, TimeoutError, OSError) as exc:
        result.error = str(exc)[-1500:]
    return result


# -- report ---------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _rates(r: Result) -> str:
    if not r.handshakes:
        return "n/a"
    rates = r.handshakes["rates"]
    if len(rates) == 1:
        return f"{r.handshakes['rate']:.0f}"
    return f"{r.handshakes['rate']:.0f} (median; {min(rates):.0f}-{max(rates):.0f})"


def _cpu_pair(r: Result) -> str:
    loadgen = (r.handshakes or {}).get("loadgen_cpu")
    return f"{_fmt(r.gw_cpu_handshakes, '.2f')} / {_fmt(loadgen, '.2f')}"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _cpus(cpus: set[int] | None) -> str:
    return ",".join(str(c) for c in sorted(cpus or ())) or "-"


def report(ours: Result, theirs: Result | None, args: argparse.Namespace, peer_note: str) -> str:
    mib = 2**20
    t = theirs or Result("openclaw")
    rows: list[tuple[str, str, str, str, str, str]] = []

    o_start = statistics.median(ours.start_s) if ours.start_s else None
    t_start = t.start_s[0] if t.start_s else None
    rows.append(
        (
            "(a) start -> /readyz 200 [s]",
            f"{_fmt(o_start, '.3f')} (median of {len(ours.start_s)})",
            f"{_fmt(t_start, '.2f')} (1 run)" if t_start is not None else "n/a",
            f"{o_start / t_start:.3f}x" if o_start and t_start else "n/a",
            f"<= {TARGET_START_S} s",
            _verdict(o_start <= TARGET_START_S if o_start is not None else None),
        )
    )

    o_hs = ours.handshakes["rate"] if ours.handshakes else None
    t_hs = t.handshakes["rate"] if t.handshakes else None
    x = o_hs / t_hs if o_hs and t_hs else None
    rows.append(
        (
            f"(b) handshakes/s ({args.clients} clients)",
            _rates(ours),
            _rates(t),
            f"{x:.2f}x faster" if x else "n/a",
            f">= {TARGET_HANDSHAKE_X:g}x faster",
            _verdict(x >= TARGET_HANDSHAKE_X if x else None),
        )
    )
    for label, key in (("    handshake p50 [ms]", "p50_ms"), ("    handshake p99 [ms]", "p99_ms")):
        o = ours.handshakes[key] if ours.handshakes else None
        th = t.handshakes[key] if t.handshakes else None
        rows.append((label, _fmt(o, ".1f"), _fmt(th, ".1f"), f"{o / th:.2f}x" if o and th else "n/a", "", ""))
    o_err = ours.handshakes["errors"] if ours.handshakes else None
    t_err = t.handshakes["errors"] if t.handshakes else None
    rows.append(("    handshake errors (all runs)", _fmt(o_err, "d"), _fmt(t_err, "d"), "", "", ""))
    rows.append(
        (
            "    gateway CPU / load-gen CPU [cores]",
            _cpu_pair(ours),
            _cpu_pair(t),
            "",
            "",
            "",
        )
    )

    for label, key in (("(c) health RPC p50 [ms]", "p50_ms"), ("(c) health RPC p99 [ms]", "p99_ms")):
        o = ours.rpc[key] if ours.rpc else None
        th = t.rpc[key] if t.rpc else None
        rows.append((label, _fmt(o, ".3f"), _fmt(th, ".3f"), f"{o / th:.2f}x" if o and th else "n/a", "", ""))

    o_idle = ours.rss_idle / mib if ours.rss_idle else None
    t_idle = t.rss_idle / mib if t.rss_idle else None
    rows.append(
        (
            "(d) RSS, no clients [MiB]",
            _fmt(o_idle, ".1f"),
            _fmt(t_idle, ".1f"),
            f"{o_idle / t_idle:.3f}x" if o_idle and t_idle else "n/a",
            "",
            "",
        )
    )
    o_rss = ours.rss_loaded / mib if ours.rss_loaded else None
    t_rss = t.rss_loaded / mib if t.rss_loaded else None
    ratio = o_rss / t_rss if o_rss and t_rss else None
    opened = f"{(ours.idle or {}).get('opened', 0)}/{(t.idle or {}).get('opened', 0) if theirs else '-'}"
    rows.append(
        (
            f"(d) RSS, {args.idle} idle clients [MiB]",
            _fmt(o_rss, ".1f"),
            _fmt(t_rss, ".1f"),
            f"{ratio:.3f}x" if ratio else "n/a",
            f"<= {TARGET_RSS_RATIO:g}x",
            _verdict(ratio <= TARGET_RSS_RATIO if ratio else None),
        )
    )
    rows.append(("    idle clients opened (ours/theirs)", opened, "", "", "", ""))

    header = (
        "metric",
        f"clawd-gateway {ours.version}",
        f"openclaw {t.version or '(missing)'}",
        "ours/theirs",
        "target",
        "result",
    )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(6)]
    line = "  ".join("-" * w for w in widths)
    loadgen = (
        "lean raw-socket client (bench/wsload.py)"
        if args.loadgen == "lean"
        else "websockets + clawd ClientConnection"
    )
    pinning = (
        f"gateways pinned to CPU {_cpus(GATEWAY_CPUS)}, load generator to CPU {_cpus(LOAD_CPUS)}"
        if LOAD_CPUS
        else "no CPU pinning"
    )
    out = [
        f"gateway benchmark · {platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()} "
        f"· load average {os.getloadavg()[0]:.2f}",
        f"handshake load: 1 separate process (spawn), asyncio, {loadgen}; {pinning}",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        line,
    ]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    out.append(line)
    if peer_note:
        out.append(peer_note)
    for r in (ours, theirs):
        if r is not None and r.error:
            out.append(f"{r.name}: ERROR {r.error}")
        for phase in ("handshakes", "idle"):
            data = getattr(r, phase, None) if r is not None else None
            if data and data.get("first_errors"):
                out.append(f"{r.name if r else ''} {phase} errors (first): {'; '.join(data['first_errors'])}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--clients", type=int, default=20, help="concurrent handshake clients (default 20)")
    ap.add_argument(
        "--idle", type=int, default=1000, help="idle authenticated clients for RSS (default 1000)"
    )
    ap.add_argument(
        "--idle-concurrency",
        type=int,
        default=16,
        help="parallel opens for the idle clients (default 16; clawd allows 32 pre-auth sockets/IP)",
    )
    ap.add_argument("--duration", type=float, default=5.0, help="handshake measuring window, s (default 5)")
    ap.add_argument("--repeats", type=int, default=3, help="handshake runs; the median is shown (default 3)")
    ap.add_argument("--rpc-calls", type=int, default=500, help="health RPCs for p50/p99 (default 500)")
    ap.add_argument("--starts", type=int, default=3, help="fresh clawd-gateway starts for (a) (default 3)")
    ap.add_argument("--skip-openclaw", action="store_true", help="only benchmark clawd-gateway")
    ap.add_argument(
        "--no-install", action="store_true", help="use the OpenClaw peer only if already installed"
    )
    ap.add_argument(
        "--loadgen",
        choices=("lean", "websockets"),
        default="lean",
        help="handshake client: lean raw-socket frames (default) or the websockets library",
    )
    ap.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the gateways and the load generator to separate CPUs",
    )
    args = ap.parse_args(argv)
    global LOAD_CPUS, GATEWAY_CPUS
    cpus = sorted(os.sched_getaffinity(0))
    if not args.no_pin and len(cpus) >= 2:
        # Half the CPUs each: the gateway under test and its load never share a core, and both
        # gateways get the same budget (Node's helper threads included).
        half = len(cpus) // 2
        GATEWAY_CPUS, LOAD_CPUS = set(cpus[:half]), set(cpus[half:])
        os.sched_setaffinity(0, LOAD_CPUS)  # gateways are started on GATEWAY_CPUS (on_gateway_cpus)
    if min(args.clients, args.idle, args.rpc_calls, args.starts, args.idle_concurrency, args.repeats) < 1:
        ap.error("counts must be >= 1")
    nofile = raise_nofile_limit()
    if nofile < args.idle + 100:
        say(f"RLIMIT_NOFILE is {nofile}: lowering --idle to {nofile - 100}")
        args.idle = max(1, nofile - 100)

    peer: openclaw_peer.Peer | None = None
    peer_note = ""
    if args.skip_openclaw:
        peer_note = "openclaw: skipped (--skip-openclaw)"
    else:
        try:
            peer = openclaw_peer.find_or_install(install=not args.no_install)
        except RuntimeError as exc:
            peer_note = f"openclaw: peer could not be installed: {exc}"
        if peer is None and not peer_note:
            why = "not installed (--no-install)" if args.no_install else "needs npm on x86-64 Linux"
            peer_note = f"openclaw: peer missing, {why}; only clawd-gateway was measured"

    with tempfile.TemporaryDirectory(prefix="clawd-bench-") as tmp:
        work = Path(tmp)
        ours = bench_clawd(args, work)
        theirs: Result | None = None
        if peer is not None:
            theirs = bench_openclaw(args, work, peer)
    print(report(ours, theirs, args, peer_note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
