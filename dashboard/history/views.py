"""The history page and its exports. They read the database only (no Redis, no upstream)."""

from __future__ import annotations

import zoneinfo
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from dashboard.board import selectors
from dashboard.board.templatetags import age_text, safe_url
from dashboard.board.views import _viewer_time_zone as viewer_time_zone
from dashboard.board.views import board_login_required
from dashboard.history.export import history_csv, history_json
from dashboard.history.search import (
    PAGE_SIZE,
    history_choices,
    history_request_parse,
    history_runs,
    run_acknowledgements,
)
from dashboard.history.trends import CHART_HEIGHT, CHART_WIDTH, PERIODS, trends_compute
from dashboard.models import RunSummary


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def history_row(
    summary: RunSummary, zone: zoneinfo.ZoneInfo, acknowledgements: list[dict[str, Any]]
) -> dict[str, Any]:
    """What a history row shows, clipped and formatted here once (50 rows of template filters cost more)."""
    finished = summary.finished_at.astimezone(zone)
    status = summary.status
    return {
        "run_id": str(summary.run_id),
        "finished_iso": finished.isoformat(timespec="seconds"),
        "finished": finished.strftime("%Y-%m-%d %H:%M"),
        "status": status,
        "status_word": _clip(status.replace("_", " "), 20),
        "status_icon": selectors.status_icon(status),
        "status_tone": selectors.status_tone(status),
        "repo": _clip(summary.repo_name or summary.repo_id or "(repo unknown)", 40),
        "branch": _clip(summary.branch_working or summary.branch_base or "—", 40),
        "harness": _clip(summary.harness or "—", 24),
        "source": _clip(summary.source, 24),
        "took": "—" if summary.duration_seconds is None else age_text(summary.duration_seconds),
        "pr_url": safe_url(summary.pr_url),
        "no_changes": summary.delivery == "no_changes",
        "reason": _clip(summary.failure_reason, 60),
        "error": _clip(summary.error, 200),
        "acknowledged": [
            {"by": _clip(str(a["by"]), 40), "note": _clip(a["note"] or "", 120), "problem": a["problem"]}
            for a in acknowledgements
        ],
    }


def _export_name(extension: str) -> str:
    return f"mogplex-history-{timezone.now():%Y%m%d-%H%M%S}.{extension}"


@require_GET
@board_login_required
def history(request: HttpRequest) -> HttpResponse:
    """Finished runs, newest first, under the filters in the URL; a page of ``PAGE_SIZE``."""
    asked = history_request_parse(request.GET)
    zone, tz_problem = viewer_time_zone(request)
    problems = list(asked.problems) + ([tz_problem] if tz_problem else [])
    paginator = Paginator(history_runs(asked.filters), PAGE_SIZE)
    number = asked.page
    if number > paginator.num_pages:
        problems.append(
            f"There {'is only 1 page' if paginator.num_pages == 1 else f'are only {paginator.num_pages} pages'} "
            "of runs under these filters; showing the last one."
        )
        number = paginator.num_pages
    page = paginator.page(number)
    runs = list(page.object_list)
    acks = run_acknowledgements([str(summary.run_id) for summary in runs])
    query = asked.filters.query()

    def page_url(n: int) -> str:
        return reverse("history") + "?" + urlencode({**query, "page": n})

    suffix = ("?" + urlencode(query)) if query else ""
    context: dict[str, Any] = {
        "page": page,
        "runs": [history_row(summary, zone, acks.get(str(summary.run_id), [])) for summary in runs],
        "filters": asked.filters,
        "choices": history_choices(),
        "problems": problems,
        "tz": zone,
        "filtered": asked.filters.active,
        "previous_url": page_url(page.previous_page_number()) if page.has_previous() else "",
        "next_url": page_url(page.next_page_number()) if page.has_next() else "",
        "csv_url": reverse("history-csv") + suffix,
        "json_url": reverse("history-json") + suffix,
        "history_days": settings.BOARD_HISTORY_DAYS,
        "app_version": selectors.app_version(),
    }
    response = render(request, "board/history.html", context)
    response["Cache-Control"] = "no-store"
    return response


def _export(request: HttpRequest, kind: str) -> HttpResponseBase:
    asked = history_request_parse(request.GET)
    if asked.problems:
        # An export of a filter that was not understood would be a different export than asked.
        return HttpResponse(" ".join(asked.problems), status=400, content_type="text/plain; charset=utf-8")
    runs = history_runs(asked.filters)
    if kind == "csv":
        response = StreamingHttpResponse(history_csv(runs), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(
            history_json(runs, filters=asked.filters.query()), content_type="application/json"
        )
    response["Content-Disposition"] = f'attachment; filename="{_export_name(kind)}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_GET
@login_required
def history_export_csv(request: HttpRequest) -> HttpResponseBase:
    """The current filter's runs as CSV (streamed; formula-like cells neutralised)."""
    return _export(request, "csv")


@require_GET
@login_required
def history_export_json(request: HttpRequest) -> HttpResponseBase:
    """The current filter's runs as JSON (streamed)."""
    return _export(request, "json")


@require_GET
@board_login_required
def trends(request: HttpRequest) -> HttpResponse:
    """Runs per day by outcome, success rate and durations per repo, failure reasons, per source."""
    raw = request.GET.get("days", "").strip() or "30"
    problems = []
    if raw not in {str(d) for d in PERIODS}:
        problems.append(
            f"{raw[:20]!r} is not a period the trends offer; use days=7, days=30 or days=90. Showing 30 days."
        )
        raw = "30"
    zone, tz_problem = viewer_time_zone(request)
    if tz_problem:
        problems.append(tz_problem)
    with timezone.override(zone):
        data = trends_compute(int(raw))
    context = {
        "trends": data,
        "periods": PERIODS,
        "problems": problems,
        "tz": zone,
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "app_version": selectors.app_version(),
    }
    response = render(request, "board/trends.html", context)
    response["Cache-Control"] = "no-store"
    return response
