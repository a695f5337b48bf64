"""Admission under contention: no request is let out during a Retry-After another worker recorded.

Starts Valkey and the simulator (1 s rate window, so Retry-After is 1 s; its own
limit out of the way, so every 429 is an injected one), then two worker processes
of 8 threads each (tests/gate_hammer.py) on one token. Each thread loops as fast
as the gate lets it: ``gate.admit``, one real ``/sandboxes`` request with the
board's client, ``gate.settle`` (the calls ``tasks._request`` makes, without
Celery's pacing, so every thread is always asking). The simulator answers the
first ``--faults`` requests 429.

Figures: 429s answered; requests admitted after a 429 had been settled by any
worker and before its Retry-After ended (target 0); on the simulator's side, how
many requests arrived during a pause and how late after the 429 the last of them
came (those left before the 429 was recorded: in flight).

    .venv/bin/python bench/admission.py [--faults 1000] [--processes 2] [--threads 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from stack import ROOT, Stack, mog_token, wait_until

SOURCE = "contended"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--budget", type=int, default=60, help="board budget per window (the most settings allow)"
    )
    args = parser.parse_args()

    with Stack(
        "admission", sources={SOURCE: mog_token()}, window=1, budget=args.budget, limit=1_000_000
    ) as stack:
        sim = stack.start_simulator()
        sim.inject_fault("429", token=SOURCE, count=args.faults)
        outs = [stack.var / f"hammer{i}.jsonl" for i in range(args.processes)]
        started = time.time()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.gate_hammer",
                    "--source",
                    SOURCE,
                    "--threads",
                    str(args.threads),
                    "--seconds",
                    "600",
                    "--start-at",
                    repr(started + 3),
                    "--out",
                    str(out),
                    # Faults are served first, so a 200 means they are all spent.
                    "--until-ok",
                    "20",
                ],
                env=stack.env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for out in outs
        ]
        for proc in procs:
            proc.wait(timeout=900)
        wait_until(lambda: all(out.exists() for out in outs), 10, "the hammers' records")
        from tests.gate_hammer import violations

        records = [json.loads(line) for out in outs for line in out.read_text().splitlines() if line]
        refusals: dict[str, int] = {}
        for out in outs:
            for reason, count in json.loads(out.with_name(out.name + ".refusals").read_text()).items():
                refusals[reason] = refusals.get(reason, 0) + count
        limited = [r for r in records if r["status"] == 429]
        bad = violations(records)
        seen = [r for r in sim.requests() if r["token_name"] == SOURCE]
        hits = [r for r in seen if r["status"] == 429]
        # A pause starts when the 429 arrives upstream and lasts Retry-After (1 s): for each
        # request that arrived during one, how long after the earliest such 429 it came.
        during: dict[int, float] = {}
        for hit in hits:
            for r in seen:
                if hit["time"] < r["time"] < hit["time"] + 1.0:
                    during[r["seq"]] = max(during.get(r["seq"], 0.0), r["time"] - hit["time"])
        elapsed = max(r["settled_at"] for r in records) - min(r["admitted_at"] for r in records)

        print(
            f"{args.processes} processes x {args.threads} threads on one token; "
            f"simulator window 1 s (Retry-After 1 s); {args.faults} injected 429s"
        )
        print(
            f"requests sent {len(records)} ({len(limited)} answered 429, "
            f"{sum(1 for r in records if r['status'] == 200)} answered 200) in {elapsed:.1f} s; "
            f"refusals by reason: {dict(sorted(refusals.items()))}"
        )
        print(
            f"requests admitted after a settled 429 and before its Retry-After ended: {len(bad)} (target 0)"
        )
        late = max(during.values()) if during else 0.0
        print(
            f"simulator: {len(during)} of {len(seen)} requests arrived during a Retry-After (after a 429 had "
            f"arrived), none later than {late * 1000:.0f} ms after it: sent before that 429 was recorded, in flight"
        )


if __name__ == "__main__":
    main()
