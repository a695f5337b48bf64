"""A token never reaches a browser, a log, Redis or the broker (design.md, invariant 5).

End to end: two sources with distinctive tokens, a real Celery worker and beat
polling the simulator with tracked runs (some failing), a 401 on one source
and other faults on the other so the error paths run. Then every page and
fragment a browser or a wall screen can fetch, every response header, every
log line (this process's and the worker's and beat's files), every key and
value in every Valkey database (the broker's queues included, message bodies
decoded), and the text of the client's exception for each fault kind are
searched for the tokens.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import traceback
from collections.abc import Iterable
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client

from dashboard import snapshots
from dashboard.models import DisplayToken, TrackedRun
from dashboard.mogplex.client import MogplexClient
from dashboard.mogplex.config import Source, Token
from dashboard.mogplex.errors import MogplexError
from dashboard.simulator.control import SimulatorControl
from tests.pollers import PollerGroup, Pollers
from tests.waiting import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

WINDOW = 6


def _distinctive(name: str) -> str:
    """``mog_SECRET<name>`` padded to a PAT's 24 characters with random base62."""
    head = f"SECRET{name}"
    alphabet = string.ascii_letters + string.digits
    return "mog_" + head + "".join(secrets.choice(alphabet) for _ in range(24 - len(head)))


TOKENS = {"alice": _distinctive("alice"), "bob": _distinctive("bob")}
# What to look for: each whole token, and a middle part (a clipped or re-encoded token still leaks).
NEEDLES = sorted({*TOKENS.values(), *(token[6:20] for token in TOKENS.values())})
CLIENT_FAULTS = (
    "401",
    "403",
    "429",
    "500",
    "502_html",
    "timeout",
    "malformed_json",
    "ok_false_200",
    "redirect",
)


def _leaks(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle in text]


def _check(where: str, text: str, found: list[str]) -> None:
    if _leaks(text):
        found.append(where)


def _decoded_messages(raw: bytes) -> Iterable[str]:
    """A broker entry as text, and a Celery message's base64 body decoded."""
    text = raw.decode(errors="replace")
    yield text
    try:
        message = json.loads(text)
    except ValueError:
        return
    candidates = message if isinstance(message, list) else [message]
    for item in candidates:
        if isinstance(item, dict) and isinstance(item.get("body"), str):
            try:
                yield base64.b64decode(item["body"]).decode(errors="replace")
            except ValueError:
                yield item["body"]


def _valkey_dump(client: redis.Redis) -> Iterable[tuple[str, bytes]]:
    """Every key and value of every database: (where, bytes) pairs, by type."""
    databases = int(client.config_get("databases")["databases"])
    for db in range(databases):
        conn = client.connection_pool.connection_kwargs
        one = redis.Redis(host=conn["host"], port=conn["port"], db=db)
        for key in one.scan_iter(count=500):
            where = f"db{db}:{key.decode(errors='replace')}"
            yield where + " (key)", key
            kind = one.type(key).decode()
            if kind == "string":
                yield where, one.get(key) or b""
            elif kind == "hash":
                for field, value in one.hgetall(key).items():
                    yield f"{where}[{field.decode(errors='replace')}]", field + b" " + value
            elif kind == "list":
                for n, value in enumerate(one.lrange(key, 0, -1)):
                    yield f"{where}[{n}]", value
            elif kind == "set":
                for value in one.smembers(key):
                    yield where, value
            elif kind == "zset":
                for value, _score in one.zrange(key, 0, -1, withscores=True):
                    yield where, value
            elif kind == "stream":
                for _id, fields in one.xrange(key):
                    yield where, b" ".join(k + b" " + v for k, v in fields.items())


def _broker_scan(broker: redis.Redis, found: list[str]) -> int:
    """Search the broker's queue lists and unacked messages now; return how many messages were there."""
    seen = 0
    for key in broker.scan_iter(count=500):
        kind = broker.type(key).decode()
        if kind == "list":
            values = broker.lrange(key, 0, -1)
        elif kind == "hash":
            values = list(broker.hgetall(key).values())
        else:
            continue
        for value in values:
            seen += 1
            for text in _decoded_messages(value):
                _check(f"broker {key.decode(errors='replace')}", text, found)
    return seen


def _client_exception_texts(base_url: str, sim: SimulatorControl, token: str) -> dict[str, str]:
    """The client's exception for each fault kind, as str, repr and formatted traceback."""
    texts = {}
    with MogplexClient(base_url, Source("alice", Token(token)), read_timeout=1) as client:
        for kind in CLIENT_FAULTS:
            delay = 2.0 if kind == "timeout" else None
            sim.inject_fault(kind, token="alice", count=1, delay_seconds=delay)
            try:
                client.repos()
            except MogplexError as exc:
                texts[kind] = "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])
            else:
                texts[kind] = ""
            sim.clear_faults()
    return texts


