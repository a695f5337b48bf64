"""The composed board: every record the poller keeps, joined with the tracked runs, in one JSON document.

The shape is documented in ``docs/internals.md`` ("Composed board"); the views
read nothing else.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from dashboard import snapshots
from dashboard.board.selectors import board_fetched
from dashboard.history.usual import usual_durations
from dashboard.models import Acknowledgement, TrackedRun
from dashboard.mogplex import text
from dashboard.mogplex.failures import failure_reason
from dashboard.mogplex.models import JOB_RUN_PENDING_TOO_LONG, GithubAction, http_url, parse_timestamp
from dashboard.polling.scheduler import TERMINAL_STATUSES
from dashboard.polling.sources import source_names

JSON = dict[str, Any]

logger = logging.getLogger("dashboard.polling")

# The product's own threshold for agent calls (contract section 9): a run that
# has not moved for this long may have lost its worker.
POSSIBLY_STALE_AFTER = timedelta(hours=6)
LATEST_MESSAGE_CHARS = 300


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _latest_event(events: list[JSON]) -> JSON | None:
    if not events:
        return None
    last = events[-1]
    return {
        "type": last.get("type"),
        "tool_name": last.get("tool_name"),
        # The board's rows show at most 90 characters of it (the run page reads the record).
        "message": text.clip_text(last.get("message"), LATEST_MESSAGE_CHARS),
        "created_at": last.get("created_at"),
    }


def _possibly_stale(status: str, updated_at: str | None, now: datetime) -> bool:
    if status in TERMINAL_STATUSES:
        return False
    updated = parse_timestamp(updated_at)
    return updated is not None and now - updated > POSSIBLY_STALE_AFTER


def _duration_text(elapsed: timedelta) -> str:
    """Minutes up to two hours, then whole hours: "17 min", "3 h"."""
    minutes = int(elapsed.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def stall_reason(
    *,
    status: str,
    created_at: object,
    updated_at: object,
    last_event_at: object,
    events_truncated: bool,
    now: datetime,
) -> str | None:
    """Why a live run looks stalled ("no event for 17 min", "pending for 12 min"), or None.

    A streaming run is judged by its last sign of life: its newest event, or
    the status change (``updatedAt``) or creation when that is later. Events do
    not bump ``updatedAt``, so ``updatedAt`` alone would call every busy run
    stalled. When upstream's 200-event cap hides a run's newer events, the board
    cannot see them, so only the hard rule (``updatedAt`` older than 6 h) applies.
    """
    if status == "pending":
        created = parse_timestamp(created_at)
        if created is not None and now - created >= timedelta(minutes=settings.BOARD_PENDING_STALL_MINUTES):
            return f"pending for {_duration_text(now - created)}"
    elif status == "streaming" and not events_truncated:
        times = [t for t in map(parse_timestamp, (last_event_at, updated_at, created_at)) if t is not None]
        if times and now - max(times) >= timedelta(minutes=settings.BOARD_STALL_MINUTES):
            return f"no event for {_duration_text(now - max(times))}"
    updated = parse_timestamp(updated_at)
    if status not in TERMINAL_STATUSES and updated is not None and now - updated > POSSIBLY_STALE_AFTER:
        return f"not updated for {_duration_text(now - updated)}"
    return None


def longer_than_usual(*, status: str, created_at: object, usual: float | None, now: datetime) -> float | None:
    """The repo's p90 duration when this live run has been going for longer than that, else None."""
    if usual is None or not status or status in TERMINAL_STATUSES:
        return None
    created = parse_timestamp(created_at)
    if created is None or (now - created).total_seconds() <= usual:
        return None
    return usual


def acknowledgements_read(target: str, ids: list[str]) -> dict[str, list[JSON]]:
    """The acknowledgements of these runs (or sandboxes), by id: ``[{problem, by, at, note}]``."""
    found: dict[str, list[JSON]] = {}
    if not ids:
        return found
    for ack in Acknowledgement.objects.filter(target=target, target_id__in=ids).order_by("acknowledged_at"):
        found.setdefault(str(ack.target_id), []).append(
            {
                "problem": ack.problem,
                "by": ack.username,
                "at": ack.acknowledged_at.timestamp(),
                "note": ack.note,
            }
        )
    return found


