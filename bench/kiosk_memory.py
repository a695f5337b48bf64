"""Does a wall screen leak? The kiosk page in headless Chromium, with a board that changes every second.

Starts Valkey and gunicorn as deployed, issues a display token, and opens the
kiosk page at its fastest refresh (``?refresh=2``, the kiosk's minimum) while
the bench writes a new board version (20 runs, 10 sandboxes, one run's latest
event changing) every second, so every poll swaps the wall. After a warm-up it
measures the JS heap (CDP ``Runtime.getHeapUsage`` right after
``HeapProfiler.collectGarbage``) and DOM nodes (CDP ``Memory.getDOMCounters``,
which counts detached nodes too, and the live ``document`` count), once a
minute and at the end. Target: heap growth <= 1 MB per 30 minutes.

    .venv/bin/python bench/kiosk_memory.py [--minutes 30]
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import datetime
from typing import Any

from stack import Stack, synthetic_board

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WARMUP_SECONDS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sandboxes", type=int, default=10)
    args = parser.parse_args()

    with Stack("kiosk") as stack:
        from dashboard import snapshots
        from dashboard.models import DisplayToken
        from dashboard.polling.compose import board_publish

        stop = threading.Event()
        writes = [0]

        def writer() -> None:
            while not stop.is_set():
                now = time.time()
                writes[0] += 1
                board_publish(synthetic_board(args.runs, args.sandboxes, now=now, seq=writes[0]))
                snapshots.heartbeat_write(now)
                stop.wait(1.0)

        threading.Thread(target=writer, daemon=True).start()
        stack.start_web()
        _, raw = DisplayToken.issue("bench-wall")
        url = f"{stack.web_url}/kiosk/{raw}/?refresh=2"

        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_context(viewport={"width": 1920, "height": 1080}).new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(url)
                cdp = page.context.new_cdp_session(page)

                def measure() -> dict[str, Any]:
                    # A sample taken while a swap is in flight sees the old and the new
                    # board alive at once; the fewest nodes of three is between swaps.
                    samples = []
                    for _ in range(3):
                        samples.append(sample())
                        page.wait_for_timeout(400)
                    return min(samples, key=lambda m: (m["nodes"], m["heap_mb"]))

                def sample() -> dict[str, Any]:
                    cdp.send("HeapProfiler.collectGarbage")
                    heap = cdp.send("Runtime.getHeapUsage")
                    counters = cdp.send("Memory.getDOMCounters")
                    live = page.evaluate("document.getElementsByTagName('*').length")
                    swaps = page.evaluate("window.boardPage ? window.boardPage.swaps : -1")
                    return {
                        "heap_mb": heap["usedSize"] / 1e6,
                        "nodes": counters["nodes"],
                        "listeners": counters["jsEventListeners"],
                        "live": live,
                        "swaps": swaps,
                    }

                def show(label: str, m: dict[str, Any]) -> None:
                    print(
                        f"{label:>8} heap {m['heap_mb']:7.3f} MB  DOM nodes {m['nodes']:6d} "
                        f"(live elements {m['live']:5d})  listeners {m['listeners']:5d}  swaps {m['swaps']}",
                        flush=True,
                    )

                page.wait_for_timeout(WARMUP_SECONDS * 1000)
                start = measure()
                started = time.monotonic()
                show("start", start)
                end_at = started + args.minutes * 60
                while (left := end_at - time.monotonic()) > 0:
                    page.wait_for_timeout(min(60.0, left) * 1000)
                    if end_at - time.monotonic() > 1:
                        show(f"{(time.monotonic() - started) / 60:.0f} min", measure())
                end = measure()
                minutes = (time.monotonic() - started) / 60
                show("end", end)
                browser.close()
        finally:
            stop.set()

    growth = end["heap_mb"] - start["heap_mb"]
    swaps = end["swaps"] - start["swaps"]
    print(
        f"\n{datetime.now():%Y-%m-%d %H:%M}  {minutes:.1f} min, {swaps} swaps "
        f"({writes[0]} board versions written), page errors: {len(errors)}"
    )
    print(f"JS heap:   {start['heap_mb']:.3f} -> {end['heap_mb']:.3f} MB, growth {growth * 1000:+.0f} KB")
    print(f"           = {growth * 30 / minutes * 1000:+.0f} KB per 30 min (target <= +1000 KB)")
    print(f"DOM nodes: {start['nodes']} -> {end['nodes']} (live elements {start['live']} -> {end['live']})")
    print(f"listeners: {start['listeners']} -> {end['listeners']}")


if __name__ == "__main__":
    main()
