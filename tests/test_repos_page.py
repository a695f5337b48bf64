"""The repos page, against the simulator: every repo a source sees with its default branch,
root directory and GitHub App coverage (``installation_id`` null: synced only), its active runs,
last run and sandboxes; an empty list says what to fix; a list at the 200 cap is flagged.
"""

from __future__ import annotations

import html as html_lib
import re
import time

import pytest
from django.test import Client

from dashboard import snapshots
from dashboard.models import TrackedRun
from dashboard.polling.compose import board_build, board_publish
from dashboard.polling.tasks import account_fetch, repos_fetch, run_events_fetch, sandboxes_fetch
from dashboard.simulator.control import SimulatorControl
from tests.hostile import CORPUS, injected_markup, upstream_records_write
from tests.pages import page_text


def _poll(run_ids: list[str]) -> None:
    for run_id in run_ids:
        TrackedRun.objects.create(
            run_id=run_id, via=TrackedRun.Via.COMMAND, lookup=TrackedRun.Lookup.FOUND, source="demo"
        )
    snapshots.heartbeat_write(time.time())
    repos_fetch("demo")
    sandboxes_fetch("demo")
    account_fetch("demo")
    for run_id in run_ids:
        run_events_fetch("demo", run_id)
    board_publish(board_build())


def _row(page: str, repo_id: str) -> str:
    dom = f'id="repo-demo-{repo_id}"'
    assert dom in page, f"repo {repo_id} is listed"
    return page.split(dom)[1].split("</tr>")[0]


@pytest.mark.django_db
def test_every_repo_with_its_branch_coverage_runs_and_sandboxes(
    demo_browser: Client, sim: SimulatorControl
) -> None:
    repos = [r for r in sim.repos("demo") if not r.get("hidden")]
    web = next(r for r in repos if r["installation_id"] is not None)
    docs = next(r for r in repos if r["full_name"] == "acme/docs")
    live = str(sim.create_run("demo", repo_id=web["id"])["runId"])
    sim.set_run_status(live, "streaming")
    done = str(sim.create_run("demo", repo_id=web["id"])["runId"])
    sim.set_run_status(done, "streaming")
    sim.set_run_status(done, "failed", failure_code="rate_limited")
    _poll([live, done])

    overview = demo_browser.get("/").content.decode()
    assert 'href="/repos/"' in overview
    page = demo_browser.get("/repos/").content.decode()
    section = page.split('id="repos-demo"')[1].split("</section>")[0]
    assert re.search(rf"demo <span class=\"count\">{len(repos)}</span>", section)
    for repo in repos:
        row = page_text(_row(section, repo["id"]))
        assert repo["full_name"] in row
        assert (repo["default_branch"] or "—") in row
    assert "synced only" in page_text(_row(section, docs["id"]))
    web_row = _row(section, web["id"])
    assert "covered" in page_text(web_row) and "synced only" not in web_row
    assert f'href="/runs/{live}/">streaming</a>' in web_row
    last = page_text(web_row.split('class="last-run">')[1])
    assert last.startswith("failed the model provider rate-limited the run")
    box = str(sim.run(live)["run"]["sandboxRecordId"])
    assert f'href="/sandboxes/{box}/"' in web_row
    assert "Mogplex lists at most" not in page


@pytest.mark.django_db
def test_no_repo_says_what_to_fix(demo_browser: Client, sim: SimulatorControl) -> None:
    sim.set_account("demo", github_state="disconnected")
    _poll([])
    page = demo_browser.get("/repos/").content.decode()
    section = page_text(page.split('id="repos-demo"')[1].split("</section>")[0])
    assert (
        "demo sees no repos: fix the GitHub App coverage or the repo import in Mogplex (GitHub: Not connected)."
        in section
    )


@pytest.mark.django_db
def test_a_list_at_the_cap_is_flagged(demo_browser: Client, sim: SimulatorControl) -> None:
    _poll([])
    record = snapshots.repos_read("demo")
    assert record is not None
    many = [
        {**record["repos"][0], "id": f"00000000-0000-4000-8000-{i:012d}", "full_name": f"acme/r{i:03d}"}
        for i in range(200)
    ]
    snapshots.repos_write("demo", many, fetched_at=time.time())
    page = demo_browser.get("/repos/").content.decode()
    assert "Mogplex lists at most 200 repos and has no way to ask for more" in page
    assert page.count('id="repo-demo-') == 200


@pytest.mark.django_db
def test_hostile_repo_fields_are_shown_as_text(demo_browser: Client) -> None:
    upstream_records_write(time.time())
    page = demo_browser.get("/repos/").content.decode()
    assert injected_markup(page) == []
    assert page.count('id="repo-demo-') == len(CORPUS)
    assert html_lib.escape("<script>window.__xss=1</script>") in page
