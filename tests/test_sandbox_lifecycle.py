"""The sandbox page's lifecycle timeline, against the simulator: Mogplex's auto-pause events from
``/sandboxes/{id}/logs`` in words with their decision code and relative times, and the link
from a sandbox to the tracked run that uses it.
"""

from __future__ import annotations

import re
import time

import pytest
from django.test import Client

from dashboard import snapshots
from dashboard.models import TrackedRun
from dashboard.polling.compose import board_build, board_publish
from dashboard.polling.tasks import repos_fetch, run_events_fetch, sandbox_logs_fetch, sandboxes_fetch
from dashboard.simulator.control import SimulatorControl
from tests.pages import page_text


@pytest.mark.django_db
def test_the_lifecycle_reads_as_a_timeline_and_the_sandbox_links_to_its_run(
    demo_browser: Client, sim: SimulatorControl
) -> None:
    run_id = str(sim.create_run("demo")["runId"])
    sim.set_run_status(run_id, "streaming")
    box = str(sim.run(run_id)["run"]["sandboxRecordId"])
    TrackedRun.objects.create(
        run_id=run_id, via=TrackedRun.Via.COMMAND, lookup=TrackedRun.Lookup.FOUND, source="demo"
    )
    before = len(sim.sandbox(box).get("lifecycle_events") or [])
    sim.add_lifecycle_events(box, 1, event_type="tab_attached")
    sim.add_lifecycle_events(box, 1, event_type="tab_released")
    sim.add_lifecycle_events(box, 1, event_type="auto_pause_queued")
    sim.add_lifecycle_events(
        box, 1, event_type="auto_pause_decision", decision_code="auto_pause_skipped_busy"
    )
    sim.add_lifecycle_events(box, 1, event_type="auto_pause_succeeded")
    sim.add_lifecycle_events(box, 1, event_type="resume_after_auto_pause")
    sim.add_lifecycle_events(box, 1, event_type="snapshot_compacted")
    snapshots.heartbeat_write(time.time())
    repos_fetch("demo")
    sandboxes_fetch("demo")
    run_events_fetch("demo", run_id)
    board_publish(board_build())
    sandbox_logs_fetch("demo", box)

    logs = demo_browser.get(f"/sandboxes/{box}/logs/", HTTP_HX_REQUEST="true").content.decode()
    timeline = logs.split('id="lifecycle"')[1].split("</ol>")[0]
    items = [page_text(li) for li in re.findall(r"<li[^>]*>(.*?)</li>", timeline, re.S)]
    ours = items[before:]
    words = [re.sub(r" \d+s ago$| just now$", "", item) for item in ours]
    assert words == [
        "tab attached",
        "tab released",
        "pause queued",
        "auto-pause decision auto_pause_skipped_busy",
        "paused",
        "resumed",
        "snapshot_compacted",
    ], items
    assert all(re.search(r"(\d+s ago|just now)$", item) for item in ours), ours

    page = demo_browser.get(f"/sandboxes/{box}/").content.decode()
    assert f'<dd id="sandbox-run"><a href="/runs/{run_id}/">' in page
    overview = demo_browser.get("/").content.decode()
    row = overview.split(f'id="sandbox-{box}"')[1].split("</tr>")[0]
    assert f'<a class="box-run" href="/runs/{run_id}/">run</a>' in row
