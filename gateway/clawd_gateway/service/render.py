"""ServiceSpec in, unit or plist text out. Pure and deterministic (no timestamps), so re-running
install rewrites a file identically, and the `.deb` builder, the checked-in templates under
`packaging/` and the tests all share this one source of truth."""

from __future__ import annotations

import plistlib
from collections.abc import Mapping
from typing import Any

from ..errors import UserError
from ..systemd import escape_specifiers, exec_line, quote_environment, quote_word
from .spec import LAUNCHD_LABEL, MARKER, SECRET_VARS, SERVICE_NAME, SYSTEM_STATE_DIR, ServiceSpec, check_text


def render_systemd_unit(spec: ServiceSpec) -> str:
    """The unit text.

    The gateway needs TCP and Unix sockets, its state dir and its interpreter, so the rest is
    taken away (tests check the syscalls it makes against the filter, and run it under
    MemoryDenyWriteExecute's kernel twin, PR_SET_MDWE). CapabilityBoundingSet= (empty), /proc
    hiding and the kernel/clock/hostname protections are for system units only: a user manager
    cannot drop capabilities (the unit would fail with status=218/CAPABILITIES) or mount a
    private /proc, and an unprivileged process has no capabilities to drop.
    """
    system = spec.scope == "system"
    header = spec.header or (
        f"{MARKER}; re-run it to regenerate, `clawd-gateway uninstall-service"
        f"{'' if system else ' --user'}` to remove.",
        f"# Secrets live in {spec.env_file} (mode 0600), never in this file.",
    )
    lines = [
        *header,
        "[Unit]",
        "Description=clawd-gateway (OpenClaw-compatible gateway)",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
    ]
    if system and spec.user:
        lines.append(f"User={check_text(spec.user, 'the user name')}")
    for arg in spec.argv:
        check_text(arg, "a command-line argument")
    lines.append("ExecStart=" + exec_line(spec.argv))
    lines.append("EnvironmentFile=" + escape_specifiers(check_text(str(spec.env_file), "the env file path")))
    if spec.state_dir is None:
        state = SYSTEM_STATE_DIR
        lines += [f"StateDirectory={SERVICE_NAME}", "StateDirectoryMode=0700"]
    else:
        state = spec.state_dir
    state_path = check_text(str(state), "the state directory")
    lines += [
        "Environment=" + quote_environment("CLAWD_STATE_DIR", state_path),
        "Environment=PYTHONUNBUFFERED=1",
        f"WorkingDirectory={escape_specifiers(state_path)}",
        "UMask=0077",
        "Restart=on-failure",
        "RestartSec=5s",
        "TimeoutStopSec=20s",
        "",
        "# Hardening; `systemd-analyze security clawd-gateway.service` rates it.",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ]
    if spec.state_dir is not None:  # StateDirectory= is writable on its own
        lines.append("ReadWritePaths=" + quote_word(state_path))
    lines += [f"ProtectHome={spec.protect_home}", "PrivateTmp=yes", "PrivateDevices=yes"]
    if system:
        lines += [
            "ProtectKernelTunables=yes",
            "ProtectKernelModules=yes",
            "ProtectKernelLogs=yes",
            "ProtectControlGroups=yes",
            "ProtectClock=yes",
            "ProtectHostname=yes",
            "ProtectProc=invisible",
            "ProcSubset=pid",
            "PrivateMounts=yes",
            "CapabilityBoundingSet=",
            "AmbientCapabilities=",
            "RemoveIPC=yes",
        ]
    lines += [
        "RestrictAddressFamilies=" + " ".join(spec.address_families),
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
        "SystemCallErrorNumber=EPERM",
        "",
        "[Install]",
        f"WantedBy={'multi-user.target' if system else 'default.target'}",
    ]
    return "\n".join(lines) + "\n"


def launchd_plist(spec: ServiceSpec, python: str, label: str = LAUNCHD_LABEL) -> dict[str, Any]:
    """The launchd job as a dict. Secrets stay in the 0600 env file, read by our wrapper.

    KeepAlive {SuccessfulExit: false} is launchd's Restart=on-failure: a clean SIGTERM stop
    (exit 0) is not respawned; ThrottleInterval plays RestartSec.
    """
    state = str(spec.state_dir or SYSTEM_STATE_DIR)
    log_dir = str(spec.log_dir or state)
    wrapper = [python, "-m", "clawd_gateway.service", "launch", "--env-file", str(spec.env_file), "--"]
    data: dict[str, Any] = {
        "Label": label,
        "ProgramArguments": [*wrapper, *spec.args],
        "EnvironmentVariables": {"CLAWD_STATE_DIR": state, "PYTHONUNBUFFERED": "1"},
        "WorkingDirectory": state,
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 5,
        "Umask": 0o077,
        "StandardOutPath": f"{log_dir}/gateway.out.log",
        "StandardErrorPath": f"{log_dir}/gateway.err.log",
    }
    if spec.scope == "system" and spec.user:
        data["UserName"] = spec.user
    return data


def render_launchd_plist(data: Mapping[str, Any]) -> bytes:
    """The plist XML, after the checks launchd would make (sorted keys: deterministic)."""
    problems = validate_launchd_plist(data)
    if problems:
        raise UserError("the generated launchd plist is invalid: " + "; ".join(problems))
    return plistlib.dumps(dict(data), fmt=plistlib.FMT_XML, sort_keys=True)


def validate_launchd_plist(data: Mapping[str, Any]) -> list[str]:
    """The checks launchd would make on load, plus ours (no secrets); runs on any OS."""
    problems: list[str] = []
    if not isinstance(data.get("Label"), str) or not data["Label"]:
        problems.append("Label must be a non-empty string")
    argv = data.get("ProgramArguments")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        problems.append("ProgramArguments must be a non-empty list of strings")
    elif not argv[0].startswith("/"):
        problems.append("ProgramArguments[0] must be an absolute path (launchd has no PATH search)")
    if not isinstance(data.get("RunAtLoad"), bool):
        problems.append("RunAtLoad must be a bool")
    keep = data.get("KeepAlive")
    if not isinstance(keep, bool) and not (
        isinstance(keep, dict) and keep and all(isinstance(v, bool) for v in keep.values())
    ):
        problems.append("KeepAlive must be a bool or a dict of bools")
    for key in ("StandardOutPath", "StandardErrorPath", "WorkingDirectory"):
        if key in data and not (isinstance(data[key], str) and data[key].startswith("/")):
            problems.append(f"{key} must be an absolute path")
    for key in ("ThrottleInterval", "Umask"):
        if key in data and type(data[key]) is not int:
            problems.append(f"{key} must be an integer")
    env = data.get("EnvironmentVariables", {})
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        problems.append("EnvironmentVariables must map strings to strings")
    elif any(k in env for k in SECRET_VARS):
        problems.append("EnvironmentVariables must not hold the gateway secret (it belongs in the env file)")
    return problems


__all__ = ["launchd_plist", "render_launchd_plist", "render_systemd_unit", "validate_launchd_plist"]
