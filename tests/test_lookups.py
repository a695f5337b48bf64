# ruff: noqa: F811  (the fixtures of test_polling_worker, imported by name, are redefined as parameters)
"""Finding tracked runs and getting them back: real worker and beat, real Valkey, the simulator over HTTP.

The poller group and the simulator are those of ``test_polling_worker`` (a 6 s
budget window, runs refreshed every second), so both modules share one group.
"""

from __future__ import annotations

from typing import Any

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
