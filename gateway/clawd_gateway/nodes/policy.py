"""Which operator scopes may approve a node's command surface, and which commands never route.

Mirrors the reference gateway (docs/gateway/protocol.md): a node that can run programs on its
host is as powerful as an admin, so approving it needs admin; other commands need write.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..protocol.constants import SCOPE_ADMIN, SCOPE_PAIRING, SCOPE_WRITE

EXEC_COMMANDS = frozenset({"system.run", "system.run.prepare", "system.which"})
# Exec-approval management is the node's own safety net; operators may not drive it remotely.
BLOCKED_PREFIXES = ("system.execApprovals.",)
MAX_COMMANDS = 256
MAX_NAME_LEN = 128


def required_approve_scopes(commands: Iterable[str]) -> list[str]:
    cmds = set(commands)
    if cmds & EXEC_COMMANDS:
        return [SCOPE_PAIRING, SCOPE_ADMIN]
    if cmds:
        return [SCOPE_PAIRING, SCOPE_WRITE]
    return [SCOPE_PAIRING]


def blocked(command: str) -> bool:
    return command.startswith(BLOCKED_PREFIXES)
