"""Planning `install-service`: everything it will write, decided before anything is written.

Why a separate step: `--print` shows the plan without touching the system, and a plan that would
give a service the gateway refuses to start with (exit 78) is rejected here, before a unit exists.
Planning reads (the config, an existing env file, the account database) but never writes; the
decisions themselves (which secret, which ProtectHome=) are pure functions of what was read.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from .. import paths
from ..errors import ConfigError, UserError
from ..secret_sources import SECRET_VARS
from .envfile import SAFE_SECRET, env_file_vars, parse_env_file
from .layout import ServicePaths, default_manager, service_paths
from .render import launchd_plist, render_launchd_plist, render_systemd_unit
from .spec import (
    DEFAULT_FAMILIES,
    HOME_ROOTS,
    SERVICE_NAME,
    SYSTEM_STATE_DIR,
    UNIT_NAME,
    Manager,
    Scope,
    ServiceSpec,
)


@dataclass(frozen=True)
class SecretPlan:
    """What happens to the env file. Holds no secret: the value is read or made when writing."""

    action: Literal["keep", "create", "append", "none-needed", "unreadable"]
    var: str | None  # the variable that will be written (create/append)
    source: str  # "generated", "env OPENCLAW_GATEWAY_TOKEN", "env file", why none is needed
    existing_text: str | None = None


@dataclass(frozen=True)
class InstallPlan:
    paths: ServicePaths
    spec: ServiceSpec
    content: bytes
    secret: SecretPlan
    run_as: str
    config: Path | None
    state_dir: PurePosixPath
    notes: tuple[str, ...] = ()


def _resolve_run_as(scope: Scope, run_as: str | None, env: Mapping[str, str]) -> str:
    """System services run as --run-as, else whoever ran sudo, else the current user.

    The invoking user (not a new dedicated one) is the default because a pipx or venv install
    usually lives in that user's home, which a separate account often cannot read (Debian 12
    creates homes 0700). The .deb, which installs into /opt, uses a dedicated user instead.
    """
    current = getpass.getuser()
    if scope == "user":
        if run_as and run_as != current:
            raise UserError("--run-as applies to system services only", fix="drop --run-as, or drop --user")
        return current
    name = run_as or env.get("SUDO_USER") or current
    if name == "nobody":
        raise UserError(
            "refusing to run the gateway as 'nobody': that account is shared by unrelated daemons "
            "(systemd calls it unsafe)",
            fix=f"create a dedicated user: useradd --system --home-dir {SYSTEM_STATE_DIR} "
            f"--shell /usr/sbin/nologin {SERVICE_NAME}; then --run-as {SERVICE_NAME}",
        )
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        raise UserError(
            f"user {name!r} does not exist",
            fix=f"create it first (useradd --system --home-dir {SYSTEM_STATE_DIR} "
            f"--shell /usr/sbin/nologin {name}), or pick another with --run-as",
        ) from None
    return name


def _home_of(name: str, env: Mapping[str, str]) -> str:
    if name == getpass.getuser() and env.get("HOME"):
        return env["HOME"]
    import pwd

    return pwd.getpwnam(name).pw_dir


def python_program() -> tuple[str, ...]:
    """The interpreter in use, unresolved: a venv's (pipx's) bin/python must stay a venv path."""
    exe = sys.executable
    if not exe or not os.path.isabs(exe):
        raise UserError(
            "cannot tell which Python interpreter runs clawd-gateway (sys.executable is empty)",
            fix="run install-service through the interpreter you want, e.g. /path/to/venv/bin/clawd-gateway",
        )
    return (exe, "-m", "clawd_gateway")


def _under_home(p: str | os.PathLike[str]) -> bool:
    text = os.path.abspath(p)
    return any(text == r or text.startswith(r + "/") for r in HOME_ROOTS)


def _protect_home(extra: Sequence[str]) -> Literal["yes", "read-only"]:
    """ProtectHome=yes unless the interpreter, its packages, config or state live under a home."""
    import clawd_gateway

    candidates: list[str] = [
        sys.executable,
        os.path.realpath(sys.executable),
        sys.prefix,
        sys.base_prefix,
        os.path.realpath(os.path.dirname(clawd_gateway.__file__)),
        *(p for p in sys.path if p and os.path.isdir(p)),
        *extra,
    ]
    return "read-only" if any(_under_home(c) for c in candidates) else "yes"


def plan_secret(
    existing: str | None, auth: Mapping[str, Any], invoking_env: Mapping[str, str], env_file: Path
) -> SecretPlan:
    """Keep an existing secret; else take the caller's exported one; else generate one.

    `existing` is the env file's text (None: no file yet); `env_file` only names it in messages.
    Only OPENCLAW_* names are written: the seeds' CLAWDBOT_* ones are read, never created.
    """
    if existing is not None and any(parse_env_file(existing).get(v) for v in SECRET_VARS):
        return SecretPlan("keep", None, "env file", existing)
    mode = auth.get("mode")
    if mode == "none" or auth.get("token") or auth.get("password"):
        why = "auth mode is none" if mode == "none" else "the config file sets the secret"
        return SecretPlan("keep" if existing is not None else "none-needed", None, why, existing)
    kinds = ("PASSWORD",) if mode == "password" else ("TOKEN",) if mode == "token" else ("TOKEN", "PASSWORD")
    action: Literal["create", "append"] = "append" if existing is not None else "create"
    for kind in kinds:
        var = f"OPENCLAW_GATEWAY_{kind}"
        value = invoking_env.get(var)
        if value:
            if not SAFE_SECRET.fullmatch(value):
                raise UserError(
                    f"{var} in your environment is shorter than 16 characters or has characters an "
                    "environment file cannot hold safely",
                    fix=f"unset {var} to have a strong one generated, or write it into {env_file} yourself",
                )
            return SecretPlan(action, var, f"env {var}", existing)
    return SecretPlan(action, f"OPENCLAW_GATEWAY_{kinds[0]}", "generated", existing)


def _plan_secret(env_file: Path, auth: Mapping[str, Any], invoking_env: Mapping[str, str]) -> SecretPlan:
    """Read the env file (if any) and decide with plan_secret."""
    try:
        existing: str | None = env_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = None
    except PermissionError:
        return SecretPlan("unreadable", None, "env file (not readable without root)")
    return plan_secret(existing, auth, invoking_env, env_file)


def plan_install(
    *,
    scope: Scope,
    manager: Manager | None = None,
    config: str | None = None,
    run_as: str | None = None,
    env: Mapping[str, str] | None = None,
) -> InstallPlan:
    """Resolve everything install-service will write, and check the gateway would start with it."""
    from ..config import load_config, locate_config
    from ..settings import Overrides, resolve_settings

    env = dict(os.environ if env is None else env)
    manager = manager or default_manager()
    sp = service_paths(manager, scope, env)
    user = _resolve_run_as(scope, run_as, env)
    lookup_env = {**env, "HOME": _home_of(user, env)}
    cfg_path, _ = locate_config(config, lookup_env)
    if cfg_path is not None:
        cfg_path = Path(os.path.abspath(cfg_path))
        if not cfg_path.is_file():
            raise ConfigError("config file not found", file=cfg_path, fix="check the --config path")
    if scope == "user":
        state = PurePosixPath(os.path.abspath(paths.state_dir(env)))
        spec_state: PurePosixPath | None = state
    elif manager == "launchd":
        state = PurePosixPath("/Library/Application Support", SERVICE_NAME, "state")
        spec_state = state
    else:
        state, spec_state = SYSTEM_STATE_DIR, None

    # Validate with the environment the service will have, so a service that would refuse to
    # start (exit 78) is never installed; ${VAR} references must resolve from the env file.
    real_env_file = sp.real(sp.env_file)
    service_env = {
        "HOME": lookup_env["HOME"],
        "CLAWD_STATE_DIR": str(state),
        **env_file_vars(real_env_file),
    }
    try:
        conf = load_config(cfg_path, service_env)
    except ConfigError as exc:
        if "environment variable" not in str(exc):
            raise
        raise ConfigError(
            str(exc).rsplit(": ", 1)[-1],
            file=exc.file,
            key=exc.key,
            fix=f"add the variable to {sp.env_file} (mode 0600), then re-run install-service",
        ) from None
    secret = _plan_secret(real_env_file, conf.get("auth") or {}, env)
    if secret.var or secret.action == "unreadable":
        service_env.setdefault(secret.var or "OPENCLAW_GATEWAY_TOKEN", "x" * 48)  # stands in for it
    resolve_settings(
        Overrides(config=str(cfg_path) if cfg_path else None), env=service_env, create_token=False
    )

    notes: list[str] = []
    families = DEFAULT_FAMILIES
    if conf.get("bind") == "tailnet":
        # Finding the tailnet address uses psutil.net_if_addrs(), i.e. getifaddrs(), i.e. netlink.
        families = (*families, "AF_NETLINK")
        notes.append("bind tailnet: AF_NETLINK is allowed so the gateway can find its Tailscale address")
    extra = [str(state)] + ([str(cfg_path)] if cfg_path else [])
    spec = ServiceSpec(
        program=python_program(),
        args=("run", *(("--config", str(cfg_path)) if cfg_path else ())),
        env_file=sp.env_file,
        scope=scope,
        user=user if scope == "system" else None,
        state_dir=spec_state,
        protect_home="read-only" if scope == "user" else _protect_home(extra),
        address_families=families,
        log_dir=sp.log_dir,
    )
    if manager == "systemd":
        content = render_systemd_unit(spec).encode("utf-8")
    else:
        content = render_launchd_plist(launchd_plist(spec, sys.executable))
    if scope == "system" and user == "root":
        notes.append(
            "the service runs as root (without capabilities); a dedicated user is better: --run-as NAME"
        )
    packaged = Path("/lib/systemd/system", UNIT_NAME)
    if manager == "systemd" and scope == "system" and sp.root is None and packaged.exists():
        notes.append(f"the clawd-gateway package's {packaged} exists; {sp.unit} takes precedence over it")
    return InstallPlan(sp, spec, content, secret, user, cfg_path, state, tuple(notes))


__all__ = ["InstallPlan", "SecretPlan", "plan_install", "plan_secret", "python_program"]
