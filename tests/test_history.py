"""Run history: summaries written once per finished run, kept past Redis, purged by age, searched and exported."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import redis
import time_machine
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from dashboard.history.search import history_choices_forget
from dashboard.history.summaries import history_purge, run_summary_write
from dashboard.models import Acknowledgement, RunSummary, TrackedRun
from dashboard.polling.tasks import history_purge as history_purge_task
from dashboard.simulator.control import SimulatorControl
from tests.pollers import Pollers
from tests.waiting import wait_for

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_choices() -> None:
    """Each test's filter lists come from its own runs."""
    history_choices_forget()


@pytest.fixture
def browser(client: Client, db: None) -> Client:
    client.force_login(User.objects.create_user("ada"))
    return client


def summary(**fields: Any) -> RunSummary:
    """A kept summary; ``finished_at`` defaults to an hour before ``NOW``."""
    values: dict[str, Any] = {
        "run_id": uuid.uuid4(),
        "source": "ada",
        "repo_id": "repo-web",
        "repo_name": "acme/web",
        "branch_base": "main",
        "branch_working": "agent/fix",
        "harness": "claude-code",
        "status": "success",
        "created_at": NOW - timedelta(hours=1, minutes=5),
        "finished_at": NOW - timedelta(hours=1),
        "duration_seconds": 300.0,
        "pr_url": "https://github.com/acme/web/pull/1",
        "delivery": "pull_request",
    }
    values.update(fields)
    return RunSummary.objects.create(**values)


def shown_ids(html: str) -> set[str]:
    return {part.split('"', 1)[0] for part in html.split('<tr id="summary-')[1:]}


@pytest.mark.django_db
def test_the_hourly_task_gives_sqlites_planner_statistics_of_the_kept_runs() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's autovacuum keeps its own statistics")
    for n in range(3):
        summary(finished_at=datetime.now(UTC) - timedelta(hours=n))  # kept by the purge before it
    history_purge_task()
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = %s", [RunSummary._meta.db_table])
        assert cursor.fetchone()[0] > 0


# --- written once, from the final fetch, and kept when Redis is flushed ----------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_finished_run_is_kept_once_with_what_the_board_learned_and_survives_a_redis_flush(
    sim: SimulatorControl, pollers: Pollers, redis_db: redis.Redis
) -> None:
    repo = next(r for r in sim.repos("demo") if not r.get("hidden"))
    delivered = str(sim.create_run("demo", repo_id=repo["id"], harness="codex")["runId"])
    failed = str(sim.create_run("demo", repo_id=repo["id"])["runId"])
    for run_id in (delivered, failed):
        TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND)
    group = pollers.ensure({"BOARD_RUN_REFRESH_SECONDS": "1", "BOARD_REPOS_REFRESH_SECONDS": "10"})
    group.wait_ticking(redis_db)
    for run_id in (delivered, failed):
        wait_for(
            lambda run_id=run_id: TrackedRun.objects.filter(run_id=run_id, lookup="found").exists(),
            timeout=20,
            what=f"the run to be found\n{group.log_tail()}",
        )
        sim.set_run_status(run_id, "streaming")
    sim.set_run_status(delivered, "success")
    sim.set_run_status(failed, "failed", failure_code="command_failed", exit_code=2)

    def kept() -> bool:
        return RunSummary.objects.filter(run_id__in=[delivered, failed]).count() == 2

    wait_for(kept, timeout=30, what=f"both summaries\n{group.log_tail()}")
    good = RunSummary.objects.get(run_id=delivered)
    assert good.status == "success"
    assert good.source == "demo"
    assert good.harness == "codex"
    assert good.repo_id == repo["id"]
    assert good.repo_name == repo["full_name"]
    assert good.pr_url.startswith("https://")
    assert good.delivery == "pull_request"
    assert good.pr_at is not None
    assert good.created_at is not None and good.finished_at >= good.created_at
    assert good.duration_seconds == (good.finished_at - good.created_at).total_seconds()
    bad = RunSummary.objects.get(run_id=failed)
    assert bad.status == "failed"
    assert bad.failure_code == "command_failed"
    assert bad.failure_reason == "the agent exited with code 2"
    assert bad.exit_code == 2
    assert bad.error, "Mogplex's own sentence for the failure"
    recorded = {str(s.run_id): s.recorded_at for s in RunSummary.objects.all()}

    # Once: more ticks (and a refetch, were there one) write nothing more.
    group.wait_ticking(redis_db)
    group.wait_ticking(redis_db)
    assert RunSummary.objects.count() == 2
    assert {str(s.run_id): s.recorded_at for s in RunSummary.objects.all()} == recorded

    redis_db.flushdb()
    client = Client()
    client.force_login(User.objects.create_user("ada"))
    html = client.get("/history/").content.decode()
    assert shown_ids(html) == {delivered, failed}
    assert "the agent exited with code 2" in html


