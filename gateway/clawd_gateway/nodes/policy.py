"""Which operator scopes may approve a node's command surface, and which commands never route.

Mirrors the reference gateway (docs/gateway/protocol.md): a node that can run programs on its
host is as powerful as an admin, so approving it needs admin; other commands need write.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..protocol.constants import SCOPE_ADMIN, SCOPE_PAIRING, SCOPE_WRITE

EXEC_COMMANDS = frozenset({"system.run", "system.run.prepare", "system.which"})
# Exec-approval management is the node's own safety net; operators may not drive it remotely.
BLOCKED_PREFIXES = ("system.execApprovals.",)
MAX_COMMANDS = 256
MAX_NAME_LEN = 128
MAX_TEXT_LEN = 256
MAX_COMMAND_LEN = 128
# C0/C1 controls (terminal escapes in `clawd-gateway nodes list`), zero-width and bidi overrides
# (a name that reads as another in the Control UI or a terminal).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def required_approve_scopes(commands: Iterable[str]) -> list[str]:
    cmds = set(commands)
    if cmds & EXEC_COMMANDS:
        return [SCOPE_PAIRING, SCOPE_ADMIN]
    if cmds:
        return [SCOPE_PAIRING, SCOPE_WRITE]
    return [SCOPE_PAIRING]


def blocked(command: str) -> bool:
    return command.startswith(BLOCKED_PREFIXES)


def clean_text(value: str | None, limit: int = MAX_TEXT_LEN) -> str | None:
    """What a connecting peer says about itself, made safe to store, print and show: it is
    chosen by whoever holds the shared secret and ends up in operators' terminals and pages."""
    if value is None:
        return None
    text = _UNPRINTABLE.sub("", value).strip()[:limit]
    return text or None


def clean_names(values: Iterable[str]) -> list[str]:
    """Commands and caps: first occurrence kept, unprintable or overlong ids dropped, bounded."""
    kept = [v for v in dict.fromkeys(values) if 0 < len(v) <= MAX_COMMAND_LEN and not _UNPRINTABLE.search(v)]
    return kept[:MAX_COMMANDS]
