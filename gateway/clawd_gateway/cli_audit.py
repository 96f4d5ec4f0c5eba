"""`clawd-gateway audit [--json] [--deep] [--fix] [--config PATH]`: argument parsing and output.

Exit codes: 0 no critical finding · 1 at least one critical finding (after --fix) ·
2 usage · 78 the --config file given does not exist.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_audit_parser(sub: Any) -> None:
    p = sub.add_parser(
        "audit",
        help="security audit: bind, auth, secrets, file permissions, services, sshd, Tailscale exposure",
        description="Check this host's gateway setup against the security checklist. Exits 1 when a "
        "critical finding remains.",
    )
    p.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $OPENCLAW_CONFIG_PATH, ~/.openclaw/openclaw.json, "
        "~/.clawdbot/clawdbot.json)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument(
        "--deep",
        action="store_true",
        help="also ask Tailscale what Serve/Funnel expose and probe the running gateway",
    )
    p.add_argument(
        "--fix",
        action="store_true",
        help="apply the safe fixes only (chmod 600 config/secret files, 700 state dir) and report each",
    )


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit.report import render_text
    from .audit.run import run_audit

    report = run_audit(config=args.config, deep=args.deep, fix=args.fix)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        sys.stdout.write(render_text(report))
    return report.exit_code
