"""Why a run failed, against the simulator: each failure code becomes one plain reason on the
dashboard's row, the wall and the run page, with Mogplex's own sentence beside it; an unknown
code is shown as it is; a success with nothing to deliver says so instead of a PR.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
from django.test import Client

from dashboard import snapshots
from dashboard.models import DisplayToken, TrackedRun
from dashboard.polling.compose import board_build, board_publish
from dashboard.polling.tasks import repos_fetch, run_events_fetch, sandboxes_fetch
from dashboard.simulator.control import SimulatorControl
from tests.pages import page_text


def _track_and_poll(run_ids: list[str]) -> None:
    for run_id in run_ids:
        TrackedRun.objects.create(
            run_id=run_id, via=TrackedRun.Via.COMMAND, lookup=TrackedRun.Lookup.FOUND, source="demo"
        )
    snapshots.heartbeat_write(time.time())
    repos_fetch("demo")
    sandboxes_fetch("demo")
    for run_id in run_ids:
        run_events_fetch("demo", run_id)
    board_publish(board_build())


def _failed(sim: SimulatorControl, **how: Any) -> tuple[str, str]:
    run_id = str(sim.create_run("demo")["runId"])
    sim.set_run_status(run_id, "streaming")
    sim.set_run_status(run_id, "failed", **how)
    return run_id, str(sim.run(run_id)["run"]["error"])


def _row(page: str, dom_id: str, end: str) -> str:
    assert f'id="{dom_id}"' in page, f"{dom_id} is on the page"
    return page_text(page.split(f'id="{dom_id}"')[1].split(">", 1)[1].split(end)[0])


@pytest.mark.django_db
def test_each_failure_code_has_one_plain_reason_with_mogplex_sentence_beside_it(
    demo_browser: Client, sim: SimulatorControl
) -> None:
    denied, denied_error = _failed(sim, failure_code="model_access_denied")
    limited, limited_error = _failed(sim, failure_code="rate_limited")
    exited, exited_error = _failed(sim, failure_code="command_failed", exit_code=2)
    # A code Mogplex may add later: the board shows it as it is.
    novel, novel_error = _failed(sim, error="The sandbox quota ran out.")
    sim.add_events(
        novel,
        1,
        type="failed",
        message="Harness run failed",
        payload={"failure_code": "quota_exceeded", "exit_code": 3},
    )
    # A failure outside the harness has no code: its sentence is the reason.
    plain, plain_error = _failed(sim, error="Harness stream failed: connection reset")
    _track_and_poll([denied, limited, exited, novel, plain])

    expected = {
        denied: ("model not available to this account", denied_error),
        limited: ("the model provider rate-limited the run", limited_error),
        exited: ("the agent exited with code 2", exited_error),
        novel: ("quota_exceeded", novel_error),
    }
    assert "unavailable for this account" in denied_error
    assert exited_error == "Agent run exited with code 2."
    overview = demo_browser.get("/").content.decode()
    _, raw = DisplayToken.issue(f"lobby-{uuid.uuid4()}")
    wall = Client().get(f"/kiosk/{raw}/").content.decode()
    finished = overview.split('id="panel-finished"')[1]
    lane = overview.split('id="panel-attention"')[1].split("</section>")[0]
    for run_id, (reason, sentence) in expected.items():
        # The row clips Mogplex's sentence (the run page has all of it).
        row = _row(finished, f"run-{run_id}", "</tr>")
        assert f"{reason} Mogplex: {sentence[:100]}" in row
        lane_row = _row(lane, f"attention-run-{run_id}", "</tr>")
        assert f"{reason} Mogplex: {sentence}" in lane_row
        wall_row = _row(wall, f"wall-run-{run_id}", "</li>")
        assert reason in wall_row
        assert sentence[:40] in wall_row
        page = demo_browser.get(f"/runs/{run_id}/").content.decode()
        assert _row(page, "run-reason", "</dd>") == reason
        assert _row(page, "run-error", "</dd>") == sentence
    # No code: Mogplex's sentence alone, not twice.
    plain_row = _row(finished, f"run-{plain}", "</tr>")
    assert plain_row.count(plain_error) == 1 and "Mogplex:" not in plain_row
    page = demo_browser.get(f"/runs/{plain}/").content.decode()
    assert 'id="run-reason"' not in page
    assert _row(page, "run-error", "</dd>") == plain_error


@pytest.mark.django_db
def test_a_success_without_changes_says_so_where_a_pr_would_be(
    demo_browser: Client, sim: SimulatorControl
) -> None:
    quiet = str(sim.create_run("demo")["runId"])
    sim.set_run_status(quiet, "streaming")
    sim.set_run_status(quiet, "success", changed=False)
    delivered = str(sim.create_run("demo")["runId"])
    sim.set_run_status(delivered, "streaming")
    sim.set_run_status(delivered, "success")
    _track_and_poll([quiet, delivered])

    overview = demo_browser.get("/").content.decode()
    finished = overview.split('id="panel-finished"')[1]
    quiet_cell = finished.split(f'id="run-{quiet}"')[1].split("</tr>")[0].split('class="delivery"')[1]
    assert "no code changes to deliver" in quiet_cell and "<a " not in quiet_cell
    pr_cell = finished.split(f'id="run-{delivered}"')[1].split("</tr>")[0].split('class="delivery"')[1]
    assert re.search(r'<a href="https://[^"]+" rel="noopener noreferrer" target="_blank">PR</a>', pr_cell)
    assert "no code changes" not in pr_cell
    page = demo_browser.get(f"/runs/{quiet}/").content.decode()
    assert _row(page, "run-delivery", "</dd>") == "no code changes to deliver"
    page = demo_browser.get(f"/runs/{delivered}/").content.decode()
    assert _row(page, "run-delivery", "</dd>") == "Pull request"
