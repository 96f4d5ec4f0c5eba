"""Who is connected, as the `system-presence` method and `presence` events describe it."""

from __future__ import annotations

import functools
import platform
import socket
from dataclasses import dataclass, field
from typing import Any

from . import __version__

# One-shot CLI invocations come and go every second; like the reference gateway we keep them
# out of presence (they still appear in `status`).
UNTRACKED_MODES = frozenset({"cli", "probe"})


@dataclass
class ClientRecord:
    conn_id: str
    client_id: str
    mode: str
    platform: str
    version: str
    remote: str
    since_ms: int
    role: str
    scopes: tuple[str, ...]
    auth_method: str
    display_name: str | None = None
    device_family: str | None = None
    instance_id: str | None = None
    device_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tracked(self) -> bool:
        return self.mode not in UNTRACKED_MODES

    def presence_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "host": self.display_name or self.client_id,
            "ip": self.remote,
            "version": self.version,
            "platform": self.platform,
            "mode": self.mode,
            "reason": "connect",
            "text": f"{self.display_name or self.client_id} ({self.remote}) · {self.client_id} "
            f"{self.version} · mode {self.mode}",
            "ts": self.since_ms,
            "roles": [self.role],
            "scopes": list(self.scopes),
            "clientId": self.client_id,
            "since": self.since_ms,
            "connId": self.conn_id,
        }
        if self.device_family:
            entry["deviceFamily"] = self.device_family
        if self.instance_id:
            entry["instanceId"] = self.instance_id
        if self.device_id:
            entry["deviceId"] = self.device_id
        return entry

    def summary(self) -> dict[str, Any]:
        return {
            "connId": self.conn_id,
            "clientId": self.client_id,
            "mode": self.mode,
            "platform": self.platform,
            "version": self.version,
            "remote": self.remote,
            "since": self.since_ms,
            "role": self.role,
            "scopes": list(self.scopes),
            "auth": self.auth_method,
        }


@functools.cache
def _host_facts() -> tuple[str, str]:
    """Host name and platform: looked up once, not in every hello-ok."""
    return socket.gethostname(), f"{platform.system().lower()} {platform.release()}"


def self_entry(instance_id: str, started_ms: int, ip: str) -> dict[str, Any]:
    host, plat = _host_facts()
    return {
        "host": host,
        "ip": ip,
        "version": __version__,
        "platform": plat,
        "mode": "gateway",
        "reason": "self",
        "instanceId": instance_id,
        "text": f"Gateway: {host} ({ip}) · app {__version__} · mode gateway · reason self",
        "ts": started_ms,
    }