def _run_ended_at(run: JSON) -> float | None:
    """When a finished run ended: when the board first saw it terminal, else upstream's updatedAt."""
    finished = run.get("finished_at")
    if isinstance(finished, int | float):
        return float(finished)
    updated = parse_timestamp(run.get("updated_at"))
    return None if updated is None else updated.timestamp()


def _run_started_at(run: JSON) -> float | None:
    created = parse_timestamp(run.get("created_at"))
    if created is not None:
        return created.timestamp()
    tracked = run.get("tracked_at")
    return float(tracked) if isinstance(tracked, int | float) else None


def runs_supersede(runs: list[JSON]) -> None:
    """Mark each failed run that a later success on its repo and base branch fixed (``fixed_by``).

    "Later" means started after the failed run; the fix is the first such success
    to end. Runs whose repo or base branch is unknown are never matched.
    """
    successes: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
    for run in runs:
        key = (run.get("repo_id"), run.get("branch_base"))
        started, ended = _run_started_at(run), _run_ended_at(run)
        if run.get("status") != "success" or not all(isinstance(k, str) and k for k in key):
            continue
        if started is None or ended is None:
            continue
        successes.setdefault((str(key[0]), str(key[1])), []).append((ended, started, str(run["run_id"])))
    for fixes in successes.values():
        fixes.sort()
    for run in runs:
        if run.get("status") != "failed":
            continue
        started, ended = _run_started_at(run), _run_ended_at(run)
        fixes = successes.get((str(run.get("repo_id")), str(run.get("branch_base"))), [])
        if started is None or ended is None:
            continue
        fix = next(((e, r) for e, s, r in fixes if s > started and e >= ended), None)
        if fix is not None:
            run["fixed_by"] = {"run_id": fix[1], "after_seconds": round(fix[0] - ended), "at": fix[0]}


def run_outcome_fields(record: JSON) -> JSON:
    """Why a run failed and what it delivered, from its stored outcome: ``failure_code``,
    ``failure_reason`` (one plain phrase; an unknown code as it is) and ``delivery``
    (``pull_request`` or ``no_changes``)."""
    raw = record.get("outcome")
    outcome: JSON = raw if isinstance(raw, dict) else {}
    code = outcome.get("failure_code") if isinstance(outcome.get("failure_code"), str) else None
    exit_code = outcome.get("exit_code")
    exit_code = exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None
    delivery = outcome.get("delivery") if isinstance(outcome.get("delivery"), str) else None
    return {"failure_code": code, "failure_reason": failure_reason(code, exit_code), "delivery": delivery}


