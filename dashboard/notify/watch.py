"""The watcher: reads the composed board and the poller's heartbeat, and notices transitions.

It runs in the notifier (a Celery worker on the ``notify`` queue, see
``tasks``), never in the poller: so "the poller stopped reporting" is noticed by
a process that is not the poller. It depends on the composed board's fields, not
on the code that writes them: ``status``, ``stall_reason`` (absent: no stall
events), ``acknowledged`` and ``fixed_by`` (absent: no "resolved" events), and
each source's ``state`` and ``last_success_at``.

Each transition has a key that names it once (a run's failure, one stall of a
run since its last update, one episode of a source's problem since its last
success, one silence of the poller since its last tick), so seeing it again on
the next scan, or after a restart, stores and sends nothing new.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils.text import slugify

from dashboard import snapshots
from dashboard.board import selectors
from dashboard.models import NotifyEvent
from dashboard.mogplex.failures import failure_reason
from dashboard.mogplex.models import http_url
from dashboard.notify.delivery import Found, events_record
from dashboard.notify.messages import SOURCE_STATES

JSON = dict[str, Any]
# A failure of an agent run or of an automation's job run: told once, then once more when resolved.
FAILURE_KINDS = frozenset({"run_failed", "job_run_failed"})


def _run_id(row: JSON, key: str = "run_id") -> str | None:
    try:
        return str(uuid.UUID(str(row.get(key))))
    except ValueError:
        return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def run_facts(row: JSON, run_id: str) -> JSON:
    """What a message about this run says (upstream text is neutralised when written)."""
    record = snapshots.run_read(run_id) or {}
    outcome: JSON = record.get("outcome") or {}
    code = outcome.get("failure_code")
    exit_code = outcome.get("exit_code")
    reason = failure_reason(
        code if isinstance(code, str) else None, exit_code if isinstance(exit_code, int) else None
    )
    return {
        "run_id": run_id,
        "repo": _text(row.get("repo_name")) or _text(row.get("repo_id")),
        "branch": _text(row.get("branch_base")),
        "working_branch": _text(row.get("branch_working")),
        "source": _text(row.get("source")),
        "reason": reason,
        "error": _text(row.get("error")),
        "pr_url": http_url(row.get("pr_url")),
        "delivery": outcome.get("delivery") if isinstance(outcome.get("delivery"), str) else None,
        "stall_reason": _text(row.get("stall_reason")) or None,
        "board_url": settings.BOARD_PUBLIC_URL.rstrip("/") + reverse("run-detail", args=[run_id]),
        "mogplex_url": settings.MOGPLEX_APP_URL.rstrip("/") + f"/runs/{run_id}",
    }


def job_run_facts(row: JSON, job_run_id: str) -> JSON:
    """What a message about an automation's failed job run says (no Mogplex link: it has none in v1)."""
    automation = _text(row.get("automation_name")) or _text(row.get("automation_id"))
    anchor = f"#automation-{slugify(_text(row.get('source')))}-{slugify(_text(row.get('automation_id')))}"
    return {
        "job_run_id": job_run_id,
        "automation": automation or "?",
        "repo": _text(row.get("repo_name")) or _text(row.get("repo_id")),
        "source": _text(row.get("source")),
        "error": _text(row.get("error")),
        "board_url": settings.BOARD_PUBLIC_URL.rstrip("/") + reverse("automations") + anchor,
    }


def _resolution(row: JSON) -> str | None:
    # The failure's own resolution, as the attention lane reads it (a stall's acknowledgement is not one).
    resolution = selectors.problem_resolution(row, "failed")
    if resolution is None:
        return None
    if resolution["how"] == "acknowledged":
        who = _text(resolution.get("by"))
        return f"acknowledged by {who}" if who else "acknowledged"
    if resolution.get("job_run_id"):
        return "fixed by a later successful job run of the same automation"
    return "fixed by a later run on the same branch"


