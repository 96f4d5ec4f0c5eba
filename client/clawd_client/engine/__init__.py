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
    "MultiSupervisor": "multipath",
    "PathState": "state",
    "supervisor_for": "multipath",
    "needs_user": "attention",
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
    "is_tailnet_ip": "tailscale",
    "check_port": "ports",
    "host_pattern": "hostkeys",
    "HostKeyPolicy": "hostkeys",
    "default_known_hosts": "hostkeys",
    "Upstream": "relay",
    "bridge": "relay",
    "CONNECT_TIMEOUT": "ssh",
    "connect_options": "ssh",
    "resolve_target": "ssh",
    "SshClient": "ssh",
}

if TYPE_CHECKING:
    from .attention import needs_user
    from .hostkeys import (
        HostKeyChanged,
        HostKeyPolicy,
        HostKeyUnknown,
        default_known_hosts,
        fingerprint,
        host_pattern,
        remember,
    )
    from .listener import HeldListener
    from .lock import AlreadyRunning, InstanceLock, LockError, read_lock
    from .machine import Machine, Policy, State
    from .multipath import MultiSupervisor, supervisor_for
    from .paths import UrlPath, insecure_ws_refusal, path_for
    from .portguard import make_port_guard
    from .ports import check_port
    from .probe import ProbeResult, probe_gateway
    from .relay import Upstream, bridge
    from .runner import Supervisor
    from .ssh import CONNECT_TIMEOUT, SshClient, TunnelError, connect_options, resolve_target
    from .state import UP_STATES, AgentInfo, Hop, PathState, TunnelStatus, worst
    from .tailscale import is_tailnet_ip


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "CONNECT_TIMEOUT",
    "UP_STATES",
    "AgentInfo",
    "AlreadyRunning",
    "HeldListener",
    "Hop",
    "HostKeyChanged",
    "HostKeyPolicy",
    "HostKeyUnknown",
    "InstanceLock",
    "LockError",
    "Machine",
    "MultiSupervisor",
    "PathState",
    "Policy",
    "ProbeResult",
    "SshClient",
    "State",
    "Supervisor",
    "TunnelError",
    "TunnelStatus",
    "Upstream",
    "UrlPath",
    "bridge",
    "check_port",
    "connect_options",
    "default_known_hosts",
    "fingerprint",
    "host_pattern",
    "insecure_ws_refusal",
    "is_tailnet_ip",
    "make_port_guard",
    "needs_user",
    "path_for",
    "probe_gateway",
    "read_lock",
    "remember",
    "resolve_target",
    "supervisor_for",
    "worst",
]
