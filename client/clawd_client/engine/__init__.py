"""The tunnel engine's public face: a pure supervisor state machine, the asyncio runner around it,
the paths to the gateway, and the listeners the agent owns.

Nothing outside the engine imports its submodules; they import what they need from here. Names
are resolved lazily, so a quick command (`clawd status`, which only reads the agent) does not pay
for asyncssh, websockets or the SSH stack at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Supervisor": "runner",
    "needs_user": "runner",
    "TunnelStatus": "state",
    "Hop": "state",
    "AgentInfo": "state",
    "worst": "state",
    "UP_STATES": "state",
    "HeldListener": "listener",
    "make_port_guard": "portguard",
    "InstanceLock": "lock",
    "AlreadyRunning": "lock",
    "LockError": "lock",
    "read_lock": "lock",
    "HostKeyUnknown": "hostkeys",
    "HostKeyChanged": "hostkeys",
    "fingerprint": "hostkeys",
    "remember": "hostkeys",
    "probe_gateway": "probe",
    "ProbeResult": "probe",
    "TunnelError": "ssh",
    "UrlPath": "paths",
    "path_for": "paths",
    "insecure_ws_refusal": "paths",
    "Policy": "machine",
    "Machine": "machine",
    "State": "machine",
}

if TYPE_CHECKING:
    from .hostkeys import HostKeyChanged, HostKeyUnknown, fingerprint, remember
    from .listener import HeldListener
    from .lock import AlreadyRunning, InstanceLock, LockError, read_lock
    from .machine import Machine, Policy, State
    from .paths import UrlPath, insecure_ws_refusal, path_for
    from .portguard import make_port_guard
    from .probe import ProbeResult, probe_gateway
    from .runner import Supervisor, needs_user
    from .ssh import TunnelError
    from .state import UP_STATES, AgentInfo, Hop, TunnelStatus, worst


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "UP_STATES",
    "AgentInfo",
    "AlreadyRunning",
    "HeldListener",
    "Hop",
    "HostKeyChanged",
    "HostKeyUnknown",
    "InstanceLock",
    "LockError",
    "Machine",
    "Policy",
    "ProbeResult",
    "State",
    "Supervisor",
    "TunnelError",
    "TunnelStatus",
    "UrlPath",
    "fingerprint",
    "insecure_ws_refusal",
    "make_port_guard",
    "needs_user",
    "path_for",
    "probe_gateway",
    "read_lock",
    "remember",
    "worst",
]