def board_runs(repo_names: dict[str, str], now: datetime) -> list[JSON]:
    """Rows for every tracked run inside the retention window, newest tracked first.

    Each carries its acknowledgements and, when ``BOARD_SUPERSEDE_FAILURES`` is
    on, the later success that fixed it (``fixed_by``); ``selectors`` decides
    from those whether it still needs attention.
    """
    cutoff = now - timedelta(hours=settings.BOARD_RETENTION_HOURS)
    rows = list(TrackedRun.objects.filter(Q(finished_at__isnull=True) | Q(finished_at__gte=cutoff)))
    records = snapshots.runs_read(str(row.run_id) for row in rows)
    runs_refetch_lost(rows, records)
    acks = acknowledgements_read(Acknowledgement.Target.RUN, [str(row.run_id) for row in rows])
    usual = usual_durations() if any(row.status not in TERMINAL_STATUSES for row in rows) else {}
    runs: list[JSON] = []
    for row in rows:
        run_id = str(row.run_id)
        record = records.get(run_id) or {}
        detail: JSON = record.get("run") or {}
        branch: JSON = detail.get("branch") or {}
        # A run no source owns any more keeps its last data for the run page, but
        # not its last status: it is not streaming, it is not found (the pages say so).
        not_found = row.lookup == TrackedRun.Lookup.NOT_FOUND
        status = "" if not_found else detail.get("status") or row.status or ""
        repo_id = detail.get("repo_id")
        events: list[JSON] = record.get("events") or []
        latest = _latest_event(events)
        events_truncated = bool(record.get("events_truncated"))
        runs.append(
            {
                "run_id": run_id,
                "source": row.source or record.get("source") or None,
                "status": status,
                "repo_id": repo_id,
                "repo_name": repo_names.get(repo_id) if isinstance(repo_id, str) else None,
                "harness": detail.get("harness"),
                "branch_base": branch.get("base"),
                "branch_working": branch.get("working"),
                "created_at": detail.get("created_at"),
                "updated_at": detail.get("updated_at"),
                "error": detail.get("error"),
                "sandbox_record_id": detail.get("sandbox_record_id"),
                "sandbox_id": detail.get("sandbox_id"),
                "pr_url": record.get("pr_url"),
                **run_outcome_fields(record),
                "latest_event": latest,
                "event_count": record.get("event_count", 0),
                "events_truncated": events_truncated,
                "fetched_at": record.get("fetched_at"),
                "lookup": row.lookup,
                "tracked_at": _epoch(row.tracked_at),
                "finished_at": _epoch(row.finished_at),
                "possibly_stale": not not_found and _possibly_stale(status, detail.get("updated_at"), now),
                "stall_reason": None
                if not_found
                else stall_reason(
                    status=status,
                    created_at=detail.get("created_at"),
                    updated_at=detail.get("updated_at"),
                    last_event_at=latest.get("created_at") if latest else None,
                    events_truncated=events_truncated,
                    now=now,
                ),
                "longer_than_usual": None
                if not_found
                else longer_than_usual(
                    status=status,
                    created_at=detail.get("created_at"),
                    usual=usual.get(repo_id) if isinstance(repo_id, str) else None,
                    now=now,
                ),
                "acknowledged": acks.get(run_id, []),
                "fixed_by": None,
            }
        )
    if settings.BOARD_SUPERSEDE_FAILURES:
        runs_supersede(runs)
    return runs


def runs_refetch_lost(rows: list[TrackedRun], records: dict[str, JSON]) -> int:
    """Ask for one more fetch of every finished run whose snapshot is gone; how many there were.

    Snapshots can always be rebuilt from upstream (design invariant 7): after
    Redis restarts empty (or evicts a key), a run already marked as finally
    fetched would otherwise never be fetched again and read "failed (repo
    unknown)" for good. Clearing ``final_fetch_done`` makes it a terminal run
    owed its final fetch, which the scheduler plans once, within the budget,
    whatever its last known status. A run no source owns is left alone: its
    row already says so.
    """
    lost = {
        row.pk
        for row in rows
        if row.final_fetch_done and row.lookup == TrackedRun.Lookup.FOUND and str(row.run_id) not in records
    }
    if not lost:
        return 0
    changed = TrackedRun.objects.filter(pk__in=lost, final_fetch_done=True).update(final_fetch_done=False)
    for row in rows:
        if row.pk in lost:
            row.final_fetch_done = False
    if changed:
        logger.warning(
            "%d finished run(s) have no snapshot (the store was emptied or evicted them); fetching each once again",
            changed,
        )
    return changed


