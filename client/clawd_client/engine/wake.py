"""Sleep and network-change detection, as pure comparisons of two samples.

After a laptop sleeps, the monotonic clock stands still while the wall clock jumps; after a
network change the set of local addresses differs. Either means: re-check now rather than
waiting out a keepalive or a backoff timer.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

SLEEP_JUMP_S = 5.0


@dataclass(frozen=True)
class Sample:
    mono: float
    wall: float
    addresses: frozenset[str]


def take_sample() -> Sample:
    import psutil

    addrs: set[str] = set()
    for nic, entries in psutil.net_if_addrs().items():
        for a in entries:
            if a.family in (socket.AF_INET, socket.AF_INET6) and not a.address.startswith(("127.", "::1")):
                addrs.add(f"{nic}/{a.address}")
    return Sample(time.monotonic(), time.time(), frozenset(addrs))


def detect(prev: Sample, cur: Sample) -> str | None:
    jump = (cur.wall - prev.wall) - (cur.mono - prev.mono)
    if jump > SLEEP_JUMP_S:
        return f"woke from sleep (clock jumped {jump:.0f}s)"
    if cur.addresses != prev.addresses:
        gone = sorted(prev.addresses - cur.addresses)
        new = sorted(cur.addresses - prev.addresses)
        parts = ([f"+{a}" for a in new] + [f"-{a}" for a in gone])[:4]
        return "network changed (" + ", ".join(parts) + ")"
    return None
