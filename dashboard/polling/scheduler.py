"""What each source should fetch next: pure decisions over state the tasks read from Redis and the database.

Per source and per tick, ``plan_source`` picks what is due, in priority order:

1. fetches that have never run or are overdue by a whole interval (sandboxes,
   repos, account readiness), so a crowd of active runs cannot starve the
   sandbox panel forever;
2. active runs (``/runs/{id}/events?limit=200``): a terminal run still owed its
   final fetch first, then streaming before pending, least recently fetched
   first, each at most every ``run_refresh`` seconds. When demand exceeds the
   budget the runs share it round-robin, so each run's staleness grows evenly
   (about ``k * window / budget`` for ``k`` active runs);
3. ``/sandboxes``, ``/repos`` and account readiness at their own intervals.

Requests are paced, not burst: the budget is spread evenly over the window
(one slot every ``window / budget`` seconds), and each planned fetch carries
the time of its slot. Newly tracked runs are not paced here: ``plan_lookups``
says which ones to look up, and the lookup asks each source's budget in turn.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

FetchKind = Literal["run_events", "sandboxes", "repos", "account"]

TERMINAL_STATUSES = frozenset({"success", "failed", "cancelled"})

# What one fetch costs in upstream requests: account readiness is /api/auth/user + /models.
COST: dict[FetchKind, int] = {"run_events": 1, "sandboxes": 1, "repos": 1, "account": 2}


@dataclass(frozen=True)
class Policy:
    """The knobs, from settings: budget per window, and how often each thing is worth refreshing."""

    budget: int
    window: float
    run_refresh: float
    sandboxes_refresh: float
    repos_refresh: float
    account_refresh: float
    tick: float

    @property
    def spacing(self) -> float:
        """Seconds between two requests on one source when the budget is spent evenly."""
        return self.window / self.budget


@dataclass(frozen=True)
class RunState:
    """A run owned by a source, as the scheduler sees it.

    ``status`` is the last status seen upstream ("" before the first fetch);
    ``last_planned_at`` is when a fetch of it was last planned (0: never).
    """

    run_id: str
    status: str
    last_planned_at: float = 0.0
    final_fetch_done: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def wants_polling(self) -> bool:
        """Active (or unknown) runs, and terminal runs still owed their final fetch."""
        return not self.terminal or not self.final_fetch_done


@dataclass(frozen=True)
class SourceState:
    """Everything ``plan_source`` needs about one source at time ``now``."""

    name: str
    now: float
    runs: Sequence[RunState] = ()
    sandboxes_at: float = 0.0
    repos_at: float = 0.0
    account_at: float = 0.0
    blocked_until: float = 0.0
    next_slot_at: float = 0.0


@dataclass(frozen=True)
class Fetch:
    """One planned fetch: what, on which source, and the epoch time of its slot."""

    kind: FetchKind
    source: str
    at: float
    run_id: str | None = None

    @property
    def key(self) -> str:
        """The name of this fetch in the per-source schedule record."""
        return f"run:{self.run_id}" if self.kind == "run_events" else self.kind


@dataclass(frozen=True)
class Plan:
    """What to enqueue now, where the next paced slot starts, and what the board can promise."""

    fetches: list[Fetch] = field(default_factory=list)
    next_slot_at: float = 0.0
    active_runs: int = 0
    effective_interval: float = 0.0


def effective_run_interval(active_runs: int, policy: Policy) -> float:
    """How often each active run can be refreshed on one source, in seconds.

    The budget left after the periodic list fetches is shared by the active
    runs; no run is refreshed more often than ``run_refresh``.
    """
    overhead = (
        policy.window / policy.sandboxes_refresh
        + policy.window / policy.repos_refresh
        + COST["account"] * policy.window / policy.account_refresh
    )
    for_runs = max(policy.budget - overhead, 1.0)
    return max(policy.run_refresh, active_runs * policy.window / for_runs)


def _run_order(run: RunState, policy: Policy) -> float:
    # Round-robin: least recently planned first. A terminal run's final fetch
    # goes a little ahead, a pending run a little behind a streaming one; the
    # offsets shift a run's turn, never how often it comes round.
    if run.terminal:
        offset = -policy.run_refresh
    elif run.status == "pending" or not run.status:
        offset = policy.run_refresh / 2
    else:
        offset = 0.0
    if run.last_planned_at <= 0:
        return -math.inf
    return run.last_planned_at + offset


def due_fetches(state: SourceState, policy: Policy) -> list[Fetch]:
    """Everything due on ``state.name`` at ``state.now``, most important first (times left at 0)."""
    now = state.now
    periodic: list[tuple[FetchKind, float, float]] = [
        ("account", state.account_at, policy.account_refresh),
        ("sandboxes", state.sandboxes_at, policy.sandboxes_refresh),
        ("repos", state.repos_at, policy.repos_refresh),
    ]
    urgent = [
        Fetch(kind, state.name, 0.0) for kind, at, every in periodic if at <= 0 or now - at >= 2 * every
    ]
    routine = [
        Fetch(kind, state.name, 0.0)
        for kind, at, every in periodic
        if at > 0 and every <= now - at < 2 * every
    ]
    routine.sort(key=lambda fetch: ("sandboxes", "repos", "account").index(fetch.kind))
    runs = sorted(
        # Due at some point of the coming tick; plan_source gives each a slot
        # no earlier than its refresh interval allows.
        (
            run
            for run in state.runs
            if run.wants_polling and now + policy.tick - run.last_planned_at >= policy.run_refresh
        ),
        key=lambda run: _run_order(run, policy),
    )
    run_fetches = [Fetch("run_events", state.name, 0.0, run.run_id) for run in runs]
    return urgent + run_fetches + routine


def plan_source(state: SourceState, policy: Policy) -> Plan:
    """Plan the fetches for one source for the coming tick, each at its own paced slot.

    Slots are ``policy.spacing`` apart, start no earlier than ``now`` (a quiet
    spell is not saved up for a burst) and no earlier than the end of a pause
    or back-off, and cover the tick ``[now, now + tick)``.
    """
    now = state.now
    active = sum(1 for run in state.runs if run.wants_polling)
    interval = effective_run_interval(active, policy)
    slot = max(state.next_slot_at, now, state.blocked_until)
    horizon = now + policy.tick
    planned: list[Fetch] = []
    last_planned = {run.run_id: run.last_planned_at for run in state.runs}
    for fetch in due_fetches(state, policy):
        if slot >= horizon:
            break
        if fetch.run_id is not None and slot - last_planned.get(fetch.run_id, 0.0) < policy.run_refresh:
            continue
        planned.append(Fetch(fetch.kind, fetch.source, slot, fetch.run_id))
        # A fetch of several requests takes as many slots, so the pace holds.
        slot += COST[fetch.kind] * policy.spacing
    next_slot = slot if planned else max(state.next_slot_at, state.blocked_until)
    return Plan(fetches=planned, next_slot_at=next_slot, active_runs=active, effective_interval=interval)


@dataclass(frozen=True)
class PendingLookup:
    """A newly tracked run no source has claimed yet; ``last_attempt_at`` is 0 before the first try."""

    run_id: str
    last_attempt_at: float = 0.0


def plan_lookups(pending: Iterable[PendingLookup], now: float, retry_after: float) -> list[str]:
    """Run ids whose lookup should be (re)started now: never tried, or last tried ``retry_after`` ago."""
    return [
        lookup.run_id
        for lookup in sorted(pending, key=lambda lookup: lookup.last_attempt_at)
        if lookup.last_attempt_at <= 0 or now - lookup.last_attempt_at >= retry_after
    ]
