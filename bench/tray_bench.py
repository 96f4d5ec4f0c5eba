#!/usr/bin/env python3
"""Idle cost of `clawd tray` with a healthy tunnel (loopback only).

    python bench/tray_bench.py [--seconds 60] [--backend appindicator] [--no-baseline]

Starts a real desktop (Xvfb + trayer + a private D-Bus session bus, tests/support/desktop.py), a
real OpenSSH sshd (tests/support/sshd.py) and a clawd-gateway (in this process, on its own
loop), then `clawd tray PROFILE` as a process; the tray starts the clawd agent, which runs the
tunnel. Once `clawd status` says healthy and a 5 s warm-up has passed, it measures over --seconds:
  - CPU: user+system time of the tray process (all threads) / wall time, in % of one core;
  - wake-ups: voluntary context switches of all its threads per second (/proc/PID/task/*/status;
    each one is the process going to sleep, so each is followed by a wake-up);
  - RSS: resident memory, the maximum of samples taken every second; USS (pages only this
    process has) and PSS (shared library pages divided among their users) at the end, because
    most of what GTK adds is shared libraries that a desktop's other GTK programs map too.
The tray is only a client of the agent (it reads the agent's state stream), so its numbers are
what the UI costs; unless --no-baseline, the agent (the tunnel itself) is measured the same way
beside it. The agent, which outlives the tray by design, is stopped at the end.

Targets (issue "tray app"): tray CPU < 0.2 % of a core, RSS < 60 MB. Prints PASS/FAIL; the exit
code is 1 when a target is missed. Everything listens on 127.0.0.1; every process started here
is stopped in a finally block.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
from tests.support.clientcli import stop_agent  # noqa: E402
from tests.support.desktop import Desktop, desktop_session, wait_for  # noqa: E402
from tests.support.servers import free_port, gateway_in_thread, make_settings  # noqa: E402
from tests.support.sshd import SshdServer, running_sshd  # noqa: E402
from tests.support.supervisor import ssh_profile  # noqa: E402

from clawd_client.profiles import ProfileStore  # noqa: E402

TOKEN = "bench-token-0123456789abcdef0123456789"
TARGET_CPU_PCT = 0.2
TARGET_RSS_MB = 60.0
WARMUP_S = 5.0


@dataclass
class Sample:
    cpu_s: float
    wall: float
    voluntary: int
    involuntary: int
    threads: int


@dataclass
class Result:
    name: str
    pid: int
    seconds: float = 0.0
    cpu_pct: float = 0.0
    wakeups_per_s: float = 0.0
    involuntary_per_s: float = 0.0
    rss_max_mb: float = 0.0
    uss_mb: float = 0.0
    pss_mb: float = 0.0
    threads: int = 0
    rss_samples: list[float] = field(default_factory=list)


def ctx_switches(pid: int) -> tuple[int, int, int]:
    """(voluntary, involuntary, threads) summed over every thread of the process.

    /proc/PID/status alone counts only the main thread; the agent link, GTK and helper threads
    live in /proc/PID/task/*.
    """
    vol = invol = threads = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:
            continue  # a thread that just ended
        threads += 1
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                vol += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                invol += int(line.split()[1])
    return vol, invol, threads


def cpu_seconds(proc: psutil.Process) -> float:
    """CPU time of all threads in ns resolution (schedstat), so a 0.1 % load over 60 s is not
    lost in the 10 ms clock ticks of utime/stime; psutil's ticks where schedstat is missing."""
    total = 0
    try:
        for task in Path(f"/proc/{proc.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                total += int((task / "schedstat").read_text().split()[0])
    except OSError:
        times = proc.cpu_times()
        return times.user + times.system
    return total / 1e9


def sample(proc: psutil.Process) -> Sample:
    vol, invol, threads = ctx_switches(proc.pid)
    return Sample(cpu_seconds(proc), time.monotonic(), vol, invol, threads)


def top_mappings(proc: psutil.Process, n: int = 12) -> list[tuple[float, str]]:
    """Where the resident memory is: the largest mappings by RSS (MB, path)."""
    agg: dict[str, float] = {}
    for m in proc.memory_maps(grouped=True):
        agg[m.path] = agg.get(m.path, 0.0) + m.rss / 2**20
    return sorted(((mb, path) for path, mb in agg.items()), reverse=True)[:n]


def measure(procs: dict[str, psutil.Process], seconds: float) -> dict[str, Result]:
    """Sample all processes once a second for `seconds`; the samples themselves are cheap reads."""
    results = {name: Result(name, p.pid) for name, p in procs.items()}
    first = {name: sample(p) for name, p in procs.items()}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        for name, p in procs.items():
            results[name].rss_samples.append(p.memory_info().rss / 2**20)
    for name, p in procs.items():
        last = sample(p)
        r = results[name]
        start = first[name]
        r.seconds = last.wall - start.wall
        r.cpu_pct = 100.0 * (last.cpu_s - start.cpu_s) / r.seconds
        r.wakeups_per_s = (last.voluntary - start.voluntary) / r.seconds
        r.involuntary_per_s = (last.involuntary - start.involuntary) / r.seconds
        r.rss_max_mb = max(r.rss_samples)
        with contextlib.suppress(psutil.Error, AttributeError):
            full = p.memory_full_info()
            r.uss_mb = full.uss / 2**20
            r.pss_mb = full.pss / 2**20
        r.threads = last.threads
    return results


def status_of(env: dict[str, str], profile: str) -> dict[str, Any] | None:
    out = subprocess.run(
        [sys.executable, "-m", "clawd_client", "status", "--json", profile],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    tunnels = json.loads(out.stdout or "{}").get("tunnels", [])
    return tunnels[0] if tunnels else None


def tray_argv() -> list[str]:
    """`clawd tray` once the main CLI registers it; `python -m clawd_client.tray` until then."""
    from clawd_client.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction) and "tray" in action.choices:
            return [sys.executable, "-m", "clawd_client", "tray"]
    return [sys.executable, "-m", "clawd_client.tray"]


@contextlib.contextmanager
def started(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


def environment(work: Path, desk: Desktop, backend: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "CLAWDBOT_", "DBUS_", "XDG_"))
    }
    env.update(desk.env)
    env.update(
        HOME=str(work / "home"),
        XDG_CONFIG_HOME=str(work / "home" / ".config"),
        CLAWD_CONFIG_DIR=str(work / "cfg"),
        CLAWD_STATE_DIR=str(work / "state"),
        OPENCLAW_GATEWAY_TOKEN=TOKEN,
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        PYSTRAY_BACKEND=backend,
        PYTHONUNBUFFERED="1",
    )
    return env


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(results: dict[str, Result], args: argparse.Namespace, backend_line: str) -> bool:
    tray = results["tray"]
    base = results.get("agent")
    print(f"clawd tray idle cost over {tray.seconds:.1f} s, healthy tunnel, after a {WARMUP_S:g} s warm-up")
    print(f"  machine   {platform.platform()} · Python {platform.python_version()} · {os.cpu_count()} CPUs")
    print(f"  tray      {backend_line}")
    head = f"  {'':<24}{'clawd tray':>14}"
    if base:
        head += f"{'clawd agent':>16}"
    print(head)

    def row(label: str, attr: str, fmt: str) -> None:
        line = f"  {label:<24}{format(getattr(tray, attr), fmt):>14}"
        if base:
            line += f"{format(getattr(base, attr), fmt):>16}"
        print(line)

    row("CPU [% of one core]", "cpu_pct", ".3f")
    row("wake-ups [voluntary/s]", "wakeups_per_s", ".1f")
    row("preempted [invol./s]", "involuntary_per_s", ".2f")
    row("RSS max [MB]", "rss_max_mb", ".1f")
    row("USS at end [MB]", "uss_mb", ".1f")
    row("PSS at end [MB]", "pss_mb", ".1f")
    row("threads", "threads", "d")
    cpu_ok = tray.cpu_pct < TARGET_CPU_PCT
    rss_ok = tray.rss_max_mb < TARGET_RSS_MB
    print(f"  target CPU < {TARGET_CPU_PCT} %: {tray.cpu_pct:.3f} %  {verdict(cpu_ok)}")
    print(f"  target RSS < {TARGET_RSS_MB:g} MB: {tray.rss_max_mb:.1f} MB  {verdict(rss_ok)}")
    return cpu_ok and rss_ok


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="clawd-tray-bench-"))
    try:
        with contextlib.ExitStack() as stack:
            try:
                desk = stack.enter_context(desktop_session(work / "desktop"))
                sshd: SshdServer = stack.enter_context(running_sshd(work / "sshd"))
            except BaseException as exc:  # require() raises pytest's Skipped outside pytest
                if type(exc).__name__ in ("Skipped", "Failed"):
                    print(f"tray_bench: cannot run here: {exc}", file=sys.stderr)
                    return 2
                raise
            (work / "gw").mkdir()
            gw = stack.enter_context(gateway_in_thread(make_settings(work / "gw", token=TOKEN)))
            store = ProfileStore(work / "cfg" / "profiles.json")
            store.add(ssh_profile(sshd, gw.port, free_port(), name="tray"))
            env = environment(work, desk, args.backend)
            stack.callback(stop_agent, env)  # the tray starts it, and it outlives the tray by design
            # `clawd tray tray`: the tray brings profile "tray" up in the agent it starts.
            tray = stack.enter_context(started([*tray_argv(), "tray"], env, work / "tray.log"))
            procs = {"tray": psutil.Process(tray.pid)}

            def healthy() -> dict[str, Any] | None:
                st = status_of(env, "tray")
                return st if st and st.get("state") == "healthy" else None

            st = wait_for(healthy, 60, "the tray's tunnel to be healthy", interval=0.2)
            if not args.no_baseline:
                procs["agent"] = psutil.Process(st["pid"])
            wait_for(desk.tray_icons, 30, "the tray icon")
            log_text = (work / "state" / "client" / "logs" / "tray.log").read_text()
            backend_line = next(
                (
                    line.split("clawd.tray: ", 1)[1]
                    for line in log_text.splitlines()
                    if "tray backend" in line
                ),
                "backend unknown",
            )
            time.sleep(WARMUP_S)  # a warm-up period, not a wait for a condition
            results = measure(procs, args.seconds)
            for name, proc in (("tray", tray),):
                st = status_of(env, "tray")
                if proc.poll() is not None or not st or st.get("state") != "healthy":
                    print(f"tray_bench: the {name} left healthy during the run: {st}", file=sys.stderr)
                    return 1
            ok = report(results, args, backend_line)
            if args.maps:
                print("  largest mappings of the tray process (RSS MB):")
                for mb, path in top_mappings(procs["tray"]):
                    print(f"    {mb:7.1f}  {path}")
            return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="measurement window (default 60)")
    ap.add_argument(
        "--backend", default="appindicator", choices=("appindicator", "gtk", "xorg"), help="pystray backend"
    )
    ap.add_argument("--no-baseline", action="store_true", help="do not measure the agent beside the tray")
    ap.add_argument("--maps", action="store_true", help="also list the tray's largest memory mappings")
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
