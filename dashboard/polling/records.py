"""What a fetch result becomes: snapshot records in Redis and the TrackedRun row in the database."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from dashboard import snapshots
from dashboard.history.summaries import run_summary_write
from dashboard.models import TrackedRun
from dashboard.mogplex import text
from dashboard.mogplex.models import (
    UNREADABLE,
    AccountUser,
    Automation,
    AutomationDetail,
    JobRun,
    Model,
    Repo,
    RunEvents,
    Sandbox,
)
from dashboard.polling.scheduler import TERMINAL_STATUSES

logger = logging.getLogger("dashboard.polling")

JSON = dict[str, Any]

EVENTS_LIMIT = 200
# Payloads are agent-written and can reach 20,000 characters upstream; the
# board shows a line of each, so a few KB per event is plenty.
PAYLOAD_CLIP_CHARS = 2048
# What the board stores of upstream text is what a page can show: the run page shows
# 1,000 characters of an event's message, and no page shows more than 300 of any other
# field (an error, a branch). A 100 kB message must not make a 700 kB record.
EVENT_MESSAGE_CHARS = 1000
FIELD_CHARS = 1000


def clip_payload(payload: JSON) -> JSON:
    """``payload`` itself when small, else a marker with the start of its JSON (see ``text.clip_payload``)."""
    return text.clip_payload(payload, PAYLOAD_CLIP_CHARS)


def event_clip(event: JSON) -> tuple[JSON, bool]:
    """One stored event: message, payload and other text clipped; and whether anything was."""
    payload = event.get("payload")
    rest, clipped = text.clip_strings({k: v for k, v in event.items() if k != "payload"}, FIELD_CHARS)
    message = event.get("message")
    if isinstance(message, str):
        rest["message"], message_clipped = text.clip(message, EVENT_MESSAGE_CHARS)
        clipped = clipped or message_clipped
    if isinstance(payload, dict):
        rest["payload"] = clip_payload(payload)
        clipped = clipped or rest["payload"] is not payload
    else:
        rest["payload"] = payload
    return rest, clipped


def merge_events(known: Sequence[JSON], fresh: Iterable[JSON]) -> list[JSON]:
    """Events merged by id, oldest first; a fresh copy of an event replaces the known one."""
    by_id: dict[str, JSON] = {event["id"]: event for event in known}
    order: list[str] = [event["id"] for event in known]
    for event in fresh:
        if event["id"] not in by_id:
            order.append(event["id"])
        by_id[event["id"]] = event
    events = [by_id[event_id] for event_id in order]
    # Stable: events upstream stamped at the same instant keep the order upstream gave.
    events.sort(key=lambda event: event.get("created_at") or "")
    return events


def run_record_update(row: TrackedRun, source: str, result: RunEvents, *, now: float) -> JSON:
    """Store one ``/runs/{id}/events`` answer for ``row`` (owned by ``source``) and update the row."""
    run_id = str(row.run_id)
    previous = snapshots.run_read(run_id) or {}
    fresh = []
    clipped = False
    for event in result.events:
        data, event_clipped = event_clip(event.to_dict())
        clipped = clipped or event_clipped
        fresh.append(data)
    run, run_clipped = text.clip_strings(result.run.to_dict(), FIELD_CHARS)
    known = previous.get("events") if previous.get("source") == source else None
    events = merge_events(known or [], fresh)
    _log_unreadable_run(run_id, source, result, previous, known or [])
    record: JSON = {
        "run_id": run_id,
        "source": source,
        "fetched_at": now,
        "lookup": TrackedRun.Lookup.FOUND.value,
        "run": run,
        "events": events,
        "event_count": len(events),
        "events_truncated": result.truncated(EVENTS_LIMIT) or bool(previous.get("events_truncated")),
        # Some text was longer than any page shows and is stored clipped (event_count stays whole).
        "clipped": clipped or run_clipped or bool(previous.get("clipped") and known),
        "pr_url": result.pr_url() or previous.get("pr_url"),
        # failure_code, exit_code and delivery from the terminal event, for one plain reason.
        "outcome": result.outcome().to_dict(),
        "error_kind": None,
        "error_at": None,
    }
    snapshots.run_write(record, finished=_finished(record))

    status = result.run.status
    was_terminal = row.status in TERMINAL_STATUSES and row.finished_at is not None
    row.source = source
    row.lookup = TrackedRun.Lookup.FOUND
    row.status = status[:20]
    if status in TERMINAL_STATUSES:
        if was_terminal:
            # This was the one more fetch a terminal run gets, for events that
            # landed after its status changed; it is never fetched again.
            row.final_fetch_done = True
        else:
            row.finished_at = datetime.fromtimestamp(now, tz=UTC)
    else:
        row.finished_at = None
        row.final_fetch_done = False
    # An update, not save(): the operator may have untracked the run meanwhile,
    # and a fetch must not bring it back.
    still_tracked = TrackedRun.objects.filter(pk=row.pk).update(
        source=row.source,
        lookup=row.lookup,
        status=row.status,
        finished_at=row.finished_at,
        final_fetch_done=row.final_fetch_done,
    )
    if still_tracked and row.final_fetch_done:
        run_summary_write(row=row, record=record, repo_name=_repo_name(source, result.run.repo_id))
    return record


def _finished(record: JSON) -> bool:
    """True when the record says its run will not change: a terminal status, or no source owns it."""
    status = (record.get("run") or {}).get("status")
    return status in TERMINAL_STATUSES or record.get("lookup") == TrackedRun.Lookup.NOT_FOUND.value


def _repo_name(source: str, repo_id: str | None) -> str | None:
    """The repo's full name as the source's last ``/repos`` answer gives it."""
    if repo_id is None:
        return None
    repos = (snapshots.repos_read(source) or {}).get("repos", [])
    return next((r.get("full_name") for r in repos if r.get("id") == repo_id), None)


def _log_unreadable_run(
    run_id: str, source: str, result: RunEvents, previous: JSON, known: Sequence[JSON]
) -> None:
    """One log line when a run, or some of its events, first arrive unreadable (not on every fetch)."""
    was_unreadable = (previous.get("run") or {}).get("status") == UNREADABLE
    if result.run.status == UNREADABLE and not was_unreadable:
        logger.warning("unreadable run=%s source=%s problem=%s", run_id, source, result.run.error)
    known_ids = {event.get("id") for event in known}
    new = [event for event in result.events if event.type == UNREADABLE and event.id not in known_ids]
    if new:
        logger.warning(
            "unreadable events run=%s source=%s count=%d first=%s problem=%s",
            run_id,
            source,
            len(new),
            new[0].id,
            new[0].message,
        )


def run_record_error(run_id: str, source: str | None, kind: str, *, now: float) -> None:
    """Note on a run's record that its last fetch failed (the data it had stays, with its age)."""
    record = snapshots.run_read(run_id)
    if record is None:
        record = {
            "run_id": run_id,
            "source": source,
            "fetched_at": None,
            "lookup": TrackedRun.Lookup.NEW.value,
            "run": None,
            "events": [],
            "event_count": 0,
            "events_truncated": False,
            "pr_url": None,
        }
    record["error_kind"] = kind
    record["error_at"] = now
    snapshots.run_write(record, finished=_finished(record))


