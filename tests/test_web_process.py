"""The web app under gunicorn, as deployed, against rough requests: what it answers and what it logs.

One gunicorn for the module (tests/webserver.py), over real HTTP. Each rough
request must get one clear answer and at most one log line, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from dashboard.models import TrackedRun
from tests.waiting import wait_for
from tests.webserver import WebServer, gunicorn_board

RUN = "3f2b8c1e-5d4a-4b6c-9e8f-0a1b2c3d4e5f"
INGEST_TOKEN = "ingest-secret-for-web-process-tests-42"
AUTH = {"Authorization": f"Bearer {INGEST_TOKEN}"}
JSON_HINT = "feed the output of `mogplex run --json` (one object, or one per line)."


@pytest.fixture(scope="module")
def web(
    tmp_path_factory: pytest.TempPathFactory, valkey_server: str, django_db_setup: None
) -> Iterator[WebServer]:
    with gunicorn_board(
        tmp_path_factory.mktemp("web"), valkey_server, BOARD_INGEST_TOKEN=INGEST_TOKEN
    ) as server:
        yield server


def lines_with(server: WebServer, text: str) -> list[str]:
    return [line for line in server.log_text().splitlines() if text in line]


def logged_once(server: WebServer, text: str) -> str:
    """The one log line holding ``text``, once it is written; fails on a second one or any traceback."""
    wait_for(lambda: lines_with(server, text), timeout=10, what=f"a log line with {text!r}")
    (line,) = lines_with(server, text)
    assert "Traceback" not in server.log_text()
    return line


# --- ingest ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "body",
    [
        "[" * 60_000,
        "[" * 1_500 + "]" * 1_500,
        '{"runId": "' + RUN + '", "x": ' + '{"a": ' * 1_500 + "1" + "}" * 1_500 + "}",
    ],
    ids=["60000-open-brackets", "lists-1500-deep", "objects-1500-deep"],
)
def test_deep_json_gets_one_sentence_and_changes_nothing(web: WebServer, body: str) -> None:
    response = httpx.post(f"{web.base_url}/ingest/runs", content=body, headers=AUTH, timeout=30)

    assert response.status_code == 400
    assert response.json() == {"error": "The JSON on line 1 is nested too deeply to be a run; " + JSON_HINT}
    assert not TrackedRun.objects.exists()
    assert "Traceback" not in web.log_text()
    assert "RecursionError" not in web.log_text()


@pytest.mark.django_db(transaction=True)
def test_lists_of_lists_are_not_runs(web: WebServer) -> None:
    body = json.dumps([[[{"runId": RUN}]]])

    response = httpx.post(f"{web.base_url}/ingest/runs", content=body, headers=AUTH, timeout=30)

    assert response.status_code == 400
    assert response.json() == {"error": "The JSON on line 1 nests lists in lists; " + JSON_HINT}
    assert not TrackedRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_is_read(web: WebServer) -> None:
    def chunks() -> Iterator[bytes]:
        text = json.dumps({"runId": RUN, "status": "pending"}).encode()
        yield text[:10]
        yield text[10:]

    response = httpx.post(f"{web.base_url}/ingest/runs", content=chunks(), headers=AUTH, timeout=30)

    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 201, response.text
    assert response.json()["tracked"] == [RUN]
    assert list(TrackedRun.objects.values_list("run_id", flat=True)) == [UUID(RUN)]


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_over_the_cap_is_refused(web: WebServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"run_ids": ["'
        for _ in range(70):
            yield b"x" * 1024

    response = httpx.post(f"{web.base_url}/ingest/runs", content=chunks(), headers=AUTH, timeout=30)

    assert response.status_code == 413
    assert response.json() == {"error": "The body is larger than 64 KB; send fewer runs at once."}
    assert not TrackedRun.objects.exists()


# --- requests Django refuses as suspicious -------------------------------------------------


def test_a_foreign_host_is_one_warning_line(web: WebServer) -> None:
    response = httpx.get(f"{web.base_url}/", headers={"Host": "evil.example"}, timeout=10)

    assert response.status_code == 400
    line = logged_once(web, "evil.example")
    assert " WARNING django.security.DisallowedHost Invalid HTTP_HOST header: 'evil.example'" in line


@pytest.mark.parametrize("path", ["/accounts/login/", "/track/"])
def test_a_huge_form_post_is_one_warning_line(web: WebServer, path: str) -> None:
    before = len(lines_with(web, "RequestDataTooBig"))
    body = b"username=admin&password=" + b"x" * (5 * 1024 * 1024)

    with httpx.Client(base_url=web.base_url, timeout=30) as browser:
        # With the CSRF cookie a browser holds, so the form is read (not refused unread with 403).
        browser.get("/accounts/login/")
        response = browser.post(
            path, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )

    assert response.status_code == 400
    wait_for(
        lambda: len(lines_with(web, "RequestDataTooBig")) > before,
        timeout=10,
        what="the RequestDataTooBig line",
    )
    lines = lines_with(web, "RequestDataTooBig")
    assert len(lines) == before + 1
    assert " WARNING django.security.RequestDataTooBig " in lines[-1]
    assert "Traceback" not in web.log_text()


def test_there_is_no_password_reset_by_mail(web: WebServer) -> None:
    for path in ("/accounts/password_reset/", "/accounts/reset/done/"):
        assert httpx.get(f"{web.base_url}{path}", timeout=10).status_code == 404
    login = httpx.get(f"{web.base_url}/accounts/login/", timeout=10)
    assert login.status_code == 200
    assert "password_reset" not in login.text


# --- the JSON board answers JSON, errors too ----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_json_clients_get_json_errors(web: WebServer) -> None:
    unknown = httpx.get(f"{web.base_url}/api/board.json", params={"display": "not-a-token"}, timeout=10)
    assert (unknown.status_code, unknown.headers["Content-Type"]) == (404, "application/json")
    assert unknown.json() == {"error": "This display link is not known; ask an operator for a display link."}

    posted = httpx.post(f"{web.base_url}/api/board.json", timeout=10)
    assert (posted.status_code, posted.headers["Allow"]) == (405, "GET")
    assert posted.json() == {"error": "Use GET to read /api/board.json."}

    elsewhere = httpx.get(f"{web.base_url}/api/boards.json", timeout=10)
    assert elsewhere.status_code == 404
    assert elsewhere.json() == {"error": "There is no such address; the board's JSON is at /api/board.json."}

    page = httpx.get(f"{web.base_url}/no-such-page/", timeout=10)
    assert page.status_code == 404
    assert page.headers["Content-Type"].startswith("text/html")


# --- gunicorn's control socket -------------------------------------------------------------


def test_two_boards_on_one_host_keep_their_own_control_socket(
    tmp_path: Path, valkey_server: str, django_db_setup: None
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    first_var, second_var = tmp_path / "one", tmp_path / "two"
    with gunicorn_board(first_var, valkey_server, HOME=str(home), XDG_RUNTIME_DIR=""):
        wait_for(
            lambda: (first_var / "gunicorn.ctl").is_socket(), timeout=10, what="the first board's socket"
        )
        with gunicorn_board(second_var, valkey_server, HOME=str(home), XDG_RUNTIME_DIR=""):
            wait_for(
                lambda: (second_var / "gunicorn.ctl").is_socket(),
                timeout=10,
                what="the second board's socket",
            )
        assert not (second_var / "gunicorn.ctl").exists()
        assert (first_var / "gunicorn.ctl").is_socket()
    assert not (home / ".gunicorn").exists()
