"""The poller's Celery tasks: thin wrappers that own locking, pacing and what to do when a fetch fails.

Tasks carry source names and run ids, never tokens. Each upstream request goes
through ``_request``, which reads plan -> admit -> call -> settle: the source
gate (``dashboard.polling.gate``) admits it or refuses it (nothing is sent),
the client sends it, one line is logged (source, endpoint, outcome, duration),
and the gate settles the outcome (pause, back-off, probe, the source's health,
the counters). The task then records what came back, or:

- refused: the fetch goes first in line at the next tick;
- 404 on a run: the other sources are tried, then the run is marked not_found.

A failing source only ever delays itself; every other source keeps its own pace.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings

from dashboard import snapshots
from dashboard.celery import app
from dashboard.history import summaries
from dashboard.models import TrackedRun
from dashboard.mogplex.client import MogplexClient
from dashboard.mogplex.errors import InvalidId, MogplexError, NotFound
from dashboard.mogplex.models import (
    UNREADABLE,
    AccountUser,
    Automation,
    AutomationDetail,
    AutomationPage,
)
from dashboard.polling import broker, gate, state
from dashboard.polling.compose import board_build, board_publish
from dashboard.polling.gate import SOURCE_MESSAGES, Refused
from dashboard.polling.records import (
    EVENTS_LIMIT,
    JOB_RUNS_LIMIT,
    account_record_update,
    automation_record_update,
    automation_runs_record_update,
    automations_record_update,
    repos_record_update,
    run_record_error,
    run_record_not_found,
    run_record_update,
    sandboxes_record_update,
)
from dashboard.polling.scheduler import (
    FALLBACK_AT_ONCE,
    Fetch,
    Plan,
    Policy,
    RunState,
    SourceState,
    lookup_sources,
    plan_source,
)
from dashboard.polling.sources import UnknownSource, source_client, source_names

if TYPE_CHECKING:
    from celery import Task

__all__ = ["SOURCE_MESSAGES", "Refused"]

logger = logging.getLogger("dashboard.polling")
_clients = threading.local()

ACCOUNT_REFRESH_SECONDS = 30 * 60
# A lookup that was planned but neither found the run nor missed it (an error,
# a worker lost) is planned again after this long.
LOOKUP_RETRY_SECONDS = 30.0
# A run whose repo no known /repos list holds waits this long for the lists
# still unknown (a source just configured) before every source is asked.
LOOKUP_REPOS_WAIT_SECONDS = 60.0
COMPOSE_DEBOUNCE_SECONDS = 0.25
FETCH_LOCK_SECONDS = 60.0


def policy() -> Policy:
    """The scheduling policy from settings."""
    return Policy(
        budget=settings.MOGPLEX_BUDGET,
        window=float(gate.window_seconds()),
        run_refresh=float(settings.BOARD_RUN_REFRESH_SECONDS),
        sandboxes_refresh=float(settings.BOARD_SANDBOXES_REFRESH_SECONDS),
        repos_refresh=float(settings.BOARD_REPOS_REFRESH_SECONDS),
        account_refresh=float(ACCOUNT_REFRESH_SECONDS),
        tick=float(settings.BOARD_POLL_TICK_SECONDS),
        lookup_share=settings.BOARD_LOOKUP_SHARE_PERCENT / 100,
        automations_refresh=float(settings.BOARD_AUTOMATIONS_SECONDS),
        automations_share=settings.BOARD_AUTOMATIONS_SHARE_PERCENT / 100,
    )


# --- one request: admit, call, settle -------------------------------------------------------


def source_blocked_until(source: str) -> float:
    """Epoch until which ``source`` sends nothing (pause, hold, back-off), or 0."""
    return gate.blocked_until(source)


def _client(source: str) -> MogplexClient:
    # One client per source per worker thread: building one costs more than a
    # request to a nearby server, and its connection pool is worth keeping.
    clients: dict[str, MogplexClient] = _clients.__dict__.setdefault("by_source", {})
    client = clients.get(source)
    if client is None:
        client = clients[source] = source_client(source)
    return client


def _request[T](source: str, endpoint: str, call: Callable[[MogplexClient], T]) -> T:
    """Send one request on ``source`` if its gate admits it; raise ``Refused`` or a ``MogplexError``."""
    client = _client(source)
    # Asked last thing before sending, so that a pause another worker set
    # after a 429 a moment ago is seen (the gate decides atomically).
    admission = gate.admit(source, endpoint)
    if not admission.admitted:
        # Not sent, so not an upstream request: the client logs each one it sends.
        logger.debug(
            "fetch source=%s endpoint=%s outcome=refused reason=%s ms=0", source, endpoint, admission.reason
        )
        raise Refused(source, admission)
    started = time.monotonic()
    try:
        result = call(client)
    except MogplexError as exc:
        ms = round((time.monotonic() - started) * 1000)
        # The client has logged this request as a warning already: one line per upstream request.
        logger.debug(
            "fetch source=%s endpoint=%s outcome=%s status=%s ms=%d",
            source,
            endpoint,
            exc.kind,
            exc.status,
            ms,
        )
        gate.settle(source, endpoint, admission, exc)
        raise
    ms = round((time.monotonic() - started) * 1000)
    logger.debug("fetch source=%s endpoint=%s outcome=ok ms=%d", source, endpoint, ms)
    gate.settle(source, endpoint, admission)
    return result


def compose_soon() -> None:
    """Ask for a board composition, at most one per debounce window."""
    if state.compose_claim(COMPOSE_DEBOUNCE_SECONDS):
        board_compose.apply_async(countdown=COMPOSE_DEBOUNCE_SECONDS)


# --- the tick ------------------------------------------------------------------------


@app.task(ignore_result=True)
def poll_tick() -> None:
    """Beat's heartbeat: plan every source's fetches for the coming tick and enqueue them."""
    tick = float(settings.BOARD_POLL_TICK_SECONDS)
    with state.exclusive("tick", ttl=max(tick * 5, 10)) as mine:
        if not mine:
            return
        now = time.time()
        snapshots.heartbeat_write(now)
        _tick(now)
    compose_soon()


_NewRow = tuple[UUID, UUID | None, str, datetime]


def _tick(now: float) -> None:
    """Plan the sources due for planning (see ``Plan.replan_at``) and those with lookups waiting.

    The cost follows what is due, not what exists: two database queries (the runs
    waiting for a lookup, and the runs owned by the sources due), a few round
    trips to Redis for the whole tick whatever the number of sources due, and
    one to the broker for all its fetches (``broker.tasks_publish``: one task
    message per fetch, due at its slot). A source with nothing due is not
    planned, and its runs are not read, until it is.
    """
    the_policy = policy()
    names = source_names()
    new_rows: list[_NewRow] = list(
        TrackedRun.objects.filter(lookup=TrackedRun.Lookup.NEW, final_fetch_done=False).values_list(
            "run_id", "repo_id", "source_hint", "tracked_at"
        )
    )
    candidates = _lookup_candidates(new_rows, names, now)
    planning = state.planning_read(names)
    horizon = now + the_policy.tick
    due = [name for name in names if planning[name].plan_at < horizon or candidates.get(name)]
    if not due:
        return
    owned: dict[str, list[RunState]] = defaultdict(list)
    for run_id, source, status, done in TrackedRun.objects.filter(
        lookup=TrackedRun.Lookup.FOUND, final_fetch_done=False, source__in=due
    ).values_list("run_id", "source", "status", "final_fetch_done"):
        owned[source].append(RunState(str(run_id), status, final_fetch_done=done))
    schedules = state.schedules_read(due)
    healths = snapshots.source_healths_read(due)
    automations = snapshots.automations_read_many(due)
    gates = gate.read_many(due, now=now)
    plans: list[state.Planned] = []
    fetches: list[Fetch] = []
    health_updates: dict[str, dict[str, object]] = {}
    for source in due:
        planned, plan, health = _tick_source(
            source,
            owned.get(source, []),
            candidates.get(source, []),
            now,
            the_policy,
            marks=schedules[source],
            next_slot_at=planning[source].next_slot_at,
            held=gates[source],
            health=healths.get(source, {}),
            automation_ids=_automation_ids(automations.get(source)),
        )
        plans.append(planned)
        fetches += plan.fetches
        health_updates[source] = health
    # Marks first: a fetch that runs at once finds itself planned.
    state.planned_write(plans)
    broker.tasks_publish(app, [_send(fetch, now) for fetch in fetches], now=now)
    snapshots.source_healths_update(health_updates)


def _automation_ids(record: dict[str, object] | None) -> list[str]:
    """The ids of a stored automation list that can be fetched (an unreadable one has no usable id)."""
    listed = record.get("automations") if record else None
    ids = []
    for automation in listed if isinstance(listed, list) else []:
        if isinstance(automation, dict) and automation.get("status") != UNREADABLE:
            automation_id = str(automation.get("id") or "")
            with suppress(ValueError):
                ids.append(str(UUID(automation_id)))
    return ids


def _lookup_candidates(new_rows: Sequence[_NewRow], names: list[str], now: float) -> dict[str, list[str]]:
    """For each source, the newly tracked runs to look up on it next (oldest tracked first)."""
    if not new_rows:
        return {}
    new_rows = sorted(new_rows, key=lambda row: row[3])
    ids = [str(row[0]) for row in new_rows]
    tried = state.lookups_tried(ids)
    owners: dict[str, list[str]] = defaultdict(list)
    unknown: list[str] = names
    if any(row[1] is not None for row in new_rows):
        repos = snapshots.repos_read_many(names)
        unknown = [name for name in names if name not in repos]
        for name, record in repos.items():
            for repo in record.get("repos", []):
                if isinstance(repo, dict) and isinstance(repo.get("id"), str):
                    owners[repo["id"]].append(name)
    # A run or two tracked by hand are asked of every source at once (found within a
    # tick, at most one request per source); a burst spreads its cost two sources at a time.
    spread = len(new_rows) > FALLBACK_AT_ONCE
    queues: dict[str, list[str]] = defaultdict(list)
    for row, run_id in zip(new_rows, ids, strict=True):
        repo_id = str(row[1]) if row[1] is not None else None
        run_tried = tried.get(run_id, set())
        if set(names) <= run_tried:
            # Every source has answered 404 (or a source it was waiting for was removed).
            _not_found(run_id)
            continue
        for source in lookup_sources(
            names,
            tried=run_tried,
            named=row[2] or None,
            repo_owners=owners.get(repo_id, ()) if repo_id else (),
            repos_unknown=unknown,
            wait_for_repos=repo_id is not None and now - row[3].timestamp() < LOOKUP_REPOS_WAIT_SECONDS,
            run_id=run_id if spread else None,
        ):
            queues[source].append(run_id)
    return queues


def _tick_source(
    source: str,
    owned: list[RunState],
    lookups: list[str],
    now: float,
    the_policy: Policy,
    *,
    marks: dict[str, float],
    next_slot_at: float,
    held: gate.GateState,
    health: dict[str, object],
    automation_ids: Sequence[str] = (),
) -> tuple[state.Planned, Plan, dict[str, object]]:
    """One source's plan, from what the tick read: what it writes to the schedule, the plan, its health fields."""
    runs = [dataclasses.replace(run, last_planned_at=marks.get(f"run:{run.run_id}", 0.0)) for run in owned]
    wanted = {f"run:{run.run_id}" for run in runs} | {f"lookup:{run_id}" for run_id in lookups}
    wanted |= {f"automation:{automation_id}" for automation_id in automation_ids}
    # A lookup planned a moment ago is still on its way (or failed: asked again later).
    waiting = [
        run_id
        for run_id in lookups
        if (at := marks.get(f"lookup:{run_id}", 0.0)) <= 0 or now - at >= LOOKUP_RETRY_SECONDS
    ]
    blocked_until = held.blocked_until(now)
    plan = plan_source(
        SourceState(
            name=source,
            now=now,
            runs=runs,
            sandboxes_at=marks.get("sandboxes", 0.0),
            repos_at=marks.get("repos", 0.0),
            account_at=marks.get("account", 0.0),
            blocked_until=blocked_until,
            next_slot_at=next_slot_at,
            lookups=waiting,
            automations_at=marks.get("automations", 0.0),
            automations={a: marks.get(f"automation:{a}", 0.0) for a in automation_ids},
        ),
        the_policy,
    )
    planned = state.Planned(
        source=source,
        marks={fetch.key: fetch.at for fetch in plan.fetches},
        forget=[
            key for key in marks if key.startswith(("run:", "lookup:", "automation:")) and key not in wanted
        ],
        next_slot_at=plan.next_slot_at,
        plan_at=plan.replan_at,
    )
    fields: dict[str, object] = {
        "state": health.get("state", "unknown"),
        "message": health.get("message", "Not fetched yet."),
        "budget": the_policy.budget,
        "budget_used": held.used,
        "window_seconds": float(settings.MOGPLEX_BUDGET_WINDOW_SECONDS),
        "effective_interval_seconds": round(plan.effective_interval, 1),
        "active_runs": plan.active_runs,
        # Runs waiting to be looked up on this source, and the share of its budget kept for them.
        "lookups_waiting": len(lookups),
        "lookup_share_percent": settings.BOARD_LOOKUP_SHARE_PERCENT,
        # How often a whole round of its automations comes round (the list, then each one).
        "automations_interval_seconds": round(plan.automations_interval, 1),
        "paused_until": held.paused_until if held.paused_until > now else None,
        "next_try_at": blocked_until or None,
        "last_success_at": health.get("last_success_at"),
        "last_error_at": health.get("last_error_at"),
        "last_error_kind": health.get("last_error_kind"),
    }
    return planned, plan, fields


