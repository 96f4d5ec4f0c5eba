"""Who is this tailnet address? LocalAPI first, CLI otherwise; answers cached, lookups shared.

A browser opening the Control UI through Serve makes several sockets at once; single-flight
plus the cache turns that burst into one lookup. Successes live 60 s (a login does not change
under a live address), failures 5 s (a peer that just joined should not wait long).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from . import command, localapi
from .parse import WhoisIdentity, parse_whois

OK_TTL_S = 60.0
FAIL_TTL_S = 5.0
MAX_ENTRIES = 1024
MAX_CONCURRENT = 4


@dataclass(frozen=True)
class WhoisResult:
    identity: WhoisIdentity | None
    error: str | None = None
    via: str = ""  # "localapi" | "cli" | "cache" (for logs and tests)


class WhoisResolver:
    def __init__(
        self,
        *,
        socket: str,
        binary: Callable[[], str | None] = command.find_binary,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = command.STATUS_TIMEOUT_S,
    ) -> None:
        self.socket = socket
        self._binary = binary
        self._clock = clock
        self._timeout = timeout
        self._cache: OrderedDict[str, tuple[float, WhoisResult]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[WhoisResult]] = {}
        self._sem: asyncio.Semaphore | None = None
        self.lookups = 0  # real lookups made (not cache hits), for tests and status

    async def lookup(self, ip: str) -> WhoisResult:
        try:
            addr = str(ipaddress.ip_address(ip))  # never hand anything else to argv or a URL
        except ValueError:
            return WhoisResult(None, f"not an IP address: {ip[:64]!r}")
        hit = self._cache.get(addr)
        if hit is not None:
            if hit[0] > self._clock():
                return WhoisResult(hit[1].identity, hit[1].error, "cache")
            del self._cache[addr]
        task = self._inflight.get(addr)
        if task is None:
            # The lookup runs as its own task: a caller that goes away (socket closed) must not
            # cancel the answer the others are waiting for.
            task = asyncio.ensure_future(self._resolve_and_store(addr))
            self._inflight[addr] = task
        return await asyncio.shield(task)

    async def _resolve_and_store(self, addr: str) -> WhoisResult:
        try:
            result = await self._resolve(addr)
        except Exception as exc:  # a lookup bug must read as "not verified", never as a crash
            result = WhoisResult(None, f"whois failed: {type(exc).__name__}")
        finally:
            self._inflight.pop(addr, None)
        ttl = OK_TTL_S if result.identity is not None else FAIL_TTL_S
        self._cache[addr] = (self._clock() + ttl, result)
        while len(self._cache) > MAX_ENTRIES:
            self._cache.popitem(last=False)
        return result

    async def _resolve(self, addr: str) -> WhoisResult:
        if self._sem is None:
            self._sem = asyncio.Semaphore(MAX_CONCURRENT)
        async with self._sem:
            self.lookups += 1
            try:
                return await self._via_localapi(addr)
            except localapi.LocalAPIUnavailable:
                return await self._via_cli(addr)

    async def _via_localapi(self, addr: str) -> WhoisResult:
        path = "/localapi/v0/whois?addr=" + urllib.parse.quote(addr, safe="")
        resp = await localapi.get(path, self.socket, self._timeout)
        if resp.status == 404:
            return WhoisResult(None, "peer not found", "localapi")
        if resp.status != 200:
            raise localapi.LocalAPIUnavailable(f"HTTP {resp.status}")
        try:
            ident = parse_whois(json.loads(resp.body or b"null"))
        except ValueError:
            return WhoisResult(None, "unreadable whois answer", "localapi")
        return WhoisResult(ident, None if ident else "whois answer has no login", "localapi")

    async def _via_cli(self, addr: str) -> WhoisResult:
        binary = self._binary()
        if binary is None:
            return WhoisResult(None, "tailscale CLI not found and no LocalAPI socket", "cli")
        res = await command.run(binary, "whois", "--json", addr, timeout=self._timeout)
        if res.timed_out:
            return WhoisResult(None, "tailscale whois timed out", "cli")
        if not res.ok:
            first = (res.output.splitlines() or ["failed"])[0]
            return WhoisResult(None, first[:200], "cli")
        try:
            ident = parse_whois(res.stdout)
        except ValueError:
            return WhoisResult(None, "unreadable whois answer", "cli")
        return WhoisResult(ident, None if ident else "whois answer has no login", "cli")
