"""How long each repo's runs usually take, from history: the board's "running longer than usual".

The p90 duration per repo (by repo id) over every kept terminal run with a duration,
for repos with at least ``USUAL_MIN_RUNS`` of them. The compose step asks for it on
every tick; it is computed at most every ``USUAL_REFRESH_SECONDS`` per process and
kept in between, so the database sees one COUNT and one percentile query every few
minutes, never one per row or per request.
"""

from __future__ import annotations

import threading
import time

from django.db.models import Count

from dashboard.history.trends import nearest_rank, nth_values
from dashboard.models import RunSummary

USUAL_MIN_RUNS = 10
USUAL_REFRESH_SECONDS = 300

_lock = threading.Lock()
_kept: tuple[float, dict[str, float]] | None = None


def usual_durations_compute() -> dict[str, float]:
    """Each repo id's p90 run duration in seconds, for repos with enough finished runs."""
    counts = {
        row["repo_id"]: row["n"]
        for row in RunSummary.objects.filter(duration_seconds__isnull=False)
        .exclude(repo_id="")
        .values("repo_id")
        .annotate(n=Count("duration_seconds"))
        .order_by("repo_id")
        if row["n"] >= USUAL_MIN_RUNS
    }
    wanted = [(repo, nearest_rank(0.9, n), n) for repo, n in counts.items()]
    p90s = nth_values("duration_seconds", "repo_id", 0, wanted)
    return {repo: float(p90) for (repo, _, _), p90 in zip(wanted, p90s, strict=True) if p90 is not None}


def usual_durations(*, now: float | None = None) -> dict[str, float]:
    """``usual_durations_compute()``, reused for ``USUAL_REFRESH_SECONDS``."""
    global _kept
    now = time.time() if now is None else now
    with _lock:
        if _kept is None or not 0 <= now - _kept[0] < USUAL_REFRESH_SECONDS:
            _kept = (now, usual_durations_compute())
        return _kept[1]


def usual_durations_forget() -> None:
    """The next ask computes afresh (tests; nothing in the app needs it)."""
    global _kept
    with _lock:
        _kept = None
