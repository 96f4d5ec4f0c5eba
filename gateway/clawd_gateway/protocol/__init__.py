"""The OpenClaw gateway protocol, sans I/O: frames, validation, handshake state, scopes.

Both halves of clawd use this package: the gateway's websockets adapter and the client's
health probe. No asyncio, sockets or clocks live here.
"""

from .constants import DEFAULT_PORT, PROTOCOL_MAX, PROTOCOL_MIN, DetailCode, ErrorCode
from .frames import ConnectParams, ErrorShape, Event, FrameError, Request, Response

__all__ = [
    "DEFAULT_PORT",
    "PROTOCOL_MAX",
    "PROTOCOL_MIN",
    "ConnectParams",
    "DetailCode",
    "ErrorCode",
    "ErrorShape",
    "Event",
    "FrameError",
    "Request",
    "Response",
]