def _send(fetch: Fetch, now: float) -> broker.TaskSend:
    """The task message of one planned fetch (a source name and an id, never a token), due at its slot."""
    countdown = max(0.0, fetch.at - now)
    task: Task[Any, Any]
    args: tuple[str, ...] = (fetch.source,)
    if fetch.kind == "run_events":
        task, args = run_events_fetch, (fetch.source, str(fetch.run_id))
    elif fetch.kind == "lookup":
        task, args = run_lookup_fetch, (fetch.source, str(fetch.run_id))
    elif fetch.kind == "sandboxes":
        task = sandboxes_fetch
    elif fetch.kind == "repos":
        task = repos_fetch
    elif fetch.kind == "automations":
        task = automations_fetch
    elif fetch.kind == "automation":
        task, args = automation_fetch, (fetch.source, str(fetch.automation_id))
    else:
        task = account_fetch
    return broker.TaskSend(task, args, countdown)


# --- fetches -----------------------------------------------------------------------------


@app.task(ignore_result=True)
def run_events_fetch(source: str, run_id: str) -> None:
    """Fetch one tracked run's state and events from the source that owns it."""
    with state.exclusive(f"run:{run_id}", ttl=FETCH_LOCK_SECONDS) as mine:
        if not mine:
            state.schedule_retry_soon(source, f"run:{run_id}")
            return
        row = TrackedRun.objects.filter(run_id=run_id).first()
        if row is None or row.lookup != TrackedRun.Lookup.FOUND or row.source != source:
            return
        try:
            result = _request(
                source, "/runs/{id}/events", lambda client: client.run_events(run_id, limit=EVENTS_LIMIT)
            )
        except Refused:
            state.schedule_retry_soon(source, f"run:{run_id}")
            return
        except NotFound:
            # The owner no longer knows the run: ask the other sources before giving up.
            state.lookup_forget(run_id)
            state.lookup_tried_add(run_id, source)
            run_record_error(run_id, source, "not_found", now=time.time())
            TrackedRun.objects.filter(pk=row.pk).update(lookup=TrackedRun.Lookup.NEW, source="")
            return
        except (MogplexError, UnknownSource) as exc:
            run_record_error(run_id, source, getattr(exc, "kind", "unknown_source"), now=time.time())
            return
        run_record_update(row, source, result, now=time.time())
    compose_soon()


