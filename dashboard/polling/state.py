"""The poller's own bookkeeping in Redis, under ``poll:``: what was planned when, lookups, locks.

This is scheduling state, not board data (that lives in ``dashboard.snapshots``).
Losing it is harmless: every run looks overdue, and the pacing and the budget
still hold. Whether a source may send (window, pause, back-off) is the source
gate's (``dashboard.polling.gate``), under ``poll:gate:``.

Keys:
- ``poll:schedule:<source>``     hash: fetch key (``run:<id>``, ``sandboxes``, ...) -> epoch planned
- ``poll:next-slot:<source>``    (string) epoch of the source's next paced slot
- ``poll:lookup-tried:<run_id>`` set of sources that answered 404 for a newly tracked run
- ``poll:lookup-at:<run_id>``    (string) epoch of the last lookup attempt
- ``poll:lock:<name>``           mutual exclusion of ticks and of fetches of one thing
- ``poll:compose-queued``        debounce of board composition
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import cast

from redis.exceptions import LockError

from dashboard.snapshots import redis_client

LOOKUP_TTL = 7 * 24 * 3600


# --- the per-source schedule ----------------------------------------------------------


def schedule_read(source: str) -> dict[str, float]:
    """When each fetch on ``source`` was last planned, by fetch key."""
    raw = cast(dict[bytes, bytes], redis_client().hgetall(f"poll:schedule:{source}"))
    return {key.decode(): float(value) for key, value in raw.items()}


def schedule_mark(source: str, marks: dict[str, float]) -> None:
    if marks:
        redis_client().hset(f"poll:schedule:{source}", mapping={k: repr(v) for k, v in marks.items()})


def schedule_forget(source: str, keys: Iterable[str]) -> None:
    keys = list(keys)
    if keys:
        redis_client().hdel(f"poll:schedule:{source}", *keys)


def schedule_retry_soon(source: str, key: str) -> None:
    """A planned fetch did not happen (no budget, or busy): put it first in line again."""
    redis_client().hset(f"poll:schedule:{source}", key, "0")


def next_slot_read(source: str) -> float:
    raw = cast(bytes | None, redis_client().get(f"poll:next-slot:{source}"))
    return 0.0 if raw is None else float(raw)


def next_slot_write(source: str, at: float) -> None:
    redis_client().set(f"poll:next-slot:{source}", repr(at), ex=3600)


# --- lookups of newly tracked runs ----------------------------------------------------------


def lookup_tried(run_id: str) -> set[str]:
    members = cast(set[bytes], redis_client().smembers(f"poll:lookup-tried:{run_id}"))
    return {member.decode() for member in members}


def lookup_tried_add(run_id: str, source: str) -> None:
    client = redis_client()
    client.sadd(f"poll:lookup-tried:{run_id}", source)
    client.expire(f"poll:lookup-tried:{run_id}", LOOKUP_TTL)


def lookup_forget(run_id: str) -> None:
    redis_client().delete(f"poll:lookup-tried:{run_id}", f"poll:lookup-at:{run_id}")


def lookup_attempted(run_id: str, at: float) -> None:
    redis_client().set(f"poll:lookup-at:{run_id}", repr(at), ex=LOOKUP_TTL)


def lookup_attempts(run_ids: Iterable[str]) -> dict[str, float]:
    ids = list(run_ids)
    if not ids:
        return {}
    raws = cast(list[bytes | None], redis_client().mget([f"poll:lookup-at:{i}" for i in ids]))
    return {i: float(raw) if raw is not None else 0.0 for i, raw in zip(ids, raws, strict=True)}


# --- locks and debounce ------------------------------------------------------------------


@contextmanager
def exclusive(name: str, ttl: float) -> Iterator[bool]:
    """Hold ``poll:lock:<name>`` for at most ``ttl`` seconds; yields False when someone else holds it.

    The expiry frees the lock if its holder dies; the token check on release
    keeps a slow holder from freeing a lock someone else took after expiry.
    """
    lock = redis_client().lock(f"poll:lock:{name}", timeout=ttl, blocking=False)
    acquired = bool(lock.acquire(blocking=False))
    try:
        yield acquired
    finally:
        if acquired:
            with suppress(LockError):
                lock.release()


def compose_claim(debounce: float) -> bool:
    """True for the first caller in each ``debounce`` window: that caller schedules the composition."""
    return bool(redis_client().set("poll:compose-queued", str(time.time()), nx=True, px=int(debounce * 1000)))
