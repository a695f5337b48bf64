"""Account readiness per source, against the simulator: each GitHub state with Mogplex's label,
detail and next action, platform access, compute, usable models, the seed's advice when no model
or no repo is usable, and ``{"user": null}`` read as "readiness unknown" keeping the last state.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
import time_machine
from django.test import Client

from dashboard import snapshots
from dashboard.models import DisplayToken
from dashboard.polling.compose import NO_MODEL_ADVICE, NO_REPO_ADVICE, board_build, board_publish
from dashboard.polling.tasks import account_fetch, repos_fetch
from dashboard.simulator.control import SimulatorControl
from tests.pages import page_text


@pytest.fixture
def browser(demo_browser: Client, settings: Any) -> Client:
    settings.MOGPLEX_APP_URL = "https://app.mogplex.example"
    return demo_browser


def _check() -> None:
    snapshots.heartbeat_write(time.time())
    repos_fetch("demo")
    account_fetch("demo")
    board_publish(board_build())


def _readiness(page: str) -> str:
    return page.split('id="readiness-demo"')[1].split(">", 1)[1].split("</tr>")[0]


def _wall_source(wall: str) -> str:
    return page_text(wall.split('id="wall-sources"')[1].split("</section>")[0])


STATES = {
    "disconnected": ("Not connected", "Install the GitHub App", "Install GitHub App"),
    "oauth_connected": ("OAuth only", "triggers and automation require the GitHub App", "Install GitHub App"),
    "app_install_pending": (
        "Install pending",
        "Finish the GitHub App install",
        "Complete GitHub App install",
    ),
    "app_installed": ("App installed", "no covered repositories are synced", "Open Projects"),
    "app_installed_with_synced_repos": ("Ready", "GitHub App coverage is active", None),
}


@pytest.mark.django_db
@pytest.mark.parametrize("state", list(STATES))
def test_each_github_state_shows_mogplexs_label_detail_and_next_action(
    browser: Client, sim: SimulatorControl, state: str
) -> None:
    sim.set_account("demo", github_state=state)
    _check()
    page = browser.get("/").content.decode()
    label, detail, action = STATES[state]
    cell = _readiness(page)
    text = page_text(cell)
    assert f"GitHub: {label} — " in text and detail in text
    links = re.findall(r'<a class="readiness-action" href="([^"]+)"[^>]*>([^<]+)</a>', cell)
    if action is None:
        assert links == []
    else:
        assert len(links) == 1 and links[0][1] == action
        assert links[0][0].startswith("https://app.mogplex.example/")
    assert "platform AI allowed, platform sandboxes allowed" in text
    assert "compute: Platform ready (ready)" in text
    assert re.search(r"\d+ usable models?", text)
    assert "last checked" in text
    # No repo appears until GitHub is connected and synced: the advice says what to fix.
    repos = snapshots.repos_read("demo")
    assert repos is not None
    assert (NO_REPO_ADVICE in text) == (repos["repos"] == [])
    if state in ("disconnected", "app_install_pending"):
        assert NO_REPO_ADVICE in text
    _, raw = DisplayToken.issue(f"lobby-{uuid.uuid4()}")
    wall = Client().get(f"/kiosk/{raw}/").content.decode()
    assert label in _wall_source(wall)


@pytest.mark.django_db
def test_no_usable_model_and_no_platform_access_say_what_to_fix(
    browser: Client, sim: SimulatorControl
) -> None:
    sim.set_account(
        "demo",
        models_usable=False,
        allow_platform_ai=False,
        allow_platform_sandbox=False,
        vercel_platform_state="not_configured",
    )
    _check()
    text = page_text(_readiness(browser.get("/").content.decode()))
    assert "0 usable models" in text
    assert NO_MODEL_ADVICE in text
    assert "platform AI not allowed, platform sandboxes not allowed" in text
    assert "compute: Platform not configured (not_configured)" in text


@pytest.mark.django_db
def test_user_null_is_readiness_unknown_keeping_the_last_known_state_with_its_age(
    browser: Client, sim: SimulatorControl
) -> None:
    sim.set_account("demo", github_state="app_installed")
    _check()
    known_at = time.time()
    sim.set_account("demo", user_null=True)
    with time_machine.travel(known_at + 40 * 60, tick=False):
        account_fetch("demo")
        board_publish(board_build())
        page = browser.get("/").content.decode()
        _, raw = DisplayToken.issue(f"lobby-{uuid.uuid4()}")
        wall = Client().get(f"/kiosk/{raw}/").content.decode()
    text = page_text(_readiness(page))
    assert text.startswith("? readiness unknown")
    assert "not proof of a bad token" in text
    assert re.search(r"last known 40m \d+s ago: GitHub: App installed", text), text
    assert "Not connected" not in text and "not connected" not in text.replace("not proof", "")
    assert "last checked 0s ago" in text or "last checked just now" in text
    assert "readiness unknown (was App installed)" in _wall_source(wall)


@pytest.mark.django_db
def test_user_null_before_anything_was_known_says_nothing_known(
    browser: Client, sim: SimulatorControl
) -> None:
    sim.set_account("demo", user_null=True)
    _check()
    text = page_text(_readiness(browser.get("/").content.decode()))
    assert "readiness unknown" in text and "nothing known yet" in text
    assert "GitHub:" not in text and NO_REPO_ADVICE not in text
