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
the time of its slot.

Lookups of newly tracked runs (``/runs/{id}/events`` on a source that may own
the run) are paced the same way and take a bounded share of each source's
budget: while lookups wait, every ``1 / lookup_share``-th slot is theirs, and
they also take any slot nothing else wants. Known runs therefore keep their
refresh (at most ``1 - lookup_share`` of it is lost) however many runs are
registered at once, and lookups never starve. ``lookup_sources`` says which
sources a run is looked up on: the source its registration named, else the
sources whose ``/repos`` hold its repo, and only when none of those owns it,
every other source.

Automations (``/automations``, then per automation ``/automations/{id}`` and
``/automations/{id}/runs``) take a bounded share of each budget: one slot in
every ``automation_every`` may go to an automation fetch that is due (it takes
two), and they also take any slot nothing else wants. A whole round (the list
and every automation) is due every ``automations_interval``: the configured
refresh, or longer when the round does not fit in the share. Active runs
therefore keep the rest of the budget however many automations there are.

Planning costs what is due: a plan covers ``plan_ahead`` seconds of slots, and
``Plan.replan_at`` says when the source next needs planning (its next free slot,
or the moment its next fetch falls due), so a tick plans only the sources due
for it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

FetchKind = Literal["run_events", "sandboxes", "repos", "account", "lookup", "automations", "automation"]

TERMINAL_STATUSES = frozenset({"success", "failed", "cancelled"})

# What one fetch costs in upstream requests: account readiness is /api/auth/user + /models.
# An automation is its /automations/{id} (runSummary) and its /automations/{id}/runs.
COST: dict[FetchKind, int] = {
    "run_events": 1,
    "sandboxes": 1,
    "repos": 1,
    "account": 2,
    "lookup": 1,
    "automations": 1,
    "automation": 2,
}

# A run nothing points to a source for is asked on this many sources at a time.
FALLBACK_AT_ONCE = 2

# A source is planned again at least this often, so its health (budget used,
# active runs) stays current even when nothing falls due.
MAX_PLAN_GAP_SECONDS = 5.0


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
    lookup_share: float = 0.2
    automations_refresh: float = 300.0
    automations_share: float = 0.05

    @property
    def spacing(self) -> float:
        """Seconds between two requests on one source when the budget is spent evenly."""
        return self.window / self.budget

    @property
    def plan_ahead(self) -> float:
        """How far ahead one plan reaches: a tick, or four slots when slots are further apart."""
        return max(self.tick, 4 * self.spacing)

    @property
    def lookup_every(self) -> int:
        """Every how many slots one is kept for lookups while any wait (0: none kept)."""
        return max(1, round(1 / self.lookup_share)) if self.lookup_share > 0 else 0

    @property
    def automation_every(self) -> int:
        """Every how many slots one may go to an automation fetch (which takes ``COST["automation"]``)."""
        if self.automations_share <= 0:
            return 0
        return max(COST["automation"], round(COST["automation"] / self.automations_share))


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
    lookups: Sequence[str] = ()
    # When the automation list, and each listed automation (by id), was last planned (0: never).
    automations_at: float = 0.0
    automations: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Fetch:
    """One planned fetch: what, on which source, and the epoch time of its slot."""

    kind: FetchKind
    source: str
    at: float
    run_id: str | None = None
    automation_id: str | None = None

    @property
    def key(self) -> str:
        """The name of this fetch in the per-source schedule record."""
        if self.kind == "run_events":
            return f"run:{self.run_id}"
        if self.kind == "lookup":
            return f"lookup:{self.run_id}"
        if self.kind == "automation":
            return f"automation:{self.automation_id}"
        return self.kind


@dataclass(frozen=True)
class Plan:
    """What to enqueue now, where the next paced slot starts, and what the board can promise."""

    fetches: list[Fetch] = field(default_factory=list)
    next_slot_at: float = 0.0
    active_runs: int = 0
    effective_interval: float = 0.0
    replan_at: float = 0.0
    lookups_waiting: int = 0
    automations_interval: float = 0.0


