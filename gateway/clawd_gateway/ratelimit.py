"""Failed-auth rate limiting per remote address; pure logic, the caller supplies the clock.

Loopback is limited too by default: behind an SSH tunnel or Tailscale Serve every remote
peer *is* loopback. The lockout is always finite, so a user who mistyped their token is
never shut out for good.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

MAX_TRACKED_ADDRESSES = 10_000


@dataclass
class _Entry:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class AuthRateLimiter:
    def __init__(self, max_attempts: int, window_s: float, lockout_s: float) -> None:
        self.max_attempts = max_attempts
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def retry_after(self, key: str, now: float) -> float | None:
        """Seconds until `key` may try again, or None if it may try now."""
        entry = self._entries.get(key)
        if entry is None or entry.locked_until <= now:
            return None
        return entry.locked_until - now

    def record_failure(self, key: str, now: float) -> float | None:
        """Count one failure; returns the lockout length when this failure triggers one."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            if len(self._entries) > MAX_TRACKED_ADDRESSES:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        while entry.failures and entry.failures[0] <= now - self.window_s:
            entry.failures.popleft()
        entry.failures.append(now)
        if len(entry.failures) >= self.max_attempts:
            entry.failures.clear()
            entry.locked_until = now + self.lockout_s
            return self.lockout_s
        return None

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
