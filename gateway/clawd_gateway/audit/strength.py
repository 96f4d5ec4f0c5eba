"""A conservative strength estimate for shared secrets (pure).

Not a password cracker: it catches what users actually paste (short words, repeated
characters, documentation examples), and stays generous to generated tokens.
"""

from __future__ import annotations

import math
import string
from collections import Counter

MIN_LENGTH = 24  # OpenClaw's gateway.token_too_short threshold
MIN_BITS = 64.0

# Examples from the OpenClaw/Clawdbot docs and the seed tutorials, and the usual suspects.
PLACEHOLDERS = frozenset(
    {
        "change-me-to-a-long-random-token",
        "change-me-to-a-strong-password",
        "your-secure-password",
        "replace-me",
        "changeme",
        "change-me",
        "password",
        "secret",
        "token",
        "admin",
        "123456",
        "12345678",
        "openclaw",
        "clawdbot",
    }
)


def is_placeholder(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDERS


def estimate_bits(value: str) -> float:
    """min(character-pool estimate, observed per-character entropy), less for repeats.

    The pool estimate alone rates `aaaaaaaaaaaaaaaaaaaaaaaa` at 113 bits; the observed
    Shannon entropy brings it to ~0. A hex token from secrets.token_hex(24) scores ~190.
    """
    if not value:
        return 0.0
    pool = 0
    if any(c in string.ascii_lowercase for c in value):
        pool += 26
    if any(c in string.ascii_uppercase for c in value):
        pool += 26
    if any(c in string.digits for c in value):
        pool += 10
    if any(c not in string.ascii_letters + string.digits for c in value):
        pool += 33
    if set(value.lower()) <= set("0123456789abcdef") and len(value) >= 16:
        pool = min(pool, 16)
    pool_bits = len(value) * math.log2(max(pool, 2))
    counts = Counter(value)
    shannon = -sum((n / len(value)) * math.log2(n / len(value)) for n in counts.values())
    observed = len(value) * shannon
    for k in range(1, len(value) // 2 + 1):  # "abcabcabc": only one period is information
        if len(value) % k == 0 and value == value[:k] * (len(value) // k):
            observed = min(observed, k * math.log2(max(pool, 2)))
            break
    return max(0.0, round(min(pool_bits, observed), 1))


def weakness(length: int | None, bits: float | None, placeholder: bool) -> str | None:
    """Why a secret is weak, or None."""
    if placeholder:
        return "a documentation example / well-known value"
    if length is None or bits is None:
        return None
    reasons = []
    if length < MIN_LENGTH:
        reasons.append(f"{length} chars (minimum {MIN_LENGTH})")
    if bits < MIN_BITS:
        reasons.append(f"about {bits:.0f} bits of entropy (minimum {MIN_BITS:.0f})")
    return ", ".join(reasons) or None
