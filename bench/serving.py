"""What a viewer's poll costs the web server: the unchanged-board 204 vs a trivial view, and a changed board.

Starts Valkey and gunicorn as deployed (the asgi worker, 2 processes of 4 page threads), writes a
board of 200 runs and 100 sandboxes straight into the snapshot store (and keeps
the poller heartbeat fresh), logs a user in through the login form, and drives
the server with ``wrk`` (a Lua script sets the session cookie and
``HX-Request``, and prints throughput and latency percentiles):

1. ``/healthz`` (a view that returns "ok") and the overview's htmx poll with the
   current version (answers 204), alternating, ``--rounds`` times each,
   8 connections (as many as the server has threads); target: the poll's
   throughput / healthz's >= 0.8, and healthz latency / poll latency >= 0.8.
2. A changed board: the bench writes a new board, then polls with the old
   version (the server renders the whole board fragment), ``--changes`` times
   in turn, one request at a time; target: p50 <= 20 ms. Twice: with one run
   changed per board (what a viewer sees as runs progress; the other rows
   come from the row cache) and with every run changed (the worst case, every
   row rendered). And the wall's poll (the kiosk, up to 80 rows a panel) with one run changed.

    .venv/bin/python bench/serving.py [--seconds 10] [--rounds 3] [--server asgi|wsgi]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
from stack import Stack, page_version, synthetic_board

LUA = """
wrk.method = "GET"
wrk.headers["Cookie"] = "{cookie}"
wrk.headers["HX-Request"] = "true"
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("WRK %d %.6f %.3f %.3f %d %d\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status, errors))
end
"""


def wrk(url: str, script: Path, *, connections: int, seconds: float) -> dict[str, float]:
    """One wrk run: requests/s, p50 and p99 in ms, non-2xx/3xx answers and socket errors."""
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRK "))
    requests, duration, p50, p99, bad_status, errors = line.split()[1:]
    return {
        "rps": int(requests) / float(duration),
        "p50": float(p50),
        "p99": float(p99),
        "bad": int(bad_status) + int(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--sandboxes", type=int, default=100)
    parser.add_argument("--changes", type=int, default=200, help="changed-board polls of each kind")
    parser.add_argument(
        "--server",
        choices=["asgi", "wsgi"],
        default="asgi",
        help="gunicorn's worker: as deployed, or threaded WSGI",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    with Stack("serving") as stack:
        from dashboard import snapshots
        from dashboard.polling.compose import board_publish

        # As the poller writes it: with the fetch times an unchanged poll answers with.
        board_publish(synthetic_board(args.runs, args.sandboxes, now=time.time()))
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.is_set():
                snapshots.heartbeat_write(time.time())
                stop.wait(1.0)

        threading.Thread(target=heartbeat, daemon=True).start()
        try:
            stack.start_web(server=args.server)
            cookies = stack.session_cookie()
            cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
            script = stack.var / "session.lua"
            script.write_text(LUA.format(cookie=cookie))
            with httpx.Client(base_url=stack.web_url, cookies=cookies, timeout=10) as client:
                page = client.get("/")
                version = page_version(page.text)
                poll = client.get("/", params={"v": version}, headers={"HX-Request": "true"})
                changed = client.get("/", params={"v": "old"}, headers={"HX-Request": "true"})
            if page.status_code != 200 or version is None or poll.status_code != 204:
                raise SystemExit(f"unexpected answers: page {page.status_code}, poll {poll.status_code}")
            if changed.status_code != 200:
                raise SystemExit(f"unexpected answer to a changed-board poll: {changed.status_code}")
            unchanged_url = f"{stack.web_url}/?v={version}"
            trivial_url = f"{stack.web_url}/healthz"
            changed_url = f"{stack.web_url}/?v=old"

            # Warm both workers up (imports, template loading, connections).
            wrk(unchanged_url, script, connections=8, seconds=2)
            wrk(changed_url, script, connections=2, seconds=2)
            print(
                f"gunicorn {args.server} worker, --workers 2, 4 page threads each; board of {args.runs} runs and {args.sandboxes} sandboxes; "
                f"wrk {args.seconds:g} s per run"
            )
            print(f"{'round':>5} {'view':<22} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'bad':>4}")
            trivial, unchanged = [], []
            for n in range(1, args.rounds + 1):
                for name, url, into in (
                    ("/healthz", trivial_url, trivial),
                    ("poll, unchanged (204)", unchanged_url, unchanged),
                ):
                    result = wrk(url, script, connections=8, seconds=args.seconds)
                    into.append(result)
                    print(
                        f"{n:>5} {name:<22} {result['rps']:>8.0f} {result['p50']:>7.2f} "
                        f"{result['p99']:>7.2f} {result['bad']:>4}",
                        flush=True,
                    )
            from dashboard.models import DisplayToken

            _, display = DisplayToken.issue("serving-bench")
            kiosk = f"/kiosk/{display}/"
            changed_runs: dict[str, dict[str, float]] = {}
            for name, every_row, path in (
                ("one run changed", False, "/"),
                ("every run changed", True, "/"),
                ("kiosk, one changed", False, kiosk),
            ):
                changed_runs[name] = changed_polls(stack, cookies, args, every_row=every_row, path=path)
                result = changed_runs[name]
                print(
                    f"{'':>5} {name:<22} {'':>8} {result['p50']:>7.2f} {result['p99']:>7.2f} "
                    f"{int(result['bad']):>4}   (changed board, {args.changes} polls one at a time, "
                    f"{len(changed.content) / 1000:.0f} KB fragment)",
                    flush=True,
                )
        finally:
            stop.set()

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    print(f"\n{datetime.now():%Y-%m-%d %H:%M}  medians over {args.rounds} rounds, 8 connections")
    print(
        f"unchanged poll / healthz: throughput {median(unchanged, 'rps') / median(trivial, 'rps'):.2f} "
        f"(target >= 0.8); latency healthz/poll p50 {median(trivial, 'p50') / median(unchanged, 'p50'):.2f}, "
        f"p99 {median(trivial, 'p99') / median(unchanged, 'p99'):.2f} (target >= 0.8)"
    )
    for name, result in changed_runs.items():
        print(
            f"changed board ({args.runs} runs, {args.sandboxes} sandboxes, {name}): "
            f"p50 {result['p50']:.1f} ms (target <= 20), p99 {result['p99']:.1f} ms"
        )


def changed_polls(
    stack: Stack, cookies: dict[str, str], args: argparse.Namespace, *, every_row: bool, path: str = "/"
) -> dict[str, float]:
    """Write a new board, then poll ``path`` with the old version; ``args.changes`` times. Latency in ms."""
    from dashboard.polling.compose import board_publish

    latencies: list[float] = []
    bad = 0
    with httpx.Client(base_url=stack.web_url, cookies=cookies, timeout=10) as client:
        for seq in range(1, args.changes + 1):
            board = synthetic_board(args.runs, args.sandboxes, now=time.time(), seq=seq, every_row=every_row)
            board_publish(board)
            started = time.perf_counter()
            response = client.get(path, params={"v": "old"}, headers={"HX-Request": "true"})
            latencies.append((time.perf_counter() - started) * 1000)
            bad += response.status_code != 200 or f"(step {seq})" not in response.text
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))],
        "bad": bad,
    }


if __name__ == "__main__":
    main()
