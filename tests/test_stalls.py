"""Stalled runs: the simulator serves the run, the poller's fetch task stores it, and the
board is composed at a moment chosen with time-machine (no sleeps).

A streaming run with no new event for ``BOARD_STALL_MINUTES``, or a run pending for
``BOARD_PENDING_STALL_MINUTES``, reads "stalled?" with the reason on the dashboard,
the run page and the wall.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import redis
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from dashboard.models import DisplayToken, TrackedRun
from dashboard.polling.compose import board_build, board_publish
from dashboard.polling.tasks import run_events_fetch
from dashboard.simulator.control import SimulatorControl

MINUTE = 60.0


@pytest.fixture
def browser(client: Client, settings: Any, valkey_server: str, redis_db: redis.Redis) -> Iterator[Client]:
    settings.REDIS_URL = valkey_server
    client.force_login(User.objects.create(username="ada"))
    yield client


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _tracked(sim: SimulatorControl, run_id: str) -> None:
    """Track ``run_id`` as owned by the demo source and fetch it once, as the poller does."""
    TrackedRun.objects.create(
        run_id=run_id, via=TrackedRun.Via.COMMAND, lookup=TrackedRun.Lookup.FOUND, source="demo"
    )
    run_events_fetch("demo", run_id)


def _row(html: str, element_id: str, tag: str = "tr") -> str:
    start = html.find(f'<{tag} id="{element_id}"')
    return "" if start < 0 else html[start : html.index(f"</{tag}>", start)]


def _board_at(moment: float) -> None:
    with time_machine.travel(moment, tick=False):
        board_publish(board_build())


def _pages_at(moment: float, browser: Client, run_id: str) -> tuple[str, str, str]:
    """The dashboard's row, the run page and the wall's row for ``run_id``, as seen at ``moment``."""
    _, raw = DisplayToken.issue(f"lobby-{uuid.uuid4()}")
    with time_machine.travel(moment, tick=False):
        overview = browser.get("/").content.decode()
        run_page = browser.get(f"/runs/{run_id}/").content.decode()
        wall = Client().get(f"/kiosk/{raw}/").content.decode()
    return _row(overview, f"run-{run_id}"), run_page, _row(wall, f"wall-run-{run_id}", "li")


@pytest.mark.django_db
def test_a_streaming_run_without_a_new_event_reads_stalled_with_the_reason(
    browser: Client, sim: SimulatorControl
) -> None:
    run_id = str(sim.create_run("demo")["runId"])
    sim.set_run_status(run_id, "streaming")
    last = _epoch(sim.add_events(run_id, 1, message="running the tests")["events"][-1]["createdAt"])
    _tracked(sim, run_id)

    _board_at(last + 14 * MINUTE + 50)
    row, run_page, wall = _pages_at(last + 14 * MINUTE + 50, browser, run_id)
    assert "running the tests" in row
    assert "stalled?" not in row and "stalled?" not in run_page and "stalled?" not in wall

    _board_at(last + 17 * MINUTE + 5)
    row, run_page, wall = _pages_at(last + 17 * MINUTE + 5, browser, run_id)
    assert "stalled? no event for 17 min" in row
    assert "stalled? no event for 17 min" in run_page
    assert "stalled?" in wall and "no event for 17 min" in wall

    # A new event clears it.
    sim.add_events(run_id, 1, message="still going")
    run_events_fetch("demo", run_id)
    board_publish(board_build())
    row, run_page, wall = _pages_at(
        _epoch(sim.run(run_id)["events"][-1]["createdAt"]) + MINUTE, browser, run_id
    )
    assert "still going" in row
    assert "stalled?" not in row and "stalled?" not in run_page and "stalled?" not in wall


@pytest.mark.django_db
def test_a_run_pending_too_long_reads_stalled(browser: Client, sim: SimulatorControl) -> None:
    created = sim.create_run("demo")
    run_id = str(created["runId"])
    start = _epoch(created["createdAt"])
    _tracked(sim, run_id)

    _board_at(start + 9 * MINUTE)
    row, _, _ = _pages_at(start + 9 * MINUTE, browser, run_id)
    assert "pending" in row.lower() and "stalled?" not in row

    _board_at(start + 12 * MINUTE + 30)
    row, run_page, wall = _pages_at(start + 12 * MINUTE + 30, browser, run_id)
    assert "stalled? pending for 12 min" in row
    assert "stalled? pending for 12 min" in run_page
    assert "pending for 12 min" in wall


@pytest.mark.django_db
def test_the_stall_thresholds_are_settings(browser: Client, sim: SimulatorControl, settings: Any) -> None:
    settings.BOARD_STALL_MINUTES = 30
    settings.BOARD_PENDING_STALL_MINUTES = 3
    streaming = str(sim.create_run("demo")["runId"])
    sim.set_run_status(streaming, "streaming")
    last = _epoch(sim.add_events(streaming, 1)["events"][-1]["createdAt"])
    created = sim.create_run("demo")
    pending = str(created["runId"])
    _tracked(sim, streaming)
    _tracked(sim, pending)

    at = max(last, _epoch(created["createdAt"])) + 20 * MINUTE + 30
    _board_at(at)
    assert "stalled?" not in _pages_at(at, browser, streaming)[0]
    assert "stalled? pending for 20 min" in _pages_at(at, browser, pending)[0]

    _board_at(last + 31 * MINUTE + 30)
    assert "stalled? no event for 31 min" in _pages_at(last + 31 * MINUTE + 30, browser, streaming)[0]


@pytest.mark.django_db
def test_a_run_past_the_event_cap_is_judged_by_the_six_hour_rule_only(
    browser: Client, sim: SimulatorControl
) -> None:
    """Upstream shows only the oldest 200 events, so newer ones are invisible: no "no event" guess."""
    run_id = str(sim.create_run("demo")["runId"])
    sim.set_run_status(run_id, "streaming")
    sim.add_events(run_id, 205)
    _tracked(sim, run_id)
    updated = _epoch(sim.run(run_id)["run"]["updatedAt"])

    _board_at(updated + 3 * 60 * MINUTE)
    assert "stalled?" not in _pages_at(updated + 3 * 60 * MINUTE, browser, run_id)[0]

    _board_at(updated + 6 * 60 * MINUTE + 5 * MINUTE)
    row = _pages_at(updated + 6 * 60 * MINUTE + 5 * MINUTE, browser, run_id)[0]
    assert "stalled? not updated for 6 h" in row
