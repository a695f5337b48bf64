"""The ``mogrun`` shell function of docs/operations.md, run as a team member would run it.

The block is read from the docs (so they stay true) and run by bash against the live
board's ingest endpoint with curl; ``mogplex`` is a stand-in script on PATH printing
what ``mogplex run --json`` prints (the CLI is not part of this project).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from pytest_django.fixtures import Settings

from dashboard.models import TrackedRun

INGEST_TOKEN = "ingest-token-for-the-shell-test-0123"
RUN_ID = "5b1e3c9a-7d2f-4e8b-9a6c-1f0e2d3c4b5a"
CLI_OUTPUT = json.dumps(
    {"runId": RUN_ID, "status": "pending", "eventsUrl": f"/api/v1/mogplex/runs/{RUN_ID}/events"},
    separators=(",", ":"),
)


def mogrun_definition() -> str:
    docs = (Path(django_settings.BASE_DIR) / "docs" / "operations.md").read_text()
    found = re.search(r"^mogrun\(\) \{\n.*?^\}\n", docs, re.S | re.M)
    assert found, "docs/operations.md defines mogrun()"
    return found.group(0)


@pytest.fixture
def board(settings: Settings, live_server: Any, valkey_server: str, redis_db: redis.Redis) -> str:
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed: apt-get install curl (.ci/run does)")
    settings.REDIS_URL = valkey_server
    settings.BOARD_INGEST_TOKEN = INGEST_TOKEN
    return str(live_server.url)


def mogrun(
    tmp_path: Path, board: str, *args: str, token: str = INGEST_TOKEN, cli_exit: int = 0
) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    cli = bin_dir / "mogplex"
    cli.write_text(
        "#!/bin/bash\n"
        '[ "$1 $2" = "run --json" ] || { echo "called as: $*" >&2; exit 64; }\n'
        + (
            f"echo '{CLI_OUTPUT}'\n"
            if cli_exit == 0
            else f"""echo '{{"ok":false,"error":{{"code":"RATE_LIMITED"}}}}'; exit {cli_exit}\n"""
        )
    )
    cli.chmod(0o755)
    return subprocess.run(
        ["bash", "-c", mogrun_definition() + 'mogrun "$@"', "mogrun", *args],
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "BOARD_URL": board + "/",
            "BOARD_INGEST_TOKEN": token,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.django_db(transaction=True)
def test_mogrun_starts_a_run_and_the_board_follows_it(board: str, tmp_path: Path) -> None:
    done = mogrun(tmp_path, board, "--repo", "acme/web", "Fix the flaky test")

    assert done.returncode == 0, done.stderr
    assert done.stdout == CLI_OUTPUT + "\n", "what mogplex run --json prints, unchanged"
    assert done.stderr == f"Following it on the board: {board}/\n"
    assert TrackedRun.objects.get(run_id=RUN_ID).via == TrackedRun.Via.INGEST


@pytest.mark.django_db(transaction=True)
def test_mogrun_says_why_when_the_board_refuses(board: str, tmp_path: Path) -> None:
    done = mogrun(tmp_path, board, "Fix it", token="not-the-ingest-token")

    assert done.returncode == 1
    assert done.stderr == (
        'The board did not take the run: {"error": "Send the board\'s ingest token as '
        "'Authorization: Bearer <token>'.\"}\n"
    )
    assert not TrackedRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_mogrun_says_when_the_board_does_not_answer(board: str, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{sock.getsockname()[1]}"

    done = mogrun(tmp_path, nowhere, "Fix it")

    assert done.returncode == 1
    assert done.stderr == f"The board did not take the run: no answer from {nowhere}\n"


@pytest.mark.django_db(transaction=True)
def test_mogrun_keeps_the_cli_exit_code_and_tells_the_board_nothing(board: str, tmp_path: Path) -> None:
    done = mogrun(tmp_path, board, "Fix it", cli_exit=75)

    assert done.returncode == 75
    assert '"RATE_LIMITED"' in done.stdout
    assert not TrackedRun.objects.exists()
