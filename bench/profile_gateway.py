#!/usr/bin/env python3
"""Profile clawd-gateway's handshake path with py-spy while gateway_bench's load generator runs
its handshake loop (open WS -> challenge -> connect -> hello-ok -> close) against it.

    python bench/profile_gateway.py [--clients 16] [--duration 5] [--tag now]

Writes bench/profiles/gateway-TAG-handshake.{svg,txt} (same format as profile_splice.py) and
prints the handshakes/s seen under the profiler. Loopback only; the gateway is stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_bench as gb
import profile_splice as ps


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--tag", default="now")
    ap.add_argument("--loadgen", choices=("lean", "websockets"), default="lean")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "profiles"))
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:  # as gateway_bench does: the gateway on one half, the load on the other
        gb.GATEWAY_CPUS, gb.LOAD_CPUS = set(cpus[: len(cpus) // 2]), set(cpus[len(cpus) // 2 :])
        os.sched_setaffinity(0, gb.LOAD_CPUS)  # the gateway itself starts on GATEWAY_CPUS
    with tempfile.TemporaryDirectory(prefix="clawd-gw-prof-") as tmp, contextlib.ExitStack() as stack:
        gw, ready = stack.enter_context(gb.clawd_gateway(Path(tmp) / "gw"))
        raw = Path(tmp) / "raw.txt"
        cmd = [spy, "record", "-p", str(gw.pid), "-r", "1000", "-f", "raw", "-o", str(raw)]
        with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as prof:
            time.sleep(1.0)
            c0 = gb.tree_cpu(gw.pid)
            res = gb.run_phase(
                "handshakes",
                60,
                url=gw.url,
                token=gb.TOKEN,
                clients=args.clients,
                duration=args.duration,
                warmup=0.5,
                loadgen=args.loadgen,
            )
            c1 = gb.tree_cpu(gw.pid)
            prof.send_signal(2)
            prof.wait(30)
        per = (c1 - c0) / max(1, res["count"]) * 1e3
        title = (
            f"handshakes {res['rate']:.0f}/s under py-spy, gateway CPU {c1 - c0:.2f} s "
            f"(~{per:.2f} ms per handshake incl. warm-up), start->readyz {ready:.3f} s"
        )
        ps.summarize(raw, out / f"gateway-{args.tag}-handshake.txt", title)
        ps.flame(raw, out / f"gateway-{args.tag}-handshake.svg", f"clawd-gateway {args.tag} handshake")
        print(title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
