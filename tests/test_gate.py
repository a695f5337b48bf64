"""The source gate against the real Valkey and the simulator over HTTP: admission, outcomes, an empty store.

Most tests run the poller's tasks in this process (they are plain functions),
so a fetch goes plan -> admit -> call -> settle -> record exactly as in a worker.
The contention and restart tests start real worker-like processes
(tests/gate_hammer.py) that share the gate through Redis.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import time_machine
from django.conf import settings as django_settings
from django.test import Client
from pytest_django.fixtures import Settings

from dashboard import snapshots
from dashboard.models import BudgetMark, TrackedRun
from dashboard.mogplex.config import Source, Token
from dashboard.mogplex.errors import RateLimited, Unavailable
from dashboard.polling import gate
from dashboard.polling.tasks import (
    account_fetch,
    board_compose,
    run_events_fetch,
    sandbox_logs_fetch,
    sandboxes_fetch,
)
from dashboard.simulator.control import SimulatorControl
from tests import pollers
from tests.gate_hammer import violations
from tests.waiting import wait_for


def _token() -> str:
    return "mog_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))


def _source(sim: SimulatorControl, settings: Settings, scopes: list[str] | None = None) -> tuple[str, str]:
    """A source of its own on the session's simulator, configured for this process; its name and token."""
    name = f"gate{secrets.token_hex(3)}"
    token = _token()
    sim.register_token(name, token, ["read"] if scopes is None else scopes, user=name)
    settings.MOGPLEX_TOKENS = [Source(name, Token(token))]
    return name, token


@pytest.fixture(autouse=True)
def _board(settings: Settings, redis_db: redis.Redis, valkey_server: str, simulator_server: str) -> None:
    settings.REDIS_URL = valkey_server
    settings.MOGPLEX_BASE_URL = simulator_server


