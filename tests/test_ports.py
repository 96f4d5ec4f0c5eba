"""Local port checks against real listening sockets, and the pure port plan as a table."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from tests.support.holder import answers, holder_process, next_line
from tests.support.servers import require, wait_until

from clawd_client.engine import ports
from clawd_client.engine.ports import (
    NoFreePort,
    PlanKind,
    PortCheck,
    PortHolder,
    PortInUse,
    check_port,
    ipv6_loopback_available,
    is_own_process,
    looks_like_clawd_connect,
    next_free_port,
    own_pids_among,
    plan_port,
    terminate_stale,
    wait_port_free,
)

ME = psutil.Process()


def free_run(n: int) -> int:
    """A port P with P..P+n-1 all free on both loopback families."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n < 65536 and all(check_port(base + i, who=False, suggest=False).free for i in range(n)):
            return base
    raise AssertionError("no run of free ports found")


@contextlib.contextmanager
def listening(host: str, port: int, reuse: bool = False) -> Iterator[socket.socket]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family)
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port))
    s.listen()
    try:
        yield s
    finally:
        s.close()


def test_free_port_is_free_on_both_families() -> None:
    port = free_run(1)
    check = check_port(port)
    assert check.free and not check.taken
    assert check.holders == []
    assert check.probed[0] == "127.0.0.1"
    if ipv6_loopback_available():
        assert "::1" in check.probed
    assert plan_port(check, set(), None).kind is PlanKind.BIND


def test_holder_on_ipv4_loopback_is_named_with_pid_and_name() -> None:
    port = free_run(2)
    with listening("127.0.0.1", port):
        check = check_port(port)
    assert check.taken
    assert [f.errno for f in check.failures] == [errno.EADDRINUSE]
    mine = [h for h in check.holders if h.pid == os.getpid()]
    assert mine, check.holders
    assert mine[0].name == ME.name()
    assert mine[0].address == f"127.0.0.1:{port}"
    assert "pytest" in (mine[0].cmdline or "") or "python" in (mine[0].cmdline or "")
    assert f"(pid {os.getpid()})" in check.describe()
    assert check.next_free == port + 1


def test_holder_on_ipv6_loopback_is_seen_although_an_ipv4_probe_misses_it() -> None:
    require(ipv6_loopback_available(), "no IPv6 loopback on this machine (::1 on lo)")
    port = free_run(2)
    with listening("::1", port):
        # The trap this module exists for: 127.0.0.1 alone looks free.
        assert ports._bind_probe("127.0.0.1", port) is None
        check = check_port(port)
    assert check.taken
    assert [f.address for f in check.failures] == [f"[::1]:{port}"]
    assert [(h.pid, h.address) for h in check.holders] == [(os.getpid(), f"[::1]:{port}")]


def test_holder_on_wildcard_is_taken() -> None:
    port = free_run(2)
    with listening("0.0.0.0", port):
        check = check_port(port)
    assert check.taken
    assert any(h.pid == os.getpid() and h.address == f"0.0.0.0:{port}" for h in check.holders)


def leave_time_wait(port: int, reuse: bool) -> None:
    """One connection to a server on `port` that the server closes first: the server side is left
    in TIME_WAIT (an accepted socket inherits the listener's SO_REUSEADDR)."""
    with listening("127.0.0.1", port, reuse=reuse) as srv:
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = srv.accept()
        conn.close()
        client.recv(1)
        client.close()
    wait_until(lambda: time_wait_on(port), 5, what="a TIME_WAIT socket on the port")


def time_wait_on(port: int) -> bool:
    return any(
        c.status == psutil.CONN_TIME_WAIT and c.laddr and c.laddr.port == port
        for c in psutil.net_connections("tcp")
    )


def test_time_wait_is_not_a_false_positive() -> None:
    """The realistic case: our previous forward (asyncio sets SO_REUSEADDR) just closed."""
    port = free_run(1)
    leave_time_wait(port, reuse=True)
    # Prove the test is meaningful: without SO_REUSEADDR, this very port reads as taken.
    with socket.socket() as naive, pytest.raises(OSError) as err:
        naive.bind(("127.0.0.1", port))
    assert err.value.errno == errno.EADDRINUSE
    check = check_port(port)
    assert time_wait_on(port)
    assert check.free, check.describe()


