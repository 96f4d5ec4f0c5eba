"""Is the local tunnel port free, and if not, who holds it and what should we do about it.

Why a bind probe and not just a lookup: psutil cannot see other users' sockets (and on macOS sees
nothing without root), while a bind is what the forward will do a moment later, so it is the only
answer that cannot lie about "free". psutil (via clawd_gateway.ports.listeners) is used only to
*name* the holder.

Probe rules, per OS:

- POSIX: SO_REUSEADDR, as asyncio/asyncssh set it, so a connection in TIME_WAIT on the port is not
  a false "taken".
- Windows: SO_EXCLUSIVEADDRUSE. asyncssh sets SO_REUSEADDR, which on Windows lets a second socket
  silently bind a port another process is listening on (the port is then shared unpredictably), so
  the probe must be strict even though the real bind is not.
- Both loopback families when IPv6 is available: a holder on [::1] is invisible to a 127.0.0.1
  probe, yet clients resolving `localhost` to ::1 would reach it instead of us.
- On macOS/BSD, SO_REUSEADDR lets a specific-address bind shadow a wildcard (0.0.0.0 / ::)
  listener, so the wildcard of each family is probed too.
- EADDRINUSE and EACCES (Windows WSAEACCES 10013: port held exclusively, or inside a range Windows
  reserves for Hyper-V/WSL) both mean "we cannot have it".

The decision what to do with a taken port is `plan_port`, a pure function, so the runner only
performs it and tests can enumerate it.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import ipaddress
import os
import signal
import socket
import sys
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from clawd_gateway.errors import UserError
from clawd_gateway.ports import PortHolder, listeners

__all__ = [
    "BindFailure",
    "NoFreePort",
    "PlanKind",
    "PortCheck",
    "PortHolder",
    "PortInUse",
    "PortPlan",
    "apply_plan",
    "check_port",
    "clawd_connect_pids",
    "find_holders",
    "ipv6_loopback_available",
    "is_own_process",
    "looks_like_clawd_connect",
    "next_free_port",
    "own_pids",
    "own_pids_among",
    "plan_port",
    "probe_addresses",
    "terminate_stale",
    "wait_port_free",
]

# Windows socket error codes (errno values on Windows sockets are the WSA codes).
_WSAEACCES = 10013
_WSAEADDRINUSE = 10048
_WSAEADDRNOTAVAIL = 10049
_TAKEN = {errno.EADDRINUSE, errno.EACCES, _WSAEACCES, _WSAEADDRINUSE}
_UNAVAILABLE = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, _WSAEADDRNOTAVAIL}
if hasattr(errno, "EPROTONOSUPPORT"):
    _UNAVAILABLE.add(errno.EPROTONOSUPPORT)

_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
_IS_WINDOWS = sys.platform == "win32"
_IS_BSD = sys.platform == "darwin" or "bsd" in sys.platform


@dataclass(frozen=True)
class BindFailure:
    """One address we could not bind, and why (kept so the message can say *why* it is taken)."""

    address: str
    errno: int
    reason: str

    @property
    def permission(self) -> bool:
        """EACCES: a privileged port, or (Windows) an exclusive holder / a reserved port range."""
        return self.errno in (errno.EACCES, _WSAEACCES)


@dataclass(frozen=True)
class PortCheck:
    """The answer to "can we bind this port": free, or taken with whoever we could see holding it."""

    port: int
    host: str
    free: bool
    holders: list[PortHolder] = field(default_factory=list)
    probed: tuple[str, ...] = ()  # addresses actually bound, e.g. ("127.0.0.1", "::1")
    failures: tuple[BindFailure, ...] = ()
    next_free: int | None = None  # when taken: the next port free on every probed address
    lingering: int = 0  # taken with no listener: connections still in TIME_WAIT & co on the port

    @property
    def taken(self) -> bool:
        return not self.free

    def describe(self) -> str:
        """One human line: "port 18789 is free" or who holds it (or why we cannot tell)."""
        if self.free:
            return f"port {self.port} is free on {', '.join(self.probed) or self.host}"
        if self.holders:
            return f"port {self.port} is in use by " + "; ".join(h.describe() for h in self.holders)
        where = ", ".join(f.address for f in self.failures) or self.host
        if self.lingering:
            return (
                f"port {self.port} is not listened on, but {self.lingering} recently closed connection(s) "
                f"on it (TIME_WAIT) still block a bind on {where}; the kernel frees it within about a minute"
            )
        if any(f.permission for f in self.failures):
            hint = (
                "the port is held exclusively or reserved by Windows "
                "(see: netsh int ipv4 show excludedportrange protocol=tcp)"
                if _IS_WINDOWS
                else "binding was refused (ports below 1024 need privileges, or another user holds it)"
            )
            return f"port {self.port} cannot be bound on {where}: {hint}"
        return f"port {self.port} is in use on {where} by a process we cannot see (another user's?)"


def ipv6_loopback_available() -> bool:
    """True when ::1 can be bound here (IPv6 can be compiled out, disabled, or missing on lo)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def probe_addresses(host: str = "127.0.0.1") -> list[str]:
    """Which addresses must be bindable for `host:port` to count as free (see the module doc)."""
    host = host.strip("[]")
    if host in _LOOPBACK_NAMES:
        addrs = ["127.0.0.1"]
        if ipv6_loopback_available():
            addrs.append("::1")
        if host == "::1" and "::1" in addrs:
            addrs.reverse()
    else:
        addrs = [host]
        if host == "0.0.0.0" and ipv6_loopback_available():
            addrs.append("::")
    if _IS_BSD:
        for a in list(addrs):
            wildcard = "::" if ":" in a else "0.0.0.0"
            if wildcard not in addrs:
                addrs.append(wildcard)
    return addrs


