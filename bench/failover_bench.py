#!/usr/bin/env python3
"""Multi-path failover, measured (issue 13): prints figures next to their targets, asserts nothing.

    python bench/failover_bench.py            # both deaths with failback, the jitter run (~3 min)
    python bench/failover_bench.py --quick    # failback timed once (after the crash), ~2 min

Real parts, loopback only: a clawd-gateway process, a real OpenSSH sshd (tests/support/sshd.py),
and the engine's own MultiSupervisor (one Supervisor per path behind one HeldListener) in this
process, with the profile's defaults: keepalive 1 s x 3, health probe every 15 s, failback 30 s.
Two paths to the same gateway, `ssh` first, `direct` (a loopback relay) second. Each path ends
in its own tap relay in front of the gateway, and every bench client sends a random marker header
in its WebSocket upgrade, so the tap that saw the marker says which path carried the client.

Clients keep connecting to the profile's local port all along (a new one every --every ms, each
in its own thread: open, the gateway's challenge, connect with the token, `health`). Scenarios:

  crash   sshd.crash(): stop listening, end every session; the client sees the drop at once.
  silent  a relay in front of sshd is frozen (sockets stay open, no bytes move): only SSH
          keepalive (1 s x 3) can notice, so this is the case the "<= 6 s after the kill" bounds.

For each: declared dead (the ssh path's state leaves `healthy` in the supervisor's stream) after
the kill; the first new client answered (challenge received) through `direct` after the kill and
after "declared dead"; clients that never got a challenge ("refused"), split by whether they were
sent into the path before it was declared dead (they were open on the dead path, which must end
them) or after (the target: 0). Then sshd comes back (start / thaw) and the failback is timed
until new clients are answered through SSH again.

Jitter: prefer=fastest with +-20 % latency jitter on both paths, (a) `choose()` driven with
jittered latencies for several true speed ratios, counting switches and flaps (a switch back to
a path already left), and (b) a real run: both paths' taps delay every chunk by 20 ms +- 20 %,
health probe every 0.2 s, for --jitter-seconds; switches of active_path are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.relay import Relay  # noqa: E402
from tests.support.servers import gateway_process  # noqa: E402
from tests.support.sshd import SshdServer  # noqa: E402
from tests.support.wsclient import connect_params, open_ws, recv_json, send_req  # noqa: E402

from clawd_client.engine import TunnelStatus  # noqa: E402
from clawd_client.engine.multipath import HYSTERESIS, MultiSupervisor, PathView, choose  # noqa: E402
from clawd_client.profiles import Profile, SshTarget  # noqa: E402
from clawd_gateway.secret import Secret  # noqa: E402

TOKEN = "bench-token-0123456789abcdef0123456789"
MARK = re.compile(rb"x-clawd-client: ([0-9a-f]{32})", re.IGNORECASE)
TARGET_AFTER_DEAD_S = 1.0
TARGET_AFTER_KILL_S = 6.0
TARGET_FAILBACK_S = 60.0


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- taps -------------------------------------------------------------------------------------------


class _TappedReader:
    def __init__(self, reader: asyncio.StreamReader, tap: Tap) -> None:
        self._reader = reader
        self._tap = tap

    async def read(self, n: int) -> bytes:
        data = await self._reader.read(n)
        self._tap.clients.update((m.decode(), self._tap.name) for m in MARK.findall(data))
        if data and self._tap.delay_s:
            await asyncio.sleep(self._tap.delay_s * (1 + random.uniform(-self._tap.jitter, self._tap.jitter)))
        return data


class Tap(Relay):
    """A relay noting the bench clients it carries (marker -> path), optionally adding delay."""

    def __init__(self, name: str, target_port: int, clients: dict[str, str]) -> None:
        super().__init__(target_port)
        self.name = name
        self.clients = clients
        self.delay_s = 0.0
        self.jitter = 0.0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await super()._handle(_TappedReader(reader, self), writer)  # type: ignore[arg-type]


# -- clients ----------------------------------------------------------------------------------------


@dataclass
class Client:
    started: float
    marker: str
    answered: float | None = None  # the gateway's challenge arrived
    done: float | None = None  # connect + health answered
    error: str | None = None


def one_client(url: str, out: list[Client], lock: threading.Lock) -> None:
    c = Client(time.monotonic(), secrets.token_hex(16))
    with lock:
        out.append(c)
    try:
        ws = open_ws(url, open_timeout=60, additional_headers={"X-Clawd-Client": c.marker})
    except Exception as exc:
        c.error = f"open: {type(exc).__name__}: {exc}"
        return
    try:
        challenge = recv_json(ws, 60)
        if challenge.get("event") != "connect.challenge":
            raise RuntimeError(f"not a challenge: {challenge}")
        c.answered = time.monotonic()
        send_req(ws, "connect", connect_params(TOKEN))
        res = recv_json(ws, 30)
        while res.get("type") != "res":
            res = recv_json(ws, 30)
        send_req(ws, "health")
        res = recv_json(ws, 30)
        while res.get("type") != "res":
            res = recv_json(ws, 30)
        if not res.get("ok"):
            raise RuntimeError(f"health: {res}")
        c.done = time.monotonic()
    except Exception as exc:
        c.error = f"{type(exc).__name__}: {exc}"
    finally:
        ws.close()


class Load:
    """A new client every `every` s until stopped; each in its own thread (a stuck one blocks nobody)."""

    def __init__(self, url: str, every: float) -> None:
        self.url = url
        self.every = every
        self.clients: list[Client] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ticker = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            t = threading.Thread(target=one_client, args=(self.url, self.clients, self._lock), daemon=True)
            t.start()
            self._threads.append(t)

    def start(self) -> Load:
        self._ticker.start()
        return self

    def stop(self, settle: float = 60.0) -> None:
        self._stop.set()
        self._ticker.join(5)
        deadline = time.monotonic() + settle
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))


# -- the supervisor in a background loop ------------------------------------------------------------


class Running:
    def __init__(self, profile: Profile) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="multipath-loop", daemon=True)
        sec = Secret(TOKEN, "bench")
        self.sup = MultiSupervisor(profile, lambda: sec)
        self.history: list[tuple[float, TunnelStatus]] = []
        self._cond = threading.Condition()
        self.sup.add_listener(self._record)

    def _record(self, st: TunnelStatus) -> None:
        with self._cond:
            self.history.append((time.monotonic(), st))
            self._cond.notify_all()

    def wait(self, pred: Callable[[TunnelStatus], bool], timeout: float, what: str) -> float:
        """The time of the first status from now on satisfying `pred` (or of the current one)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = max(0, len(self.history) - 1)
            while True:
                for t, st in self.history[seen:]:
                    if pred(st):
                        return t
                seen = len(self.history)
                if (
                    not self._cond.wait(max(0.0, deadline - time.monotonic()))
                    and time.monotonic() >= deadline
                ):
                    raise RuntimeError(f"timed out waiting for {what}")

    def first_after(self, t0: float, pred: Callable[[TunnelStatus], bool]) -> float | None:
        with self._cond:
            return next((t for t, st in self.history if t >= t0 and pred(st)), None)

    def actives(self, t0: float = 0.0) -> list[str | None]:
        """active_path from the one in force at t0 on, each change once."""
        seq: list[str | None] = []
        with self._cond:
            before = [st for t, st in self.history if t < t0]
            if before:
                seq.append(before[-1].active_path)
            for t, st in self.history:
                if t >= t0 and (not seq or seq[-1] != st.active_path):
                    seq.append(st.active_path)
        return seq

    def __enter__(self) -> Running:
        self.thread.start()
        self.future = asyncio.run_coroutine_threadsafe(self.sup.run(), self.loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.sup.quit)
        with contextlib.suppress(Exception):
            self.future.result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def path_state(st: TunnelStatus, name: str) -> str | None:
    return next((p.state for p in st.paths if p.path == name), None)