def run_record_not_found(row: TrackedRun, *, now: float) -> None:
    """No source owns the run: mark the row and its record ``not_found``."""
    run_id = str(row.run_id)
    record = snapshots.run_read(run_id) or {
        "run_id": run_id,
        "run": None,
        "events": [],
        "event_count": 0,
        "events_truncated": False,
        "pr_url": None,
    }
    record.update(
        {
            "source": None,
            "lookup": TrackedRun.Lookup.NOT_FOUND.value,
            "error_kind": "not_found",
            "error_at": now,
        }
    )
    record.setdefault("fetched_at", now)
    snapshots.run_write(record, finished=True)
    TrackedRun.objects.filter(pk=row.pk).update(lookup=TrackedRun.Lookup.NOT_FOUND, source="")
    # It ended for the board when no source owned it: from then on it ages out of the
    # ended runs with the retention window, like a run that finished.
    TrackedRun.objects.filter(pk=row.pk, finished_at__isnull=True).update(
        finished_at=datetime.fromtimestamp(now, tz=UTC)
    )


def sandboxes_record_update(source: str, sandboxes: Sequence[Sandbox], *, now: float) -> None:
    previous = snapshots.sandboxes_read(source) or {}
    was_unreadable = {s.get("id") for s in previous.get("sandboxes", []) if s.get("status") == UNREADABLE}
    stored = [text.clip_strings(sandbox.to_dict(), FIELD_CHARS)[0] for sandbox in sandboxes]
    snapshots.sandboxes_write(source, stored, fetched_at=now)
    for sandbox in sandboxes:
        if sandbox.status != UNREADABLE:
            snapshots.sandbox_history_append(sandbox.id, sandbox.status, seen_at=now)
        elif sandbox.id not in was_unreadable:
            # Once when it first arrives unreadable, not on every fetch.
            logger.warning("unreadable sandbox=%s source=%s problem=%s", sandbox.id, source, sandbox.error)


