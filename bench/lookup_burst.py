"""A burst of registrations: 300 runs nobody owns registered at once on a source with 5 active runs.

Starts Valkey, the simulator, one Celery worker (4 threads) and beat, with one
source ``t00`` whose user has ``--active`` streaming runs. It measures those
runs' poll interval (from the simulator's request record) for ``--quiet``
seconds, then registers ``--unknown`` run ids no source owns at once (as one
CI job gone wrong would, through ``run_track``), and measures the interval
again until every one of them is ``not_found``.

Time is compressed by default (a 6 s budget window, runs refreshed every
second): every per-window count is as in real time (budget 50, 5 runs at 6
fetches per window), so the ratio holds; the lookup time is also given in
windows and scaled to the real 60 s window.

    .venv/bin/python bench/lookup_burst.py [--unknown 300] [--active 5] [--window 6] [--refresh 1]

Figures: the active runs' mean poll interval before and during the burst and
their ratio (target <= 1.5), how long the lookups took, the requests they cost
(one per unknown run per source), the most requests in any window (budget),
and 429s.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import datetime

from scale import max_in_window
from stack import Stack, mog_token, wait_until

BUDGET = 50


def gaps(times: list[float]) -> list[float]:
    times = sorted(times)
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unknown", type=int, default=300)
    parser.add_argument("--active", type=int, default=5)
    parser.add_argument("--window", type=int, default=6)
    parser.add_argument("--refresh", type=int, default=1)
    parser.add_argument(
        "--quiet", type=float, default=0, help="seconds measured before the burst (default 5 windows)"
    )
    args = parser.parse_args()
    quiet_seconds = args.quiet or 5 * args.window

    token = mog_token()
    with Stack(
        "lookup-burst",
        sources={"t00": token},
        window=args.window,
        budget=BUDGET,
        env={
            "BOARD_RUN_REFRESH_SECONDS": str(args.refresh),
            "BOARD_SANDBOXES_REFRESH_SECONDS": str(max(1, args.window // 2)),
        },
    ) as stack:
        from dashboard import snapshots
        from dashboard.discovery import run_track
        from dashboard.models import TrackedRun

        sim = stack.start_simulator()
        active = []
        for _ in range(args.active):
            run_id = sim.create_run("t00")["runId"]
            sim.set_run_status(run_id, "streaming")
            active.append(run_id)
        run_track(run_ids=active, via=TrackedRun.Via.COMMAND)
        stack.start_poller(workers=1, concurrency=4)

        def shown() -> bool:
            board = snapshots.board_read() or {}
            statuses = {r["run_id"]: r.get("status") for r in board.get("runs", [])}
            return all(statuses.get(run_id) == "streaming" for run_id in active)

        wait_until(shown, 120, "the active runs on the board", every=0.5)
        time.sleep(2 * args.window)  # past the start-up fetches (account, repos, sandboxes)
        quiet_from = time.time()
        time.sleep(quiet_seconds)
        quiet_until = burst_from = time.time()

        unknown = [str(uuid.uuid4()) for _ in range(args.unknown)]
        run_track(run_ids=unknown, via=TrackedRun.Via.INGEST)
        waiting_seen = 0

        def all_looked_up() -> bool:
            nonlocal waiting_seen
            health = snapshots.source_health_read("t00") or {}
            waiting_seen = max(waiting_seen, int(health.get("lookups_waiting") or 0))
            return TrackedRun.objects.filter(run_id__in=unknown, lookup="not_found").count() == len(unknown)

        wait_until(all_looked_up, 60 * args.window, "every unknown run looked up", every=0.5)
        burst_until = time.time()
        records = sim.requests(since=0)

    ours = [r for r in records if r["token_name"] == "t00"]
    unknown_set = set(unknown)

    def polls(since: float, until: float) -> list[float]:
        out: list[float] = []
        for run_id in active:
            times = [
                r["time"]
                for r in ours
                if r["path"].endswith(f"/runs/{run_id}/events") and since <= r["time"] <= until
            ]
            out += gaps(times)
        return out

    quiet = polls(quiet_from, quiet_until)
    burst = polls(burst_from, burst_until)
    lookups = [r for r in ours if r["path"].rsplit("/", 2)[-2] in unknown_set]
    took = burst_until - burst_from
    peak = max_in_window([r["time"] for r in ours], args.window)
    throttled = sum(r["status"] == 429 for r in ours)
    q, b = statistics.mean(quiet), statistics.mean(burst)
    print(
        f"{datetime.now():%Y-%m-%d %H:%M}  1 source, {args.active} streaming runs, {args.unknown} unknown runs "
        f"registered at once; budget {BUDGET} per {args.window} s window, R = {args.refresh} s"
    )
    print(
        f"active runs' poll interval: quiet mean {q:.2f} s (n={len(quiet)}, max {max(quiet):.2f}), "
        f"during the burst mean {b:.2f} s (n={len(burst)}, max {max(burst):.2f}); ratio {b / q:.2f} (target <= 1.5)"
    )
    print(
        f"lookups: all {args.unknown} not_found after {took:.1f} s = {took / args.window:.1f} windows "
        f"(~{took / args.window * 60 / 60:.1f} min at the real 60 s window); {len(lookups)} requests "
        f"({len(lookups) / args.unknown:.2f} per run); sources panel showed up to {waiting_seen} waiting"
    )
    print(f"budget: most requests in any {args.window} s window {peak} (budget {BUDGET}); 429s: {throttled}")


if __name__ == "__main__":
    main()
