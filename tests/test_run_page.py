"""The live run page: version/204/morph refresh, "final" for finished runs, outcome, and the event timeline."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client

from dashboard import snapshots
from dashboard.history.summaries import run_summary_write
from dashboard.models import Acknowledgement, RunSummary, TrackedRun
from tests import board_data
from tests.board_data import RUN_ACTIVE, RUN_DONE, RUN_FAILED, iso
from tests.waiting import wait_for

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def store(settings: Any, valkey_server: str, redis_db: redis.Redis) -> Iterator[redis.Redis]:
    settings.REDIS_URL = valkey_server
    yield redis_db


@pytest.fixture
def browser(client: Client, db: None) -> Client:
    client.force_login(User.objects.create_user("ada"))
    return client


def version(html: str) -> str:
    match = re.search(r'id="board-version" name="v" value="([^"]+)"', html)
    assert match, "the page carries the version it shows"
    return match.group(1)


def event(n: int, type_: str = "log", now: float | None = None, **fields: Any) -> dict[str, Any]:
    now = time.time() if now is None else now
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "type": type_,
        "tool_name": None,
        "message": f"event {n}",
        "payload": {},
        "created_at": iso(now - 100 + n),
        **fields,
    }


# One clock for a test's records, so that the same run written twice is the same content.
NOW = float(int(time.time()))


def streaming(run_id: str = RUN_ACTIVE, **fields: Any) -> dict[str, Any]:
    fields.setdefault("events", [event(1, "started", NOW), event(2, now=NOW)])
    record = board_data.run_record(run_id, now=NOW, pr_url=None, **fields)
    record["run"]["status"] = "streaming"
    return record


def test_an_open_page_is_told_204_until_its_run_changes_then_gets_the_new_fragment(
    store: redis.Redis, browser: Client
) -> None:
    snapshots.run_write(streaming(fetched_at=time.time()))
    html = browser.get(f"/runs/{RUN_ACTIVE}/").content.decode()
    shown = version(html)
    assert 'hx-get="/runs/' in html and 'hx-target="#board"' in html

    # Fetched again, nothing new: 204, with when it was fetched for the badge.
    again = streaming(fetched_at=time.time())
    snapshots.run_write(again)
    unchanged = browser.get(f"/runs/{RUN_ACTIVE}/", {"v": shown}, **HTMX)
    assert unchanged.status_code == 204
    assert json.loads(unchanged["X-Board-Fetched"]) == {"run": again["fetched_at"]}
    assert float(unchanged["X-Board-Now"]) == pytest.approx(time.time(), abs=5)

    # A new event: the fragment alone, with a new version.
    newer = streaming(fetched_at=time.time())
    newer["events"].append(event(3, "tool_started", NOW, message="running the tests"))
    snapshots.run_write(newer)
    changed = browser.get(f"/runs/{RUN_ACTIVE}/", {"v": shown}, **HTMX)
    assert changed.status_code == 200
    fragment = changed.content.decode()
    assert fragment.startswith('<div id="board"')
    assert "running the tests" in fragment
    assert version(fragment) != shown


def test_a_finished_run_says_final_with_its_end_instead_of_stale(store: redis.Redis, browser: Client) -> None:
    now = float(int(time.time()))
    long_ago = now - 3600
    record = board_data.run_record(
        RUN_DONE,
        fetched_at=long_ago,
        events=[event(1, "started", now), event(2, "finished", now, payload={"exit_code": 0})],
        outcome={
            "terminal_event": "finished",
            "failure_code": None,
            "exit_code": 0,
            "delivery": "pull_request",
        },
    )
    record["run"]["created_at"] = iso(now - 98 - 600)
    snapshots.run_write(record)
    html = browser.get(f"/runs/{RUN_DONE}/").content.decode()
    assert "final · ended" in html
    assert "STALE" not in html
    assert 'href="https://github.com/acme/web/pull/7"' in html
    took = re.search(r'<dd id="run-took">([^<]+)</dd>', html)
    assert took and took.group(1) == "10m 0s", "from creation to the finished event"

    # An active run whose data is as old still says STALE.
    snapshots.run_write(streaming(fetched_at=long_ago))
    active = browser.get(f"/runs/{RUN_ACTIVE}/").content.decode()
    assert "STALE" in active
    assert "final ·" not in active
    assert "Running for" in active


def test_a_failed_run_says_why_and_a_run_without_changes_says_so(store: redis.Redis, browser: Client) -> None:
    failed = board_data.run_record(
        RUN_FAILED,
        pr_url=None,
        outcome={
            "terminal_event": "failed",
            "failure_code": "command_failed",
            "exit_code": 2,
            "delivery": None,
        },
    )
    failed["run"].update(status="failed", error="Agent run exited with code 2.")
    snapshots.run_write(failed)
    html = browser.get(f"/runs/{RUN_FAILED}/").content.decode()
    assert re.search(r'<dd class="err" id="run-reason">the agent exited with code 2</dd>', html)
    assert 'data-overall="attention"' in html

    quiet = board_data.run_record(
        RUN_DONE,
        pr_url=None,
        outcome={
            "terminal_event": "finished",
            "failure_code": None,
            "exit_code": 0,
            "delivery": "no_changes",
        },
    )
    snapshots.run_write(quiet)
    html = browser.get(f"/runs/{RUN_DONE}/").content.decode()
    assert re.search(
        r'<dd id="run-delivery"><span class="no-changes">no code changes to deliver</span></dd>', html
    )


def _event_ids(html: str) -> list[str]:
    return re.findall(r'<li class="event [^"]*" id="ev-([^"]+)"', html)


def test_events_are_newest_first_with_a_switch_to_oldest_first_and_a_filter_by_type(
    store: redis.Redis, browser: Client
) -> None:
    events = [event(1, "started"), event(2, "tool_started"), event(3, "log"), event(4, "tool_started")]
    snapshots.run_write(streaming(events=events))
    ids = [e["id"] for e in events]
    html = browser.get(f"/runs/{RUN_ACTIVE}/").content.decode()
    assert _event_ids(html) == ids[::-1]
    assert f'href="/runs/{RUN_ACTIVE}/?order=oldest"' in html
    oldest = browser.get(f"/runs/{RUN_ACTIVE}/?order=oldest").content.decode()
    assert _event_ids(oldest) == ids
    assert 'hx-get="/runs/' + RUN_ACTIVE + '/?order=oldest"' in oldest, "the poll keeps the page's order"
    tools = browser.get(f"/runs/{RUN_ACTIVE}/?type=tool_started&order=oldest").content.decode()
    assert _event_ids(tools) == [ids[1], ids[3]]
    assert "2 of 4" in tools
    assert '<option value="tool_started" selected>' in tools


@pytest.mark.parametrize(
    ("query", "sentence"),
    [
        ("order=sideways", "&#x27;sideways&#x27; is not an order; use order=newest or order=oldest."),
        ("type=" + "x" * 61, "cannot be an event type; choose one from the list. Showing every type."),
    ],
)
def test_a_bad_order_or_type_gets_one_sentence_and_the_page_renders(
    store: redis.Redis, browser: Client, query: str, sentence: str
) -> None:
    snapshots.run_write(streaming())
    response = browser.get(f"/runs/{RUN_ACTIVE}/?{query}")
    assert response.status_code == 200
    html = response.content.decode()
    assert sentence in html
    assert html.count('class="form-error"') == 1
    assert len(_event_ids(html)) == 2


def test_long_payloads_are_folded_and_short_ones_shown(store: redis.Redis, browser: Client) -> None:
    events = [
        event(1, "log", payload={"stage": "sync"}),
        event(2, "tool_finished", payload={"output": "x" * 2000}),
    ]
    snapshots.run_write(streaming(events=events))
    html = browser.get(f"/runs/{RUN_ACTIVE}/").content.decode()
    short = html[html.index(f'id="ev-{events[0]["id"]}"') :]
    short = short[: short.index("</li>")]
    assert "<details" not in short and "&quot;stage&quot;: &quot;sync&quot;" in short
    long = html[html.index(f'id="ev-{events[1]["id"]}"') :]
    long = long[: long.index("</li>")]
    assert f'<details id="payload-{events[1]["id"]}"><summary>payload (' in long


# --- after the run's record has expired from Redis: from its history summary --------------------


def test_a_finished_run_whose_record_expired_is_shown_from_its_history_summary(
    store: redis.Redis, browser: Client, settings: Any
) -> None:
    # A retention window of three seconds: the finished run's record expires six seconds after its write.
    settings.BOARD_RETENTION_HOURS = 3 / 3600
    failed = board_data.run_record(
        RUN_FAILED,
        pr_url=None,
        events=[event(1, "started", NOW), event(2, "failed", NOW)],
        outcome={
            "terminal_event": "failed",
            "failure_code": "command_failed",
            "exit_code": 2,
            "delivery": None,
        },
    )
    failed["run"].update(status="failed", error="Agent run exited with code 2.", harness="codex")
    failed["run"]["created_at"] = iso(NOW - 98 - 600)
    snapshots.run_write(failed, finished=True)
    live = browser.get(f"/runs/{RUN_FAILED}/").content.decode()
    assert "no longer kept" not in live and len(_event_ids(live)) == 2
    row = TrackedRun.objects.create(run_id=RUN_FAILED, via="command", source="demo", status="failed")
    assert run_summary_write(row=row, record=failed, repo_name="acme/web")
    Acknowledgement.objects.create(
        target="run", target_id=RUN_FAILED, problem="failed", username="grace", note="flaky <runner>"
    )

    wait_for(
        lambda: not store.exists(f"board:run:{RUN_FAILED}"), timeout=15, what="the run's record to expire"
    )
    response = browser.get(f"/runs/{RUN_FAILED}/")
    assert response.status_code == 200
    html = response.content.decode()
    facts = html[html.index('id="run-summary"') : html.index('id="run-events"')]
    assert 'id="run-status">' in facts and "failed</span>" in facts
    assert "final · ended" in facts and "STALE" not in html
    assert '<dd class="repo">acme/web</dd>' in facts
    assert "<dd>codex</dd>" in facts
    assert "<bdi>agent/x</bdi> from <bdi>main</bdi>" in facts
    assert "<dd>demo</dd>" in facts
    assert re.search(r'<dd id="run-took">10m 0s</dd>', facts), "from creation to the failed event"
    assert re.search(r'<dd class="err" id="run-reason">the agent exited with code 2</dd>', facts)
    assert "Agent run exited with code 2." in facts
    assert re.search(r'<dd id="run-delivery">nothing</dd>', facts)
    assert "by grace" in facts and "flaky &lt;runner&gt;" in facts
    assert "This run's events are no longer kept" in html
    assert _event_ids(html) == []

    # A page left open on the live run gets the kept page at its next poll, then 204s.
    polled = browser.get(f"/runs/{RUN_FAILED}/", {"v": version(live)}, **HTMX)
    assert polled.status_code == 200 and "no longer kept" in polled.content.decode()
    assert browser.get(f"/runs/{RUN_FAILED}/", {"v": version(html)}, **HTMX).status_code == 204


def test_a_kept_run_shows_its_pull_request_or_that_there_were_no_changes(
    store: redis.Redis, browser: Client
) -> None:
    for run_id, fields in (
        (RUN_DONE, {"pr_url": "https://github.com/acme/web/pull/9", "delivery": "pull_request"}),
        (RUN_ACTIVE, {"pr_url": "", "delivery": "no_changes"}),
    ):
        RunSummary.objects.create(
            run_id=run_id,
            source="ada",
            repo_name="acme/web",
            status="success",
            finished_at=datetime.now(UTC),
            **fields,
        )
    assert 'href="https://github.com/acme/web/pull/9"' in browser.get(f"/runs/{RUN_DONE}/").content.decode()
    quiet = browser.get(f"/runs/{RUN_ACTIVE}/").content.decode()
    assert '<span class="no-changes">no code changes to deliver</span>' in quiet


def test_a_run_in_neither_redis_nor_history_is_not_found(store: redis.Redis, browser: Client) -> None:
    assert browser.get(f"/runs/{uuid.uuid4()}/").status_code == 404
