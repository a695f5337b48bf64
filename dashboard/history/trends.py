"""Trends over the kept history: what the trends page shows, computed from ``RunSummary`` rows.

Charts are drawn on the server as SVG (no script, no request anywhere, themeable by CSS
through ``currentColor`` and the outcome classes), and every chart has a table beside it
that says the same in text.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from dashboard.models import SLOT_SECONDS, RunSummary

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


def nearest_rank(q: float, n: int) -> int:
    """The nearest-rank position (0-based) of the ``q`` quantile among ``n`` ordered values."""
    return max(1, math.ceil(q * n)) - 1


# Offset reads per query (one column each); a few hundred groups take a few queries.
NTH_PER_QUERY = 100


def nth_values(value: str, group: str | None, since: int, wanted: list[tuple[Any, int, int]]) -> list[Any]:
    """For each (group key, k, n): the k-th smallest ``value`` (0-based) of the ``n`` that group has since
    slot ``since``.

    Each is a scalar subquery ``ORDER BY value LIMIT 1 OFFSET k``, which an index on (group, value,
    finished_slot) answers by walking that group's values in order: no sort, and Python sees only
    the values asked for. A rank in the upper half is walked to from the top (``DESC``, offset
    ``n - 1 - k``), so a p90 steps over a tenth of the group, not nine tenths. Names are this
    module's constants, never input.
    """
    quote = connection.ops.quote_name
    table, column = quote(RunSummary._meta.db_table), quote(value)
    where = f"{column} IS NOT NULL AND {quote('finished_slot')} >= %s"
    if group is not None:
        where = f"{quote(group)} = %s AND " + where
    subquery = "(SELECT {column} FROM {table} WHERE {where} ORDER BY {column}{order} LIMIT 1 OFFSET %s)"
    found: list[Any] = []
    for start in range(0, len(wanted), NTH_PER_QUERY):
        chunk = wanted[start : start + NTH_PER_QUERY]
        params: list[Any] = []
        columns = []
        for key, k, n in chunk:
            top = k > (n - 1) // 2
            columns.append(
                subquery.format(column=column, table=table, where=where, order=" DESC" if top else "")
            )
            params += ([] if group is None else [key]) + [since, n - 1 - k if top else k]
        with connection.cursor() as cursor:
            cursor.execute("SELECT " + ", ".join(columns), params)
            found += list(cursor.fetchone())
    return found


def _quantiles(
    value: str, group: str | None, since: int, counts: dict[Any, int]
) -> dict[Any, tuple[Any, Any]]:
    """Exact nearest-rank p50 and p90 of ``value`` per group, from each group's count of values."""
    keys = [key for key, n in counts.items() if n]
    wanted = [(key, nearest_rank(q, counts[key]), counts[key]) for key in keys for q in (0.5, 0.9)]
    values = nth_values(value, group, since, wanted)
    return {key: (values[2 * i], values[2 * i + 1]) for i, key in enumerate(keys)}


def _day_start(day: date) -> datetime:
    """Local midnight of ``day`` in the current time zone."""
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def _slot(moment: datetime) -> int:
    return int(moment.timestamp()) // SLOT_SECONDS


