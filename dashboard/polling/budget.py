"""Each token's request budget, enforced in Redis across every worker and process.

Upstream allows 60 accepted requests per token per rolling 60 s (contract
section 3); the board spends at most ``MOGPLEX_BUDGET`` of them per rolling
``MOGPLEX_BUDGET_WINDOW_SECONDS`` so the same person's CLI keeps some headroom.
The limiter is a moving-window log in Redis (the ``limits`` library), so any
number of workers share one count per source. ``budget_acquire`` is called
immediately before every upstream request: when it says no, nothing is sent.

After a 429 the source is paused until ``Retry-After`` has passed; the pause
is a key of its own (``poll:paused:<source>``) that expires with it.
"""

from __future__ import annotations

import time
from functools import cache
from typing import cast

from django.conf import settings
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from dashboard.snapshots import redis_client

LIMITS_PREFIX = "poll:budget"
NAMESPACE = "mogplex"


@cache
def _limiter_for(url: str) -> MovingWindowRateLimiter:
    # The same timeouts as the snapshot store's client: a Redis that stops answering
    # fails the fetch (it is planned again next tick) instead of hanging a worker thread.
    storage = RedisStorage(url, key_prefix=LIMITS_PREFIX, socket_connect_timeout=2, socket_timeout=5)
    return MovingWindowRateLimiter(storage)


def _limiter() -> MovingWindowRateLimiter:
    return _limiter_for(settings.REDIS_URL)


# Upstream counts a request when it arrives, we count it when we decide to
# send it; the time in between varies. Counting over a window a second longer
# than upstream's keeps the budget true at upstream's end too.
TRANSIT_MARGIN_SECONDS = 1


def budget_window_seconds() -> int:
    """The window the board counts its budget over: upstream's window plus a transit margin."""
    return int(settings.MOGPLEX_BUDGET_WINDOW_SECONDS) + TRANSIT_MARGIN_SECONDS


def budget_item() -> RateLimitItem:
    """The budget as a ``limits`` item: ``MOGPLEX_BUDGET`` per ``budget_window_seconds()``."""
    return cast(RateLimitItem, RateLimitItemPerSecond(settings.MOGPLEX_BUDGET, budget_window_seconds()))


def _paused_key(source: str) -> str:
    return f"poll:paused:{source}"


def budget_paused_until(source: str) -> float | None:
    """Epoch seconds until which ``source`` must send nothing (after a 429), or None."""
    raw = cast(bytes | None, redis_client().get(_paused_key(source)))
    if raw is None:
        return None
    until = float(raw)
    return until if until > time.time() else None


def budget_pause(source: str, retry_after: float) -> float:
    """Send nothing on ``source`` for ``retry_after`` seconds; returns the paused-until time.

    A later, longer pause wins over an earlier, shorter one; a shorter one never
    shortens a pause already in force.
    """
    until = time.time() + max(retry_after, 0.0)
    current = budget_paused_until(source)
    if current is not None and current >= until:
        return current
    # The key outlives the pause by a second so that a reader never sees it
    # vanish a moment before the pause is really over.
    redis_client().set(_paused_key(source), repr(until), px=int(max(retry_after, 0.0) * 1000) + 1000)
    return until


def budget_acquire(source: str) -> bool:
    """Take one request from ``source``'s budget; False means: send nothing now."""
    if budget_paused_until(source) is not None:
        return False
    return bool(_limiter().hit(budget_item(), NAMESPACE, source))


def budget_used(source: str) -> int:
    """Requests taken from ``source``'s budget in the current rolling window."""
    stats = _limiter().get_window_stats(budget_item(), NAMESPACE, source)
    return int(settings.MOGPLEX_BUDGET - stats.remaining)


def budget_reset(source: str) -> None:
    """Forget ``source``'s window and pause (for operators and tests)."""
    _limiter().clear(budget_item(), NAMESPACE, source)
    redis_client().delete(_paused_key(source))
