"""Many tokens, many runs: 50 sources and 500 active runs on two Celery workers.

Starts Valkey, the simulator, two Celery worker processes (4 threads each; the
worker wraps ``celery worker`` to time ``poll_tick``, see ``celery_probe.py``)
and beat. Sources are configured as in a deployment, ``MOGPLEX_BASE_URL`` and
``MOGPLEX_TOKEN_T00`` ... ``MOGPLEX_TOKEN_T49``, and the same tokens are
registered in the simulator, each for its own user with 10 streaming runs,
each on one of that user's repos and tracked with its ``repoId`` (as ingest
registers ``mogplex run --json`` output; ``--without-repo-ids`` tracks bare ids,
the old way). The rate window is the real one (60 s, budget 50, simulator limit 60) unless
``--window`` compresses it; runs are refreshed at most every
BOARD_RUN_REFRESH_SECONDS (10 s, the default).

Figures, from the simulator's request record and the board snapshot:
- discovery: requests spent finding the runs (per new run; target <= 1.2 with
  repo ids) and the time until all are on the board;
- per token, the most requests in any rolling window (target <= budget) and 429s;
- per run, the staleness a viewer sees on average (sum of squared poll
  intervals / twice their sum) against the bound of ``freshness.py``,
  k / (2 B/W) + R / 2 with k = 10 runs per token; and status changes driven
  through the simulator, timed to the board snapshot, as in ``freshness.py``;
- the scheduler's CPU: thread CPU time spent in ``poll_tick`` per minute (and,
  for context, CPU of the beat and worker processes from /proc).

    .venv/bin/python bench/scale.py [--tokens 50] [--runs-per-token 10] [--seconds 180] [--window 60]
        [--without-repo-ids]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from collections import defaultdict
from datetime import datetime

from stack import Stack, mog_token, percentile, proc_cpu_seconds, wait_until

BUDGET = 50
REFRESH = 10


def max_in_window(times: list[float], window: float) -> int:
    """The most timestamps in any half-open interval of length ``window``."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--runs-per-token", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=180, help="measured time after every run is found")
    parser.add_argument("--window", type=int, default=60, help="rate window in seconds (60 = real time)")
    parser.add_argument("--changes-per-second", type=float, default=1.0)
    parser.add_argument("--without-repo-ids", action="store_true", help="track bare run ids (no repoId)")
    args = parser.parse_args()

    names = [f"t{n:02d}" for n in range(args.tokens)]
    tokens = {name: mog_token() for name in names}
    k = args.runs_per_token
    with Stack(
        "scale",
        sources=tokens,
        window=args.window,
        budget=BUDGET,
        env={"BOARD_RUN_REFRESH_SECONDS": str(REFRESH)},
    ) as stack:
        from dashboard import snapshots
        from dashboard.discovery import RunRef, run_track
        from dashboard.models import TrackedRun

        sim = stack.start_simulator()
        owner: dict[str, str] = {}
        statuses: dict[str, str] = {}
        refs = []
        for name in names:
            repos = [repo["id"] for repo in sim.repos(name) if not repo.get("hidden")]
            for n in range(k):
                repo_id = repos[n % len(repos)]
                run_id = sim.create_run(name, repo_id=repo_id)["runId"]
                sim.set_run_status(run_id, "streaming")
                owner[run_id] = name
                statuses[run_id] = "streaming"
                refs.append(RunRef(uuid.UUID(run_id), None if args.without_repo_ids else uuid.UUID(repo_id)))
        # As ingest registers them: all at once, with the repo when known.
        run_track(run_ids=refs, via=TrackedRun.Via.INGEST)
        began = time.time()
        stack.start_poller(workers=2, concurrency=4, worker_module="bench.celery_probe")
        total = len(owner)

        def all_shown() -> bool:
            board = snapshots.board_read() or {}
            shown = {r["run_id"]: r.get("status") for r in board.get("runs", [])}
            return all(shown.get(run_id) == "streaming" for run_id in owner)

        # Discovery is slow with many sources: a lookup tries the sources in turn,
        # and each 404 on another token spends that token's budget.
        wait_until(all_shown, 120 + 15 * args.window, f"all {total} runs on the board", every=1.0)
        found_after = time.time() - began
        redis = snapshots.redis_client()
        interval = max(REFRESH, k * (args.window + 1) / BUDGET)
        bound = k / (2 * BUDGET / args.window) + REFRESH / 2
        time.sleep(interval)  # one full cycle after the lookups

        pids = {name: proc.pid for name, proc in stack.procs.items() if name.startswith(("worker", "beat"))}
        cpu_before = {name: proc_cpu_seconds(pid) for name, pid in pids.items()}
        tick_before = {key: float(redis.get(f"bench:tick:{key}") or 0) for key in ("cpu", "wall", "count")}
        change_seq = max([c["seq"] for c in sim.status_changes(since=0)] or [0])
        started_at = time.time()

        pending: dict[str, str] = {}
        eligible_at = {run_id: started_at + random.uniform(0, interval) for run_id in owner}
        seen_at: dict[str, list[float]] = defaultdict(list)
        next_change = started_at
        while time.time() - started_at < args.seconds or (
            pending and time.time() - started_at < 2 * args.seconds
        ):
            now = time.time()
            if now >= next_change and now - started_at < args.seconds:
                ready = [r for r, at in eligible_at.items() if at <= now and r not in pending]
                if ready:
                    run_id = random.choice(ready)
                    target = "pending" if statuses[run_id] == "streaming" else "streaming"
                    sim.set_run_status(run_id, target)
                    statuses[run_id] = pending[run_id] = target
                next_change = now + random.expovariate(args.changes_per_second)
            board = snapshots.board_read() or {}
            shown = {r["run_id"]: r.get("status") for r in board.get("runs", [])}
            now = time.time()
            for run_id, target in list(pending.items()):
                if shown.get(run_id) == target:
                    seen_at[run_id].append(now)
                    del pending[run_id]
                    eligible_at[run_id] = now + random.uniform(0, interval)
            time.sleep(0.05)
        ended_at = time.time()
        cpu_after = {name: proc_cpu_seconds(pid) for name, pid in pids.items()}
        tick_after = {key: float(redis.get(f"bench:tick:{key}") or 0) for key in ("cpu", "wall", "count")}
        changes = sim.status_changes(since=change_seq)
        records = sim.requests(since=0)
        TrackedRun.objects.all().delete()

    minutes = (ended_at - started_at) / 60
    by_token: dict[str, list[float]] = defaultdict(list)
    throttled = 0
    polls: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r["token_name"] in tokens:
            by_token[r["token_name"]].append(r["time"])
            throttled += r["status"] == 429
            if r["path"].endswith("/events") and started_at <= r["time"] <= ended_at:
                polls[r["path"].rsplit("/", 2)[-2]].append(r["time"])
    not_found = sum(1 for r in records if r["token_name"] in tokens and r["status"] == 404)
    # Every request for a run before the board first had it: its lookups (404s and the one that found it).
    first_found: dict[str, float] = {}
    for r in records:
        if r["token_name"] in tokens and r["path"].endswith("/events") and r["status"] == 200:
            first_found.setdefault(r["path"].rsplit("/", 2)[-2], r["time"])
    lookups = sum(
        1
        for r in records
        if r["token_name"] in tokens
        and r["path"].endswith("/events")
        and r["time"] <= first_found.get(r["path"].rsplit("/", 2)[-2], float("inf"))
    )
    peaks = {name: max_in_window(by_token[name], args.window) for name in names}
    staleness = []
    for run_id in owner:
        times = sorted(polls.get(run_id, []))
        intervals = [b - a for a, b in zip(times, times[1:], strict=False)]
        staleness.append(sum(i * i for i in intervals) / (2 * sum(intervals)) if intervals else float("inf"))
    delays: list[float] = []
    for run_id, seen in seen_at.items():
        times = sorted(c["time"] for c in changes if c["run_id"] == run_id)
        delays += [s - t for t, s in zip(times, seen, strict=False)]

    print(
        f"{datetime.now():%Y-%m-%d %H:%M}  {args.tokens} tokens x {k} streaming runs = {len(owner)} runs; "
        f"budget {BUDGET} per {args.window} s window (simulator limit 60); R = {REFRESH} s; "
        f"2 workers x 4 threads; all runs on the board {found_after:.0f} s after start; measured {minutes:.1f} min"
    )
    print(
        f"discovery ({'bare run ids' if args.without_repo_ids else 'with repoId'}): {lookups} requests to find "
        f"{len(owner)} runs = {lookups / len(owner):.2f} per new run (target <= 1.2); {not_found} answered 404; "
        f"all on the board {found_after:.0f} s after start"
    )
    print(
        f"budget: max requests in any {args.window} s window per token: max {max(peaks.values())}, "
        f"median {statistics.median(peaks.values()):.0f} (budget {BUDGET}); tokens over budget: "
        f"{sum(p > BUDGET for p in peaks.values())}; 429s: {throttled}; requests recorded: "
        f"{sum(len(v) for v in by_token.values())}"
    )
    within = sum(s <= bound for s in staleness)
    finite = [s for s in staleness if s != float("inf")]
    print(
        f"staleness per run (mean age between polls): median {statistics.median(finite):.2f} s, "
        f"max {max(staleness):.2f} s, bound {bound:.2f} s; runs within bound: {within}/{len(staleness)}"
    )
    if delays:
        mean = statistics.mean(delays)
        print(
            f"status change -> board: n={len(delays)}, mean {mean:.2f} s, p95 {percentile(delays, 95):.2f} s, "
            f"max {max(delays):.2f} s; mean/bound {mean / bound:.2f} (target <= 1.2)"
        )
    ticks = tick_after["count"] - tick_before["count"]
    tick_cpu = tick_after["cpu"] - tick_before["cpu"]
    tick_wall = tick_after["wall"] - tick_before["wall"]
    print(
        f"scheduler: {ticks:.0f} poll_tick runs, thread CPU {tick_cpu / minutes:.2f} s per minute "
        f"({1000 * tick_cpu / max(ticks, 1):.1f} ms per tick, wall {1000 * tick_wall / max(ticks, 1):.1f} ms per tick)"
    )
    print(
        "process CPU per minute: "
        + ", ".join(f"{name} {(cpu_after[name] - cpu_before[name]) / minutes:.1f} s" for name in sorted(pids))
    )


if __name__ == "__main__":
    main()
