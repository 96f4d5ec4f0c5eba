"""Which user opened the other end of a loopback TCP connection (Linux, from /proc/net/tcp*).

Serve's proxy reaches the gateway over loopback, so its identity headers are only as good as
the guarantee that tailscaled, not some other local account, sent them. The kernel records the
creating user of every socket; tailscaled runs as root (or as the owner of its LocalAPI socket).
Elsewhere (macOS, Windows) there is no such table and the caller falls back to headers + whois.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from pathlib import Path

PROC_NET = Path("/proc/net")


@dataclass(frozen=True)
class Owner:
    available: bool  # False: no socket table on this system (not Linux)
    uid: int | None = None  # None with available=True: the connection is not in the table


def _norm(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    addr = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def decode_address(field: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """`0100007F:1F90` -> (127.0.0.1, 8080): 32-bit words in the kernel's native byte order."""
    hexaddr, _, hexport = field.partition(":")
    raw = b"".join(struct.pack("=I", int(hexaddr[i : i + 8], 16)) for i in range(0, len(hexaddr), 8))
    addr = ipaddress.ip_address(raw)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped, int(hexport, 16)
    return addr, int(hexport, 16)


def socket_owner(peer: tuple[str, int], ours: tuple[str, int], proc_net: Path = PROC_NET) -> Owner:
    """The uid that created the socket at `peer` connected to `ours` (as seen from our side)."""
    want_local = (_norm(peer[0]), int(peer[1]))
    want_remote = (_norm(ours[0]), int(ours[1]))
    available = False
    for name in ("tcp", "tcp6"):
        try:
            text = (proc_net / name).read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        available = True
        for line in text.splitlines()[1:]:
            cols = line.split()
            if len(cols) < 8:
                continue
            try:
                if decode_address(cols[1]) == want_local and decode_address(cols[2]) == want_remote:
                    return Owner(True, int(cols[7]))
            except ValueError:
                continue
    return Owner(available)
