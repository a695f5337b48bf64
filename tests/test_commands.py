"""Operator commands: ``track`` (tell the board about runs) and ``board`` (read it from a shell)."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import redis
from django.conf import settings as django_settings
from django.core.management import call_command
from pytest_django.fixtures import Settings

from dashboard import snapshots
from dashboard.models import TrackedRun

RUN = "3f2b8c1e-5d4a-4b6c-9e8f-0a1b2c3d4e5f"
OTHER = "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d"
HINT = "paste the UUID from `mogplex run --json` (its runId) or the run's web address."


def run_command(name: str, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run a management command in-process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    extra: dict[str, Any] = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    try:
        call_command(name, *args, stdout=out, stderr=err, **extra)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


# --- track ---------------------------------------------------------------------


@pytest.mark.django_db
def test_track_takes_ids_and_run_addresses() -> None:
    code, out, _ = run_command("track", RUN.upper(), f"https://www.mogplex.com/runs/{OTHER}/")

    assert code == 0
    assert out.splitlines() == [f"tracking {RUN}", f"tracking {OTHER}"]
    rows = TrackedRun.objects.all()
    assert {r.run_id for r in rows} == {UUID(RUN), UUID(OTHER)}
    assert {(r.via, r.lookup) for r in rows} == {("command", "new")}


@pytest.mark.django_db
def test_track_again_says_already_tracking() -> None:
    run_command("track", RUN)

    code, out, _ = run_command("track", RUN, OTHER)

    assert code == 0
    assert out.splitlines() == [f"already tracking {RUN}", f"tracking {OTHER}"]
    assert TrackedRun.objects.count() == 2


@pytest.mark.django_db
def test_track_reads_mogplex_run_json_from_stdin() -> None:
    printed = (
        json.dumps({"runId": RUN, "status": "pending", "replayed": False})
        + "\n"
        + json.dumps({"runId": OTHER, "status": "pending", "replayed": True})
        + "\n"
    )

    code, out, err = run_command("track", "-", stdin=printed)

    assert code == 0
    assert out.splitlines() == [f"tracking {RUN}", f"tracking {OTHER}"]
    assert "looks new runs up" in err
    assert TrackedRun.objects.count() == 2


@pytest.mark.django_db
def test_track_keeps_the_repo_and_the_named_source_for_the_lookup() -> None:
    printed = json.dumps({"runId": RUN, "repoId": OTHER, "status": "pending"}) + "\n"

    code, _, _ = run_command("track", "--source", "ada", "-", stdin=printed)

    assert code == 0
    row = TrackedRun.objects.get(run_id=RUN)
    assert (str(row.repo_id), row.source_hint) == (OTHER, "ada")
    code, _, err = run_command("track", "--source", "nobody", OTHER)
    assert code == 2
    assert err.strip().startswith(
        "No source is named 'nobody'; name one of the configured sources (demo, ada"
    )
    assert not TrackedRun.objects.filter(run_id=OTHER).exists()


@pytest.mark.django_db
def test_track_reads_one_id_or_address_per_line_from_stdin() -> None:
    code, out, _ = run_command("track", "-", stdin=f"{RUN}\nhttps://www.mogplex.com/runs/{OTHER}\n\n")

    assert code == 0
    assert out.splitlines() == [f"tracking {RUN}", f"tracking {OTHER}"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        ((RUN, "abc"), None, f"'abc' is not a Mogplex run id or run URL; {HINT}"),
        (("-",), f"{RUN}\nnot-a-run\n", f"Line 2: 'not-a-run' is not a Mogplex run id or run URL; {HINT}"),
        (
            ("-",),
            json.dumps({"runId": RUN}) + "\n" + json.dumps({"status": "pending"}) + "\n",
            "The JSON on line 2 has no runId; feed the output of `mogplex run --json` (one object, or one per line).",
        ),
        (("-",), "", f"No run id was given; {HINT}"),
        ((), None, "Give run ids or run web addresses to track, or '-' to read `mogplex run --json` output."),
    ],
)
def test_track_refuses_bad_input_with_one_sentence_and_exit_2(
    args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    run_command("track", OTHER)
    before = list(TrackedRun.objects.values_list("run_id", flat=True))

    code, out, err = run_command("track", *args, stdin=stdin)

    assert code == 2
    assert err.strip() == message
    assert out == ""
    assert list(TrackedRun.objects.values_list("run_id", flat=True)) == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stdin", ["[" * 60_000, '{"runId": ' * 1_500 + '"x"' + "}" * 1_500])
def test_track_reading_deep_json_says_one_sentence(stdin: str) -> None:
    from tests.pollers import test_database_url

    run_command("track", OTHER)
    env = {**os.environ, "DATABASE_URL": test_database_url()}

    finished = subprocess.run(
        [sys.executable, "manage.py", "track", "-"],
        cwd=Path(django_settings.BASE_DIR),
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode == 2
    assert finished.stderr.strip() == (
        "The JSON on line 1 is nested too deeply to be a run; "
        "feed the output of `mogplex run --json` (one object, or one per line)."
    )
    assert list(TrackedRun.objects.values_list("run_id", flat=True)) == [UUID(OTHER)]


@pytest.mark.django_db
def test_track_list_shows_tracked_runs() -> None:
    run_command("track", RUN)
    TrackedRun.objects.filter(run_id=RUN).update(
        source="team", lookup=TrackedRun.Lookup.FOUND, status="streaming"
    )

    code, out, _ = run_command("track", "--list")

    assert code == 0
    assert out.split()[:4] == [RUN, "team", "found", "streaming"]


@pytest.mark.django_db
def test_track_list_with_nothing_tracked_says_how_to_start() -> None:
    code, out, err = run_command("track", "--list")
    assert (code, out) == (0, "")
    assert "manage.py track RUN_ID_OR_URL" in err


# --- board ---------------------------------------------------------------------


@pytest.fixture
def board_redis(settings: Settings, redis_db: redis.Redis, valkey_server: str) -> redis.Redis:
    settings.REDIS_URL = valkey_server
    return redis_db


def source(name: str, state: str, message: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "state": state,
        "message": message,
        "last_success_at": time.time() - 5,
        "last_error_at": None,
        "last_error_kind": None,
        "paused_until": None,
        "budget": 50,
        "budget_used": 12,
        "window_seconds": 60,
        "effective_interval_seconds": 10,
        "active_runs": 1,
    }


def composed(*sources: dict[str, Any], runs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    now = time.time()
    return {
        "composed_at": now - 3,
        "heartbeat_at": now - 1,
        "sources": list(sources),
        "runs": runs or [],
        "sandboxes": [],
        "sandboxes_fetched_at": {},
    }


def test_board_json_prints_the_composed_board(board_redis: redis.Redis) -> None:
    board = composed(source("demo", "ok"), runs=[{"run_id": RUN, "status": "streaming"}])
    version = snapshots.board_write(board)

    code, out, err = run_command("board", "--json")

    assert (code, err) == (0, "")
    printed = json.loads(out)
    assert printed["version"] == version
    assert printed["runs"][0]["run_id"] == RUN


def test_board_summary_counts_runs_and_shows_sources(board_redis: redis.Redis) -> None:
    runs = [
        {"run_id": RUN, "status": "streaming"},
        {"run_id": OTHER, "status": "streaming"},
        {"run_id": "x", "status": "failed\x1b[2J"},
    ]
    snapshots.board_write(composed(source("demo", "ok"), runs=runs))

    code, out, _ = run_command("board")

    assert code == 0
    assert "Runs: 3 (2 streaming, 1 failed?[2J)" in out
    assert "demo: ok; budget 12/50 per 60s; runs refresh every 10s" in out
    assert "\x1b" not in out


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["ok"], 0),
        (["unknown"], 0),
        (["unauthorized"], 64),
        (["forbidden"], 65),
        (["rate_limited"], 75),
        (["unavailable"], 69),
        (["timeout"], 69),
        (["protocol"], 69),
        (["redirect"], 69),
        (["unavailable", "rate_limited", "forbidden", "unauthorized"], 64),
        (["unavailable", "rate_limited", "forbidden"], 65),
        (["unavailable", "rate_limited", "ok"], 75),
        ([], 64),
    ],
)
def test_board_exit_code_follows_the_worst_source(
    board_redis: redis.Redis, states: list[str], expected: int
) -> None:
    sources = [source(f"s{i}", state, f"Source problem {state}.") for i, state in enumerate(states)]
    snapshots.board_write(composed(*sources))

    for args in ((), ("--json",)):
        code, out, err = run_command("board", *args)
        assert code == expected
        assert out
        if expected:
            assert err.strip()


def test_board_without_a_composed_board_exits_69(board_redis: redis.Redis) -> None:
    code, out, err = run_command("board", "--json")

    assert (code, out) == (69, "")
    assert err.strip() == (
        "No board has been composed yet; start the poller (Celery worker and beat, or `manage.py run`)."
    )


def test_board_with_redis_unreachable_exits_69(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"

    code, out, err = run_command("board")

    assert (code, out) == (69, "")
    assert err.strip() == "Redis is unreachable; check REDIS_URL and that Redis (or `manage.py run`) is up."


def test_board_exit_code_reaches_the_shell(board_redis: redis.Redis, valkey_server: str) -> None:
    snapshots.board_write(composed(source("demo", "unauthorized", "Mogplex rejected the token (401).")))
    env = {**os.environ, "REDIS_URL": valkey_server}

    finished = subprocess.run(
        [sys.executable, "manage.py", "board"],
        cwd=Path(django_settings.BASE_DIR),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode == 64
    assert "Source demo is unauthorized: Mogplex rejected the token (401)." in finished.stderr


def test_board_exits_69_when_the_poller_is_silent(board_redis: redis.Redis) -> None:
    now = time.time()
    board = composed(source("demo", "unauthorized", "Mogplex rejected the token (401)."))
    snapshots.board_write(board)
    snapshots.heartbeat_write(now - django_settings.BOARD_STALE_SECONDS - 30)

    code, out, err = run_command("board", "--json")

    assert code == 69, "a silent poller comes before the sources' (old) states"
    assert json.loads(out)["state"] == "poller_down"
    assert err.strip().startswith("The poller has not reported for 2m (over BOARD_STALE_SECONDS")

    snapshots.heartbeat_write(time.time())
    code, out, _ = run_command("board", "--json")
    assert code == 64 and json.loads(out)["state"] != "poller_down"


def test_notifier_health_follows_the_notifier_heartbeat(board_redis: redis.Redis) -> None:
    code, _, err = run_command("notifier_health")
    assert code == 1 and err.strip().startswith("The notifier has not reported yet")

    snapshots.notifier_heartbeat_write(time.time() - 100)
    code, _, err = run_command("notifier_health")
    assert code == 1 and "it is stopped or stuck." in err

    snapshots.notifier_heartbeat_write(time.time())
    code, out, _ = run_command("notifier_health")
    assert code == 0 and out.startswith("ok: the notifier watched the board")
