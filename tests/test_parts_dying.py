"""Our own processes dying: beat without its broker, the worker losing Valkey, ``manage.py run`` supervising.

Real processes throughout: a Valkey of the test's own that is killed with
SIGKILL and started again on the same port, real Celery beat and worker, and
``manage.py run`` with its embedded Valkey, the simulator, gunicorn, worker and beat.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.valkey import OwnValkey
from tests.waiting import wait_for

CELERY = str(Path(sys.executable).with_name("celery"))


@pytest.fixture
def own_valkey(tmp_path: Path) -> Iterator[OwnValkey]:
    server = OwnValkey(tmp_path / "valkey")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def celery(role: str, args: list[str], redis_url: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [CELERY, "-A", "dashboard", role, *args],
            cwd=settings.BASE_DIR,
            env={**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1", **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def test_beat_logs_one_line_per_broker_outage_not_one_per_tick(tmp_path: Path, own_valkey: OwnValkey) -> None:
    log = tmp_path / "beat.log"
    beat = celery(
        "beat",
        ["-s", str(tmp_path / "beat-schedule"), "--pidfile=", "--loglevel", "INFO"],
        own_valkey.url,
        log,
    )
    sends = "Scheduler: Sending due task poll-tick"
    try:
        wait_for(lambda: log.read_text().count(sends) >= 2, timeout=30, what="beat sending ticks")
        own_valkey.kill()
        at_outage = log.read_text().count(sends)
        # Five ticks tried, and failed, while the broker is away.
        wait_for(
            lambda: log.read_text().count(sends) >= at_outage + 5, timeout=60, what="beat trying five ticks"
        )
        own_valkey.start()
        wait_for(
            lambda: "sends dashboard.polling.tasks.poll_tick to the broker again" in log.read_text(),
            timeout=60,
            what="beat sending again",
        )
    finally:
        stop(beat)
    text = log.read_text()
    cannot = [line for line in text.splitlines() if "beat cannot send" in line]
    assert len(cannot) == 1, text
    assert " WARNING " in cannot[0]
    assert "Traceback" not in text
    assert "Message Error" not in text
