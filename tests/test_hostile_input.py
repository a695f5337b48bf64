"""Hostile strings in every input the board accepts: the track form, the overview's filters,
the kiosk's URL parameters, the ingest endpoint and ``manage.py track``.

Each bad input is answered with one sentence and changes nothing (no run
tracked, no filter applied that was not asked for); nothing comes back as
markup. The same corpus in a real browser: tests/e2e/test_hostile_browser.py.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from uuid import UUID

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import Settings

from dashboard.models import DisplayToken, TrackedRun
from tests import board_data
from tests.board_data import RUN_ACTIVE, RUN_DONE, RUN_FAILED
from tests.hostile import CORPUS, HUGE, assert_one_sentence, injected_markup
from tests.test_commands import run_command

KEPT = "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d"
NEW = "3f2b8c1e-5d4a-4b6c-9e8f-0a1b2c3d4e5f"
INGEST_TOKEN = "ingest-secret-for-tests-0123456789"

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(settings: Settings, valkey_server: str, redis_db: redis.Redis) -> Iterator[redis.Redis]:
    settings.REDIS_URL = valkey_server
    board_data.publish(board_data.board())
    yield redis_db


@pytest.fixture
def browser(client: Client) -> Client:
    client.force_login(User.objects.create_user("ada"))  # no password: no hashing per test
    return client


@pytest.fixture
def tracked() -> list[UUID]:
    """One run tracked before the hostile input arrives; it must be all there is afterwards."""
    TrackedRun.objects.create(run_id=KEPT, via=TrackedRun.Via.COMMAND)
    return [UUID(KEPT)]


def tracked_now() -> list[UUID]:
    return list(TrackedRun.objects.values_list("run_id", flat=True))


def alerts(page: str) -> list[str]:
    """The error sentences a page shows (``role="alert"`` form errors), as text."""
    return [html.unescape(m) for m in re.findall(r'<p class="form-error" role="alert">(.*?)</p>', page, re.S)]


def poll_url(page: str) -> str:
    match = re.search(r'id="board-poll" hx-get="([^"]*)"', page)
    assert match, "the page polls"
    return html.unescape(match.group(1))


@pytest.mark.parametrize("text", CORPUS, ids=range(len(CORPUS)))
def test_track_form_answers_hostile_input_in_one_sentence(
    store: redis.Redis, browser: Client, tracked: list[UUID], text: str
) -> None:
    response = browser.post("/track/", {"run": text})

    assert response.status_code == 400
    page = response.content.decode()
    (message,) = alerts(page)
    assert_one_sentence(message)
    assert message.endswith("paste the UUID from `mogplex run --json` (its runId) or the run's web address.")
    assert injected_markup(page) == []
    assert tracked_now() == tracked


def test_a_too_long_or_null_pasted_run_says_what_to_paste(store: redis.Redis, browser: Client) -> None:
    long = alerts(browser.post("/track/", {"run": "W" * HUGE}).content.decode())
    assert long == [
        "That is 100000 characters, too long for a run id or run URL; paste the UUID from "
        "`mogplex run --json` (its runId) or the run's web address."
    ]
    null = alerts(browser.post("/track/", {"run": "run\x00id"}).content.decode())
    assert null[0].startswith("That text holds a null character, so it is not a run id;")


@pytest.mark.parametrize("text", CORPUS, ids=range(len(CORPUS)))
def test_overview_filters_refuse_hostile_values_one_by_one(
    store: redis.Redis, browser: Client, text: str
) -> None:
    response = browser.get("/", {"repo": text, "status": text, "q": text, "sort": text, "tz": text})

    assert response.status_code == 200
    page = response.content.decode()
    assert injected_markup(page) == []
    messages = alerts(page)
    for message in messages:
        assert_one_sentence(message)
    # Sort and time zone take none of these (a blank zone means the default);
    # repo, status and search take what fits.
    refused = len(text) > 200 or "\x00" in text
    assert len(messages) == 1 + bool(text.strip()) + 3 * refused
    assert any("sort order is not offered" in m for m in messages)
    assert any("is not a time zone" in m for m in messages) == bool(text.strip())
    # The page polls for what it shows: never a refused value (and never 100 kB of URL).
    assert len(poll_url(page)) < 2000
    assert "sort=" not in poll_url(page)


def test_a_bad_filter_is_left_out_and_the_others_still_apply(store: redis.Redis, browser: Client) -> None:
    page = browser.get("/", {"status": "failed", "q": "W" * HUGE, "sort": "<script>"}).content.decode()

    assert alerts(page) == [
        "The search is longer than 200 characters; search for a shorter part of a repo, branch or message.",
        "That sort order is not offered; choose newest tracked first, recently updated first, repository or status.",
    ]
    assert f'id="run-{RUN_FAILED}"' in page
    assert f'id="run-{RUN_ACTIVE}"' not in page and f'id="run-{RUN_DONE}"' not in page
    assert poll_url(page) == "/?status=failed"


def test_a_bad_time_zone_keeps_the_one_chosen_before(store: redis.Redis, browser: Client) -> None:
    browser.get("/", {"tz": "Asia/Tokyo"})

    page = browser.get("/", {"tz": "Asia/Tokyo\x00<script>"}).content.decode()

    assert alerts(page) == [
        "'Asia/Tokyo\\x00<script>' is not a time zone, so times stay in Asia/Tokyo; use a name like Europe/Paris."
    ]
    assert "times in Asia/Tokyo" in browser.get("/").content.decode()


@pytest.mark.parametrize("text", CORPUS, ids=range(len(CORPUS)))
def test_kiosk_parameters_refuse_hostile_values_in_one_sentence_each(
    store: redis.Redis, client: Client, text: str
) -> None:
    token, raw = DisplayToken.issue("hostile-wall")
    url = f"/kiosk/{raw}/"

    refused = client.get(url, {"refresh": text, "theme": text, "tz": text, "panels": text})
    assert refused.status_code == 400
    page = refused.content.decode()
    assert injected_markup(page) == []
    problems = [html.unescape(p) for p in re.findall(r"<li>(.*?)</li>", page, re.S)]
    # Blank values mean "the default", except for the time zone.
    expected = ["panels", "refresh", "theme", "tz"] if text.strip() else ["tz"]
    assert [p.split(":")[0] for p in problems] == expected
    for problem in problems:
        assert_one_sentence(problem)

    # Repos are names to match, so anything goes: it matches nothing and shows as text.
    wall = client.get(url, {"repos": text})
    assert wall.status_code == 200
    assert injected_markup(wall.content.decode()) == []
    assert (f'id="wall-run-{RUN_FAILED}"' in wall.content.decode()) == (not text.strip()), "blank: every repo"
    token.refresh_from_db()
    assert token.revoked_at is None


@pytest.mark.parametrize("text", CORPUS, ids=range(len(CORPUS)))
def test_ingest_refuses_hostile_bodies_in_one_sentence_and_tracks_nothing(
    client: Client, settings: Settings, tracked: list[UUID], text: str
) -> None:
    settings.BOARD_INGEST_TOKEN = INGEST_TOKEN
    bodies = [
        text,
        json.dumps({"runId": text}),
        json.dumps({"run_ids": [NEW, text]}),
        json.dumps({"runId": NEW}) + "\n" + json.dumps({"ok": True, "data": {"runId": text}}),
    ]
    for body in bodies:
        response = client.post(
            "/ingest/runs",
            body,
            content_type="application/json",
            headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
        )
        assert response.status_code == (413 if len(body.encode()) > 64 * 1024 else 400), body[:80]
        assert response["Content-Type"] == "application/json"
        assert_one_sentence(response.json()["error"])
        assert tracked_now() == tracked


@pytest.mark.parametrize("text", [t for t in CORPUS if len(t) < 1000], ids=lambda t: repr(t[:12]))
def test_ingest_with_a_hostile_token_is_the_same_401_and_sets_no_header(
    client: Client, settings: Settings, tracked: list[UUID], text: str
) -> None:
    settings.BOARD_INGEST_TOKEN = INGEST_TOKEN
    response = client.post(
        "/ingest/runs",
        json.dumps({"runId": RUN_ACTIVE}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {text}"},
    )
    assert response.status_code == 401
    assert response.json() == {"error": "Send the board's ingest token as 'Authorization: Bearer <token>'."}
    assert "Set-Cookie" not in response.headers and "pwned" not in str(response.headers)
    assert tracked_now() == tracked


@pytest.mark.parametrize("text", CORPUS, ids=range(len(CORPUS)))
def test_track_command_refuses_hostile_input_in_one_sentence(tracked: list[UUID], text: str) -> None:
    for args, stdin in (((text,), None), (("-",), text), ((NEW, text), None)):
        code, out, err = run_command("track", *args, stdin=stdin)
        assert code == 2
        assert out == ""
        assert_one_sentence(err)
        assert "\x1b" not in err and "\x00" not in err, "no control character reaches the terminal"
        assert tracked_now() == tracked
