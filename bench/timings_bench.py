#!/usr/bin/env python3
"""How long the events take that the test suite only waits for (loopback only).

    python bench/timings_bench.py [--runs 5] [--only keepalive handshake ...]

The tests assert that each event below *happens, with the right cause*, under a generous
deadline; they hold no wall-clock bounds, because a loaded 2-core box turns a bound into a red
build that says nothing about the code. The times are measured here instead, where a busy
machine only makes a slower figure. Each row prints the median, min-max over --runs, the figure
the product aims at where there is one (and the ratio to it), and the bound the test used to assert.

Rows (the test that waits for the event, in brackets):
  sshd-kill     an sshd session is killed -> the asyncssh client sees the connection lost
                (test_sshd_fixture: test_kill_sessions_closes_the_connection)
  sshd-restart  sshd.start() after a stop, on the same port, until "Server listening"
                (test_sshd_fixture: test_stopped_master_leaves_sessions_and_restarts_...)
  keepalive     a frozen relay under an asyncssh connection with keepalive 1 s x 3 -> closed
                (test_sshd_fixture: test_frozen_relay_is_detected_by_keepalive)
  silent        the same through the tunnel Supervisor: leaves `healthy` with the keepalive cause
                (test_tunnel_sshd: test_silent_link_is_detected_by_keepalive_and_heals)
  heal          the Supervisor's sshd session is killed -> `healthy` again
                (test_tunnel_sshd: test_session_killed_heals_without_user_action)
  lock          InstanceLock.acquire() against a live holder process -> AlreadyRunning
                (test_lock: test_other_process_holding_the_lock_is_named_...)
  handshake     a silent WebSocket client, OPENCLAW_HANDSHAKE_TIMEOUT_MS=300 -> closed 1008
                (test_gateway_ws: test_handshake_deadline_closes_silent_clients)
  takeover      terminate_stale() of our own stale instance + wait_port_free() -> port free
                (test_ports: test_own_stale_instance_is_recognised_and_taken_over)

The reconnect after sshd comes back (test_tunnel_sshd: test_sshd_down_then_back) is row (5) of
bench/tunnel_bench.py, which measures it from sshd's readiness.

Everything listens on 127.0.0.1; every process and thread started here is stopped before exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.holder import holder_process, next_line  # noqa: E402
from tests.support.relay import relay  # noqa: E402
from tests.support.servers import gateway_in_thread, make_settings  # noqa: E402
from tests.support.sshd import SSHD, SshdServer  # noqa: E402
from tests.support.supervisor import ssh_profile, supervised  # noqa: E402
from tests.support.wsclient import close_info, open_ws, recv_json  # noqa: E402

from clawd_client._asyncssh import asyncssh  # noqa: E402
from clawd_client.engine.lock import AlreadyRunning, InstanceLock  # noqa: E402
from clawd_client.engine.ports import terminate_stale, wait_port_free  # noqa: E402

TOKEN = "bench-token-0123456789abcdef0123456789"
DEADLINE_S = 60.0  # the same kind of generous deadline the tests use: a hang, not a slow run
KEEPALIVE_S, KEEPALIVE_COUNT = 1.0, 3
HANDSHAKE_MS = 300
LOCK_WAIT_S = 0.2  # InstanceLock.acquire()'s default retry window
LOCK_HOLDER = """
import sys
from pathlib import Path
from clawd_client.engine.lock import InstanceLock
lock = InstanceLock("work", Path(sys.argv[1])).acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Row:
    """One measured event: what it is, what it should take, what the test used to assert."""

    name: str
    what: str
    target: str  # the product's own figure, or "-"
    target_s: float | None  # for the ratio column
    old_bound: str  # what the test asserted before it waited on the event instead
    samples: list[float] = field(default_factory=list)
    note: str = ""
    error: str = ""


# --- the measurements: each returns seconds for one run ------------------------------------------


async def _connect(
    sshd: SshdServer, **overrides: object
) -> tuple[asyncssh.SSHClientConnection, list[Exception | None]]:
    lost: list[Exception | None] = []

    class Recorder(asyncssh.SSHClient):
        def connection_lost(self, exc: Exception | None) -> None:
            lost.append(exc)

    conn = await asyncio.wait_for(
        asyncssh.connect(**sshd.connect_options(client_factory=Recorder, **overrides)), DEADLINE_S
    )
    return conn, lost


def sshd_kill(sshd: SshdServer, row: Row) -> float:
    async def main() -> float:
        conn, lost = await _connect(sshd)
        await conn.run("true", check=True)
        t0 = time.perf_counter()
        await asyncio.to_thread(sshd.kill_sessions)
        await asyncio.wait_for(conn.wait_closed(), DEADLINE_S)
        row.note = f"cause: {lost[0]!r}" if lost else "no cause recorded"
        return time.perf_counter() - t0

    return asyncio.run(main())


