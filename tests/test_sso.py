"""Single sign-on end to end: the board signs people in at a real OpenID Connect provider.

The provider is django-oauth-toolkit in its own process (tests/oidc_provider); the
board is pytest-django's live server; a real HTTP client with a cookie jar walks
the redirects between them as a browser would.
"""

from __future__ import annotations

import html
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from pytest_django.fixtures import Settings

from dashboard.env import ConfigurationError
from dashboard.sso.config import OidcConfig, oidc_from_env
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET
from tests.oidc_provider import PASSWORD as PROVIDER_PASSWORD
from tests.waiting import wait_for

LOCAL_PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Provider:
    issuer: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def oidc_provider(live_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    """The provider, with the board's live server as its client's redirect URI."""
    port = free_port()
    db = tmp_path_factory.mktemp("oidc-provider") / "provider.sqlite3"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.oidc_provider",
            "--port",
            str(port),
            "--redirect-uri",
            f"{live_server.url}/accounts/oidc/sso/login/callback/",
            "--db",
            str(db),
        ],
        cwd=Path(django_settings.BASE_DIR),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    issuer = f"http://127.0.0.1:{port}/o"

    def answers() -> bool:
        assert proc.poll() is None, "the OIDC provider exited"
        try:
            return httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(answers, timeout=60, what="the OIDC provider to answer")
    try:
        yield Provider(issuer, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def sso_config(issuer: str, **overrides: Any) -> OidcConfig:
    fields: dict[str, Any] = {
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "secret": CLIENT_SECRET,
        "name": "Example SSO",
        "allowed_domains": ("example.com",),
        "allowed_groups": ("board-viewers",),
        "groups_claim": "groups",
    }
    fields.update(overrides)
    return OidcConfig(**fields)


@pytest.fixture
def board(settings: Settings, live_server: Any, valkey_server: str, redis_db: redis.Redis) -> str:
    settings.REDIS_URL = valkey_server
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.create_user("operator", password=LOCAL_PASSWORD)
    return str(live_server.url)


def use_sso(settings: Settings, config: OidcConfig) -> None:
    settings.BOARD_OIDC = config
    settings.SOCIALACCOUNT_PROVIDERS = config.allauth_providers()


def csrf_token(page: httpx.Response) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert found, f"no form on {page.url}"
    return found.group(1)


def form_error(page: httpx.Response) -> str:
    errors = re.findall(r'<p class="form-error" role="alert">(.*?)</p>', page.text, re.S)
    return " ".join(html.unescape(e) for e in errors)


def sso_sign_in(board: str, username: str) -> tuple[httpx.Client, httpx.Response]:
    """Press "Sign in with …" on the board, sign in at the provider; the page the browser ends on."""
    browser = httpx.Client(follow_redirects=True, timeout=20)
    login = browser.get(f"{board}/accounts/login/")
    assert "Sign in with Example SSO" in login.text
    at_provider = browser.post(
        f"{board}/accounts/oidc/sso/login/", data={"csrfmiddlewaretoken": csrf_token(login), "next": ""}
    )
    assert at_provider.url.host == "127.0.0.1" and at_provider.url.path == "/accounts/login/", at_provider.url
    landed = browser.post(
        str(at_provider.url),
        data={
            "csrfmiddlewaretoken": csrf_token(at_provider),
            "username": username,
            "password": PROVIDER_PASSWORD,
            "next": at_provider.url.params["next"],
        },
    )
    return browser, landed


def signed_in_as(browser: httpx.Client, board: str) -> str | None:
    page = browser.get(f"{board}/")
    found = re.search(r'<span class="who">(.*?)</span>', page.text)
    return html.unescape(found.group(1)) if found else None


@pytest.mark.django_db(transaction=True)
def test_a_person_at_an_allowed_domain_signs_in_with_sso(
    board: str, oidc_provider: Provider, settings: Settings
) -> None:
    use_sso(settings, sso_config(oidc_provider.issuer))

    browser, landed = sso_sign_in(board, "ada")

    assert landed.status_code == 200
    assert str(landed.url) == f"{board}/"
    assert signed_in_as(browser, board) == "ada"
    user = User.objects.get(email="ada@example.com")
    assert not user.is_staff and not user.has_usable_password()

    # A second sign-in finds the same account.
    browser2, _ = sso_sign_in(board, "ada")
    assert signed_in_as(browser2, board) == "ada"
    assert User.objects.filter(email="ada@example.com").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_member_of_an_allowed_group_signs_in_whatever_their_domain(
    board: str, oidc_provider: Provider, settings: Settings
) -> None:
    use_sso(settings, sso_config(oidc_provider.issuer))

    browser, landed = sso_sign_in(board, "carol")

    assert str(landed.url) == f"{board}/"
    assert signed_in_as(browser, board) == "carol"


@pytest.mark.django_db(transaction=True)
def test_a_rejected_domain_gets_one_sentence_and_no_account(
    board: str, oidc_provider: Provider, settings: Settings
) -> None:
    use_sso(settings, sso_config(oidc_provider.issuer))

    browser, landed = sso_sign_in(board, "bob")

    assert landed.status_code == 403
    assert form_error(landed) == (
        "bob@elsewhere.org may not sign in to this board (an email address at example.com or "
        "membership of board-viewers is needed); ask an operator to allow it, or sign in with a board account."
    )
    assert 'name="password"' in landed.text, "the local form is still there"
    assert signed_in_as(browser, board) is None
    assert not User.objects.filter(email="bob@elsewhere.org").exists()


@pytest.mark.django_db(transaction=True)
def test_a_provider_that_is_down_says_so_and_local_sign_in_still_works(
    board: str, settings: Settings
) -> None:
    use_sso(settings, sso_config(f"http://127.0.0.1:{free_port()}/o"))
    browser = httpx.Client(follow_redirects=True, timeout=20)
    login = browser.get(f"{board}/accounts/login/")

    answer = browser.post(
        f"{board}/accounts/oidc/sso/login/", data={"csrfmiddlewaretoken": csrf_token(login), "next": ""}
    )

    assert answer.status_code == 503
    assert form_error(answer) == (
        "Example SSO cannot be reached right now; try again in a minute, or sign in with a board account below."
    )
    local = browser.post(
        f"{board}/accounts/login/",
        data={"csrfmiddlewaretoken": csrf_token(answer), "username": "operator", "password": LOCAL_PASSWORD},
    )
    assert str(local.url) == f"{board}/"
    assert signed_in_as(browser, board) == "operator"


@pytest.mark.django_db
def test_without_sso_the_sign_in_page_has_only_the_local_form(board: str) -> None:
    page = httpx.get(f"{board}/accounts/login/")

    assert page.status_code == 200
    assert 'name="password"' in page.text
    assert "Sign in with" not in page.text


def test_sso_is_configured_by_environment_with_the_secret_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "oidc-secret"
    secret.write_text("s3cret\n")

    config = oidc_from_env(
        {
            "BOARD_OIDC_ISSUER": "https://login.example.com/realms/acme/",
            "BOARD_OIDC_CLIENT_ID": "board",
            "BOARD_OIDC_CLIENT_SECRET_FILE": str(secret),
            "BOARD_OIDC_ALLOWED_DOMAINS": "Example.com, @acme.io",
        }
    )

    assert config == OidcConfig(
        issuer="https://login.example.com/realms/acme",
        client_id="board",
        secret="s3cret",
        name="single sign-on",
        allowed_domains=("example.com", "acme.io"),
        allowed_groups=(),
        groups_claim="groups",
    )
    assert oidc_from_env({}) is None


@pytest.mark.parametrize(
    ("env", "sentence"),
    [
        (
            {"BOARD_OIDC_ISSUER": "https://login.example.com", "BOARD_OIDC_ALLOWED_DOMAINS": "example.com"},
            "BOARD_OIDC_ISSUER is set but BOARD_OIDC_CLIENT_ID or BOARD_OIDC_CLIENT_SECRET is not; "
            "set both (the secret may come from BOARD_OIDC_CLIENT_SECRET_FILE).",
        ),
        (
            {
                "BOARD_OIDC_ISSUER": "https://login.example.com",
                "BOARD_OIDC_CLIENT_ID": "board",
                "BOARD_OIDC_CLIENT_SECRET": "s",
            },
            "BOARD_OIDC_ISSUER is set but neither BOARD_OIDC_ALLOWED_DOMAINS nor BOARD_OIDC_ALLOWED_GROUPS is, "
            "so anyone with an account at the provider could sign in; set one of them.",
        ),
        (
            {"BOARD_OIDC_ISSUER": "login.example.com"},
            "BOARD_OIDC_ISSUER is 'login.example.com'; set it to the provider's issuer URL (https://...).",
        ),
    ],
)
def test_a_bad_sso_configuration_says_what_to_fix(env: dict[str, str], sentence: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        oidc_from_env(env)
    assert str(raised.value) == sentence


@pytest.mark.django_db(transaction=True)
def test_an_account_switched_off_by_an_operator_cannot_sign_in_with_sso(
    board: str, oidc_provider: Provider, settings: Settings
) -> None:
    use_sso(settings, sso_config(oidc_provider.issuer))
    sso_sign_in(board, "ada")
    User.objects.filter(email="ada@example.com").update(is_active=False)

    browser, landed = sso_sign_in(board, "ada")

    assert landed.status_code == 403
    assert form_error(landed) == "This account is switched off; ask an operator to switch it on again."
    assert signed_in_as(browser, board) is None