def test_time_wait_of_a_server_without_reuseaddr_is_explained() -> None:
    """Such TIME_WAIT entries block asyncio's bind too (Linux needs SO_REUSEADDR on both sides),
    so "taken" is the truth; the message must say why, since no process holds the port."""
    port = free_run(2)
    leave_time_wait(port, reuse=False)
    check = check_port(port)
    assert check.taken and check.holders == []
    assert check.lingering >= 1
    assert "TIME_WAIT" in check.describe()


def test_next_free_port_skips_taken_ports_on_either_family() -> None:
    base = free_run(4)
    with listening("127.0.0.1", base), listening("127.0.0.1", base + 1):
        if ipv6_loopback_available():
            with listening("::1", base + 2):
                assert next_free_port(base) == base + 3
                assert check_port(base).next_free == base + 3
        else:
            assert next_free_port(base) == base + 2
    assert next_free_port(base) == base


def test_next_free_port_gives_up_after_limit() -> None:
    base = free_run(2)
    with listening("127.0.0.1", base), listening("127.0.0.1", base + 1):
        with pytest.raises(NoFreePort) as err:
            next_free_port(base, limit=2)
        assert f"{base}-{base + 1}" in str(err.value)
        assert err.value.fix


def test_taken_error_codes_include_windows_ones() -> None:
    """WSAEACCES (10013) is how Windows reports an exclusively held or reserved port."""
    assert {10013, 10048, errno.EADDRINUSE, errno.EACCES} <= ports._TAKEN
    exc = OSError(errno.EACCES, "denied")
    exc.winerror = 10013  # type: ignore[attr-defined]
    assert ports._error_code(exc) == 10013


# --- our own stale instance ---------------------------------------------------------------------

def test_own_stale_instance_is_recognised_and_taken_over(tmp_path: Path) -> None:
    port = free_run(2)
    with holder_process(tmp_path, port, "clawd", "connect", "work") as proc:
        check = check_port(port)
        assert [h.pid for h in check.holders] == [proc.pid]
        holder = check.holders[0]
        assert holder.name and holder.name.startswith("python")
        assert "clawd connect work" in (holder.cmdline or "")
        assert is_own_process(holder, profile="work")
        assert not is_own_process(holder, profile="home")  # another profile's tunnel is not stale
        own = own_pids_among(check.holders, profile="work")
        assert own == {proc.pid}
        plan = plan_port(check, own, None)
        assert plan.kind is PlanKind.TAKE_OVER and plan.take_over_pids == (proc.pid,)
        assert terminate_stale(proc.pid, profile="work")
        assert next_line(proc) == "SIGTERM"  # stopped by the SIGTERM, not the SIGKILL fallback
        assert wait_port_free(port, timeout=30)
        assert proc.wait(30) is not None
    assert check_port(port).free


def test_foreign_holder_is_never_killed(tmp_path: Path) -> None:
    port = free_run(2)
    with holder_process(tmp_path, port, "webserver.py", "--port", str(port)) as proc:
        check = check_port(port)
        holder = check.holders[0]
        assert holder.pid == proc.pid
        assert not is_own_process(holder, profile="work")
        assert own_pids_among(check.holders, profile="work") == set()
        assert not terminate_stale(proc.pid, profile="work")
        plan = plan_port(check, set(), False)
        assert plan.kind is PlanKind.CONFLICT
        assert plan.next_free == port + 1
        assert plan.url == f"ws://127.0.0.1:{port + 1}"
        assert f"pid {proc.pid}" in plan.message and "webserver.py" in plan.message
        err = PortInUse(plan, "work")
        assert f"pid {proc.pid}" in err.render() and f"--local-port {port + 1}" in err.render()
        assert answers(proc), "the foreign holder must still be running, never signalled"
        # The pid our lock file recorded makes it "ours", even without the clawd command line.
        assert is_own_process(holder, {proc.pid})


def test_this_process_is_never_its_own_stale_instance() -> None:
    me = PortHolder(os.getpid(), "python", "clawd connect work", "127.0.0.1:1")
    assert not is_own_process(me, {os.getpid()}, profile="work")
    assert not is_own_process(PortHolder(None, None, None, "127.0.0.1:1"), {1}, profile="work")


