"""A secret value that refuses to show itself in logs, reprs or tracebacks."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Secret:
    value: str
    source: str  # e.g. "--token", "config gateway.auth.token", "env OPENCLAW_GATEWAY_TOKEN"

    def __repr__(self) -> str:
        return f"Secret(<{len(self.value)} chars> from {self.source})"

    __str__ = __repr__

    def masked(self) -> str:
        """Length only: even two characters of a short password help a guesser."""
        return f"**** ({len(self.value)} chars)"

    @cached_property
    def _digest(self) -> bytes:
        # Hashed once: every connect compares against it.
        return hashlib.sha256(self.value.encode("utf-8")).digest()

    def matches(self, candidate: str) -> bool:
        """Constant-time: hash both sides first so the lengths leak nothing either."""
        b = hashlib.sha256(candidate.encode("utf-8", errors="surrogatepass")).digest()
        return hmac.compare_digest(self._digest, b)
