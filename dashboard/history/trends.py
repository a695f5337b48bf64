"""Trends over the kept history: what the trends page shows, computed from ``RunSummary`` rows.

Charts are drawn on the server as SVG (no script, no request anywhere, themeable by CSS
through ``currentColor`` and the outcome classes), and every chart has a table beside it
that says the same in text.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from dashboard.models import RunSummary

PERIODS = (7, 30, 90)
OUTCOMES = ("success", "failed", "cancelled")
CHART_WIDTH = 720
CHART_HEIGHT = 160
TOP_FAILURES = 8


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by the nearest-rank method; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class DayBar:
    day: date
    counts: dict[str, int]
    segments: list[dict[str, Any]]
    x: float
    width: float

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Trends:
    days: int
    since: datetime
    bars: list[DayBar]
    peak: int
    total: int
    outcomes: dict[str, int]
    repos: list[dict[str, Any]]
    harnesses: list[dict[str, Any]]
    failures: list[tuple[str, int]]
    sources: list[tuple[str, int]]
    pr_p50: float | None
    pr_p90: float | None
    pr_count: int


def _rate(success: int, total: int) -> float | None:
    return None if total == 0 else success / total


def trends_compute(days: int, *, now: datetime | None = None) -> Trends:
    """Trends over the last ``days`` days (and, for each repo's success rate, the ``days`` before)."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    first_day = today - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first_day, datetime.min.time()))
    before = since - timedelta(days=days)
    current = RunSummary.objects.filter(finished_at__gte=since)

    per_day: dict[date, Counter[str]] = defaultdict(Counter)
    durations_repo: dict[str, list[float]] = defaultdict(list)
    durations_harness: dict[str, list[float]] = defaultdict(list)
    to_pr: list[float] = []
    rows = current.values_list(
        "finished_at", "status", "repo_name", "harness", "duration_seconds", "created_at", "pr_at"
    )
    for finished, status, repo, harness, duration, created, pr_at in rows.iterator(chunk_size=5000):
        per_day[timezone.localdate(finished)][status] += 1
        if duration is not None:
            durations_repo[repo or "(repo unknown)"].append(duration)
            durations_harness[harness or "(unknown)"].append(duration)
        if pr_at is not None and created is not None and pr_at >= created:
            to_pr.append((pr_at - created).total_seconds())

    peak = max((sum(c.values()) for c in per_day.values()), default=0)
    slot = CHART_WIDTH / days
    bars = []
    for n in range(days):
        day = first_day + timedelta(days=n)
        counts = {outcome: per_day[day][outcome] for outcome in OUTCOMES}
        segments, y = [], float(CHART_HEIGHT)
        for outcome in OUTCOMES:
            height = 0.0 if peak == 0 else counts[outcome] / peak * CHART_HEIGHT
            if height > 0:
                y -= height
                segments.append({"outcome": outcome, "y": round(y, 2), "height": round(height, 2)})
        bars.append(DayBar(day, counts, segments, round(n * slot + slot * 0.1, 2), round(slot * 0.8, 2)))

    def by_repo(runs: Any) -> dict[str, tuple[int, int]]:
        found = runs.values("repo_name").annotate(
            total=Count("id"), success=Count("id", filter=Q(status="success"))
        )
        return {r["repo_name"] or "(repo unknown)": (r["success"], r["total"]) for r in found}

    now_rates = by_repo(current)
    old_rates = by_repo(RunSummary.objects.filter(finished_at__gte=before, finished_at__lt=since))
    repos = []
    for repo, (success, total) in now_rates.items():
        rate = _rate(success, total)
        old = old_rates.get(repo)
        previous = _rate(*old) if old else None
        durations = durations_repo.get(repo, [])
        repos.append(
            {
                "repo": repo,
                "total": total,
                "rate": rate,
                "previous": previous,
                "change": None if rate is None or previous is None else rate - previous,
                "p50": percentile(durations, 0.5),
                "p90": percentile(durations, 0.9),
            }
        )
    repos.sort(key=lambda r: (-int(str(r["total"])), str(r["repo"])))
    harnesses = sorted(
        (
            {"harness": h, "total": len(v), "p50": percentile(v, 0.5), "p90": percentile(v, 0.9)}
            for h, v in durations_harness.items()
        ),
        key=lambda r: (-int(str(r["total"])), str(r["harness"])),
    )
    failures = [
        (r["failure_reason"] or r["failure_code"], r["n"])
        for r in current.filter(status="failed")
        .exclude(failure_code="")
        .values("failure_code", "failure_reason")
        .annotate(n=Count("id"))
        .order_by("-n", "failure_code")[:TOP_FAILURES]
    ]
    sources = [
        (r["source"], r["n"])
        for r in current.values("source").annotate(n=Count("id")).order_by("-n", "source")
    ]
    outcomes = {outcome: sum(b.counts[outcome] for b in bars) for outcome in OUTCOMES}
    return Trends(
        days=days,
        since=since,
        bars=bars,
        peak=peak,
        total=sum(outcomes.values()),
        outcomes=outcomes,
        repos=repos,
        harnesses=harnesses,
        failures=failures,
        sources=sources,
        pr_p50=percentile(to_pr, 0.5),
        pr_p90=percentile(to_pr, 0.9),
        pr_count=len(to_pr),
    )
