"""Change to pixel: how soon a status change upstream shows on open walls, pushed and polled.

    .venv/bin/python bench/push.py [--pages 200] [--k 5] [--changes 20] [--modes push poll] [--idle 40]

The whole stack (Valkey, the simulator, a Celery worker and beat, gunicorn as
deployed) with time compressed as in ``bench/freshness.py`` (a 10 s rate window,
budget 50, runs refreshed every second), k streaming runs on one token, and
``--pages`` kiosk pages open in one headless Chromium at the kiosk's default
refresh (5 s). The bench flips random runs between ``streaming`` and
``pending`` with the simulator's ``set_run_status``; the change's time is the
simulator's record (``/_sim/status-changes``). Two latencies are measured in the
same run, for each change:

- snapshot: until ``snapshots.board_read()`` has it (polled every 50 ms here),
  the figure ``bench/freshness.py`` reports;
- pixel: until each page's DOM shows it (the page records the time of every
  swap that changed a run's status; ``Date.now()`` and the simulator share this
  machine's clock).

Target: pixel mean <= snapshot mean + 0.3 s with the push (mode ``push``). Mode
``poll`` takes the stream away from every page (no SharedWorker, no Worker:
the page polls only, as when its stream cannot get through) to show what the push
saves. Each page has a browser context of its own, as each wall is a browser of
its own (a browser's pages share one stream, ``static/board/stream-worker.js``).

Then, per open screen with an unchanged board (the poller stopped, so nothing
changes; ``--idle`` seconds): the web processes' CPU, and their RSS with the
pages open against before they were opened.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from freshness import BUDGET, REFRESH, WINDOW, compressed_stack
from kiosk_memory import CHROMIUM
from kiosk_memory import CHROMIUM_ARGS as KIOSK_CHROMIUM_ARGS
from playwright.sync_api import Browser, Page, sync_playwright
from soak import tree_rss_mib
from stack import Stack, percentile, proc_cpu_seconds, wait_until

# Every page is a wall in front of someone: none is throttled as a background tab; and
# pages share a few renderer processes, so 200 walls fit in memory.
CHROMIUM_ARGS = [
    *KIOSK_CHROMIUM_ARGS,
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--renderer-process-limit=8",
]
# Each page notes when a swap changed a run's status text: [run id, text, epoch ms of the
# swap, of the push that asked for it (0: none since the last swap), of the poll's request
# going out and of its answer arriving].
RECORDER = """
window.__changes = [];
(function () {
  var last = {};
  function look(record) {
    var at = Date.now(), sent = 0, answered = 0;
    var polls = performance.getEntriesByType("resource").filter(function (e) {
      return e.initiatorType === "xmlhttprequest";
    });
    if (polls.length) {
      sent = performance.timeOrigin + polls[polls.length - 1].startTime;
      answered = performance.timeOrigin + polls[polls.length - 1].responseEnd;
    }
    performance.clearResourceTimings();
    var pushed = (window.boardPage && window.boardPage.pushedAt) || 0;
    if (window.boardPage) window.boardPage.pushedAt = 0;
    document.querySelectorAll('li[id^="wall-run-"]').forEach(function (li) {
      var status = li.querySelector(".status");
      if (!status) return;
      var id = li.id.slice("wall-run-".length), text = status.textContent.trim();
      if (record && last[id] !== undefined && last[id] !== text) {
        window.__changes.push([id, text, at, pushed, sent, answered]);
      }
      last[id] = text;
    });
  }
  document.addEventListener("DOMContentLoaded", function () { look(false); });
  document.addEventListener("htmx:afterSwap", function () { look(true); });
})();
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--k", type=int, default=5, help="streaming runs on the board")
    parser.add_argument("--changes", type=int, default=20, help="status changes measured per mode")
    parser.add_argument("--modes", nargs="+", default=["push", "poll"], choices=["push", "poll"])
    parser.add_argument("--idle", type=float, default=40, help="seconds measured with an unchanged board")
    args = parser.parse_args()

    with compressed_stack("push") as stack:
        from dashboard import snapshots
        from dashboard.board.templatetags import status_word
        from dashboard.models import DisplayToken, TrackedRun

        sim = stack.start_simulator()
        stack.start_poller()
        stack.start_web()
        web_pid = stack.procs["web"].pid
        statuses: dict[str, str] = {}
        for _ in range(args.k):
            run_id = sim.create_run("bench")["runId"]
            sim.set_run_status(run_id, "streaming")
            TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND)
            statuses[run_id] = "streaming"

        def shown_on_board() -> dict[str, Any]:
            board = snapshots.board_read() or {}
            return {r["run_id"]: r.get("status") for r in board.get("runs", [])}

        wait_until(lambda: shown_on_board() == statuses, 120, "every run on the board", every=0.2)
        _, raw = DisplayToken.issue("bench-walls")
        kiosk = f"{stack.web_url}/kiosk/{raw}/"
        interval = max(REFRESH, args.k * (WINDOW + 1) / BUDGET)
        print(
            f"{args.pages} kiosk pages (refresh 5 s) in one Chromium; {args.k} streaming runs, budget "
            f"{BUDGET} per {WINDOW} s, runs refreshed every {REFRESH} s; {args.changes} changes per mode",
            flush=True,
        )
        print(
            f"{'mode':>5} {'snapshot mean':>13} {'pixel mean':>10} {'pixel p95':>9} {'pixel - snapshot':>16} "
            f"{'n changes':>9} {'n shown':>8} {'missed':>6}",
            flush=True,
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            # One wall first, so that the web processes have loaded what every page needs.
            (warm,) = open_walls(browser, kiosk, 1, push=True)
            warm.wait_for_function("() => window.boardPage.streamState() === 'open'")
            warm.context.close()
            rss_before = tree_rss_mib(web_pid)
            for mode in args.modes:
                pages = open_walls(browser, kiosk, args.pages, push=mode == "push")
                if mode == "push":
                    wait_until(
                        lambda pages=pages: all(
                            p.evaluate("window.boardPage.streamState()") == "open" for p in pages
                        ),
                        120,
                        "every page's stream open",
                        every=1,
                    )
                    rss_open = tree_rss_mib(web_pid)
                snap, pixel, missed = measure(
                    sim, pages, statuses, shown_on_board, args.changes, interval, status_word
                )
                print(
                    f"{mode:>5} {statistics.mean(snap):>12.2f}s {statistics.mean(pixel):>9.2f}s "
                    f"{percentile(pixel, 95):>8.2f}s {statistics.mean(pixel) - statistics.mean(snap):>15.2f}s "
                    f"{len(snap):>9} {len(pixel):>8} {missed:>6}",
                    flush=True,
                )
                if mode != args.modes[-1] or "push" not in args.modes:
                    for page in pages:
                        page.context.close()
            if "push" in args.modes:
                # The last mode's pages are still open; an unchanged board from here on.
                if args.modes[-1] != "push":
                    pages = open_walls(browser, kiosk, args.pages, push=True)
                stack.stop("beat")
                stack.stop("worker0")
                time.sleep(10)  # let the last composition reach every page
                cpu0, browser0 = web_cpu(stack), browser_cpu()
                time.sleep(args.idle)
                cpu_open = (web_cpu(stack) - cpu0) / args.idle * 60
                browser_open = (browser_cpu() - browser0) / args.idle * 60
                for page in pages:
                    page.context.close()
                time.sleep(5)
                cpu0 = web_cpu(stack)
                time.sleep(args.idle)
                cpu_none = (web_cpu(stack) - cpu0) / args.idle * 60
                print(
                    f"\nunchanged board, {args.pages} pages open: web CPU {cpu_open:.2f} s per minute "
                    f"(none open: {cpu_none:.2f}), {(cpu_open - cpu_none) / args.pages * 1000:.1f} ms per "
                    f"screen per minute; web RSS {rss_before:.0f} MiB before the pages, {rss_open:.0f} MiB "
                    f"with their streams open: {(rss_open - rss_before) * 1024 / args.pages:.0f} KiB per screen; "
                    f"the browser's CPU {browser_open:.1f} s per minute ({browser_open / args.pages * 1000:.0f} ms "
                    "per page per minute)",
                    flush=True,
                )
            browser.close()
        TrackedRun.objects.all().delete()
    print(f"\n{datetime.now():%Y-%m-%d %H:%M}")


def web_cpu(stack: Stack) -> float:
    from soak import children

    pid = stack.procs["web"].pid
    return proc_cpu_seconds(pid) + sum(proc_cpu_seconds(c) for c in children(pid))


def browser_cpu() -> float:
    """CPU seconds so far of every Chromium process under this one (Playwright's browser and its renderers)."""
    from soak import children

    total, todo = 0.0, [os.getpid()]
    while todo:
        pid = todo.pop()
        todo += children(pid)
        try:
            if Path(f"/proc/{pid}/comm").read_text().startswith("chrom"):
                total += proc_cpu_seconds(pid)
        except OSError:
            pass
    return total


def open_walls(browser: Browser, url: str, count: int, *, push: bool) -> list[Page]:
    pages = []
    for _ in range(count):
        context = browser.new_context(viewport={"width": 1920, "height": 1080})
        context.add_init_script(RECORDER)
        if not push:
            # A browser the stream cannot reach: the page polls only.
            context.add_init_script("delete window.SharedWorker; delete window.Worker;")
        page = context.new_page()
        page.goto(url, wait_until="domcontentloaded")
        pages.append(page)
    return pages


def measure(
    sim: Any,
    pages: list[Page],
    statuses: dict[str, str],
    shown_on_board: Any,
    changes: int,
    interval: float,
    status_word: Any,
) -> tuple[list[float], list[float], int]:
    """Make ``changes`` status changes; the snapshot delays, the pixel delays (every page), pages that missed one."""
    for page in pages:
        page.evaluate("window.__changes = []")
    change_seq = max([c["seq"] for c in sim.status_changes(since=0)] or [0])
    pending: dict[str, str] = {}
    eligible_at = {run_id: time.time() + random.uniform(0, interval) for run_id in statuses}
    snapshot_seen: dict[str, list[float]] = {run_id: [] for run_id in statuses}
    started = 0
    deadline = time.time() + 600
    while started < changes or pending:
        now = time.time()
        ready = [r for r, at in eligible_at.items() if at <= now and r not in pending]
        if started < changes and ready:
            run_id = random.choice(ready)
            target = "pending" if statuses[run_id] == "streaming" else "streaming"
            sim.set_run_status(run_id, target)
            statuses[run_id] = target
            pending[run_id] = target
            started += 1
        shown = shown_on_board()
        now = time.time()
        for run_id, target in list(pending.items()):
            if shown.get(run_id) == target:
                snapshot_seen[run_id].append(now)
                del pending[run_id]
                # The next change once the pages have had time to show this one.
                eligible_at[run_id] = now + 1 + random.uniform(0, interval)
        if time.time() > deadline:
            raise SystemExit(f"{len(pending)} changes never reached the board")
        time.sleep(0.05)
    time.sleep(8)  # longer than a poll interval: every page has had its chance
    made = sorted(
        ((c["run_id"], c["status"], c["time"]) for c in sim.status_changes(since=change_seq)),
        key=lambda c: c[2],
    )
    snap: list[float] = []
    for run_id, seen in snapshot_seen.items():
        times = [t for r, _, t in made if r == run_id]
        snap += [s - t for t, s in zip(times, seen, strict=True)]
    pixel: list[float] = []
    parts: dict[str, list[float]] = {"pushed": [], "answered": [], "swapped": []}
    missed = 0
    for page in pages:
        recorded = page.evaluate("window.__changes")
        for run_id, status, at in made:
            word = status_word(status)
            shown = [r for r in recorded if r[0] == run_id and word in r[1] and r[2] / 1000 >= at]
            if not shown:
                missed += 1
                continue
            _, _, swapped, pushed, sent, answered = min(shown, key=lambda r: r[2])
            pixel.append(swapped / 1000 - at)
            if pushed:
                # Where the time went: the push reaching the page, its poll, the swap.
                parts["pushed"].append(pushed / 1000 - at)
                parts["answered"].append((answered - max(sent, pushed)) / 1000)
                parts["swapped"].append((swapped - answered) / 1000)
    if parts["pushed"]:
        heard, answered, swapped = (statistics.mean(v) for v in parts.values())
        print(
            f"       (pushed: the push heard {heard:.2f}s after the change, its poll answered "
            f"{answered:.2f}s later, the swap {swapped:.2f}s after that)",
            flush=True,
        )
    return snap, pixel, missed


if __name__ == "__main__":
    main()
