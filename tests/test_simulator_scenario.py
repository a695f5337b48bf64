"""The seeded scenario: a CI job starting runs over HTTP and registering them with the board."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings

from dashboard.demo import DemoSecrets, demo_secrets
from dashboard.simulator.control import SimulatorControl
from tests.audit import AUDIT
from tests.waiting import wait_for

FAILING_INGESTS = 2


@dataclass
class IngestReceiver:
    """Stands in for the board's ingest endpoint; the first few calls fail, as if it were still starting."""

    url: str = ""
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def receiver() -> Iterator[IngestReceiver]:
    box = IngestReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with box.lock:
                refuse = len(box.refused) < FAILING_INGESTS
                if refuse:
                    box.refused.append(body)
                else:
                    box.received.append((self.headers.get("Authorization", ""), body))
            self.send_response(503 if refuse else 201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.url = f"http://127.0.0.1:{server.server_address[1]}/ingest/runs"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def scenario_sim(receiver: IngestReceiver) -> Iterator[SimulatorControl]:
    """A simulator of its own running the scenario fast (60x)."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dashboard.simulator",
            "--scenario",
            "--speed",
            "60",
            "--seed",
            "3",
            "--port",
            str(port),
            "--window-seconds",
            "30",
            "--limit",
            "120",
            "--ingest-url",
            receiver.url,
        ],
        cwd=settings.BASE_DIR,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    control = SimulatorControl(f"http://127.0.0.1:{port}")

    def answers() -> bool:
        assert proc.poll() is None, "the simulator exited"
        try:
            return bool(control.health()["ok"])
        except httpx.TransportError:
            return False

    wait_for(answers, timeout=20, what="the scenario simulator to answer")
    AUDIT.watch(f"http://127.0.0.1:{port}")
    try:
        yield control
    finally:
        AUDIT.collect(f"http://127.0.0.1:{port}")
        control.close()
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def secrets() -> DemoSecrets:
    return demo_secrets(Path(settings.VAR_DIR))


def test_runs_are_started_over_http_with_the_write_token(scenario_sim: SimulatorControl) -> None:
    starts = wait_for(
        lambda: [r for r in scenario_sim.requests() if r["method"] == "POST" and r["status"] == 202],
        timeout=20,
        what="the scenario to start a run",
    )

    assert starts[0]["path"] == "/api/v1/mogplex/runs"
    assert starts[0]["token_name"] == "ci"
    assert starts[0]["idempotency_key"] is True


def test_runs_are_registered_with_the_board_despite_early_failures(
    scenario_sim: SimulatorControl, receiver: IngestReceiver, secrets: DemoSecrets
) -> None:
    wait_for(lambda: len(receiver.received) >= 3, timeout=30, what="runs registered with the board")

    with receiver.lock:
        authorization, first = receiver.received[0]
        retried = {body["runId"] for body in receiver.refused} <= {b["runId"] for _, b in receiver.received}
    assert authorization == f"Bearer {secrets.ingest_token}"
    assert "ok" not in first and first["replayed"] is False
    assert first["status"] == "pending"
    assert first["eventsUrl"] == f"/api/v1/mogplex/runs/{first['runId']}/events"
    assert retried


def test_runs_progress_end_and_deliver(scenario_sim: SimulatorControl, secrets: DemoSecrets) -> None:
    succeeded = wait_for(
        lambda: [c["run_id"] for c in scenario_sim.status_changes() if c["status"] == "success"],
        timeout=60,
        what="a scenario run to succeed",
    )

    response = httpx.get(
        f"{scenario_sim.base_url}/api/v1/mogplex/runs/{succeeded[0]}/events",
        params={"limit": "200"},
        headers={"Authorization": f"Bearer {secrets.read_token}"},
    )
    feed = response.json()["data"]
    assert feed["run"]["status"] == "success"
    types = [e["type"] for e in feed["events"]]
    assert {"status_changed", "started", "tool_started", "tool_finished", "finished"} <= set(types)
    delivery = next(e for e in feed["events"] if e["payload"].get("stage") == "git_delivery")
    assert delivery["message"] in ("Pull request ready", "No code changes to deliver")
    assert types.index("finished") > feed["events"].index(delivery)
    assert feed["run"]["sandboxId"].startswith("sbx_")


def test_never_more_than_eight_runs_active(scenario_sim: SimulatorControl) -> None:
    changes = wait_for(
        lambda: (c := scenario_sim.status_changes()) and sum(x["status"] != "pending" for x in c) > 20 and c,
        timeout=60,
        what="the scenario to make progress",
    )

    status: dict[str, str] = {}
    most = 0
    for change in changes:
        status[change["run_id"]] = change["status"]
        most = max(most, sum(s in ("pending", "streaming") for s in status.values()))
    assert 1 <= most <= 8


def test_every_account_state_is_in_the_demo_team(
    scenario_sim: SimulatorControl, secrets: DemoSecrets
) -> None:
    def user(token: str) -> Any:
        return httpx.get(
            f"{scenario_sim.base_url}/api/auth/user", headers={"Authorization": f"Bearer {token}"}
        ).json()["user"]

    seen = {name: user(token) for name, token in secrets.sources()}

    states = {u["github_state"] for u in seen.values() if u is not None}
    assert states == {
        "disconnected",
        "oauth_connected",
        "app_install_pending",
        "app_installed",
        "app_installed_with_synced_repos",
    }
    assert [name for name, u in seen.items() if u is None] == ["eve"]
    assert any(u and u["platform_access"]["allowPlatformSandbox"] is False for u in seen.values())
    assert any(u and u["vercel"]["platformState"] == "not_configured" for u in seen.values())
    models = {
        name: httpx.get(
            f"{scenario_sim.base_url}/api/v1/mogplex/models", headers={"Authorization": f"Bearer {token}"}
        ).json()["data"]["models"]
        for name, token in secrets.sources()
    }
    assert [name for name, listed in models.items() if not listed] == ["ben"]


def test_automations_have_healthy_and_failing_job_runs(
    scenario_sim: SimulatorControl, secrets: DemoSecrets
) -> None:
    api = httpx.Client(
        base_url=f"{scenario_sim.base_url}/api/v1/mogplex",
        headers={"Authorization": f"Bearer {secrets.read_token}"},
        timeout=10,
    )

    def ended() -> dict[str, set[str]] | None:
        automations = api.get("/automations").json()["data"]["automations"]
        outcomes = {
            a["name"]: {r["status"] for r in api.get(f"/automations/{a['id']}/runs").json()["data"]["runs"]}
            for a in automations
        }
        done = outcomes.get("Review pull requests", set()) & {"success"} and "failed" in outcomes.get(
            "Fix failing CI", set()
        )
        return outcomes if done else None

    with api:
        outcomes = wait_for(ended, timeout=90, interval=1.0, what="job runs that succeed and fail")
        listed = api.get("/automations").json()["data"]["automations"]
    assert {a["name"]: a["status"] for a in listed}["Nightly dependency bump"] == "inactive"
    assert outcomes["Nightly dependency bump"] == set()


def test_failed_runs_end_with_each_failure_code(scenario_sim: SimulatorControl) -> None:
    def codes() -> set[str] | None:
        failed = {c["run_id"] for c in scenario_sim.status_changes() if c["status"] == "failed"}
        found = set()
        for run_id in failed:
            last = scenario_sim.run(run_id)["events"][-1]
            if last["type"] == "failed" and last["payload"].get("failure_code"):
                found.add(last["payload"]["failure_code"])
        wanted = {"model_access_denied", "rate_limited", "command_failed"}
        return found if found >= wanted else None

    assert wait_for(codes, timeout=120, interval=2.0, what="failed runs with every failure code")


def test_flags_set_the_rate_window(scenario_sim: SimulatorControl) -> None:
    assert scenario_sim.configure() == {"window_seconds": 30, "limit": 120}