# Mogplex's seed advice for the two ways a token can be ready and still see nothing.
NO_MODEL_ADVICE = "No model is usable with this token: check Available Models in Mogplex."
NO_REPO_ADVICE = "No repo appears: fix the GitHub App coverage or the repo import in Mogplex."


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def account_readiness(account: JSON | None, repos: JSON | None, app_base: str) -> JSON | None:
    """What the sources panel says about a source's account readiness, or None before the first check.

    ``unknown``: the last check answered ``{"user": null}``; the fields are then the
    last known ones, from ``known_at`` (None when nothing was ever known). The next
    action's link is http(s) only (relative hrefs joined to the Mogplex app).
    """
    if not isinstance(account, dict):
        return None
    user = account.get("user") if isinstance(account.get("user"), dict) else None
    models = account.get("models") if isinstance(account.get("models"), int) else None
    repo_list = repos.get("repos") if isinstance(repos, dict) else None
    repo_count = len(repo_list) if isinstance(repo_list, list) else None
    known_at = account.get("known_at")
    view: JSON = {
        "checked_at": account.get("fetched_at"),
        "unknown": bool(account.get("unknown")) or user is None,
        "known_at": known_at if isinstance(known_at, int | float) else None,
        "models": models,
        "repos": repo_count,
        "github_state": None,
        "github_label": None,
        "github_detail": None,
        "action_label": None,
        "action_url": None,
        "platform_ai": None,
        "platform_sandbox": None,
        "compute_state": None,
        "compute_label": None,
        "advice": [],
    }
    if user is not None:
        action = user.get("github_primary_action")
        vercel = user.get("vercel") if isinstance(user.get("vercel"), dict) else {}
        if isinstance(action, dict):
            link = GithubAction.from_dict(action)
            view["action_label"] = _text_or_none(link.label)
            view["action_url"] = http_url(link.url(app_base))
        view.update(
            github_state=_text_or_none(user.get("github_state")),
            github_label=_text_or_none(user.get("github_status_label")),
            github_detail=_text_or_none(user.get("github_status_detail")),
            platform_ai=user.get("allow_platform_ai")
            if isinstance(user.get("allow_platform_ai"), bool)
            else None,
            platform_sandbox=user.get("allow_platform_sandbox")
            if isinstance(user.get("allow_platform_sandbox"), bool)
            else None,
            compute_state=_text_or_none(vercel.get("platform_state")),
            compute_label=_text_or_none(vercel.get("status_label")),
        )
    if not view["unknown"]:
        if models == 0:
            view["advice"].append(NO_MODEL_ADVICE)
        if repo_count == 0:
            view["advice"].append(NO_REPO_ADVICE)
    return view


# Mogplex's observability page (lib/observability/automation-health.ts, stat-card-tone.ts): an
# automation needs attention when a job run failed in the last 24 h, one has waited pending
# for over 2 min, or under 80 % of the job runs concluded in 24 h succeeded; with none
# concluded in 24 h it has no activity; else it is healthy.
HEALTH_WINDOW = timedelta(hours=24)
HEALTHY_SUCCESS_PERCENT = 80
# The newest job runs an automation's row shows.
JOB_RUNS_SHOWN = 10


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def automation_health(summary: JSON, job_runs: list[JSON], now: datetime) -> JSON:
    """An automation's health as Mogplex's observability page classifies it, with its figures.

    ``health`` is ``healthy``, ``needs_attention`` or ``no_activity``. ``failed_24h``
    is the ``runSummary``'s (else counted from the job runs); the stale pending
    count and the success rate (of job runs that concluded, success or failed, in
    the last 24 h, by completion time) come from the newest job runs.
    """
    day_ago = now - HEALTH_WINDOW
    failed = _count(summary.get("failed_24h"))
    if failed is None:
        failed = sum(
            1
            for r in job_runs
            if r.get("status") == "failed" and (parse_timestamp(r.get("created_at")) or now) >= day_ago
        )
    stale = sum(
        1
        for r in job_runs
        if r.get("status") == "pending"
        and (created := parse_timestamp(r.get("created_at"))) is not None
        and now - created > JOB_RUN_PENDING_TOO_LONG
    )
    concluded = [
        r
        for r in job_runs
        if r.get("status") in ("success", "failed")
        and (completed := parse_timestamp(r.get("completed_at"))) is not None
        and completed >= day_ago
    ]
    rate = (
        round(100 * sum(1 for r in concluded if r.get("status") == "success") / len(concluded), 1)
        if concluded
        else None
    )
    if failed > 0 or stale > 0 or (rate is not None and rate < HEALTHY_SUCCESS_PERCENT):
        health = "needs_attention"
    else:
        health = "no_activity" if rate is None else "healthy"
    return {
        "health": health,
        "failed_24h": failed,
        "stale_pending": stale,
        "success_rate": rate,
        "concluded_24h": len(concluded),
        "running": _count(summary.get("running_count")),
        "pending": _count(summary.get("pending_count")),
        "last_run_status": _text_or_none(summary.get("last_run_status")),
    }


