"""Untracked activity: a sandbox at work that no tracked run points at, and paused or stopped
sandboxes folded into a count. The simulator serves them, the poller's fetch tasks store
them, and the page is looked at forty minutes later (time-machine, no sleeps).
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import pytest
import time_machine
from django.test import Client

from dashboard import snapshots
from dashboard.models import DisplayToken, TrackedRun
from dashboard.polling.compose import board_build, board_publish
from dashboard.polling.tasks import repos_fetch, run_events_fetch, sandboxes_fetch
from dashboard.simulator.control import SimulatorControl
from tests.pages import page_text


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _poll(tracked: list[str]) -> None:
    """One tick of the poller: heartbeat, repos, sandboxes, the tracked runs, then the board."""
    snapshots.heartbeat_write(time.time())
    repos_fetch("demo")
    sandboxes_fetch("demo")
    for run_id in tracked:
        run_events_fetch("demo", run_id)
    board_publish(board_build())


@pytest.mark.django_db
def test_an_active_sandbox_no_tracked_run_points_at_is_untracked_activity(
    demo_browser: Client, sim: SimulatorControl
) -> None:
    # A tracked run with its own sandbox, and a sandbox someone started by hand.
    run_id = str(sim.create_run("demo")["runId"])
    sim.set_run_status(run_id, "streaming")
    own_box = str(sim.run(run_id)["run"]["sandboxRecordId"])
    TrackedRun.objects.create(
        run_id=run_id, via=TrackedRun.Via.COMMAND, lookup=TrackedRun.Lookup.FOUND, source="demo"
    )
    loose = sim.create_sandbox("demo", status="running", working_branch="agent/hand-made")
    repo = next(r["full_name"] for r in sim.repos("demo") if r["id"] == loose["repo_id"])
    _poll([run_id])

    at = _epoch(loose["created_at"]) + 40 * 60 + 5
    with time_machine.travel(at):
        snapshots.heartbeat_write(time.time())
        html = demo_browser.get("/").content.decode()
        _, raw = DisplayToken.issue(f"lobby-{uuid.uuid4()}")
        wall = Client().get(f"/kiosk/{raw}/").content.decode()
        answer = demo_browser.get("/api/board.json").json()

    block = html.split('id="untracked-activity"')[1].split("</section>")[0]
    assert "paste its run link" in block
    line = page_text(block.split(f'id="untracked-{loose["id"]}"')[1].split("</li>")[0])
    assert f"{repo} · branch agent/hand-made · running 40m" in line
    assert line.rstrip().endswith("no tracked run (demo)")
    assert f'id="untracked-{own_box}"' not in block, "the tracked run's sandbox is accounted for"
    assert "no tracked run" in html.split(f'<tr id="sandbox-{loose["id"]}"')[1].split("</tr>")[0]
    assert "no tracked run" not in html.split(f'<tr id="sandbox-{own_box}"')[1].split("</tr>")[0]
    # The wall's sandbox rows are narrow: one word says it.
    assert "untracked" in page_text(wall.split(f'id="wall-sandbox-{loose["id"]}"')[1].split("</li>")[0])
    assert "untracked" not in page_text(wall.split(f'id="wall-sandbox-{own_box}"')[1].split("</li>")[0])

    boxes = {s["id"]: s for s in answer["sandboxes"]}
    assert boxes[loose["id"]]["untracked"] and boxes[loose["id"]]["tracked_run_id"] is None
    assert not boxes[own_box]["untracked"] and boxes[own_box]["tracked_run_id"] == run_id

    # Once it stops, it is no longer activity: it folds into the count.
    sim.set_sandbox_status(loose["id"], "stopped")
    _poll([run_id])
    html = demo_browser.get("/").content.decode()
    assert 'id="untracked-activity"' not in html
    assert "1 stopped not listed." in page_text(html)


@pytest.mark.django_db
def test_paused_and_stopped_sandboxes_fold_into_a_count(demo_browser: Client, sim: SimulatorControl) -> None:
    running = sim.create_sandbox("demo", status="running")
    paused = [sim.create_sandbox("demo", status="paused") for _ in range(2)]
    stopped = [sim.create_sandbox("demo", status="stopped") for _ in range(3)]
    _poll([])

    html = demo_browser.get("/").content.decode()
    panel = html.split('id="panel-sandboxes"')[1].split("</section>")[0]
    assert f'id="sandbox-{running["id"]}"' in panel
    for box in paused + stopped:
        assert f'id="sandbox-{box["id"]}"' not in panel
    assert "2 paused · 3 stopped not listed." in page_text(panel)
    assert '<span class="count">1</span>' in panel

    listed = demo_browser.get("/", {"status": "paused"}).content.decode()
    panel = listed.split('id="panel-sandboxes"')[1].split("</section>")[0]
    assert all(f'id="sandbox-{box["id"]}"' in panel for box in paused)
    assert f'id="sandbox-{running["id"]}"' not in panel
    assert "not listed" not in panel
