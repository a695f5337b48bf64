"""Viewers cost no upstream requests: the poller's request rate with 50 viewers vs 1, and a naive baseline.

Starts Valkey, the simulator, a Celery worker + beat and gunicorn as deployed,
with time compressed (a 10 s rate window, budget 50 per window, runs refreshed
every 2 s so the poller works below its budget and any extra request would
show). Five streaming runs on one token gain an event every 3 s, so viewers
see changes as well as 204s. Browser-like viewers (threads with a logged-in
session) load the overview once, then poll its htmx refresh (``?v=<version>``,
``HX-Request: true``) every ~2 s, taking the new version from each 200.

Measured from the simulator's request record (this token only):
1. board, 1 viewer; 2. board, 50 viewers (target: ratio <= 1.05);
3./4. with the poller stopped, a naive board that fetches upstream on every
page view (each viewer poll GETs /runs/{id}/events for each active run with
the same token, as a Grafana JSON panel would), 1 viewer and 50 viewers.

    .venv/bin/python bench/viewers.py [--viewers 50] [--seconds 60] [--naive-seconds 30]
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections import Counter
from datetime import datetime
from typing import Any

import httpx
from stack import Stack, mog_token, page_version, wait_until

WINDOW = 10
BUDGET = 50
RUNS = 5
POLL_SECONDS = 2.0


def board_viewer(
    web_url: str, cookies: dict[str, str], stop: threading.Event, outcomes: Counter[str]
) -> None:
    with httpx.Client(base_url=web_url, cookies=cookies, timeout=10) as client:
        version = page_version(client.get("/").text) or ""
        stop.wait(random.uniform(0, POLL_SECONDS))
        while not stop.is_set():
            try:
                response = client.get("/", params={"v": version}, headers={"HX-Request": "true"})
                outcomes[str(response.status_code)] += 1
                if response.status_code == 200:
                    version = page_version(response.text) or version
            except httpx.HTTPError:
                outcomes["error"] += 1
            stop.wait(POLL_SECONDS * random.uniform(0.9, 1.1))


def naive_viewer(
    sim_url: str, token: str, run_ids: list[str], stop: threading.Event, outcomes: Counter[str]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=sim_url + "/api/v1/mogplex", headers=headers, timeout=10) as client:
        stop.wait(random.uniform(0, POLL_SECONDS))
        while not stop.is_set():
            for run_id in run_ids:
                try:
                    response = client.get(f"/runs/{run_id}/events", params={"limit": 200})
                    outcomes[str(response.status_code)] += 1
                except httpx.HTTPError:
                    outcomes["error"] += 1
            stop.wait(POLL_SECONDS * random.uniform(0.9, 1.1))


def phase(viewers: int, seconds: float, target: Any, sim: Any) -> tuple[float, int, Counter[str]]:
    """Run ``viewers`` threads of ``target`` for ``seconds``; upstream requests per minute and 429s."""
    stop = threading.Event()
    outcomes: Counter[str] = Counter()
    threads = [threading.Thread(target=target, args=(stop, outcomes), daemon=True) for _ in range(viewers)]
    for thread in threads:
        thread.start()
    time.sleep(POLL_SECONDS)  # every viewer has loaded its page and started polling
    start = time.time()
    time.sleep(seconds)
    end = time.time()
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    records = [r for r in sim.requests(since=0) if r["token_name"] == "bench" and start <= r["time"] < end]
    per_minute = len(records) / (end - start) * 60
    return per_minute, sum(1 for r in records if r["status"] == 429), outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60, help="measured time per board phase")
    parser.add_argument("--naive-seconds", type=float, default=30, help="measured time per naive phase")
    args = parser.parse_args()

    token = mog_token()
    with Stack(
        "viewers",
        sources={"bench": token},
        window=WINDOW,
        budget=BUDGET,
        env={"BOARD_RUN_REFRESH_SECONDS": "2", "BOARD_SANDBOXES_REFRESH_SECONDS": "5"},
    ) as stack:
        from dashboard.models import TrackedRun

        sim = stack.start_simulator()
        run_ids = []
        for _ in range(RUNS):
            run_id = sim.create_run("bench")["runId"]
            sim.set_run_status(run_id, "streaming")
            TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND)
            run_ids.append(run_id)
        stack.start_poller()
        stack.start_web()
        wait_until(
            lambda: TrackedRun.objects.filter(lookup="found").count() == RUNS, 60, "every run to be found"
        )
        cookies = stack.session_cookie()

        stop_changes = threading.Event()

        def changes() -> None:
            while not stop_changes.wait(3.0):
                sim.add_events(random.choice(run_ids), 1, type="message", message="working")

        threading.Thread(target=changes, daemon=True).start()
        time.sleep(2 * WINDOW)  # settle into the steady pace

        def board(stop: threading.Event, outcomes: Counter[str]) -> None:
            board_viewer(stack.web_url, cookies, stop, outcomes)

        def naive(stop: threading.Event, outcomes: Counter[str]) -> None:
            naive_viewer(stack.sim_url, token, run_ids, stop, outcomes)

        print(
            f"{RUNS} streaming runs on one token; budget {BUDGET} per {WINDOW} s window (simulator limit 60); "
            f"runs refreshed every 2 s; viewers poll every ~{POLL_SECONDS:.0f} s"
        )
        print(f"{'phase':<28} {'upstream/min':>12} {'429s':>5}  viewer responses")
        results = {}
        for name, viewers, seconds, target in (
            ("board, 1 viewer", 1, args.seconds, board),
            (f"board, {args.viewers} viewers", args.viewers, args.seconds, board),
        ):
            results[name] = phase(viewers, seconds, target, sim)
            rate, throttled, outcomes = results[name]
            print(f"{name:<28} {rate:>12.1f} {throttled:>5}  {dict(outcomes)}", flush=True)
        stack.stop("beat")
        for name in [n for n in stack.procs if n.startswith("worker")]:
            stack.stop(name)
        time.sleep(WINDOW + 1)  # the poller's requests leave the simulator's window
        for name, viewers, seconds, target in (
            ("naive, 1 viewer", 1, args.naive_seconds, naive),
            (f"naive, {args.viewers} viewers", args.viewers, args.naive_seconds, naive),
        ):
            results[name] = phase(viewers, seconds, target, sim)
            rate, throttled, outcomes = results[name]
            print(f"{name:<28} {rate:>12.1f} {throttled:>5}  {dict(outcomes)}", flush=True)
        stop_changes.set()

    board_1, board_n = results["board, 1 viewer"], results[f"board, {args.viewers} viewers"]
    naive_1, naive_n = results["naive, 1 viewer"], results[f"naive, {args.viewers} viewers"]
    naive_ok = (naive_n[2]["200"] / args.naive_seconds) / max(naive_1[2]["200"] / args.naive_seconds, 1e-9)
    print(f"\n{datetime.now():%Y-%m-%d %H:%M}")
    print(
        f"board: upstream/min with {args.viewers} viewers / with 1 = {board_n[0] / board_1[0]:.3f} (target <= 1.05)"
    )
    print(
        f"naive: upstream/min with {args.viewers} viewers / with 1 = {naive_n[0] / naive_1[0]:.1f} "
        f"(answered 200: {naive_ok:.1f}x); 429s: {naive_n[1]} of {naive_n[0] * args.naive_seconds / 60:.0f}"
    )


if __name__ == "__main__":
    main()