@pytest.mark.parametrize(
    ("argv", "profile", "expected"),
    [
        (["/usr/bin/python3", "/home/u/.local/bin/clawd", "connect", "work"], "work", True),
        (["/home/u/.local/bin/clawd", "connect", "work"], "work", True),
        (["clawd", "connect", "--accept-new", "work"], "work", True),
        (["clawd", "connect"], "work", True),  # no NAME: the single profile
        (["clawd", "connect", "home"], "work", False),
        (["clawd", "connect", "home"], None, True),
        (["C:\\Users\\u\\Scripts\\clawd.exe", "connect", "work"], "work", True),
        (["python", "-m", "clawd_client", "connect", "work"], "work", True),
        (["clawd", "status", "work"], "work", False),
        (["clawd-gateway", "run"], None, False),
        (["ssh", "-N", "-L", "18789:127.0.0.1:18789", "clawd"], None, False),
        (["vim", "connect"], None, False),
        ([], None, False),
    ],
)
def test_looks_like_clawd_connect(argv: list[str], profile: str | None, expected: bool) -> None:
    assert looks_like_clawd_connect(argv, profile) is expected


# --- plan_port: the whole decision table -------------------------------------------------------

P = 18789
OURS = PortHolder(100, "python3", "clawd connect work", f"127.0.0.1:{P}")
OURS6 = PortHolder(101, "python3", "clawd connect work", f"[::1]:{P}")
FOREIGN = PortHolder(200, "ssh", "ssh -N -L 18789:127.0.0.1:18789 vps", f"127.0.0.1:{P}")
HIDDEN = PortHolder(None, None, None, f"127.0.0.1:{P}")


def taken(*holders: PortHolder, next_free: int | None = P + 1) -> PortCheck:
    return PortCheck(P, "127.0.0.1", False, list(holders), ("127.0.0.1", "::1"), (), next_free)


FREE = PortCheck(P, "127.0.0.1", True, [], ("127.0.0.1", "::1"))


@pytest.mark.parametrize(
    ("check", "own", "verified", "kind", "pids", "next_free"),
    [
        (FREE, set(), None, PlanKind.BIND, (), None),
        (FREE, {100}, True, PlanKind.BIND, (), None),
        (taken(OURS), {100}, None, PlanKind.TAKE_OVER, (100,), None),
        (taken(OURS), {100}, True, PlanKind.TAKE_OVER, (100,), None),  # stale beats reuse
        (taken(OURS), {100}, False, PlanKind.TAKE_OVER, (100,), None),
        (taken(OURS, OURS6), {100, 101}, None, PlanKind.TAKE_OVER, (100, 101), None),
        (taken(OURS, FOREIGN), {100}, None, PlanKind.VERIFY, (), P + 1),  # killing ours frees nothing
        (taken(OURS, FOREIGN), {100}, False, PlanKind.CONFLICT, (), P + 1),
        (taken(FOREIGN), set(), None, PlanKind.VERIFY, (), P + 1),
        (taken(FOREIGN), set(), True, PlanKind.REUSE, (), None),
        (taken(FOREIGN), set(), False, PlanKind.CONFLICT, (), P + 1),
        (taken(FOREIGN), {100}, False, PlanKind.CONFLICT, (), P + 1),
        (taken(HIDDEN), {100}, None, PlanKind.VERIFY, (), P + 1),
        (taken(HIDDEN), set(), True, PlanKind.REUSE, (), None),
        (taken(HIDDEN), set(), False, PlanKind.CONFLICT, (), P + 1),
        (taken(), set(), None, PlanKind.VERIFY, (), P + 1),  # taken, holder invisible
        (taken(), set(), True, PlanKind.REUSE, (), None),
        (taken(), {100}, False, PlanKind.CONFLICT, (), P + 1),
        (taken(FOREIGN, next_free=None), set(), False, PlanKind.CONFLICT, (), None),
    ],
)
def test_plan_port_table(
    check: PortCheck,
    own: set[int],
    verified: bool | None,
    kind: PlanKind,
    pids: tuple[int, ...],
    next_free: int | None,
) -> None:
    plan = plan_port(check, own, verified)
    assert plan.kind is kind
    assert plan.port == P
    assert plan.take_over_pids == pids
    assert plan.next_free == next_free
    assert plan.message
    assert plan == plan_port(check, own, verified)  # pure: same input, same answer
    if kind is PlanKind.CONFLICT:
        assert "left alone" in plan.message
        expected = f"--local-port {next_free}" if next_free else "choose another --local-port"
        assert expected in plan.message
        assert plan.url == f"ws://127.0.0.1:{next_free or P}"
    else:
        assert plan.url == f"ws://127.0.0.1:{P}"
    if kind is PlanKind.REUSE:
        assert "reusing ws://127.0.0.1:18789" in plan.message


