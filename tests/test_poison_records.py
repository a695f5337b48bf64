"""A poisoned record (one the parsers or templates cannot take) costs its own row, never the board.

First through the whole poller: the simulator serves a run and a sandbox with
fields of the wrong type, a real worker fetches them, and the page shows each as
one row saying it could not be read while the rest of the board keeps updating.
Then a composed board in Redis whose rows have the wrong types, and the row tag
whose markup raises.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.template import engines
from django.test import Client

from dashboard.models import DisplayToken, TrackedRun
from dashboard.simulator.control import SimulatorControl
from tests import board_data
from tests.board_data import RUN_ACTIVE, RUN_FAILED, SANDBOX_UP
from tests.pollers import Pollers
from tests.waiting import wait_for

POISON_RUN = "55555555-5555-4555-8555-555555555555"
EDGE_RUN = "66666666-6666-4666-8666-666666666666"
POISON_SANDBOX = "77777777-7777-4777-8777-777777777777"


@pytest.fixture
def browser(client: Client, settings: Any, valkey_server: str, redis_db: redis.Redis) -> Client:
    settings.REDIS_URL = valkey_server
    client.force_login(User.objects.create_user("ada", password="correct horse battery"))
    return client


def _row(html: str, element_id: str) -> str:
    """The markup of the table row with ``element_id`` ("" when there is none)."""
    start = html.find(f'<tr id="{element_id}"')
    return "" if start < 0 else html[start : html.index("</tr>", start)]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_poisoned_run_and_sandbox_from_mogplex_each_cost_only_their_row(
    browser: Client, sim: SimulatorControl, pollers: Pollers, redis_db: redis.Redis
) -> None:
    healthy = str(sim.create_run("demo")["runId"])
    poisoned = str(sim.create_run("demo")["runId"])
    sim.set_run_status(poisoned, "streaming")
    sim.patch_run(poisoned, status=["streaming"], createdAt="not a date", branch=None)
    box = sim.create_sandbox("demo", status="running")
    bad_box = sim.create_sandbox("demo", status="running", extra={"status": ["running"], "created_at": 12345})
    for run_id in (healthy, poisoned):
        TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND)
    group = pollers.ensure({"BOARD_RUN_REFRESH_SECONDS": "1", "BOARD_SANDBOXES_REFRESH_SECONDS": "2"})
    group.wait_ticking(redis_db)

    def page() -> str:
        response = browser.get("/")
        assert response.status_code == 200
        return response.content.decode()

    def shown() -> str | None:
        html = page()
        rows = [_row(html, f"run-{poisoned}"), _row(html, f"sandbox-{bad_box['id']}")]
        return html if all("could not be read" in row for row in rows) else None

    html = wait_for(shown, timeout=30, what=f"the poisoned rows on the board\n{group.log_tail()}")
    assert "Mogplex sent this run with &#x27;status&#x27; as a list, not text." in _row(
        html, f"run-{poisoned}"
    )
    assert "Mogplex sent this sandbox with &#x27;status&#x27; as a list, not text." in _row(
        html, f"sandbox-{bad_box['id']}"
    )
    assert "pending" in _row(html, f"run-{healthy}")
    assert "running" in _row(html, f"sandbox-{box['id']}")
    assert "banner-source" not in html, "the source is healthy: one bad record is not a broken API"

    # The rest of the board keeps moving while the poisoned records stay.
    sim.set_run_status(healthy, "success")
    wait_for(
        lambda: "success" in _row(page(), f"run-{healthy}"), timeout=20, what="the healthy run to finish"
    )
    # Still polled, in case Mogplex mends it; and every fetch found it just as poisoned.
    wait_for(
        lambda: len([r for r in sim.requests() if r["path"].endswith(f"/runs/{poisoned}/events")]) >= 4,
        timeout=20,
        what="more fetches of the poisoned run",
    )
    worker_log = "\n".join(path.read_text(errors="replace") for path in group.dir.glob("worker*.log"))
    assert worker_log.count(f"unreadable run={poisoned}") == 1, "logged once, not on every fetch"
    assert worker_log.count(f"unreadable sandbox={bad_box['id']}") == 1


@pytest.mark.django_db
def test_a_poisoned_row_in_the_snapshot_costs_only_its_own_row(
    browser: Client, redis_db: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    now = time.time()
    composed = board_data.board(now)
    composed["runs"] += [
        board_data.run_row(POISON_RUN, ["streaming"], now=now, latest_event="oops"),
        "not a run at all",
        # Well typed, but at the edge of the calendar: east of UTC it is past year 9999.
        board_data.run_row(
            EDGE_RUN,
            "streaming",
            now=now,
            created_at="9999-12-31T23:59:59Z",
            repo_name="acme/edge",
            latest_event={
                "type": "log",
                "tool_name": None,
                "message": "hi",
                "created_at": "9999-12-31T23:59:59Z",
            },
        ),
    ]
    composed["sandboxes"].append(board_data.sandbox_row(POISON_SANDBOX, {"running": True}, now=now))
    redis_db.set("board:composed", json.dumps({**composed, "version": "poisoned"}))
    redis_db.set("board:version", "poisoned")
    redis_db.set("board:heartbeat", repr(now))
    caplog.set_level(logging.WARNING, logger="dashboard.board")

    for tz in ("UTC", "Asia/Tokyo"):
        for headers in ({}, {"HX-Request": "true"}):
            response = browser.get("/", {"tz": tz}, headers=headers)
            assert response.status_code == 200, (tz, headers)
            html = response.content.decode()
            assert "streaming" in _row(html, f"run-{RUN_ACTIVE}")
            assert "tests failed" in _row(html, f"run-{RUN_FAILED}")
            assert "running" in _row(html, f"sandbox-{SANDBOX_UP}")
            assert "acme/edge" in _row(html, f"run-{EDGE_RUN}")
            poisoned = _row(html, f"run-{POISON_RUN}")
            assert f'Run <span class="mono">{POISON_RUN}</span> could not be read.' in poisoned
            assert "its &#x27;status&#x27; is a list" in poisoned
            assert 'Run <span class="mono">(id unknown)</span> could not be read.' in html
            assert "its &#x27;status&#x27; is a JSON object" in _row(html, f"sandbox-{POISON_SANDBOX}")
            assert 'id="panel-active"' in html and "is-stale" not in html, "no panel pays for a bad row"

    _, token = DisplayToken.issue("wall")
    assert Client().get(f"/kiosk/{token}/").status_code == 200
    assert browser.get("/api/board.json").status_code == 200
    logged = [r.getMessage() for r in caplog.records if "unreadable row" in r.getMessage()]
    assert len([m for m in logged if POISON_RUN in m]) == 1, logged


def test_a_row_whose_markup_raises_is_shown_as_unreadable_and_the_rest_render() -> None:
    page = engines["django"].from_string(
        "{% load board %}{% for row in rows %}{% cached_row row.sig %}[{{ row.n|divisibleby:row.by }}]"
        "{% unreadable %}[row {{ row.n }} could not be read: {{ row_problem }}]{% endcached_row %}{% endfor %}"
    )
    rows = [{"sig": "a", "n": 4, "by": 2}, {"sig": "b", "n": 4, "by": 0}, {"sig": "c", "n": 3, "by": 3}]

    html = page.render({"rows": rows, "now": time.time()})

    assert html == "[True][row 4 could not be read: The board failed to show it (ZeroDivisionError).][True]"
