"""Attention that resolves: acknowledgements, failures fixed by a later success, the window, the headline.

The board is composed by the poller's own code (``compose.board_build``) from
tracked runs in the test database and run records in a real Valkey; pages go
through Django's test client.
"""

from __future__ import annotations

import html
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from dashboard import snapshots
from dashboard.discovery import run_track
from dashboard.models import Acknowledgement, DisplayToken, TrackedRun
from dashboard.polling import compose
from dashboard.polling.records import run_record_not_found
from dashboard.polling.sources import source_names
from tests import board_data
from tests.board_data import iso

REPO = "acme-web-id"


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


@pytest.fixture
def wall(db: None) -> str:
    return f"/kiosk/{DisplayToken.issue('lobby')[1]}/"


def healthy_sources(now: float) -> None:
    """Every configured source answered just now, with no sandboxes: the board is fresh."""
    for name in source_names():
        snapshots.source_health_update(name, name=name, state="ok", message="", last_success_at=now)
        snapshots.sandboxes_write(name, [], fetched_at=now)
    snapshots.repos_write(source_names()[0], [{"id": REPO, "full_name": "acme/web"}], fetched_at=now)


def track(
    status: str,
    *,
    now: float,
    started_ago: float,
    ended_ago: float | None = None,
    repo: str = REPO,
    base: str = "main",
    error: str | None = None,
) -> str:
    """A tracked run as the poller leaves it: its database row and its run record."""
    run_id = str(uuid.uuid4())
    ended = None if ended_ago is None else now - ended_ago
    TrackedRun.objects.create(
        run_id=run_id,
        source=source_names()[0],
        via="form",
        lookup="found",
        status=status,
        finished_at=None if ended is None else _aware(ended),
    )
    record = board_data.run_record(run_id, now=now, events=1)
    record["source"] = source_names()[0]
    record["run"].update(
        status=status,
        repo_id=repo,
        branch={"base": base, "working": f"agent/{run_id[:8]}"},
        created_at=iso(now - started_ago),
        updated_at=iso(ended if ended is not None else now - 5),
        error=error,
    )
    record["fetched_at"] = now - 1
    snapshots.run_write(record)
    return run_id


def _aware(epoch: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, tz=UTC)


def compose_now(now: float | None = None) -> None:
    now = time.time() if now is None else now
    healthy_sources(now)
    compose.board_publish(compose.board_build())
    snapshots.heartbeat_write(now)


def headline(html: str) -> str:
    match = re.search(
        r'<span class="wall-overall headline[^"]*" id="headline">(.*?)</span>\s*(?=<|$)', html, re.S
    )
    assert match, "the page has a headline"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def lane_ids(html: str) -> list[str]:
    return re.findall(r'<tr id="attention-([^"]+)" class="attn"[^>]*>', html)


def wall_lane_ids(html: str) -> list[str]:
    section = html.split('id="wall-attention"', 1)[1].split("</section>", 1)[0]
    return re.findall(r'<li id="wall-((?:run|sandbox|source)-[^"]+)"', section)


pytestmark = pytest.mark.usefixtures("store")


# --- acknowledging ---------------------------------------------------------------------