def _bind_probe(address: str, port: int) -> BindFailure | None:
    """Bind (and listen on) address:port the way the forward will; None when that works."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if _IS_WINDOWS:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined]
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # Probe ::1 by itself: a dual-stack socket would also claim the IPv4 side.
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        # listen() too: with SO_REUSEADDR two sockets may *bind* one port on Linux; only one listens.
        sock.listen(1)
    except OSError as exc:
        code = _error_code(exc)
        if code in _TAKEN:
            return BindFailure(_fmt(address, port), code, exc.strerror or str(exc))
        raise
    finally:
        sock.close()
    return None


def _error_code(exc: OSError) -> int:
    winerror = getattr(exc, "winerror", None)
    if isinstance(winerror, int) and winerror:
        return winerror
    return exc.errno or 0


def _fmt(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _probe_all(port: int, addresses: Sequence[str]) -> tuple[tuple[str, ...], tuple[BindFailure, ...]]:
    probed: list[str] = []
    failures: list[BindFailure] = []
    for addr in addresses:
        try:
            failure = _bind_probe(addr, port)
        except OSError as exc:
            if _error_code(exc) in _UNAVAILABLE:
                continue  # this family/address does not exist here: nothing can hold it either
            raise
        probed.append(addr)
        if failure:
            failures.append(failure)
    return tuple(probed), tuple(failures)


def _relevant(holder: PortHolder, addresses: Collection[str]) -> bool:
    """Does this listener conflict with one of our addresses (same address, or a wildcard)?"""
    ip = holder.address.rsplit(":", 1)[0].strip("[]")
    ip = ip.split("%", 1)[0]
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return True
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped:
        parsed = parsed.ipv4_mapped
    if parsed.is_unspecified:
        return True
    return any(str(parsed) == str(ipaddress.ip_address(a)) for a in addresses if a not in ("0.0.0.0", "::"))


def _holders_by_process_scan(port: int) -> list[PortHolder]:
    """Fallback when the system-wide socket table is denied (macOS without root): scan our own
    processes one by one, which psutil may read."""
    import psutil

    found: list[PortHolder] = []
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            getter = getattr(proc, "net_connections", None) or proc.connections
            conns = getter(kind="tcp")
        except (psutil.Error, OSError):
            continue
        for c in conns:
            if c.status != psutil.CONN_LISTEN or not c.laddr or c.laddr.port != port:
                continue
            try:
                cmd = " ".join(proc.cmdline())
            except (psutil.Error, OSError):
                cmd = None
            found.append(PortHolder(proc.pid, proc.info.get("name"), cmd, _fmt(c.laddr.ip, port)))
    return found


def find_holders(port: int, addresses: Collection[str] = ()) -> list[PortHolder]:
    """Listeners on `port` that conflict with `addresses` (all listeners when none do)."""
    found: list[PortHolder] = listeners(port)
    if not found and not sys.platform.startswith("linux"):  # Linux's table already showed everything
        with contextlib.suppress(Exception):
            found = _holders_by_process_scan(port)
    if addresses:
        relevant = [h for h in found if _relevant(h, addresses)]
        return relevant or found
    return found


def check_port(port: int, host: str = "127.0.0.1", *, who: bool = True, suggest: bool = True) -> PortCheck:
    """Probe `host:port` (both loopback families for a loopback host) by binding it.

    `who`: name the holders with psutil when taken (a few ms; skip when only scanning).
    `suggest`: when taken, fill `next_free` with the next port free on every probed address.
    Raises OSError only for unexpected errors (not "in use"/"access denied").
    """
    if not 1 <= port <= 65535:
        raise ValueError(f"{port!r} is not a TCP port (1-65535)")
    addresses = probe_addresses(host)
    probed, failures = _probe_all(port, addresses)
    if not failures:
        return PortCheck(port, host, True, [], probed, ())
    holders = find_holders(port, probed) if who else []
    lingering = _lingering(port) if who and not holders else 0
    nxt = None
    if suggest and port < 65535:
        with contextlib.suppress(NoFreePort):
            nxt = next_free_port(port + 1, host)
    return PortCheck(port, host, False, holders, probed, failures, nxt, lingering)


def _lingering(port: int) -> int:
    """Closed-but-not-gone connections on the local port. A server socket without SO_REUSEADDR
    leaves TIME_WAIT entries that block even a SO_REUSEADDR bind (asyncio's too) for a while."""
    import psutil

    states = {
        psutil.CONN_TIME_WAIT,
        psutil.CONN_FIN_WAIT1,
        psutil.CONN_FIN_WAIT2,
        psutil.CONN_CLOSING,
        psutil.CONN_LAST_ACK,
    }
    try:
        return sum(
            1
            for c in psutil.net_connections(kind="tcp")
            if c.laddr and c.laddr.port == port and c.status in states
        )
    except (psutil.Error, OSError):
        return 0


class NoFreePort(UserError):
    """No port was free in the scanned range."""


def next_free_port(start: int, host: str = "127.0.0.1", limit: int = 50) -> int:
    """The first port >= `start` (trying at most `limit`) that is free on every probed address.

    Raises NoFreePort when none is; the range never wraps past 65535.
    """
    end = min(start + max(limit, 1), 65536)
    for port in range(start, end):
        if check_port(port, host, who=False, suggest=False).free:
            return port
    raise NoFreePort(
        f"no free local port in {start}-{end - 1} on {host}",
        fix="choose another local port with --local-port, or stop what holds these ports",
    )


# --- recognising our own stale instance ---------------------------------------------------------

_CLAWD_EXES = {"clawd", "clawd.exe", "clawd-script.py"}


def looks_like_clawd_connect(argv: Sequence[str], profile: str | None = None) -> bool:
    """Is this command line `clawd connect [NAME]` (any interpreter/wrapper in front)?

    With `profile`, a NAME given on the command line must match it; `clawd connect` without a
    NAME means the only profile, which we accept (it can only be the same single profile).
    `clawd-gateway` and `clawd status ...` do not match.
    """
    args = list(argv)
    start = None
    for i, arg in enumerate(args):
        base = PurePath(arg.replace("\\", "/")).name.lower()
        if base in _CLAWD_EXES:
            start = i + 1
            break
        if arg == "-m" and i + 1 < len(args) and args[i + 1] == "clawd_client":
            start = i + 2
            break
    if start is None:
        return False
    rest = args[start:]
    positional = [a for a in rest if not a.startswith("-")]
    if not positional or positional[0] != "connect":
        return False
    if profile is None:
        return True
    names = positional[1:2]
    return not names or names[0] == profile


def _cmdline(pid: int) -> list[str] | None:
    import psutil

    try:
        return list(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return None


def is_own_process(
    holder: PortHolder,
    own_pids: Collection[int] = (),
    *,
    profile: str | None = None,
    cmdline: Sequence[str] | None = None,
) -> bool:
    """Is the holder a stale instance of *our* tunnel, which we may take over?

    True when its pid is in `own_pids` (e.g. the pid our lock/state file recorded for this
    profile), or its command line is `clawd connect [profile]`. Never true for this very process
    (that would be a bug in the caller, not a stale instance) or for a holder we cannot see.
    """
    if holder.pid is None or holder.pid == os.getpid():
        return False
    if holder.pid in own_pids:
        return True
    argv = list(cmdline) if cmdline is not None else _cmdline(holder.pid)
    if argv is None:
        argv = (holder.cmdline or "").split()
    return looks_like_clawd_connect(argv, profile)


def own_pids_among(
    holders: Iterable[PortHolder], recorded: Collection[int] = (), *, profile: str | None = None
) -> set[int]:
    """The pids among `holders` that `is_own_process` recognises: the `own_pids` for `plan_port`."""
    return {h.pid for h in holders if h.pid is not None and is_own_process(h, recorded, profile=profile)}


def _ancestors() -> set[int]:
    import psutil

    try:
        return {p.pid for p in psutil.Process().parents()}
    except psutil.Error:
        return set()


def _recorded_pid_is_same_process(pid: int, create_time: float | None) -> bool:
    """A recorded pid counts only if it is still the same process (not a reused pid)."""
    import psutil

    if create_time is None:
        return False
    try:
        return bool(abs(psutil.Process(pid).create_time() - create_time) < 1.0)
    except psutil.Error:
        return False


def clawd_connect_pids(profile: str | None = None) -> set[int]:
    """Running `clawd connect [profile]` processes other than this one and its parents
    (a launcher such as Windows' clawd.exe is our parent and looks exactly like us)."""
    import psutil

    skip = {os.getpid(), *_ancestors()}
    found: set[int] = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid in skip:
            continue
        argv = proc.info.get("cmdline") or []
        if argv and looks_like_clawd_connect(argv, profile):
            found.add(proc.pid)
    return found


def own_pids(profile: str) -> set[int]:
    """Pids that are stale instances of *our* tunnel for `profile`, for `plan_port`.

    The previous owner recorded in the profile's lock file (when this process took the lock;
    only if it is still the same process, checked by start time), plus running
    `clawd connect <profile>` processes. Scans the process table (tens of ms): call it only
    when the port is taken, and off the event loop.
    """
    from .lock import previous_owner

    pids = clawd_connect_pids(profile)
    prev = previous_owner(profile)
    if (
        prev is not None
        and prev.pid is not None
        and _recorded_pid_is_same_process(prev.pid, prev.create_time)
    ):
        pids.add(prev.pid)
    pids.discard(os.getpid())
    return pids


def terminate_stale(
    pid: int, *, profile: str | None = None, recorded: Collection[int] = (), timeout: float = 3.0
) -> bool:
    """Stop a stale instance of ours (SIGTERM, then SIGKILL after `timeout`).

    Re-checks `is_own_process` right before signalling, so a pid that was reused by an unrelated
    process in the meantime is never touched. Returns True when the process is gone.
    """
    import psutil

    holder = PortHolder(pid, None, None, "")
    if not is_own_process(holder, recorded, profile=profile):
        return False
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False
    _, alive = psutil.wait_procs([proc], timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    if alive:
        _, alive = psutil.wait_procs(alive, timeout=timeout)
    return not alive


# --- the decision ------------------------------------------------------------------------------


class PlanKind(enum.Enum):
    BIND = "bind"  # the port is free: bind the forward there
    REUSE = "reuse"  # a working tunnel to the same gateway holds it: use it, do not start our own
    TAKE_OVER = "take_over"  # our own stale instance holds it: stop it (terminate_stale), then bind
    VERIFY = "verify"  # a foreign holder: run a health handshake through it, then plan again
    CONFLICT = "conflict"  # someone else holds it: never kill; report and offer `next_free`


@dataclass(frozen=True)
class PortPlan:
    kind: PlanKind
    port: int
    holders: tuple[PortHolder, ...] = ()
    next_free: int | None = None  # CONFLICT: the port to suggest instead
    take_over_pids: tuple[int, ...] = ()  # TAKE_OVER: whom to stop
    message: str = ""  # one line for the user: what holds the port and what we do about it
    who: str = ""  # who holds the port (PortCheck.describe()), for error messages

    @property
    def url(self) -> str:
        """The URL clients should use after this plan (the suggested one for a conflict)."""
        port = self.next_free if self.kind is PlanKind.CONFLICT and self.next_free else self.port
        return f"ws://127.0.0.1:{port}"


def plan_port(check: PortCheck, own_pids: Collection[int], same_gateway_verified: bool | None) -> PortPlan:
    """Decide what to do about the local port. Pure: no I/O, no clock.

    - free -> BIND.
    - taken, and every holder is a pid in `own_pids` (our stale instance: recognised by
      `is_own_process`, e.g. via the pid in our lock file) -> TAKE_OVER those pids, then bind.
      This comes before REUSE: a stale instance is unsupervised and may die any moment, so even a
      working one is replaced by a supervised tunnel.
    - taken by someone else, and `same_gateway_verified`:
        None  -> VERIFY: the caller runs a health handshake through the port (with the profile's
                 secret) and calls plan_port again with True/False;
        True  -> REUSE: a live tunnel to the same gateway; say so and use its URL;
        False -> CONFLICT: never kill a process that is not ours; report the holders and suggest
                 `check.next_free` (the URL clients should use is in `.url`).
    A holder we cannot see (pid None) is never "ours".
    """
    port = check.port
    holders = tuple(check.holders)
    if check.free:
        return PortPlan(PlanKind.BIND, port, message=f"port {port} is free")
    pids = {h.pid for h in holders if h.pid is not None}
    if holders and all(h.pid is not None for h in holders) and pids <= set(own_pids):
        ordered = tuple(sorted(pids))
        return PortPlan(
            PlanKind.TAKE_OVER,
            port,
            holders,
            take_over_pids=ordered,
            message=f"port {port} is held by a stale clawd instance "
            f"(pid {', '.join(map(str, ordered))}); taking over",
            who=check.describe(),
        )
    who = check.describe()
    if same_gateway_verified is None:
        return PortPlan(
            PlanKind.VERIFY,
            port,
            holders,
            check.next_free,
            message=f"{who}; checking whether it is a tunnel to our gateway",
            who=who,
        )
    if same_gateway_verified:
        return PortPlan(
            PlanKind.REUSE,
            port,
            holders,
            message=f"{who}; it is a working tunnel to the same gateway, reusing ws://127.0.0.1:{port}",
            who=who,
        )
    if check.next_free is not None:
        offer = (
            f"use --local-port {check.next_free} (clients then connect to ws://127.0.0.1:{check.next_free})"
        )
    else:
        offer = "choose another --local-port"
    return PortPlan(
        PlanKind.CONFLICT,
        port,
        holders,
        check.next_free,
        message=f"{who}; it is not ours, so it is left alone: stop it or {offer}",
        who=who,
    )


def apply_plan(
    plan: PortPlan, port: int, *, profile: str | None = None, timeout: float = 3.0
) -> tuple[str, int, str] | None:
    """Carry out a plan for the runner's port guard (blocking: run it in a thread).

    Returns None for BIND (bind `port` as planned), else `(kind, port_to_use, note)`:
    - ("reuse", port, note): do not bind; the existing tunnel at `port` serves clients;
    - ("take_over", port, note): the stale instance was stopped; bind `port`;
    - ("conflict", next_free, note): the holder is left alone; bind `next_free` instead, and the
      note names the holder and the URL clients must use now.
    Raises PortInUse when a conflict has no free port to offer, or a take-over failed.
    """
    if plan.kind is PlanKind.BIND:
        return None
    if plan.kind is PlanKind.REUSE:
        return ("reuse", plan.port, plan.message)
    if plan.kind is PlanKind.TAKE_OVER:
        recorded = set(plan.take_over_pids)
        stopped = [
            pid
            for pid in plan.take_over_pids
            if terminate_stale(pid, profile=profile, recorded=recorded, timeout=timeout)
        ]
        if len(stopped) == len(plan.take_over_pids) and wait_port_free(port, timeout=timeout):
            pids = ", ".join(map(str, stopped))
            return ("take_over", port, f"took over port {port} from a stale clawd instance (pid {pids})")
        raise PortInUse(plan, profile)
    # VERIFY (the caller did not verify) is treated like an unverified, foreign holder.
    if plan.next_free is None:
        raise PortInUse(plan, profile)
    note = (
        f"{plan.who or f'port {port} is in use'}; it is not ours and is left alone. "
        f"Forwarding on ws://127.0.0.1:{plan.next_free} instead: point clients there"
    )
    return ("conflict", plan.next_free, note)


class PortInUse(UserError):
    """The local port is held by another program; carries the plan so callers can show the URL."""

    exit_code = 1

    def __init__(self, plan: PortPlan, profile: str | None = None) -> None:
        subject = f"profile {profile!r}: " if profile else ""
        if plan.next_free is not None:
            fix = (
                f"stop that program, or use --local-port {plan.next_free} "
                f"(clients then use ws://127.0.0.1:{plan.next_free})"
            )
        else:
            fix = "stop that program, or choose another --local-port"
        who = plan.who or f"port {plan.port} is in use"
        super().__init__(f"{subject}{who}; clawd does not stop programs that are not its own", fix=fix)
        self.plan = plan


def wait_port_free(port: int, host: str = "127.0.0.1", timeout: float = 3.0) -> bool:
    """After a take-over: poll until the port binds (the old process may need a moment to exit)."""
    deadline = time.monotonic() + timeout
    while True:
        if check_port(port, host, who=False, suggest=False).free:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
