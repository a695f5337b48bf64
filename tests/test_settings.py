"""Configuration: bad values stop start-up with one sentence; good ones normalise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dashboard.env import ConfigurationError
from dashboard.mogplex.config import Token, base_url_from_env, normalize_base_url, sources_from_env


@pytest.mark.parametrize(
    "raw",
    [
        "https://mogplex.com",
        "https://mogplex.com/",
        "https://mogplex.com/api/v1/mogplex",
        "https://mogplex.com/api/v1/mogplex/",
    ],
)
def test_base_url_accepts_origin_or_api_base(raw: str) -> None:
    assert normalize_base_url(raw) == "https://mogplex.com"


def test_base_url_keeps_a_path_prefix() -> None:
    assert normalize_base_url("http://proxy.local/mog/api/v1/mogplex") == "http://proxy.local/mog"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("https://mogplex.com/?x=1", "remove the query string"),
        ("https://mogplex.com#top", "remove the query string"),
        ("ftp://mogplex.com", "http(s) URL"),
        ("mogplex.com", "http(s) URL"),
    ],
)
def test_bad_base_url_says_what_to_fix(raw: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match="MOGPLEX_BASE_URL") as info:
        normalize_base_url(raw)
    assert says in str(info.value)


def test_base_url_wins_over_cli_variable() -> None:
    env = {
        "MOGPLEX_URL": "https://staging.mogplex.com",
        "MOGPLEX_BASE_URL": "https://mogplex.com/api/v1/mogplex",
    }
    assert base_url_from_env(env) == "https://mogplex.com"
    assert base_url_from_env({"MOGPLEX_URL": "https://staging.mogplex.com"}) == "https://staging.mogplex.com"


@pytest.mark.parametrize(
    "raw", ["http://127.0.0.1:8765", "http://localhost:8765/api/v1/mogplex", "http://[::1]:8765"]
)
def test_plain_http_is_allowed_to_this_machine(raw: str) -> None:
    assert base_url_from_env({"MOGPLEX_BASE_URL": raw}).startswith("http://")


def test_plain_http_to_another_host_is_refused_unless_allowed() -> None:
    with pytest.raises(ConfigurationError) as info:
        base_url_from_env({"MOGPLEX_URL": "http://mogplex.internal"})
    assert "MOGPLEX_URL is 'http://mogplex.internal', plain http to another machine" in str(info.value)
    assert "MOGPLEX_ALLOW_PLAIN_HTTP=true" in str(info.value)
    allowed = {"MOGPLEX_BASE_URL": "http://mogplex.internal", "MOGPLEX_ALLOW_PLAIN_HTTP": "true"}
    assert base_url_from_env(allowed) == "http://mogplex.internal"


def test_api_key_wins_over_token_as_in_the_cli() -> None:
    (source,) = sources_from_env({"MOGPLEX_TOKEN": "mog_token", "MOGPLEX_API_KEY": " mog_apikey\n"})
    assert source.name == "default"
    assert source.token.reveal() == "mog_apikey"


def test_named_sources() -> None:
    sources = sources_from_env({"MOGPLEX_TOKEN_ALICE": "mog_a", "MOGPLEX_TOKEN_BOB": "mog_b"})
    assert [s.name for s in sources] == ["alice", "bob"]


def test_empty_token_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="MOGPLEX_TOKEN is empty"):
        sources_from_env({"MOGPLEX_TOKEN": "  "})


def test_token_never_shows_itself() -> None:
    token = Token("mog_secretsecretsecret1234")
    (source,) = sources_from_env({"MOGPLEX_TOKEN": token.reveal()})
    for text in (repr(token), str(token), f"{token}", repr(source), str(source)):
        assert "secretsecret" not in text


@pytest.mark.parametrize(
    ("env", "sentence"),
    [
        (
            {"MOGPLEX_BASE_URL": "https://mogplex.com?x=1", "MOGPLEX_TOKEN": "mog_x"},
            "remove the query string",
        ),
        ({"MOGPLEX_BASE_URL": "gopher://mogplex.com", "MOGPLEX_TOKEN": "mog_x"}, "http(s) URL"),
        (
            {"MOGPLEX_BASE_URL": "http://10.0.0.7:8080", "MOGPLEX_TOKEN": "mog_x"},
            "the token would travel in clear text; use https, or set MOGPLEX_ALLOW_PLAIN_HTTP=true",
        ),
        ({"MOGPLEX_BASE_URL": "https://mogplex.com", "MOGPLEX_TOKEN": ""}, "MOGPLEX_TOKEN is empty"),
        ({"MOGPLEX_BASE_URL": "https://mogplex.com"}, "no token is"),
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG is 'maybe'; set it to true or false."),
        (
            {"BOARD_LOGIN_ATTEMPTS_PER_MINUTE": "0"},
            "BOARD_LOGIN_ATTEMPTS_PER_MINUTE is 0; set it to 1 or more.",
        ),
        (
            {"BOARD_TRUSTED_PROXIES": "10.0.0.5,proxy.internal"},
            "BOARD_TRUSTED_PROXIES holds 'proxy.internal', which is not an IP address or network;",
        ),
    ],
)
def test_bad_configuration_stops_start_up_with_one_sentence(env: dict[str, str], sentence: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MOGPLEX_", "DJANGO_"))}
    clean["DJANGO_SETTINGS_MODULE"] = "dashboard.settings"
    clean["DJANGO_SECRET_KEY"] = "x" * 50
    proc = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Configuration error:")
    assert sentence in lines[0]
    assert "Traceback" not in proc.stderr


def test_open_in_mogplex_lands_on_the_simulator_pages_in_the_demo() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MOGPLEX_", "DJANGO_"))}
    clean.update(
        DJANGO_SETTINGS_MODULE="dashboard.settings",
        # As compose's demo profile has it: .env's empty MOGPLEX_APP_URL, the simulator by service name.
        MOGPLEX_APP_URL="",
        SIMULATOR_URL="http://simulator:8765",
        SIMULATOR_PORT="8765",
    )
    proc = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "--no-imports",
            "-c",
            "from django.conf import settings; print(settings.MOGPLEX_APP_URL)",
        ],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip() == "http://127.0.0.1:8765", proc.stderr
