"""The team dashboard through Django's test client, over snapshots in a real Valkey."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client

from dashboard import snapshots
from dashboard.models import TrackedRun
from tests import board_data
from tests.board_data import RUN_ACTIVE, RUN_DONE, RUN_FAILED, SANDBOX_UP
from tests.hostile import injected_markup
from tests.waiting import wait_for

HTMX = {"HTTP_HX_REQUEST": "true"}
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">'


@pytest.fixture
def store(settings: Any, valkey_server: str, redis_db: redis.Redis) -> Iterator[redis.Redis]:
    settings.REDIS_URL = valkey_server
    yield redis_db


@pytest.fixture
def user(db: None) -> User:
    return User.objects.create_user("ada", password="correct horse battery")


@pytest.fixture
def browser(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def page_version(html: str) -> str:
    match = re.search(r'id="board-version" name="v" value="([^"]+)"', html)
    assert match, "the page carries the version it shows"
    return match.group(1)


@pytest.mark.parametrize(
    "path",
    ["/", f"/runs/{RUN_ACTIVE}/", f"/sandboxes/{SANDBOX_UP}/", f"/sandboxes/{SANDBOX_UP}/logs/"],
)
def test_pages_require_login(store: redis.Redis, client: Client, db: None, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_signed_out_poll_is_sent_to_the_login_page(store: redis.Redis, client: Client, db: None) -> None:
    response = client.get("/", {"v": "x.ffff.0"}, **HTMX)
    assert response.status_code == 204
    assert response["HX-Redirect"].startswith("/accounts/login/?next=/")


def test_login_page_and_board_json_without_login(client: Client, db: None, store: redis.Redis) -> None:
    assert client.get("/accounts/login/").status_code == 200
    assert client.get("/api/board.json").status_code == 401


def test_overview_shows_runs_sandboxes_and_sources(store: redis.Redis, browser: Client) -> None:
    board_data.publish(board_data.board())
    response = browser.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="run-{RUN_ACTIVE}"' in html
    assert f'id="run-{RUN_FAILED}"' in html
    assert f'id="sandbox-{SANDBOX_UP}"' in html
    assert "tests failed" in html
    assert "Fetching normally." in html
    assert "7 / 50 per 60 s" in html
    assert 'href="https://preview.example.com/app"' in html
    assert 'href="https://github.com/acme/web/pull/7"' in html
    assert "STALE" not in html
    assert "<time " in html and 'title="' in html
    assert html.index(f"run-{RUN_FAILED}") < html.index(f"run-{RUN_DONE}"), "failures come first"
    assert response["X-Board-App-Version"]


def test_unchanged_version_answers_204_and_changed_one_the_fragment(
    store: redis.Redis, browser: Client
) -> None:
    now = time.time()
    board_data.publish(board_data.board(now))
    version = page_version(browser.get("/").content.decode())

    unchanged = browser.get("/", {"v": version}, **HTMX)
    assert unchanged.status_code == 204
    assert unchanged.content == b""

    changed = board_data.board(now)
    changed["runs"][0]["latest_event"]["message"] = "deploying"
    board_data.publish(changed)
    fragment = browser.get("/", {"v": version}, **HTMX)
    assert fragment.status_code == 200
    html = fragment.content.decode()
    assert "deploying" in html
    assert html.lstrip().startswith('<div id="board"'), "only the board region, not the whole page"
    assert "<html" not in html
    assert page_version(html) != version


def refetched(composed: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The same board, every datum fetched ``seconds`` later (what a poller tick with no news writes)."""
    board = json.loads(json.dumps(composed))
    for run in board["runs"]:
        run["fetched_at"] += seconds
    for source in board["sources"]:
        source["last_success_at"] += seconds
    board["sandboxes_fetched_at"] = {k: v + seconds for k, v in board["sandboxes_fetched_at"].items()}
    board["composed_at"] += seconds
    return board


def test_an_unchanged_poll_says_when_the_data_was_last_fetched(store: redis.Redis, browser: Client) -> None:
    now = time.time()
    first = board_data.board(now - 40)
    version = board_data.publish(first)
    page = browser.get("/")
    assert "updated 42s ago" in page.content.decode(), "the runs were fetched 42 s ago"

    # A tick with no news: same board version, every datum fetched again.
    assert board_data.publish(refetched(first, 39)) == version
    unchanged = browser.get("/", {"v": page_version(page.content.decode())}, **HTMX)
    assert unchanged.status_code == 204
    fetched = json.loads(unchanged["X-Board-Fetched"])
    assert fetched == {
        "runs": pytest.approx(now - 3),
        "sandboxes": pytest.approx(now - 4),
        "sources": pytest.approx(now - 3),
        # A source is as old as its oldest live part (here its sandbox list).
        "source:demo": pytest.approx(now - 4),
    }
    assert float(unchanged["X-Board-Now"]) == pytest.approx(time.time(), abs=5)


