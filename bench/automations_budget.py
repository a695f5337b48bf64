"""Automations on a busy token: 20 automations and 20 active runs share one token's budget.

Starts Valkey, the simulator, a Celery worker and beat with a compressed budget
window, tracks 20 streaming runs on one token and measures, from the
simulator's request record, the mean interval between two polls of a run:
first with no automation, then with 20 automations (each with a few job runs,
some failed). Prints both intervals and their ratio (target: within 10 %), each
automation's measured round (``/automations/{id}`` to the next), the intervals
the board shows (the sources panel's figures), the most requests sent in any
window, and the 429s upstream answered (target: 0).

    .venv/bin/python bench/automations_budget.py [--window 6] [--budget 50] [--seconds 240]
"""

from __future__ import annotations

import argparse
import bisect
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import Stack, mog_token, wait_until  # noqa: E402

RUNS = 20
AUTOMATIONS = 20
API = "/api/v1/mogplex"


def _requests(sim: Any) -> list[dict[str, Any]]:
    return [r for r in sim.requests(0) if r["token_name"] == "bench"]


def _mean_interval(records: list[dict[str, Any]], paths: list[str], start: float, end: float) -> float:
    """The mean time between two answered (200) requests for the same path, over ``paths``."""
    intervals: list[float] = []
    for path in paths:
        times = sorted(
            r["time"]
            for r in records
            if r["path"] == path and r["status"] == 200 and start <= r["time"] <= end
        )
        intervals += [b - a for a, b in zip(times, times[1:], strict=False)]
    return statistics.mean(intervals) if intervals else float("nan")


def _most_in_window(records: list[dict[str, Any]], window: float) -> int:
    times = sorted(r["time"] for r in records)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=6, help="compressed budget window in seconds")
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=240, help="measured time of each phase")
    args = parser.parse_args()
    env = {
        "BOARD_RUN_REFRESH_SECONDS": "1",
        # The lists at their default pace, compressed like the window (30 s of 60 -> 3 s of 6).
        "BOARD_SANDBOXES_REFRESH_SECONDS": str(max(1, args.window // 2)),
        "BOARD_REPOS_REFRESH_SECONDS": str(max(10, args.window * 10)),
        "BOARD_AUTOMATIONS_SECONDS": "30",
    }
    with Stack("automations", sources={"bench": mog_token()}, window=args.window, env=env) as stack:
        from dashboard import snapshots
        from dashboard.models import TrackedRun

        sim = stack.start_simulator()
        run_ids = []
        for _ in range(RUNS):
            run_id = str(sim.create_run("bench")["runId"])
            sim.set_run_status(run_id, "streaming")
            TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND)
            run_ids.append(run_id)
        stack.start_poller()
        wait_until(
            lambda: TrackedRun.objects.filter(lookup="found").count() == RUNS, 120, "every run to be found"
        )
        run_paths = [f"{API}/runs/{run_id}/events" for run_id in run_ids]
        time.sleep(args.window * 2)

        start = time.time()
        time.sleep(args.seconds)
        without_end = time.time()
        before = snapshots.source_health_read("bench") or {}
        without = _mean_interval(_requests(sim), run_paths, start, without_end)

        automation_ids = []
        for n in range(AUTOMATIONS):
            automation_id = str(sim.create_automation("bench", name=f"Automation {n}")["id"])
            for job in range(3):
                job_run_id = str(sim.create_job_run(automation_id)["id"])
                sim.set_job_run_status(job_run_id, "running")
                sim.set_job_run_status(job_run_id, "failed" if (n + job) % 5 == 0 else "success")
            automation_ids.append(automation_id)
        wait_until(
            lambda: len(snapshots.automations_detail_read("bench", automation_ids)) == AUTOMATIONS,
            30 + 3 * AUTOMATIONS * 2 * (args.window + 1) / (0.05 * args.budget),
            "every automation to be fetched once",
        )
        start = time.time()
        time.sleep(args.seconds)
        end = time.time()
        after = snapshots.source_health_read("bench") or {}
        records = _requests(sim)
        with_them = _mean_interval(records, run_paths, start, end)
        rounds = _mean_interval(records, [f"{API}/automations/{a}/runs" for a in automation_ids], start, end)
        in_phase = [r for r in records if start <= r["time"] <= end]
        automation_requests = sum(1 for r in in_phase if r["path"].startswith(f"{API}/automations"))
        details = sum(1 for r in in_phase if r["path"].count("/") == 5 and "/automations/" in r["path"])
        job_run_lists = sum(
            1 for r in in_phase if r["path"].endswith("/runs") and "/automations/" in r["path"]
        )
        rejected = sum(1 for r in records if r["status"] == 429)

    print(
        f"{RUNS} streaming runs on one token, budget {args.budget} per {args.window} s window "
        f"(the board counts over {args.window + 1} s); runs refreshed at most every 1 s; "
        f"{args.seconds:.0f} s measured per phase"
    )
    print(f"{'':<34} {'no automations':>15} {f'{AUTOMATIONS} automations':>15}")
    print(f"{'run poll interval, measured':<34} {without:>14.2f}s {with_them:>14.2f}s")
    shown = (before.get("effective_interval_seconds"), after.get("effective_interval_seconds"))
    print(f"{'run interval the board shows':<34} {shown[0]!s:>14}s {shown[1]!s:>14}s")
    print(f"ratio with / without: {with_them / without:.3f} (target <= 1.10)")
    print(
        f"automation round, measured: {rounds:.1f} s; shown: {after.get('automations_interval_seconds')} s; "
        f"{automation_requests} of {len(in_phase)} requests "
        f"({100 * automation_requests / max(1, len(in_phase)):.1f} %) were automations' "
        f"({details} runSummary, {job_run_lists} job-run lists)"
    )
    print(
        f"most requests in any {args.window} s: {_most_in_window(records, args.window)} (upstream allows 60); "
        f"in any {args.window + 1} s: {_most_in_window(records, args.window + 1)} (budget {args.budget})"
    )
    print(f"429s from upstream: {rejected} (target 0); {len(records)} requests in all")


if __name__ == "__main__":
    main()