def test_acknowledging_a_failure_clears_the_lane_and_keeps_it_dimmed_with_who(
    browser: Client, wall: str
) -> None:
    now = time.time()
    failed = track("failed", now=now, started_ago=600, ended_ago=120, error="tests failed")
    compose_now()
    page = browser.get("/").content.decode()
    assert headline(page) == "✖ 1 needs attention"
    assert lane_ids(page) == [f"run-{failed}"]
    assert "✖ 1 needs attention" in headline(browser.get(wall).content.decode())

    response = browser.post(f"/runs/{failed}/acknowledge/", {"note": "flaky test, rerunning", "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    ack = Acknowledgement.objects.get()
    assert (ack.target, str(ack.target_id), ack.problem, ack.username) == ("run", failed, "failed", "ada")
    assert ack.note == "flaky test, rerunning"

    # The view composed the board itself: the next refresh of every page shows it.
    page = browser.get("/").content.decode()
    assert "its failure is acknowledged" in page
    assert headline(page) == "✔ All clear"
    assert lane_ids(page) == []
    finished_row = page.split(f'<tr id="run-{failed}"', 1)[1].split("</tr>", 1)[0]
    assert 'class="resolved"' in finished_row
    assert (
        "acknowledged by" in finished_row
        and "ada" in finished_row
        and "flaky test, rerunning" in finished_row
    )

    kiosk = Client().get(wall).content.decode()
    assert headline(kiosk) == "✔ All clear"
    assert wall_lane_ids(kiosk) == []
    resolved = kiosk.split("data-resolved>", 1)[1].split("</li>", 1)[0]
    assert "acknowledged by" in resolved and "ada" in resolved and "0s ago" in resolved
    assert "<form" not in kiosk and "Acknowledge" not in kiosk, "the wall has no buttons"

    run_page = browser.get(f"/runs/{failed}/").content.decode()
    assert 'id="run-attention"' in run_page and "no longer needs attention" in run_page
    assert 'data-overall="clear"' in run_page, "a resolved failure's page no longer calls for attention"
    assert "Un-acknowledge" in run_page


def test_un_acknowledging_puts_the_failure_back(browser: Client) -> None:
    now = time.time()
    failed = track("failed", now=now, started_ago=600, ended_ago=120)
    compose_now()
    browser.post(f"/runs/{failed}/acknowledge/", {"next": f"/runs/{failed}/"})
    assert lane_ids(browser.get("/").content.decode()) == []

    response = browser.post(f"/runs/{failed}/unacknowledge/", {"next": f"/runs/{failed}/"})
    assert response.status_code == 302 and response["Location"] == f"/runs/{failed}/"
    assert not Acknowledgement.objects.exists()
    page = browser.get("/").content.decode()
    assert lane_ids(page) == [f"run-{failed}"]
    assert "is no longer acknowledged" in page


def test_acknowledging_from_the_run_page_and_an_acknowledged_stall_does_not_cover_a_later_failure(
    browser: Client,
) -> None:
    now = time.time()
    stalled = track("streaming", now=now, started_ago=600)
    record = snapshots.run_read(stalled)
    assert record is not None
    compose_now()
    # The stall rule's own field (the poller sets it), read as the board shows it.
    board = snapshots.board_read()
    assert board is not None
    for run in board["runs"]:
        run["stall_reason"] = "no event for 17 min"
    board_data.publish(board)
    run_page = browser.get(f"/runs/{stalled}/").content.decode()
    assert "Stalled? no event for 17 min" in run_page
    assert (
        browser.post(f"/runs/{stalled}/acknowledge/", {"note": "", "next": f"/runs/{stalled}/"}).status_code
        == 302
    )
    assert Acknowledgement.objects.get().problem == "stalled"

    snapshots.run_write({**record, "run": {**record["run"], "status": "failed", "error": "boom"}})
    TrackedRun.objects.filter(run_id=stalled).update(status="failed", finished_at=_aware(now))
    compose_now()
    assert lane_ids(browser.get("/").content.decode()) == [f"run-{stalled}"]


def test_an_errored_sandbox_is_in_the_lane_until_acknowledged(browser: Client, wall: str) -> None:
    now = time.time()
    box = str(uuid.uuid4())
    healthy_sources(now)
    snapshots.sandboxes_write(
        source_names()[0],
        [
            {
                "id": box,
                "status": "error",
                "repo_id": REPO,
                "error": "install failed: npm ERR!",
                "last_active_at": iso(now - 300),
                "created_at": iso(now - 900),
            }
        ],
        fetched_at=now,
    )
    compose.board_publish(compose.board_build())
    snapshots.heartbeat_write(now)
    assert lane_ids(browser.get("/").content.decode()) == [f"sandbox-{box}"]
    assert wall_lane_ids(Client().get(wall).content.decode()) == [f"sandbox-{box}"]

    assert browser.post(f"/sandboxes/{box}/acknowledge/", {"note": "known"}).status_code == 302
    assert lane_ids(browser.get("/").content.decode()) == []
    page = browser.get(f"/sandboxes/{box}/").content.decode()
    assert "no longer needs attention" in page and "ada" in page


@pytest.mark.parametrize(
    ("case", "status", "sentence"),
    [
        ("unknown run", 404, "is not tracked by the board; check the id."),
        ("twice", 409, "'s failure was already acknowledged by ada"),
        ("not a problem", 409, "is not failed or stalled, so there is nothing to acknowledge."),
        ("long note", 400, "The note is 201 characters; keep it to 200 or fewer."),
        ("undo nothing", 409, "is not acknowledged, so there is nothing to take back."),
    ],
)
def test_bad_acknowledgements_get_one_sentence_and_change_nothing(
    browser: Client, case: str, status: int, sentence: str
) -> None:
    now = time.time()
    failed = track("failed", now=now, started_ago=600, ended_ago=120)
    fine = track("success", now=now, started_ago=900, ended_ago=800, base="other")
    compose_now()
    if case == "twice":
        assert browser.post(f"/runs/{failed}/acknowledge/").status_code == 302
    before = list(Acknowledgement.objects.values_list("target_id", "problem", "note", "acknowledged_at"))
    version = snapshots.board_read()["version"]  # type: ignore[index]
    url, data = {
        "unknown run": (f"/runs/{uuid.uuid4()}/acknowledge/", {}),
        "twice": (f"/runs/{failed}/acknowledge/", {"note": "again"}),
        "not a problem": (f"/runs/{fine}/acknowledge/", {}),
        "long note": (f"/runs/{failed}/acknowledge/", {"note": "x" * 201}),
        "undo nothing": (f"/runs/{failed}/unacknowledge/", {}),
    }[case]
    response = browser.post(url, data)
    assert response.status_code == status
    text = html.unescape(response.content.decode())
    assert sentence in text
    assert text.count('class="form-error"') == 1
    assert (
        list(Acknowledgement.objects.values_list("target_id", "problem", "note", "acknowledged_at")) == before
    )
    assert snapshots.board_read()["version"] == version  # type: ignore[index]


def test_acknowledging_needs_a_login_and_a_csrf_token(client: Client, user: User) -> None:
    now = time.time()
    failed = track("failed", now=now, started_ago=600, ended_ago=120)
    compose_now()
    signed_out = client.post(f"/runs/{failed}/acknowledge/")
    assert signed_out.status_code == 403
    assert "Sign in to acknowledge problems on the board; nothing was changed." in signed_out.content.decode()

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(f"/runs/{failed}/acknowledge/").status_code == 403
    assert not Acknowledgement.objects.exists()
    assert browser_get_lane(strict) == [f"run-{failed}"]


def browser_get_lane(client: Client) -> list[str]:
    return lane_ids(client.get("/").content.decode())


def test_the_admin_lists_acknowledgements(client: Client, db: None) -> None:
    now = time.time()
    failed = track("failed", now=now, started_ago=600, ended_ago=120)
    compose_now()
    admin = User.objects.create_superuser("root", password="x" * 20)
    client.force_login(admin)
    assert client.post(f"/runs/{failed}/acknowledge/", {"note": "on it"}).status_code == 302
    listing = client.get("/admin/dashboard/acknowledgement/").content.decode()
    assert failed in listing and "on it" in listing and "root" in listing


# --- resolved by a later success ---------------------------------------------------------


def test_a_later_success_on_the_same_repo_and_base_fixes_a_failure(browser: Client, wall: str) -> None:
    now = time.time()
    failed = track("failed", now=now, started_ago=1800, ended_ago=1500)
    other_base = track("failed", now=now, started_ago=1700, ended_ago=1400, base="release")
    older_success = track("success", now=now, started_ago=2000, ended_ago=1000)
    compose_now()
    assert sorted(lane_ids(browser.get("/").content.decode())) == sorted(
        [f"run-{failed}", f"run-{other_base}"]
    )

    fix = track("success", now=now, started_ago=900, ended_ago=780)
    compose_now()
    page = browser.get("/").content.decode()
    assert lane_ids(page) == [f"run-{other_base}"], (
        "only the same base branch is fixed; an earlier start is no fix"
    )
    finished_row = page.split(f'<tr id="run-{failed}"', 1)[1].split("</tr>", 1)[0]
    assert 'class="resolved"' in finished_row
    assert "fixed by run" in finished_row and fix[:8] in finished_row and "12m 0s later" in finished_row
    assert older_success[:8] not in finished_row
    kiosk = Client().get(wall).content.decode()
    assert wall_lane_ids(kiosk) == [f"run-{other_base}"]
    assert "fixed by run" in kiosk


def test_superseding_can_be_switched_off(browser: Client, settings: Any) -> None:
    settings.BOARD_SUPERSEDE_FAILURES = False
    now = time.time()
    failed = track("failed", now=now, started_ago=1800, ended_ago=1500)
    track("success", now=now, started_ago=900, ended_ago=780)
    compose_now()
    assert lane_ids(browser.get("/").content.decode()) == [f"run-{failed}"]


# --- the window, the order, failing since -------------------------------------------------


def test_failures_leave_the_lane_after_the_attention_window(browser: Client, settings: Any) -> None:
    settings.BOARD_ATTENTION_HOURS = 2
    start = time.time()
    old = track("failed", now=start, started_ago=3000, ended_ago=2 * 3600 - 60)
    new = track("failed", now=start, started_ago=600, ended_ago=300, repo="other-repo")
    compose_now(start)
    page = browser.get("/").content.decode()
    assert lane_ids(page) == [f"run-{new}", f"run-{old}"], "newest problem first"
    version = re.search(r'id="board-version" name="v" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

    with time_machine.travel(start + 120, tick=False):
        snapshots.heartbeat_write(time.time())
        # The lane changes by itself at the window's end: a poll then gets the new board, not a 204.
        poll = browser.get("/", {"v": version}, HTTP_HX_REQUEST="true")
        assert poll.status_code == 200
        assert lane_ids(poll.content.decode()) == [f"run-{new}"]
        assert old in poll.content.decode(), "still in the finished list"


def test_failing_since_is_per_repo_from_the_first_unresolved_failure(browser: Client, wall: str) -> None:
    now = time.time()
    track("failed", now=now, started_ago=4000, ended_ago=3700)
    track("failed", now=now, started_ago=700, ended_ago=600)
    track("failed", now=now, started_ago=700, ended_ago=65, repo="api-id")
    compose_now()
    text = failing_since_text(browser.get("/").content.decode())
    assert re.fullmatch(r"Failing since: acme/web for 1h 1m · api-id for 1m \d+s", text), text
    text = failing_since_text(Client().get(wall).content.decode())
    assert re.fullmatch(r"acme/web failing for 1h 1m · api-id failing for 1m \d+s", text), text


def failing_since_text(html: str) -> str:
    line = html.split('class="failing-since">', 1)[1].split("</p>", 1)[0]
    return " ".join(re.sub(r"<[^>]+>", " ", line).split())


def test_the_lane_holds_sources_an_operator_must_fix(browser: Client, wall: str) -> None:
    now = time.time()
    failed = track("failed", now=now, started_ago=600, ended_ago=5)
    compose_now()
    name = source_names()[0]
    snapshots.source_health_update(
        name,
        state="unauthorized",
        message="Mogplex rejected the token (401); set a new one and restart the board.",
        last_success_at=now - 30,
        last_error_at=now - 1,
    )
    compose.board_publish(compose.board_build())
    page = browser.get("/").content.decode()
    assert lane_ids(page) == [f"run-{failed}", f"source-{name}"]
    assert "set a new one and restart the board." in page.split('id="attention-source', 1)[1]
    assert headline(page) == "✖ 2 need attention"
    assert wall_lane_ids(Client().get(wall).content.decode()) == [f"run-{failed}", f"source-{name}"]


# --- the headline and stale data ------------------------------------------------------------


def test_a_stale_board_says_so_beside_the_count_and_is_never_all_clear(browser: Client, wall: str) -> None:
    now = time.time()
    track("failed", now=now, started_ago=600, ended_ago=120)
    compose_now(now)
    old = now - settings.BOARD_STALE_SECONDS - 30
    snapshots.heartbeat_write(old)
    page = browser.get("/").content.decode()
    assert re.fullmatch(r"✖ 1 needs attention · ⚠ data 2m \d+s old", headline(page)), headline(page)

    Acknowledgement.objects.create(
        target="run",
        target_id=TrackedRun.objects.get().run_id,
        problem="failed",
        username="ada",
    )
    compose.board_publish(compose.board_build())
    snapshots.heartbeat_write(old)
    for markup in (browser.get("/").content.decode(), Client().get(wall).content.decode()):
        text = headline(markup)
        assert text.startswith("⚠ STALE · data 2m"), text
        assert "All clear" not in text


# --- unknown statuses ---------------------------------------------------------------------------


def test_an_unknown_run_status_is_neither_active_nor_finished_and_raises_nothing(
    browser: Client, wall: str
) -> None:
    now = time.time()
    odd = track("queued_v2", now=now, started_ago=60)
    failed = track("failed", now=now, started_ago=1800, ended_ago=1500)
    compose_now()
    data = browser.get("/api/board.json").json()
    assert odd not in {r["run_id"] for r in data["active_runs"] + data["finished_runs"]}
    assert [r["run_id"] for r in data["unknown_status_runs"]] == [odd]
    page = browser.get("/").content.decode()
    assert "unknown (queued_v2)" in page.split(f'<tr id="run-{odd}"', 1)[1].split("</tr>", 1)[0]
    assert lane_ids(page) == [f"run-{failed}"]
    assert headline(page) == "✖ 1 needs attention", "counted nowhere, not running"
    assert 'id="wall-run-' + odd not in Client().get(wall).content.decode()

    # A run that turns to an unknown status never clears the failure it might have fixed.
    track("success_v2", now=now, started_ago=900, ended_ago=60)
    compose_now()
    assert lane_ids(browser.get("/").content.decode()) == [f"run-{failed}"]


def test_an_unknown_sandbox_status_is_shown_as_unknown(browser: Client) -> None:
    now = time.time()
    box = str(uuid.uuid4())
    healthy_sources(now)
    snapshots.sandboxes_write(source_names()[0], [{"id": box, "status": "hibernating_v9"}], fetched_at=now)
    compose.board_publish(compose.board_build())
    snapshots.heartbeat_write(now)
    page = browser.get("/").content.decode()
    assert "unknown (hibernating_v9)" in page.split(f'<tr id="sandbox-{box}"', 1)[1].split("</tr>", 1)[0]
    assert lane_ids(page) == []
    assert headline(page) == "✔ All clear"


# --- runs no source owns ---------------------------------------------------------------------


def test_a_run_no_source_owns_ends_when_found_missing_and_ages_out_like_a_finished_run(
    browser: Client, settings: Any
) -> None:
    settings.BOARD_RETENTION_HOURS = 1
    start = time.time()
    run_id = str(uuid.uuid4())
    row = TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.INGEST)
    run_record_not_found(row, now=start)
    compose_now(start)
    assert run_id in browser.get("/").content.decode(), "listed among the ended runs"

    with time_machine.travel(start + 3600 + 60, tick=False):
        compose_now(time.time())
        assert run_id not in browser.get("/").content.decode(), "gone with the retention window"

    # Registered again, it is looked up again and lives on the board until it ends anew.
    run_track(run_ids=[run_id], via=TrackedRun.Via.COMMAND)
    again = TrackedRun.objects.get(run_id=run_id)
    assert (again.lookup, again.finished_at) == ("new", None)


def test_each_viewer_acknowledges_with_their_own_csrf_token_from_a_lane_row_kept_for_everyone(
    user: User,
) -> None:
    # The lane's rows are rendered once and served to every viewer (as the board's rows
    # are); the form in each must carry the viewer's own CSRF token, not the first viewer's.
    now = time.time()
    failed = track("failed", now=now, started_ago=600, ended_ago=120)
    compose_now()
    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    first.force_login(user)
    second.force_login(User.objects.create_user("ben", password="correct horse battery"))
    first.get("/")

    page = second.get("/").content.decode()
    form = page.split(f'id="attention-run-{failed}"', 1)[1].split("</form>", 1)[0]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token is not None
    response = second.post(
        f"/runs/{failed}/acknowledge/", {"csrfmiddlewaretoken": token[1], "note": "mine", "next": "/"}
    )

    assert response.status_code == 302
    assert Acknowledgement.objects.get().username == "ben"