def trends_compute(days: int, *, now: datetime | None = None) -> Trends:
    """Trends over the last ``days`` days (and, for each repo's success rate, the ``days`` before).

    Everything is aggregated in the database over the columns kept at write time
    (``finished_slot``, ``duration_seconds``, ``pr_seconds``), each query served by an index
    (``RunSummary.Meta.indexes``); Python sees at most one row per quarter hour and per group.
    """
    now = now or timezone.now()
    today = timezone.localdate(now)
    first_day = today - timedelta(days=days - 1)
    # The first slot of each day shown, and of the day after: a slot's day is found by bisection.
    bounds = [_slot(_day_start(first_day + timedelta(days=n))) for n in range(days + 1)]
    since = bounds[0]
    before = _slot(_day_start(first_day - timedelta(days=days)))
    current = RunSummary.objects.filter(finished_slot__gte=since)

    per_day: list[Counter[str]] = [Counter() for _ in range(days)]
    slots = current.values("finished_slot").annotate(
        prs=Count("pr_seconds"),
        **{outcome: Count("status", filter=Q(status=outcome)) for outcome in OUTCOMES},
    )
    pr_count = 0
    for finished_slot, prs, *counted in slots.order_by("finished_slot").values_list(
        "finished_slot", "prs", *OUTCOMES
    ):
        pr_count += prs
        n = bisect.bisect_right(bounds, finished_slot) - 1
        if 0 <= n < days:
            for outcome, count in zip(OUTCOMES, counted, strict=True):
                per_day[n][outcome] += count

    peak = max((sum(c.values()) for c in per_day), default=0)
    slot = CHART_WIDTH / days
    bars = []
    for n in range(days):
        day = first_day + timedelta(days=n)
        counts = {outcome: per_day[n][outcome] for outcome in OUTCOMES}
        segments, y = [], float(CHART_HEIGHT)
        for outcome in OUTCOMES:
            height = 0.0 if peak == 0 else counts[outcome] / peak * CHART_HEIGHT
            if height > 0:
                y -= height
                segments.append({"outcome": outcome, "y": round(y, 2), "height": round(height, 2)})
        bars.append(DayBar(day, counts, segments, round(n * slot + slot * 0.1, 2), round(slot * 0.8, 2)))

    def by_repo(runs: QuerySet[RunSummary]) -> tuple[dict[str, tuple[int, int, int]], Counter[str]]:
        """Per repo: successes, runs, and runs with a duration; per harness: runs with a duration.

        One pass, grouped by repo and harness (a few hundred groups at most).
        """
        found = runs.values("repo_name", "harness").annotate(
            total=Count("status"),
            success=Count("status", filter=Q(status="success")),
            timed=Count("duration_seconds"),
        )
        repos: dict[str, tuple[int, int, int]] = {}
        timed_by_harness: Counter[str] = Counter()
        for r in found.order_by():
            success, total, timed = repos.get(r["repo_name"], (0, 0, 0))
            repos[r["repo_name"]] = (success + r["success"], total + r["total"], timed + r["timed"])
            timed_by_harness[r["harness"]] += r["timed"]
        return repos, timed_by_harness

    def named(repo: str) -> str:
        return repo or "(repo unknown)"

    now_rates, timed_by_harness = by_repo(current)
    old_rates = {
        named(repo): (success, total)
        for repo, (success, total, _) in by_repo(
            RunSummary.objects.filter(finished_slot__gte=before, finished_slot__lt=since)
        )[0].items()
    }
    timed = {repo: n for repo, (_, _, n) in now_rates.items()}
    durations_repo = _quantiles("duration_seconds", "repo_name", since, timed)
    repos = []
    for key, (success, total, _) in now_rates.items():
        repo = named(key)
        rate = _rate(success, total)
        old = old_rates.get(repo)
        previous = _rate(*old) if old else None
        p50, p90 = durations_repo.get(key, (None, None))
        repos.append(
            {
                "repo": repo,
                "total": total,
                "rate": rate,
                "previous": previous,
                "change": None if rate is None or previous is None else rate - previous,
                "p50": p50,
                "p90": p90,
            }
        )
    repos.sort(key=lambda r: (-int(str(r["total"])), str(r["repo"])))
    per_harness = {harness: n for harness, n in timed_by_harness.items() if n}
    harnesses = sorted(
        (
            {"harness": h or "(unknown)", "total": per_harness[h], "p50": p50, "p90": p90}
            for h, (p50, p90) in _quantiles("duration_seconds", "harness", since, per_harness).items()
        ),
        key=lambda r: (-int(str(r["total"])), str(r["harness"])),
    )
    failures = [
        (r["failure_reason"] or r["failure_code"], r["n"])
        for r in current.filter(status="failed")
        .exclude(failure_code="")
        .values("failure_code", "failure_reason")
        .annotate(n=Count("failure_code"))
        .order_by("-n", "failure_code")[:TOP_FAILURES]
    ]
    sources = [
        (r["source"], r["n"])
        for r in current.values("source").annotate(n=Count("source")).order_by("-n", "source")
    ]
    pr_p50, pr_p90 = _quantiles("pr_seconds", None, since, {"": pr_count}).get("", (None, None))
    outcomes = {outcome: sum(b.counts[outcome] for b in bars) for outcome in OUTCOMES}
    return Trends(
        days=days,
        since=_day_start(first_day),
        bars=bars,
        peak=peak,
        total=sum(outcomes.values()),
        outcomes=outcomes,
        repos=repos,
        harnesses=harnesses,
        failures=failures,
        sources=sources,
        pr_p50=pr_p50,
        pr_p90=pr_p90,
        pr_count=pr_count,
    )
