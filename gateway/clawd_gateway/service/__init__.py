"""Run clawd-gateway as an OS service: a hardened systemd unit, or a launchd plist on macOS.

Why this package exists: users hand-write units with the secret inline
(`Environment="CLAWDBOT_GATEWAY_PASSWORD=..."` in the seed tutorial), which puts it in a
world-readable file and in `systemctl show`. Here the unit never holds a secret: it names an
environment file with mode 0600 that systemd reads as root before dropping privileges, and a
strong token is generated into it when no secret exists yet.

Split along the pure / I-O line:

- spec.py — names, the .deb layout and ServiceSpec (pure)
- render.py — ServiceSpec -> unit text / plist (pure; the `.deb` builder, the checked-in
  templates under `packaging/` and the tests share it; quoting is clawd_gateway.systemd's)
- envfile.py — the 0600 environment file's syntax, and reading it
- layout.py — where files go per manager and scope (`CLAWD_SERVICE_ROOT` prefixes system paths,
  like DESTDIR, which is how tests and packagers install into a scratch directory)
- steps.py — the systemctl/launchctl commands shown, and run for --enable/--disable
- plan.py — plan_install: decide everything, write nothing
- install.py — install/uninstall: the writes
- launchd.py + __main__.py — `python -m clawd_gateway.service launch --env-file F -- ARGS`, the
  small wrapper launchd runs because it has no EnvironmentFile

Every public name is importable from `clawd_gateway.service`, as before the split.
"""

from __future__ import annotations

from ..errors import ConfigError, UserError
from .envfile import env_file_text, env_file_vars, load_env_file_strict, parse_env_file
from .install import InstallResult, UninstallResult, enabled_links, install, uninstall
from .launchd import launch_main
from .layout import ServicePaths, default_manager, service_paths
from .plan import InstallPlan, SecretPlan, plan_install, plan_secret, python_program
from .render import launchd_plist, render_launchd_plist, render_systemd_unit, validate_launchd_plist
from .spec import (
    DEFAULT_FAMILIES,
    HOME_ROOTS,
    LAUNCHD_LABEL,
    MARKER,
    PACKAGE_CONFIG,
    PACKAGE_ENV_FILE,
    PACKAGE_HEADER,
    PACKAGE_PREFIX,
    PACKAGE_USER,
    ROOT_ENV,
    SECRET_VARS,
    SERVICE_NAME,
    SYSTEM_STATE_DIR,
    UNIT_NAME,
    Manager,
    Scope,
    ServiceSpec,
    package_spec,
)
from .steps import Step, disable_steps, enable_steps, run_steps, status_steps

__all__ = [
    "DEFAULT_FAMILIES",
    "HOME_ROOTS",
    "LAUNCHD_LABEL",
    "MARKER",
    "PACKAGE_CONFIG",
    "PACKAGE_ENV_FILE",
    "PACKAGE_HEADER",
    "PACKAGE_PREFIX",
    "PACKAGE_USER",
    "ROOT_ENV",
    "SECRET_VARS",
    "SERVICE_NAME",
    "SYSTEM_STATE_DIR",
    "UNIT_NAME",
    "ConfigError",
    "InstallPlan",
    "InstallResult",
    "Manager",
    "Scope",
    "SecretPlan",
    "ServicePaths",
    "ServiceSpec",
    "Step",
    "UninstallResult",
    "UserError",
    "default_manager",
    "disable_steps",
    "enable_steps",
    "enabled_links",
    "env_file_text",
    "env_file_vars",
    "install",
    "launch_main",
    "launchd_plist",
    "load_env_file_strict",
    "package_spec",
    "parse_env_file",
    "plan_install",
    "plan_secret",
    "python_program",
    "render_launchd_plist",
    "render_systemd_unit",
    "run_steps",
    "service_paths",
    "status_steps",
    "uninstall",
    "validate_launchd_plist",
]
