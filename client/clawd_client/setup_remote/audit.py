"""Audit the VPS after setup (issue 12, part 5): the gateway's own audit there, or sshd alone.

Where clawd-gateway is installed, its `clawd-gateway audit --json` runs on the VPS (bind, auth,
secrets in files, permissions, units, listeners, sshd). On an OpenClaw host only the sshd checks
apply; they run here, on sshd's settings read over the session: `sshd -T` where the account may
run it (root), else the config files with their Includes, parsed by the gateway audit's own
parser and judged by its own checks.

Which sshd config: the one of the sshd serving this very session (its master's `-f`, found by
walking up from our shell's process), else /etc/ssh/sshd_config.

What setup-remote shows as critical: everything the gateway audit calls critical, and password
logins too: a VPS whose sshd takes passwords is guessed at from the whole internet all day, and
the tunnel needs keys only. Nothing here changes the server: each finding carries its fix.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from dataclasses import dataclass
from typing import Any

from clawd_gateway.audit.checks import check_sshd
from clawd_gateway.audit.facts import Facts, SshdFacts
from clawd_gateway.audit.sshd import parse_sshd_config, parse_sshd_t

from .install import remote_layout
from .remote import Remote, RemoteError

DEFAULT_SSHD_CONFIG = "/etc/ssh/sshd_config"
#: Findings setup-remote raises to critical (see the module docstring).
ESCALATED = {
    "sshd.password_auth": "a VPS reachable from the internet should take SSH keys only",
    "sshd.password_auth_match": "a VPS reachable from the internet should take SSH keys only",
}
SEVERITY_ORDER = {"critical": 0, "warn": 1, "info": 2}
_SAFE_PATTERN = re.compile(r"[A-Za-z0-9_./*?\[\]@%+=:,-]+")


@dataclass(frozen=True)
class Finding:
    severity: str  # "critical" | "warn" | "info"
    id: str  # the gateway audit's stable id, e.g. sshd.password_auth
    message: str  # what is wrong and what was observed (secrets only as their length)
    fix: str | None  # the exact change to make; setup-remote never makes it itself


# --- which sshd serves us --------------------------------------------------------------------------

_ANCESTORS = r"""
pid=$$
while [ -n "$pid" ] && [ "$pid" -gt 1 ] 2>/dev/null; do
  printf '%s\t' "$pid"; tr '\0' '\037' < /proc/$pid/cmdline 2>/dev/null; printf '\n'
  pid=$(sed 's/.*) //' /proc/$pid/stat 2>/dev/null | cut -d' ' -f2)
done
"""


def sshd_config_from_ancestors(listing: str) -> str | None:
    """The `-f FILE` of the sshd master among our ancestors (None: the default config).

    OpenSSH < 9.8 keeps the master's argv (`/usr/sbin/sshd -D -f FILE`); 9.8+ retitles it
    `sshd: /usr/sbin/sshd -D -f FILE [listener] 0 of 10-100 startups`.
    """
    for line in listing.splitlines():
        _, _, raw = line.partition("\t")
        argv = [a for a in raw.split("\x1f") if a]
        if not argv:
            continue
        if argv[0].startswith("sshd: ") and "[listener]" in argv[0]:
            argv = argv[0][len("sshd: ") :].split(" [listener]")[0].split()
        if not argv or posixpath.basename(argv[0]) != "sshd":
            continue
        for i, arg in enumerate(argv[1:], 1):
            if arg == "-f" and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith("-f") and len(arg) > 2:
                return arg[2:]
        return None
    return None


async def serving_sshd_config(remote: Remote) -> str:
    res = await remote.run(_ANCESTORS)
    return sshd_config_from_ancestors(res.stdout) or DEFAULT_SSHD_CONFIG


# --- sshd alone ------------------------------------------------------------------------------------------


async def _read(remote: Remote, path: str) -> str | None:
    try:
        return await remote.read_file(path)
    except RemoteError:
        return None  # unreadable (permissions): the parser records it as a caveat


async def _expand(remote: Remote, pattern: str) -> list[str]:
    if not _SAFE_PATTERN.fullmatch(pattern):
        return []
    res = await remote.run(f'for f in {pattern}; do [ -e "$f" ] && printf "%s\\n" "$f"; done')
    return sorted(line for line in res.stdout.splitlines() if line)


async def _fetch_sshd_files(remote: Remote, main: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Every file the config reads (following Include like sshd), and each Include's matches."""
    files: dict[str, str] = {}
    globs: dict[str, list[str]] = {}
    base = posixpath.dirname(main) or "."
    todo: list[str] = [main]
    seen: set[str] = set()
    while todo and len(seen) < 64:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        text = await _read(remote, path)
        if text is None:
            continue
        files[path] = text
        for line in text.splitlines():
            words = line.strip().split(None, 1)
            if len(words) == 2 and words[0].lower() == "include":
                try:
                    patterns = shlex.split(words[1])
                except ValueError:
                    patterns = words[1].split()
                for pattern in patterns:
                    full = pattern if posixpath.isabs(pattern) else posixpath.join(base, pattern)
                    if full not in globs:
                        globs[full] = await _expand(remote, full)
                    todo += globs[full]
    return files, globs


