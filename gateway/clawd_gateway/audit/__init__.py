"""`clawd-gateway audit`: facts are gathered (I/O, gather.py), then judged (pure, checks.py).

Keeping the judging pure means every rule is a unit test away from being proven, and the
I/O side can be pointed at scratch files, a real sshd_config or a fake `tailscale` in tests.
"""

from .model import Finding, ModeFix, Report

__all__ = ["Finding", "ModeFix", "Report"]
