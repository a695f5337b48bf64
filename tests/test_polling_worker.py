"""The poller end to end: a real Celery worker and beat, the real Valkey, the simulator over HTTP.

Time is compressed: the budget window is 6 s (the simulator's too, with its
limit of 60), runs are refreshed every second and sandboxes every 3 s, so a
minute of polling takes a few seconds.
"""

from __future__ import annotations

import secrets
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings

from dashboard import snapshots
from dashboard.models import TrackedRun
from tests.audit import AUDIT
from tests.pollers import PollerGroup, Pollers
from tests.waiting import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

WINDOW = 6
BUDGET = 50
SIM_LIMIT = 60
ALLOWED_PATHS = (
    "/api/v1/mogplex/repos",
    "/api/v1/mogplex/sandboxes",
    "/api/v1/mogplex/runs/",
    "/api/v1/mogplex/models",
    "/api/v1/mogplex/agents",
    "/api/v1/mogplex/automations",
    "/api/auth/user",
)


def _token() -> str:
    alphabet = string.ascii_letters + string.digits
    return "mog_" + "".join(secrets.choice(alphabet) for _ in range(24))


# One pair of tokens for the whole session, so every test reuses the same poller group.
TOKENS = {"alice": _token(), "bob": _token()}


class Sim:
    """The simulator's control surface (``/_sim/``), over HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url + "/_sim", timeout=10)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.post(path, json=body or {})
        response.raise_for_status()
        return response.json()

    def create_run(self, user: str) -> str:
        return str(self.post("/runs", {"user": user})["runId"])

    def set_status(self, run_id: str, status: str) -> None:
        self.post(f"/runs/{run_id}/status", {"status": status})

    def fault(self, kind: str, token: str | None, count: int | None = None) -> None:
        self.post("/faults", {"kind": kind, "token": token, "count": count})

    def requests(self) -> list[dict[str, Any]]:
        response = self.http.get("/requests", params={"since": 0})
        response.raise_for_status()
        body = response.json()
        return list(body["requests"] if isinstance(body, dict) else body)


@pytest.fixture(scope="session")
def poll_simulator() -> Iterator[str]:
    """A simulator of our own, without the scenario, on its own port."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dashboard.simulator",
            "--port",
            str(port),
            "--no-scenario",
            "--window-seconds",
            str(WINDOW),
            "--limit",
            str(SIM_LIMIT),
        ],
        cwd=settings.BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/_sim/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=20, what="the simulator to answer")
    AUDIT.watch(url)
    try:
        yield url
    finally:
        AUDIT.collect(url)
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def sim2(poll_simulator: str) -> Sim:
    control = Sim(poll_simulator)
    AUDIT.collect(poll_simulator)
    control.post("/reset")
    control.post("/config", {"window_seconds": WINDOW, "limit": SIM_LIMIT})
    for name, token in TOKENS.items():
        control.post("/tokens", {"name": name, "token": token, "scopes": ["read"], "user": name})
    return control


@pytest.fixture
def two_sources(pollers: Pollers, sim2: Sim, redis_db: redis.Redis) -> PollerGroup:
    """A ticking poller reading the simulator with two sources, alice and bob, in compressed time."""
    group = pollers.ensure(
        {
            "MOGPLEX_BASE_URL": sim2.base_url,
            "MOGPLEX_TOKEN_ALICE": TOKENS["alice"],
            "MOGPLEX_TOKEN_BOB": TOKENS["bob"],
            "MOGPLEX_BUDGET": str(BUDGET),
            "MOGPLEX_BUDGET_WINDOW_SECONDS": str(WINDOW),
            "BOARD_RUN_REFRESH_SECONDS": "1",
            "BOARD_SANDBOXES_REFRESH_SECONDS": "3",
            "BOARD_REPOS_REFRESH_SECONDS": "10",
        }
    )
    group.wait_ticking(redis_db)
    return group


def _track(run_id: str) -> None:
    """What the track command and the ingest endpoint do: a row, which the next tick looks up."""
    TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND)


def _board_run(run_id: str) -> dict[str, Any] | None:
    board = snapshots.board_read() or {}
    return next((run for run in board.get("runs", []) if run["run_id"] == run_id), None)


def _board_status(run_id: str, status: str) -> dict[str, Any] | None:
    run = _board_run(run_id)
    return run if run is not None and run["status"] == status else None


