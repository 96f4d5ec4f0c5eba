"""The runner's pre-bind step: is the local port free? If not, reuse, take over, or move aside.

Decisions come from ports.plan_port (pure); this glues in the blocking process-table scans
(in a thread) and the end-to-end probe that tells "a working tunnel to our gateway" apart
from "some other program".
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from clawd_gateway.errors import UserError
from clawd_gateway.secret import Secret

from ..profiles import Profile
from . import ports
from .listener import HeldListener
from .probe import probe_gateway
from .ssh import TunnelError

PortGuard = Callable[[Profile], Awaitable["tuple[str, int, str] | None"]]


def _may_receive_secret(holders: list[ports.PortHolder]) -> bool:
    """Only a tunnel we could have started ourselves may see our gateway secret.

    Verifying a listener means a full handshake with the profile's token, so a process squatting
    on the port could harvest it. We trust a holder only if every listener belongs to a visible
    process of this same user that is an SSH client or clawd (a same-user process can read the
    keyring anyway); anything else is treated as a foreign program and left alone.
    """
    import getpass

    import psutil

    if not holders:
        return False
    me = getpass.getuser()
    for holder in holders:
        if holder.pid is None:
            return False
        if holder.pid == os.getpid():
            continue  # another supervisor in this very process (e.g. a second profile)
        try:
            proc = psutil.Process(holder.pid)
            if proc.username().split("\\")[-1] != me:
                return False
            what = " ".join([proc.name(), *proc.cmdline()[:3]]).lower()
        except (psutil.Error, OSError):
            return False
        if "ssh" not in what and "clawd" not in what:
            return False
    return True


def make_port_guard(secret: Callable[[], Secret | None]) -> PortGuard:
    async def guard(p: Profile) -> tuple[str, int, str] | None:
        check = await asyncio.to_thread(ports.check_port, p.local_port)
        if check.free:
            return None
        own = await asyncio.to_thread(ports.own_pids, p.name)
        plan = ports.plan_port(check, own, None)
        if plan.kind is ports.PlanKind.VERIFY:
            if await asyncio.to_thread(_may_receive_secret, check.holders):
                sec = await asyncio.to_thread(secret)
                result = await probe_gateway(f"ws://127.0.0.1:{p.local_port}", p.auth, sec, timeout=3)
                plan = ports.plan_port(check, own, result.ok)
            else:
                plan = ports.plan_port(check, own, False)
        return await asyncio.to_thread(ports.apply_plan, plan, p.local_port, profile=p.name)

    return guard


@dataclass
class Taken:
    """The profile's port, as the guard left it: our listener on it, or someone else's working
    tunnel to reuse (listener None), and the note that says which."""

    listener: HeldListener | None
    port: int
    note: str | None = None


async def take_port(profile: Profile, guard: PortGuard | None, *, fatal_bind: bool = False) -> Taken:
    """Bind the profile's local port through the guard (reuse, take over, or move aside)."""
    port, note = profile.local_port, None
    if guard is not None:
        try:
            decision = await guard(profile)
        except UserError as exc:  # e.g. no free port at all, or a take-over that failed
            raise TunnelError(str(exc), fatal=True, cause=exc) from None
        if decision is not None:
            kind, port, note = decision
            if kind == "reuse":
                return Taken(None, port, note)
    listener = HeldListener(profile.hold)
    try:
        bound = await listener.bind(port)
    except OSError as exc:
        raise TunnelError(
            f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}", fatal=fatal_bind
        ) from None
    return Taken(listener, bound, note)