def test_an_unchanged_poll_after_signing_out_is_sent_to_log_in(store: redis.Redis, browser: Client) -> None:
    # The unchanged answer skips the login check; it must not outlive the session.
    board_data.publish(board_data.board(time.time()))
    version = page_version(browser.get("/").content.decode())
    assert browser.get("/", {"v": version}, **HTMX).status_code == 204

    browser.logout()
    response = browser.get("/", {"v": version}, **HTMX)
    assert response["HX-Redirect"].startswith("/accounts/login/")


def test_a_version_shown_to_one_session_is_not_unchanged_for_another(
    store: redis.Redis, browser: Client, user: User
) -> None:
    board_data.publish(board_data.board(time.time()))
    version = page_version(browser.get("/").content.decode())
    other = Client()
    other.force_login(user)
    response = other.get("/", {"v": version}, **HTMX)
    assert response.status_code == 200, "another browser gets the board, checked in full"
    assert f'id="run-{RUN_ACTIVE}"' in response.content.decode()


def test_crossing_the_stale_threshold_changes_the_answer(
    store: redis.Redis, browser: Client, settings: Any
) -> None:
    settings.BOARD_STALE_SECONDS = 30
    now = time.time()
    board_data.publish(board_data.board(now))
    version = page_version(browser.get("/").content.decode())
    assert browser.get("/", {"v": version}, **HTMX).status_code == 204

    # Same content, fetched long ago: the version stays, the stale state flips.
    old = now - 600
    assert board_data.publish(board_data.board(old), heartbeat=now) == snapshots.board_version()
    response = browser.get("/", {"v": version}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "STALE · data 10m" in html
    # And the stale page is then unchanged until data comes back.
    assert browser.get("/", {"v": page_version(html)}, **HTMX).status_code == 204


def test_old_heartbeat_says_the_poller_is_the_cause(store: redis.Redis, browser: Client) -> None:
    now = time.time()
    board_data.publish(board_data.board(now), heartbeat=now - 3600)
    html = browser.get("/").content.decode()
    assert "the poller has not reported for 1h 0m" in html
    assert "The poller (Celery worker and beat)" in html


def test_source_in_error_is_named_with_its_reason(store: redis.Redis, browser: Client) -> None:
    now = time.time()
    sick = board_data.source_row(
        "team",
        now=now,
        state="unauthorized",
        message="The token for source team was rejected; replace MOGPLEX_TOKEN_TEAM.",
    )
    board_data.publish(board_data.board(now, sources=[board_data.source_row(now=now), sick]))
    html = browser.get("/").content.decode()
    assert "Source <strong>team</strong> is unauthorized: The token for source team was rejected" in html


def test_no_board_yet_says_so(store: redis.Redis, browser: Client) -> None:
    html = browser.get("/").content.decode()
    assert "No board yet" in html


def test_filters_and_search(store: redis.Redis, browser: Client) -> None:
    board_data.publish(board_data.board())
    by_repo = browser.get("/", {"repo": "acme/api"}).content.decode()
    assert f'id="run-{RUN_FAILED}"' in by_repo
    assert f'id="run-{RUN_ACTIVE}"' not in by_repo

    by_status = browser.get("/", {"status": "success"}).content.decode()
    assert f'id="run-{RUN_DONE}"' in by_status
    assert f'id="run-{RUN_FAILED}"' not in by_status

    searched = browser.get("/", {"q": "RUNNING TESTS"}).content.decode()
    assert f'id="run-{RUN_ACTIVE}"' in searched
    assert f'id="run-{RUN_FAILED}"' not in searched

    sorted_page = browser.get("/", {"sort": "repo"}).content.decode()
    assert sorted_page.index(f"run-{RUN_FAILED}") < sorted_page.index(f"run-{RUN_DONE}")


def test_time_zone_is_chosen_and_remembered(store: redis.Redis, browser: Client) -> None:
    board_data.publish(board_data.board())
    assert "times in Asia/Tokyo" in browser.get("/", {"tz": "Asia/Tokyo"}).content.decode()
    assert "times in Asia/Tokyo" in browser.get("/").content.decode()
    bad = browser.get("/", {"tz": "Mars/Olympus"}).content.decode()
    assert "is not a time zone" in bad


def test_javascript_preview_url_produces_no_link(store: redis.Redis, browser: Client) -> None:
    now = time.time()
    box = board_data.sandbox_row(SANDBOX_UP, "running", now=now, preview_url="javascript:alert(1)")
    run = board_data.run_row(RUN_DONE, "success", now=now, pr_url="JavaScript:alert(2)")
    board_data.publish(board_data.board(now, sandboxes=[box], runs=[run]))
    html = browser.get("/").content.decode()
    assert "javascript:alert" not in html.lower()
    assert injected_markup(html) == [], "the only javascript: link is the board's own bookmarklet"


def test_upstream_strings_are_escaped_everywhere(store: redis.Redis, browser: Client) -> None:
    now = time.time()
    run = board_data.run_row(
        RUN_FAILED,
        "failed",
        now=now,
        **dict.fromkeys(
            ("repo_name", "harness", "branch_base", "branch_working", "error", "repo_id"), HOSTILE
        ),
        latest_event={"type": HOSTILE, "tool_name": HOSTILE, "message": HOSTILE, "created_at": HOSTILE},
    )
    active = board_data.run_row(RUN_ACTIVE, HOSTILE, now=now, repo_name=HOSTILE, harness=HOSTILE)
    box = board_data.sandbox_row(
        SANDBOX_UP,
        HOSTILE,
        now=now,
        **dict.fromkeys(("repo_name", "base_branch", "working_branch", "preview_url", "error"), HOSTILE),
    )
    sick = board_data.source_row(HOSTILE, now=now, state=HOSTILE, message=HOSTILE)
    board_data.publish(board_data.board(now, runs=[run, active], sandboxes=[box], sources=[sick]))
    record = board_data.run_record(
        RUN_FAILED,
        run={
            "run_id": RUN_FAILED,
            "status": HOSTILE,
            "harness": HOSTILE,
            "error": HOSTILE,
            "sandbox_record_id": HOSTILE,
            "branch": {"base": HOSTILE, "working": HOSTILE},
        },
        events=[
            {
                "id": "e1",
                "type": HOSTILE,
                "tool_name": HOSTILE,
                "message": HOSTILE,
                "payload": {"x": HOSTILE},
                "created_at": HOSTILE,
            }
        ],
        pr_url="javascript:alert(1)",
    )
    snapshots.run_write(record)
    snapshots.sandbox_history_append(SANDBOX_UP, HOSTILE, seen_at=now)
    for path in ("/", f"/runs/{RUN_FAILED}/", f"/sandboxes/{SANDBOX_UP}/"):
        html = browser.get(path).content.decode()
        assert "<script>window.__pwned" not in html, path
        assert "<img src=x" not in html, path
        assert "&lt;script&gt;" in html, path
        assert "javascript:alert" not in html.lower(), path  # the bookmarklet is the only javascript: link


def test_run_page_shows_timeline_cap_note_and_links(
    store: redis.Redis, browser: Client, settings: Any
) -> None:
    settings.MOGPLEX_APP_URL = "https://app.mogplex.example"
    board_data.publish(board_data.board())
    snapshots.run_write(board_data.run_record(RUN_DONE, events=200, events_truncated=True))
    html = browser.get(f"/runs/{RUN_DONE}/").content.decode()
    assert html.count('class="event ') == 200
    assert "step 199" in html
    assert "at most 200 events" in html
    assert 'href="https://github.com/acme/web/pull/7"' in html
    assert f'href="/sandboxes/{SANDBOX_UP}/"' in html
    assert f'href="https://app.mogplex.example/runs/{RUN_DONE}"' in html
    assert "&quot;command&quot;: &quot;make test 0&quot;" in html


def test_run_page_without_cap_has_no_note(store: redis.Redis, browser: Client) -> None:
    snapshots.run_write(board_data.run_record(RUN_DONE, events=3))
    html = browser.get(f"/runs/{RUN_DONE}/").content.decode()
    assert "at most 200 events" not in html


def test_unknown_run_and_sandbox_are_404(store: redis.Redis, browser: Client) -> None:
    assert browser.get("/runs/99999999-9999-4999-8999-999999999999/").status_code == 404
    assert browser.get("/sandboxes/99999999-9999-4999-8999-999999999999/").status_code == 404
    assert browser.get("/runs/not-a-uuid/").status_code == 404


def test_sandbox_page_shows_history_and_fetches_logs_on_request(store: redis.Redis, browser: Client) -> None:
    now = time.time()
    board_data.publish(board_data.board(now))
    snapshots.sandbox_history_append(SANDBOX_UP, "creating", seen_at=now - 100)
    snapshots.sandbox_history_append(SANDBOX_UP, "running", seen_at=now - 50)
    html = browser.get(f"/sandboxes/{SANDBOX_UP}/").content.decode()
    assert html.index("running") < html.index("creating"), "newest first"
    assert "Load logs" in html
    # No snapshot yet: the view asks the poller for one fetch and keeps polling itself.
    logs = browser.get(f"/sandboxes/{SANDBOX_UP}/logs/", **HTMX).content.decode()
    assert "Fetching logs from Mogplex" in logs
    assert 'hx-trigger="load delay:1s"' in logs
    assert store.exists(f"board:sandbox-logs-requested:{SANDBOX_UP}")
    # The poller's snapshot arrives: shown, escaped, with its age.
    snapshots.sandbox_logs_write(
        SANDBOX_UP,
        {
            "sandbox_id": SANDBOX_UP,
            "source": "demo",
            "fetched_at": time.time(),
            "error_kind": None,
            "install_log": "npm ci\n<script>window.__pwned=1</script>",
            "dev_log": "",
            "lifecycle_events": [
                {"event_type": "auto_pause_queued", "decision_code": None, "created_at": None}
            ],
        },
    )
    logs = browser.get(f"/sandboxes/{SANDBOX_UP}/logs/", **HTMX).content.decode()
    assert "Fetching logs" not in logs
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in logs
    assert "<script>window.__pwned" not in logs
    assert "auto_pause_queued" in logs


def test_sandbox_logs_say_why_when_the_fetch_failed(store: redis.Redis, browser: Client) -> None:
    board_data.publish(board_data.board(time.time()))
    snapshots.sandbox_logs_write(
        SANDBOX_UP,
        {"sandbox_id": SANDBOX_UP, "source": "demo", "fetched_at": time.time(), "error_kind": "forbidden"},
    )
    logs = browser.get(f"/sandboxes/{SANDBOX_UP}/logs/", **HTMX).content.decode()
    assert "lacks the read scope that sandbox logs need" in logs


def test_board_json_matches_the_page(store: redis.Redis, browser: Client) -> None:
    board_data.publish(board_data.board())
    response = browser.get("/api/board.json")
    assert response.status_code == 200
    data = response.json()
    assert [r["run_id"] for r in data["active_runs"]] == [RUN_ACTIVE]
    assert {r["run_id"] for r in data["finished_runs"]} == {RUN_FAILED, RUN_DONE}
    assert [(i["kind"], i["id"], i["problem"]) for i in data["attention"]] == [("run", RUN_FAILED, "failed")]
    assert data["sandboxes"][0]["id"] == SANDBOX_UP
    assert data["panels"]["runs"]["stale"] is False
    assert "token" not in json.dumps(data).lower()


def test_track_form_tracks_and_redirects(store: redis.Redis, browser: Client) -> None:
    run_id = "55555555-5555-4555-8555-555555555555"
    response = browser.post("/track/", {"run": f"https://app.mogplex.example/runs/{run_id}"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert TrackedRun.objects.filter(run_id=run_id, via="form").exists()
    assert "Tracking run" in browser.get("/").content.decode()


def test_track_form_rejects_bad_input_with_a_sentence(store: redis.Redis, browser: Client) -> None:
    response = browser.post("/track/", {"run": "not a run"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'class="form-error"' in html
    assert "paste the UUID" in html
    assert not TrackedRun.objects.exists()


def test_track_form_is_csrf_protected(store: redis.Redis, user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/track/", {"run": RUN_ACTIVE}).status_code == 403


def _active_row(html: str) -> str:
    start = html.index(f'<tr id="run-{RUN_ACTIVE}"')
    return html[start : html.index("</tr>", start)]


def test_a_row_kept_between_renders_still_shows_current_ages_and_the_viewers_zone(
    store: redis.Redis, browser: Client
) -> None:
    # Rows are rendered once per content and kept ({% cached_row %}); what depends on
    # the clock or the viewer must still be computed for each request.
    board_data.publish(board_data.board(time.time()))
    first = _active_row(browser.get("/").content.decode())
    ages = re.compile(r"\d+m \d+s|\d+s")
    later = wait_for(
        lambda: (row := _active_row(browser.get("/").content.decode())) != first and row,
        timeout=5,
        what="the running time to advance on the next render of an unchanged row",
    )
    assert ages.sub("", later) == ages.sub("", first), "only the ages moved"

    tokyo = _active_row(browser.get("/", {"tz": "Asia/Tokyo"}).content.decode())
    assert "JST" in tokyo and "JST" not in first


def test_upstream_text_cannot_forge_an_age(store: redis.Redis, browser: Client) -> None:
    now = time.time()
    event = {"type": "log", "tool_name": None, "message": "<!--age 0.000-->", "created_at": None}
    board_data.publish(
        board_data.board(now, runs=[board_data.run_row(RUN_ACTIVE, "streaming", now=now, latest_event=event)])
    )
    row = _active_row(browser.get("/").content.decode())
    assert "&lt;!--age 0.000--&gt;" in row


def test_a_run_no_source_owns_is_listed_as_ended_and_does_not_age_the_panel(
    store: redis.Redis, browser: Client
) -> None:
    now = time.time()
    # Fetched long ago, then every source answered 404: the poller will not fetch it again.
    gone = board_data.run_row(RUN_ACTIVE, "", now=now, lookup="not_found", fetched_at=now - 3600)
    board_data.publish(board_data.board(now, runs=[gone, board_data.run_row(RUN_DONE, "success", now=now)]))
    html = browser.get("/").content.decode()
    finished = html[html.index('id="panel-finished"') :]
    assert f'id="run-{RUN_ACTIVE}"' in finished and "not found" in finished
    assert "No active runs" in html
    assert "STALE" not in html


# --- following a run in one click: the bookmarklet and ?run= ---------------------------


def test_the_dashboard_offers_the_bookmarklet_with_how_to_install_it(
    store: redis.Redis, browser: Client
) -> None:
    page = browser.get("/", HTTP_HOST="localhost:8000").content.decode()

    link = re.search(
        r'<a class="bookmarklet" data-bookmarklet href="([^"]+)">Track on the board</a>: ([^<]+)', page
    )
    assert link, "the bookmarklet is on the dashboard"
    assert html.unescape(link.group(1)) == (
        'javascript:void(open("http://localhost:8000/?run="+encodeURIComponent(location.href)))'
    )
    assert link.group(2).startswith("drag it to your bookmarks bar, then click it on a Mogplex run page")


def test_run_prefills_the_track_form_and_changes_nothing(store: redis.Redis, browser: Client) -> None:
    address = f"http://127.0.0.1:8765/runs/{RUN_DONE}"

    page = browser.get("/", {"run": address}).content.decode()

    assert f'value="{address}"' in page
    assert "Press Track to follow this run." in page
    assert not TrackedRun.objects.exists(), "a GET tracks nothing"
    browser.post("/track/", {"run": address})
    assert TrackedRun.objects.filter(run_id=RUN_DONE).exists()


def test_a_bad_run_prefill_says_what_is_wrong_at_once(store: redis.Redis, browser: Client) -> None:
    page = browser.get("/", {"run": "https://mogplex.com/settings"}).content.decode()

    errors = re.findall(r'<p class="form-error" role="alert">(.*?)</p>', page)
    assert [html.unescape(e) for e in errors] == [
        "'https://mogplex.com/settings' is not a Mogplex run id or run URL; paste the UUID from "
        "`mogplex run --json` (its runId) or the run's web address."
    ]
    assert "Press Track" not in page


def test_run_prefill_for_a_signed_out_person_survives_sign_in(store: redis.Redis, client: Client) -> None:
    answer = client.get("/", {"run": RUN_DONE})

    assert answer.status_code == 302
    assert "next=/%3Frun%3D" in answer["Location"]


def test_a_not_found_row_shows_its_run_id_and_what_to_do(store: redis.Redis, browser: Client) -> None:
    now = time.time()
    gone = board_data.run_row(RUN_ACTIVE, "", now=now, lookup="not_found", fetched_at=now - 3600)
    gone.update(repo_id=None, repo_name=None)
    board_data.publish(board_data.board(now, runs=[gone]))

    page = browser.get("/").content.decode()
    row = re.search(rf'<tr id="run-{RUN_ACTIVE}".*?</tr>', page, re.S)

    assert row
    text = html.unescape(re.sub(r"<[^>]+>", "", row.group(0)))
    assert f"run {RUN_ACTIVE}" in text and "(repo unknown)" not in text
    assert (
        f"No source on this board can see run {RUN_ACTIVE}: check the id, or add a read token of whoever "
        "started it (MOGPLEX_TOKEN_<NAME>); untrack it in the admin."
    ) in text