def board_events(
    board: JSON | None, heartbeat: float | None, now: float, *, known: Collection[str] = ()
) -> tuple[list[Found], dict[str, str]]:
    """The conditions on the board now, and the failed runs already resolved (run id -> how).

    Events whose key is in ``known`` are stored already: their facts are not gathered again.
    """
    found: list[Found] = []
    resolved: dict[str, str] = {}
    for row in (board or {}).get("runs") or []:
        if not isinstance(row, dict):
            continue
        run_id = _run_id(row)
        if run_id is None:
            continue
        status = row.get("status")
        stall = row.get("stall_reason")
        if status != "failed" and not (isinstance(stall, str) and stall):
            continue
        if status == "failed":
            key, kind = f"run_failed:{run_id}", "run_failed"
            how = _resolution(row)
            if how is not None:
                resolved[run_id] = how
        else:
            episode = _text(row.get("updated_at")) or _text(row.get("created_at"))
            key, kind = f"run_stalled:{run_id}:{episode}", "run_stalled"
        facts = {} if key in known else run_facts(row, run_id)
        found.append(
            Found(
                key,
                kind,
                facts,
                repo=str(facts.get("repo") or ""),
                source=str(facts.get("source") or ""),
                subject=run_id,
                open=kind == "run_failed",
            )
        )
    for row in (board or {}).get("job_runs") or []:
        job_run_id = _run_id(row, "id") if isinstance(row, dict) else None
        if job_run_id is None or row.get("status") != "failed":
            continue
        key = f"job_run_failed:{job_run_id}"
        how = _resolution(row)
        if how is not None:
            resolved[job_run_id] = how
        facts = {} if key in known else job_run_facts(row, job_run_id)
        found.append(
            Found(
                key,
                "job_run_failed",
                facts,
                repo=str(facts.get("repo") or ""),
                source=str(facts.get("source") or ""),
                subject=job_run_id,
                open=True,
            )
        )
    for source in (board or {}).get("sources") or []:
        if not isinstance(source, dict):
            continue
        state, name = source.get("state"), _text(source.get("name"))
        if state in SOURCE_STATES and name:
            since = source.get("last_success_at") or 0
            found.append(
                Found(
                    f"source_problem:{name}:{state}:{since}",
                    "source_problem",
                    {"source": name, "state": state},
                    source=name,
                    subject=name,
                    open=True,
                )
            )
    stale = settings.BOARD_STALE_SECONDS
    if heartbeat is not None and now - heartbeat > stale:
        found.append(
            Found(
                f"poller_down:{heartbeat!r}",
                "poller_down",
                {"last_tick_at": heartbeat, "stale_seconds": stale},
                subject="poller",
                open=True,
            )
        )
    return found, resolved


def _close(event: NotifyEvent, found: list[Found], kind: str, facts: JSON) -> None:
    NotifyEvent.objects.filter(pk=event.pk).update(open=False)
    found.append(
        Found(f"{kind}:{event.key}", kind, facts, repo=event.repo, source=event.source, subject=event.subject)
    )


def board_watch(board: JSON | None, heartbeat: float | None, *, now: datetime) -> list[NotifyEvent]:
    """Store what changed since the last scan: new conditions, and the end of those that ended."""
    run_ids = [r.get("run_id") for r in (board or {}).get("runs") or [] if isinstance(r, dict)]
    run_ids += [r.get("id") for r in (board or {}).get("job_runs") or [] if isinstance(r, dict)]
    known = set(
        NotifyEvent.objects.filter(
            kind__in=FAILURE_KINDS | {"run_stalled"}, subject__in=[str(i) for i in run_ids if i]
        ).values_list("key", flat=True)
    )
    found, resolved = board_events(board, heartbeat, now.timestamp(), known=known)
    open_events = {e.key: e for e in NotifyEvent.objects.filter(open=True)}
    # A failure resolved before the watcher first saw it is not worth two messages.
    found = [
        f
        for f in found
        if not (f.kind in FAILURE_KINDS and f.subject in resolved and f.key not in open_events)
    ]
    current = {f.key for f in found}
    sources = {
        _text(s.get("name")): s.get("state")
        for s in (board or {}).get("sources") or []
        if isinstance(s, dict)
    }
    endings: list[Found] = []
    for key, event in open_events.items():
        if event.kind in FAILURE_KINDS and event.subject in resolved:
            _close(event, endings, "failure_resolved", {**event.facts, "how": resolved[event.subject]})
        elif event.kind == "source_problem" and key not in current:
            state = sources.get(event.source)
            if state == "ok":
                _close(
                    event,
                    endings,
                    "source_recovered",
                    {"source": event.source, "was": event.facts.get("state")},
                )
            elif state in SOURCE_STATES or event.source not in sources:
                # Another problem (announced on its own) or a source no longer configured.
                NotifyEvent.objects.filter(pk=event.pk).update(open=False)
        elif event.kind == "poller_down" and key not in current and heartbeat is not None:
            _close(event, endings, "poller_back", {})
    return events_record(found + endings, now=now)
