#!/usr/bin/env python3
"""Profile the product's tunnel data path (HeldListener + SshPath channel, as in tunnel_bench's
"clawd" forwarder) with py-spy while it carries an upload, a download and 64-byte echoes.

    python bench/profile_splice.py [--mib 256] [--out bench/profiles] [--tag before]

Writes, per workload, a py-spy flame graph (svg) and a text summary of the hottest frames
(own and total samples) under --out. Loopback only; every process is stopped at the end.
Needs py-spy (pip install py-spy) and permission to ptrace the child (root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tunnel_bench as tb

IDLE = ("EpollSelector.select", "Connection._recv", "Connection._poll", "_worker (concurrent")


def busy_lines(raw: Path) -> list[str]:
    """Collapsed stacks minus the waits (epoll, the control pipe's reader thread)."""
    out = []
    for line in raw.read_text().splitlines():
        stack = line.rpartition(" ")[0]
        if stack and not any(stack.split(";")[-1].startswith(i) for i in IDLE):
            out.append(line)
    return out


def summarize(raw: Path, out: Path, title: str, top: int = 40) -> None:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    layer: collections.Counter[str] = collections.Counter()
    n = 0
    for line in busy_lines(raw):
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        n += c
        frames = stack.split(";")
        own[frames[-1]] += c
        for f in set(frames):
            total[f] += c
        leaf = frames[-1]
        kind = (
            "asyncssh"
            if "asyncssh/" in leaf
            else "asyncio"
            if "asyncio/" in leaf or "uvloop" in leaf
            else "cryptography"
            if "cryptography" in leaf
            else "clawd"
            if "clawd_client" in leaf
            else "other"
        )
        layer[kind] += c
    lines = [f"# {title}: {n} busy samples (py-spy, 1000 Hz; waits in epoll and the control pipe excluded)"]
    lines += ["", "## own time by layer (leaf frame)"]
    lines += [f"{v / n * 100:5.1f}%  {k}" for k, v in layer.most_common()]
    lines += ["", "## own time (leaf frames)"]
    lines += [f"{v / n * 100:5.1f}%  {k}" for k, v in own.most_common(top)]
    lines += ["", "## total time (frame anywhere on the stack)"]
    lines += [f"{v / n * 100:5.1f}%  {k}" for k, v in total.most_common(top)]
    out.write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--echoes", type=int, default=4000)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "profiles"))
    ap.add_argument("--tag", default="now")
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clawd-splice-prof-")))
        (work / "home").mkdir()
        sshd = tb.SshdServer(work / "sshd", extra_config=f"Ciphers {tb.CIPHER}")
        stack.callback(sshd.close)
        sshd.start()
        servers = tb.Worker("prof-servers")
        stack.callback(servers.close)
        loadgen = tb.Worker("prof-loadgen")
        stack.callback(loadgen.close)
        target = int(servers.call("serve")["port"])
        p = tb.bench_profile(sshd, target)
        fwd = stack.enter_context(tb.clawd_forwarder("clawd", p, work / "home", []))
        assert fwd.pid is not None
        loadgen.call("bulk", port=fwd.port, size=8 << 20, direction="up")  # warm-up
        for name, call in (
            ("upload", lambda: loadgen.call("bulk", port=fwd.port, size=args.mib << 20, direction="up")),
            ("download", lambda: loadgen.call("bulk", port=fwd.port, size=args.mib << 20, direction="down")),
            ("echo", lambda: loadgen.call("rtt", port=fwd.port, count=args.echoes, size=64, warmup=20)),
        ):
            raw = work / f"{name}.txt"
            svg = out / f"splice-{args.tag}-{name}.svg"
            cmd = [spy, "record", "-p", str(fwd.pid), "-r", "1000", "-f", "raw", "-o", str(raw)]
            with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as prof:
                time.sleep(1.0)
                c0 = tb.cpu_s(fwd.pid)
                res = {k: v for k, v in call().items() if k != "samples_us"}
                c1 = tb.cpu_s(fwd.pid)
                prof.send_signal(2)
                prof.wait(30)
            title = f"{name} ({res}) forwarder CPU {c1 - c0:.2f} s"
            summarize(raw, out / f"splice-{args.tag}-{name}.txt", title)
            flame(raw, svg, f"splice {args.tag} {name}")
            tb.say(f"{name}: {res}, forwarder CPU {c1 - c0:.2f} s -> {svg}")
    return 0


def flame(raw: Path, svg: Path, title: str, min_frac: float = 0.005) -> None:
    """A minimal icicle graph (svg) from collapsed stacks; frames under min_frac are dropped."""
    counts: collections.Counter[tuple[str, ...]] = collections.Counter()
    for line in busy_lines(raw):
        stack, _, c = line.rpartition(" ")
        if stack:
            counts[tuple(stack.split(";"))] += int(c)
    total = sum(counts.values()) or 1
    node_counts: collections.Counter[tuple[str, ...]] = collections.Counter()
    for st, c in counts.items():
        for i in range(1, len(st) + 1):
            node_counts[st[:i]] += c
    width, row = 1600.0, 16
    rects: list[str] = []
    depth_max = 0

    def draw(prefix: tuple[str, ...], x: float, depth: int) -> None:
        nonlocal depth_max
        kids = sorted(k for k in node_counts if len(k) == len(prefix) + 1 and k[: len(prefix)] == prefix)
        for k in kids:
            w = node_counts[k] / total * width
            if w < min_frac * width:
                continue
            depth_max = max(depth_max, depth)
            label = k[-1].split(" (")[0]
            hue = 20 + (hash(label) % 40)
            rects.append(
                f'<g><title>{escape(k[-1])} {node_counts[k] / total * 100:.1f}%</title>'
                f'<rect x="{x:.1f}" y="{depth * row + 20}" width="{w:.1f}" height="{row - 1}" '
                f'fill="hsl({hue},80%,60%)"/><text x="{x + 2:.1f}" y="{depth * row + 32}" font-size="10">'
                f"{escape(label[: int(w / 6)])}</text></g>"
            )
            draw(k, x, depth + 1)
            x += w

    draw((), 0.0, 0)
    h = (depth_max + 2) * row + 20
    svg.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{h}" font-family="monospace">'
        f'<text x="4" y="14" font-size="12">{escape(title)} ({total} samples)</text>'
        + "".join(rects)
        + "</svg>\n"
    )


def escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


if __name__ == "__main__":
    sys.exit(main())
