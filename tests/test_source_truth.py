"""Per-source truth: every row carries its source, and a failing source marks only its own rows STALE.

Two sources read the simulator; the poller's fetch tasks store what they answer,
and the board is composed two minutes later (time-machine, no sleeps) after one
source started failing. Its rows say STALE, the other's stay fresh, the headline
names it, and ``/api/board.json`` and ``board --json`` say the same per row.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from dashboard import snapshots
from dashboard.models import DisplayToken, TrackedRun
from dashboard.polling.compose import board_build, board_publish
from dashboard.polling.tasks import run_events_fetch, sandboxes_fetch
from dashboard.simulator.control import SimulatorControl
from tests import board_data

HEALTHY, FAILING = "demo", "ada"


@pytest.fixture
def browser(client: Client, settings: Any, valkey_server: str, redis_db: redis.Redis) -> Iterator[Client]:
    settings.REDIS_URL = valkey_server
    settings.MOGPLEX_TOKENS = [s for s in settings.MOGPLEX_TOKENS if s.name in (HEALTHY, FAILING)]
    client.force_login(User.objects.create(username="ada"))
    yield client


def _row(html: str, element_id: str, tag: str = "tr") -> str:
    start = html.find(f'<{tag} id="{element_id}"')
    assert start >= 0, f"no row {element_id}"
    return html[start : html.index(f"</{tag}>", start)]


def _streaming_run(sim: SimulatorControl, user: str) -> str:
    run_id = str(sim.create_run(user)["runId"])
    sim.set_run_status(run_id, "streaming")
    TrackedRun.objects.create(
        run_id=run_id, via=TrackedRun.Via.COMMAND, lookup=TrackedRun.Lookup.FOUND, source=user
    )
    return run_id


def _fetch_all(runs: dict[str, str]) -> None:
    """One tick of the poller: its heartbeat, each run from its source, and each source's sandboxes."""
    snapshots.heartbeat_write(time.time())
    for source, run_id in runs.items():
        run_events_fetch(source, run_id)
        sandboxes_fetch(source)


@pytest.mark.django_db
def test_one_failing_source_marks_only_its_own_rows_stale(browser: Client, sim: SimulatorControl) -> None:
    runs = {source: _streaming_run(sim, source) for source in (HEALTHY, FAILING)}
    boxes = {source: str(sim.create_sandbox(source, status="running")["id"]) for source in runs}
    _fetch_all(runs)
    board_publish(board_build())
    _, raw = DisplayToken.issue(f"lobby-{uuid.uuid4()}")

    html = browser.get("/").content.decode()
    for source in runs:
        assert f'<td class="source">{source}</td>' in _row(html, f"run-{runs[source]}")
        assert f'<td class="source">{source}</td>' in _row(html, f"sandbox-{boxes[source]}")
        assert "STALE" not in _row(html, f"run-{runs[source]}")
    wall = Client().get(f"/kiosk/{raw}/").content.decode()
    assert f"· {FAILING}" in _row(wall, f"wall-run-{runs[FAILING]}", "li")
    assert f"· {HEALTHY}" in _row(wall, f"wall-sandbox-{boxes[HEALTHY]}", "li")

    # The failing source's token starts failing; two minutes on, only the healthy one has news.
    sim.inject_fault("500", token=FAILING)
    with time_machine.travel(time.time() + 120):
        _fetch_all(runs)
        board_publish(board_build())
        html = browser.get("/").content.decode()
        wall = Client().get(f"/kiosk/{raw}/").content.decode()
        answer = browser.get("/api/board.json").json()
        out = io.StringIO()
        with pytest.raises(SystemExit):
            call_command("board", "--json", stdout=out)
        printed = json.loads(out.getvalue())
        summary = io.StringIO()
        with pytest.raises(SystemExit):
            call_command("board", stdout=summary, stderr=io.StringIO())

    for what in ("run", "sandbox"):
        assert "STALE" in _row(html, f"{what}-{(runs if what == 'run' else boxes)[FAILING]}")
        assert "STALE" not in _row(html, f"{what}-{(runs if what == 'run' else boxes)[HEALTHY]}")
        assert "STALE" in _row(wall, f"wall-{what}-{(runs if what == 'run' else boxes)[FAILING]}", "li")
        assert "STALE" not in _row(wall, f"wall-{what}-{(runs if what == 'run' else boxes)[HEALTHY]}", "li")
    assert f"STALE: data from {FAILING} is too old" in html
    assert "updated" in html.split('id="panel-active"')[1].split("</header>")[0], "the panel stays fresh"
    headline = wall.split('class="wall-overall')[1].split("</span>\n")[0]
    assert "STALE" in headline and FAILING in headline and HEALTHY not in headline

    assert answer["state"] == "stale"
    assert answer["stale_sources"] == [FAILING]
    by_id = {r["run_id"]: r for r in answer["active_runs"]}
    assert by_id[runs[FAILING]]["source"] == FAILING and by_id[runs[FAILING]]["freshness"]["stale"]
    assert by_id[runs[HEALTHY]]["source"] == HEALTHY and not by_id[runs[HEALTHY]]["freshness"]["stale"]
    assert by_id[runs[FAILING]]["freshness"]["age_seconds"] > 100
    assert not answer["panels"]["runs"]["stale"]
    boxes_json = {s["id"]: s for s in answer["sandboxes"]}
    assert boxes_json[boxes[FAILING]]["freshness"]["stale"]
    assert not boxes_json[boxes[HEALTHY]]["freshness"]["stale"]

    assert {s["name"]: s["stale"] for s in answer["sources"]} == {HEALTHY: False, FAILING: True}
    assert "STALE" in _row(html, f"source-{FAILING}") and "STALE" not in _row(html, f"source-{HEALTHY}")

    assert f"State: stale (data too old from {FAILING})" in summary.getvalue()
    assert printed["state"] == "stale" and printed["stale_sources"] == [FAILING]
    printed_runs = {r["run_id"]: r for r in printed["runs"]}
    assert printed_runs[runs[FAILING]]["freshness"]["stale"]
    assert not printed_runs[runs[HEALTHY]]["freshness"]["stale"]
    assert printed_runs[runs[HEALTHY]]["source"] == HEALTHY


