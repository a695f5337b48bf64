"""The change stream (dashboard/board/push.py) under gunicorn as deployed: who may open it, what it says.

One gunicorn for the module (tests/webserver.py) reading the test Valkey; the
tests write boards as the poller does (``tests.board_data.publish``) and read the
stream over real HTTP.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from dashboard import snapshots
from dashboard.models import DisplayToken
from tests import board_data
from tests.waiting import wait_for
from tests.webserver import WebServer, gunicorn_board

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def web(
    tmp_path_factory: pytest.TempPathFactory, valkey_server: str, django_db_setup: None
) -> Iterator[WebServer]:
    with gunicorn_board(tmp_path_factory.mktemp("push"), valkey_server) as server:
        yield server


@pytest.fixture(autouse=True)
def board_store(settings: object, valkey_server: str, redis_db: redis.Redis) -> None:
    settings.REDIS_URL = valkey_server  # type: ignore[attr-defined]


class Events:
    """The ``event: board`` versions a stream has sent so far, read on a thread."""

    def __init__(self, url: str, cookies: dict[str, str] | None = None) -> None:
        self.versions: list[str] = []
        self.status: int | None = None
        self.ended = threading.Event()
        self._client = httpx.Client(cookies=cookies, timeout=httpx.Timeout(5, read=60))
        self._thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self._thread.start()

    def _read(self, url: str) -> None:
        try:
            with self._client.stream("GET", url) as response:
                self.status = response.status_code
                event = ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                    elif line.startswith("data: ") and event == "board":
                        self.versions.append(line.removeprefix("data: "))
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    def close(self) -> None:
        self._client.close()


def kiosk_stream(web: WebServer) -> str:
    _, raw = DisplayToken.issue("lobby")
    return f"{web.base_url}/kiosk/{raw}/stream/"


def test_an_open_wall_hears_each_new_board_version_and_nothing_for_an_unchanged_one(web: WebServer) -> None:
    first = board_data.publish(board_data.board())
    events = Events(kiosk_stream(web))
    try:
        # As it opens, the stream says what the board is now.
        wait_for(lambda: events.versions == [first], timeout=15, what="the current version on opening")

        changed = board_data.board()
        changed["runs"][0]["status"] = "pending"
        second = board_data.publish(changed)
        wait_for(lambda: events.versions == [first, second], timeout=15, what="the new version pushed")

        # The same board composed again is not news: the next event is the next change.
        board_data.publish(changed)
        changed["runs"][0]["status"] = "streaming"
        third = board_data.publish(changed)
        wait_for(lambda: len(events.versions) == 3, timeout=15, what="the third version pushed")
        assert events.versions == [first, second, third]
        assert events.status == 200
    finally:
        events.close()


def test_a_composition_publishes_only_when_the_board_changed(redis_db: redis.Redis) -> None:
    listener = snapshots.redis_client().pubsub()  # type: ignore[no-untyped-call]
    listener.subscribe(snapshots.BOARD_CHANNEL)
    wait_for(lambda: listener.get_message(timeout=1), timeout=5, what="the subscription")
    composed = board_data.board()
    version = board_data.publish(composed)
    board_data.publish(composed)

    heard = [listener.get_message(timeout=2), listener.get_message(timeout=1)]
    listener.close()

    assert [m["data"].decode() for m in heard if m] == [version]


@pytest.mark.parametrize(
    "ask, status, sentence",
    [
        ("unknown", 404, "This display link is not known; ask an operator for a display link."),
        ("revoked", 410, "This display link was revoked; ask an operator for a new one."),
        ("anonymous", 403, "Sign in to follow the board."),
    ],
)
def test_a_stream_is_refused_to_whoever_may_not_read_the_board(
    web: WebServer, ask: str, status: int, sentence: str
) -> None:
    url = f"{web.base_url}/stream/"
    if ask == "unknown":
        url = f"{web.base_url}/kiosk/not-a-display-token/stream/"
    elif ask == "revoked":
        token, raw = DisplayToken.issue("old-lobby")
        DisplayToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
        url = f"{web.base_url}/kiosk/{raw}/stream/"

    response = httpx.get(url, timeout=10)

    assert (response.status_code, response.text) == (status, sentence)
    assert "Traceback" not in web.log_text()


def test_a_signed_in_session_may_follow_the_board(web: WebServer) -> None:
    version = board_data.publish(board_data.board())
    browser = Client()
    browser.force_login(User.objects.create(username="ada"))
    cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value

    events = Events(f"{web.base_url}/stream/", cookies={settings.SESSION_COOKIE_NAME: cookie})
    try:
        wait_for(lambda: events.versions == [version], timeout=15, what="the signed-in stream")
    finally:
        events.close()


def test_without_a_server_that_can_push_the_stream_says_so_and_the_page_polls(client: Client) -> None:
    # Django's own server (WSGI: development, the browser tests) cannot hold a stream open.
    _, raw = DisplayToken.issue("lobby")
    for url in ("/stream/", f"/kiosk/{raw}/stream/"):
        assert client.get(url).status_code == 204  # EventSource stops on a 204


def test_stopping_the_web_process_ends_open_streams_at_once(tmp_path: Path, valkey_server: str) -> None:
    board_data.publish(board_data.board())
    with gunicorn_board(tmp_path, valkey_server) as server:
        events = Events(kiosk_stream(server))
        try:
            wait_for(lambda: events.versions, timeout=15, what="the stream to open")
            server.process.terminate()
            # Not after gunicorn's graceful timeout (30 s): the stop ends the stream itself.
            assert events.ended.wait(timeout=10), "the stream was still open after the stop"
            server.process.wait(timeout=10)
        finally:
            events.close()