@pytest.mark.django_db
def test_a_summary_is_written_once_even_when_asked_twice() -> None:
    row = TrackedRun.objects.create(run_id=uuid.uuid4(), via="command", source="ada", status="success")
    record = {
        "source": "ada",
        "run": {
            "status": "success",
            "repo_id": "r1",
            "harness": "codex",
            "branch": {"base": "main", "working": "agent/x"},
            "created_at": "2026-06-15T10:00:00Z",
            "updated_at": "2026-06-15T10:09:00Z",
        },
        "events": [{"id": "e1", "type": "finished", "created_at": "2026-06-15T10:08:00.5Z", "payload": {}}],
        "event_count": 1,
        "pr_url": None,
        "outcome": {"delivery": "no_changes"},
    }
    assert run_summary_write(row=row, record=record, repo_name="acme/api") is True
    record["run"]["status"] = "failed"
    assert run_summary_write(row=row, record=record, repo_name="acme/api") is False
    kept = RunSummary.objects.get()
    assert kept.status == "success"
    assert kept.duration_seconds == 480.5, "from creation to the terminal event"
    assert kept.delivery == "no_changes"
    assert kept.branch_working == "agent/x"


# --- the purge -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("days", [90, 7])
def test_the_purge_removes_only_runs_older_than_the_setting(settings: Any, days: int) -> None:
    settings.BOARD_HISTORY_DAYS = days
    old = summary(finished_at=NOW - timedelta(days=days, minutes=1))
    kept = summary(finished_at=NOW - timedelta(days=days) + timedelta(minutes=1))
    fresh = summary(finished_at=NOW - timedelta(hours=1))
    with time_machine.travel(NOW, tick=False):
        assert history_purge() == 1
    assert set(RunSummary.objects.values_list("pk", flat=True)) == {kept.pk, fresh.pk}
    assert not RunSummary.objects.filter(pk=old.pk).exists()


# --- the page and its filters ----------------------------------------------------------------


@pytest.fixture
def kept_runs(db: None) -> dict[str, RunSummary]:
    return {
        "web_ok": summary(finished_at=NOW - timedelta(days=1)),
        "api_failed": summary(
            repo_name="acme/api",
            repo_id="repo-api",
            status="failed",
            source="ben",
            harness="codex",
            branch_base="develop",
            branch_working="agent/retry",
            failure_code="command_failed",
            failure_reason="the agent exited with code 2",
            error="npm test exited with code 2: Cannot find module 'left-pad'",
            pr_url="",
            delivery="",
            finished_at=NOW - timedelta(days=3),
        ),
        "api_denied": summary(
            repo_name="acme/api",
            repo_id="repo-api",
            status="failed",
            failure_code="model_access_denied",
            failure_reason="model not available to this account",
            error="Your plan does not include this model.",
            pr_url="",
            finished_at=NOW - timedelta(days=10),
        ),
        "docs_cancelled": summary(
            repo_name="acme/docs",
            status="cancelled",
            source="cleo",
            pr_url="",
            delivery="",
            finished_at=NOW - timedelta(days=20),
        ),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["web_ok", "api_failed", "api_denied", "docs_cancelled"]),
        ("repo=acme/api", ["api_failed", "api_denied"]),
        ("repo=repo-api", ["api_failed", "api_denied"]),
        ("branch=agent/retry", ["api_failed"]),
        ("branch=develop", ["api_failed"]),
        ("status=failed", ["api_failed", "api_denied"]),
        ("status=cancelled", ["docs_cancelled"]),
        ("source=ben", ["api_failed"]),
        ("harness=codex", ["api_failed"]),
        ("failure=model_access_denied", ["api_denied"]),
        ("failure=command_failed", ["api_failed"]),
        ("q=LEFT-PAD", ["api_failed"]),
        ("q=plan", ["api_denied"]),
        ("since=2026-06-05", ["web_ok", "api_failed", "api_denied"]),
        ("until=2026-06-12", ["api_failed", "api_denied", "docs_cancelled"]),
        ("since=2026-06-05&until=2026-06-12", ["api_failed", "api_denied"]),
        ("since=2026-06-12&until=2026-06-12", ["api_failed"]),
        ("repo=acme/api&status=failed&q=module", ["api_failed"]),
        ("repo=acme/nothing", []),
    ],
)
def test_each_filter_shows_the_runs_it_names_newest_first(
    browser: Client, kept_runs: dict[str, RunSummary], query: str, expected: list[str]
) -> None:
    response = browser.get("/history/?" + query)
    assert response.status_code == 200
    html = response.content.decode()
    ids = [part.split('"', 1)[0] for part in html.split('<tr id="summary-')[1:]]
    assert ids == [str(kept_runs[name].run_id) for name in expected]
    assert 'class="form-error"' not in html
    if query:
        # The filters stay in the page's links: the exports export what is shown.
        assert 'href="/history/export.csv?' + urlencode(parse_qsl(query)).replace("&", "&amp;") + '"' in html


