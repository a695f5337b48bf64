"""Soak: the whole board for a long time under random upstream faults and a few viewers.

    .venv/bin/python bench/soak.py --minutes 60

Runs the stack as ``manage.py run`` does (embedded Valkey, the simulator WITH its
team-at-work scenario, gunicorn, a Celery worker and beat), with the simulator's
demo tokens: the board reads with ``demo``, the scenario's CI job writes with ``ci``
and registers its runs through the ingest endpoint. Every few minutes it switches
on one fault for the board's token (429, 500, 502_html, timeout, malformed_json, a
short 401, redirect), each with a ``count`` so it clears by itself. Meanwhile a few
viewers poll the board's htmx refresh and a kiosk's refresh.

At the end it reports:

- unhandled exceptions: ``Traceback`` lines in the web, worker and beat logs (target 0);
- 429s caused by the board: 429 answers to the board's token in the simulator's
  request record beyond those the injected 429 faults account for (target 0);
- RSS of web (gunicorn master and workers), worker and beat, at start and end;
- staleness: the composed board sampled every second as a page reads it; the largest
  age of the runs and sandboxes panels, and the longest stretch either stayed past
  ``BOARD_STALE_SECONDS``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import Stack, page_version, wait_until  # noqa: E402

# kind -> how many requests it hits; 401 is short (two in a row mark the source unauthorized).
FAULTS: dict[str, int] = {
    "429": 1,
    "500": 3,
    "502_html": 3,
    "timeout": 2,
    "malformed_json": 3,
    "401": 2,
    "redirect": 2,
}
BOARD_TOKEN_NAME = "demo"
PANELS = ("runs", "sandboxes")


def rss_kib(pid: int) -> int:
    """Resident set size of one process, KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def tree_rss_mib(pid: int) -> float:
    """RSS of a process and its children (gunicorn's master and its workers), MiB."""
    return (rss_kib(pid) + sum(rss_kib(c) for c in children(pid))) / 1024


@dataclass
class Staleness:
    """Ages of each panel as a page would show them, sampled once a second."""

    threshold: float
    max_age: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PANELS, 0.0))
    stale_since: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(PANELS, None))
    longest_stale: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PANELS, 0.0))
    stale_samples: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PANELS, 0))
    samples: int = 0

    def sample(self) -> None:
        from dashboard.board import selectors

        state = selectors.board_state()
        now = state.now
        self.samples += 1
        for name in PANELS:
            panel = state.panels[name]
            age = panel.age or 0.0
            self.max_age[name] = max(self.max_age[name], age)
            if panel.stale:
                self.stale_samples[name] += 1
                since = self.stale_since[name]
                if since is None:
                    # It turned stale when its age crossed the threshold, not at this sample.
                    since = now - (age - self.threshold)
                    self.stale_since[name] = since
                self.longest_stale[name] = max(self.longest_stale[name], now - since)
            else:
                self.stale_since[name] = None


@dataclass
class Viewers:
    """Counts of what the viewers got back."""

    by_status: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str) -> None:
        with self.lock:
            self.by_status[key] = self.by_status.get(key, 0) + 1


