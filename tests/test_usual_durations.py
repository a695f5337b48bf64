""" "Running longer than usual": a live run past its repo's p90 duration (from history, 10 runs or more) is
flagged on the board and the wall; the p90s are computed every few minutes, not per request."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from dashboard import snapshots
from dashboard.history.usual import (
    USUAL_REFRESH_SECONDS,
    usual_durations,
    usual_durations_compute,
    usual_durations_forget,
)
from dashboard.models import DisplayToken, RunSummary, TrackedRun
from dashboard.polling.compose import board_build, board_publish
from dashboard.polling.tasks import run_events_fetch
from dashboard.simulator.control import SimulatorControl

MINUTE = 60.0


@pytest.fixture(autouse=True)
def fresh_usual() -> Iterator[None]:
    usual_durations_forget()
    yield
    usual_durations_forget()


def kept(repo_id: str, duration: float | None, status: str = "success") -> RunSummary:
    finished = datetime.now(UTC) - timedelta(days=1)
    return RunSummary.objects.create(
        run_id=uuid.uuid4(),
        source="demo",
        repo_id=repo_id,
        status=status,
        created_at=None if duration is None else finished - timedelta(seconds=duration),
        finished_at=finished,
        duration_seconds=duration,
    )


@pytest.mark.django_db
def test_each_repos_p90_needs_ten_finished_runs_with_a_duration() -> None:
    for n in range(1, 11):
        kept("repo-busy", n * 60.0, "failed" if n == 3 else "success")
    kept("repo-busy", None)
    for n in range(1, 10):
        kept("repo-new", n * 60.0)
    kept("repo-new", None)
    assert usual_durations_compute() == {"repo-busy": 540.0}, "nearest rank: the 9th of 10"


@pytest.mark.django_db
def test_the_p90s_are_computed_at_most_every_few_minutes(django_assert_num_queries: Any) -> None:
    for n in range(1, 11):
        kept("repo-busy", n * 60.0)
    start = 1_800_000_000.0
    assert usual_durations(now=start) == {"repo-busy": 540.0}
    for n in range(1, 11):
        kept("repo-busy", n * 600.0)
    with django_assert_num_queries(0):
        assert usual_durations(now=start + USUAL_REFRESH_SECONDS - 1) == {"repo-busy": 540.0}
    assert usual_durations(now=start + USUAL_REFRESH_SECONDS) == {"repo-busy": 4800.0}, "the 18th of 20"


@pytest.fixture
def browser(client: Client, settings: Any, valkey_server: str, redis_db: redis.Redis) -> Iterator[Client]:
    settings.REDIS_URL = valkey_server
    client.force_login(User.objects.create(username="ada"))
    yield client


def _row(html: str, element_id: str, tag: str = "tr") -> str:
    start = html.find(f'<{tag} id="{element_id}"')
    return "" if start < 0 else html[start : html.index(f"</{tag}>", start)]


def _board_and_wall_at(moment: float, browser: Client, run_id: str) -> tuple[str, str]:
    _, raw = DisplayToken.issue(f"lobby-{uuid.uuid4()}")
    with time_machine.travel(moment, tick=False):
        board_publish(board_build())
        overview = browser.get("/").content.decode()
        wall = Client().get(f"/kiosk/{raw}/").content.decode()
    return _row(overview, f"run-{run_id}"), _row(wall, f"wall-run-{run_id}", "li")


@pytest.mark.django_db
def test_a_run_going_longer_than_its_repos_p90_is_flagged_on_the_board_and_the_wall(
    browser: Client, sim: SimulatorControl
) -> None:
    run_id = str(sim.create_run("demo")["runId"])
    sim.set_run_status(run_id, "streaming")
    TrackedRun.objects.create(
        run_id=run_id, via=TrackedRun.Via.COMMAND, lookup=TrackedRun.Lookup.FOUND, source="demo"
    )
    run_events_fetch("demo", run_id)
    record = snapshots.run_read(run_id)
    assert record is not None
    repo_id = record["run"]["repo_id"]
    created = datetime.fromisoformat(record["run"]["created_at"].replace("Z", "+00:00")).timestamp()
    # This repo's last ten runs took 1..10 minutes: p90 is 9 minutes.
    for n in range(1, 11):
        kept(repo_id, n * MINUTE)

    row, wall = _board_and_wall_at(created + 8 * MINUTE, browser, run_id)
    assert row and wall
    assert "longer than usual" not in row and "longer than usual" not in wall

    row, wall = _board_and_wall_at(created + 10 * MINUTE, browser, run_id)
    assert "running longer than usual (p90 9m)" in row
    assert "longer than usual</span> p90 9m" in wall, "the words first: a narrow wall column clips the number"
    state = browser.get("/api/board.json").json()
    flagged = next(r for r in state["active_runs"] if r["run_id"] == run_id)
    assert flagged["longer_than_usual"] == 540.0

    # Finished, it is no longer flagged.
    sim.set_run_status(run_id, "success")
    run_events_fetch("demo", run_id)
    row, wall = _board_and_wall_at(created + 11 * MINUTE, browser, run_id)
    assert "longer than usual" not in row and not wall, (
        "finished: in the finished table, off the wall's Running"
    )