def repos_record_update(source: str, repos: Sequence[Repo], *, now: float) -> None:
    snapshots.repos_write(source, [repo.to_dict() for repo in repos], fetched_at=now)


def account_record_update(
    source: str, user: AccountUser | None, models: Sequence[Model] | None, *, now: float
) -> None:
    """Store a readiness check. ``{"user": null}`` proves nothing about the token (upstream
    answers it for a rate-limited or OAuth token too): the last known user is kept, with
    when it was known (``known_at``), and the record says ``unknown``."""
    previous = snapshots.account_read(source) or {}
    count = None if models is None else len(models)
    if user is None:
        kept = previous.get("user") if isinstance(previous.get("user"), dict) else None
        known_at = previous.get("known_at") if kept is not None else None
        if count is None and isinstance(previous.get("models"), int):
            count = previous["models"]
        snapshots.account_write(
            source, {"fetched_at": now, "user": kept, "models": count, "unknown": True, "known_at": known_at}
        )
        return
    snapshots.account_write(
        source,
        {"fetched_at": now, "user": user.to_dict(), "models": count, "unknown": False, "known_at": now},
    )


# Job runs asked for per automation (upstream's maximum): enough to judge its last 24 hours.
JOB_RUNS_LIMIT = 50


def automations_record_update(
    source: str, automations: Sequence[Automation], *, complete: bool, now: float
) -> None:
    """Store a source's automation list; the records of automations it no longer lists go."""
    previous = snapshots.automations_read_many([source]).get(source) or {}
    stored = [text.clip_strings(automation.to_dict(), FIELD_CHARS)[0] for automation in automations]
    listed = {automation.id for automation in automations}
    gone = {a.get("id") for a in previous.get("automations", []) if isinstance(a, dict)} - listed
    snapshots.automations_forget(source, [str(automation_id) for automation_id in gone if automation_id])
    snapshots.automations_write(source, stored, fetched_at=now, complete=complete)


def automation_record_update(source: str, automation: AutomationDetail, *, now: float) -> None:
    """Store one automation's ``runSummary`` (its job runs, stored on their own, are kept)."""
    previous = snapshots.automations_detail_read(source, [automation.id]).get(automation.id) or {}
    snapshots.automation_write(
        source,
        automation.id,
        {
            **previous,
            "fetched_at": now,
            "automation": text.clip_strings(automation.to_dict(), FIELD_CHARS)[0],
            "job_runs": previous.get("job_runs") or [],
        },
    )


def automation_runs_record_update(
    source: str, automation_id: str, job_runs: Sequence[JobRun], *, now: float
) -> None:
    """Store one automation's newest job runs (their ids are job-run ids, never agent runs')."""
    previous = snapshots.automations_detail_read(source, [automation_id]).get(automation_id) or {}
    snapshots.automation_write(
        source,
        automation_id,
        {
            "fetched_at": now,
            **previous,
            "job_runs": [text.clip_strings(run.to_dict(), FIELD_CHARS)[0] for run in job_runs],
            "job_runs_fetched_at": now,
        },
    )
