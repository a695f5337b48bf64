"""The live run page: one run's record turned into what its page shows, and the page's version.

The page refreshes like the board: it sends the version it shows, and the view
answers 204 when the run's record (read from the snapshot store, never upstream)
would render the same page. The version covers the record's content (not its
fetch time, which the 204 carries in ``X-Board-Fetched``), the page's own choices
(order, event type) and, for an active run, whether its data has gone stale.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import QueryDict

from dashboard.board import selectors
from dashboard.models import RunSummary
from dashboard.mogplex.failures import failure_reason
from dashboard.mogplex.models import parse_timestamp

JSON = dict[str, Any]

ORDERS = ("newest", "oldest")
EVENT_TYPE_MAX_CHARS = 60
# A payload longer than this (as pretty JSON) is folded behind its size; shorter ones show as they are.
PAYLOAD_FOLD_CHARS = 240
TERMINAL_EVENTS = ("finished", "failed", "cancelled")
# The fetch-time key of the run page's badge in X-Board-Fetched.
FRESHNESS_KEY = "run"


@dataclass(frozen=True)
class RunPageParams:
    order: str = "newest"
    event_type: str = ""

    def query(self) -> dict[str, str]:
        out = {}
        if self.order != "newest":
            out["order"] = self.order
        if self.event_type:
            out["type"] = self.event_type
        return out


def run_page_params(query: QueryDict) -> tuple[RunPageParams, list[str]]:
    """Order and event type from the URL; a bad value is left out with one sentence."""
    problems: list[str] = []
    order = query.get("order", "").strip() or "newest"
    if order not in ORDERS:
        problems.append(
            f"{_quoted(order)} is not an order; use order=newest or order=oldest. Showing newest first."
        )
        order = "newest"
    event_type = query.get("type", "").strip()
    if len(event_type) > EVENT_TYPE_MAX_CHARS or not event_type.isprintable():
        problems.append(
            f"The event type {_quoted(event_type)} cannot be an event type; choose one from the list. "
            "Showing every type."
        )
        event_type = ""
    return RunPageParams(order=order, event_type=event_type), problems


def _quoted(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


@dataclass(frozen=True)
class RunPage:
    """Everything the run page shows that depends on the record."""

    version: str
    status: str
    final: bool
    ended_at: float | None
    took: float | None
    failure_reason: str
    delivery: str
    events: list[JSON]
    event_types: list[str]
    event_total: int
    freshness: selectors.Freshness
    overall: str
    fetched: dict[str, float | None] = field(default_factory=dict)


def _epoch(value: Any) -> float | None:
    moment = parse_timestamp(value)
    return None if moment is None else moment.timestamp()


def _ended_at(run: JSON, events: list[JSON], row: JSON) -> float | None:
    for event in reversed(events):
        if event.get("type") in TERMINAL_EVENTS:
            at = _epoch(event.get("created_at"))
            if at is not None:
                return at
            break
    finished = row.get("finished_at")
    return _epoch(run.get("updated_at")) or (float(finished) if isinstance(finished, int | float) else None)


def _event_view(event: JSON) -> JSON:
    shown = selectors.event_shape(event)
    payload = shown.get("payload")
    text = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False, default=str) if payload else ""
    shown["payload_chars"] = len(text)
    shown["payload_folded"] = len(text) > PAYLOAD_FOLD_CHARS
    return shown


def run_page(record: JSON, row: JSON, params: RunPageParams, now: float, *, also: Any = None) -> RunPage:
    """The run page's content for a stored run record and its board row.

    ``also``: anything else the page shows (the attention state), folded into the version.
    """
    run = selectors.run_detail_shape(record.get("run"))
    status = str(run.get("status") or record.get("lookup") or "unknown")
    stored = [e for e in record.get("events") or [] if isinstance(e, dict)]
    final = status in selectors.TERMINAL_RUN_STATUSES and record.get("lookup") != "not_found"
    raw_outcome = record.get("outcome")
    outcome: JSON = raw_outcome if isinstance(raw_outcome, dict) else {}
    code = outcome.get("failure_code") if isinstance(outcome.get("failure_code"), str) else None
    exit_code = outcome.get("exit_code") if isinstance(outcome.get("exit_code"), int) else None
    ended_at = _ended_at(run, stored, row) if final else None
    created = _epoch(run.get("created_at"))
    took = (
        ended_at - created if ended_at is not None and created is not None and ended_at >= created else None
    )
    types = sorted({str(e.get("type")) for e in stored if e.get("type")})
    chosen = [e for e in stored if not params.event_type or e.get("type") == params.event_type]
    if params.order == "newest":
        chosen.reverse()
    fetched_at = record.get("fetched_at") if isinstance(record.get("fetched_at"), int | float) else None
    fresh = selectors.freshness(fetched_at, now, key=FRESHNESS_KEY)
    stale = not final and fresh.stale
    content = {k: v for k, v in record.items() if k not in ("fetched_at",)}
    signature = json.dumps(
        [content, row.get("repo_name"), row.get("stall_reason"), params.query(), stale, final, also],
        sort_keys=True,
        default=str,
    )
    version = hashlib.sha1(signature.encode(), usedforsecurity=False).hexdigest()[:16]
    if status == "failed" or row.get("stall_reason"):
        overall = "attention"
    elif final:
        overall = "clear"
    else:
        overall = "active"
    return RunPage(
        version=version,
        status=status,
        final=final,
        ended_at=ended_at,
        took=took,
        failure_reason=failure_reason(code, exit_code) or "",
        delivery=str(outcome.get("delivery") or ""),
        events=[_event_view(e) for e in chosen],
        event_types=types,
        event_total=len(stored),
        freshness=fresh,
        overall=overall,
        fetched={FRESHNESS_KEY: fetched_at},
    )


@dataclass(frozen=True)
class KeptRunPage:
    """A finished run's page once its record has left Redis: what its history summary kept."""

    version: str
    summary: RunSummary
    ended_at: float
    created_at: float | None
    acknowledgements: list[JSON]
    overall: str = "clear"
    final: bool = True
    fetched: dict[str, float | None] = field(default_factory=dict)


def kept_run_page(summary: RunSummary, acknowledgements: list[JSON]) -> KeptRunPage:
    """The run page of a run known only from history (its events lived in Redis and are gone).

    It never changes but for a new acknowledgement, so its version covers the summary and those;
    a page left open when the record expired gets it once, then 204s.
    """
    shown = {f.attname: getattr(summary, f.attname) for f in RunSummary._meta.concrete_fields}
    signature = json.dumps(["kept", shown, acknowledgements], sort_keys=True, default=str)
    return KeptRunPage(
        version=hashlib.sha1(signature.encode(), usedforsecurity=False).hexdigest()[:16],
        summary=summary,
        ended_at=summary.finished_at.timestamp(),
        created_at=None if summary.created_at is None else summary.created_at.timestamp(),
        acknowledgements=acknowledgements,
    )


def run_page_refresh_seconds() -> int:
    return int(settings.BOARD_PAGE_REFRESH_SECONDS)