@app.task(ignore_result=True)
def run_lookup_fetch(source: str, run_id: str) -> None:
    """Look a newly tracked run up on one source: found, or a 404 (then the next sources are asked).

    Planned by the tick within the source's share of lookups; once every
    configured source has answered 404 the run is marked not_found.
    """
    key = f"lookup:{run_id}"
    with state.exclusive(f"lookup:{run_id}:{source}", ttl=FETCH_LOCK_SECONDS) as mine:
        if not mine:
            return
        row = TrackedRun.objects.filter(run_id=run_id, lookup=TrackedRun.Lookup.NEW).first()
        if row is None:
            state.schedule_forget(source, [key])
            return
        try:
            result = _request(
                source, "/runs/{id}/events", lambda client: client.run_events(run_id, limit=EVENTS_LIMIT)
            )
        except Refused:
            state.schedule_retry_soon(source, key)
            return
        except NotFound:
            # The lookup's mark stays until the tick sees the run tried here and
            # drops it: a tick that read the tried sources a moment ago still
            # finds the mark, so it never plans this lookup twice.
            state.lookup_tried_add(run_id, source)
            if set(source_names()) <= state.lookup_tried(run_id):
                _not_found(run_id)
                compose_soon()
            return
        except InvalidId:
            _not_found(run_id)
            compose_soon()
            return
        except (MogplexError, UnknownSource):
            # The source's health says why; the lookup is asked again later.
            return
        run_record_update(row, source, result, now=time.time())
        state.lookup_forget(run_id)
        # The lookup was this run's first fetch: the next one is due a refresh from now.
        state.schedule_mark(source, {f"run:{run_id}": time.time()})
        state.plan_soon(source)
    compose_soon()


