"""Endurance: the whole board at a compressed pace, memory sampled over time.

    .venv/bin/python bench/endurance.py --minutes 60 [--every 30] [--speed 40] [--window 5] [--retention-hours 0.05]

Runs the stack as ``manage.py run`` does (embedded Valkey, the simulator WITH its
team-at-work scenario sped up ``--speed`` times, gunicorn, a Celery worker and
beat), with a few logged-in viewers and a kiosk polling, and ``--streams`` open
walls' change streams (reopened as they end, as a browser does); the budget's and the
upstream's rate window is compressed too (``--window`` seconds for Mogplex's 60,
the budget and limit per window as in production), and runs are refreshed every
second. The retention window is made
short (``BOARD_RETENTION_HOURS``, default 0.05 h = 3 min) so that in a run of
minutes finished runs leave the board and their Redis records expire, as they
would over days at the default 24 h.

Every ``--every`` seconds it samples the RSS of web (gunicorn master + workers),
worker and beat, Redis ``used_memory``, how many runs were seen in all, how many
are live, how many are inside the retention window, and how many ``board:run:``
keys Redis holds. At the end it prints the samples and, for each measure, the
growth between the mean of the first and of the last quarter of the samples
taken after ``--warmup`` minutes (target: ≤ 2 % for each process; Redis
following the runs in the window, not the runs ever seen).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak import BOARD_TOKEN_NAME, Viewers, tree_rss_mib, viewer  # noqa: E402
from stack import Stack, wait_until  # noqa: E402

PROCS = ("web", "worker", "beat")


def growth(values: list[float]) -> float:
    """Percent change between the mean of the first and the last quarter of ``values``."""
    quarter = max(1, len(values) // 4)
    first = statistics.fmean(values[:quarter])
    last = statistics.fmean(values[-quarter:])
    return 0.0 if first == 0 else (last - first) / first * 100


def stream_reader(url: str, stop: threading.Event, pushed: list[int]) -> None:
    """An open wall's change stream: read its events, and reopen it when it ends, as EventSource does."""
    while not stop.is_set():
        try:
            with httpx.stream("GET", url, timeout=httpx.Timeout(10, read=60)) as response:
                for line in response.iter_lines():
                    if line.startswith("event: board"):
                        pushed[0] += 1
                    if stop.is_set():
                        return
        except httpx.HTTPError:
            pass
        stop.wait(2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=60.0, help="how long to run (default 60)")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples (default 30)")
    parser.add_argument(
        "--warmup", type=float, default=None, help="minutes left out of the growth (default: a quarter)"
    )
    parser.add_argument("--speed", type=float, default=40.0, help="scenario speed-up (default 40)")
    parser.add_argument(
        "--retention-hours", type=float, default=0.05, help="BOARD_RETENTION_HOURS for the run (default 0.05)"
    )
    parser.add_argument(
        "--window", type=int, default=5, help="budget and upstream rate window, seconds (default 5, for 60 s)"
    )
    parser.add_argument(
        "--viewers", type=int, default=3, help="logged-in viewers, plus one kiosk (default 3)"
    )
    parser.add_argument(
        "--streams", type=int, default=20, help="change streams held open, reopened as they end (default 20)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the logs and database afterwards")
    args = parser.parse_args()
    if args.keep:
        os.environ["BENCH_KEEP"] = "1"
    warmup = args.minutes / 4 if args.warmup is None else args.warmup

    stack = Stack(
        "endurance",
        sources={},
        window=args.window,
        env={
            "BOARD_RUN_REFRESH_SECONDS": "1",
            "BOARD_SANDBOXES_REFRESH_SECONDS": "3",
            "BOARD_LOG_LEVEL": "WARNING",
            "BOARD_RETENTION_HOURS": str(args.retention_hours),
            # The scenario starts runs faster than a team; registering them must not be refused.
            "BOARD_INGEST_MAX_RUNS": "1000",
            "BOARD_INGEST_RUNS_PER_HOUR": "100000",
        },
    )
    from dashboard.demo import demo_secrets

    demo = demo_secrets(stack.var)
    stack.env.pop("MOGPLEX_TOKEN_UNUSED", None)
    stack.env.update(
        {
            f"MOGPLEX_TOKEN_{BOARD_TOKEN_NAME.upper()}": demo.read_token,
            "BOARD_INGEST_TOKEN": demo.ingest_token,
        }
    )
    os.environ.update(stack.env)
    with stack:
        from django.db.models import Q
        from django.utils import timezone

        from dashboard import snapshots
        from dashboard.models import DisplayToken, TrackedRun
        from dashboard.simulator.control import SimulatorControl

        stack.start_web()
        stack.spawn(
            "simulator",
            [
                sys.executable,
                "-m",
                "dashboard.simulator",
                "--port",
                str(stack.sim_port),
                "--limit",
                str(stack.limit),
                "--window-seconds",
                str(args.window),
                "--speed",
                str(args.speed),
                "--ingest-url",
                stack.web_url + "/ingest/runs",
            ],
        )
        sim = SimulatorControl(stack.sim_url, timeout=30)

        def sim_up() -> bool:
            try:
                sim.health()
                return True
            except httpx.HTTPError:
                return False

        wait_until(sim_up, 30, "the simulator")
        stack.start_poller(concurrency=8)
        wait_until(lambda: snapshots.board_read() is not None, 60, "the first composed board")
        print(
            f"endurance: stack up in {stack.var}; running {args.minutes:g} min at speed {args.speed:g}",
            flush=True,
        )

        pids = {
            "web": stack.procs["web"].pid,
            "worker": stack.procs["worker0"].pid,
            "beat": stack.procs["beat"].pid,
        }
        stop = threading.Event()
        seen = Viewers()
        _, display = DisplayToken.issue("endurance kiosk")
        threads = [
            threading.Thread(
                target=viewer,
                args=(stack.web_url, "/", stack.session_cookie(f"endurance{n}"), stop, seen),
                daemon=True,
            )
            for n in range(args.viewers)
        ]
        threads.append(
            threading.Thread(
                target=viewer, args=(stack.web_url, f"/kiosk/{display}/", {}, stop, seen), daemon=True
            )
        )
        pushed = [0]
        threads += [
            threading.Thread(
                target=stream_reader,
                args=(f"{stack.web_url}/kiosk/{display}/stream/", stop, pushed),
                daemon=True,
            )
            for _ in range(args.streams)
        ]
        for thread in threads:
            thread.start()

        client = snapshots.redis_client()
        samples: list[dict[str, Any]] = []
        started = time.monotonic()
        end = started + args.minutes * 60
        next_sample = started
        last_seq, polls = 0, 0
        header = (
            f"{'t_min':>6} {'web_MiB':>8} {'worker':>7} {'beat':>6} {'redis_MiB':>9} "
            f"{'runs_seen':>9} {'live':>5} {'window':>6} {'run_keys':>8} {'polls':>8}"
        )
        print(header, flush=True)
        while (now := time.monotonic()) < end:
            for name, proc in stack.procs.items():
                if proc.poll() is not None:
                    raise SystemExit(f"endurance: {name} stopped (exit {proc.returncode}); see {stack.var}")
            if now >= next_sample:
                cutoff = timezone.now() - timedelta(hours=args.retention_hours)
                info: dict[str, Any] = client.info("memory")  # type: ignore[assignment]
                fresh = sim.requests(since=last_seq)
                polls += len(fresh)
                last_seq = max((int(r["seq"]) for r in fresh), default=last_seq)
                sample: dict[str, Any] = {
                    "t_min": round((now - started) / 60, 2),
                    **{name: round(tree_rss_mib(pid), 1) for name, pid in pids.items()},
                    "redis_mib": round(int(info["used_memory"]) / 2**20, 2),
                    "runs_seen": TrackedRun.objects.count(),
                    "live": TrackedRun.objects.filter(finished_at__isnull=True).count(),
                    "window": TrackedRun.objects.filter(
                        Q(finished_at__isnull=True) | Q(finished_at__gte=cutoff)
                    ).count(),
                    "run_keys": sum(1 for _ in client.scan_iter(match="board:run:*", count=1000)),
                    "polls": polls,
                }
                samples.append(sample)
                print(
                    f"{sample['t_min']:6.1f} {sample['web']:8.1f} {sample['worker']:7.1f} {sample['beat']:6.1f} "
                    f"{sample['redis_mib']:9.2f} {sample['runs_seen']:9d} {sample['live']:5d} "
                    f"{sample['window']:6d} {sample['run_keys']:8d} {sample['polls']:8d}",
                    flush=True,
                )
                next_sample += args.every
            time.sleep(max(0.0, min(1.0, next_sample - time.monotonic())))
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        tracebacks = {}
        for name in ("web", "worker0", "beat"):
            log = stack.var / f"{name}.log"
            tracebacks[name] = log.read_text(errors="replace").count("Traceback") if log.exists() else 0

    steady = [s for s in samples if s["t_min"] >= warmup] or samples
    figures: dict[str, Any] = {
        "minutes": args.minutes,
        "speed": args.speed,
        "retention_hours": args.retention_hours,
        "warmup_minutes": warmup,
        "samples_after_warmup": len(steady),
        "growth_percent": {
            key: round(growth([float(s[key]) for s in steady]), 2)
            for key in (*PROCS, "redis_mib", "runs_seen", "window", "run_keys")
        },
        "runs_seen": samples[-1]["runs_seen"] if samples else 0,
        "upstream_requests": samples[-1]["polls"] if samples else 0,
        "max_run_keys": max((s["run_keys"] for s in samples), default=0),
        "max_window": max((s["window"] for s in samples), default=0),
        "tracebacks": tracebacks,
        "viewer_responses": seen.by_status,
        "viewer_errors": seen.errors,
        "pushed_events": pushed[0],
        "samples": samples,
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    g = figures["growth_percent"]
    print(
        f"\nendurance {args.minutes:g} min (warm-up {warmup:g} min, {len(steady)} samples after it), "
        f"first -> last quarter: web {g['web']:+.2f} %, worker {g['worker']:+.2f} %, beat {g['beat']:+.2f} % "
        f"(target <= 2 %); Redis {g['redis_mib']:+.2f} % while runs seen grew {g['runs_seen']:+.1f} % "
        f"and runs in the window {g['window']:+.1f} %; run keys at most {figures['max_run_keys']} "
        f"for at most {figures['max_window']} runs in the window; {figures['runs_seen']} runs, "
        f"{figures['upstream_requests']} upstream requests; {args.streams} change streams heard "
        f"{figures['pushed_events']} board changes; tracebacks {sum(tracebacks.values())}"
    )


if __name__ == "__main__":
    main()