def test_no_token_reaches_a_page_header_log_redis_the_broker_or_an_exception(
    pollers: Pollers,
    simulator_server: str,
    sim: SimulatorControl,
    valkey_server: str,
    redis_db: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    settings: Any,
) -> None:
    caplog.set_level("DEBUG")
    settings.REDIS_URL = valkey_server
    sim.configure(window_seconds=WINDOW, limit=60)
    for name, token in TOKENS.items():
        sim.register_token(name, token, ["read"], user=name)

    runs = {
        "alice": [sim.create_run("alice")["runId"] for _ in range(3)],
        "bob": [sim.create_run("bob")["runId"] for _ in range(2)],
    }
    sim.set_run_status(runs["alice"][0], "streaming")
    sim.add_events(runs["alice"][0], 3, type="tool_use", tool_name="Bash", message="pytest -q")
    sim.set_run_status(runs["alice"][1], "failed", error="Tests failed in CI")
    sim.set_run_status(runs["bob"][0], "failed", error="Sandbox crashed")
    sim.create_sandbox("alice", status="running")
    sim.create_sandbox("bob", status="error", error="install failed")

    group: PollerGroup = pollers.ensure(
        {
            "MOGPLEX_BASE_URL": simulator_server,
            "MOGPLEX_TOKEN_ALICE": TOKENS["alice"],
            "MOGPLEX_TOKEN_BOB": TOKENS["bob"],
            "MOGPLEX_BUDGET_WINDOW_SECONDS": str(WINDOW),
            "MOGPLEX_READ_TIMEOUT_SECONDS": "1",
            "BOARD_RUN_REFRESH_SECONDS": "1",
            "BOARD_SANDBOXES_REFRESH_SECONDS": "2",
            "BOARD_REPOS_REFRESH_SECONDS": "10",
        }
    )
    group.wait_ticking(redis_db)
    all_runs = [*runs["alice"], *runs["bob"]]
    for run_id in all_runs:
        TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND)

    found: list[str] = []
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker_messages = 0

    def board_has_everything() -> bool:
        nonlocal broker_messages
        broker_messages += _broker_scan(broker, found)
        board = snapshots.board_read() or {}
        shown = {run["run_id"] for run in board.get("runs", []) if run.get("lookup") == "found"}
        return shown >= set(all_runs) and len(board.get("sandboxes", [])) >= 2

    wait_for(board_has_everything, timeout=60, what=f"every run and sandbox on the board\n{group.log_tail()}")

    # The error paths: a 401 pair on alice (believed on the second), a spread of faults on bob.
    sim.inject_fault("401", token="alice", count=2)
    for kind in ("500", "429", "502_html", "malformed_json", "redirect"):
        sim.inject_fault(kind, token="bob", count=1)
    sim.inject_fault("timeout", token="bob", count=1, delay_seconds=2)

    def faults_spent() -> bool:
        nonlocal broker_messages
        broker_messages += _broker_scan(broker, found)
        return not sim.faults()

    wait_for(faults_spent, timeout=90, what=f"the poller to run into every fault\n{group.log_tail()}")
    answered = {(r["token_name"], r["status"]) for r in sim.requests()}
    assert {("alice", 401), ("bob", 500), ("bob", 429), ("bob", 502)} <= answered, "the faults were not hit"
    assert broker_messages > 0, "no broker message was ever caught to search"

    # Every page and fragment, with its headers.
    user = User.objects.create_user("ada", password="correct horse battery")
    browser = Client()
    browser.force_login(user)
    _, display = DisplayToken.issue("lobby")
    board = snapshots.board_read() or {}
    sandbox_id = board["sandboxes"][0]["id"]
    htmx = {"HX-Request": "true"}
    responses = {
        "overview": browser.get("/"),
        "overview refresh": browser.get("/", {"v": "old"}, headers=htmx),
        "run page": browser.get(f"/runs/{runs['alice'][1]}/"),
        "run page (bob)": browser.get(f"/runs/{runs['bob'][0]}/"),
        "sandbox page": browser.get(f"/sandboxes/{sandbox_id}/"),
        "kiosk": Client().get(f"/kiosk/{display}/"),
        "kiosk refresh": Client().get(f"/kiosk/{display}/", {"v": "old"}, headers=htmx),
        "board.json": browser.get("/api/board.json"),
        "healthz": Client().get("/healthz"),
        "readyz": Client().get("/readyz"),
        "metrics": Client().get("/metrics"),
        "login": Client().get("/accounts/login/"),
        "404": browser.get("/no-such-page/"),
        "ingest without a token": Client().post("/ingest/runs", "{}", content_type="application/json"),
        "ingest with a bad body": Client().post(
            "/ingest/runs",
            "not json",
            content_type="application/json",
            headers={"Authorization": f"Bearer {settings.BOARD_INGEST_TOKEN}"},
        ),
    }
    assert responses["overview"].status_code == 200
    assert responses["kiosk"].status_code == 200
    assert responses["404"].status_code == 404
    assert responses["ingest with a bad body"].status_code == 400
    for name, response in responses.items():
        _check(f"page {name}", response.content.decode(errors="replace"), found)
        for header, value in response.items():
            _check(f"header {header} of {name}", f"{header}: {value}", found)
        for cookie in response.cookies.values():
            _check(f"cookie of {name}", cookie.OutputString(), found)

    # The client's exceptions, one per fault kind; the poller stops first so it cannot take the faults.
    pollers.stop()
    for kind, text in _client_exception_texts(simulator_server, sim, TOKENS["alice"]).items():
        assert text, f"the {kind} fault raised nothing"
        _check(f"client exception for {kind}", text, found)

    # Logs: this process's, and the worker's and beat's files.
    for record in caplog.records:
        _check(f"log record {record.name}", record.getMessage() + str(record.exc_text or ""), found)
    _check("captured log text", caplog.text, found)
    for path in sorted(group.dir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            _check(f"{path.name}: {line[:80]}", line, found)

    # Every key and value in every Valkey database, the broker's included.
    for where, raw in _valkey_dump(redis_db):
        for text in _decoded_messages(raw):
            _check(where, text, found)
    _broker_scan(broker, found)

    assert found == [], "a token leaked into:\n" + "\n".join(sorted(set(found)))
