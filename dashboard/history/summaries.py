"""Writing run summaries (once per terminal run) and purging old ones.

A summary is made from the run record of the terminal run's final fetch, as it is
stored, so it holds exactly what the board learned. It is written in the database
only, so a Redis flush loses no history.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from dashboard.history.search import history_choices_forget
from dashboard.models import RunSummary, TrackedRun
from dashboard.mogplex.failures import failure_reason
from dashboard.mogplex.models import parse_timestamp

logger = logging.getLogger("dashboard.history")

JSON = dict[str, Any]

TERMINAL_EVENTS = ("finished", "failed", "cancelled")
ERROR_CHARS = 4000


def _text(value: object, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _moment(value: object) -> datetime | None:
    return parse_timestamp(value)


def _finished_at(run: JSON, events: list[JSON], fallback: datetime) -> datetime:
    """The terminal event's time, else the run's last update, else when the board saw it end."""
    for event in reversed(events):
        if event.get("type") in TERMINAL_EVENTS:
            at = _moment(event.get("created_at"))
            if at is not None:
                return at
            break
    return _moment(run.get("updated_at")) or fallback


def _pr_at(events: list[JSON]) -> datetime | None:
    for event in reversed(events):
        payload = event.get("payload") or {}
        if (
            event.get("type") == "log"
            and isinstance(payload, dict)
            and payload.get("stage") == "git_delivery"
            and payload.get("pull_request_url")
        ):
            return _moment(event.get("created_at"))
    return None


def run_summary_build(*, row: TrackedRun, record: JSON, repo_name: str | None, now: datetime) -> RunSummary:
    """The summary of a finished run from its stored run record (not saved)."""
    run: JSON = record.get("run") or {}
    events: list[JSON] = [e for e in record.get("events") or [] if isinstance(e, dict)]
    outcome: JSON = record.get("outcome") or {}
    raw_branch = run.get("branch")
    branch: JSON = raw_branch if isinstance(raw_branch, dict) else {}
    created_at = _moment(run.get("created_at"))
    finished_at = _finished_at(run, events, row.finished_at or now)
    duration = None
    if created_at is not None and finished_at >= created_at:
        duration = (finished_at - created_at).total_seconds()
    code = outcome.get("failure_code") if isinstance(outcome.get("failure_code"), str) else None
    exit_code = outcome.get("exit_code") if isinstance(outcome.get("exit_code"), int) else None
    pr_url = record.get("pr_url") if isinstance(record.get("pr_url"), str) else ""
    summary = RunSummary(
        run_id=row.run_id,
        source=_text(record.get("source") or row.source, 40),
        repo_id=_text(run.get("repo_id"), 64),
        repo_name=_text(repo_name, 200),
        branch_base=_text(branch.get("base"), 200),
        branch_working=_text(branch.get("working"), 200),
        harness=_text(run.get("harness"), 80),
        status=_text(run.get("status"), 20),
        created_at=created_at,
        finished_at=finished_at,
        duration_seconds=duration,
        pr_url=_text(pr_url, 500),
        pr_at=_pr_at(events) if pr_url else None,
        delivery=_text(outcome.get("delivery"), 20),
        failure_code=_text(code, 60),
        failure_reason=_text(failure_reason(code, exit_code), 200),
        exit_code=exit_code,
        error=_text(run.get("error"), ERROR_CHARS),
        event_count=int(record.get("event_count") or len(events)),
        tracked_at=row.tracked_at,
        recorded_at=now,
    )
    summary.derive()
    return summary


def run_summary_write(*, row: TrackedRun, record: JSON, repo_name: str | None) -> bool:
    """Keep the summary of a finished run; ``False`` when it was already kept (it is written once)."""
    summary = run_summary_build(row=row, record=record, repo_name=repo_name, now=timezone.now())
    fields = {
        f.attname: getattr(summary, f.attname) for f in RunSummary._meta.concrete_fields if not f.primary_key
    }
    del fields["run_id"]
    # run_id is unique: a second writer (a fetch racing another) finds the first one's row.
    _, created = RunSummary.objects.get_or_create(run_id=row.run_id, defaults=fields)
    if created:
        logger.info("history run=%s status=%s kept", row.run_id, summary.status)
    return created


def history_cutoff(now: datetime | None = None) -> datetime:
    """Runs that finished before this are purged."""
    return (now or timezone.now()) - timedelta(days=settings.BOARD_HISTORY_DAYS)


def history_purge(*, now: datetime | None = None) -> int:
    """Delete the summaries of runs that finished more than ``BOARD_HISTORY_DAYS`` ago; how many."""
    deleted, _ = RunSummary.objects.filter(finished_at__lt=history_cutoff(now)).delete()
    if deleted:
        history_choices_forget()
        logger.info("history purged=%d older_than_days=%d", deleted, settings.BOARD_HISTORY_DAYS)
    return deleted


def history_statistics_refresh() -> None:
    """Refresh SQLite's statistics of the kept runs, so its planner picks the trends' indexes.

    PostgreSQL's autovacuum keeps its own; SQLite has none until asked, and without them
    the 30-day trends took 128 ms of CPU instead of 50 at 100 000 runs (docs/benchmarks.md).
    ``analysis_limit`` samples each index instead of reading it whole: 6 ms at 100 000 runs.
    """
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA analysis_limit=1000")
        cursor.execute(f"ANALYZE {connection.ops.quote_name(RunSummary._meta.db_table)}")
