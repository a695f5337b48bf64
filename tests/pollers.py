"""Real Celery workers and beat for the poller's end-to-end tests.

A ``PollerGroup`` is one beat plus one or more ``celery worker`` processes,
started with the test session's environment plus a few overrides (sources,
compressed budget windows). Only one group runs at a time, so two beats never
plan against the same Redis; ``Pollers`` swaps groups when a test asks for a
different configuration and reuses the running one otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import redis
from django.conf import settings

from tests.waiting import wait_for

CELERY = str(Path(sys.executable).with_name("celery"))


def test_database_path() -> Path:
    """The file pytest-django creates the test database in (see tests/settings.py), on SQLite."""
    return Path(settings.DATABASES["default"]["TEST"]["NAME"])


def test_database_url() -> str:
    """The test database as a DATABASE_URL, for the processes a test starts (SQLite or PostgreSQL).

    Called once the test database exists (``django_db_setup``), when pytest-django has
    already put the test database's name in the connection settings.
    """
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{test_database_path()}"
    from urllib.parse import quote

    name = db["NAME"]
    auth = quote(str(db.get("USER") or ""), safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(str(db["PASSWORD"]), safe="")
    host = f"{auth}@" if auth else ""
    return f"postgres://{host}{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}/{name}"


class PollerGroup:
    """Beat and workers sharing one environment; logs go to the test var dir."""

    def __init__(self, overrides: dict[str, str], index: int) -> None:
        self.overrides = dict(overrides)
        self.index = index
        self.env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "PYTHONUNBUFFERED": "1",
            # Configured sources make the settings ask for a secret key of their own.
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            **self.overrides,
        }
        self.dir = Path(settings.VAR_DIR) / f"poller-{index}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.workers = 0
        self.beat: subprocess.Popen[bytes] | None = None

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [CELERY, "-A", "dashboard", *args],
            env=self.env,
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(proc)
        return proc

    def add_worker(self) -> subprocess.Popen[bytes]:
        """Start one more worker process on the same queue."""
        self.workers += 1
        return self._spawn(
            f"worker{self.workers}",
            [
                "worker",
                "--without-mingle",
                "--without-gossip",
                "--pool",
                "threads",
                "--concurrency",
                "4",
                "-Q",
                "celery",
                "-n",
                f"poller{self.index}-{self.workers}@%h",
                "--loglevel",
                "INFO",
            ],
        )

    def add_notifier(self) -> subprocess.Popen[bytes]:
        """Start a notifier: a worker on the ``notify`` queue alone, which also runs the watch loop."""
        self.notifiers = getattr(self, "notifiers", 0) + 1
        return self._spawn(
            f"notifier{self.notifiers}",
            [
                "worker",
                "--without-mingle",
                "--without-gossip",
                "--pool",
                "threads",
                "--concurrency",
                "4",
                "-Q",
                "notify",
                "-n",
                f"notifier{self.index}-{self.notifiers}@%h",
                "--loglevel",
                "INFO",
            ],
        )

    def stop_process(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop one process of the group (a worker restart, say), as ``docker compose restart`` would."""
        proc.terminate()
        proc.wait(timeout=15)
        self.processes.remove(proc)

    def start(self) -> None:
        self.add_worker()
        self.start_beat()

    def start_beat(self) -> None:
        """Start the group's beat (again, after ``stop_beat``), with the same schedule file."""
        assert self.beat is None or self.beat.poll() is not None, "beat is already running"
        self.beat = self._spawn(
            "beat",
            ["beat", "-s", str(self.dir / "beat-schedule"), "--pidfile=", "--loglevel", "INFO"],
        )

    def stop_beat(self) -> None:
        """Stop beat alone, as an operator's ``docker compose stop beat`` would; the workers keep running."""
        assert self.beat is not None, "beat was never started"
        self.beat.terminate()
        self.beat.wait(timeout=15)
        self.processes.remove(self.beat)

    def wait_ticking(self, client: redis.Redis, timeout: float = 60) -> None:
        """Wait until a tick has run end to end (beat sent it, a worker ran it) after now."""
        since = time.time()

        def ticked() -> bool:
            for proc in self.processes:
                assert proc.poll() is None, f"a poller process exited; see {self.dir}"
            raw = cast(bytes | None, client.get("board:heartbeat"))
            return raw is not None and float(raw) > since

        wait_for(ticked, timeout=timeout, what="the poller's first tick")

    def stop(self) -> None:
        for proc in self.processes:
            proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.processes.clear()

    def log_tail(self, lines: int = 40) -> str:
        """The end of every process's log, for failure messages."""
        parts = []
        for path in sorted(self.dir.glob("*.log")):
            parts.append(
                f"== {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            )
        return "\n".join(parts)


class Pollers:
    """At most one running ``PollerGroup`` per session, swapped when the configuration changes."""

    def __init__(self, broker_url: str) -> None:
        self.broker = redis.Redis.from_url(broker_url)
        self.current: PollerGroup | None = None
        self.started = 0

    def ensure(self, overrides: dict[str, str] | None = None, *, fresh: bool = False) -> PollerGroup:
        """The running group for ``overrides``, starting it (and stopping another) when needed."""
        wanted = dict(overrides or {})
        if self.current is not None and self.current.overrides == wanted and not fresh:
            return self.current
        self.stop()
        # Tasks left queued by the previous group name sources it knew; drop them.
        self.broker.flushdb()
        self.started += 1
        group = PollerGroup(wanted, self.started)
        group.start()
        self.current = group
        return group

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None
