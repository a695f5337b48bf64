"""What the board stores of upstream text: text as text, clipped by characters a person sees, never more than a page shows.

The poller's tasks run in this process against the simulator over real HTTP and the
session's real Valkey; what is checked is what lands in Redis and what the run page shows.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client

from dashboard.models import TrackedRun
from dashboard.mogplex.text import clip, grapheme_count
from dashboard.polling import tasks
from dashboard.simulator.control import SimulatorControl

pytestmark = pytest.mark.django_db

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one character on screen, five code points
ACCENT = "e\u0301"  # é as a letter and a combining mark


@pytest.fixture
def store(settings: Any, valkey_server: str, redis_db: redis.Redis) -> redis.Redis:
    settings.REDIS_URL = valkey_server
    return redis_db


def tracked_run(sim: SimulatorControl, **events: Any) -> str:
    run_id = str(sim.create_run("demo")["runId"])
    sim.set_run_status(run_id, "streaming")
    sim.add_events(run_id, 1, type="log", **events)
    TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND)
    tasks.run_lookup_fetch("demo", run_id)
    return run_id


def test_clipping_never_splits_a_character_a_person_sees() -> None:
    text = (FAMILY + ACCENT) * 10
    for limit in range(1, 20):
        shown, clipped = clip(text, limit)
        assert clipped
        assert grapheme_count(shown) == limit
        assert shown.endswith("\u2026")
        body = shown.removesuffix("\u2026")
        # Whole characters only: what is left is a prefix made of whole families and accents.
        assert text.startswith(body)
        assert not body or body.endswith((FAMILY, ACCENT))
    assert clip(text, 20) == (text, False)
    assert clip(FAMILY * 3, 3) == (FAMILY * 3, False)


def test_an_emoji_payload_is_stored_as_text_and_clipped_by_characters(
    sim: SimulatorControl, store: redis.Redis
) -> None:
    # Mogplex cuts each string to 2,000 (UTF-16) units, so three of 900 emoji each.
    payload = dict.fromkeys(("a", "b", "c"), "😀" * 900)
    run_id = tracked_run(sim, message="smile", payload=payload)

    raw = store.get(f"board:run:{run_id}")
    assert raw is not None
    assert b"\\ud83d" not in raw, "no ASCII escapes in what the board stores"
    record = json.loads(raw)
    (event,) = [e for e in record["events"] if e.get("message") == "smile"]
    stored = event["payload"]
    assert stored["clipped"] is True
    assert stored["size"] == len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False))
    assert stored["size"] == 2700 + len('{"a":"","b":"","c":""}')
    assert grapheme_count(stored["preview"]) == 2048
    assert stored["preview"].startswith('{"a":"\U0001f600')
    assert "\\u" not in stored["preview"]


def test_a_huge_event_message_is_stored_as_the_run_page_shows_it(
    sim: SimulatorControl, store: redis.Redis, client: Client
) -> None:
    message = ACCENT + "x" * 100_000
    run_id = tracked_run(sim, message=message)
    sim.patch_run(run_id, error="E" * 50_000)
    run_id_again = run_id
    row = TrackedRun.objects.get(run_id=run_id_again)
    tasks.run_events_fetch(row.source, run_id)
    tasks.board_compose()

    raw = store.get(f"board:run:{run_id}")
    assert raw is not None
    assert len(raw) < 12_000, "a few kB, not the 150 kB upstream sent"
    record = json.loads(raw)
    assert record["clipped"] is True
    assert record["event_count"] == len(record["events"]), "every event is kept, only its text is cut"
    (event,) = [e for e in record["events"] if e.get("type") == "log" and e["message"].startswith(ACCENT)]
    assert grapheme_count(event["message"]) == 1000
    assert event["message"].endswith("x\u2026")
    assert len(record["run"]["error"]) == 1000

    board = store.get("board:composed")
    assert board is not None and len(board) < 20_000
    (shown,) = [r for r in json.loads(board)["runs"] if r["run_id"] == run_id]
    assert grapheme_count(shown["latest_event"]["message"]) <= 300

    client.force_login(User.objects.create_user("ada", password="correct horse battery"))
    page = client.get(f"/runs/{run_id}/").content.decode()
    # (Django's truncatechars shows the accent composed, as one code point.)
    assert "x" * 900 in page
    assert "x" * 1001 not in page
