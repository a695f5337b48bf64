"""Automations and their job runs in the simulator, shaped and paged as Mogplex serves them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from dashboard.demo import new_pat
from dashboard.simulator.control import SimulatorControl

MISSING_UUID = "6f1c1f5e-0000-4000-8000-000000000000"
SUMMARY_FIELDS = {
    "id",
    "installationId",
    "name",
    "description",
    "status",
    "publishedVersionId",
    "createdAt",
    "updatedAt",
}


@pytest.fixture
def api(simulator_server: str, sim: SimulatorControl) -> Iterator[httpx.Client]:
    token = new_pat()
    sim.register_token("reader", token, ["read"], user="alice")
    sim.register_token("stranger", stranger_token := new_pat(), ["read"], user="bob")
    with httpx.Client(
        base_url=f"{simulator_server}/api/v1/mogplex",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as client:
        client.headers["X-Stranger"] = stranger_token
        yield client


def data(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    return body["data"]


def error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"]["code"], body["error"]["message"]


def test_automations_page_by_cursor_newest_first(api: httpx.Client, sim: SimulatorControl) -> None:
    made = [sim.create_automation("alice", name=f"Automation {n}")["id"] for n in range(5)]
    sim.create_automation("bob", name="Not alice's")

    first = data(api.get("/automations", params={"limit": "2"}))
    second = data(api.get("/automations", params={"limit": "2", "cursor": first["nextCursor"]}))
    third = data(api.get("/automations", params={"limit": "2", "cursor": second["nextCursor"]}))

    pages = [first, second, third]
    assert [[a["id"] for a in page["automations"]] for page in pages] == [
        made[::-1][0:2],
        made[::-1][2:4],
        made[::-1][4:],
    ]
    assert third["nextCursor"] is None
    assert all(set(a) == SUMMARY_FIELDS for page in pages for a in page["automations"])
    decoded = json.loads(base64.urlsafe_b64decode(first["nextCursor"] + "=="))
    assert decoded == {"createdAt": first["automations"][-1]["createdAt"], "id": made[3]}
    everything = data(api.get("/automations"))
    assert len(everything["automations"]) == 5 and everything["nextCursor"] is None


@pytest.mark.parametrize(
    "cursor",
    [
        "%%",
        "not-base64!",
        base64.urlsafe_b64encode(b'{"createdAt": "yesterday", "id": "x"}').decode(),
        base64.urlsafe_b64encode(
            json.dumps({"createdAt": "2026-08-03T15:00:00Z", "id": "x"}).encode()
        ).decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
    ],
)
def test_a_malformed_cursor_is_400_invalid_cursor(
    api: httpx.Client, sim: SimulatorControl, cursor: str
) -> None:
    sim.create_automation("alice")

    assert error(api.get("/automations", params={"cursor": cursor})) == (400, "BAD_REQUEST", "Invalid cursor")


def test_an_empty_cursor_is_the_first_page(api: httpx.Client, sim: SimulatorControl) -> None:
    sim.create_automation("alice")

    assert len(data(api.get("/automations", params={"cursor": ""}))["automations"]) == 1


def test_an_automation_with_its_run_summary(api: httpx.Client, sim: SimulatorControl) -> None:
    automation = sim.create_automation("alice", name="Review PRs", description=None)
    inactive = sim.create_automation("alice", status="inactive", published=False)
    runs = [sim.create_job_run(automation["id"])["id"] for _ in range(4)]
    sim.set_job_run_status(runs[0], "running")
    sim.set_job_run_status(runs[0], "success")
    sim.set_job_run_status(runs[1], "running")
    sim.set_job_run_status(runs[1], "failed", error="Agent run exited with code 2.")
    sim.set_job_run_status(runs[2], "running")

    detail = data(api.get(f"/automations/{automation['id']}"))["automation"]
    quiet = data(api.get(f"/automations/{inactive['id'].upper()}"))["automation"]

    assert detail["runSummary"] == {
        "lastRunId": runs[3],
        "lastRunStatus": "pending",
        "runningCount": 1,
        "pendingCount": 1,
        "failed24h": 1,
    }
    assert detail["publishedVersion"]["versionNumber"] == 1
    assert {"notes", "draftGraph", "publishedVersion", "runSummary"} <= set(detail)
    assert quiet["status"] == "inactive" and quiet["publishedVersion"] is None
    assert quiet["runSummary"] == {
        "lastRunId": None,
        "lastRunStatus": None,
        "runningCount": 0,
        "pendingCount": 0,
        "failed24h": 0,
    }


def test_job_runs_newest_first_default_20_capped_at_50(api: httpx.Client, sim: SimulatorControl) -> None:
    automation = sim.create_automation("alice")["id"]
    made = [sim.create_job_run(automation)["id"] for _ in range(55)]

    default = data(api.get(f"/automations/{automation}/runs"))["runs"]
    most = data(api.get(f"/automations/{automation}/runs", params={"limit": "500"}))["runs"]

    assert [run["id"] for run in default] == made[::-1][:20]
    assert len(most) == 50
    stamps = [datetime.fromisoformat(run["created_at"]) for run in most]
    assert stamps == sorted(stamps, reverse=True)
    first = default[0]
    assert first["agent"] == {"id": None, "name": None, "slug": None}
    assert first["cost_usd"] is None and first["latest_ai_call"] is None
    assert set(first["repo"]) == {"id", "full_name"}
    assert first["latest_dispatch_event"]["outcome"] == "queued"


def test_a_job_run_moves_and_its_detail_has_raw_ai_calls(api: httpx.Client, sim: SimulatorControl) -> None:
    automation = sim.create_automation("alice")["id"]
    run_id = sim.create_job_run(automation, age_seconds=300)["id"]
    waiting = data(api.get(f"/automations/{automation}/runs"))["runs"][0]
    sim.set_job_run_status(run_id, "running")
    sim.set_job_run_status(run_id, "failed", error="Agent run exited with code 2.")

    listed = data(api.get(f"/automations/{automation}/runs"))["runs"][0]
    detail = data(api.get(f"/automations/{automation}/runs/{run_id}"))["run"]

    created = datetime.fromisoformat(waiting["created_at"])
    assert waiting["status"] == "pending" and waiting["started_at"] is None
    assert (datetime.fromisoformat(listed["started_at"]) - created).total_seconds() >= 299
    assert listed["status"] == "failed" and listed["error"] == "Agent run exited with code 2."
    assert listed["duration_ms"] is not None and listed["completed_at"] is not None
    assert {"dispatch_events", "ai_calls", "review_findings", "waits", "latest_ai_call"} <= set(detail)
    events = detail["ai_calls"][0]["events"]
    assert [e["event_type"] for e in events] == ["started", "tool_started", "failed"]
    # Raw: ai_calls events are not cleaned the way run events are.
    assert events[1]["payload"]["env"]["GH_TOKEN"].startswith("ghs_")
    assert [e["outcome"] for e in detail["dispatch_events"]] == ["queued", "started", "failed"]


def test_job_run_ids_are_not_agent_run_ids(api: httpx.Client, sim: SimulatorControl) -> None:
    automation = sim.create_automation("alice")["id"]
    run_id = sim.create_job_run(automation)["id"]

    assert error(api.get(f"/runs/{run_id}")) == (404, "NOT_FOUND", "Run not found")
    assert error(api.get(f"/runs/{run_id}/events")) == (404, "NOT_FOUND", "Run not found")
    assert error(api.get(f"/automations/{automation}/runs/{MISSING_UUID}")) == (
        404,
        "NOT_FOUND",
        "Run not found",
    )


def test_unknown_foreign_and_non_uuid_automations(api: httpx.Client, sim: SimulatorControl) -> None:
    automation = sim.create_automation("alice")["id"]
    stranger = {"Authorization": f"Bearer {api.headers['X-Stranger']}"}

    assert error(api.get(f"/automations/{MISSING_UUID}")) == (404, "NOT_FOUND", "Automation not found")
    assert error(api.get(f"/automations/{automation}", headers=stranger)) == (
        404,
        "NOT_FOUND",
        "Automation not found",
    )
    assert error(api.get(f"/automations/{MISSING_UUID}/runs")) == (404, "NOT_FOUND", "Automation not found")
    assert error(api.get("/automations/abc")) == (500, "INTERNAL_ERROR", "Failed to load automation")
    assert error(api.get("/automations/abc/runs")) == (
        500,
        "INTERNAL_ERROR",
        "Failed to list automation runs",
    )
    assert error(api.get(f"/automations/{automation}/runs/abc")) == (
        500,
        "INTERNAL_ERROR",
        "Failed to load automation run logs",
    )