def automations_interval(automations: int, policy: Policy) -> float:
    """How often a whole round of a source's automations (the list, then each of ``automations``) comes round.

    The configured refresh, or longer when a round does not fit in the share of
    the budget automations may take.
    """
    if policy.automations_share <= 0:
        return math.inf
    cost = COST["automations"] + automations * COST["automation"]
    return max(policy.automations_refresh, cost * policy.window / (policy.automations_share * policy.budget))


def effective_run_interval(
    active_runs: int, policy: Policy, *, lookups_waiting: bool = False, automations: int = 0
) -> float:
    """How often each active run can be refreshed on one source, in seconds.

    The budget left after the periodic list fetches and the automations (at
    most their share) is shared by the active runs (less the lookups' share
    while lookups wait); no run is refreshed more often than ``run_refresh``.
    """
    overhead = (
        policy.window / policy.sandboxes_refresh
        + policy.window / policy.repos_refresh
        + COST["account"] * policy.window / policy.account_refresh
        + (COST["automations"] + automations * COST["automation"])
        * policy.window
        / automations_interval(automations, policy)
    )
    for_runs = max(policy.budget - overhead, 1.0)
    if lookups_waiting and policy.lookup_every:
        for_runs *= 1 - 1 / policy.lookup_every
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


def due_automations(state: SourceState, policy: Policy) -> list[Fetch]:
    """The automation fetches due on ``state.name``: the list first, then the least recently planned."""
    every = automations_interval(len(state.automations), policy)
    due = []
    if state.automations_at <= 0 or state.now - state.automations_at >= every:
        due.append(Fetch("automations", state.name, 0.0))
    waiting = sorted(
        (at, automation_id)
        for automation_id, at in state.automations.items()
        if at <= 0 or state.now - at >= every
    )
    due += [Fetch("automation", state.name, 0.0, automation_id=automation_id) for _, automation_id in waiting]
    return due


def _due_at(state: SourceState, policy: Policy) -> float:
    """When the next fetch on ``state.name`` falls due (ignoring pauses), or infinity when none will."""
    times = [
        at + every if at > 0 else state.now
        for at, every in (
            (state.account_at, policy.account_refresh),
            (state.sandboxes_at, policy.sandboxes_refresh),
            (state.repos_at, policy.repos_refresh),
        )
    ]
    times += [
        run.last_planned_at + policy.run_refresh if run.last_planned_at > 0 else state.now
        for run in state.runs
        if run.wants_polling
    ]
    if state.lookups:
        times.append(state.now)
    every = automations_interval(len(state.automations), policy)
    times += [
        at + every if at > 0 else state.now for at in (state.automations_at, *state.automations.values())
    ]
    return min(times, default=math.inf)


def _falls_due(state: SourceState, policy: Policy, slot: float) -> bool:
    """Whether a run falls due before the slot after ``slot``: then that slot is kept free for it."""
    return any(
        run.wants_polling and slot < run.last_planned_at + policy.run_refresh <= slot + policy.spacing
        for run in state.runs
    )


