"""A minute of ``make run`` on the demo scenario, at the default log level, counted line by line.

The budget (docs/operations.md, "Logs"): one line per upstream request, and at most
``OTHER_LINES_PER_MINUTE`` other lines a minute (new runs registered, page loads,
warnings), while a signed-in page polls every second (204s) and a wall screen loads;
the start-up ends with the board's address, the operator's name and the password
file; no line holds a token, a display link's secret or the operator's password.
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings as django_settings

from dashboard.simulator.control import SimulatorControl
from tests.waiting import wait_for

ROOT = Path(django_settings.BASE_DIR)
WINDOW_SECONDS = 60
OTHER_LINES_PER_MINUTE = 20

pytestmark = pytest.mark.worker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Output:
    """A child's merged stdout and stderr, line by line, as it comes."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def join(self) -> None:
        self._thread.join(timeout=30)


def run_env(var_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MOGPLEX_", "DJANGO_", "BOARD_", "REDIS_URL", "DATABASE_URL", "SIMULATOR_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="dashboard.settings",
        BOARD_VAR_DIR=str(var_dir),
        EMBEDDED_VALKEY_PORT=str(free_port()),
        SIMULATOR_PORT=str(free_port()),
        BOARD_PORT=str(free_port()),
    )
    return env


def test_a_minute_of_make_run_on_the_demo_is_quiet_and_says_where_to_sign_in(tmp_path: Path) -> None:
    env = run_env(tmp_path)
    board = f"http://127.0.0.1:{env['BOARD_PORT']}/"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out = Output(proc)
    try:
        wait_for(
            lambda: "Ctrl-C stops everything." in out.lines or proc.poll() is not None,
            timeout=240,
            what="make run to finish starting",
        )
        assert proc.poll() is None, "\n".join(out.lines)
        lines = list(out.lines)
        startup = lines[: lines.index("Ctrl-C stops everything.") + 1]
        assert startup[-4:] == [
            f"Board: {board}  (reading the bundled simulator)",
            "Operator: admin",
            f"Password file: {tmp_path / 'admin-password'}",
            "Ctrl-C stops everything.",
        ], "\n".join(startup)
        assert not any("Memory overcommit must be enabled" in line for line in startup)
        assert not any("superuser privileges" in line for line in startup)

        kiosk_url = subprocess.run(
            [sys.executable, "manage.py", "kiosk_link", "lobby-tv"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        assert kiosk_url.startswith(board + "kiosk/"), "kiosk_link prints the host the board printed"

        password = (tmp_path / "admin-password").read_text().strip()
        browser = httpx.Client(base_url=board, timeout=20, follow_redirects=True)
        login = browser.get("accounts/login/")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
        assert csrf
        page = browser.post(
            "accounts/login/",
            data={"csrfmiddlewaretoken": csrf.group(1), "username": "admin", "password": password},
        )
        version = re.search(r'id="board-version" name="v" value="([^"]+)"', page.text)
        assert version, page.text[:500]

        secrets = json.loads((tmp_path / "demo-secrets.json").read_text())
        sources = {"demo", *secrets["member_tokens"]}
        sim = SimulatorControl(f"http://127.0.0.1:{env['SIMULATOR_PORT']}")
        seen = max((r["seq"] for r in sim.requests()), default=0)
        start = len(out.lines)

        unchanged = 0
        ends = time.monotonic() + WINDOW_SECONDS
        tick = 0
        while time.monotonic() < ends:
            poll = browser.get(
                "", params={"v": html.unescape(version.group(1))}, headers={"HX-Request": "true"}
            )
            if poll.status_code == 204:
                unchanged += 1
            elif poll.status_code == 200:
                found = re.search(r'id="board-version" name="v" value="([^"]+)"', poll.text)
                version = found or version
            if tick % 15 == 0:
                assert httpx.get(kiosk_url, timeout=20).status_code == 200
            tick += 1
            time.sleep(1)  # the page's refresh interval: this is the load, not a synchronisation
        window = out.lines[start:]
        upstream = [r for r in sim.requests(since=seen) if r["token_name"] in sources]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        out.join()

    assert unchanged >= 10, "the page's polls were answered 204 when the board had not changed"
    request_lines = [line for line in window if " mogplex source=" in line]
    other = [line for line in window if " mogplex source=" not in line]
    # One line per upstream request (two a request would double it): at the window's edges a
    # request in flight (up to the worker's 8 threads) can fall on one side, its line on the other.
    assert len(upstream) >= 20, "the demo's sources were polled"
    assert abs(len(request_lines) - len(upstream)) <= 8, (len(request_lines), len(upstream))
    assert len(other) <= OTHER_LINES_PER_MINUTE, "\n".join(other)
    assert not [line for line in window if '"GET /?v=' in line], "no access line for a page's refresh poll"
    assert not [line for line in window if re.search(r"Task \S+\[[0-9a-f-]+\] (received|succeeded)", line)]
    assert not [line for line in window if "fetch source=" in line], "the poller does not repeat the client"

    everything = "\n".join(out.lines)
    for secret in (
        secrets["read_token"],
        secrets["write_token"],
        secrets["ingest_token"],
        *secrets["member_tokens"].values(),
        kiosk_url.rstrip("/").rsplit("/", 1)[1],
        password,
    ):
        assert secret not in everything


def shell(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


PER_TASK_AND_UPSTREAM = (
    "import logging; "
    "print(logging.getLogger('celery.app.trace').isEnabledFor(logging.INFO), "
    "logging.getLogger('dashboard.polling').isEnabledFor(logging.DEBUG))"
)


def test_debug_brings_the_per_task_and_per_fetch_lines_back(tmp_path: Path) -> None:
    env = run_env(tmp_path)

    assert shell(env, PER_TASK_AND_UPSTREAM).stdout.split() == ["False", "False"]
    assert shell({**env, "BOARD_LOG_LEVEL": "debug"}, PER_TASK_AND_UPSTREAM).stdout.split() == [
        "True",
        "True",
    ]


def test_json_log_format_writes_one_object_per_line(tmp_path: Path) -> None:
    env = {**run_env(tmp_path), "BOARD_LOG_FORMAT": "json"}

    done = shell(
        env,
        "import logging; logging.getLogger('dashboard.mogplex').warning("
        "'mogplex source=%s endpoint=%s outcome=%s', 'demo', '/runs/{id}/events', 'timeout', "
        "extra={'mogplex_source': 'demo'}); "
        "logging.getLogger('django.request').warning('Not Found: %s', '/kiosk/s3cr3t-display-token/')",
    )

    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(r["level"], r["logger"], r["message"]) for r in records] == [
        ("WARNING", "dashboard.mogplex", "mogplex source=demo endpoint=/runs/{id}/events outcome=timeout"),
        ("WARNING", "django.request", "Not Found: /kiosk/…/"),
    ]
    assert records[0]["mogplex_source"] == "demo" and "time" in records[0]


def test_a_bad_log_setting_stops_start_up_with_one_sentence(tmp_path: Path) -> None:
    done = shell({**run_env(tmp_path), "BOARD_LOG_FORMAT": "yaml"}, "pass")

    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "Configuration error: BOARD_LOG_FORMAT is 'yaml'; set it to one of text, json."
    ]