def sshd_restart(sshd: SshdServer, row: Row) -> float:
    sshd.stop()
    t0 = time.perf_counter()
    sshd.start()
    return time.perf_counter() - t0


def keepalive(sshd: SshdServer, row: Row) -> float:
    async def main() -> float:
        with relay(sshd.port) as r:
            known = sshd.write_known_hosts(port=r.port)
            conn, lost = await _connect(
                sshd,
                port=r.port,
                known_hosts=str(known),
                keepalive_interval=KEEPALIVE_S,
                keepalive_count_max=KEEPALIVE_COUNT,
            )
            await conn.run("true", check=True)
            r.freeze()
            t0 = time.perf_counter()
            await asyncio.wait_for(conn.wait_closed(), DEADLINE_S)
            row.note = f"cause: {lost[0]!r}" if lost else "no cause recorded"
            return time.perf_counter() - t0

    return asyncio.run(main())


def silent(sshd: SshdServer, gw_port: int, row: Row) -> float:
    with relay(sshd.port) as r:
        known = sshd.write_known_hosts(port=r.port)
        p = ssh_profile(sshd, gw_port, free_port())
        assert p.ssh is not None
        p = replace(p, ssh=replace(p.ssh, port=r.port, known_hosts=str(known)))
        with supervised(p, TOKEN) as w:
            w.wait_state("healthy", DEADLINE_S)
            mark = w.mark()
            r.freeze()
            t0 = time.perf_counter()
            st = w.wait_from(mark, lambda s: s["state"] != "healthy", DEADLINE_S, "leaving healthy")
            took = time.perf_counter() - t0
            row.note = f"{st['state']}: {st['last_error']!r}"
            return took


def heal(sshd: SshdServer, gw_port: int, row: Row) -> float:
    with supervised(ssh_profile(sshd, gw_port, free_port()), TOKEN) as w:
        w.wait_state("healthy", DEADLINE_S)
        mark = w.mark()
        t0 = time.perf_counter()
        sshd.kill_sessions()
        w.wait_from(mark, lambda s: s["state"] != "healthy", DEADLINE_S, "leaving healthy")
        st = w.wait_from(mark, lambda s: s["state"] == "healthy", DEADLINE_S, "healthy again")
        took = time.perf_counter() - t0
        row.note = f"reconnects {st['reconnects']}"
        return took


def lock(work: Path, row: Row) -> float:
    locks = Path(tempfile.mkdtemp(dir=work)) / "locks"
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(locks)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        t0 = time.perf_counter()
        try:
            InstanceLock("work", locks).acquire()
        except AlreadyRunning as exc:
            took = time.perf_counter() - t0
            row.note = f"holder pid {exc.pid} named"
            return took
        raise RuntimeError("the lock was granted although another process holds it")
    finally:
        proc.kill()
        proc.wait(DEADLINE_S)


def handshake(gw_url: str, row: Row) -> float:
    with open_ws(gw_url) as ws:
        recv_json(ws)  # the challenge: the deadline runs from the accept, a hair before this
        t0 = time.perf_counter()
        code, reason = close_info(ws, timeout=DEADLINE_S)
        took = time.perf_counter() - t0
    row.note = f"close {code} {reason!r}; timed from the challenge frame"
    return took


def takeover(work: Path, row: Row) -> float:
    port = free_port()
    with holder_process(Path(tempfile.mkdtemp(dir=work)), port, "clawd", "connect", "work") as proc:
        t0 = time.perf_counter()
        if not terminate_stale(proc.pid, profile="work"):
            raise RuntimeError("terminate_stale refused our own stale instance")
        if not wait_port_free(port, timeout=DEADLINE_S):
            raise RuntimeError(f"port {port} still taken")
        took = time.perf_counter() - t0
        row.note = f"ended by: {next_line(proc, DEADLINE_S) or 'no SIGTERM line (SIGKILL fallback?)'}"
        return took


# --- the run ---------------------------------------------------------------------------------------

