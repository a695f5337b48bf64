"""The automations page and the attention lane, against the simulator: each automation's status and
health as Mogplex classifies it (Healthy / Needs attention / No activity), its newest job runs;
failed job runs and job runs pending over 2 min in the lane (dashboard and wall) and the headline,
resolved by acknowledgement or a later success; job-run ids never sent to ``/runs/{id}``.
"""

from __future__ import annotations

import html as html_lib
import time
import uuid
from typing import Any

import pytest
from django.test import Client

from dashboard import snapshots
from dashboard.models import DisplayToken
from dashboard.polling.compose import board_build, board_publish
from dashboard.polling.tasks import automation_fetch, automation_runs_fetch, automations_fetch
from dashboard.simulator.control import SimulatorControl
from tests.hostile import CORPUS, hostile_automations, injected_markup
from tests.pages import page_text

USER = "demo"


def _poll() -> None:
    snapshots.heartbeat_write(time.time())
    automations_fetch("demo")
    listed = snapshots.automations_read_many(["demo"])["demo"]
    for automation in listed["automations"]:
        automation_fetch("demo", automation["id"])
        automation_runs_fetch("demo", automation["id"])
    board_publish(board_build())


def _part(page: str, dom_id: str, end: str) -> str:
    """The markup inside the element with ``id=dom_id``, up to ``end``."""
    dom = f'id="{dom_id}"'
    assert dom in page, f"{dom_id} is on the page"
    return page.split(dom)[1].split(">", 1)[1].split(end)[0]


def _automation(page: str, automation_id: str) -> str:
    return _part(page, f"automation-demo-{automation_id}", "</article>")


def _lane(page: str) -> str:
    return page.split('id="panel-attention"')[1].split("</section>")[0]


def _finish(sim: SimulatorControl, job_run_id: str, status: str, error: str | None = None) -> None:
    sim.set_job_run_status(job_run_id, "running")
    sim.set_job_run_status(job_run_id, status, error=error)


@pytest.fixture
def scenario(sim: SimulatorControl) -> dict[str, str]:
    """Four automations of the demo user, one per health class (and one inactive); their ids."""
    healthy = str(sim.create_automation(USER, name="Review PRs")["id"])
    failing = str(sim.create_automation(USER, name="Triage issues")["id"])
    waiting = str(sim.create_automation(USER, name="Nightly deps")["id"])
    quiet = str(sim.create_automation(USER, name="Release notes", status="inactive")["id"])
    for _ in range(2):
        _finish(sim, str(sim.create_job_run(healthy)["id"]), "success")
    _finish(sim, str(sim.create_job_run(failing)["id"]), "success")
    failed = str(sim.create_job_run(failing)["id"])
    _finish(sim, failed, "failed", error="Agent run exited with code 2. <b>see log</b>")
    pending = str(sim.create_job_run(waiting, age_seconds=600)["id"])
    return {
        "healthy": healthy,
        "failing": failing,
        "waiting": waiting,
        "quiet": quiet,
        "failed": failed,
        "pending": pending,
    }


@pytest.mark.django_db
def test_each_automation_shows_its_status_health_and_job_runs(
    demo_browser: Client, sim: SimulatorControl, scenario: dict[str, str]
) -> None:
    _poll()
    overview = demo_browser.get("/").content.decode()
    assert 'href="/automations/"' in overview
    summary = page_text(_part(overview, "panel-automations", "</section>"))
    assert summary.startswith("Automations 4")
    assert "2 need attention · 1 healthy · 1 no activity: Nightly deps, Triage issues" in summary
    page = demo_browser.get("/automations/").content.decode()

    healthy = page_text(_automation(page, scenario["healthy"]))
    assert healthy.startswith("Review PRs active Healthy")
    assert "100 % of 2 finished in 24 h succeeded" in healthy
    failing = _automation(page, scenario["failing"])
    assert page_text(failing).startswith("Triage issues active Needs attention")
    assert "1 failed in 24 h" in page_text(failing)
    row = page_text(_part(failing, f"job-run-{scenario['failed']}", "</tr>"))
    repo = sim.repos(USER)[0]["full_name"]
    assert row.startswith("failed") and repo in row
    assert "Agent run exited with code 2. <b>see log</b>" in row
    assert "&lt;b&gt;see log&lt;/b&gt;" in failing
    waiting = page_text(_automation(page, scenario["waiting"]))
    assert waiting.startswith("Nightly deps active Needs attention")
    assert "1 pending (1 waiting over 2 min)" in waiting
    assert "waiting over 2 min" in waiting
    quiet = page_text(_automation(page, scenario["quiet"]))
    assert quiet.startswith("Release notes inactive No activity")


