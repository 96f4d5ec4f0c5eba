#!/usr/bin/env python3
"""Profile the product's tunnel data path (HeldListener + SshPath channel, as in tunnel_bench's
"clawd" forwarder) with py-spy while it carries an upload, a download and 64-byte echoes, and
attribute the forwarder's CPU to layers.

    python bench/profile_splice.py [--mib 256] [--out bench/profiles] [--variants stock patched]

Variants: "stock" is the forwarder as shipped; "patched" is the same forwarder with a copy of
asyncssh patched by --asyncssh-patch (default: asyncssh-2.24.1-datapath.patch) first on its
sys.path (tunnel_bench's "clawd+patched asyncssh" column). Writes, per variant and workload, a
py-spy flame graph (splice-VARIANT-WORKLOAD.svg) and a text summary of the hottest frames
(.txt), and one table of the cost per layer for every variant (splice-layers.txt). Loopback
only; every process is stopped at the end. Needs py-spy (pip install py-spy) and permission to
ptrace the child (root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tunnel_bench as tb

IDLE = ("EpollSelector.select", "Connection._recv", "Connection._poll", "_worker (concurrent")

LAYERS = (
    "clawd engine (clawd_client.engine.*)",
    "asyncssh packet/channel code",
    "cryptography AEAD calls",
    "asyncio transports/event loop",
    "socket syscalls (send/recv)",
    "other",
)
# A leaf frame in asyncssh's crypto shims on one of these lines is time inside cryptography's
# (Rust/OpenSSL) AEAD call: py-spy shows native time on the calling Python line.
AEAD_LINE = re.compile(r"AESGCM\(|_aesgcm\.|\.encrypt\(|\.decrypt\(|encrypt_into\(|chacha20\(|poly1305")
# A leaf frame in asyncio on one of these lines is time inside the socket system call.
SYSCALL_LINE = re.compile(r"\.(send|recv|recv_into|sendmsg|sendto|recvfrom)\(")
FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*):(?P<line>\d+)\)$")


def busy_lines(raw: Path) -> list[str]:
    """Collapsed stacks minus the waits (epoll, the control pipe's reader thread)."""
    out = []
    for line in raw.read_text().splitlines():
        stack = line.rpartition(" ")[0]
        if stack and not any(stack.split(";")[-1].startswith(i) for i in IDLE):
            out.append(line)
    return out


@functools.cache
def source_line(path: str, line: int, roots: tuple[str, ...]) -> str:
    """The source text of path:line; py-spy gives paths relative to a sys.path entry."""
    for root in ("", *roots):
        f = Path(root, path) if root else Path(path)
        if f.is_absolute() and f.is_file():
            lines = f.read_text(errors="replace").splitlines()
            return lines[line - 1] if 0 < line <= len(lines) else ""
    return ""


def layer_of(frame: str, roots: tuple[str, ...]) -> str:
    m = FRAME.match(frame)
    if not m:
        return LAYERS[-1]
    path, line = m["path"], int(m["line"])
    if "clawd_client/" in path:
        return LAYERS[0]
    if "asyncssh/" in path:
        if "asyncssh/crypto/" in path and AEAD_LINE.search(source_line(path, line, roots)):
            return LAYERS[2]
        return LAYERS[1]
    if "cryptography/" in path:
        return LAYERS[2]
    if "asyncio/" in path or path.endswith(("selectors.py", "socket.py")) or "uvloop" in path:
        if SYSCALL_LINE.search(source_line(path, line, roots)):
            return LAYERS[4]
        return LAYERS[3]
    return LAYERS[-1]


@dataclass
class Profiled:
    variant: str
    workload: str
    cpu_s: float  # forwarder CPU during the workload
    units: float  # GiB moved, or echoes
    unit: str  # "s/GiB" or "us/echo"
    layers: dict[str, int]  # busy samples per layer (leaf frame)
    top: dict[str, collections.Counter[str]]  # per layer: leaf frames
    samples: int


def summarize(raw: Path, out: Path, title: str, roots: tuple[str, ...], top: int = 40) -> Profiled:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    layer: collections.Counter[str] = collections.Counter()
    per_layer: dict[str, collections.Counter[str]] = {k: collections.Counter() for k in LAYERS}
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
        kind = layer_of(frames[-1], roots)
        layer[kind] += c
        per_layer[kind][frames[-1]] += c
    n = n or 1
    lines = [f"# {title}: {n} busy samples (py-spy, 1000 Hz; waits in epoll and the control pipe excluded)"]
    lines += ["", "## own time by layer (leaf frame)"]
    lines += [f"{v / n * 100:5.1f}%  {k}" for k, v in layer.most_common()]
    lines += ["", "## own time (leaf frames)"]
    lines += [
        f"{v / n * 100:5.1f}%  {k}  [{layer_of(k, roots).split(' (')[0]}]" for k, v in own.most_common(top)
    ]
    lines += ["", "## total time (frame anywhere on the stack)"]
    lines += [f"{v / n * 100:5.1f}%  {k}" for k, v in total.most_common(top)]
    out.write_text("\n".join(lines) + "\n")
    return Profiled("", "", 0.0, 0.0, "", dict(layer), per_layer, n)


def layer_table(results: list[Profiled], header: str) -> str:
    """Forwarder CPU per layer: s/GiB for bulk, us per echo for the echo, with the share of
    the busy samples; one column per variant and workload."""
    cols = [(r.workload, r.variant) for r in results]
    by = {(r.workload, r.variant): r for r in results}
    head = ["layer (leaf frame's file)", *(f"{w} {v}" for w, v in cols)]
    rows = []
    for k in (*LAYERS, "total (forwarder CPU)"):
        cells = [k]
        for key in cols:
            r = by[key]
            per = r.cpu_s / r.units * (1e6 if r.unit == "us/echo" else 1.0)
            if k.startswith("total"):
                cells.append(f"{per:.2f} {r.unit}" if r.unit == "s/GiB" else f"{per:.0f} {r.unit}")
                continue
            share = r.layers.get(k, 0) / r.samples
            v = share * per
            cells.append(
                f"{v:.2f} ({share * 100:4.1f}%)" if r.unit == "s/GiB" else f"{v:.1f} ({share * 100:4.1f}%)"
            )
        rows.append(cells)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    out = [header, "", fmt(head), fmt(["-" * w for w in widths]), *map(fmt, rows), ""]
    out.append("Units: bulk columns s of forwarder CPU per GiB moved (share of busy samples); echo")
    out.append("columns us of forwarder CPU per 64-byte round trip. The CPU is measured in a run without")
    out.append("the profiler; the shares come from a second, profiled run. Layers by the leaf frame's file:")
    out.append("cryptography = a leaf in asyncssh/crypto on the AESGCM/chacha call (native time shows on")
    out.append("the calling line); socket syscalls = a leaf in asyncio on a sock.send/recv line.")
    for r in results:
        out += ["", f"## {r.workload} {r.variant}: top leaf frames per layer (share of busy samples)"]
        for k in LAYERS:
            items = r.top[k].most_common(4)
            if items:
                out.append(f"  {k}: {r.layers.get(k, 0) / r.samples * 100:.1f}%")
                out += [f"      {c / r.samples * 100:5.1f}%  {f}" for f, c in items]
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--echoes", type=int, default=4000)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "profiles"))
    ap.add_argument("--variants", nargs="+", choices=("stock", "patched"), default=["stock", "patched"])
    ap.add_argument("--asyncssh-patch", action="append", type=Path, metavar="FILE")
    ap.add_argument("--layers-file", default="splice-layers.txt")
    args = ap.parse_args()
    patches = [p.resolve() for p in (args.asyncssh_patch or [tb.DATAPATH_PATCH])]
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: list[Profiled] = []
    load = tb.os.getloadavg()[0]
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
        stdlib = sysconfig.get_paths()["stdlib"]
        site_dirs = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
        for variant in args.variants:
            site = None
            if variant == "patched":
                site = tb.patched_asyncssh(work / "asyncssh-patched", patches)
            roots = tuple(str(x) for x in (*([site] if site else []), stdlib, *site_dirs, tb.REPO / "client"))
            with tb.clawd_forwarder(variant, p, work / "home", [], pythonpath=site) as fwd:
                assert fwd.pid is not None
                tb.say(f"{variant}: {fwd.runtime}")
                loadgen.call("bulk", port=fwd.port, size=8 << 20, direction="up")  # warm-up
                for name, call, units, unit in (
                    (
                        "upload",
                        lambda f=fwd: loadgen.call("bulk", port=f.port, size=args.mib << 20, direction="up"),
                        args.mib / 1024,
                        "s/GiB",
                    ),
                    (
                        "download",
                        lambda f=fwd: loadgen.call(
                            "bulk", port=f.port, size=args.mib << 20, direction="down"
                        ),
                        args.mib / 1024,
                        "s/GiB",
                    ),
                    (
                        "echo",
                        lambda f=fwd: loadgen.call("rtt", port=f.port, count=args.echoes, size=64, warmup=20),
                        float(args.echoes),
                        "us/echo",
                    ),
                ):
                    raw = work / f"{variant}-{name}.txt"
                    svg = out / f"splice-{variant}-{name}.svg"
                    # The CPU figure comes from a run without the profiler attached (sampling
                    # perturbs it); the layer shares from a second, profiled run.
                    c0 = tb.cpu_s(fwd.pid)
                    res = {k: v for k, v in call().items() if k != "samples_us"}
                    cpu = tb.cpu_s(fwd.pid) - c0
                    cmd = [spy, "record", "-p", str(fwd.pid), "-r", "1000"]
                    cmd += ["-f", "raw", "-o", str(raw)]
                    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as prof:
                        time.sleep(1.0)
                        c0 = tb.cpu_s(fwd.pid)
                        call()
                        cpu_profiled = tb.cpu_s(fwd.pid) - c0
                        prof.send_signal(2)
                        prof.wait(30)
                    title = (
                        f"{variant} {name} ({res}) forwarder CPU {cpu:.2f} s "
                        f"({cpu_profiled:.2f} s in the profiled run); {fwd.runtime}"
                    )
                    r = summarize(raw, out / f"splice-{variant}-{name}.txt", title, roots)
                    r.variant, r.workload, r.cpu_s, r.units, r.unit = variant, name, cpu, units, unit
                    results.append(r)
                    flame(raw, svg, f"splice {variant} {name}")
                    tb.say(f"{variant} {name}: {res}, forwarder CPU {cpu:.2f} s -> {svg}")
    order = {"upload": 0, "download": 1, "echo": 2}
    results.sort(key=lambda r: (order[r.workload], args.variants.index(r.variant)))
    header = (
        f"# Forwarder CPU by layer: the clawd forwarder (HeldListener + SshPath channel), "
        f"{args.mib} MiB upload, {args.mib} MiB download, {args.echoes} x 64-byte echo; "
        "py-spy 1000 Hz; "
        f"load avg {load:.2f} at start. Variants: {', '.join(args.variants)}"
        + (f" (patched = {', '.join(p.name for p in patches)})" if "patched" in args.variants else "")
    )
    (out / args.layers_file).write_text(layer_table(results, header))
    print((out / args.layers_file).read_text())
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
                f"<g><title>{escape(k[-1])} {node_counts[k] / total * 100:.1f}%</title>"
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
