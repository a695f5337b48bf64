"""Settings for the test suite: the product's settings on throwaway ports and folders.

Chosen before ``dashboard.settings`` is imported and exported through the
environment, so that every process a test starts (simulator, Celery worker,
live server) agrees on them.
"""

import os
import socket
import tempfile


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if "BOARD_TEST_SESSION" not in os.environ:
    os.environ["BOARD_TEST_SESSION"] = "1"
    # DATABASE_URL=postgres://... runs the suite on that server (it creates and drops a
    # test_<name> database there); unset, on SQLite. Every process the tests start is
    # handed the test database as DATABASE_URL (tests/pollers.py test_database_url).
    os.environ["BOARD_TEST_DATABASE_URL"] = os.environ.get("DATABASE_URL", "").strip()
    os.environ["BOARD_VAR_DIR"] = tempfile.mkdtemp(prefix="board-test-")
    os.environ["SIMULATOR_PORT"] = str(_free_port())
    os.environ["EMBEDDED_VALKEY_PORT"] = str(_free_port())
    for name in list(os.environ):
        if name.startswith(("MOGPLEX_", "REDIS_URL", "DATABASE_URL", "DJANGO_", "BOARD_INGEST")):
            del os.environ[name]
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import dj_database_url  # noqa: E402

from dashboard.settings import *  # noqa: E402,F403

TEST_DATABASE_URL = os.environ.get("BOARD_TEST_DATABASE_URL", "")
if TEST_DATABASE_URL and "DATABASE_URL" not in os.environ:
    # The test session itself; the processes it starts get DATABASE_URL set to the test database.
    DATABASES = {"default": dj_database_url.parse(TEST_DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # The poller's tests run a real Celery worker in another process: it must see
    # the test database (a file, not pytest-django's in-memory one).
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}  # noqa: F405
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})  # noqa: F405
# A broker database that the per-test flush of the snapshot database leaves alone.
CELERY_BROKER_URL = REDIS_URL.rsplit("/", 1)[0] + "/1"  # noqa: F405
