"""``manage.py poller_health``: the worker's and beat's health check in the compose file."""

from __future__ import annotations

import socket
import time

import pytest
import redis
from pytest_django.fixtures import Settings

from dashboard import snapshots
from tests.test_commands import run_command


@pytest.fixture
def board_redis(settings: Settings, redis_db: redis.Redis, valkey_server: str) -> redis.Redis:
    settings.REDIS_URL = valkey_server
    return redis_db


def test_a_recent_heartbeat_is_healthy(board_redis: redis.Redis) -> None:
    snapshots.heartbeat_write(time.time() - 3)

    code, out, err = run_command("poller_health")

    assert (code, err) == (0, "")
    assert out.strip() == "ok: the poller reported 3 s ago"


def test_an_old_heartbeat_is_unhealthy_and_says_so(board_redis: redis.Redis) -> None:
    snapshots.heartbeat_write(time.time() - 95)

    code, out, err = run_command("poller_health")

    assert (code, out) == (1, "")
    assert err.strip() == (
        "The poller last reported 95 s ago (more than 30 s); the worker or beat is stopped or stuck."
    )


def test_no_heartbeat_yet_is_unhealthy(board_redis: redis.Redis) -> None:
    code, _, err = run_command("poller_health")

    assert code == 1
    assert err.strip() == "The poller has not reported yet; is beat running, and a worker?"


def test_redis_unreachable_is_unhealthy(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"

    code, _, err = run_command("poller_health")

    assert code == 1
    assert err.strip() == "Redis cannot be reached (ConnectionError); the poller cannot report."