def test_pages_are_newest_first_and_keep_the_filters(browser: Client) -> None:
    for n in range(120):
        summary(finished_at=NOW - timedelta(minutes=n), status="failed" if n % 2 else "success")
    first = browser.get("/history/?status=failed").content.decode()
    assert len(shown_ids(first)) == 50
    assert "Page 1 of 2" in first
    assert 'href="/history/?status=failed&amp;page=2"' in first
    second = browser.get("/history/?status=failed&page=2").content.decode()
    assert len(shown_ids(second)) == 10
    assert not shown_ids(first) & shown_ids(second)
    newest = RunSummary.objects.filter(status="failed").order_by("-finished_at")[0]
    assert first.index(f'<tr id="summary-{newest.run_id}"') == first.index('<tr id="summary-')


@pytest.mark.parametrize(
    ("query", "sentence", "still_applies"),
    [
        (
            "status=bogus&repo=acme/api",
            "That outcome is not one a finished run has; choose success, failed or cancelled.",
            ["api_failed", "api_denied"],
        ),
        (
            "since=yesterday&status=cancelled",
            "The from date &#x27;yesterday&#x27; is not a day; write it as YYYY-MM-DD, like 2026-03-01.",
            ["docs_cancelled"],
        ),
        (
            "until=2026-13-45",
            "The to date &#x27;2026-13-45&#x27; is not a day; write it as YYYY-MM-DD, like 2026-03-01.",
            ["web_ok", "api_failed", "api_denied", "docs_cancelled"],
        ),
        (
            "since=2026-06-12&until=2026-06-01",
            "The to date 2026-06-01 is before the from date 2026-06-12; swap them, or leave one empty.",
            ["web_ok", "api_failed"],
        ),
        ("page=two", "The page must be a whole number; showing the first page.", None),
        ("page=0", "Pages start at 1; showing the first page.", None),
        ("page=9", "There is only 1 page of runs under these filters; showing the last one.", None),
        (
            "q=" + "x" * 201,
            "The error search is longer than 200 characters; search for a shorter part of the error.",
            None,
        ),
        ("repo=acme%00web", "The repo filter holds a null character; choose a repo from the list.", None),
    ],
)
def test_a_bad_filter_value_gets_one_sentence_and_the_page_still_renders(
    browser: Client,
    kept_runs: dict[str, RunSummary],
    query: str,
    sentence: str,
    still_applies: list[str] | None,
) -> None:
    response = browser.get("/history/?" + query)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="form-error"') == 1
    assert sentence in html
    expected = still_applies or ["web_ok", "api_failed", "api_denied", "docs_cancelled"]
    assert shown_ids(html) == {str(kept_runs[name].run_id) for name in expected}


