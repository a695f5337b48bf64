"""Notifications end to end in one process: board -> watcher -> stored messages -> real receivers.

The receivers are real servers (an HTTP server for webhooks, aiosmtpd for mail);
the sending is Apprise's. The worker-side run (a real notifier worker, the
simulator) is in tests/test_notify_worker.py.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone

from dashboard import snapshots
from dashboard.env import ConfigurationError
from dashboard.models import NotifyDestination, NotifyEvent, NotifyMessage, NotifyRule
from dashboard.notify import delivery
from dashboard.notify.destinations import destination_check, notify_urls_from_env
from dashboard.notify.watch import board_watch
from tests import board_data
from tests.hostile import assert_one_sentence
from tests.receivers import MailReceiver, WebhookReceiver

pytestmark = pytest.mark.django_db

FAILED = board_data.RUN_FAILED


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def mail() -> Iterator[MailReceiver]:
    receiver = MailReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def notify(settings: Any, webhook: WebhookReceiver, redis_db: redis.Redis) -> Any:
    """One JSON webhook destination from BOARD_NOTIFY_URLS; fast retries."""
    settings.BOARD_NOTIFY_URLS = [destination_check(f"json://{webhook.base}/hook", label="test")]
    settings.BOARD_NOTIFY_ATTEMPTS = 3
    settings.BOARD_NOTIFY_RETRY_SECONDS = 1
    settings.BOARD_NOTIFY_TIMEOUT_SECONDS = 1
    settings.BOARD_PUBLIC_URL = "https://board.example.com"
    settings.MOGPLEX_APP_URL = "https://mogplex.example.com"
    return settings


def deliver(now: float | None = None) -> None:
    """One pass of the notifier's watch loop, sending what is due in this process."""
    at = timezone.now() if now is None else timezone.datetime.fromtimestamp(now, tz=timezone.UTC)
    delivery.destinations_sync()
    board_watch(snapshots.board_read(), snapshots.heartbeat_read(), now=at)
    delivery.messages_form(now=at)
    for message_id in delivery.messages_claim(now=at):
        delivery.message_send(message_id)


def failed_board(now: float, **fields: Any) -> dict[str, Any]:
    composed = board_data.board(now)
    for row in composed["runs"]:
        if row["run_id"] == FAILED:
            row.update(fields)
    return composed


def publish_failure(now: float, **fields: Any) -> None:
    snapshots.run_write(
        board_data.run_record(
            FAILED,
            now=now,
            outcome={
                "terminal_event": "failed",
                "failure_code": "command_failed",
                "exit_code": 2,
                "delivery": None,
            },
        )
    )
    board_data.publish(failed_board(now, **fields))


# --- configuration ------------------------------------------------------------------------


def test_a_bad_url_stops_start_up_naming_the_entry_without_its_secret() -> None:
    good = "json://hooks.example.com/ok"
    with pytest.raises(ConfigurationError) as caught:
        notify_urls_from_env({"BOARD_NOTIFY_URLS": f"{good} slack://T0SECRETTOKEN/onlytwoparts"})
    message = str(caught.value)
    assert_one_sentence(message)
    assert "entry 2" in message and "slack://" in message
    assert "SECRETTOKEN" not in message and "onlytwoparts" not in message

    with pytest.raises(ConfigurationError) as caught:
        notify_urls_from_env({"BOARD_NOTIFY_URLS": "hooks.example.com/services/T0SECRET"})
    assert "entry 1" in str(caught.value) and "T0SECRET" not in str(caught.value)


def test_urls_come_from_a_file_too(tmp_path: Any) -> None:
    path = tmp_path / "notify-urls"
    path.write_text(
        "json://hooks.example.com/a\nmailto://127.0.0.1:25/ops@example.com?from=board@example.com\n"
    )
    destinations = notify_urls_from_env({"BOARD_NOTIFY_URLS_FILE": str(path)})
    assert [d.kind for d in destinations] == ["json", "mailto"]
    assert "hooks.example.com" not in repr(destinations)


