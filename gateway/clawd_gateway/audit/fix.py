"""`--fix`: apply the permission changes the checks marked as safe, and nothing else.

Only modes change: no content, owner or location, so a fix can never break the config or
lose a secret, and the checks only offer one when it cannot lock the gateway out.
"""

from __future__ import annotations

import os
import stat

from .model import AppliedFix, Finding


def apply_fixes(findings: list[Finding]) -> list[AppliedFix]:
    done: list[AppliedFix] = []
    seen: set[str] = set()
    for f in findings:
        if f.autofix is None or f.autofix.path in seen:
            continue
        seen.add(f.autofix.path)
        path, mode = f.autofix.path, f.autofix.mode
        try:
            before = stat.S_IMODE(os.stat(path).st_mode)
            if before != mode:
                os.chmod(path, mode)
            done.append(AppliedFix(path, before, mode, f.id))
        except OSError as exc:
            done.append(AppliedFix(path, 0, mode, f.id, error=exc.strerror or str(exc)))
    return done