def _not_found(run_id: str) -> None:
    """No configured source owns the run."""
    row = TrackedRun.objects.filter(run_id=run_id, lookup=TrackedRun.Lookup.NEW).first()
    if row is not None:
        run_record_not_found(row, now=time.time())
    state.lookup_forget(run_id)


def _source_fetch[T](source: str, key: str, fetch: Callable[[], T], write: Callable[[T], None]) -> None:
    """One scheduled fetch on a source (``key``: sandboxes, repos, account, automations, an automation),
    then its record. ``fetch`` sends its requests through ``_request``.

    Nothing when another worker is on it or it fails (the source's health says
    why); when the budget refuses it, it goes first in line at the next tick. An
    endpoint the token may not read waits for its next turn: asking again at the
    next tick would only spend a slot on a refusal.
    """
    with state.exclusive(f"{key}:{source}", ttl=FETCH_LOCK_SECONDS) as mine:
        if not mine:
            return
        try:
            result = fetch()
        except Refused as refused:
            if refused.admission.reason != "denied":
                state.schedule_retry_soon(source, key)
            return
        except (MogplexError, UnknownSource):
            return
        write(result)
    compose_soon()


@app.task(ignore_result=True)
def sandboxes_fetch(source: str) -> None:
    """Refresh a source's sandbox list (one request covers all its sandboxes)."""
    _source_fetch(
        source,
        "sandboxes",
        lambda: _request(source, "/sandboxes", lambda client: client.sandboxes()),
        lambda sandboxes: sandboxes_record_update(source, sandboxes, now=time.time()),
    )


