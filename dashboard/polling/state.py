"""The poller's own bookkeeping in Redis, under ``poll:``: what was planned when, lookups, locks.

This is scheduling state, not board data (that lives in ``dashboard.snapshots``).
Losing it is harmless: every run looks overdue, and the pacing and the budget
still hold. Whether a source may send (window, pause, back-off) is the source
gate's (``dashboard.polling.gate``), under ``poll:gate:``.

Keys:
- ``poll:schedule:<source>``     hash: fetch key (``run:<id>``, ``sandboxes``, ...) -> epoch planned
- ``poll:next-slot:<source>``    (string) epoch of the source's next paced slot
- ``poll:plan-at:<source>``      (string) epoch from which the tick should plan the source again
- ``poll:lookup-tried:<run_id>`` set of sources that answered 404 for a newly tracked run
- ``poll:lock:<name>``           mutual exclusion of ticks and of fetches of one thing
- ``poll:compose-queued``        debounce of board composition
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
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
    with redis_client().pipeline(transaction=False) as pipe:
        pipe.hset(f"poll:schedule:{source}", key, "0")
        pipe.delete(f"poll:plan-at:{source}")
        pipe.execute()


def next_slot_read(source: str) -> float:
    raw = cast(bytes | None, redis_client().get(f"poll:next-slot:{source}"))
    return 0.0 if raw is None else float(raw)


def next_slot_write(source: str, at: float) -> None:
    redis_client().set(f"poll:next-slot:{source}", repr(at), ex=3600)


@dataclass(frozen=True)
class SourcePlanning:
    """What the tick keeps per source between plans: next paced slot, and when to plan it again (0: now)."""

    next_slot_at: float
    plan_at: float


def planning_read(sources: Iterable[str]) -> dict[str, SourcePlanning]:
    """Every source's next slot and plan-again time, in one round trip."""
    names = list(sources)
    if not names:
        return {}
    keys = [f"poll:next-slot:{name}" for name in names] + [f"poll:plan-at:{name}" for name in names]
    raws = cast(list[bytes | None], redis_client().mget(keys))
    values = [0.0 if raw is None else float(raw) for raw in raws]
    return {
        name: SourcePlanning(next_slot_at=values[i], plan_at=values[len(names) + i])
        for i, name in enumerate(names)
    }


def schedules_read(sources: Iterable[str]) -> dict[str, dict[str, float]]:
    """Several sources' schedule records (``schedule_read``) in one round trip."""
    names = list(sources)
    if not names:
        return {}
    with redis_client().pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(f"poll:schedule:{name}")
        raws = cast(list[dict[bytes, bytes]], pipe.execute())
    return {
        name: {key.decode(): float(value) for key, value in raw.items()}
        for name, raw in zip(names, raws, strict=True)
    }


@dataclass(frozen=True)
class Planned:
    """What one plan of a source changes: fetch marks, marks to drop, next slot, plan-again time."""

    source: str
    marks: dict[str, float]
    forget: list[str]
    next_slot_at: float
    plan_at: float


def planned_write(plans: Iterable[Planned]) -> None:
    """What a tick's plans change, every source's in one round trip."""
    with redis_client().pipeline(transaction=False) as pipe:
        for plan in plans:
            schedule = f"poll:schedule:{plan.source}"
            if plan.marks:
                pipe.hset(schedule, mapping={k: repr(v) for k, v in plan.marks.items()})
            if plan.forget:
                pipe.hdel(schedule, *plan.forget)
            pipe.set(f"poll:next-slot:{plan.source}", repr(plan.next_slot_at), ex=3600)
            pipe.set(f"poll:plan-at:{plan.source}", repr(plan.plan_at), ex=3600)
        pipe.execute()


def plan_soon(source: str) -> None:
    """Have the next tick plan ``source`` (something became due: a run found, a fetch to retry)."""
    redis_client().delete(f"poll:plan-at:{source}")


# --- lookups of newly tracked runs ----------------------------------------------------------


def lookup_tried(run_id: str) -> set[str]:
    members = cast(set[bytes], redis_client().smembers(f"poll:lookup-tried:{run_id}"))
    return {member.decode() for member in members}


def lookup_tried_add(run_id: str, source: str) -> None:
    client = redis_client()
    client.sadd(f"poll:lookup-tried:{run_id}", source)
    client.expire(f"poll:lookup-tried:{run_id}", LOOKUP_TTL)


def lookups_tried(run_ids: Iterable[str]) -> dict[str, set[str]]:
    """``lookup_tried`` for several runs in one round trip."""
    ids = list(run_ids)
    if not ids:
        return {}
    with redis_client().pipeline(transaction=False) as pipe:
        for run_id in ids:
            pipe.smembers(f"poll:lookup-tried:{run_id}")
        raws = cast(list[set[bytes]], pipe.execute())
    return {run_id: {m.decode() for m in raw} for run_id, raw in zip(ids, raws, strict=True)}


def lookup_forget(run_id: str) -> None:
    redis_client().delete(f"poll:lookup-tried:{run_id}")


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