async def remote_sshd_facts(remote: Remote, config: str) -> SshdFacts | None:
    """sshd's effective settings on the VPS: `sshd -T` when it runs for this account, else parsed."""
    files, globs = await _fetch_sshd_files(remote, config)
    _, matches, caveats = parse_sshd_config(config, files.get, lambda p: globs.get(p, []))
    cmd = f"$(command -v sshd || echo /usr/sbin/sshd) -T -f {shlex.quote(config)}"
    res = await remote.run(cmd, timeout=20)
    if res.ok and res.stdout.strip():
        return SshdFacts(f"`sshd -T -f {config}`", parse_sshd_t(res.stdout), tuple(matches), ())
    if config not in files:
        return None
    settings, matches, caveats = parse_sshd_config(config, files.get, lambda p: globs.get(p, []))
    return SshdFacts(f"parsed {config}", settings, tuple(matches), tuple(caveats))


def _finding(fid: str, severity: str, title: str, evidence: str, fix: str | None) -> Finding:
    why = ESCALATED.get(fid)
    if why and severity != "critical":
        severity = "critical"
        title = f"{title} ({why})"
    message = f"{title}: {evidence}" if evidence else title
    return Finding(severity, fid, message, fix or None)


def _sorted(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (SEVERITY_ORDER.get(f.severity, 3), f.id))


async def sshd_findings(remote: Remote, config: str | None = None) -> list[Finding]:
    config = config or await serving_sshd_config(remote)
    facts = await remote_sshd_facts(remote, config)
    if facts is None:
        return [
            Finding(
                "info",
                "sshd.unreadable",
                f"sshd's config {config} is not readable by this account and `sshd -T` did not run",
                "audit as root on the VPS: sudo clawd-gateway audit",
            )
        ]
    return [
        _finding(f.id, f.severity, f.title, f.evidence, f.fix)
        for f in check_sshd(Facts(config=None, sshd=facts))
    ]


# --- the gateway's own audit -----------------------------------------------------------------------------


async def _gateway_audit_command(remote: Remote) -> tuple[str, str | None] | None:
    """(how to run clawd-gateway there, its config when setup-remote installed it), or None."""
    lay = await remote_layout(remote)
    ours = (await remote.run(f"test -x {shlex.quote(lay.python)}")).ok
    if ours:
        config = lay.config if await remote.read_file(lay.config) is not None else None
        return shlex.join([lay.python, "-m", "clawd_gateway"]), config
    pipx = "~/.local/bin/clawd-gateway"
    res = await remote.run(f"command -v clawd-gateway || {{ test -x {pipx} && echo {pipx}; }}")
    path = res.stdout.strip().splitlines()
    return (shlex.quote(path[0]), None) if res.ok and path else None


def findings_from_json(data: Any) -> list[Finding]:
    out: list[Finding] = []
    for f in data.get("findings") or []:
        if not isinstance(f, dict) or "id" not in f:
            continue
        out.append(
            _finding(
                str(f["id"]),
                str(f.get("severity") or "info"),
                str(f.get("title") or f["id"]),
                str(f.get("evidence") or ""),
                f.get("fix"),
            )
        )
    return out


async def audit_remote(remote: Remote, *, kind: str) -> list[Finding]:
    """The VPS's findings, critical first. `kind`: "clawd" (a clawd-gateway there) or "openclaw"
    (an OpenClaw/Clawdbot gateway: the sshd checks alone)."""
    sshd_config = await serving_sshd_config(remote)
    found = await _gateway_audit_command(remote) if kind == "clawd" else None
    if found is None:
        return _sorted(await sshd_findings(remote, sshd_config))
    program, config = found
    env = "" if sshd_config == DEFAULT_SSHD_CONFIG else f"CLAWD_AUDIT_SSHD_CONFIG={shlex.quote(sshd_config)} "
    args = " --config " + shlex.quote(config) if config else ""
    res = await remote.run(f"{env}{program} audit --json{args}", timeout=120)
    try:
        data = json.loads(res.stdout)
    except ValueError:
        data = None
    if res.exit_status not in (0, 1) or not isinstance(data, dict):
        detail = (res.stderr or res.stdout).strip().splitlines()
        findings = await sshd_findings(remote, sshd_config)
        findings.append(
            Finding(
                "warn",
                "audit.failed",
                f"`clawd-gateway audit --json` failed on the VPS (exit {res.exit_status})"
                + (f": {detail[-1]}" if detail else "")
                + "; only sshd was checked",
                "run `clawd-gateway audit` on the VPS and read what it says",
            )
        )
        return _sorted(findings)
    return _sorted(findings_from_json(data))


__all__ = [
    "DEFAULT_SSHD_CONFIG",
    "Finding",
    "audit_remote",
    "findings_from_json",
    "remote_sshd_facts",
    "serving_sshd_config",
    "sshd_config_from_ancestors",
    "sshd_findings",
]