def both_healthy(st: TunnelStatus) -> bool:
    return st.active_path == "ssh" and all(p.state == "healthy" for p in st.paths)


# -- scenarios --------------------------------------------------------------------------------------


@dataclass
class Parts:
    gateway_port: int
    sshd: SshdServer
    carried: dict[str, str]  # marker -> path


@contextlib.contextmanager
def two_paths(
    parts: Parts, *, silent: bool, **profile_changes: Any
) -> Iterator[tuple[Running, Any, Tap, Tap]]:
    """The profile (ssh first, direct second) and its relays; yields (running, front, ssh tap, direct tap)."""
    ssh_tap = Tap("ssh", parts.gateway_port, parts.carried)
    direct = Tap("direct", parts.gateway_port, parts.carried)
    ssh_tap.start()
    direct.start()
    front = Relay(parts.sshd.port).start() if silent else None  # freezable, in front of sshd
    sshd = parts.sshd
    try:
        target = SshTarget(
            host="127.0.0.1",
            user=sshd.user,
            port=front.port if front is not None else sshd.port,
            identity=str(sshd.client_key_path),
            known_hosts=str(sshd.known_hosts),
        )
        if front is not None:  # the host key is pinned per host:port
            target = replace(target, known_hosts=str(sshd.write_known_hosts(port=front.port)))
        local_port = free_port()
        direct_way = Profile(name="mp", method="direct", url=f"ws://127.0.0.1:{direct.port}")
        profile = Profile(
            name="mp",
            ssh=target,
            remote_port=ssh_tap.port,
            local_port=local_port,
            alternates=(direct_way,),
        )
        profile = replace(profile, **profile_changes)
        with Running(profile) as run:
            yield run, front, ssh_tap, direct
    finally:
        for r in (ssh_tap, direct, front):
            if r is not None:
                r.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def death(parts: Parts, *, silent: bool, every: float, failback: bool) -> dict[str, Any]:
    kind = "silent" if silent else "crash"
    say(f"{kind}: starting ssh + direct")
    with two_paths(parts, silent=silent) as (run, front, _ssh_tap, _direct):
        run.wait(both_healthy, 30, "ssh active, both paths healthy")
        url = f"ws://127.0.0.1:{run.sup.local_port}"
        load = Load(url, every).start()
        time.sleep(1.0)  # a baseline of clients through SSH
        say(f"{kind}: killing the ssh path")
        t_kill = time.monotonic()
        if front is not None:
            front.freeze()
        else:
            parts.sshd.crash()
        t_dead = run.wait(lambda s: path_state(s, "ssh") != "healthy", 30, "ssh declared dead")
        t_switch = run.wait(lambda s: s.active_path == "direct", 30, "failover to direct")
        time.sleep(2.0)  # clients keep coming through the standby
        result: dict[str, Any] = {
            "kind": kind,
            "dead_after_kill": t_dead - t_kill,
            "switch_after_dead": t_switch - t_dead,
        }
        if failback:
            say(f"{kind}: bringing sshd back; failback after {run.sup.profile.failback:g} s of health")
            t_back = time.monotonic()
            if front is not None:
                front.thaw()
            else:
                parts.sshd.start()
            t_ssh_ok = run.wait(lambda s: path_state(s, "ssh") == "healthy", 60, "ssh healthy again")
            t_on_ssh = run.wait(lambda s: s.active_path == "ssh", 90, "failback to ssh")
            time.sleep(1.0)
            result.update(ssh_healthy_after_return=t_ssh_ok - t_back, failback_switch=t_on_ssh - t_back)
        load.stop()
        clients = list(load.clients)
        result["actives"] = run.actives(t_kill - 1.0)
    if not failback and front is None:
        parts.sshd.start()
    carried = parts.carried
    via = {c.marker: carried.get(c.marker) for c in clients}
    standby = [c for c in clients if c.started >= t_kill and via[c.marker] == "direct" and c.answered]
    first = min((c.answered for c in standby if c.answered is not None), default=None)
    failed = [c for c in clients if c.answered is None]
    result.update(
        clients=len(clients),
        first_standby_after_kill=None if first is None else first - t_kill,
        first_standby_after_dead=None if first is None else first - t_dead,
        refused_before_dead=sum(1 for c in failed if c.started < t_dead),
        refused_after_dead=sum(1 for c in failed if c.started >= t_dead),
        cut_after_answer=sum(1 for c in clients if c.answered is not None and c.error is not None),
        errors_before=error_counts(c for c in failed if c.started < t_dead),
        errors_after=error_counts(c for c in failed if c.started >= t_dead),
        gap_wait=[
            c.answered - c.started
            for c in clients
            if t_kill <= c.started < t_switch and c.answered is not None
        ],
    )
    if failback:
        back = [
            c.answered
            for c in clients
            if c.started >= t_back and via[c.marker] == "ssh" and c.answered is not None
        ]
        result["first_ssh_after_return"] = min(back) - t_back if back else None
    return result