def test_history_needs_a_login(client: Client, db: None) -> None:
    for path in ("/history/", "/history/export.csv", "/history/export.json"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_hostile_text_on_the_page_is_escaped_and_only_http_links_are_links(browser: Client) -> None:
    summary(
        repo_name="<script>alert(1)</script>",
        error="<img src=x onerror=alert(1)>",
        pr_url="javascript:alert(1)",
    )
    html = browser.get("/history/").content.decode()
    assert "<script>alert(1)" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "javascript:" not in html


# --- exports ---------------------------------------------------------------------------------

HOSTILE = {
    "repo_name": '=HYPERLINK("https://evil.example/","click")',
    "branch_working": "+cmd|' /C calc'!A0",
    "branch_base": "-2+3",
    "harness": "@SUM(1+1)",
    "error": "\t=1+1",
    "source": "ada",
}


def _streamed(response: Any) -> str:
    assert response.streaming, "exports are streamed, not built in memory"
    return b"".join(response.streaming_content).decode()


def test_csv_export_of_the_current_filter_neutralises_formulas(
    browser: Client, kept_runs: dict[str, RunSummary]
) -> None:
    hostile = summary(status="failed", finished_at=NOW - timedelta(days=2), **HOSTILE)
    response = browser.get("/history/export.csv?status=failed")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="mogplex-history-')
    rows = list(csv.DictReader(io.StringIO(_streamed(response))))
    assert [r["run_id"] for r in rows] == [
        str(hostile.run_id),
        str(kept_runs["api_failed"].run_id),
        str(kept_runs["api_denied"].run_id),
    ]
    cells = rows[0]
    for field in ("repo_name", "branch_working", "branch_base", "harness", "error"):
        assert cells[field] == "'" + HOSTILE[field], field
    for row in rows:
        for column, value in row.items():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (column, value)
    assert rows[1]["failure_reason"] == "the agent exited with code 2"
    assert rows[1]["duration_seconds"] == "300.0"


def test_json_export_of_the_current_filter_keeps_upstream_text_as_it_was(
    browser: Client, kept_runs: dict[str, RunSummary]
) -> None:
    hostile = summary(repo_name=HOSTILE["repo_name"], error=HOSTILE["error"], finished_at=NOW)
    response = browser.get("/history/export.json?" + urlencode({"repo": HOSTILE["repo_name"]}))
    assert response.status_code == 200
    body = json.loads(_streamed(response))
    assert body["filters"] == {"repo": HOSTILE["repo_name"]}
    assert [r["run_id"] for r in body["runs"]] == [str(hostile.run_id)]
    assert body["runs"][0]["error"] == HOSTILE["error"]
    everything = json.loads(_streamed(browser.get("/history/export.json")))
    assert len(everything["runs"]) == 5
    assert everything["runs"][1]["finished_at"] == kept_runs["web_ok"].finished_at.isoformat()


def test_an_export_with_a_bad_filter_is_refused_with_the_sentence(browser: Client, db: None) -> None:
    response = browser.get("/history/export.csv?since=soon")
    assert response.status_code == 400
    assert response.content.decode() == (
        "The from date 'soon' is not a day; write it as YYYY-MM-DD, like 2026-03-01."
    )


# --- the command -----------------------------------------------------------------------------


def test_board_history_json_takes_the_same_filters(kept_runs: dict[str, RunSummary]) -> None:
    out = io.StringIO()
    call_command("board", "history", "--json", "--repo", "acme/api", "--status", "failed", stdout=out)
    body = json.loads(out.getvalue())
    assert body["filters"] == {"repo": "acme/api", "status": "failed"}
    assert [r["run_id"] for r in body["runs"]] == [
        str(kept_runs["api_failed"].run_id),
        str(kept_runs["api_denied"].run_id),
    ]
    assert body["runs"][0]["failure_reason"] == "the agent exited with code 2"

    out = io.StringIO()
    call_command("board", "history", "--error", "left-pad", stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    assert "acme/api" in lines[0] and "the agent exited with code 2" in lines[0]


def test_board_history_with_a_bad_filter_says_what_is_wrong(db: None) -> None:
    with pytest.raises(CommandError, match=r"^The to date '31/12/2026' is not a day; write it as YYYY-MM-DD"):
        call_command("board", "history", "--until", "31/12/2026")


def test_acknowledgements_are_linked_by_run_id_on_the_page_and_in_the_exports(
    browser: Client, kept_runs: dict[str, RunSummary]
) -> None:
    failed = kept_runs["api_failed"]
    Acknowledgement.objects.create(
        target=Acknowledgement.Target.RUN,
        target_id=failed.run_id,
        problem=Acknowledgement.Problem.FAILED,
        username="ben",
        note="=flaky left-pad, pinned it",
    )
    html = browser.get("/history/?status=failed").content.decode()
    row = html[html.index(f'<tr id="summary-{failed.run_id}"') :]
    assert "acknowledged by ben: =flaky left-pad, pinned it" in row[: row.index("</tr>")]

    rows = list(csv.DictReader(io.StringIO(_streamed(browser.get("/history/export.csv?status=failed")))))
    cell = next(r["acknowledged"] for r in rows if r["run_id"] == str(failed.run_id))
    assert cell.startswith("failed by ben at ") and cell.endswith(": =flaky left-pad, pinned it")
    assert all(r["acknowledged"] == "" for r in rows if r["run_id"] != str(failed.run_id))

    body = json.loads(_streamed(browser.get("/history/export.json?status=failed")))
    acks = next(r["acknowledgements"] for r in body["runs"] if r["run_id"] == str(failed.run_id))
    assert [(a["problem"], a["by"], a["note"]) for a in acks] == [
        ("failed", "ben", "=flaky left-pad, pinned it")
    ]
