"""How soon a status change upstream shows on the board, against the budget-optimal bound.

Starts Valkey, the simulator, a Celery worker + beat with time compressed (a
10 s rate window in both the simulator and the poller, budget 50 per window,
simulator limit 60), tracks k streaming runs on one token (k = 5, 20, 60), and
flips random runs between ``streaming`` and ``pending`` with the simulator's
``set_run_status``. The change's time is the simulator's ground truth
(``/_sim/status-changes``); it counts as shown when ``snapshots.board_read()``
has the new status for that run, polled every 50 ms from this process. A run
gets its next change a random time after the previous one showed, so changes
fall at random points of its poll cycle.

Bound (seconds): k / (2 * B/W) + R / 2, with B/W the budget per second (50 per
10 s = 5 requests/s) and R = BOARD_RUN_REFRESH_SECONDS (1 s here): the mean wait
for the next poll when k runs share the budget round-robin, plus half the
refresh floor. Target: mean / bound <= 1.2 and no 429.

    .venv/bin/python bench/freshness.py [--k 5 20 60] [--changes 30]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import datetime

from stack import Stack, mog_token, percentile, wait_until

WINDOW = 10
BUDGET = 50
REFRESH = 1


def compressed_stack(name: str) -> Stack:
    """The stack with time compressed as this bench runs it: one token ("bench"), a WINDOW s window."""
    return Stack(
        name,
        sources={"bench": mog_token()},
        window=WINDOW,
        budget=BUDGET,
        env={
            "BOARD_RUN_REFRESH_SECONDS": str(REFRESH),
            # Sandboxes and repos out of the way: the runs have the budget to themselves.
            "BOARD_SANDBOXES_REFRESH_SECONDS": "600",
            "BOARD_REPOS_REFRESH_SECONDS": "3600",
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[5, 20, 60])
    parser.add_argument("--changes", type=int, default=30, help="status changes measured per k")
    args = parser.parse_args()

    with compressed_stack("freshness") as stack:
        from dashboard import snapshots
        from dashboard.models import TrackedRun

        sim = stack.start_simulator()
        stack.start_poller()
        per_second = BUDGET / WINDOW
        print(
            f"budget {BUDGET} per {WINDOW} s window (B/W = {per_second:g} requests/s) on one token, "
            f"refresh R = {REFRESH} s; bound = k / (2 B/W) + R / 2"
        )
        print(
            f"{'k':>4} {'mean s':>7} {'p95 s':>7} {'max s':>7} {'bound s':>8} {'mean/bound':>10} "
            f"{'p95/bound':>9} {'n':>4} {'429s':>5} {'poll interval s':>15}"
        )
        for k in args.k:
            TrackedRun.objects.all().delete()
            sim.reset()
            statuses: dict[str, str] = {}
            for _ in range(k):
                run_id = sim.create_run("bench")["runId"]
                sim.set_run_status(run_id, "streaming")
                TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND)
                statuses[run_id] = "streaming"

            def on_board(want: dict[str, str] = statuses) -> bool:
                board = snapshots.board_read() or {}
                shown = {r["run_id"]: r.get("status") for r in board.get("runs", [])}
                return all(shown.get(run_id) == status for run_id, status in want.items())

            wait_until(on_board, 60 + 3 * k * (WINDOW + 1) / BUDGET, "every run on the board", every=0.2)
            interval = max(REFRESH, k * (WINDOW + 1) / BUDGET)
            time.sleep(interval)  # one full cycle after the lookups: the steady round-robin
            seq0 = max([r["seq"] for r in sim.requests(since=0)] or [0])
            change_seq = max([c["seq"] for c in sim.status_changes(since=0)] or [0])
            started_at = time.time()

            pending: dict[str, str] = {}  # run id -> status it should show
            eligible_at = {run_id: time.time() + random.uniform(0, interval) for run_id in statuses}
            seen_at: dict[str, list[float]] = {run_id: [] for run_id in statuses}
            started = 0
            while started < args.changes or pending:
                now = time.time()
                ready = [r for r, at in eligible_at.items() if at <= now and r not in pending]
                if started < args.changes and ready:
                    run_id = random.choice(ready)
                    target = "pending" if statuses[run_id] == "streaming" else "streaming"
                    sim.set_run_status(run_id, target)
                    statuses[run_id] = target
                    pending[run_id] = target
                    started += 1
                board = snapshots.board_read() or {}
                shown = {r["run_id"]: r.get("status") for r in board.get("runs", [])}
                now = time.time()
                for run_id, target in list(pending.items()):
                    if shown.get(run_id) == target:
                        seen_at[run_id].append(now)
                        del pending[run_id]
                        eligible_at[run_id] = now + random.uniform(0, interval)
                if time.time() - started_at > 600:
                    raise SystemExit(f"k={k}: {len(pending)} changes never showed")
                time.sleep(0.05)
            ended_at = time.time()

            changes = sim.status_changes(since=change_seq)
            delays: list[float] = []
            for run_id, seen in seen_at.items():
                times = sorted(c["time"] for c in changes if c["run_id"] == run_id)
                delays += [s - t for t, s in zip(times, seen, strict=True)]
            records = [r for r in sim.requests(since=seq0) if r["token_name"] == "bench"]
            throttled = sum(1 for r in records if r["status"] == 429)
            polls = [
                r["time"]
                for r in records
                if r["path"].endswith("/events") and started_at <= r["time"] <= ended_at
            ]
            measured_interval = k * (ended_at - started_at) / max(len(polls), 1)
            bound = k / (2 * per_second) + REFRESH / 2
            mean, p95 = statistics.mean(delays), percentile(delays, 95)
            print(
                f"{k:>4} {mean:>7.2f} {p95:>7.2f} {max(delays):>7.2f} {bound:>8.2f} {mean / bound:>10.2f} "
                f"{p95 / bound:>9.2f} {len(delays):>4} {throttled:>5} {measured_interval:>15.2f}",
                flush=True,
            )
        TrackedRun.objects.all().delete()
    print(f"\n{datetime.now():%Y-%m-%d %H:%M}")


if __name__ == "__main__":
    main()