@pytest.mark.django_db
def test_the_dashboard_and_the_wall_filter_by_source(browser: Client, sim: SimulatorControl) -> None:
    runs = {source: _streaming_run(sim, source) for source in (HEALTHY, FAILING)}
    boxes = {source: str(sim.create_sandbox(source, status="running")["id"]) for source in runs}
    _fetch_all(runs)
    board_publish(board_build())

    html = browser.get("/", {"source": FAILING}).content.decode()
    assert f'id="run-{runs[FAILING]}"' in html and f'id="sandbox-{boxes[FAILING]}"' in html
    assert f'id="run-{runs[HEALTHY]}"' not in html and f'id="sandbox-{boxes[HEALTHY]}"' not in html
    assert f'<option value="{FAILING}" selected>' in html
    assert f'<option value="{HEALTHY}">' in html

    _, raw = DisplayToken.issue(f"lobby-{uuid.uuid4()}")
    wall = Client().get(f"/kiosk/{raw}/", {"sources": FAILING}).content.decode()
    assert f'id="wall-run-{runs[FAILING]}"' in wall and f'id="wall-sandbox-{boxes[FAILING]}"' in wall
    assert f'id="wall-run-{runs[HEALTHY]}"' not in wall and f'id="wall-sandbox-{boxes[HEALTHY]}"' not in wall
    assert f'<span class="wall-scope wall-sources">{FAILING}</span>' in wall
    refused = Client().get(f"/kiosk/{raw}/", {"sources": f"{FAILING},mallory"})
    assert refused.status_code == 400
    assert (
        f"sources: &#x27;mallory&#x27; is not a configured source; use a comma-separated list of {HEALTHY}, {FAILING}."
        in refused.content.decode()
    )

    html = browser.get("/", {"source": "x" * 300}).content.decode()
    assert "The source filter is longer than 200 characters; choose a source from the list." in html
    assert f'id="run-{runs[HEALTHY]}"' in html and f'id="run-{runs[FAILING]}"' in html


@pytest.mark.django_db
def test_board_json_says_ok_attention_and_poller_down(browser: Client, sim: SimulatorControl) -> None:
    run_id = _streaming_run(sim, HEALTHY)
    _fetch_all({HEALTHY: run_id})
    sandboxes_fetch(FAILING)
    board_publish(board_build())
    assert browser.get("/api/board.json").json()["state"] == "ok"

    sim.set_run_status(run_id, "failed")
    _fetch_all({HEALTHY: run_id})
    sandboxes_fetch(FAILING)
    board_publish(board_build())
    assert browser.get("/api/board.json").json()["state"] == "attention"

    # Nothing composes for ten minutes: the poller is down.
    with time_machine.travel(time.time() + 600):
        assert browser.get("/api/board.json").json()["state"] == "poller_down"


@pytest.mark.django_db
def test_a_row_turns_stale_on_an_unchanged_poll_when_its_source_does(browser: Client, settings: Any) -> None:
    """The board's content stands still, but one source's data ages past the threshold:
    the next poll is not a 204, and only that source's row says STALE."""
    settings.BOARD_STALE_SECONDS = 30
    now = float(int(time.time())) + 0.5  # ages are whole seconds; keep clear of a boundary
    other = "44444444-5555-4444-8444-444444444444"
    board = board_data.board(
        now,
        sources=[
            board_data.source_row(HEALTHY, now=now),
            board_data.source_row(FAILING, now=now, state="unavailable", last_success_at=now - 20),
        ],
        runs=[
            board_data.run_row(board_data.RUN_ACTIVE, "streaming", now=now),
            board_data.run_row(other, "streaming", now=now, source=FAILING, fetched_at=now - 20),
        ],
        sandboxes_fetched_at={HEALTHY: now - 3, FAILING: now - 20},
    )
    board_data.publish(board)
    html = browser.get("/").content.decode()
    assert "STALE" not in _row(html, f"run-{other}")
    version = re.search(r'id="board-version" name="v" value="([^"]+)"', html)
    assert version is not None
    with time_machine.travel(now + 5, tick=False):
        assert browser.get("/", {"v": version[1]}, HTTP_HX_REQUEST="true").status_code == 204
    with time_machine.travel(now + 15, tick=False):
        snapshots.heartbeat_write(time.time())
        board_data.publish(
            {
                **board,
                "runs": [
                    {**board["runs"][0], "fetched_at": now + 14},
                    board["runs"][1],
                ],
                "sandboxes_fetched_at": {HEALTHY: now + 14, FAILING: now - 20},
            }
        )
        response = browser.get("/", {"v": version[1]}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert "STALE · fetched 35s ago" in re.sub(r"<[^>]+>", "", _row(html, f"run-{other}"))
    assert "STALE" not in _row(html, f"run-{board_data.RUN_ACTIVE}")
