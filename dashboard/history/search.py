"""Reading run history under the history page's filters.

The same filters serve the page, its CSV/JSON export and ``manage.py board history``:
they come as URL parameters (or command options), a bad one is left out with one
sentence saying why, and the others still apply.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from time import monotonic
from typing import Any

from django import forms
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from dashboard.models import Acknowledgement, RunSummary

HISTORY_STATUSES = ("success", "failed", "cancelled")
PAGE_SIZE = 50
TEXT_MAX_CHARS = 200
# The order of the URL's parameters, and of the command's options.
FILTER_NAMES = ("repo", "branch", "status", "source", "harness", "failure", "q", "since", "until")


def _quoted(text: object, limit: int = 40) -> str:
    value = str(text)
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _text_field(what: str, fix: str, limit: int = TEXT_MAX_CHARS) -> forms.CharField:
    return forms.CharField(
        required=False,
        max_length=limit,
        error_messages={
            "max_length": f"The {what} is longer than %(limit_value)d characters; {fix}",
            "null_characters_not_allowed": f"The {what} holds a null character; {fix}",
        },
    )


class _DayField(forms.DateField):
    """A day as YYYY-MM-DD, with a sentence that quotes what was given."""

    def __init__(self, what: str) -> None:
        super().__init__(required=False, input_formats=["%Y-%m-%d"])
        self.what = what

    def to_python(self, value: Any) -> date | None:
        try:
            return super().to_python(value)
        except forms.ValidationError:
            raise forms.ValidationError(
                f"The {self.what} date {_quoted(value)} is not a day; write it as YYYY-MM-DD, like 2026-03-01."
            ) from None


class HistoryFilterForm(forms.Form):
    """The history filters from GET parameters (or a command's options)."""

    repo = _text_field("repo filter", "choose a repo from the list.")
    branch = _text_field("branch filter", "give the branch's full name.")
    status = forms.ChoiceField(
        required=False,
        choices=[("", "any outcome"), *((s, s) for s in HISTORY_STATUSES)],
        error_messages={
            "invalid_choice": "That outcome is not one a finished run has; choose success, failed or cancelled."
        },
    )
    source = _text_field("source filter", "choose a source from the list.", 40)
    harness = _text_field("harness filter", "choose a harness from the list.", 80)
    failure = _text_field("failure reason filter", "choose a reason from the list.", 60)
    q = _text_field("error search", "search for a shorter part of the error.")
    since = _DayField("from")
    until = _DayField("to")
    page = forms.IntegerField(
        required=False,
        min_value=1,
        error_messages={
            "invalid": "The page must be a whole number; showing the first page.",
            "min_value": "Pages start at 1; showing the first page.",
        },
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error(
                "until",
                f"The to date {until.isoformat()} is before the from date {since.isoformat()}; "
                "swap them, or leave one empty.",
            )
        return data


@dataclass(frozen=True)
class HistoryFilters:
    """What to show of the history; empty fields do not filter."""

    repo: str = ""
    branch: str = ""
    status: str = ""
    source: str = ""
    harness: str = ""
    failure: str = ""
    q: str = ""
    since: date | None = None
    until: date | None = None

    def query(self) -> dict[str, str]:
        """The filters as URL parameters, in a fixed order, without the empty ones."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value:
                out[f.name] = value.isoformat() if isinstance(value, date) else str(value)
        return out

    @property
    def active(self) -> bool:
        return bool(self.query())


@dataclass(frozen=True)
class HistoryRequest:
    """Parsed filters, the page asked for, and a sentence per bad value."""

    filters: HistoryFilters
    page: int
    problems: list[str]


def history_request_parse(params: Any) -> HistoryRequest:
    """Filters and page from a mapping of parameters; bad values are left out and explained."""
    form = HistoryFilterForm({k: params.get(k) for k in (*FILTER_NAMES, "page") if params.get(k) is not None})
    form.is_valid()
    data: dict[str, Any] = form.cleaned_data
    problems = [str(error) for field in form for error in field.errors]
    text = {name: str(data.get(name) or "").strip() for name in FILTER_NAMES[:7]}
    filters = HistoryFilters(
        **text,
        since=data.get("since"),
        until=data.get("until"),
    )
    return HistoryRequest(filters=filters, page=int(data.get("page") or 1), problems=problems)


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def history_runs(filters: HistoryFilters) -> QuerySet[RunSummary]:
    """The summaries matching ``filters``, newest finished first."""
    runs = RunSummary.objects.all()
    if filters.repo:
        # A full name has a slash, an id has none: one indexed column either way.
        runs = (
            runs.filter(repo_name=filters.repo)
            if "/" in filters.repo
            else runs.filter(repo_id=filters.repo.lower())
        )
    if filters.branch:
        runs = runs.filter(Q(branch_working=filters.branch) | Q(branch_base=filters.branch))
    if filters.status:
        runs = runs.filter(status=filters.status)
    if filters.source:
        runs = runs.filter(source=filters.source)
    if filters.harness:
        runs = runs.filter(harness=filters.harness)
    if filters.failure:
        runs = runs.filter(failure_code=filters.failure)
    if filters.q:
        runs = runs.filter(error__icontains=filters.q)
        if connection.vendor == "postgresql":
            # Only a run with an error can contain the text; saying so lets PostgreSQL read the
            # partial index of those runs (a fifth of them) instead of every row. SQLite would
            # read it too, and walk it slower than it scans the table (docs/benchmarks.md).
            runs = runs.exclude(error="")
    if filters.since:
        runs = runs.filter(finished_at__gte=_day_start(filters.since))
    if filters.until:
        runs = runs.filter(finished_at__lt=_day_start(filters.until + timedelta(days=1)))
    return runs.order_by("-finished_at", "-id")


# How long the filter lists are reused. A DISTINCT over every kept run is a full scan on
# PostgreSQL (it has no skip scan) and costs more than the rest of the page; a repo or a
# source that is new appears in the lists within this time.
CHOICES_SECONDS = 60.0
_choices_memo: tuple[float, dict[str, list[str]]] | None = None
_choices_lock = threading.Lock()


def history_choices(*, now: float | None = None) -> dict[str, list[str]]:
    """The values each list filter offers: every repo, source, harness and failure code kept."""
    global _choices_memo
    now = monotonic() if now is None else now
    with _choices_lock:
        if _choices_memo is not None and now - _choices_memo[0] < CHOICES_SECONDS:
            return _choices_memo[1]

    def distinct(name: str) -> list[str]:
        values = RunSummary.objects.order_by(name).values_list(name, flat=True).distinct()
        return [v for v in values if v]

    choices = {
        "repos": distinct("repo_name"),
        "sources": distinct("source"),
        "harnesses": distinct("harness"),
        "failures": distinct("failure_code"),
        "statuses": list(HISTORY_STATUSES),
    }
    with _choices_lock:
        _choices_memo = (now, choices)
    return choices


def history_choices_forget() -> None:
    """Make the next page read the lists afresh (tests, and after a purge)."""
    global _choices_memo
    with _choices_lock:
        _choices_memo = None


# What an export (and ``board history --json``) gives of each run, in this order.
EXPORT_FIELDS = (
    "run_id",
    "source",
    "repo_id",
    "repo_name",
    "branch_base",
    "branch_working",
    "harness",
    "status",
    "created_at",
    "finished_at",
    "duration_seconds",
    "pr_url",
    "pr_at",
    "delivery",
    "failure_code",
    "failure_reason",
    "exit_code",
    "error",
    "event_count",
)
# Kept as "" in the database, given as null: the board learned nothing there.
_EMPTY_IS_NULL = frozenset(EXPORT_FIELDS) - {"source", "status", "event_count"}


def export_row(values: dict[str, Any]) -> dict[str, Any]:
    """A summary's exported fields (from ``QuerySet.values``) as JSON values."""
    out: dict[str, Any] = {}
    for name in EXPORT_FIELDS:
        value = values[name]
        if isinstance(value, datetime):
            value = value.isoformat()
        elif name == "run_id":
            value = str(value)
        elif value == "" and name in _EMPTY_IS_NULL:
            value = None
        out[name] = value
    return out


def run_acknowledgements(run_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each run's acknowledgements (linked by run id), oldest first, in one query."""
    found: dict[str, list[dict[str, Any]]] = {}
    if not run_ids:
        return found
    acks = Acknowledgement.objects.filter(target=Acknowledgement.Target.RUN, target_id__in=run_ids).order_by(
        "acknowledged_at"
    )
    for ack in acks.values("target_id", "problem", "username", "acknowledged_at", "note"):
        found.setdefault(str(ack["target_id"]), []).append(
            {
                "problem": ack["problem"],
                "by": ack["username"],
                "at": ack["acknowledged_at"].isoformat(),
                "note": ack["note"] or None,
            }
        )
    return found


def export_rows(runs: QuerySet[RunSummary], *, chunk_size: int = 1000) -> Iterator[dict[str, Any]]:
    """The runs' exported fields with their acknowledgements, read in chunks (never all rows at once)."""
    batch: list[dict[str, Any]] = []

    def flush() -> Iterator[dict[str, Any]]:
        acks = run_acknowledgements([row["run_id"] for row in batch])
        for row in batch:
            row["acknowledgements"] = acks.get(row["run_id"], [])
            yield row
        batch.clear()

    for values in runs.values(*EXPORT_FIELDS).iterator(chunk_size=chunk_size):
        batch.append(export_row(values))
        if len(batch) >= chunk_size:
            yield from flush()
    yield from flush()
