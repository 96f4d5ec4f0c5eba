"""What a setup did, one small JSON file per profile in the client state dir, so `--undo` removes
exactly that and a re-run can tell a finished setup from a fresh one.

Why a file of its own and not fields in the profile: the profile is the user's (they may edit or
re-import it); this records facts about another machine (the exact authorized_keys line added,
whether a newline had to be added before it, whether clawd installed the gateway) that only undo
needs. No secret is ever written here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from clawd_gateway.paths import atomic_write

from ..paths import client_state_dir


@dataclass
class SetupState:
    name: str
    target: dict[str, Any]  # the SshTarget used to log in (admin access), as JSON
    key_path: str = ""  # local private key (~/.ssh/clawd_NAME)
    key_created: bool = False  # this setup generated it (undo deletes only then)
    key_line: str = ""  # the exact authorized_keys line added on the VPS
    authorized_keys: str = ""  # its remote path
    line_added: bool = False
    added_newline: bool = False  # a newline was added before the line (the file lacked one)
    remote_port: int = 0
    gateway: str = ""  # "openclaw" | "clawd" | "installed"
    installed: dict[str, Any] | None = None  # InstallResult as JSON when setup installed it
    installed_system: bool = False
    profile_written: bool = False
    secret_kind: str | None = None
    autostart_entry_created: bool = False
    complete: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SetupState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def state_path(name: str) -> Path:
    return client_state_dir() / "setup-remote" / f"{name}.json"


def load_state(name: str) -> SetupState | None:
    try:
        data = json.loads(state_path(name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return SetupState.from_json(data) if isinstance(data, dict) else None


def save_state(state: SetupState) -> None:
    atomic_write(state_path(state.name), json.dumps(state.to_json(), indent=2) + "\n", mode=0o600)


def drop_state(name: str) -> None:
    state_path(name).unlink(missing_ok=True)


__all__ = ["SetupState", "drop_state", "load_state", "save_state", "state_path"]