def test_start_up_with_a_bad_url_says_so_in_one_line(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "BOARD_NOTIFY_URLS": "discord://only-one-part-SECRET"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert done.stderr.strip().startswith("Configuration error: BOARD_NOTIFY_URLS entry 1 (discord://…)")
    assert "SECRET" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


# --- events reach the receiver once -------------------------------------------------------


def test_a_failed_run_reaches_the_webhook_once_with_what_happened(
    notify: Any, webhook: WebhookReceiver
) -> None:
    now = time.time()
    publish_failure(now)
    deliver()
    deliver()
    [received] = webhook.at("/hook")
    message = received.json()
    assert message["title"] == "Run failed"
    body = message["message"]
    for fact in (
        "acme/api",
        "main → agent/failed",
        "source demo",
        "the agent exited with code 2",
        "tests failed",
        f"https://board.example.com/runs/{FAILED}/",
        f"https://mogplex.example.com/runs/{FAILED}",
    ):
        assert fact in body
    assert NotifyMessage.objects.get().status == NotifyMessage.Status.SENT


def test_pr_or_no_changes_is_said(notify: Any, webhook: WebhookReceiver) -> None:
    now = time.time()
    publish_failure(now, pr_url="https://github.com/acme/api/pull/9")
    deliver()
    assert "Pull request: https://github.com/acme/api/pull/9" in webhook.at("/hook")[0].json()["message"]

    NotifyEvent.objects.all().delete()
    snapshots.run_write(
        board_data.run_record(
            FAILED,
            now=now,
            outcome={
                "terminal_event": "failed",
                "failure_code": None,
                "exit_code": 1,
                "delivery": "no_changes",
            },
        )
    )
    board_data.publish(failed_board(now))
    deliver()
    assert "No changes" in webhook.at("/hook")[1].json()["message"]


def test_a_burst_of_failures_becomes_one_digest(notify: Any, webhook: WebhookReceiver) -> None:
    now = time.time()
    runs = [
        board_data.run_row(
            f"{n:08d}-2222-4222-8222-222222222222", "failed", now=now, repo_name=f"acme/service-{n}"
        )
        for n in range(10)
    ]
    board_data.publish(board_data.board(now, runs=runs))
    deliver()
    deliver()
    [received] = webhook.at("/hook")
    message = received.json()
    assert message["title"] == "10 board events: 10 × run failed"
    for n in range(10):
        assert f"acme/service-{n}" in message["message"]


def test_past_the_rate_the_rest_waits_for_one_digest(notify: Any, webhook: WebhookReceiver) -> None:
    notify.BOARD_NOTIFY_PER_MINUTE = 1
    now = time.time()
    with time_machine.travel(now, tick=False):
        publish_failure(now)
        deliver()
        assert len(webhook.at("/hook")) == 1
        runs = [
            board_data.run_row(
                f"{n:08d}-2222-4222-8222-222222222222", "failed", now=now, repo_name=f"acme/late-{n}"
            )
            for n in range(2)
        ]
        board_data.publish(board_data.board(now, runs=[*failed_board(now)["runs"], *runs]))
        deliver()
        assert len(webhook.at("/hook")) == 1, "the minute's one message is spent"
    with time_machine.travel(now + 61, tick=False):
        board_data.publish(board_data.board(now + 61, runs=[*failed_board(now)["runs"], *runs]))
        deliver()
    later = webhook.at("/hook")[1:]
    assert len(later) == 1
    assert later[0].json()["title"] == "2 board events: 2 × run failed"


def test_rules_choose_events_repos_and_sources(notify: Any, webhook: WebhookReceiver) -> None:
    web_only = NotifyDestination.objects.create(
        name="web team", kind="json", url=f"json://{webhook.base}/web"
    )
    NotifyRule.objects.create(destination=web_only, events=["run_failed"], repos="acme/web")
    elsewhere = NotifyDestination.objects.create(name="ben", kind="json", url=f"json://{webhook.base}/ben")
    NotifyRule.objects.create(destination=elsewhere, events=["run_failed"], sources="ben")
    now = time.time()
    publish_failure(now)  # acme/api, source demo
    deliver()
    assert len(webhook.at("/hook")) == 1, "a destination without rules gets every event"
    assert webhook.at("/web") == [] and webhook.at("/ben") == []

    runs = [board_data.run_row(f"{n:08d}-3333-4333-8333-333333333333", "failed", now=now) for n in range(1)]
    runs[0]["repo_name"] = "acme/web"
    board_data.publish(board_data.board(now, runs=runs))
    deliver()
    assert len(webhook.at("/web")) == 1 and webhook.at("/ben") == []


# --- the other events ---------------------------------------------------------------------


def test_a_stalled_run_is_told_once_per_stall(notify: Any, webhook: WebhookReceiver) -> None:
    now = time.time()
    row = board_data.run_row(board_data.RUN_ACTIVE, "streaming", now=now, stall_reason="no event for 17 min")
    board_data.publish(board_data.board(now, runs=[row]))
    deliver()
    deliver()
    [received] = webhook.at("/hook")
    assert received.json()["title"] == "Run stalled"
    assert "no event for 17 min" in received.json()["message"]


@pytest.mark.parametrize(
    ("fields", "how"),
    [
        (
            {"acknowledged": [{"problem": "failed", "by": "ada", "at": 1.0, "note": ""}]},
            "acknowledged by ada",
        ),
        (
            {"fixed_by": {"run_id": board_data.RUN_DONE, "after_seconds": 60, "at": 2.0}},
            "fixed by a later run",
        ),
    ],
)
def test_a_failure_resolved_is_told(
    notify: Any, webhook: WebhookReceiver, fields: dict[str, Any], how: str
) -> None:
    now = time.time()
    publish_failure(now)
    deliver()
    publish_failure(now, **fields)
    deliver()
    deliver()
    first, second = webhook.at("/hook")
    assert first.json()["title"] == "Run failed"
    assert second.json()["title"] == "Failure resolved"
    assert how in second.json()["message"] and "acme/api" in second.json()["message"]


def test_a_failure_already_resolved_when_first_seen_is_not_told(
    notify: Any, webhook: WebhookReceiver
) -> None:
    publish_failure(time.time(), acknowledged=[{"problem": "failed", "by": "ada", "at": 1.0, "note": ""}])
    deliver()
    assert webhook.at("/hook") == []


def test_a_source_losing_its_token_and_recovering(notify: Any, webhook: WebhookReceiver) -> None:
    now = time.time()
    bad = board_data.source_row("ben", now=now, state="unauthorized", last_success_at=now - 100)
    board_data.publish(board_data.board(now, runs=[], sources=[bad]))
    deliver()
    deliver()
    board_data.publish(
        board_data.board(now, runs=[], sources=[{**bad, "state": "ok", "last_success_at": now}])
    )
    deliver()
    first, second = webhook.at("/hook")
    assert first.json()["title"] == "Source unauthorized"
    assert "source ben is unauthorized" in first.json()["message"]
    assert second.json()["title"] == "Source recovered"


def test_the_poller_stopping_and_coming_back(notify: Any, webhook: WebhookReceiver) -> None:
    now = time.time()
    board_data.publish(board_data.board(now, runs=[]), heartbeat=now - settings.BOARD_STALE_SECONDS - 5)
    deliver()
    deliver()
    snapshots.heartbeat_write(time.time())
    deliver()
    first, second = webhook.at("/hook")
    assert first.json()["title"] == "The poller stopped reporting"
    assert second.json()["title"] == "The poller is reporting again"


# --- failures of the destination ----------------------------------------------------------


def test_a_destination_answering_500_is_retried_then_given_up(
    notify: Any, webhook: WebhookReceiver, admin_client: Client
) -> None:
    webhook.status = 500
    now = time.time()
    publish_failure(now)
    for step in range(6):
        with time_machine.travel(now + step * 5, tick=False):
            deliver()
    assert len(webhook.at("/hook")) == 3, "tried BOARD_NOTIFY_ATTEMPTS times"
    message = NotifyMessage.objects.get()
    assert message.status == NotifyMessage.Status.FAILED and message.attempts == 3
    assert_one_sentence(message.last_error)
    assert "500" in message.last_error and webhook.base not in message.last_error

    page = admin_client.get("/admin/dashboard/notifydestination/").content.decode()
    assert message.last_error.split(":")[0] in page and webhook.base not in page
    metrics = Client().get("/metrics").content.decode()
    assert 'mogplex_board_notify_failures_total{destination_kind="json"} 1.0' in metrics


def test_a_destination_that_hangs_times_out(notify: Any, webhook: WebhookReceiver) -> None:
    webhook.hang_seconds = 3
    publish_failure(time.time())
    started = time.monotonic()
    deliver()
    assert time.monotonic() - started < 2.9, "the send gave up at BOARD_NOTIFY_TIMEOUT_SECONDS"
    message = NotifyMessage.objects.get()
    assert message.status == NotifyMessage.Status.PENDING and message.attempts == 1
    assert_one_sentence(message.last_error)


# --- the admin ----------------------------------------------------------------------------


def test_the_admin_refuses_a_bad_url_in_one_sentence_and_never_shows_a_saved_one(
    notify: Any, webhook: WebhookReceiver, admin_client: Client
) -> None:
    answer = admin_client.post(
        "/admin/dashboard/notifydestination/add/",
        {"name": "chat", "enabled": "on", "new_url": "slack://T0SECRETTOKEN", **_inline_management()},
    )
    page = answer.content.decode()
    assert answer.status_code == 200 and "is not a URL Apprise can send to" in page
    assert "T0SECRETTOKEN" not in page
    assert not NotifyDestination.objects.filter(name="chat").exists()

    url = f"json://{webhook.base}/admin-secret-path"
    answer = admin_client.post(
        "/admin/dashboard/notifydestination/add/",
        {"name": "chat", "enabled": "on", "new_url": url, **_inline_management()},
    )
    assert answer.status_code == 302
    destination = NotifyDestination.objects.get(name="chat")
    assert destination.kind == "json"
    change = admin_client.get(f"/admin/dashboard/notifydestination/{destination.pk}/change/").content.decode()
    assert "admin-secret-path" not in change and "json://…" in change


def _inline_management() -> dict[str, str]:
    return {
        "rules-TOTAL_FORMS": "0",
        "rules-INITIAL_FORMS": "0",
        "rules-MIN_NUM_FORMS": "0",
        "rules-MAX_NUM_FORMS": "1000",
    }


def test_the_test_button_says_sent_or_why_not(
    notify: Any, webhook: WebhookReceiver, admin_client: Client
) -> None:
    good = NotifyDestination.objects.create(name="good", kind="json", url=f"json://{webhook.base}/good")
    answer = admin_client.post(
        "/admin/dashboard/notifydestination/",
        {"action": "send_test", "_selected_action": [good.pk]},
        follow=True,
    )
    assert "The test notification to good was sent." in answer.content.decode()
    assert webhook.at("/good")[0].json()["title"] == "Test notification"

    webhook.status = 500
    bad = NotifyDestination.objects.create(name="bad", kind="json", url=f"json://{webhook.base}/bad-secret")
    answer = admin_client.post(
        "/admin/dashboard/notifydestination/",
        {"action": "send_test", "_selected_action": [bad.pk]},
        follow=True,
    )
    page = answer.content.decode()
    [sentence] = re.findall(r"The test notification to bad was not sent: [^<]*", page)
    assert_one_sentence(sentence)
    assert "500" in sentence
    assert "bad-secret" not in page


def test_mail_arrives_by_smtp(notify: Any, mail: MailReceiver) -> None:
    notify.BOARD_NOTIFY_URLS = [destination_check(mail.url("oncall@example.com"), label="mail")]
    publish_failure(time.time())
    deliver()
    [received] = mail.messages
    assert received["Subject"] == "Run failed" and received["To"] == "oncall@example.com"
    assert "the agent exited with code 2" in received.get_content()


def test_old_deliveries_are_not_sent_again_by_a_new_watcher(notify: Any, webhook: WebhookReceiver) -> None:
    publish_failure(time.time())
    deliver()
    # What a restarted notifier does first: forget nothing it stored, send nothing stored as sent.
    NotifyMessage.objects.update(claimed_at=timezone.now() - timedelta(hours=1))
    deliver()
    assert len(webhook.at("/hook")) == 1


def test_old_messages_and_ended_events_are_forgotten(notify: Any, webhook: WebhookReceiver) -> None:
    now = time.time()
    publish_failure(now)
    board_data.publish(
        board_data.board(
            now,
            runs=failed_board(now)["runs"],
            sources=[board_data.source_row("ben", now=now, state="forbidden")],
        )
    )
    deliver()
    assert NotifyEvent.objects.count() == 2
    later = timezone.now() + timedelta(days=notify.BOARD_NOTIFY_KEEP_DAYS + 1)
    NotifyEvent.objects.filter(kind="run_failed").update(open=False)
    assert delivery.notify_purge(now=later) > 0
    assert list(NotifyEvent.objects.values_list("kind", flat=True)) == ["source_problem"], (
        "what is open stays"
    )
    assert NotifyMessage.objects.count() == 0
    # By then the run has left the board; the source is still forbidden.
    board_data.publish(
        board_data.board(
            later.timestamp(), runs=[], sources=[board_data.source_row("ben", now=now, state="forbidden")]
        ),
        heartbeat=later.timestamp(),
    )
    deliver(later.timestamp())
    assert len(webhook.at("/hook")) == 1, "nothing is sent again"


def test_rules_are_edited_in_the_admin(notify: Any, webhook: WebhookReceiver, admin_client: Client) -> None:
    answer = admin_client.post(
        "/admin/dashboard/notifydestination/add/",
        {
            "name": "web team",
            "enabled": "on",
            "new_url": f"json://{webhook.base}/web",
            **_inline_management(),
            "rules-TOTAL_FORMS": "1",
            "rules-0-events": ["run_failed", "failure_resolved"],
            "rules-0-repos": "acme/web",
            "rules-0-sources": "",
        },
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    rule = NotifyRule.objects.get(destination__name="web team")
    assert rule.events == ["run_failed", "failure_resolved"] and rule.repos == "acme/web"
    page = admin_client.get(
        f"/admin/dashboard/notifydestination/{rule.destination_id}/change/"
    ).content.decode()
    assert "a run failed" in page and 'value="acme/web"' in page


JOB_RUN = "7a1b2c3d-0000-4000-8000-00000000a001"
AUTOMATION = "7a1b2c3d-0000-4000-8000-00000000b001"


def publish_job_run_failure(now: float, **fields: Any) -> None:
    composed = board_data.board(now, runs=[])
    composed["job_runs"] = [
        {
            "id": JOB_RUN,
            "source": "demo",
            "automation_id": AUTOMATION,
            "automation_name": "Review PRs",
            "status": "failed",
            "repo_id": None,
            "repo_name": "acme/api",
            "created_at": None,
            "completed_at": None,
            "error": "Agent run exited with code 2.",
            "pending_too_long": False,
            "acknowledged": [],
            "fixed_by": None,
            **fields,
        }
    ]
    board_data.publish(composed)


def test_a_failed_job_run_is_told_like_a_failed_run_and_its_fix_too(
    notify: Any, webhook: WebhookReceiver
) -> None:
    now = time.time()
    publish_job_run_failure(now)
    deliver()
    publish_job_run_failure(now, fixed_by={"job_run_id": str(uuid.uuid4()), "after_seconds": 60, "at": now})
    deliver()
    deliver()
    failed, fixed = (received.json() for received in webhook.at("/hook"))
    assert failed["title"] == "Automation job run failed"
    for fact in (
        "acme/api",
        "automation Review PRs",
        "source demo",
        "Error: Agent run exited with code 2.",
        f"https://board.example.com/automations/#automation-demo-{AUTOMATION}",
    ):
        assert fact in failed["message"]
    assert "/runs/" not in failed["message"]
    assert fixed["title"] == "Failure resolved"
    assert "fixed by a later successful job run of the same automation" in fixed["message"]