# Sandbox logs are unsanitised and can be long; the board shows the end of each.
SANDBOX_LOG_TAIL_CHARS = 20_000


@app.task(ignore_result=True)
def sandbox_logs_fetch(source: str, sandbox_id: str) -> None:
    """Fetch one sandbox's logs because someone asked for them on its page (one request of the budget)."""
    with state.exclusive(f"sandbox-logs:{sandbox_id}", ttl=FETCH_LOCK_SECONDS) as mine:
        if not mine:
            return
        record: dict[str, object] = {"sandbox_id": sandbox_id, "source": source, "fetched_at": time.time()}
        try:
            logs = _request(source, "/sandboxes/{id}/logs", lambda client: client.sandbox_logs(sandbox_id))
        except Refused as refused:
            # Why nothing was sent, and until when: the page says so in words.
            record.update(
                error_kind="refused", refused=refused.admission.reason, retry_at=refused.admission.until
            )
        except MogplexError as exc:
            record["error_kind"] = exc.kind
        except UnknownSource:
            record["error_kind"] = "unknown_source"
        else:
            record.update(
                error_kind=None,
                install_log=(logs.install_log or "")[-SANDBOX_LOG_TAIL_CHARS:],
                dev_log=(logs.dev_log or "")[-SANDBOX_LOG_TAIL_CHARS:],
                lifecycle_events=[
                    {
                        "event_type": event.event_type,
                        "decision_code": event.decision_code,
                        "created_at": event.created_at.isoformat() if event.created_at else None,
                    }
                    for event in logs.lifecycle_events
                ],
            )
        snapshots.sandbox_logs_write(sandbox_id, record)


@app.task(ignore_result=True)
def repos_fetch(source: str) -> None:
    """Refresh a source's repo list (for repo names on the board)."""
    _source_fetch(
        source,
        "repos",
        lambda: _request(source, "/repos", lambda client: client.repos()),
        lambda repos: repos_record_update(source, repos, now=time.time()),
    )