def job_runs_supersede(job_runs: list[JSON]) -> None:
    """Mark each failed job run that a later successful job run of the same automation fixed (``fixed_by``).

    "Later" means created after the failed one; the fix is the first such success to complete.
    """
    for failed in job_runs:
        created = parse_timestamp(failed.get("created_at"))
        ended = parse_timestamp(failed.get("completed_at")) or created
        if failed.get("status") != "failed" or created is None or ended is None:
            continue
        fixes = [
            (completed, str(r.get("id")))
            for r in job_runs
            if r.get("status") == "success"
            and r.get("automation_id") == failed.get("automation_id")
            and (later := parse_timestamp(r.get("created_at"))) is not None
            and later > created
            and (completed := parse_timestamp(r.get("completed_at"))) is not None
        ]
        if fixes:
            at, job_run_id = min(fixes)
            failed["fixed_by"] = {
                "job_run_id": job_run_id,
                "after_seconds": max(0, round((at - ended).total_seconds())),
                "at": at.timestamp(),
            }


def _job_run_row(
    run: JSON, automation: JSON, source: str, fetched_at: Any, repo_names: dict[str, str], now: datetime
) -> JSON:
    repo_id = run.get("repo_id")
    created = parse_timestamp(run.get("created_at"))
    return {
        "id": run.get("id"),
        "source": source,
        "automation_id": automation.get("id"),
        "automation_name": automation.get("name"),
        "status": run.get("status"),
        "repo_id": repo_id,
        "repo_name": run.get("repo_full_name")
        or (repo_names.get(repo_id) if isinstance(repo_id, str) else None),
        "source_type": run.get("source_type"),
        "created_at": run.get("created_at"),
        "started_at": run.get("started_at"),
        "completed_at": run.get("completed_at"),
        "duration_ms": _count(run.get("duration_ms")),
        "error": text.clip_text(run.get("error"), LATEST_MESSAGE_CHARS),
        "fetched_at": fetched_at,
        # Mogplex's "Action required": a job run waiting to start for over 2 min (as of this composition).
        "pending_too_long": run.get("status") == "pending"
        and created is not None
        and now - created > JOB_RUN_PENDING_TOO_LONG,
        "acknowledged": [],
        "fixed_by": None,
    }


def board_automations(
    lists: dict[str, JSON], repo_names: dict[str, str], now: datetime
) -> tuple[list[JSON], list[JSON]]:
    """Every source's automations (rows with their health and newest job runs) and the job runs that may
    need attention (failed, or pending), each with its acknowledgements and the later success that fixed it.

    ``lists``: each source's stored automation list, by source name, in configured order.
    """
    rows: list[JSON] = []
    notable: list[JSON] = []
    for name, listed in lists.items():
        automations = [a for a in listed.get("automations") or [] if isinstance(a, dict)]
        details = snapshots.automations_detail_read(name, [str(a.get("id")) for a in automations])
        for automation in automations:
            record = details.get(str(automation.get("id"))) or {}
            detail: JSON = record["automation"] if isinstance(record.get("automation"), dict) else {}
            summary: JSON = detail["run_summary"] if isinstance(detail.get("run_summary"), dict) else {}
            runs = [r for r in record.get("job_runs") or [] if isinstance(r, dict)]
            shaped = [
                _job_run_row(r, automation, name, record.get("job_runs_fetched_at"), repo_names, now)
                for r in runs
            ]
            if settings.BOARD_SUPERSEDE_FAILURES:
                job_runs_supersede(shaped)
            notable += [r for r in shaped if r["status"] in ("failed", "pending")]
            rows.append(
                {
                    "source": name,
                    "id": automation.get("id"),
                    "name": automation.get("name"),
                    "description": automation.get("description"),
                    "status": automation.get("status"),
                    "fetched_at": record.get("fetched_at"),
                    **(automation_health(summary, runs, now) if record else {"health": None}),
                    "job_runs": shaped[:JOB_RUNS_SHOWN],
                }
            )
    acks = acknowledgements_read(
        Acknowledgement.Target.JOB_RUN, [str(r["id"]) for r in notable if _is_uuid(r.get("id"))]
    )
    for run in notable:
        run["acknowledged"] = acks.get(str(run.get("id")).lower(), [])
    return rows, notable


