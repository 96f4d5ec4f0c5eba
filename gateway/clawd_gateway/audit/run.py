"""One audit: gather, judge, optionally fix and judge again."""

from __future__ import annotations

from collections.abc import Mapping

from .checks import run_checks
from .fix import apply_fixes
from .gather import gather
from .model import Report


def run_audit(
    *, config: str | None = None, deep: bool = False, fix: bool = False, env: Mapping[str, str] | None = None
) -> Report:
    g = gather(config=config, env=env, deep=deep)
    findings = run_checks(g.facts)
    fixes = []
    if fix and any(f.autofix for f in findings):
        fixes = apply_fixes(findings)
        g = gather(config=config, env=env, deep=deep)  # report the state after the fixes
        findings = run_checks(g.facts)
    return Report(findings, g.audited, list(g.facts.skipped), deep, fixes)
