"""Findings and the report: what the audit says, independent of how it found out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "warn", "info"]
SEVERITY_ORDER: dict[str, int] = {"critical": 0, "warn": 1, "info": 2}
JSON_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ModeFix:
    """A permission change `--fix` may make: the only kind of fix applied automatically."""

    path: str
    mode: int

    def command(self) -> str:
        return f"chmod {self.mode:o} {_shell_quote(self.path)}"


@dataclass(frozen=True)
class Finding:
    id: str  # stable dotted id, e.g. gateway.bind.exposed
    severity: Severity
    title: str
    evidence: str  # what was observed; secrets appear only as their length
    fix: str  # the exact command or config change
    autofix: ModeFix | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity,
            "title": self.title,
            "evidence": self.evidence,
            "fix": self.fix,
            "autoFixable": self.autofix is not None,
        }


@dataclass(frozen=True)
class AppliedFix:
    path: str
    before: int
    after: int
    finding: str
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "finding": self.finding,
            "from": f"{self.before:04o}",
            "to": f"{self.after:04o}",
            "applied": self.error is None,
            **({"error": self.error} if self.error else {}),
        }


@dataclass
class Report:
    findings: list[Finding]
    audited: dict[str, Any]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    deep: bool = False
    fixes: list[AppliedFix] = field(default_factory=list)

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def exit_code(self) -> int:
        return 1 if self.count("critical") else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "schemaVersion": JSON_SCHEMA_VERSION,
            "deep": self.deep,
            "summary": {s: self.count(s) for s in SEVERITY_ORDER},
            "findings": [f.to_json() for f in self.findings],
            "audited": self.audited,
            "skipped": [{"check": c, "reason": r} for c, r in self.skipped],
            "fixes": [f.to_json() for f in self.fixes],
            "exitCode": self.exit_code,
        }


def sort_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.id))


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def masked(length: int | None) -> str:
    """Secrets are shown as their length only: even two characters help a guesser."""
    return "**** (unreadable)" if length is None else f"**** ({length} chars)"
