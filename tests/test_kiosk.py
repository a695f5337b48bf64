"""The wall kiosk: display tokens, URL configuration, the kiosk_link command and the admin."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from dashboard.models import DisplayToken
from tests import board_data
from tests.board_data import RUN_ACTIVE, RUN_FAILED

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def store(settings: Any, valkey_server: str, redis_db: redis.Redis) -> Iterator[redis.Redis]:
    settings.REDIS_URL = valkey_server
    yield redis_db


@pytest.fixture
def display(db: None) -> tuple[DisplayToken, str]:
    return DisplayToken.issue("lobby")


def kiosk_url(raw: str) -> str:
    return f"/kiosk/{raw}/"


def test_kiosk_works_without_login_and_pins_failures(
    store: redis.Redis, client: Client, display: tuple[DisplayToken, str]
) -> None:
    board_data.publish(board_data.board())
    response = client.get(kiosk_url(display[1]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Needs attention" in html
    assert f'id="wall-run-{RUN_FAILED}"' in html
    assert f'id="wall-run-{RUN_ACTIVE}"' in html
    assert "Log out" not in html and "Track a run" not in html, "no chrome"
    assert display[1] not in response.headers.get("X-Board-App-Version", "")


def test_kiosk_all_clear_and_stalled_runs(
    store: redis.Redis, client: Client, display: tuple[DisplayToken, str]
) -> None:
    now = time.time()
    board_data.publish(board_data.board(now, runs=[board_data.run_row(RUN_ACTIVE, "success", now=now)]))
    assert "All clear" in client.get(kiosk_url(display[1])).content.decode()

    stalled = board_data.run_row(RUN_ACTIVE, "streaming", now=now, possibly_stale=True)
    board_data.publish(board_data.board(now, runs=[stalled]))
    html = client.get(kiosk_url(display[1])).content.decode()
    assert "stalled?" in html
    assert "need attention" in html or "needs attention" in html


def test_kiosk_unknown_token_is_a_plain_404_and_a_revoked_one_says_so(
    store: redis.Redis, client: Client, display: tuple[DisplayToken, str]
) -> None:
    token, raw = display
    board_data.publish(board_data.board())
    unknown = client.get(kiosk_url("not-a-token"))
    assert unknown.status_code == 404
    assert b"revoked" not in unknown.content.lower() and b"display" not in unknown.content.lower()
    assert client.get(kiosk_url("not-a-token"), HTTP_HX_REQUEST="true").status_code == 404

    token.revoked_at = timezone.now()
    token.save()
    page = client.get(kiosk_url(raw))
    assert page.status_code == 410
    assert "This display link was revoked; ask an operator for a new one." in page.content.decode()
    assert f'id="wall-run-{RUN_FAILED}"' not in page.content.decode(), "no board data"
    poll = client.get(kiosk_url(raw), {"v": "x.fff.0"}, **HTMX)
    assert poll.status_code == 410
    assert poll["X-Board-Problem"] == "revoked"
    assert poll.content.decode() == "This display link was revoked; ask an operator for a new one."
    json_board = client.get("/api/board.json", {"display": raw})
    assert json_board.status_code == 410
    assert json_board.json() == {"error": "This display link was revoked; ask an operator for a new one."}
    token.refresh_from_db()
    assert token.last_seen_at is None, "a revoked screen is not seen"


def test_kiosk_url_parameters(store: redis.Redis, client: Client, display: tuple[DisplayToken, str]) -> None:
    board_data.publish(board_data.board())
    url = kiosk_url(display[1])
    light = client.get(
        url, {"theme": "light", "panels": "runs,sources", "refresh": "10", "repos": "acme/web"}
    )
    html = light.content.decode()
    assert "theme-light" in html
    assert 'hx-trigger="every 10s, board:refresh"' in html
    assert "Needs attention" not in html and "Sandboxes up" not in html
    assert f'id="wall-run-{RUN_ACTIVE}"' in html

    bad = client.get(url, {"theme": "neon", "refresh": "0", "panels": "weather"})
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "theme" in text and "neon" in text
    assert "between 2 and 300" in text
    assert "weather" in text


def test_kiosk_density_and_alert_are_read_from_the_url_and_bad_values_get_a_sentence(
    store: redis.Redis, client: Client, display: tuple[DisplayToken, str]
) -> None:
    board_data.publish(board_data.board())
    url = kiosk_url(display[1])
    html = client.get(url).content.decode()
    assert "density-comfortable" in html and 'data-alert="1"' not in html, "the defaults"
    html = client.get(url, {"density": "compact", "alert": "1"}).content.decode()
    assert "density-compact" in html and 'data-alert="1"' in html

    bad = client.get(url, {"density": "huge", "alert": "loud"})
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "density: &#x27;huge&#x27; is not a density; use comfortable or compact." in text
    assert "alert: &#x27;loud&#x27; is not 0 or 1" in text
    assert f'id="wall-run-{RUN_ACTIVE}"' not in text, "no wall for a bad address"


def test_kiosk_sends_each_panel_a_bounded_number_of_rows_and_counts_the_rest(
    store: redis.Redis, client: Client, display: tuple[DisplayToken, str]
) -> None:
    from dashboard.board.views import KIOSK_ROWS_SENT

    now = time.time()
    runs = [
        board_data.run_row(f"{n:08d}-1111-4111-8111-111111111111", "streaming", now=now, tracked_at=now - n)
        for n in range(KIOSK_ROWS_SENT + 40)
    ]
    board_data.publish(board_data.board(now, runs=runs))
    html = client.get(kiosk_url(display[1])).content.decode()
    runs_panel = html[html.index('id="wall-runs"') : html.index('id="wall-sandboxes"')]
    assert runs_panel.count('class="wall-row wall-row-4"') == KIOSK_ROWS_SENT
    assert f'data-total="{KIOSK_ROWS_SENT + 40}"' in runs_panel
    assert re.search(
        r"<p class=\"more\" data-fit-more>\+ <span data-fit-count>40</span> more running</p>", runs_panel
    )


def test_kiosk_answers_204_when_unchanged(
    store: redis.Redis, client: Client, display: tuple[DisplayToken, str]
) -> None:
    board_data.publish(board_data.board())
    html = client.get(kiosk_url(display[1])).content.decode()
    match = re.search(r'name="v" value="([^"]+)"', html)
    assert match
    assert client.get(kiosk_url(display[1]), {"v": match.group(1)}, **HTMX).status_code == 204
    fragment = client.get(kiosk_url(display[1]), {"v": "other.ffff.0"}, **HTMX)
    assert fragment.status_code == 200
    assert fragment.content.decode().lstrip().startswith('<div id="board"')


def test_last_seen_is_written_at_most_once_a_minute(
    store: redis.Redis, client: Client, display: tuple[DisplayToken, str]
) -> None:
    token, raw = display
    board_data.publish(board_data.board())
    client.get(kiosk_url(raw))
    token.refresh_from_db()
    first = token.last_seen_at
    assert first is not None
    client.get(kiosk_url(raw))
    token.refresh_from_db()
    assert token.last_seen_at == first
    DisplayToken.objects.filter(pk=token.pk).update(last_seen_at=first - timedelta(minutes=2))
    client.get(kiosk_url(raw))
    token.refresh_from_db()
    assert token.last_seen_at is not None and token.last_seen_at > first - timedelta(minutes=1)


def test_board_json_with_a_display_token(
    store: redis.Redis, client: Client, display: tuple[DisplayToken, str]
) -> None:
    board_data.publish(board_data.board())
    response = client.get("/api/board.json", {"display": display[1]})
    assert response.status_code == 200
    assert display[1] not in response.content.decode()
    assert client.get("/api/board.json", {"display": "wrong"}).status_code == 404


def test_kiosk_link_prints_a_working_url(store: redis.Redis, client: Client, db: None, settings: Any) -> None:
    board_data.publish(board_data.board())
    out = io.StringIO()
    call_command(
        "kiosk_link", "wall-1", "--theme", "light", "--base-url", "https://board.example.com", stdout=out
    )
    url = out.getvalue().strip()
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.netloc == "board.example.com"
    assert parts.query == "theme=light"
    token = DisplayToken.objects.get(name="wall-1")
    raw = parts.path.split("/")[2]
    assert token.token_hash == DisplayToken.hash(raw) and raw not in token.token_hash
    response = client.get(parts.path, {"theme": "light"})
    assert response.status_code == 200

    with pytest.raises(CommandError, match="exists already"):
        call_command("kiosk_link", "wall-1", stdout=io.StringIO())
    with pytest.raises(CommandError, match="not a theme"):
        call_command("kiosk_link", "wall-2", "--theme", "neon", stdout=io.StringIO())
    with pytest.raises(CommandError, match="not a density; use comfortable or compact"):
        call_command("kiosk_link", "wall-2", "--density", "tiny", stdout=io.StringIO())
    out = io.StringIO()
    call_command("kiosk_link", "wall-4k", "--density", "compact", "--alert", "1", stdout=out)
    assert urlsplit(out.getvalue().strip()).query == "density=compact&alert=1"


def test_admin_lists_and_revokes_display_tokens(
    store: redis.Redis, client: Client, display: tuple[DisplayToken, str]
) -> None:
    admin = User.objects.create_superuser("root", password="correct horse battery")
    client.force_login(admin)
    listing = client.get("/admin/dashboard/displaytoken/")
    assert listing.status_code == 200
    assert "lobby" in listing.content.decode()
    token, raw = display
    response = client.post(
        "/admin/dashboard/displaytoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert "Revoked 1 display token" in response.content.decode()
    client.logout()
    assert client.get(kiosk_url(raw)).status_code == 410


def test_kiosk_and_overview_render_runs_not_fetched_yet(
    store: redis.Redis, client: Client, display: tuple[DisplayToken, str]
) -> None:
    """A run with no events (or no detail at all) yet renders as such, failed or not."""
    now = time.time()
    bare = {"run_id": RUN_FAILED, "status": "failed", "latest_event": None, "lookup": "found"}
    new = {"run_id": RUN_ACTIVE, "lookup": "new"}
    board_data.publish(board_data.board(now, runs=[bare, new]))
    html = client.get(kiosk_url(display[1])).content.decode()
    assert f'id="wall-run-{RUN_FAILED}"' in html
    admin = User.objects.create_user("viewer", password="correct horse battery")
    client.force_login(admin)
    overview = client.get("/")
    assert overview.status_code == 200
    # A run no source has claimed yet is not running: it is counted on one line, not shown as a row.
    assert f'id="run-{RUN_ACTIVE}"' not in overview.content.decode()
    assert "1 run being looked up" in overview.content.decode()
    assert f'id="wall-run-{RUN_ACTIVE}"' not in html
    assert "1 run being looked up" in html
