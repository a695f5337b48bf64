"""Sign-in attempts: failures are rate limited per client address and per username, in Redis."""

from __future__ import annotations

import html
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from pytest_django.fixtures import Settings

from dashboard.env import envnetworks
from dashboard.signin import client_address
from tests.hostile import assert_one_sentence
from tests.waiting import wait_for

PASSWORD = "correct horse battery"
ATTEMPTS = 3
WINDOW_SECONDS = 4
TOO_MANY = re.compile(r"Too many sign-in attempts; wait (\d+) seconds? and try again\.")

pytestmark = pytest.mark.django_db


@pytest.fixture
def limited(settings: Settings, valkey_server: str, redis_db: redis.Redis) -> Iterator[None]:
    """A few attempts per window of a few seconds, so the window can pass during the test."""
    settings.REDIS_URL = valkey_server
    settings.BOARD_LOGIN_ATTEMPTS_PER_MINUTE = ATTEMPTS
    settings.BOARD_LOGIN_WINDOW_SECONDS = WINDOW_SECONDS
    # A cheap hasher: the window must not pass while the test is still hashing passwords.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.create_user("ada", password=PASSWORD)
    User.objects.create_user("bob", password=PASSWORD)
    yield


def sign_in(username: str, password: str, address: str, **extra: Any) -> tuple[int, str, Client]:
    """One attempt through the login form from ``address``; (status, the form's error text, the client)."""
    client = Client(REMOTE_ADDR=address, **extra)
    response = client.post("/accounts/login/", {"username": username, "password": password})
    errors = re.findall(r'<p class="form-error" role="alert">(.*?)</p>', response.content.decode(), re.S)
    return response.status_code, " ".join(html.unescape(e) for e in errors), client


def signed_in(client: Client) -> bool:
    return client.get("/api/board.json").status_code != 401


def test_failed_sign_ins_are_limited_per_address_and_username_until_the_window_passes(limited: None) -> None:
    for _ in range(ATTEMPTS):
        status, error, _ = sign_in("ada", "wrong password", "203.0.113.7")
        assert (status, error) == (200, "Your username and password did not match. Try again.")

    started = time.monotonic()
    status, error, client = sign_in("ada", PASSWORD, "203.0.113.7")
    assert status == 429, "refused even with the right password"
    assert_one_sentence(error)
    wait = TOO_MANY.fullmatch(error)
    assert wait, error
    assert 1 <= int(wait.group(1)) <= WINDOW_SECONDS
    assert not signed_in(client)

    # Another user from another address is not affected...
    status, _, client = sign_in("bob", PASSWORD, "198.51.100.20")
    assert status == 302 and signed_in(client)
    # ...but the username is limited wherever it signs in from, and the address for any username.
    assert sign_in("ada", PASSWORD, "198.51.100.20")[0] == 429
    assert sign_in("bob", PASSWORD, "203.0.113.7")[0] == 429

    # Refused attempts do not count: once the window has passed, the right password works.
    wait_for(
        lambda: sign_in("ada", PASSWORD, "203.0.113.7")[0] == 302,
        timeout=WINDOW_SECONDS + 10,
        what="the sign-in window to pass",
    )
    assert time.monotonic() - started >= WINDOW_SECONDS - 1.5


def test_the_refusal_says_when_to_retry(limited: None) -> None:
    for _ in range(ATTEMPTS):
        sign_in("ada", "wrong password", "203.0.113.7")
    client = Client(REMOTE_ADDR="203.0.113.7")
    response = client.post("/accounts/login/", {"username": "ada", "password": PASSWORD})
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= WINDOW_SECONDS
    assert 'id="id_username"' in response.content.decode(), "the form is still there"


def test_successful_sign_ins_do_not_count(limited: None) -> None:
    for _ in range(ATTEMPTS + 2):
        status, _, client = sign_in("ada", PASSWORD, "203.0.113.7")
        assert status == 302 and signed_in(client)


def test_the_admin_signs_in_through_the_same_limited_page(limited: None) -> None:
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "ada", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/admin/"
    assert not signed_in(client), "the admin's own login form, which is not limited, is not served"


def test_behind_a_trusted_proxy_each_client_is_counted_apart(limited: None, settings: Settings) -> None:
    settings.BOARD_TRUSTED_PROXIES = envnetworks("P", environ={"P": "10.0.0.0/8"})
    for _ in range(ATTEMPTS):
        sign_in("ada", "wrong", "10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert sign_in("ada", PASSWORD, "10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7")[0] == 429
    # Another client behind the same proxy, another user: unaffected.
    assert sign_in("bob", PASSWORD, "10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.20")[0] == 302
    # A client cannot get a fresh count by writing its own X-Forwarded-For.
    spoofed = "192.0.2.99, 203.0.113.7"
    assert sign_in("bob", PASSWORD, "10.0.0.2", HTTP_X_FORWARDED_FOR=spoofed)[0] == 429


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "client"),
    [
        ("", "10.0.0.2", "203.0.113.7", "10.0.0.2"),
        ("10.0.0.0/8", "10.0.0.2", "192.0.2.1, 203.0.113.7, 10.0.0.3", "203.0.113.7"),
        ("10.0.0.0/8", "198.51.100.1", "203.0.113.7", "198.51.100.1"),
        ("10.0.0.2", "10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "10.0.0.2", "<script>", "10.0.0.2"),
        ("::1", "::1", "2001:db8::7", "2001:db8::7"),
    ],
)
def test_client_address(settings: Settings, trusted: str, remote: str, forwarded: str, client: str) -> None:
    settings.BOARD_TRUSTED_PROXIES = envnetworks("P", environ={"P": trusted})
    request = RequestFactory().post("/accounts/login/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == client


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sign_in_still_works_when_redis_is_down(
    limited: None, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    for _ in range(ATTEMPTS + 1):
        assert sign_in("ada", "wrong", "203.0.113.7")[:2] == (
            200,
            "Your username and password did not match. Try again.",
        )
    started = time.monotonic()
    status, _, client = sign_in("ada", PASSWORD, "203.0.113.7")
    assert status == 302 and signed_in(client)
    assert time.monotonic() - started < 3, "an unreachable Redis does not hold the sign-in up"
    assert "sign-in attempts cannot be counted (ConnectionError)" in caplog.text
