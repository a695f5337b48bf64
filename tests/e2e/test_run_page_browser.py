"""The live run page in real headless Chromium, fed by a real poller reading the simulator."""

from __future__ import annotations

import pytest
import redis
from playwright.sync_api import Page

from dashboard import snapshots
from dashboard.models import TrackedRun
from dashboard.simulator.control import SimulatorControl
from tests.pollers import Pollers
from tests.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker]

# One refresh of the chain: the poller refetches an active run every second (plus a 1 s
# tick and the compose debounce), the page polls every second; 5 s more for a loaded machine.
ONE_REFRESH = 1 + 1 + 0.25 + 1 + 5


def test_an_open_run_page_follows_its_run_from_pending_to_success_and_ends_final(
    signed_in: Page, board_server: str, sim: SimulatorControl, pollers: Pollers, redis_db: redis.Redis
) -> None:
    page = signed_in
    run_id = str(sim.create_run("demo")["runId"])
    TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND)
    group = pollers.ensure({"BOARD_RUN_REFRESH_SECONDS": "1"})
    group.wait_ticking(redis_db)
    wait_for(
        lambda: snapshots.run_read(run_id), timeout=30, what=f"the run's first fetch\n{group.log_tail()}"
    )

    page.goto(f"{board_server}/runs/{run_id}/")
    page.evaluate("window.__sameDocument = true")

    def status() -> str:
        return (page.text_content("#run-status") or "").strip()

    assert "pending" in status()
    assert page.locator("#run-final").count() == 0

    sim.set_run_status(run_id, "streaming")
    wait_for(lambda: "streaming" in status(), timeout=ONE_REFRESH, what="the page to say streaming")
    assert page.locator("#run-final").count() == 0
    wait_for(
        lambda: page.locator("#run-events li.event").count() >= 5,
        timeout=ONE_REFRESH,
        what="the streaming events on the page",
    )
    newest = page.locator("#run-events li.event").first.get_attribute("id")

    sim.set_run_status(run_id, "success")
    wait_for(lambda: "success" in status(), timeout=ONE_REFRESH, what="the page to say success")
    final = wait_for(
        lambda: page.text_content("#run-final") if page.locator("#run-final").count() else None,
        timeout=ONE_REFRESH,
        what="the page to say final",
    )
    assert "final · ended" in final
    assert "STALE" not in (page.text_content("#run-summary") or "")
    wait_for(
        lambda: "Pull request" in (page.text_content("#run-delivery") or ""),
        timeout=ONE_REFRESH,
        what="the pull request link",
    )
    # Newest first: the finished event is on top, the streaming ones below it, and the new ones flashed.
    first = page.locator("#run-events li.event").first
    assert "finished" in (first.text_content() or "")
    # The highlight is set once the swap settles, a moment after the new rows are in.
    wait_for(
        lambda: first.get_attribute("data-flash") in ("a", "b"),
        timeout=ONE_REFRESH,
        what="the newest event to be highlighted",
    )
    assert page.locator(f"#run-events li.event#{newest}").count() == 1

    assert page.evaluate("window.__sameDocument") is True, "every change came without a reload"
    assert page.evaluate("window.boardPage.swaps") >= 2