def error_counts(clients: Iterator[Client]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in clients:
        key = (c.error or "?")[:90]
        counts[key] = counts.get(key, 0) + 1
    return counts


# -- jitter -----------------------------------------------------------------------------------------


def jitter_choose(ratios: list[float], ticks: int, seed: int) -> list[tuple[float, int, int]]:
    """(true ratio of the standby's latency to the active's, switches, flaps) per ratio."""
    rows = []
    for ratio in ratios:
        rng = random.Random(seed)
        active: str | None = "a"
        switches = flaps = 0
        left: set[str] = set()
        for t in range(ticks):
            a = 20.0 * (1 + rng.uniform(-0.2, 0.2))
            b = 20.0 * ratio * (1 + rng.uniform(-0.2, 0.2))
            views = [PathView("a", 0.0, a), PathView("b", 0.0, b)]
            chosen = choose(views, active, prefer="fastest", failback=30.0, now=1000.0 + t)
            if chosen != active:
                switches += 1
                flaps += chosen in left
                if active is not None:
                    left.add(active)
                active = chosen
        rows.append((ratio, switches, flaps))
    return rows


def jitter_real(parts: Parts, seconds: float) -> dict[str, Any]:
    say(f"jitter: prefer=fastest, 20 ms +- 20 % per chunk on both paths, probes every 0.2 s, {seconds:g} s")
    with two_paths(parts, silent=False, prefer="fastest", probe_interval=0.2) as (run, _f, ssh_tap, direct):
        for tap in (ssh_tap, direct):
            tap.delay_s, tap.jitter = 0.020, 0.2
        run.wait(lambda s: s.active_path is not None and all(p.state == "healthy" for p in s.paths), 30, "up")
        t0 = time.monotonic()
        time.sleep(seconds)
        lat: dict[str, list[float]] = {"ssh": [], "direct": []}
        for t, st in run.history:
            if t >= t0:
                for p in st.paths:
                    if p.latency_ms is not None:
                        lat[p.path].append(p.latency_ms)
        seq = run.actives(t0)
    return {
        "actives": seq,
        "switches": len(seq) - 1,
        "latency_ms": {k: (statistics.median(v), min(v), max(v)) for k, v in lat.items() if v},
        "samples": {k: len(v) for k, v in lat.items()},
    }


# -- output -----------------------------------------------------------------------------------------


def fmt(v: float | None, unit: str = "s") -> str:
    return "n/a" if v is None else f"{v:.2f} {unit}"


def verdict(v: float | None, target: float) -> str:
    return "n/a" if v is None else ("ok" if v <= target else "MISSED")


def line(label: str, value: str, target: str = "") -> None:
    print(f"   {label:<58} {value}{'  ' + target if target else ''}")


def report(
    deaths: list[dict[str, Any]], choose_rows: list[tuple[float, int, int]], real: dict[str, Any] | None
) -> None:
    print("\n== Failover: sshd dies while SSH is active, direct healthy (keepalive 1 s x 3, probe 15 s) ==")
    for r in deaths:
        print(f"-- {r['kind']} ({r['clients']} clients, a new one every {ARGS.every * 1000:.0f} ms)")
        line("ssh declared dead, after the kill", fmt(r["dead_after_kill"]))
        line("active_path -> direct, after declared dead", fmt(r["switch_after_dead"]))
        a, k = r["first_standby_after_dead"], r["first_standby_after_kill"]
        t_dead, t_kill = TARGET_AFTER_DEAD_S, TARGET_AFTER_KILL_S
        line("first new client answered via direct, after declared dead", fmt(a), target_text(a, t_dead))
        line("first new client answered via direct, after the kill", fmt(k), target_text(k, t_kill))
        if r["gap_wait"]:
            g = r["gap_wait"]
            line(
                f"{len(g)} clients sent between kill and switch, held for",
                f"median {statistics.median(g):.2f} s, max {max(g):.2f} s",
            )
        line("never answered, sent before declared dead (on the dead path)", str(r["refused_before_dead"]))
        n = r["refused_after_dead"]
        line(
            "never answered, sent after declared dead (refused)",
            str(n),
            f"(target 0: {'ok' if n == 0 else 'MISSED'})",
        )
        if r["cut_after_answer"]:
            line("answered, then cut with their path", str(r["cut_after_answer"]))
        for which in ("before", "after"):
            for err, count in r[f"errors_{which}"].items():
                line(f"  sent {which} declared dead: {count} x", err)
        if "failback_switch" in r:
            f = r["first_ssh_after_return"]
            line("after sshd returned: ssh path healthy", fmt(r["ssh_healthy_after_return"]))
            line("after sshd returned: active_path -> ssh (failback 30 s)", fmt(r["failback_switch"]))
            line("after sshd returned: first new client via ssh", fmt(f), target_text(f, TARGET_FAILBACK_S))
        line("active_path sequence", " -> ".join(str(x) for x in r["actives"]))
    print(f"\n== No flapping under 20 % jitter, prefer=fastest (hysteresis {HYSTERESIS:.0%}) ==")
    print(f"-- choose() over {ARGS.ticks} jittered probes per ratio, both latencies +-20 %:")
    for ratio, switches, flaps in choose_rows:
        line(f"standby/active true latency {ratio:.2f}", f"switches {switches}, flaps {flaps}")
    if real is not None:
        s = real["switches"]
        print(f"-- real run, {ARGS.jitter_seconds:g} s:")
        line("active_path switches", str(s), f"(target 0: {'ok' if s == 0 else 'MISSED'})")
        for k, (med, lo, hi) in real["latency_ms"].items():
            line(
                f"{k}: health latency ({real['samples'][k]} samples)",
                f"median {med:.1f} ms, min {lo:.1f}, max {hi:.1f}",
            )
        line("active_path sequence", " -> ".join(str(x) for x in real["actives"]))


def target_text(v: float | None, target: float) -> str:
    return f"(target <= {target:g} s: {verdict(v, target)})"


ARGS: argparse.Namespace


def main() -> int:
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="time the failback once (after the crash)")
    ap.add_argument("--every", type=float, default=0.05, help="seconds between new clients (default 0.05)")
    ap.add_argument("--ticks", type=int, default=20000, help="choose(): jittered probes per ratio")
    ap.add_argument("--jitter-seconds", type=float, default=45.0, help="the real jitter run (0: skip)")
    ARGS = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="clawd-failover-") as tmp:
        root = Path(tmp)
        for sub in ("gw", "sshd"):
            (root / sub).mkdir()
        with gateway_process(root / "gw", args=["--log-level", "warning"], token=TOKEN) as gw:
            sshd = SshdServer(root / "sshd")
            sshd.start()
            try:
                parts = Parts(gw.port, sshd, {})
                deaths = [
                    death(parts, silent=False, every=ARGS.every, failback=True),
                    death(parts, silent=True, every=ARGS.every, failback=not ARGS.quick),
                ]
                rows = jitter_choose([1.0, 0.9, 0.8, 0.7, 0.5], ARGS.ticks, seed=13)
                real = jitter_real(parts, ARGS.jitter_seconds) if ARGS.jitter_seconds > 0 else None
            finally:
                sshd.close()
    report(deaths, rows, real)
    return 0


if __name__ == "__main__":
    sys.exit(main())
