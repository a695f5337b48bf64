"""Automations against the simulator over HTTP and the real Valkey: the list read page by page by
cursor (a malformed cursor never sent), each automation's runSummary and job runs stored, and
job-run ids never sent to ``/runs/{id}``; a token without the read scope loses only automations.

The poller's tasks run in this process (they are plain functions), so every fetch goes
plan -> admit -> call -> settle -> record as in a worker.
"""

from __future__ import annotations

import secrets
import string

import pytest
import redis
from pytest_django.fixtures import Settings

from dashboard import snapshots
from dashboard.mogplex.config import Source, Token
from dashboard.polling.tasks import automation_fetch, automation_runs_fetch, automations_fetch
from dashboard.simulator.control import SimulatorControl

API = "/api/v1/mogplex"


@pytest.fixture(autouse=True)
def _board(settings: Settings, redis_db: redis.Redis, valkey_server: str, simulator_server: str) -> None:
    settings.REDIS_URL = valkey_server
    settings.MOGPLEX_BASE_URL = simulator_server


def _source(sim: SimulatorControl, settings: Settings, scopes: list[str] | None = None) -> str:
    """A source of its own (its user is its name), configured for this process; its name."""
    name = f"auto_{secrets.token_hex(3)}"
    token = "mog_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))
    sim.register_token(name, token, ["read"] if scopes is None else scopes, user=name)
    settings.MOGPLEX_TOKENS = [Source(name, Token(token))]
    return name


def _sent(sim: SimulatorControl, name: str) -> list[tuple[str, str, int]]:
    """(path under the API base, query, status) of every request the source sent."""
    return [
        (r["path"].removeprefix(API), r["query"], r["status"])
        for r in sim.requests()
        if r["token_name"] == name
    ]


@pytest.mark.django_db
def test_the_list_is_read_page_by_page_by_cursor(settings: Settings, sim: SimulatorControl) -> None:
    name = _source(sim, settings)
    made = [str(sim.create_automation(name, name=f"Automation {n}")["id"]) for n in range(101)]

    automations_fetch(name)

    sent = _sent(sim, name)
    assert [(path, status) for path, _, status in sent] == [("/automations", 200), ("/automations", 200)]
    assert sent[0][1] == "limit=100"
    assert sent[1][1].startswith("limit=100&cursor=")
    record = snapshots.automations_read_many([name])[name]
    assert record["complete"] is True
    assert [a["id"] for a in record["automations"]] == made[::-1]


@pytest.mark.django_db
def test_a_malformed_cursor_is_never_sent(settings: Settings, sim: SimulatorControl) -> None:
    name = _source(sim, settings)
    for n in range(101):
        sim.create_automation(name, name=f"Automation {n}")
    sim.inject_fault("malformed_cursor", token=name, count=1)

    automations_fetch(name)

    # The page came with a cursor Mogplex never gives out: the list stops there, said to be incomplete.
    assert _sent(sim, name) == [("/automations", "limit=100", 200)]
    record = snapshots.automations_read_many([name])[name]
    assert record["complete"] is False
    assert len(record["automations"]) == 100


@pytest.mark.django_db
def test_each_automation_keeps_its_summary_and_job_runs_and_job_run_ids_never_reach_runs(
    settings: Settings, sim: SimulatorControl
) -> None:
    name = _source(sim, settings)
    automation = str(sim.create_automation(name, name="Review PRs")["id"])
    jobs = [str(sim.create_job_run(automation)["id"]) for _ in range(3)]
    sim.set_job_run_status(jobs[0], "running")
    sim.set_job_run_status(jobs[0], "failed", error="Agent run exited with code 2.")
    sim.set_job_run_status(jobs[1], "running")

    automations_fetch(name)
    automation_fetch(name, automation)
    # The job runs take the fetch's second slot (the worker runs it a paced slot later).
    automation_runs_fetch(name, automation)

    record = snapshots.automations_detail_read(name, [automation])[automation]
    summary = record["automation"]["run_summary"]
    assert summary["last_run_id"] == jobs[2] and summary["last_run_status"] == "pending"
    assert (summary["running_count"], summary["pending_count"], summary["failed_24h"]) == (1, 1, 1)
    assert [run["id"] for run in record["job_runs"]] == jobs[::-1]
    failed = record["job_runs"][-1]
    assert failed["status"] == "failed" and failed["error"] == "Agent run exited with code 2."
    assert failed["repo_full_name"]
    assert [path for path, _, _ in _sent(sim, name)] == [
        "/automations",
        f"/automations/{automation}",
        f"/automations/{automation}/runs",
    ]


@pytest.mark.django_db
def test_an_automation_no_longer_listed_takes_its_record_with_it(
    settings: Settings, sim: SimulatorControl
) -> None:
    name = _source(sim, settings)
    kept = str(sim.create_automation(name, name="Kept")["id"])
    automations_fetch(name)
    listed = snapshots.automations_read_many([name])[name]
    gone = "0f0e0d0c-0000-4000-8000-000000000001"
    snapshots.automations_write(
        name, [*listed["automations"], {"id": gone, "status": "active"}], fetched_at=1.0, complete=True
    )
    for automation_id in (kept, gone):
        snapshots.automation_write(name, automation_id, {"fetched_at": 1.0, "job_runs": []})

    automations_fetch(name)

    assert list(snapshots.automations_detail_read(name, [kept, gone])) == [kept]


@pytest.mark.django_db
def test_a_token_without_the_read_scope_loses_only_automations(
    settings: Settings, sim: SimulatorControl
) -> None:
    name = _source(sim, settings, scopes=["write"])
    sim.create_automation(name, name="Review PRs")

    automations_fetch(name)
    automations_fetch(name)  # denied: not asked again for a while

    assert _sent(sim, name) == [("/automations", "limit=100", 403)]
    health = snapshots.source_health_read(name) or {}
    assert health.get("state") != "forbidden"
    assert health["denied_endpoints"] == ["/automations"]
    assert snapshots.automations_read_many([name]) == {}
