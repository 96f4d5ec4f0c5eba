"""The runner's pre-bind step: is the local port free? If not, reuse, take over, or move aside.

Decisions come from ports.plan_port (pure); this glues in the blocking process-table scans
(in a thread) and the end-to-end probe that tells "a working tunnel to our gateway" apart
from "some other program".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from clawd_gateway.secret import Secret

from ..profiles import Profile
from . import ports
from .probe import probe_gateway

PortGuard = Callable[[Profile], Awaitable["tuple[str, int, str] | None"]]


def make_port_guard(secret: Callable[[], Secret | None]) -> PortGuard:
    async def guard(p: Profile) -> tuple[str, int, str] | None:
        check = await asyncio.to_thread(ports.check_port, p.local_port)
        if check.free:
            return None
        own = await asyncio.to_thread(ports.own_pids, p.name)
        plan = ports.plan_port(check, own, None)
        if plan.kind is ports.PlanKind.VERIFY:
            result = await probe_gateway(f"ws://127.0.0.1:{p.local_port}", p.auth, secret(), timeout=3)
            plan = ports.plan_port(check, own, result.ok)
        return await asyncio.to_thread(ports.apply_plan, plan, p.local_port, profile=p.name)

    return guard
