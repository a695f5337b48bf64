"""The trends page in real headless Chromium, in the light and the dark theme."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page

from dashboard.models import RunSummary

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_trends_render_with_no_console_errors_in_either_theme(
    signed_in: Page, board_server: str, scheme: str
) -> None:
    now = timezone.now()
    for n, status in enumerate(["success", "success", "failed", "cancelled", "success"]):
        RunSummary.objects.create(
            run_id=uuid.uuid4(),
            source="ada",
            repo_name="acme/web",
            status=status,
            created_at=now - timedelta(days=n, minutes=10),
            finished_at=now - timedelta(days=n),
            duration_seconds=600,
        )
    page = signed_in
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    page.emulate_media(color_scheme=scheme)
    page.goto(board_server + "/trends/?days=7")
    chart = page.locator("#trend-runs svg.chart")
    assert chart.is_visible()
    box = chart.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 100
    bars = page.locator("#trend-runs rect")
    assert bars.count() == 5
    fill = page.evaluate("getComputedStyle(document.querySelector('#trend-runs rect.seg-success')).fill")
    background = page.evaluate(
        "getComputedStyle(document.querySelector('#trend-runs svg.chart')).backgroundColor"
    )
    assert fill != background, "the bars stand out from the chart's background"
    assert console == []
