"""The scheduler alone: CPU of the poller's tick at 50 tokens and 500 active runs.

Starts Valkey and configures 50 sources (``MOGPLEX_TOKEN_T00`` ... ``T49``,
budget 50 per 60 s, R = 10 s) with 10 streaming runs each, found and owned, as
after discovery. Then it runs the tick in this process once per simulated
second for ``--minutes`` (``time-machine`` moves the clock, so a minute takes
what the ticks cost, not a minute), exactly as ``poll_tick`` does: plan the
sources that are due, mark them, enqueue their fetches into the broker (the
queue is emptied every simulated second; no worker runs them, so the
schedule marks stand in for the fetches). Figures: thread CPU of the ticks per
simulated minute (target <= 1 s), per tick, and fetches enqueued per minute
(the budget allows 50 x 50 = 2,500).

    .venv/bin/python bench/tick_cpu.py [--tokens 50] [--runs-per-token 10] [--minutes 2]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
import uuid
from datetime import datetime

import time_machine
from stack import Stack, mog_token

PROFILE: cProfile.Profile | None = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--runs-per-token", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=2)
    parser.add_argument("--profile", action="store_true", help="print where the ticks spend their time")
    args = parser.parse_args()
    global PROFILE
    if args.profile:
        PROFILE = cProfile.Profile()
    names = [f"t{n:02d}" for n in range(args.tokens)]
    with Stack("tick-cpu", sources={name: mog_token() for name in names}, window=60, budget=50) as stack:
        from dashboard import snapshots
        from dashboard.celery import app
        from dashboard.models import TrackedRun
        from dashboard.polling import tasks

        del stack
        TrackedRun.objects.bulk_create(
            TrackedRun(
                run_id=uuid.uuid4(),
                via=TrackedRun.Via.INGEST,
                source=name,
                lookup=TrackedRun.Lookup.FOUND,
                status="streaming",
            )
            for name in names
            for _ in range(args.runs_per_token)
        )
        broker = app.connection_for_write()
        start = time.time()
        cpu = 0.0
        enqueued = 0
        ticks = int(args.minutes * 60)
        with time_machine.travel(start, tick=False) as clock:
            for second in range(ticks):
                clock.move_to(start + second)
                before = time.thread_time()
                if PROFILE is not None:
                    PROFILE.enable()
                tasks._tick(time.time())
                if PROFILE is not None:
                    PROFILE.disable()
                cpu += time.thread_time() - before
                with broker.channel() as channel:
                    enqueued += int(channel.client.llen("celery"))
                    channel.client.delete("celery")
        health = snapshots.source_health_read(names[0]) or {}
        broker.release()

    minutes = ticks / 60
    print(
        f"{datetime.now():%Y-%m-%d %H:%M}  {args.tokens} tokens x {args.runs_per_token} streaming runs; "
        f"budget 50 per 60 s, R = 10 s; {ticks} ticks (one per simulated second)"
    )
    print(
        f"scheduler: thread CPU {cpu / minutes:.2f} s per minute (target <= 1), {1000 * cpu / ticks:.1f} ms per tick; "
        f"{enqueued / minutes:.0f} fetches enqueued per minute (budget allows {50 * args.tokens}); "
        f"a source's effective run interval {health.get('effective_interval_seconds')} s"
    )

    if PROFILE is not None:
        pstats.Stats(PROFILE).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
