"""Who holds a TCP port: turns "Address already in use" into a name and a pid."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PortHolder:
    pid: int | None
    name: str | None
    cmdline: str | None
    address: str

    def describe(self) -> str:
        if self.pid is None:
            return f"an unknown process (listening on {self.address}; run as its owner to see it)"
        what = self.name or "?"
        text = f"{what} (pid {self.pid}) on {self.address}"
        if self.cmdline:
            text += f": {self.cmdline[:160]}"
        return text


def listeners(port: int) -> list[PortHolder]:
    import psutil

    found: list[PortHolder] = []
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError, OSError):
        return found
    for c in conns:
        if c.status != psutil.CONN_LISTEN or not c.laddr or c.laddr.port != port:
            continue
        addr = f"{c.laddr.ip}:{c.laddr.port}" if ":" not in c.laddr.ip else f"[{c.laddr.ip}]:{c.laddr.port}"
        name = cmd = None
        if c.pid:
            try:
                proc = psutil.Process(c.pid)
                name = proc.name()
                cmd = " ".join(proc.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        found.append(PortHolder(c.pid, name, cmd, addr))
    return found