def test_describe_explains_invisible_and_refused_holders() -> None:
    assert "cannot see" in taken().describe()
    refused = PortCheck(
        80,
        "127.0.0.1",
        False,
        [],
        ("127.0.0.1",),
        (ports.BindFailure("127.0.0.1:80", errno.EACCES, "denied"),),
    )
    assert "cannot be bound" in refused.describe()
    assert "unknown process" in taken(HIDDEN).describe()


def test_check_port_rejects_non_ports() -> None:
    for bad in (0, -1, 65536):
        with pytest.raises(ValueError):
            check_port(bad)


# --- own_pids / apply_plan: what the runner's port guard calls ----------------------------------

STALE = """
import os, socket, sys
from pathlib import Path
from clawd_client.engine.lock import InstanceLock
lock = InstanceLock("work", Path(sys.argv[1])).acquire()
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[2])))
s.listen()
lock.release()  # a shutdown that hung halfway: the lock is gone, the listener is not
print("ready", flush=True)
sys.stdin.read()
"""


def test_stale_owner_recorded_in_the_lock_is_taken_over(tmp_path: Path) -> None:
    from clawd_client.engine.lock import InstanceLock, previous_owner

    port = free_run(2)
    proc = subprocess.Popen(
        [sys.executable, "-c", STALE, str(tmp_path), str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with InstanceLock("work", tmp_path):
            prev = previous_owner("work")
            assert prev is not None and prev.pid == proc.pid
            assert proc.pid in ports.own_pids("work")  # by the lock record: its argv is `python -c`
            assert proc.pid not in ports.own_pids("home")
            check = check_port(port)
            plan = plan_port(check, ports.own_pids("work"), None)
            assert plan.kind is PlanKind.TAKE_OVER
            decision = ports.apply_plan(plan, port, profile="work")
            assert decision is not None and decision[:2] == ("take_over", port)
            assert f"pid {proc.pid}" in decision[2]
            assert proc.wait(30) is not None
            assert check_port(port).free
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def test_recorded_pid_reused_by_another_process_is_not_ours(tmp_path: Path) -> None:
    from clawd_client.engine.lock import InstanceLock

    port = free_run(2)
    with holder_process(tmp_path, port, "webserver.py") as proc:
        # The lock names this pid, but with another start time: the pid was reused.
        record = {"pid": proc.pid, "create_time": psutil.Process(proc.pid).create_time() - 3600}
        (tmp_path / "work.lock").write_text(json.dumps(record))
        with InstanceLock("work", tmp_path):
            assert proc.pid not in ports.own_pids("work")


def test_own_pids_finds_clawd_connect_processes(tmp_path: Path) -> None:
    port = free_run(2)
    with holder_process(tmp_path, port, "clawd", "connect", "work") as proc:
        assert proc.pid in ports.own_pids("work")
        assert proc.pid not in ports.own_pids("home")
        assert os.getpid() not in ports.own_pids("work")


def test_apply_plan_conflict_moves_to_the_next_port_and_leaves_the_holder(tmp_path: Path) -> None:
    port = free_run(3)
    with holder_process(tmp_path, port, "webserver.py") as proc:
        plan = plan_port(check_port(port), ports.own_pids("work"), False)
        decision = ports.apply_plan(plan, port, profile="work")
        assert decision is not None
        kind, new_port, note = decision
        assert (kind, new_port) == ("conflict", port + 1)
        assert f"pid {proc.pid}" in note and f"ws://127.0.0.1:{port + 1}" in note
        assert answers(proc)  # alive and never signalled
    assert ports.apply_plan(plan_port(FREE, set(), None), P) is None
    reuse = ports.apply_plan(plan_port(taken(FOREIGN), set(), True), P)
    assert reuse is not None and reuse[:2] == ("reuse", P)
    with pytest.raises(PortInUse):
        ports.apply_plan(plan_port(taken(FOREIGN, next_free=None), set(), False), P)
