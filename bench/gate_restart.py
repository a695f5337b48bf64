"""Redis restarted empty in the middle of a busy window: the board must not overspend into a 429.

Starts Valkey (no persistence), the simulator and a Celery worker + beat with time
compressed (a 10 s rate window in both, budget 50 per window, simulator limit 60),
and tracks 40 streaming runs on one token, refreshed every second: demand far
above the budget, so every window is spent. Once the board has spent at least
``--busy`` requests in the last window, Valkey is stopped and started again empty
on the same port (its data, the broker's queue and the loaded scripts are gone;
the database is not), ``--restarts`` times, a few windows apart. Celery's worker
exits when its broker goes away; ``manage.py run`` restarts a part that dies, and
the bench restarts worker and beat right after each Valkey restart.

Without the durable mark the board would start a fresh window at once and send
another 50 on top of the 50 upstream still counts: 429s. Figures: upstream 429s on
the token over the whole run (target 0); per restart, how many requests the last
window held, how long until the first request after the restart, how long until
every run was on the board again; and the most requests in any rolling window at
the simulator (limit 60).

    .venv/bin/python bench/gate_restart.py [--restarts 3] [--busy 45]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime

from stack import Stack, mog_token, wait_until

WINDOW = 10
BUDGET = 50
LIMIT = 60
RUNS = 40


def most_in_window(times: list[float], window: float) -> int:
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--busy", type=int, default=45, help="requests in the last window before a restart")
    args = parser.parse_args()

    token = mog_token()
    with Stack(
        "gate-restart",
        sources={"bench": token},
        window=WINDOW,
        budget=BUDGET,
        limit=LIMIT,
        env={
            "BOARD_RUN_REFRESH_SECONDS": "1",
            "BOARD_SANDBOXES_REFRESH_SECONDS": "5",
            "BOARD_REPOS_REFRESH_SECONDS": "3600",
        },
    ) as stack:
        from dashboard import snapshots
        from dashboard.models import TrackedRun

        sim = stack.start_simulator()
        run_ids = []
        for _ in range(RUNS):
            run_id = sim.create_run("bench")["runId"]
            sim.set_run_status(run_id, "streaming")
            TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND)
            run_ids.append(run_id)
        stack.start_poller()

        def all_on_board() -> bool:
            board = snapshots.board_read() or {}
            shown = {r["run_id"] for r in board.get("runs", []) if r.get("status") == "streaming"}
            return shown >= set(run_ids)

        wait_until(all_on_board, 180, "every run on the board", every=0.2)
        print(
            f"{RUNS} streaming runs on one token, refreshed every 1 s; budget {BUDGET} per {WINDOW} s "
            f"window (board counts {WINDOW + 1} s), simulator limit {LIMIT} per {WINDOW} s; Valkey without persistence"
        )
        print(f"{'restart':>7} {'last window':>11} {'first request after s':>21} {'board whole again s':>19}")

        def recent() -> list[float]:
            return [r["time"] for r in sim.requests() if r["token_name"] == "bench"]

        restarts: list[int] = []
        for n in range(1, args.restarts + 1):
            time.sleep(2 * WINDOW)  # steady state again
            wait_until(
                lambda: sum(1 for t in recent() if t > time.time() - WINDOW) >= args.busy,
                60,
                "a busy window",
                every=0.1,
            )
            now = time.time()
            held = sum(1 for t in recent() if t > now - WINDOW)
            stack.stop("valkey")
            stack._spawn_valkey()
            restarted = time.time()
            # Celery's worker exits when its broker (the same Valkey) goes away, and
            # `manage.py run` starts it again; the bench restarts worker and beat at once.
            deadline = time.time() + 5
            while stack.procs["worker0"].poll() is None and time.time() < deadline:
                time.sleep(0.1)
            if stack.procs["worker0"].poll() is not None:
                restarts.append(n)
            for name in ("worker0", "beat"):
                stack.stop(name)
            stack.start_poller()
            first = wait_until(
                lambda at=restarted: min((t for t in recent() if t > at), default=None),
                120,
                "a request after the restart",
            )
            wait_until(all_on_board, 120, "every run on the board again", every=0.2)
            whole = time.time()
            print(f"{n:>7} {held:>11} {first - restarted:>21.1f} {whole - restarted:>19.1f}", flush=True)

        records = [r for r in sim.requests() if r["token_name"] == "bench"]
        throttled = sum(1 for r in records if r["status"] == 429)
        peak = most_in_window([r["time"] for r in records], WINDOW)
        print(
            f"the worker exited with its broker after restarts {restarts}; worker and beat restarted every time"
        )
        print(
            f"upstream requests {len(records)}, 429s {throttled} (target 0); "
            f"most in any rolling {WINDOW} s window at the simulator: {peak} (limit {LIMIT})"
        )
        TrackedRun.objects.all().delete()
    print(f"\n{datetime.now():%Y-%m-%d %H:%M}")


if __name__ == "__main__":
    main()
