# ruff: noqa: F811  (the fixtures of test_polling_worker, imported by name, are redefined as parameters)
"""Finding tracked runs and getting them back: real worker and beat, real Valkey, the simulator over HTTP.

The poller group and the simulator are those of ``test_polling_worker`` (a 6 s
budget window, runs refreshed every second), so both modules share one group.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
import redis

from dashboard import snapshots
from dashboard.models import TrackedRun
from tests.pollers import PollerGroup
from tests.test_polling_worker import (  # noqa: F401  (fixtures)
    Sim,
    _board_run,
    _board_status,
    _polls,
    _track,
    poll_simulator,
    sim2,
    two_sources,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _repo(sim: Sim, user: str) -> dict[str, Any]:
    response = sim.http.get("/repos", params={"user": user})
    response.raise_for_status()
    return next(repo for repo in response.json() if not repo.get("hidden"))


def test_finished_runs_come_back_after_redis_is_emptied(
    two_sources: PollerGroup,
    sim2: Sim,
    redis_db: redis.Redis,
) -> None:
    run_id = sim2.create_run("alice")
    _track(run_id)
    wait_for(lambda: _board_status(run_id, "pending"), timeout=15, what="the run on the board")
    sim2.post(f"/runs/{run_id}/status", {"status": "failed", "failure_code": "command_failed"})
    wait_for(
        lambda: TrackedRun.objects.filter(run_id=run_id, final_fetch_done=True).exists(),
        timeout=15,
        what="the final fetch",
    )
    before = wait_for(lambda: _board_status(run_id, "failed"), timeout=15, what="failed on the board")
    assert before["repo_name"]

    seen = len(sim2.requests())
    redis_db.flushdb()  # Valkey restarted without persistence: every snapshot is gone.

    after = wait_for(
        lambda: (run := _board_status(run_id, "failed")) is not None and run["repo_name"] and run,
        timeout=20,
        what="the finished run rebuilt from upstream",
    )
    assert after["latest_event"] is not None
    assert (snapshots.run_read(run_id) or {}).get("outcome", {}).get("failure_code") == "command_failed"
    wait_for(
        lambda: TrackedRun.objects.filter(run_id=run_id, final_fetch_done=True).exists(),
        timeout=15,
        what="the run marked finally fetched again",
    )
    # Fetched again once, not polled from now on: other runs' polls are the clock.
    other = sim2.create_run("alice")
    sim2.set_status(other, "streaming")
    _track(other)
    wait_for(lambda: len(_polls(sim2.requests()[seen:], other)) >= 4, timeout=20, what="the other run polled")
    assert len(_polls(sim2.requests()[seen:], run_id)) == 1
    assert _board_run(run_id) is not None


def _lookups_of(records: list[dict[str, Any]], run_id: str) -> list[str]:
    """Which tokens asked upstream for this run (in order)."""
    return [r["token_name"] for r in records if r["path"] == f"/api/v1/mogplex/runs/{run_id}/events"]


def _repos_known(*sources: str) -> bool:
    return all(snapshots.repos_read(source) is not None for source in sources)


def test_a_run_with_its_repo_is_found_with_one_request(two_sources: PollerGroup, sim2: Sim) -> None:
    wait_for(lambda: _repos_known("alice", "bob"), timeout=15, what="both sources' repo lists")
    repo = _repo(sim2, "bob")
    run_id = str(sim2.post("/runs", {"user": "bob", "repo_id": repo["id"]})["runId"])
    seen = len(sim2.requests())
    TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.INGEST, repo_id=repo["id"])

    row = wait_for(lambda: _board_status(run_id, "pending"), timeout=15, what="the run on the board")

    assert row["source"] == "bob"
    # Found on the source whose /repos hold its repo: alice (first in configuration order) was never asked.
    assert _lookups_of(sim2.requests()[seen:], run_id)[:1] == ["bob"]
    assert "alice" not in _lookups_of(sim2.requests()[seen:], run_id)


def test_a_named_source_is_asked_first(two_sources: PollerGroup, sim2: Sim) -> None:
    run_id = sim2.create_run("bob")
    seen = len(sim2.requests())
    TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND, source_hint="bob")

    wait_for(lambda: _board_status(run_id, "pending"), timeout=15, what="the run on the board")

    assert _lookups_of(sim2.requests()[seen:], run_id)[:1] == ["bob"]
    assert "alice" not in _lookups_of(sim2.requests()[seen:], run_id)


def _mean_gap(records: list[dict[str, Any]], run_ids: list[str], since: float, until: float) -> float:
    gaps: list[float] = []
    for run_id in run_ids:
        times = sorted(r["time"] for r in _polls(records, run_id) if since <= r["time"] <= until)
        gaps += [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps, "the active runs were not polled"
    return sum(gaps) / len(gaps)


def test_a_burst_of_unknown_runs_leaves_the_active_runs_their_refresh(
    two_sources: PollerGroup, sim2: Sim
) -> None:
    active = [sim2.create_run("alice") for _ in range(5)]
    for run_id in active:
        sim2.set_status(run_id, "streaming")
        _track(run_id)
    for run_id in active:
        wait_for(lambda run_id=run_id: _board_status(run_id, "streaming"), timeout=20, what="the active runs")
    quiet_from = sim2.requests()[-1]["time"]
    wait_for(
        lambda: all(len(_polls(sim2.requests(), run_id)) >= 6 for run_id in active),
        timeout=20,
        what="a few quiet polls",
    )
    quiet_until = sim2.requests()[-1]["time"]

    # A CI job gone wrong: 60 runs no source owns, registered at once.
    unknown = [str(UUID(int=n + 1)) for n in range(60)]
    TrackedRun.objects.bulk_create(TrackedRun(run_id=run_id, via=TrackedRun.Via.INGEST) for run_id in unknown)
    burst_from = quiet_until

    def lookups_shown() -> bool:
        health = snapshots.source_health_read("alice") or {}
        return int(health.get("lookups_waiting") or 0) > 0

    wait_for(lookups_shown, timeout=10, what="the sources panel to say lookups use the budget")
    board = wait_for(
        lambda: (b := snapshots.board_read()) and sum(r["lookup"] == "new" for r in b["runs"]) >= 30 and b,
        timeout=10,
        what="the unknown runs on the board",
    )
    # Not running: the runs panel holds only the five known runs.
    assert {
        r["run_id"] for r in board["runs"] if r["lookup"] == "found" and r["status"] == "streaming"
    } >= set(active)
    wait_for(
        lambda: TrackedRun.objects.filter(run_id__in=unknown, lookup="not_found").count() == len(unknown),
        timeout=90,
        what="every unknown run looked up on both sources",
    )
    records = sim2.requests()
    burst_until = max(r["time"] for r in records if r["path"].rsplit("/", 2)[-2] in set(unknown))
    quiet = _mean_gap(records, active, quiet_from, quiet_until)
    burst = _mean_gap(records, active, burst_from, burst_until)
    assert burst <= 1.5 * quiet, (
        f"active runs polled every {burst:.2f} s during the burst, {quiet:.2f} s before"
    )
    # Each unknown run cost one request per source, no more.
    asked = [r for r in records if r["path"].rsplit("/", 2)[-2] in set(unknown)]
    assert len(asked) == 2 * len(unknown)
