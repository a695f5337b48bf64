"""Simulated automations (Mogplex's flows) and their job runs, served as ``/automations`` serves them.

Shapes follow ``lib/mogplex-api/automations.ts`` (``presentMogplexApiAutomation``,
the cursor of ``automations.types.ts``) and ``lib/flows/api.ts`` (a job run's
record with ``repo``, ``agent``, ``latest_dispatch_event``; the detail with its
``ai_calls``, whose ``events`` are raw and uncleaned). Job-run ids are their own
id space: ``/runs/{id}`` knows none of them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dashboard.simulator.seed import Repo

AUTOMATION_STATUSES = ("active", "inactive")
JOB_RUN_STATUSES = ("pending", "running", "success", "failed", "cancelled")
TERMINAL_JOB_RUN_STATUSES = frozenset({"success", "failed", "cancelled"})
SOURCE_TYPES = ("pull_request.opened", "issue_comment.created", "schedule", "push")

_CURSOR_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$")
_CURSOR_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_BASE64URL_CHARS = re.compile(r"[^A-Za-z0-9_\-+/]")


def encode_cursor(created_at: str, automation_id: str) -> str:
    """``encodeMogplexApiAutomationCursor``: base64url (unpadded) of ``{createdAt, id}``."""
    raw = json.dumps({"createdAt": created_at, "id": automation_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(raw: str | None) -> tuple[str, str] | None:
    """``parseMogplexApiAutomationCursor``: ``None`` for no cursor; raises ``ValueError`` for a bad one."""
    if not raw:
        return None
    # Node's base64url decoder skips characters outside its alphabet instead of failing.
    text = _BASE64URL_CHARS.sub("", raw).replace("+", "-").replace("/", "_")
    try:
        parsed = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        raise ValueError("Invalid cursor") from None
    created_at = parsed.get("createdAt") if isinstance(parsed, dict) else None
    automation_id = parsed.get("id") if isinstance(parsed, dict) else None
    if not (isinstance(created_at, str) and _CURSOR_DATE.match(created_at)):
        raise ValueError("Invalid cursor")
    try:
        datetime.fromisoformat(created_at)
    except ValueError:
        raise ValueError("Invalid cursor") from None
    if not (isinstance(automation_id, str) and _CURSOR_ID.match(automation_id)):
        raise ValueError("Invalid cursor")
    return created_at, automation_id


def _micros(moment: float) -> int:
    # Compared at the database's precision: what a cursor's text can say.
    return round(moment * 1_000_000)


def _micros_of(stamp: str) -> int:
    parsed = datetime.fromisoformat(stamp)
    return int(parsed.replace(microsecond=0).timestamp()) * 1_000_000 + parsed.microsecond


@dataclass
class AiCallEvent:
    """A raw ``ai_call_events`` row, as the job-run detail returns it (never cleaned)."""

    id: str
    ai_call_id: str
    user_id: str
    event_type: str
    tool_name: str | None
    message: str | None
    payload: Any
    created_at: float


@dataclass
class JobRun:
    """One job run of an automation; ``metadata`` carries the repo, like Mogplex's."""

    id: str
    automation_id: str
    user: str
    status: str
    repo: Repo | None
    source_type: str
    created_at: float
    started_at: float | None = None
    completed_at: float | None = None
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    runtime_run_id: str | None = None
    cancel_requested_at: float | None = None
    cancelled_at: float | None = None
    ai_call_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    ai_call_events: list[AiCallEvent] = field(default_factory=list)
    dispatch: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Automation:
    id: str
    user: str
    installation_id: int
    name: str
    description: str | None
    notes: str | None
    status: str
    published: bool
    created_at: float
    updated_at: float
    version_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    runs: list[JobRun] = field(default_factory=list)


