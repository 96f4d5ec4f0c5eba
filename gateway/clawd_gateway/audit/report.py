"""Render a report for people (grouped by severity, evidence and fix on their own lines)."""

from __future__ import annotations

import textwrap

from .model import Report

LABEL = {"critical": "CRITICAL", "warn": "WARN", "info": "INFO"}


def _wrap(label: str, text: str, width: int = 100) -> list[str]:
    return textwrap.wrap(
        text, width=width, initial_indent=f"  {label:<9} ", subsequent_indent=" " * 12, break_on_hyphens=False
    ) or [f"  {label}"]


def render_text(report: Report) -> str:
    a = report.audited
    lines = [
        "clawd-gateway audit" + (" --deep" if report.deep else ""),
        "  config    "
        + (
            f"{a['configFile']} ({a.get('configSource')})"
            if a.get("configFile")
            else "none: built-in defaults"
        ),
        f"  state     {', '.join(a.get('stateDirs') or [])}",
    ]
    if a.get("serviceFiles"):
        lines.append(f"  services  {', '.join(a['serviceFiles'])}")
    listening = [
        f"{li['process'] or '?'}" + (f"({li['pid']})" if li["pid"] else "") + f" {li['address']}:{li['port']}"
        for li in a.get("listeners") or []
    ]
    lines.append(f"  listening {', '.join(listening) if listening else 'nothing on the gateway port'}")
    if a.get("sshd"):
        lines.append(f"  sshd      {a['sshd']}")
    if "tailscale" in a:
        ts = a["tailscale"]
        routes = [
            f"{r['listen']}{r['path']} → {r['target']}{' (funnel)' if r['funnel'] else ''}"
            for r in ts["routes"]
        ]
        lines.append(f"  tailscale {', '.join(routes) or ts.get('error') or 'no serve/funnel routes'}")
    if "probe" in a:
        p = a["probe"]
        lines.append(
            f"  probe     {p['url']}: unauthenticated connect {p['unauthenticated']}; /readyz {p['readyz']}"
        )
    lines.append("")
    for f in report.findings:
        lines.append(f"{LABEL[f.severity]:<8} {f.id} — {f.title}")
        lines += _wrap("evidence:", f.evidence)
        # not wrapped: a fix is often a command to copy whole
        lines.append(f"  {'fix:':<9} {f.fix}" + ("  [--fix does this]" if f.autofix else ""))
    for fx in report.fixes:
        if fx.error:
            lines.append(f"NOT FIXED {fx.path}: chmod {fx.after:o} failed: {fx.error}")
        else:
            lines.append(f"FIXED    {fx.path}: mode {fx.before:04o} → {fx.after:04o} ({fx.finding})")
    for check, reason in report.skipped:
        lines.append(f"skipped  {check}: {reason}")
    lines.append(
        f"\n{report.count('critical')} critical · {report.count('warn')} warn · {report.count('info')} info"
        + (" — exit 1 (critical findings)" if report.exit_code else "")
    )
    return "\n".join(lines) + "\n"
