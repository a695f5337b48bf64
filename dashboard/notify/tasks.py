"""The notifier's Celery tasks, on their own ``notify`` queue, and its watch loop.

The notifier is a Celery worker consuming only the ``notify`` queue
(``celery -A dashboard worker -Q notify``). When it starts it also runs the
watch loop in a thread: every ``BOARD_NOTIFY_SCAN_SECONDS`` it reads the
composed board and the poller's heartbeat, stores what changed, forms messages
and enqueues ``notify_send`` for those due. It writes its own heartbeat
(``/metrics`` shows its age, and ``docs/alerts.yml`` alerts when it stops: the
notifier watches the poller, Prometheus watches the notifier).

Sending is the only slow part and the only part that talks to destinations;
it runs on this queue alone, so a destination that hangs costs the notifier one
thread and never the poller or another destination.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery.signals import worker_ready
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from dashboard import snapshots
from dashboard.celery import app
from dashboard.notify import delivery
from dashboard.notify.watch import board_watch
from dashboard.polling import state

logger = logging.getLogger("dashboard.notify")
QUEUE = "notify"


@app.task(ignore_result=True)
def notify_send(message_id: int) -> None:
    """Send one claimed message (``delivery.message_send`` owns the outcome and the retry schedule)."""
    delivery.message_send(message_id)


def notify_scan() -> int:
    """One pass of the watch loop: notice, store, form messages, enqueue the due ones. The number enqueued."""
    with state.exclusive("notify-watch", ttl=30) as mine:
        if not mine:
            return 0
        now = timezone.now()
        snapshots.notifier_heartbeat_write(now.timestamp())
        delivery.destinations_sync()
        board_watch(snapshots.board_read(), snapshots.heartbeat_read(), now=now)
        delivery.messages_form(now=now)
        claimed = delivery.messages_claim(now=now)
    for message_id in claimed:
        notify_send.apply_async((message_id,), queue=QUEUE)
    return len(claimed)


@app.task(ignore_result=True)
def notify_scan_now() -> None:
    """The watch loop's pass as a task, for an operator who wants it at once."""
    notify_scan()


PURGE_EVERY_SECONDS = 3600.0


def _watch_loop() -> None:
    purged_at = 0.0
    while True:
        try:
            close_old_connections()
            notify_scan()
            if time.monotonic() - purged_at > PURGE_EVERY_SECONDS:
                purged_at = time.monotonic()
                delivery.notify_purge(now=timezone.now())
        except Exception:
            logger.exception("notify watch pass failed; trying again")
        time.sleep(settings.BOARD_NOTIFY_SCAN_SECONDS)


@worker_ready.connect
def _start_watch(sender: Any = None, **kwargs: Any) -> None:
    queues = getattr(getattr(sender, "app", app).amqp.queues, "consume_from", None) or {}
    if QUEUE not in queues:
        return
    threading.Thread(target=_watch_loop, name="notify-watch", daemon=True).start()
    logger.info("notifier watching the board every %ss", settings.BOARD_NOTIFY_SCAN_SECONDS)
