"""The board's web app as ``make run`` and compose start it: gunicorn with gunicorn.conf.py, over real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from django.conf import settings

from tests import pollers
from tests.waiting import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WebServer:
    base_url: str
    log: Path
    var_dir: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def gunicorn_board(var_dir: Path, redis_url: str, **env: str) -> Iterator[WebServer]:
    """One gunicorn (one worker) on a free port, reading the test database; its stderr goes to ``var_dir/web.log``.

    Started from the repository root, which holds gunicorn.conf.py.
    """
    var_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = var_dir / "web.log"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "DATABASE_URL": pollers.test_database_url(),
        "REDIS_URL": redis_url,
        "BOARD_VAR_DIR": str(var_dir),
        **env,
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "dashboard.asgi",
                "--worker-class",
                "asgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
            ],
            cwd=settings.BASE_DIR,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = WebServer(f"http://127.0.0.1:{port}", log, var_dir, process)

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {process.returncode}: {server.log_text()}")
        try:
            return httpx.get(f"{server.base_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(answers, timeout=30, what="gunicorn to answer")
        yield server
    finally:
        process.terminate()
        process.wait(timeout=15)
