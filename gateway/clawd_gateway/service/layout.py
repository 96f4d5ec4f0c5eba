"""Where a service's files go, per manager and scope, and where we really write them.

`CLAWD_SERVICE_ROOT` prefixes every system path (like DESTDIR): that is how tests and packagers
write a "system" install into a scratch directory while the unit still names the real paths.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import UserError
from .spec import LAUNCHD_LABEL, ROOT_ENV, SERVICE_NAME, UNIT_NAME, Manager, Scope


@dataclass(frozen=True)
class ServicePaths:
    """The paths the service manager sees, plus where we really write them."""

    manager: Manager
    scope: Scope
    root: Path | None  # CLAWD_SERVICE_ROOT, prefixed to every system path
    unit: PurePosixPath
    env_file: PurePosixPath
    log_dir: PurePosixPath | None

    def real(self, p: PurePosixPath) -> Path:
        if self.root is None or self.scope == "user":
            return Path(p)
        return self.root / str(p).lstrip("/")


def default_manager() -> Manager:
    """This OS's service manager; other systems get a clear refusal instead of a broken file."""
    if sys.platform == "darwin":
        return "launchd"
    if sys.platform.startswith("linux"):
        return "systemd"
    raise UserError(
        f"install-service supports Linux (systemd) and macOS (launchd), not {sys.platform}",
        fix="run `clawd-gateway run` from your platform's service manager",
    )


def service_paths(manager: Manager, scope: Scope, env: Mapping[str, str] | None = None) -> ServicePaths:
    env = os.environ if env is None else env
    root = Path(env[ROOT_ENV]) if env.get(ROOT_ENV) else None
    home = PurePosixPath(env.get("HOME") or str(Path.home()))
    if manager == "systemd":
        if scope == "system":
            unit = PurePosixPath("/etc/systemd/system") / UNIT_NAME
            return ServicePaths(manager, scope, root, unit, PurePosixPath("/etc", SERVICE_NAME, "env"), None)
        xdg = PurePosixPath(env.get("XDG_CONFIG_HOME") or home / ".config")
        unit = xdg / "systemd" / "user" / UNIT_NAME
        return ServicePaths(manager, scope, root, unit, xdg / SERVICE_NAME / "env", None)
    plist = f"{LAUNCHD_LABEL}.plist"
    if scope == "system":
        support = PurePosixPath("/Library/Application Support", SERVICE_NAME)
        logs = PurePosixPath("/Library/Logs", SERVICE_NAME)
        unit = PurePosixPath("/Library/LaunchDaemons", plist)
        return ServicePaths(manager, scope, root, unit, support / "env", logs)
    support = home / "Library" / "Application Support" / SERVICE_NAME
    unit = home / "Library" / "LaunchAgents" / plist
    return ServicePaths(manager, scope, root, unit, support / "env", home / "Library" / "Logs" / SERVICE_NAME)


__all__ = ["ServicePaths", "default_manager", "service_paths"]