def plan_source(state: SourceState, policy: Policy) -> Plan:
    """Plan the fetches for one source for the coming ``plan_ahead`` seconds, each at its own paced slot.

    Slots are ``policy.spacing`` apart, start no earlier than ``now`` (a quiet
    spell is not saved up for a burst) and no earlier than the end of a pause
    or back-off. While lookups wait, a slot whose number (its time over the
    spacing) is a multiple of ``lookup_every`` goes to the next lookup; one
    whose number is 1 more than a multiple of ``automation_every`` goes to the
    next automation fetch due; every other slot goes to what ``due_fetches``
    puts first, and to a lookup or an automation only when nothing else is due
    (and only in the coming tick).
    """
    now = state.now
    active = sum(1 for run in state.runs if run.wants_polling)
    interval = effective_run_interval(
        active, policy, lookups_waiting=bool(state.lookups), automations=len(state.automations)
    )
    slot = max(state.next_slot_at, now, state.blocked_until)
    # (less a hair, so that float sums of the spacing do not add a slot at the edge)
    horizon = now + policy.plan_ahead - 1e-6
    planned: list[Fetch] = []
    last_planned = {run.run_id: run.last_planned_at for run in state.runs}
    due = due_fetches(state, policy)
    lookups = list(state.lookups)
    automations = due_automations(state, policy)
    every = policy.lookup_every
    automation_every = policy.automation_every
    while slot < horizon and (due or lookups or automations):
        fetch: Fetch | None = None
        if not due and slot >= now + policy.tick:
            # Only lookups and automations are left: they are planned a tick at a time, so
            # that no slot ahead is taken from a run that falls due before the next plan.
            break
        number = int(slot / policy.spacing)
        if lookups and every and number % every == 0:
            fetch = Fetch("lookup", state.name, slot, lookups.pop(0))
        elif automations and automation_every and number % automation_every == 1:
            fetch = _at(automations.pop(0), slot)
        while fetch is None and due:
            candidate = due.pop(0)
            if (
                candidate.run_id is not None
                and slot - last_planned.get(candidate.run_id, 0.0) < policy.run_refresh
            ):
                continue
            fetch = Fetch(candidate.kind, candidate.source, slot, candidate.run_id)
        if fetch is None and lookups and slot < now + policy.tick and not _falls_due(state, policy, slot):
            # A slot nothing wants goes to a lookup, but only this tick's: later
            # slots stay free for the runs that fall due before the next plan.
            fetch = Fetch("lookup", state.name, slot, lookups.pop(0))
        if fetch is None and automations and slot < now + policy.tick and not _falls_due(state, policy, slot):
            fetch = _at(automations.pop(0), slot)
        if fetch is None:
            break
        planned.append(fetch)
        # A fetch of several requests takes as many slots, so the pace holds.
        slot += COST[fetch.kind] * policy.spacing
    next_slot = slot if planned else max(state.next_slot_at, state.blocked_until)
    # Planned again when its next free slot comes round, or when something falls
    # due (a run's refresh, a list's interval), whichever is later; never less often
    # than MAX_PLAN_GAP_SECONDS, so its health stays current.
    due_at = max(_due_at(state, policy), state.blocked_until)
    replan_at = min(max(next_slot, due_at), now + MAX_PLAN_GAP_SECONDS)
    return Plan(
        fetches=planned,
        next_slot_at=next_slot,
        active_runs=active,
        effective_interval=interval,
        replan_at=replan_at,
        lookups_waiting=len(state.lookups),
        automations_interval=automations_interval(len(state.automations), policy),
    )


def _at(fetch: Fetch, slot: float) -> Fetch:
    return Fetch(fetch.kind, fetch.source, slot, fetch.run_id, fetch.automation_id)


def lookup_sources(
    sources: Sequence[str],
    *,
    tried: Iterable[str],
    named: str | None = None,
    repo_owners: Iterable[str] = (),
    repos_unknown: Iterable[str] = (),
    wait_for_repos: bool = False,
    run_id: str | None = None,
) -> list[str]:
    """The sources a newly tracked run should be looked up on next (each once), in configured order.

    ``tried``: sources that answered 404 already. ``named``: the source its
    registration named. ``repo_owners``: sources whose ``/repos`` hold its repo;
    ``repos_unknown``: sources whose repo list is not known yet. The named source
    goes alone; else the repo's owners; a run with a repo no known list holds
    waits (``[]``) while some repo list is still unknown and ``wait_for_repos``;
    only then are the untried sources asked, ``FALLBACK_AT_ONCE`` at a time from
    a place that depends on ``run_id`` (all of them when it is not given).
    Empty when there is nothing to ask.
    """
    done = set(tried)
    untried = [source for source in sources if source not in done]
    if named is not None and named in untried:
        return [named]
    owners = set(repo_owners)
    owning = [source for source in untried if source in owners]
    if owning:
        return owning
    unknown = set(repos_unknown)
    if wait_for_repos and any(source in unknown for source in untried):
        return []
    if run_id is None or len(untried) <= FALLBACK_AT_ONCE:
        return untried
    # Nothing says who owns it: ask a few sources at a time, starting at a place
    # that depends on the run, so the cost of many such runs is spread over every
    # token instead of falling on the first ones configured.
    start = zlib.crc32(run_id.encode()) % len(untried)
    return (untried[start:] + untried[:start])[:FALLBACK_AT_ONCE]