@app.task(ignore_result=True)
def account_fetch(source: str) -> None:
    """Check account readiness: who the token belongs to, and how many models it may use."""

    def write(user: AccountUser | None) -> None:
        models = None
        # A token without the 'read' scope cannot list models; the user part still counts.
        with suppress(Refused, MogplexError, UnknownSource):
            models = _request(source, "/models", lambda client: client.models())
        account_record_update(source, user, models, now=time.time())

    _source_fetch(
        source,
        "account",
        lambda: _request(source, "/api/auth/user", lambda client: client.auth_user()),
        write,
    )


# At most this many pages of /automations (100 each) are read per round.
AUTOMATION_PAGES_MAX = 10


def _automations_page(client: MogplexClient, *, cursor: str | None) -> AutomationPage:
    return client.automations(cursor)


def _automation_pages(source: str) -> tuple[list[Automation], bool]:
    """Every page of a source's automations, following ``nextCursor``; and whether that was all of them.

    The client never sends a cursor Mogplex would refuse: a malformed one ends the
    list there (not complete), as does reaching ``AUTOMATION_PAGES_MAX``.
    """
    automations: list[Automation] = []
    cursor: str | None = None
    for _ in range(AUTOMATION_PAGES_MAX):
        page = _request(source, "/automations", functools.partial(_automations_page, cursor=cursor))
        automations += page.automations
        if page.cursor_refused:
            logger.warning("automations source=%s nextCursor malformed; the list stops there", source)
            return automations, False
        if page.next_cursor is None:
            return automations, True
        cursor = page.next_cursor
    return automations, False


@app.task(ignore_result=True)
def automations_fetch(source: str) -> None:
    """Refresh a source's automation list (every cursor page); each automation is then fetched on its own."""

    def write(result: tuple[list[Automation], bool]) -> None:
        automations, complete = result
        automations_record_update(source, automations, complete=complete, now=time.time())
        # The automations just listed are due: plan the source again at once.
        state.plan_soon(source)

    _source_fetch(source, "automations", lambda: _automation_pages(source), write)


# A job-run list the budget refused is asked again when a slot frees, this many times at most.
AUTOMATION_RUNS_TRIES = 3


@app.task(ignore_result=True)
def automation_fetch(source: str, automation_id: str) -> None:
    """Refresh one automation's ``runSummary``; its newest job runs follow a paced slot later.

    An automation fetch takes two slots (``COST["automation"]``): this request in
    the first, ``automation_runs_fetch`` in the next, so the pace holds.
    """

    def write(detail: AutomationDetail) -> None:
        automation_record_update(source, detail, now=time.time())
        automation_runs_fetch.apply_async((source, automation_id), countdown=policy().spacing)

    _source_fetch(
        source,
        f"automation:{automation_id}",
        lambda: _request(source, "/automations/{id}", lambda client: client.automation(automation_id)),
        write,
    )


@app.task(ignore_result=True)
def automation_runs_fetch(source: str, automation_id: str, tries: int = 1) -> None:
    """An automation's newest job runs (``/automations/{id}/runs``), the second slot of its fetch.

    Job-run ids are not agent-run ids: they are stored as job runs and never sent to ``/runs/{id}``.
    """
    with state.exclusive(f"automation-runs:{automation_id}:{source}", ttl=FETCH_LOCK_SECONDS) as mine:
        if not mine:
            return
        try:
            runs = _request(
                source,
                "/automations/{id}/runs",
                lambda client: client.automation_runs(automation_id, limit=JOB_RUNS_LIMIT),
            )
        except Refused as refused:
            wait = refused.admission.until - time.time()
            if (
                refused.admission.reason == "budget"
                and tries < AUTOMATION_RUNS_TRIES
                and wait < policy().window
            ):
                automation_runs_fetch.apply_async(
                    (source, automation_id, tries + 1), countdown=max(0.0, wait)
                )
            return
        except (MogplexError, UnknownSource):
            return
        automation_runs_record_update(source, automation_id, runs, now=time.time())
    compose_soon()


@app.task(ignore_result=True)
def board_compose() -> None:
    """Compose the board from every record and the tracked runs, and store it with its version."""
    with state.exclusive("compose", ttl=30) as mine:
        if not mine:
            # Someone is composing right now; ask again so their snapshot is not the last word.
            compose_soon()
            return
        board_publish(board_build())


@app.task(ignore_result=True)
def history_purge() -> None:
    """Beat's hourly purge of run summaries older than ``BOARD_HISTORY_DAYS``, then SQLite's statistics."""
    summaries.history_purge()
    summaries.history_statistics_refresh()