def board_build(*, heartbeat_at: float | None = None) -> JSON:
    """The composed board from every source's records and the tracked runs (without its version)."""
    now = timezone.now()
    names = source_names()
    sources: list[JSON] = []
    repo_names: dict[str, str] = {}
    sandboxes: list[JSON] = []
    sandboxes_fetched_at: dict[str, float] = {}
    for name in names:
        health = snapshots.source_health_read(name) or {"name": name, "state": "unknown"}
        repos = snapshots.repos_read(name)
        health["account"] = account_readiness(snapshots.account_read(name), repos, settings.MOGPLEX_APP_URL)
        sources.append(health)
        for repo in (repos or {}).get("repos", []):
            repo_names.setdefault(repo["id"], repo["full_name"])
    runs = board_runs(repo_names, now)
    lists = snapshots.automations_read_many(names)
    automations, job_runs = board_automations(lists, repo_names, now)
    # The tracked run that points at each sandbox (the newest tracked wins), if any.
    tracked_by_sandbox: dict[str, str] = {}
    for run in sorted(runs, key=lambda r: r.get("tracked_at") or 0.0):
        if isinstance(run.get("sandbox_record_id"), str):
            tracked_by_sandbox[run["sandbox_record_id"].lower()] = run["run_id"]
    for name in names:
        record = snapshots.sandboxes_read(name)
        if record is None:
            continue
        sandboxes_fetched_at[name] = record["fetched_at"]
        for sandbox in record.get("sandboxes", []):
            repo_id = sandbox.get("repo_id")
            sandboxes.append(
                {
                    "id": sandbox.get("id"),
                    "source": name,
                    "sandbox_id": sandbox.get("sandbox_id"),
                    "status": sandbox.get("status"),
                    "repo_id": repo_id,
                    "repo_name": repo_names.get(repo_id) if isinstance(repo_id, str) else None,
                    "base_branch": sandbox.get("base_branch"),
                    "working_branch": sandbox.get("working_branch"),
                    "preview_url": sandbox.get("preview_url"),
                    "last_active_at": sandbox.get("last_active_at"),
                    "created_at": sandbox.get("created_at"),
                    "error": sandbox.get("error"),
                    "fetched_at": record["fetched_at"],
                    "tracked_run_id": tracked_by_sandbox.get(str(sandbox.get("id") or "").lower()),
                }
            )
    sandbox_acks = acknowledgements_read(
        Acknowledgement.Target.SANDBOX, [str(s["id"]) for s in sandboxes if _is_uuid(s.get("id"))]
    )
    for sandbox in sandboxes:
        sandbox["acknowledged"] = sandbox_acks.get(str(sandbox.get("id")).lower(), [])
    return {
        "composed_at": now.timestamp(),
        "heartbeat_at": heartbeat_at if heartbeat_at is not None else snapshots.heartbeat_read(),
        "sources": sources,
        "runs": runs,
        "sandboxes": sandboxes,
        "sandboxes_fetched_at": sandboxes_fetched_at,
        "automations": automations,
        "automations_fetched_at": {name: record.get("fetched_at") for name, record in lists.items()},
        "automations_complete": {name: bool(record.get("complete")) for name, record in lists.items()},
        "job_runs": job_runs,
    }


def board_publish(board: JSON) -> str:
    """Store a composed board with the fetch times its badges show (``selectors.board_fetched``); its version.

    Every composition writes the times, changed board or not: an unchanged
    poll hands them to the page, so "updated 3s ago" counts from the last fetch.
    """
    return snapshots.board_write(board, fetched=board_fetched(board))
