"""GET from tailscaled's LocalAPI over its unix socket: one request, one connection.

Cheaper than spawning the CLI for each whois, and it is the daemon's own interface. The
daemon wants Host `local-tailscaled.sock` and the `Sec-Tailscale: localapi` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_SOCKET = "/var/run/tailscale/tailscaled.sock"
SOCKET_ENV = "CLAWD_TAILSCALE_SOCKET"
MAX_BODY = 1024 * 1024


class LocalAPIUnavailable(Exception):
    """No daemon answers on the socket (missing, refused, not ours to read): use the CLI."""


@dataclass(frozen=True)
class LocalAPIResponse:
    status: int
    body: bytes


def socket_path(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(SOCKET_ENV) or DEFAULT_SOCKET


def socket_present(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    rest = body
    while rest:
        line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            raise ValueError("truncated chunked body")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]
    return bytes(out)


def parse_response(raw: bytes) -> LocalAPIResponse:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no HTTP header end")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"bad status line {lines[0][:80]!r}")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    elif headers.get("content-length", "").isdigit():
        body = body[: int(headers["content-length"])]
    return LocalAPIResponse(int(parts[1]), body)


async def get(path: str, sock: str, timeout: float = 5.0) -> LocalAPIResponse:
    """GET `path`; LocalAPIUnavailable when nothing usable listens on `sock`."""
    if not socket_present(sock):
        raise LocalAPIUnavailable(f"no socket at {sock}")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(sock), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        raise LocalAPIUnavailable(f"{sock}: {exc}") from None
    try:
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: local-tailscaled.sock\r\nSec-Tailscale: localapi\r\n"
                "Accept: application/json\r\nConnection: close\r\n\r\n"
            ).encode("ascii")
        )
        await writer.drain()
        buf = bytearray()
        while len(buf) < MAX_BODY:  # Connection: close, so the answer ends at EOF
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                break
            buf += chunk
        raw = bytes(buf)
    except (OSError, asyncio.TimeoutError) as exc:
        raise LocalAPIUnavailable(f"{sock}: {exc or 'timed out'}") from None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    try:
        return parse_response(raw)
    except ValueError as exc:
        raise LocalAPIUnavailable(f"{sock}: {exc}") from None