def viewer(base_url: str, path: str, cookies: dict[str, str], stop: threading.Event, seen: Viewers) -> None:
    """Poll like a page: the full page once, then the htmx refresh with the version shown."""
    with httpx.Client(base_url=base_url, cookies=cookies, timeout=10) as client:
        version = ""
        while not stop.is_set():
            try:
                if not version:
                    response = client.get(path)
                else:
                    response = client.get(path, params={"v": version}, headers={"HX-Request": "true"})
                seen.count(str(response.status_code))
                if response.status_code == 200:
                    version = page_version(response.text) or version
            except httpx.HTTPError:
                seen.errors += 1
            stop.wait(2.0 + random.random())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=60.0, help="how long to soak (default 60)")
    parser.add_argument(
        "--fault-every", type=float, default=180.0, help="mean seconds between injected faults (default 180)"
    )
    parser.add_argument("--viewers", type=int, default=3, help="browser viewers (plus one kiosk); default 3")
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault schedule")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the logs and database afterwards")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    if args.keep:
        os.environ["BENCH_KEEP"] = "1"

    stack = Stack("soak", sources={}, env={"BOARD_LOG_LEVEL": "INFO"})
    from dashboard.demo import demo_secrets

    # The simulator and the board share the demo tokens through the stack's var dir, as under `manage.py run`.
    demo = demo_secrets(stack.var)
    stack.env.pop("MOGPLEX_TOKEN_UNUSED", None)
    stack.env.update(
        {
            f"MOGPLEX_TOKEN_{BOARD_TOKEN_NAME.upper()}": demo.read_token,
            "BOARD_INGEST_TOKEN": demo.ingest_token,
        }
    )
    with stack:
        from django.conf import settings

        from dashboard.models import DisplayToken
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

        from dashboard import snapshots

        wait_until(lambda: snapshots.board_read() is not None, 60, "the first composed board")
        print(f"soak: stack up in {stack.var}; soaking {args.minutes:g} min", flush=True)

        pids = {
            "web": stack.procs["web"].pid,
            "worker": stack.procs["worker0"].pid,
            "beat": stack.procs["beat"].pid,
        }
        rss_start = {name: tree_rss_mib(pid) for name, pid in pids.items()}
        rss_max = dict(rss_start)

        stop = threading.Event()
        seen = Viewers()
        kiosk_seen = Viewers()
        _, display = DisplayToken.issue("soak kiosk")
        threads = [
            threading.Thread(
                target=viewer,
                args=(stack.web_url, "/", stack.session_cookie(f"soak{n}"), stop, seen),
                daemon=True,
            )
            for n in range(args.viewers)
        ]
        threads.append(
            threading.Thread(
                target=viewer, args=(stack.web_url, f"/kiosk/{display}/", {}, stop, kiosk_seen), daemon=True
            )
        )
        for thread in threads:
            thread.start()

        staleness = Staleness(threshold=float(settings.BOARD_STALE_SECONDS))
        injected: list[tuple[float, str, int]] = []
        started = time.monotonic()
        end = started + args.minutes * 60
        # The first fault after a quiet start, so the start-up figures are clean.
        next_fault = started + min(60.0, args.fault_every / 2)
        next_report = started + 60
        while (now := time.monotonic()) < end:
            staleness.sample()
            for name, pid in pids.items():
                rss_max[name] = max(rss_max[name], tree_rss_mib(pid))
            if now >= next_fault:
                kind = rng.choice(sorted(FAULTS))
                sim.inject_fault(kind, token=BOARD_TOKEN_NAME, count=FAULTS[kind])
                injected.append((now - started, kind, FAULTS[kind]))
                print(f"soak: {now - started:7.0f}s fault {kind} x{FAULTS[kind]}", flush=True)
                next_fault = now + rng.uniform(0.5, 1.5) * args.fault_every
            if now >= next_report:
                ages = ", ".join(f"{p} max {staleness.max_age[p]:.0f}s" for p in PANELS)
                print(f"soak: {now - started:7.0f}s {ages}", flush=True)
                next_report = now + 60
            for name, proc in stack.procs.items():
                if proc.poll() is not None:
                    raise SystemExit(f"soak: {name} stopped (exit {proc.returncode}); see {stack.var}")
            time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
        stop.set()
        for thread in threads:
            thread.join(timeout=15)

        rss_end = {name: tree_rss_mib(pid) for name, pid in pids.items()}
        records = sim.requests()
        faults_left = {f["kind"]: f["count"] or 0 for f in sim.faults() if f["token"] == BOARD_TOKEN_NAME}
        board_requests = [r for r in records if r.get("token_name") == BOARD_TOKEN_NAME]
        got_429 = sum(1 for r in board_requests if r.get("status") == 429)
        # An injected 429 fault answered as many requests as its count, less what is left of it.
        injected_429 = sum(count for _, kind, count in injected if kind == "429") - faults_left.get("429", 0)
        tracebacks = {}
        for name in ("web", "worker0", "beat"):
            log = stack.var / f"{name}.log"
            tracebacks[name] = log.read_text(errors="replace").count("Traceback") if log.exists() else 0
        figures: dict[str, Any] = {
            "minutes": args.minutes,
            "faults_injected": [{"at_s": round(t), "kind": k, "count": c} for t, k, c in injected],
            "tracebacks": tracebacks,
            "upstream_requests_board_token": len(board_requests),
            "upstream_429_total": got_429,
            "upstream_429_injected": injected_429,
            "upstream_429_caused_by_board": got_429 - injected_429,
            "non_get_board_token": sum(1 for r in board_requests if r.get("method") != "GET"),
            "rss_mib_start": {k: round(v, 1) for k, v in rss_start.items()},
            "rss_mib_end": {k: round(v, 1) for k, v in rss_end.items()},
            "rss_mib_max": {k: round(v, 1) for k, v in rss_max.items()},
            "stale_threshold_s": staleness.threshold,
            "samples": staleness.samples,
            "panel_max_age_s": {k: round(v, 1) for k, v in staleness.max_age.items()},
            "panel_longest_stale_s": {k: round(v, 1) for k, v in staleness.longest_stale.items()},
            "panel_stale_samples": staleness.stale_samples,
            "viewer_responses": seen.by_status,
            "viewer_errors": seen.errors,
            "kiosk_responses": kiosk_seen.by_status,
            "kiosk_errors": kiosk_seen.errors,
            "logs": str(stack.var) if args.keep else None,
        }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    total_tb = sum(tracebacks.values())
    print(
        f"\nsoak {args.minutes:g} min: tracebacks {total_tb} (target 0); "
        f"429s caused by the board {figures['upstream_429_caused_by_board']} (target 0); "
        f"runs panel max age {figures['panel_max_age_s']['runs']} s, "
        f"sandboxes {figures['panel_max_age_s']['sandboxes']} s; "
        f"longest stale stretch {max(staleness.longest_stale.values()):.0f} s "
        f"(threshold {staleness.threshold:g} s)"
    )


if __name__ == "__main__":
    main()