class AutomationBook:
    """The automations and job runs of every user; times come from ``now`` and are written by ``stamp``."""

    def __init__(self, now: Callable[[], float], stamp: Callable[[float], str]) -> None:
        self._now = now
        self._stamp = stamp
        self.automations: dict[str, Automation] = {}
        self.job_runs: dict[str, JobRun] = {}

    def clear(self) -> None:
        self.automations.clear()
        self.job_runs.clear()

    def prune(self, before: float) -> int:
        """Forget job runs that ended before ``before``; return how many went."""
        old = {
            run.id
            for run in self.job_runs.values()
            if run.completed_at is not None and run.completed_at < before
        }
        for automation in self.automations.values():
            automation.runs = [run for run in automation.runs if run.id not in old]
        for run_id in old:
            del self.job_runs[run_id]
        return len(old)

    # --- building --------------------------------------------------------------

    def create(
        self,
        user: str,
        installation_id: int,
        *,
        name: str,
        description: str | None = None,
        notes: str | None = None,
        status: str = "active",
        published: bool = True,
    ) -> Automation:
        if status not in AUTOMATION_STATUSES:
            raise ValueError(f"unknown automation status {status!r}; use one of {list(AUTOMATION_STATUSES)}")
        now = self._now()
        automation = Automation(
            id=str(uuid.uuid4()),
            user=user,
            installation_id=installation_id,
            name=name,
            description=description,
            notes=notes,
            status=status,
            published=published,
            created_at=now,
            updated_at=now,
        )
        self.automations[automation.id] = automation
        return automation

    def run_create(
        self,
        automation_id: str,
        repo: Repo | None,
        *,
        source_type: str = "pull_request.opened",
        age_seconds: float = 0.0,
    ) -> JobRun:
        """A ``pending`` job run, created ``age_seconds`` ago (to show one waiting for minutes)."""
        automation = self.automations[automation_id.lower()]
        now = self._now() - max(0.0, age_seconds)
        run = JobRun(
            id=str(uuid.uuid4()),
            automation_id=automation.id,
            user=automation.user,
            status="pending",
            repo=repo,
            source_type=source_type,
            created_at=now,
            runtime_run_id="run_" + uuid.uuid4().hex[:20],
        )
        run.dispatch.append(self._dispatch("enqueue", "queued", None, now))
        automation.runs.append(run)
        self.job_runs[run.id] = run
        return run

    def _dispatch(self, kind: str, outcome: str, reason: str | None, moment: float) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "event_kind": kind,
            "outcome": outcome,
            "reason": reason,
            "metadata": None,
            "created_at": moment,
        }

    def run_move(self, job_run_id: str, status: str, *, error: str | None = None) -> JobRun:
        """Move a job run: ``running`` starts it (with an ai call), a terminal status ends it."""
        if status not in JOB_RUN_STATUSES:
            raise ValueError(f"unknown job run status {status!r}; use one of {list(JOB_RUN_STATUSES)}")
        run = self.job_runs[job_run_id.lower()]
        now = self._now()
        if status == "running" and run.started_at is None:
            run.started_at = now
            run.dispatch.append(self._dispatch("start", "started", None, now))
            self._ai_event(run, "started", "Agent started", {"model": "openai/gpt-5-codex"}, now)
            self._ai_event(
                run,
                "tool_started",
                "$ gh pr diff",
                # Raw upstream: nothing here is redacted before the API serves it.
                {"input": {"command": "gh pr diff"}, "env": {"GH_TOKEN": "ghs_" + "x" * 16}},
                now,
                tool_name="bash",
            )
        if status in TERMINAL_JOB_RUN_STATUSES:
            if run.started_at is None:
                run.started_at = now
            run.completed_at = now
            run.input_tokens = 12_000 + len(run.ai_call_events) * 850
            run.output_tokens = 1_400 + len(run.ai_call_events) * 90
            if status == "failed":
                run.error = error or "Agent run exited with code 1."
                self._ai_event(run, "failed", run.error, {"exit_code": 1}, now)
                run.dispatch.append(self._dispatch("control", "failed", run.error, now))
            elif status == "cancelled":
                run.cancel_requested_at = run.cancelled_at = now
                run.dispatch.append(self._dispatch("control", "cancelled", "cancelled by user", now))
            else:
                self._ai_event(run, "finished", "Review posted", {"comments": 3}, now)
                run.dispatch.append(self._dispatch("control", "completed", None, now))
        elif error is not None:
            run.error = error
        run.status = status
        self.automations[run.automation_id].updated_at = now
        return run

    def _ai_event(
        self,
        run: JobRun,
        event_type: str,
        message: str,
        payload: dict[str, Any],
        moment: float,
        tool_name: str | None = None,
    ) -> None:
        run.ai_call_events.append(
            AiCallEvent(
                id=str(uuid.uuid4()),
                ai_call_id=run.ai_call_id,
                user_id=run.user,
                event_type=event_type,
                tool_name=tool_name,
                message=message,
                payload=payload,
                created_at=moment,
            )
        )

    # --- reading, as the routes do -----------------------------------------------

    def owned(self, user: str, automation_id: str) -> Automation | None:
        automation = self.automations.get(automation_id.lower())
        return automation if automation is not None and automation.user == user else None

    def page(self, user: str, *, limit: int, cursor: tuple[str, str] | None) -> dict[str, Any]:
        """``listMogplexApiAutomations``: newest first, then id descending, and the next cursor."""
        rows = sorted(
            (a for a in self.automations.values() if a.user == user),
            key=lambda a: (a.created_at, a.id),
            reverse=True,
        )
        if cursor is not None:
            after, after_id = _micros_of(cursor[0]), cursor[1].lower()
            rows = [
                a
                for a in rows
                if _micros(a.created_at) < after or (_micros(a.created_at) == after and a.id < after_id)
            ]
        page = rows[:limit]
        next_cursor = (
            encode_cursor(self._stamp(page[-1].created_at), page[-1].id)
            if len(rows) > limit and page
            else None
        )
        return {"automations": [self.summary_json(a) for a in page], "nextCursor": next_cursor}

    def summary_json(self, automation: Automation) -> dict[str, Any]:
        return {
            "id": automation.id,
            "installationId": automation.installation_id,
            "name": automation.name,
            "description": automation.description,
            "status": automation.status,
            "publishedVersionId": automation.version_id if automation.published else None,
            "createdAt": self._stamp(automation.created_at),
            "updatedAt": self._stamp(automation.updated_at),
        }

    def detail_json(self, automation: Automation) -> dict[str, Any]:
        """``presentMogplexApiAutomation``, with the ``runSummary`` of its job runs."""
        runs = sorted(automation.runs, key=lambda r: r.created_at, reverse=True)
        day_ago = self._now() - 24 * 3600
        graph = {"nodes": [{"id": "start", "type": "start"}, {"id": "agent", "type": "agent"}], "edges": []}
        summary = self.summary_json(automation)
        del summary["publishedVersionId"]
        return {
            **summary,
            "notes": automation.notes,
            "draftGraph": graph,
            "publishedVersion": {
                "id": automation.version_id,
                "versionNumber": 1,
                "graph": graph,
                "createdAt": self._stamp(automation.created_at),
            }
            if automation.published
            else None,
            "runSummary": {
                "lastRunId": runs[0].id if runs else None,
                "lastRunStatus": runs[0].status if runs else None,
                "runningCount": sum(1 for r in runs if r.status == "running"),
                "pendingCount": sum(1 for r in runs if r.status == "pending"),
                "failed24h": sum(1 for r in runs if r.status == "failed" and r.created_at >= day_ago),
            },
        }

    def runs_json(self, automation: Automation, limit: int) -> list[dict[str, Any]]:
        """``listOwnedFlowRuns``: newest first."""
        runs = sorted(automation.runs, key=lambda r: r.created_at, reverse=True)[:limit]
        return [self.run_json(run) for run in runs]

    def run_json(self, run: JobRun) -> dict[str, Any]:
        """A job run as ``toFlowRunRecord`` presents it in the list."""
        stamp = self._stamp
        latest = run.dispatch[-1] if run.dispatch else None
        duration = (
            round((run.completed_at - run.started_at) * 1000)
            if run.completed_at is not None and run.started_at is not None
            else None
        )
        automation = self.automations[run.automation_id]
        return {
            "id": run.id,
            "assignment_id": None,
            "trigger_id": None,
            "flow_id": run.automation_id,
            "flow_version_id": automation.version_id,
            "runtime_provider": "trigger",
            "runtime_run_id": run.runtime_run_id,
            "workflow_run_id": None,
            "retry_of_job_run_id": None,
            "status": run.status,
            "created_at": stamp(run.created_at),
            "started_at": None if run.started_at is None else stamp(run.started_at),
            "completed_at": None if run.completed_at is None else stamp(run.completed_at),
            "input_tokens": run.input_tokens,
            "output_tokens": run.output_tokens,
            "duration_ms": duration,
            "error": run.error,
            "start_attempts": 0 if run.started_at is None else 1,
            "last_start_attempt_at": None if run.started_at is None else stamp(run.started_at),
            "last_start_error": None,
            "last_start_source": None if run.started_at is None else "dispatcher",
            "cancel_requested_at": None
            if run.cancel_requested_at is None
            else stamp(run.cancel_requested_at),
            "cancelled_at": None if run.cancelled_at is None else stamp(run.cancelled_at),
            "cancel_reason": "cancelled by user" if run.cancelled_at is not None else None,
            "cancel_error": None,
            "metadata": {
                "source": "github",
                "source_type": run.source_type,
                "flow_id": run.automation_id,
                "repo_id": run.repo.id if run.repo else None,
                "repo_full_name": run.repo.full_name if run.repo else None,
            },
            "source_kind": "flow",
            "source_type": run.source_type,
            "repo": {
                "id": run.repo.id if run.repo else None,
                "full_name": run.repo.full_name if run.repo else None,
            },
            "agent": {"id": None, "name": None, "slug": None},
            "cost_usd": None,
            "latest_ai_call": None,
            "repairable": run.status == "failed",
            "requeueable": run.status in ("failed", "cancelled"),
            "cancelable": run.status in ("pending", "running"),
            "active_wait_count": 0,
            "latest_dispatch_event": None
            if latest is None
            else {**latest, "created_at": stamp(latest["created_at"])},
            "node_runs": [],
        }

    def run_detail_json(self, run: JobRun) -> dict[str, Any]:
        """``loadOwnedFlowRunDetail``: the record plus dispatch events and the raw ``ai_calls``."""
        stamp = self._stamp
        detail = self.run_json(run)
        started = run.started_at
        calls = (
            []
            if started is None
            else [
                {
                    "id": run.ai_call_id,
                    "user_id": run.user,
                    "job_run_id": run.id,
                    "type": "agent",
                    "model": "openai/gpt-5-codex",
                    "status": "streaming" if run.status == "running" else run.status,
                    "error": run.error,
                    "started_at": stamp(started),
                    "completed_at": None if run.completed_at is None else stamp(run.completed_at),
                    "total_tokens": (run.input_tokens or 0) + (run.output_tokens or 0) or None,
                    "tool_calls_count": sum(1 for e in run.ai_call_events if e.event_type == "tool_started"),
                    "metadata": {"source": "automation", "flow_id": run.automation_id},
                    "events": [
                        {
                            "id": event.id,
                            "ai_call_id": event.ai_call_id,
                            "user_id": event.user_id,
                            "event_type": event.event_type,
                            "tool_name": event.tool_name,
                            "message": event.message,
                            "payload": event.payload,
                            "created_at": stamp(event.created_at),
                        }
                        for event in run.ai_call_events
                    ],
                }
            ]
        )
        latest_call = calls[-1] if calls else None
        return {
            **detail,
            "latest_ai_call": None
            if latest_call is None
            else {
                key: latest_call[key]
                for key in ("id", "status", "model", "total_tokens", "tool_calls_count", "started_at")
            },
            "dispatch_events": [
                {**event, "created_at": stamp(event["created_at"])} for event in run.dispatch
            ],
            "ai_calls": calls,
            "review_findings": [],
            "waits": [],
        }
