"""Tailscale integration: Serve/Funnel setup and undo, and Serve identity-header auth.

Everything talks to the local `tailscale` CLI (or tailscaled's LocalAPI socket for whois);
`parse` holds the pure readers so each failure mode is testable from a string.
"""

from __future__ import annotations

from .identity import TailscaleIdentity, VerifiedUser
from .serve import Exposure, TailscaleExposure, TailscaleSetupError

__all__ = ["Exposure", "TailscaleExposure", "TailscaleIdentity", "TailscaleSetupError", "VerifiedUser"]