def _polls(records: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    return [r for r in records if r["path"] == f"/api/v1/mogplex/runs/{run_id}/events"]


def _assert_read_only(records: list[dict[str, Any]]) -> None:
    ours = [r for r in records if r["token_name"] in TOKENS]
    assert ours, "the poller sent nothing"
    for record in ours:
        assert record["method"] == "GET", record
        assert record["path"].startswith(ALLOWED_PATHS), record
        assert not record["idempotency_key"], record


def _assert_within_budget(records: list[dict[str, Any]], token: str) -> None:
    times = sorted(r["time"] for r in records if r["token_name"] == token)
    start = 0
    for end, at in enumerate(times):
        while at - times[start] >= WINDOW:
            start += 1
        assert end - start + 1 <= BUDGET, f"{token} sent {end - start + 1} requests within {WINDOW} s"


def _record_ttl(run_id: str) -> int:
    """Seconds until the run's record expires; -1 when it never does."""
    ttl: int = snapshots.redis_client().ttl(f"board:run:{run_id}")  # type: ignore[assignment]
    return ttl


def test_a_tracked_run_appears_follows_its_status_and_stops_being_polled(
    two_sources: PollerGroup, sim2: Sim
) -> None:
    run_id = sim2.create_run("alice")
    _track(run_id)
    row = wait_for(lambda: _board_status(run_id, "pending"), timeout=15, what="the run on the board")
    assert row["source"] == "alice"
    assert row["lookup"] == "found"

    sim2.set_status(run_id, "streaming")
    wait_for(lambda: _board_status(run_id, "streaming"), timeout=15, what="streaming on the board")
    # A live run's record is kept for as long as it lives.
    assert _record_ttl(run_id) == -1
    sim2.set_status(run_id, "success")
    done = wait_for(lambda: _board_status(run_id, "success"), timeout=15, what="success on the board")
    wait_for(
        lambda: TrackedRun.objects.filter(run_id=run_id, final_fetch_done=True).exists(),
        timeout=15,
        what="the final fetch",
    )
    final = wait_for(lambda: (_board_run(run_id) or {}).get("pr_url"), timeout=15, what="the PR URL")
    assert final.startswith("https://")
    # The terminal event's codes are kept on the run's record, for the reason a page shows.
    assert (snapshots.run_read(run_id) or {}).get("outcome") == {
        "terminal_event": "finished",
        "failure_code": None,
        "exit_code": 0,
        "delivery": "pull_request",
    }
    assert done["finished_at"] is not None
    # A finished run's record expires after the retention window (and a grace
    # period), so Redis holds the live runs, not every run ever seen.
    kept = round(settings.BOARD_RETENTION_HOURS * 3600)
    assert kept < _record_ttl(run_id) <= kept + snapshots.FINISHED_RUN_GRACE_SECONDS

    # Keep another run active, and use its polls as the clock: once it has
    # been fetched several more times, the finished run would have been too.
    seen = len(sim2.requests())
    other = sim2.create_run("alice")
    sim2.set_status(other, "streaming")
    _track(other)
    wait_for(
        lambda: len(_polls(sim2.requests()[seen:], other)) >= 4,
        timeout=20,
        what="the active run to be polled",
    )
    records = sim2.requests()
    assert _polls(records[seen:], run_id) == []
    _assert_read_only(records)


def test_two_workers_never_exceed_a_tokens_budget(two_sources: PollerGroup, sim2: Sim) -> None:
    two_sources.add_worker()
    runs = [sim2.create_run("alice") for _ in range(25)]
    for run_id in runs:
        sim2.set_status(run_id, "streaming")
        _track(run_id)
    bob_run = sim2.create_run("bob")
    _track(bob_run)

    def alice_requests() -> int:
        return sum(1 for r in sim2.requests() if r["token_name"] == "alice")

    # Two and a half windows of demand well above the budget (25 runs each wanting a fetch a second).
    wait_for(lambda: alice_requests() >= 2 * BUDGET + 25, timeout=40, what="alice's budget to be spent")
    records = sim2.requests()
    _assert_within_budget(records, "alice")
    _assert_within_budget(records, "bob")
    assert [r for r in records if r["status"] == 429] == []
    _assert_read_only(records)
    health = snapshots.source_health_read("alice") or {}
    assert health["active_runs"] == 25
    assert health["effective_interval_seconds"] > 1


def test_after_a_429_nothing_is_sent_on_that_token_before_retry_after(
    two_sources: PollerGroup, sim2: Sim
) -> None:
    alice_run, bob_run = sim2.create_run("alice"), sim2.create_run("bob")
    for run_id in (alice_run, bob_run):
        sim2.set_status(run_id, "streaming")
        _track(run_id)
    wait_for(lambda: _board_status(alice_run, "streaming"), timeout=15, what="alice's run on the board")
    sim2.fault("429", "alice", count=1)

    def rate_limited() -> dict[str, Any] | None:
        return next((r for r in sim2.requests() if r["status"] == 429), None)

    limited = wait_for(rate_limited, timeout=15, what="the injected 429")
    # Bob's polls are the clock: wait until they cover most of Retry-After (the 6 s window).
    wait_for(
        lambda: any(
            r["token_name"] == "bob" and r["time"] > limited["time"] + WINDOW - 1 for r in sim2.requests()
        ),
        timeout=20,
        what="bob to keep polling through alice's pause",
    )
    records = sim2.requests()
    early = [
        r
        for r in records
        if r["token_name"] == "alice" and limited["time"] < r["time"] < limited["time"] + WINDOW
    ]
    assert early == []
    assert (snapshots.source_health_read("alice") or {})["last_error_kind"] == "rate_limited"
    wait_for(
        lambda: any(r["token_name"] == "alice" and r["time"] > limited["time"] for r in sim2.requests()),
        timeout=20,
        what="alice to resume after Retry-After",
    )
    _assert_read_only(sim2.requests())


@pytest.mark.parametrize(("fault", "state"), [("401", "unauthorized"), ("500", "unavailable")])
def test_a_dead_source_does_not_stop_the_others(
    two_sources: PollerGroup, sim2: Sim, fault: str, state: str
) -> None:
    sim2.fault(fault, "alice")
    alice_run, bob_run = sim2.create_run("alice"), sim2.create_run("bob")
    _track(alice_run)
    _track(bob_run)
    wait_for(lambda: _board_status(bob_run, "pending"), timeout=15, what="bob's run on the board")
    sim2.set_status(bob_run, "streaming")
    wait_for(lambda: _board_status(bob_run, "streaming"), timeout=15, what="bob's run to move on")

    def alice_state() -> bool:
        board = snapshots.board_read() or {}
        return any(s["name"] == "alice" and s.get("state") == state for s in board.get("sources", []))

    wait_for(alice_state, timeout=20, what=f"alice shown as {state}")
    assert (_board_run(alice_run) or {}).get("lookup") == "new"
    bob = next(s for s in (snapshots.board_read() or {})["sources"] if s["name"] == "bob")
    assert bob["state"] == "ok"
    _assert_read_only(sim2.requests())


def test_sandbox_logs_are_fetched_once_when_someone_asks(two_sources: PollerGroup, sim2: Sim) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    sandbox = sim2.post("/sandboxes", {"user": "alice", "status": "running"})
    sandbox_id = sandbox["id"]
    wait_for(
        lambda: any(s["id"] == sandbox_id for s in (snapshots.board_read() or {}).get("sandboxes", [])),
        timeout=20,
        what="the sandbox on the board",
    )
    browser = Client()
    browser.force_login(get_user_model().objects.create_user("viewer", password="x" * 12))
    logs_url = f"/sandboxes/{sandbox_id}/logs/"

    def logs_shown() -> bool:
        page = browser.get(logs_url, headers={"HX-Request": "true"}).content.decode()
        return "Install log" in page

    wait_for(logs_shown, timeout=20, what="the logs the poller fetched on request")
    log_requests = [r for r in sim2.requests() if r["path"].endswith(f"/sandboxes/{sandbox_id}/logs")]
    assert [(r["method"], r["token_name"]) for r in log_requests] == [("GET", "alice")]
    _assert_read_only(sim2.requests())


def test_fetches_published_together_each_reach_upstream_no_earlier_than_their_slot(
    two_sources: PollerGroup, sim2: Sim
) -> None:
    """What the tick does with a plan: its fetches in one publish, each due at its own slot."""
    from dashboard.celery import app
    from dashboard.polling import broker, tasks

    sandboxes = [sim2.post("/sandboxes", {"user": "alice", "status": "running"})["id"] for _ in range(4)]
    slots = {sandbox_id: 0.5 * n for n, sandbox_id in enumerate(sandboxes)}
    now = time.time()
    broker.tasks_publish(
        app,
        [
            broker.TaskSend(tasks.sandbox_logs_fetch, ("alice", s), countdown)
            for s, countdown in slots.items()
        ],
        now=now,
    )

    wait_for(
        lambda: all(snapshots.sandbox_logs_read(s) for s in sandboxes),
        timeout=20,
        what=f"every published fetch run by the worker\n{two_sources.log_tail()}",
    )
    for sandbox_id, countdown in slots.items():
        sent = [r for r in sim2.requests() if r["path"].endswith(f"/sandboxes/{sandbox_id}/logs")]
        assert [(r["method"], r["token_name"]) for r in sent] == [("GET", "alice")]
        assert sent[0]["time"] >= now + countdown, f"sent {now + countdown - sent[0]['time']:.3f} s early"
        assert (snapshots.sandbox_logs_read(sandbox_id) or {}).get("error_kind") is None


def test_automations_are_polled_and_a_failed_job_run_needs_attention(
    two_sources: PollerGroup, sim2: Sim
) -> None:
    from dashboard.board import selectors
    from dashboard.polling import state

    automation = sim2.post("/automations", {"user": "alice", "name": "Review PRs"})["id"]
    job_run = sim2.post(f"/automations/{automation}/runs", {})["id"]
    for status in ("running", "failed"):
        sim2.post(f"/job-runs/{job_run}/status", {"status": status})
    # The list is due now (a poller that listed alice's automations a moment ago lists them again).
    state.schedule_retry_soon("alice", "automations")

    def in_the_lane() -> bool:
        lane = selectors.board_state().attention
        return any(item.kind == "job_run" and item.target_id == job_run for item in lane)

    wait_for(in_the_lane, timeout=60, what="the failed job run in the attention lane")
    records = sim2.requests()
    assert [r["status"] for r in records if r["path"].endswith(f"/automations/{automation}/runs")][:1] == [
        200
    ]
    # Its id is a job run's: never asked for as an agent run.
    assert not [r for r in records if job_run in r["path"] and "/automations/" not in r["path"]]
    _assert_read_only(records)