@pytest.mark.django_db
def test_failed_and_long_pending_job_runs_need_attention_on_the_board_and_the_wall(
    demo_browser: Client, sim: SimulatorControl, scenario: dict[str, str]
) -> None:
    _poll()
    page = demo_browser.get("/").content.decode()
    lane = _lane(page)
    failed = page_text(_part(lane, f"attention-job_run-{scenario['failed']}", "</tr>"))
    assert "automation Triage issues job run" in failed
    assert "Agent run exited with code 2." in failed
    stalled = page_text(_part(lane, f"attention-job_run-{scenario['pending']}", "</tr>"))
    assert "stalled?" in stalled and "waiting to start for over 2 min" in stalled
    assert "2 need attention" in page_text(page.split('id="headline"')[1].split("</span>\n")[0])
    assert f'action="/job-runs/{scenario["failed"]}/acknowledge/"' in lane

    raw = DisplayToken.issue(name="wall")[1]
    wall = demo_browser.get(f"/kiosk/{raw}/").content.decode()
    item = page_text(_part(wall, f"wall-job_run-{scenario['failed']}", "</li>"))
    assert "automation Triage issues" in item and "failed" in item

    data = demo_browser.get("/api/board.json").json()
    assert {(i["kind"], i["id"], i["problem"]) for i in data["attention"]} == {
        ("job_run", scenario["failed"], "failed"),
        ("job_run", scenario["pending"], "stalled"),
    }


@pytest.mark.django_db
def test_a_job_run_problem_resolves_by_acknowledgement_or_a_later_success(
    demo_browser: Client, sim: SimulatorControl, scenario: dict[str, str]
) -> None:
    _poll()
    answer = demo_browser.post(f"/job-runs/{scenario['pending']}/acknowledge/", {"note": "queue is full"})
    assert answer.status_code == 302
    lane = _lane(demo_browser.get("/").content.decode())
    assert f'id="attention-job_run-{scenario["pending"]}"' not in lane
    assert "acknowledged by ada" in page_text(lane)

    # A later successful job run of the same automation fixes the failure.
    _finish(sim, str(sim.create_job_run(scenario["failing"])["id"]), "success")
    _poll()
    lane = _lane(demo_browser.get("/").content.decode())
    assert f'id="attention-job_run-{scenario["failed"]}"' not in lane
    assert "fixed by job run" in page_text(lane)
    assert "/runs/" not in lane.split('class="resolved-list"')[1]

    missing = uuid.uuid4()
    refused = demo_browser.post(f"/job-runs/{missing}/acknowledge/")
    assert refused.status_code == 404
    assert f"Job run {missing} is not on the board; check the id." in page_text(refused.content.decode())


@pytest.mark.django_db
def test_job_run_ids_are_never_sent_to_runs(
    demo_browser: Client, sim: SimulatorControl, scenario: dict[str, str]
) -> None:
    _poll()
    for path in ("/", "/automations/", "/api/board.json"):
        assert demo_browser.get(path).status_code == 200
    job_runs = {scenario["failed"], scenario["pending"]}
    sent = [r["path"] for r in sim.requests() if r["token_name"] == "demo"]
    assert sent and all(path.startswith("/api/v1/mogplex/automations") for path in sent)
    assert not [p for p in sent if any(job_run in p for job_run in job_runs) and "/automations/" not in p]


@pytest.mark.django_db
def test_the_sources_panel_shows_how_often_automations_come_round(demo_browser: Client) -> None:
    snapshots.source_health_update("demo", state="ok", automations_interval_seconds=1000.4)
    board_publish(board_build())
    sources = page_text(_part(demo_browser.get("/").content.decode(), "panel-sources", "</section>"))
    assert "automations every 16m 40s" in sources


@pytest.mark.django_db
def test_a_source_that_cannot_read_automations_says_so(demo_browser: Client, sim: SimulatorControl) -> None:
    snapshots.source_health_update("demo", state="ok", denied_endpoints=["/automations"])
    board_publish(board_build())
    sources = page_text(
        demo_browser.get("/").content.decode().split('id="panel-sources"')[1].split("</section>")[0]
    )
    assert "So the board cannot read its automations." in sources
    page = page_text(demo_browser.get("/automations/").content.decode())
    assert "The token of demo cannot read automations (403: it lacks the 'read' scope)" in page


@pytest.mark.django_db
def test_hostile_automation_fields_are_shown_as_text(demo_browser: Client) -> None:
    board = board_build()
    board["automations"], board["job_runs"] = hostile_automations(CORPUS)
    board["automations_fetched_at"] = {"demo": time.time()}
    board_publish(board)
    for path in ("/automations/", "/"):
        page = demo_browser.get(path).content.decode()
        assert injected_markup(page) == []
        assert html_lib.escape("<script>window.__xss=1</script>") in page


@pytest.mark.django_db
def test_a_failed_job_run_leaves_the_lane_with_the_attention_window(
    demo_browser: Client, settings: Any
) -> None:
    from datetime import UTC, datetime

    [job_run], [automation] = (
        [dict(rows[0], status="failed")] for rows in reversed(hostile_automations(["Nightly deps"]))
    )
    board = board_build()
    ended = time.time() - settings.BOARD_ATTENTION_HOURS * 3600
    for age, lane_has_it in ((60, True), (-60, False)):
        job_run["completed_at"] = datetime.fromtimestamp(ended + age, tz=UTC).isoformat()
        board["automations"], board["job_runs"] = [automation], [job_run]
        board_publish(board)
        lane = _lane(demo_browser.get("/").content.decode())
        assert (f'id="attention-job_run-{job_run["id"]}"' in lane) is lane_has_it
