"""What a method handler may see of the gateway: read-only views, no sockets, no raw JSON."""

from __future__ import annotations

from typing import Any, Protocol

from ..presence import ClientRecord
from ..protocol.frames import ErrorShape
from ..settings import Settings


class MethodError(Exception):
    def __init__(self, error: ErrorShape) -> None:
        super().__init__(error.message)
        self.error = error


class GatewayView(Protocol):
    settings: Settings
    started_ms: int
    instance_id: str

    def uptime_ms(self) -> int: ...

    def clients(self) -> list[ClientRecord]: ...

    def client_count(self) -> int: ...

    def presence(self) -> list[dict[str, Any]]: ...

    def state_version(self) -> dict[str, int]: ...

    def identity(self) -> dict[str, str]: ...

    def event_loop(self) -> dict[str, Any]: ...