ROWS = {
    "sshd-kill": Row("sshd-kill", "session killed -> client sees it lost", "-", None, "< 2 s"),
    "sshd-restart": Row("sshd-restart", "sshd start, same port, until listening", "-", None, "< 5 s"),
    "keepalive": Row(
        "keepalive",
        "frozen link -> asyncssh keepalive (1 s x 3)",
        "<= 4 s",
        KEEPALIVE_S * (KEEPALIVE_COUNT + 1),
        "2.0-6.0 s",
    ),
    "silent": Row("silent", "frozen link -> Supervisor leaves healthy", "<= 4 s", 4.0, "<= 6 s"),
    "heal": Row("heal", "session killed -> Supervisor healthy again", "-", None, "< 10 s"),
    "lock": Row("lock", "acquire() vs live holder -> AlreadyRunning", "~0.2 s", LOCK_WAIT_S, "< 2 s"),
    "handshake": Row(
        "handshake", "silent client, 300 ms deadline -> closed", "0.3 s", HANDSHAKE_MS / 1000, "< 4 s"
    ),
    "takeover": Row("takeover", "terminate_stale + wait_port_free -> free", "-", None, "< 3 s"),
}
SSHD_ONLY: dict[str, Callable[[SshdServer, Row], float]] = {
    "sshd-kill": sshd_kill,
    "sshd-restart": sshd_restart,
    "keepalive": keepalive,
}
SSHD_ROWS = {*SSHD_ONLY, "silent", "heal"}


def measure(row: Row, runs: int, once: Callable[[Row], float]) -> None:
    for i in range(runs):
        try:
            row.samples.append(once(row))
        except Exception as exc:  # a broken run is a figure too: say it and go on with the others
            row.error = f"run {i + 1}: {type(exc).__name__}: {exc}"
            break
    say(f"{row.name}: {', '.join(f'{s:.3f}' for s in row.samples)} s {row.error}".rstrip())


def run(args: argparse.Namespace) -> list[Row]:
    only = set(args.only or ROWS)
    rows = [ROWS[name] for name in ROWS if name in only]
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clawd-timings-bench-")))
        os.environ.setdefault("HOME", str(work))
        sshd: SshdServer | None = None
        if only & SSHD_ROWS:
            if not SSHD.exists():
                for row in rows:
                    if row.name in SSHD_ROWS:
                        row.error = f"{SSHD} missing (apt-get install openssh-server)"
            else:
                sshd = SshdServer(work / "sshd")
                stack.callback(sshd.close)
                sshd.start()
        for sub in ("gw-main", "gw-hs"):
            (work / sub).mkdir()
        gw = None
        if only & {"silent", "heal"}:
            gw = stack.enter_context(gateway_in_thread(make_settings(work / "gw-main", token=TOKEN)))
        for row in rows:
            if row.error:
                continue
            once: Callable[[Row], float]
            if row.name == "handshake":
                env = {"OPENCLAW_HANDSHAKE_TIMEOUT_MS": str(HANDSHAKE_MS)}
                hs = stack.enter_context(
                    gateway_in_thread(make_settings(work / "gw-hs", env=env, token=TOKEN))
                )
                once = functools.partial(handshake, hs.url)
            elif row.name == "lock":
                once = functools.partial(lock, work)
            elif row.name == "takeover":
                once = functools.partial(takeover, work)
            elif row.name in ("silent", "heal"):
                assert sshd is not None and gw is not None
                once = functools.partial(silent if row.name == "silent" else heal, sshd, gw.port)
            else:
                assert sshd is not None
                once = functools.partial(SSHD_ONLY[row.name], sshd)
            say(f"measuring {row.name} ({args.runs} runs)")
            measure(row, args.runs, once)
    return rows


def _line(*cells: str) -> str:
    name, what, med, span, target, ratio, bound = cells
    return f"{name:<13} {what:<46} {med:>8} {span:>15} {target:>8} {ratio:>6}  {bound}"


def report(rows: list[Row], args: argparse.Namespace, load: float, wall: float) -> str:
    lines = [
        f"clawd timings bench: {args.runs} runs per row, load average {load:.2f} at start",
        _line("row", "what", "median", "min-max", "target", "ratio", "old test bound"),
    ]
    for row in rows:
        med = statistics.median(row.samples) if row.samples else None
        lines.append(
            _line(
                row.name,
                row.what,
                f"{med:.3f}s" if med is not None else "-",
                f"{min(row.samples):.3f}-{max(row.samples):.3f}" if row.samples else "-",
                row.target,
                f"{med / row.target_s:.2f}x" if med is not None and row.target_s else "-",
                row.old_bound,
            )
        )
    for row in rows:
        if row.note or row.error:
            lines.append(f"  {row.name}: {row.error or row.note}")
    lines.append(f"(whole run {wall:.0f} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=5, help="repetitions per row (default 5)")
    ap.add_argument("--only", nargs="+", choices=list(ROWS), help="measure only these rows")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    rows = run(args)
    print(report(rows, args, load, time.perf_counter() - t0))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
