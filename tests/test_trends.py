"""Trends computed from known history give known numbers; the page draws them and says them in text."""

from __future__ import annotations

import re
import uuid
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from dashboard.history.synthetic import history_fill
from dashboard.history.trends import percentile, trends_compute
from dashboard.models import RunSummary

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def kept(days_ago: float, status: str = "success", **fields: Any) -> RunSummary:
    finished = NOW - timedelta(days=days_ago)
    duration = fields.pop("duration", 600.0)
    values: dict[str, Any] = {
        "run_id": uuid.uuid4(),
        "source": "ada",
        "repo_name": "acme/web",
        "harness": "claude-code",
        "status": status,
        "created_at": finished - timedelta(seconds=duration or 0),
        "finished_at": finished,
        "duration_seconds": duration,
    }
    values.update(fields)
    return RunSummary.objects.create(**values)


@pytest.fixture
def history(db: None) -> None:
    # This week, acme/web: 3 successes (durations 60, 120, 600), 1 failure; acme/api: 1 failure.
    kept(0.1, duration=60, pr_at=NOW - timedelta(days=0.1, seconds=10))
    kept(1.1, duration=120, source="ben", harness="codex")
    kept(1.2, duration=600, pr_at=NOW - timedelta(days=1.2, seconds=300))
    kept(
        2.1,
        "failed",
        duration=300,
        failure_code="command_failed",
        failure_reason="the agent exited with code 2",
    )
    kept(
        2.2,
        "failed",
        repo_name="acme/api",
        source="ben",
        failure_code="rate_limited",
        failure_reason="the model provider rate-limited the run",
    )
    kept(3.1, "cancelled", repo_name="acme/api")
    # The week before, acme/web: 1 success, 1 failure (50%).
    kept(8, duration=60)
    kept(9, "failed", failure_code="command_failed", failure_reason="the agent exited with code 2")
    # Outside both periods.
    kept(40)


def test_percentiles_by_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([600, 60, 120], 0.5) == 120
    assert percentile([600, 60, 120], 0.9) == 600
    assert percentile(list(range(1, 11)), 0.9) == 9


def test_a_week_of_known_runs_gives_known_numbers(history: None) -> None:
    with time_machine.travel(NOW, tick=False):
        week = trends_compute(7)
    assert week.total == 6
    assert week.outcomes == {"success": 3, "failed": 2, "cancelled": 1}
    assert len(week.bars) == 7
    by_day = {bar.day.isoformat(): bar.counts for bar in week.bars}
    assert by_day["2026-06-15"] == {"success": 1, "failed": 0, "cancelled": 0}
    assert by_day["2026-06-14"] == {"success": 2, "failed": 0, "cancelled": 0}
    assert by_day["2026-06-13"] == {"success": 0, "failed": 2, "cancelled": 0}
    assert week.peak == 2
    tallest = next(b for b in week.bars if b.day.isoformat() == "2026-06-14")
    assert tallest.segments == [{"outcome": "success", "y": 0.0, "height": 160.0}]

    web = next(r for r in week.repos if r["repo"] == "acme/web")
    assert (web["total"], web["rate"], web["previous"]) == (4, 0.75, 0.5)
    assert web["change"] == pytest.approx(0.25)
    assert (web["p50"], web["p90"]) == (120, 600)
    api = next(r for r in week.repos if r["repo"] == "acme/api")
    assert (api["total"], api["rate"], api["previous"], api["change"]) == (2, 0.0, None, None)

    codex = next(h for h in week.harnesses if h["harness"] == "codex")
    assert (codex["total"], codex["p50"]) == (1, 120)
    assert week.failures == [
        ("the agent exited with code 2", 1),
        ("the model provider rate-limited the run", 1),
    ]
    assert week.sources == [("ada", 4), ("ben", 2)]
    assert (week.pr_count, week.pr_p50, week.pr_p90) == (2, 50, 300)


def test_the_page_draws_and_says_the_numbers_and_refuses_a_bad_period(client: Client, history: None) -> None:
    client.force_login(User.objects.create_user("ada"))
    with time_machine.travel(NOW, tick=False):
        html = client.get("/trends/?days=7").content.decode()
        bad = client.get("/trends/?days=12").content.decode()
    assert "3 succeeded, 2 failed, 1 cancelled over the last 7 days; busiest day 2 runs." in html
    assert html.count('<rect class="seg-success"') >= 3
    assert "<script" not in html.split('<main id="main" tabindex="-1">')[1].split("</main>")[0], (
        "charts are drawn on the server"
    )
    row = re.search(r'<tr id="trend-repo-1">(.*?)</tr>', html, re.S)
    assert row and "acme/web" in row.group(1) and "75%" in row.group(1) and "+25 points" in row.group(1)
    assert "From start to pull request: p50 50s, p90 5m 0s (2 pull requests)." in html
    assert "&#x27;12&#x27; is not a period the trends offer; use days=7, days=30 or days=90." in bad
    assert "over the last 30 days" in bad


@pytest.mark.parametrize(
    ("zone", "day"),
    [("UTC", "2026-06-14"), ("Asia/Kolkata", "2026-06-15"), ("America/Los_Angeles", "2026-06-14")],
)
def test_a_run_counts_on_the_viewers_local_day(db: None, zone: str, day: str) -> None:
    # 18:45 UTC is 00:15 the next day in Kolkata (UTC+5:30) and 11:45 in Los Angeles.
    finished = datetime(2026, 6, 14, 18, 45, tzinfo=UTC)
    kept((NOW - finished).total_seconds() / 86400)
    with time_machine.travel(NOW, tick=False), timezone.override(zoneinfo.ZoneInfo(zone)):
        week = trends_compute(7)
    assert {bar.day.isoformat(): bar.total for bar in week.bars if bar.total} == {day: 1}


def test_many_runs_give_exact_nearest_rank_percentiles_per_group(db: None) -> None:
    for n in range(1, 21):
        kept(1, duration=n * 10.0, harness="codex" if n % 2 else "claude-code")
    kept(1, duration=None, repo_name="acme/api")
    with time_machine.travel(NOW, tick=False):
        week = trends_compute(7)
    web = next(r for r in week.repos if r["repo"] == "acme/web")
    assert (web["p50"], web["p90"]) == (100, 180)
    api = next(r for r in week.repos if r["repo"] == "acme/api")
    assert (api["total"], api["p50"], api["p90"]) == (1, None, None), "a run without a duration"
    odd = next(h for h in week.harnesses if h["harness"] == "codex")
    assert (odd["total"], odd["p50"], odd["p90"]) == (10, 90, 170)


def test_the_columns_trends_group_by_are_kept_on_every_write(db: None) -> None:
    run = kept(0.5, duration=600, pr_at=NOW - timedelta(days=0.5, seconds=120))
    assert run.finished_slot == int(run.finished_at.timestamp()) // 900
    assert run.pr_seconds == 480
    run.pr_at = run.created_at - timedelta(seconds=1)
    run.save()
    assert RunSummary.objects.get(pk=run.pk).pr_seconds is None, "a PR before its run's start is no lag"

    history_fill(runs=50, days=2)
    synthetic = RunSummary.objects.exclude(pk=run.pk)
    assert synthetic.count() == 50
    for made in synthetic:
        assert made.finished_slot == int(made.finished_at.timestamp()) // 900
        assert (made.pr_seconds is None) == (made.pr_at is None)
