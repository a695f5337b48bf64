"""Display tokens stay out of log lines: Django's request log and gunicorn's access log.

A wall's display token is part of its URL (``/kiosk/<token>/``, ``?display=``),
and both Django (the path of every 4xx/5xx answer) and gunicorn (every request)
log URLs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings

from dashboard.models import DisplayToken
from tests import pollers
from tests.waiting import wait_for
from tests.webserver import gunicorn_board


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_django_logs_kiosk_errors_without_the_display_token(
    caplog: pytest.LogCaptureFixture,
    db: None,
    redis_db: redis.Redis,
    settings: Settings,
    valkey_server: str,
) -> None:
    settings.REDIS_URL = valkey_server
    _, raw = DisplayToken.issue("lobby")
    client = Client()
    with caplog.at_level("INFO"):
        assert client.get(f"/kiosk/{raw}/", {"refresh": "often"}).status_code == 400
        token, revoked = DisplayToken.issue("hall")
        DisplayToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
        # A revoked link is told so (410); an unknown one learns nothing (404): both are logged.
        assert client.get(f"/kiosk/{revoked}/").status_code == 410
        assert client.get("/api/board.json", {"display": revoked}).status_code == 410
        assert client.get("/kiosk/not-a-display-token/").status_code == 404
    lines = [record.getMessage() for record in caplog.records if record.name == "django.request"]
    assert any("/kiosk/…/" in line for line in lines), lines
    assert not [line for line in lines if raw in line or revoked in line]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_gunicorn_access_log_has_no_display_token(
    tmp_path: Path, transactional_db: None, valkey_server: str, redis_db: redis.Redis, log_format: str
) -> None:
    _, raw = DisplayToken.issue("lobby")
    port = free_port()
    access_log = tmp_path / "access.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "DJANGO_SECRET_KEY": django_settings.SECRET_KEY,
        "DATABASE_URL": pollers.test_database_url(),
        "REDIS_URL": valkey_server,
        "BOARD_VAR_DIR": str(tmp_path),
        "BOARD_LOG_FORMAT": log_format,
    }
    # Started as make run and compose start it: from the repository root, which holds gunicorn.conf.py.
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "dashboard.asgi",
            "--worker-class",
            "asgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--access-logfile",
            str(access_log),
        ],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answers, timeout=30, what="gunicorn to answer")
        assert httpx.get(f"{base}/kiosk/{raw}/", timeout=10).status_code == 200
        assert httpx.get(f"{base}/kiosk/{raw}/", params={"refresh": "often"}, timeout=10).status_code == 400
        httpx.get(f"{base}/api/board.json", params={"display": raw}, timeout=10)

        def own_lines() -> str | None:
            # Its own three requests, whatever number of health checks came before them.
            log = access_log.read_text()
            return log if sum("/healthz" not in line for line in log.splitlines()) >= 3 else None

        text = wait_for(own_lines, timeout=10, what="the access log lines")
    finally:
        web.terminate()
        web.wait(timeout=15)
    assert "GET /kiosk/…/ " in text and "display=…" in text
    assert raw not in text
    if log_format == "json":
        requests = [json.loads(line) for line in text.splitlines()]
        assert {(r["request"], r["status"]) for r in requests} >= {
            ("GET /kiosk/…/ HTTP/1.1", "200"),
            ("GET /kiosk/…/?refresh=often HTTP/1.1", "400"),
        }


def test_gunicorn_debug_lines_have_no_display_token(
    tmp_path: Path, transactional_db: None, valkey_server: str, redis_db: redis.Redis
) -> None:
    # At debug, gunicorn itself writes each request's method and path to its error log.
    _, raw = DisplayToken.issue("lobby")
    with gunicorn_board(tmp_path, valkey_server, BOARD_LOG_LEVEL="DEBUG") as web:
        assert httpx.get(f"{web.base_url}/kiosk/{raw}/", timeout=10).status_code == 200
        text = wait_for(
            lambda: web.log_text() if "GET /kiosk/" in web.log_text() else None,
            timeout=10,
            what="gunicorn's debug line for the kiosk",
        )
    assert "GET /kiosk/…/" in text
    assert raw not in text
