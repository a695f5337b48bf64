"""The per-PAT sliding-window log of ``lib/auth/api-key.ts`` (contract section 3)."""

from __future__ import annotations

import math
from collections import deque


class SlidingWindowLimiter:
    """At most ``limit`` accepted requests per key in the trailing ``window_seconds``.

    Rejected requests are not recorded, so a client that keeps retrying during a
    429 does not extend its own penalty.
    """

    def __init__(self, window_seconds: float = 60.0, limit: int = 60) -> None:
        self.window_seconds = window_seconds
        self.limit = limit
        self._logs: dict[str, deque[float]] = {}

    def try_acquire(self, key: str, now: float) -> bool:
        """Record a request for ``key`` at ``now`` if the window has room; say whether it had."""
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = deque()
        cutoff = now - self.window_seconds
        while log and log[0] <= cutoff:
            log.popleft()
        if len(log) >= self.limit:
            return False
        log.append(now)
        return True

    def forget(self, key: str) -> None:
        self._logs.pop(key, None)

    def clear(self) -> None:
        self._logs.clear()

    @property
    def retry_after(self) -> int:
        """What Mogplex puts in ``Retry-After``: the whole window, in whole seconds."""
        return max(1, math.ceil(self.window_seconds))
