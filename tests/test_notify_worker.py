"""The notifier as it runs: a real notify worker beside the poller's worker and beat, the simulator, a real webhook.

A failure in the simulator reaches the webhook once, within a poll interval and
a few seconds; a restarted notifier sends nothing again; a destination that
answers 500 is retried, then given up, visible in the admin and the metrics,
while the poller keeps its pace.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import cast

import pytest
import redis
from django.test import Client

from dashboard import snapshots
from dashboard.models import NotifyMessage, TrackedRun
from dashboard.simulator.control import SimulatorControl
from tests.pollers import PollerGroup, Pollers
from tests.receivers import Received, WebhookReceiver
from tests.waiting import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

REFRESH = 2
SCAN = 1
# A loaded machine (2 cores, the whole suite) gets a few seconds on top of the chain:
# refresh + tick + compose debounce + scan + send.
WITHIN = REFRESH + 1 + 0.25 + SCAN + 4


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def notifying(
    pollers: Pollers, receiver: WebhookReceiver, redis_db: redis.Redis, sim: SimulatorControl
) -> Iterator[PollerGroup]:
    receiver.clear()
    receiver.status = 200
    group = pollers.ensure(
        {
            "BOARD_RUN_REFRESH_SECONDS": str(REFRESH),
            "BOARD_REPOS_REFRESH_SECONDS": "10",
            "BOARD_NOTIFY_URLS": f"json://{receiver.base}/hook",
            "BOARD_NOTIFY_SCAN_SECONDS": str(SCAN),
            "BOARD_NOTIFY_ATTEMPTS": "3",
            "BOARD_NOTIFY_RETRY_SECONDS": "1",
            "BOARD_NOTIFY_TIMEOUT_SECONDS": "2",
        }
    )
    if not getattr(group, "notifiers", 0):
        group.add_notifier()
    try:
        group.wait_ticking(redis_db, timeout=180)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{group.log_tail()}") from None
    wait_for(_notifier_watching, timeout=120, what=f"the notifier's watch loop\n{group.log_tail()}")
    yield group


def _notifier_watching() -> bool:
    beat = snapshots.notifier_heartbeat_read()
    return beat is not None and time.time() - beat < 5


def _failed_run(sim: SimulatorControl) -> tuple[str, float]:
    run_id = str(sim.create_run("demo")["runId"])
    TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND)
    wait_for(
        lambda: TrackedRun.objects.filter(run_id=run_id, lookup="found").exists(),
        timeout=30,
        what="the run to be found",
    )
    sim.set_run_status(run_id, "streaming")
    failed_at = time.time()
    sim.set_run_status(run_id, "failed", failure_code="command_failed", exit_code=2)
    return run_id, failed_at


def _about(receiver: WebhookReceiver, run_id: str) -> list[Received]:
    return [r for r in receiver.at("/hook") if run_id in r.body]


def _passes(count: int) -> None:
    """Wait for ``count`` more passes of the notifier's watch loop."""
    for _ in range(count):
        since = snapshots.notifier_heartbeat_read() or 0.0
        wait_for(
            lambda since=since: (snapshots.notifier_heartbeat_read() or 0.0) > since,
            timeout=20,
            what="a watch pass",
        )


def test_a_failure_reaches_the_webhook_once_even_after_a_notifier_restart(
    notifying: PollerGroup, receiver: WebhookReceiver, sim: SimulatorControl
) -> None:
    run_id, failed_at = _failed_run(sim)
    [received] = wait_for(
        lambda: _about(receiver, run_id),
        timeout=30,
        what=f"the failure at the webhook\n{notifying.log_tail()}",
    )
    assert received.at - failed_at < WITHIN, f"arrived {received.at - failed_at:.1f} s after the failure"
    message = received.json()
    assert message["title"] == "Run failed"
    assert "the agent exited with code 2" in message["message"]

    _passes(3)
    assert len(_about(receiver, run_id)) == 1, "sent once"

    # The notifier restarts (a deploy, a crash): what it stored as sent stays sent.
    notifier = next(p for p in notifying.processes if "notifier" in " ".join(cast(list[str], p.args)))
    notifying.stop_process(notifier)
    restarted = time.time()
    notifying.add_notifier()
    wait_for(
        lambda: (snapshots.notifier_heartbeat_read() or 0.0) > restarted,
        timeout=120,
        what=f"the restarted notifier\n{notifying.log_tail()}",
    )
    _passes(3)
    assert len(_about(receiver, run_id)) == 1, "not sent again after the restart"


@pytest.mark.parametrize("failure", ["answers 500", "hangs"])
def test_a_failing_destination_is_given_up_while_the_poller_keeps_its_pace(
    notifying: PollerGroup,
    receiver: WebhookReceiver,
    sim: SimulatorControl,
    admin_client: Client,
    failure: str,
) -> None:
    if failure == "answers 500":
        receiver.status = 500
    else:
        receiver.hang_seconds = 4  # twice BOARD_NOTIFY_TIMEOUT_SECONDS
    run_id, _ = _failed_run(sim)

    def given_up() -> NotifyMessage | None:
        return NotifyMessage.objects.filter(
            status=NotifyMessage.Status.FAILED, deliveries__event__subject=run_id
        ).first()

    heartbeat_before = snapshots.heartbeat_read() or 0.0
    try:
        message = wait_for(given_up, timeout=90, what=f"the message to be given up\n{notifying.log_tail()}")
    finally:
        receiver.hang_seconds = 0
    assert message.attempts == 3
    if failure == "answers 500":
        assert len(_about(receiver, run_id)) == 3 and "500" in message.last_error

    # The poller kept ticking and refreshing meanwhile: its heartbeat is fresh.
    heartbeat = snapshots.heartbeat_read() or 0.0
    assert heartbeat > heartbeat_before and time.time() - heartbeat < 5

    page = admin_client.get("/admin/dashboard/notifymessage/").content.decode()
    assert "given up" in page and message.last_error.split(":")[0] in page
    metrics = Client().get("/metrics").content.decode()
    assert 'mogplex_board_notify_failures_total{destination_kind="json"}' in metrics