def _text(markup: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", markup).replace("&#x27;", "'").split())


# --- the window -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_source_gets_its_budget_and_no_more(settings: Settings) -> None:
    settings.MOGPLEX_BUDGET = 5
    settings.MOGPLEX_BUDGET_WINDOW_SECONDS = 1
    answers = [gate.admit("alice", "/sandboxes") for _ in range(7)]
    assert [a.admitted for a in answers] == [True] * 5 + [False] * 2
    assert answers[-1].reason == "budget"
    # The first slot frees one board window (upstream's + a second) after it was taken.
    assert answers[-1].until == pytest.approx(answers[0].sent_at + 2, abs=0.01)
    assert gate.used("alice") == 5
    assert gate.admit("bob", "/sandboxes").admitted, "another source has its own window"
    wait_for(lambda: gate.admit("alice", "/sandboxes").admitted, timeout=5, what="the window to roll on")


# Transactional: each thread has a database connection of its own, outside the test's
# transaction, so the budget marks they write are only cleared by a flush.
@pytest.mark.django_db(transaction=True)
def test_the_budget_holds_across_many_threads(settings: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    settings.MOGPLEX_BUDGET = 10
    with ThreadPoolExecutor(max_workers=8) as pool:
        granted = list(pool.map(lambda _: gate.admit("alice", "/sandboxes").admitted, range(40)))
    assert sum(granted) == 10


# --- outcomes ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_429_pauses_its_source_until_retry_after_and_a_longer_pause_wins() -> None:
    admission = gate.admit("alice", "/sandboxes")
    until = gate.settle("alice", "/sandboxes", admission, RateLimited(retry_after=60))
    assert until == pytest.approx(time.time() + 60, abs=1)
    refused = gate.admit("alice", "/runs/{id}/events")
    assert (refused.admitted, refused.reason, refused.until) == (False, "paused", until)
    assert gate.admit("bob", "/sandboxes").admitted
    # A shorter pause from a request that was in flight never shortens it.
    assert gate.settle("alice", "/sandboxes", admission, RateLimited(retry_after=1)) == until
    # The pause is durable: the database knows it too.
    assert BudgetMark.objects.get(source="alice").paused_until == until


@pytest.mark.django_db
def test_back_off_doubles_to_a_60_s_cap_with_jitter_then_sends_one_probe() -> None:
    with time_machine.travel(datetime(2026, 1, 5, 9, 0, tzinfo=UTC), tick=False) as clock:
        delays = []
        for failure in range(1, 11):
            probe = gate.admit("alice", "/sandboxes")
            assert probe.admitted and probe.reason == ("ok" if failure == 1 else "probe")
            if failure > 1:
                # While the probe is out, nothing else is sent.
                assert gate.admit("alice", "/sandboxes").reason == "probing"
            until = gate.settle("alice", "/sandboxes", probe, Unavailable("down", status=502))
            delay = until - time.time()
            ceiling = min(60.0, 2.0 ** (failure - 1))
            assert ceiling / 2 <= delay <= ceiling, f"failure {failure}: {delay:.2f} s"
            assert gate.admit("alice", "/sandboxes").reason == "backoff"
            delays.append(delay)
            clock.shift(delay + 0.01)
        assert max(delays) <= 60
        assert len({round(d, 3) for d in delays[-4:]}) > 1, "the capped back-offs are jittered"
        probe = gate.admit("alice", "/sandboxes")
        assert probe.reason == "probe"
        gate.settle("alice", "/sandboxes", probe)
        assert gate.admit("alice", "/sandboxes").reason == "ok"
        assert gate.blocked_until("alice") == 0


@pytest.mark.django_db
def test_requests_in_flight_when_a_failure_came_back_do_not_double_the_back_off() -> None:
    in_flight = [gate.admit("alice", "/sandboxes") for _ in range(5)]
    first = gate.settle("alice", "/sandboxes", in_flight[0], Unavailable("down", status=500))
    for admission in in_flight[1:]:
        assert gate.settle("alice", "/sandboxes", admission, Unavailable("down", status=500)) == first
    assert gate.read("alice").failures == 1


@pytest.mark.django_db
def test_upstream_requests_and_429s_are_counted_on_a_metrics_scrape(
    settings: Settings, sim: SimulatorControl, client: Client
) -> None:
    name, _ = _source(sim, settings)
    for _ in range(3):
        sandboxes_fetch(name)
    sim.inject_fault("500", token=name, count=1)
    sandboxes_fetch(name)
    gate.reset(name)  # no back-off in the way of the next request
    sim.inject_fault("429", token=name, count=1)
    sandboxes_fetch(name)
    sandboxes_fetch(name)  # paused: refused, never sent, never counted
    assert [r["status"] for r in sim.requests() if r["token_name"] == name] == [200, 200, 200, 500, 429]
    body = client.get("/metrics").content.decode()
    assert f'mogplex_board_upstream_requests_total{{outcome="ok",source="{name}"}} 3.0' in body
    assert f'mogplex_board_upstream_requests_total{{outcome="unavailable",source="{name}"}} 1.0' in body
    assert f'mogplex_board_upstream_requests_total{{outcome="rate_limited",source="{name}"}} 1.0' in body
    assert f'mogplex_board_upstream_rate_limited_total{{source="{name}"}} 1.0' in body


# --- 403 on an endpoint that needs the read scope ------------------------------------------------


@pytest.mark.django_db
def test_a_403_on_a_read_scope_endpoint_pauses_that_endpoint_only(
    settings: Settings, sim: SimulatorControl, admin_client: Client
) -> None:
    # A PAT with the write scope only: runs, sandboxes and repos need no scope upstream,
    # /models and sandbox logs need 'read'.
    name, _ = _source(sim, settings, scopes=["write"])
    run_id = sim.create_run(name)["runId"]
    sandbox = sim.set_run_status(run_id, "streaming")["sandboxRecordId"]
    TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND, lookup="found", source=name)

    account_fetch(name)
    sandbox_logs_fetch(name, sandbox)
    sandboxes_fetch(name)
    run_events_fetch(name, run_id)
    account_fetch(name)  # /models is not asked again while it is denied
    sandbox_logs_fetch(name, sandbox)
    board_compose()

    sent = [
        (r["path"].removeprefix("/api/v1/mogplex"), r["status"])
        for r in sim.requests()
        if r["token_name"] == name
    ]
    assert sent == [
        ("/api/auth/user", 200),
        ("/models", 403),
        (f"/sandboxes/{sandbox}/logs", 403),
        ("/sandboxes", 200),
        (f"/runs/{run_id}/events", 200),
        ("/api/auth/user", 200),
    ]
    health = snapshots.source_health_read(name) or {}
    assert health["state"] == "ok"
    assert health["denied_endpoints"] == ["/models", "/sandboxes/{id}/logs"]
    board = snapshots.board_read() or {}
    assert [r["status"] for r in board["runs"] if r["run_id"] == run_id] == ["streaming"]

    page = _text(admin_client.get("/").content.decode())
    assert f"Source {name} is" not in page
    assert (
        "The token cannot read /models, /sandboxes/{id}/logs (403: it lacks the 'read' scope); "
        "the rest is fetched as usual."
    ) in page
    logs = _text(admin_client.get(f"/sandboxes/{sandbox}/logs/").content.decode())
    assert "lacks the read scope that sandbox logs need" in logs


# --- "Load logs" says the real reason ------------------------------------------------------------


LOGS_REASONS = [
    ("401", "Source {name} is unauthorized: Mogplex rejects this source's token (401)"),
    ("403", "The source's token lacks the read scope that sandbox logs need"),
    ("429", "Source {name} is rate limited: Mogplex rate-limited this token (429)"),
    ("500", "Source {name} is unavailable: Mogplex is failing or unreachable"),
    ("malformed_json", "Source {name} is protocol: Mogplex answered with something that is not the v1 API"),
    ("redirect", "Source {name} is redirect: Mogplex answered with a redirect"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("fault", "reason"), LOGS_REASONS, ids=[f for f, _ in LOGS_REASONS])
def test_load_logs_says_the_sources_real_state_not_the_budget(
    settings: Settings, sim: SimulatorControl, admin_client: Client, fault: str, reason: str
) -> None:
    name, _ = _source(sim, settings)
    sandbox = sim.create_sandbox(name, status="running")["id"]
    sandboxes_fetch(name)
    board_compose()
    sim.inject_fault(fault, token=name)
    # The board's clock stands still, so a back-off of half a second is still on when asked again.
    with time_machine.travel(time.time(), tick=False):
        sandbox_logs_fetch(name, sandbox)
        shown = _text(admin_client.get(f"/sandboxes/{sandbox}/logs/").content.decode())
        assert reason.format(name=name) in shown
        assert "budget" not in shown

        # Asked again while the source is held back: nothing is sent, and the page says
        # why and when the next try is.
        before = len(sim.requests())
        sandbox_logs_fetch(name, sandbox)
        assert len(sim.requests()) == before
        again = _text(admin_client.get(f"/sandboxes/{sandbox}/logs/").content.decode())
        assert reason.format(name=name) in again
        assert "budget" not in again
        if fault != "403":
            assert "Next try in" in again


@pytest.mark.django_db
def test_load_logs_says_when_the_budget_really_is_spent(
    settings: Settings, sim: SimulatorControl, admin_client: Client
) -> None:
    settings.MOGPLEX_BUDGET = 2
    name, _ = _source(sim, settings)
    sandbox = sim.create_sandbox(name, status="running")["id"]
    sandboxes_fetch(name)
    board_compose()
    sandboxes_fetch(name)
    sandbox_logs_fetch(name, sandbox)
    shown = _text(admin_client.get(f"/sandboxes/{sandbox}/logs/").content.decode())
    assert f"Source {name}: the source's request budget for this window is spent. Next try in" in shown


@pytest.mark.django_db
def test_the_source_row_says_when_the_next_try_is(
    settings: Settings, sim: SimulatorControl, admin_client: Client
) -> None:
    name, _ = _source(sim, settings)
    sim.inject_fault("500", token=name)
    with time_machine.travel(time.time(), tick=False):
        sandboxes_fetch(name)
        board_compose()
        markup = admin_client.get("/").content.decode()
    row = re.search(rf'<tr id="source-{name}".*?</tr>', markup, re.DOTALL)
    assert row is not None
    assert re.search(r"unavailable · next try in [0-9]s", _text(row.group(0)))


# --- an empty store ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_empty_store_holds_a_source_that_was_sending_for_one_window(redis_db: redis.Redis) -> None:
    sent = gate.admit("alice", "/sandboxes")
    assert sent.admitted
    paused = gate.settle("bob", "/sandboxes", gate.admit("bob", "/sandboxes"), RateLimited(retry_after=600))
    redis_db.flushdb()  # the store restarts without persistence

    held = gate.admit("alice", "/sandboxes")
    assert (held.admitted, held.reason) == (False, "hold")
    assert held.until == pytest.approx(
        sent.sent_at + gate.MARK_EVERY_SECONDS + gate.window_seconds(), abs=0.01
    )
    assert gate.admit("bob", "/sandboxes").until == pytest.approx(paused, abs=0.01), "the 429's pause is kept"
    assert gate.admit("carol", "/sandboxes").admitted, "a source that had not been sending starts at once"
    with time_machine.travel(held.until + 0.01, tick=False):
        assert gate.admit("alice", "/sandboxes").admitted


def _hammer_env(name: str, token: str, sim_url: str, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": pollers.test_database_url(),
        "DJANGO_SECRET_KEY": django_settings.SECRET_KEY,
        "REDIS_URL": django_settings.REDIS_URL,
        "MOGPLEX_BASE_URL": sim_url,
        f"MOGPLEX_TOKEN_{name.upper()}": token,
        **more,
    }


def _hammer(
    env: dict[str, str], name: str, out: Path, *, threads: int, seconds: float, start_at: float
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.gate_hammer",
            "--source",
            name,
            "--threads",
            str(threads),
            "--seconds",
            str(seconds),
            "--start-at",
            repr(start_at),
            "--out",
            str(out),
        ],
        env=env,
        cwd=django_settings.BASE_DIR,
    )


def _records(paths: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(line) for path in paths for line in path.read_text().splitlines() if line]


@pytest.mark.django_db(transaction=True)
def test_an_empty_store_mid_window_causes_no_429(
    sim: SimulatorControl, redis_db: redis.Redis, simulator_server: str, tmp_path: Path
) -> None:
    """The board spends its whole budget, the store comes back empty mid-window, the board keeps asking."""
    window = 4
    sim.configure(window_seconds=window, limit=60)
    name, token = f"gate{secrets.token_hex(3)}", _token()
    sim.register_token(name, token, ["read"], user=name)
    env = _hammer_env(
        name, token, simulator_server, MOGPLEX_BUDGET="50", MOGPLEX_BUDGET_WINDOW_SECONDS=str(window)
    )
    out = tmp_path / "restart.jsonl"
    start_at = time.time() + 1.5
    proc = _hammer(env, name, out, threads=4, seconds=5 * window, start_at=start_at)
    try:
        wait_for(
            lambda: sum(1 for r in sim.requests() if r["token_name"] == name) >= 50,
            timeout=40,
            what="the board to spend its budget",
        )
        redis_db.flushdb()
        redis_db.script_flush()
        flushed_at = time.time()
    finally:
        assert proc.wait(timeout=60) == 0
    sent = [r for r in sim.requests() if r["token_name"] == name]
    print("refusals", Path(str(out) + ".refusals").read_text(), "sent", len(sent))
    assert [r for r in sent if r["status"] == 429] == []
    # It did send again once a window had passed, and not before.
    after = [r["time"] for r in sent if r["time"] > flushed_at]
    assert after, (
        f"nothing was sent after the store came back ({len(sent)} before, {_records([out])[-1:]}, {Path(str(out) + '.refusals').read_text()})"
    )
    assert min(after) >= sent[0]["time"] + window


@pytest.mark.django_db(transaction=True)
def test_no_request_is_admitted_after_another_worker_recorded_a_429(
    sim: SimulatorControl, simulator_server: str, tmp_path: Path
) -> None:
    """Two worker processes with four threads each; every request answered 429 for a while."""
    # The simulator's own limit out of the way: every 429 is an injected one.
    sim.configure(window_seconds=1, limit=100_000)
    name, token = f"gate{secrets.token_hex(3)}", _token()
    sim.register_token(name, token, ["read"], user=name)
    env = _hammer_env(name, token, simulator_server, MOGPLEX_BUDGET="20", MOGPLEX_BUDGET_WINDOW_SECONDS="1")
    sim.inject_fault("429", token=name, count=20)
    start_at = time.time() + 2
    outs = [tmp_path / f"worker{i}.jsonl" for i in range(2)]
    procs = [_hammer(env, name, out, threads=4, seconds=10, start_at=start_at) for out in outs]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    records = _records(outs)
    limited = [r for r in records if r["status"] == 429]
    statuses = Counter(r["status"] for r in records)
    refused = [Path(str(out) + ".refusals").read_text() for out in outs]
    assert len(limited) == 20, f"every injected 429 was answered to one of the workers: {statuses}, {refused}"
    assert violations(records) == []
    assert any(r["status"] == 200 for r in records), "the workers sent again after the 429s"
