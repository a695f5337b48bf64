"""From noticed events to sent messages: rules, digests, sending once, retries.

The database is the record of what was sent, so a worker restart or a retry
never sends a delivered message again:

- ``events_record`` stores each event once (``NotifyEvent.key`` is unique) and,
  for a new one, one ``NotifyDelivery`` per destination whose rules want it
  (unique per event and destination).
- ``messages_form`` gathers a destination's waiting deliveries into one
  ``NotifyMessage``: the event itself, or a digest when several wait. A
  destination gets at most ``BOARD_NOTIFY_PER_MINUTE`` messages in any rolling
  minute; whatever arrives beyond that waits and goes out as one digest.
- ``messages_claim`` hands due messages to the send task by a conditional update
  (pending -> sending), one message per destination at a time, so a destination
  that hangs holds one worker thread and never another destination's message.
- ``message_send`` sends one message: sent, or back to pending with a growing
  pause, or given up after ``BOARD_NOTIFY_ATTEMPTS`` with the reason kept.

A worker that dies between the destination's answer and the database write can
send that one message twice; nothing else can.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from dashboard.models import NotifyDelivery, NotifyDestination, NotifyEvent, NotifyMessage, NotifyRule
from dashboard.notify.destinations import apprise_plugin, dialect_for, scrub
from dashboard.notify.messages import render
from dashboard.notify.neutralise import one_line

logger = logging.getLogger("dashboard.notify")
JSON = dict[str, Any]

EVENT_KINDS: tuple[tuple[str, str], ...] = (
    ("run_failed", "a run failed"),
    ("run_stalled", "a run stalled"),
    ("job_run_failed", "an automation's job run failed"),
    ("failure_resolved", "a failure was resolved (acknowledged or fixed by a later run)"),
    ("source_problem", "a source became unauthorized, forbidden or redirected"),
    ("source_recovered", "a source recovered"),
    ("poller_down", "the poller stopped reporting"),
    ("poller_back", "the poller is reporting again"),
)
RUN_KINDS = frozenset({"run_failed", "run_stalled", "failure_resolved", "job_run_failed"})


@dataclass(frozen=True)
class Found:
    """An event the watcher saw on the board, identified by ``key`` (one per transition)."""

    key: str
    kind: str
    facts: JSON = field(default_factory=dict)
    repo: str = ""
    source: str = ""
    subject: str = ""
    open: bool = False


def _names(text: str) -> set[str]:
    return {part.strip().lower() for part in text.split(",") if part.strip()}


def rule_matches(rule: NotifyRule, event: NotifyEvent | Found) -> bool:
    """Whether ``rule`` sends ``event``: its kind is chosen and it passes the repo and source filters.

    A repo filter only lets run events through; a source filter lets run and
    source events of those sources through; the poller's events pass rules
    without filters only.
    """
    if event.kind not in rule.events:
        return False
    repos, sources = _names(rule.repos), _names(rule.sources)
    if repos and (event.kind not in RUN_KINDS or event.repo.lower() not in repos):
        return False
    return not sources or event.source.lower() in sources


def destination_wants(destination: NotifyDestination, event: NotifyEvent | Found) -> bool:
    rules = list(destination.rules.all())
    return not rules or any(rule_matches(rule, event) for rule in rules)


def events_record(found: list[Found], *, now: datetime) -> list[NotifyEvent]:
    """Store the events not stored yet, each with its deliveries; the new ones."""
    if not found:
        return []
    known = set(NotifyEvent.objects.filter(key__in=[f.key for f in found]).values_list("key", flat=True))
    destinations = list(NotifyDestination.objects.filter(enabled=True).prefetch_related("rules"))
    created = []
    for item in found:
        if item.key in known:
            continue
        try:
            with transaction.atomic():
                event = NotifyEvent.objects.create(
                    key=item.key,
                    kind=item.kind,
                    facts=item.facts,
                    repo=item.repo[:200],
                    source=item.source[:40],
                    subject=item.subject[:100],
                    open=item.open,
                    created_at=now,
                )
                NotifyDelivery.objects.bulk_create(
                    NotifyDelivery(event=event, destination=d, created_at=now)
                    for d in destinations
                    if destination_wants(d, item)
                )
        except IntegrityError:
            continue  # another watcher stored it first
        created.append(event)
    return created


def messages_form(*, now: datetime) -> list[NotifyMessage]:
    """Gather each destination's waiting deliveries into one message, within its rate."""
    formed = []
    waiting = (
        NotifyDelivery.objects.filter(message__isnull=True, destination__enabled=True)
        .values_list("destination_id", flat=True)
        .distinct()
    )
    for destination_id in set(waiting):
        recent = NotifyMessage.objects.filter(
            destination_id=destination_id, created_at__gt=now - timedelta(seconds=60)
        ).count()
        if recent >= settings.BOARD_NOTIFY_PER_MINUTE:
            continue
        with transaction.atomic():
            message = NotifyMessage.objects.create(
                destination_id=destination_id, created_at=now, next_attempt_at=now
            )
            attached = NotifyDelivery.objects.filter(
                destination_id=destination_id, message__isnull=True
            ).update(message=message)
            if not attached:
                message.delete()
                continue
        formed.append(message)
    return formed


def messages_claim(*, now: datetime) -> list[int]:
    """Mark due messages as being sent (one per destination) and return their ids for the send task."""
    # A message claimed by a worker that died is due again once a send would surely have ended.
    lost = now - timedelta(seconds=settings.BOARD_NOTIFY_TIMEOUT_SECONDS * 3 + 30)
    stuck = NotifyMessage.objects.filter(status=NotifyMessage.Status.SENDING, claimed_at__lt=lost)
    if stuck.exists():
        stuck.update(status=NotifyMessage.Status.PENDING)
    busy = set(
        NotifyMessage.objects.filter(status=NotifyMessage.Status.SENDING).values_list(
            "destination_id", flat=True
        )
    )
    claimed = []
    due = NotifyMessage.objects.filter(
        status=NotifyMessage.Status.PENDING, next_attempt_at__lte=now
    ).order_by("created_at")
    for message_id, destination_id in due.values_list("id", "destination_id"):
        if destination_id in busy:
            continue
        taken = NotifyMessage.objects.filter(pk=message_id, status=NotifyMessage.Status.PENDING).update(
            status=NotifyMessage.Status.SENDING, claimed_at=now
        )
        if taken:
            busy.add(destination_id)
            claimed.append(message_id)
    return claimed


def destination_url(destination: NotifyDestination) -> str | None:
    if destination.env_index is not None:
        urls = settings.BOARD_NOTIFY_URLS
        return urls[destination.env_index].url if destination.env_index < len(urls) else None
    return destination.url or None


def destination_send(url: str, kind: str, events: list[tuple[str, JSON]]) -> str | None:
    """Send ``events`` as one message to ``url``; ``None``, or one sentence saying why it failed (no secret)."""
    import apprise

    plugin = apprise_plugin(url)
    if plugin is None:
        return "The destination's URL is no longer one Apprise can send to; fix it in the admin or BOARD_NOTIFY_URLS."
    timeout = float(settings.BOARD_NOTIFY_TIMEOUT_SECONDS)
    plugin.socket_connect_timeout = timeout
    plugin.socket_read_timeout = timeout
    rendered = render(events, dialect_for(kind))
    notifier = apprise.Apprise()
    notifier.add(plugin)
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as log:  # type: ignore[no-untyped-call]
        sent = notifier.notify(
            title=rendered.title,
            body=rendered.body,
            body_format=apprise.NotifyFormat.MARKDOWN if rendered.markdown else apprise.NotifyFormat.TEXT,
        )
    if sent:
        return None
    lines = [line for line in log.getvalue().splitlines() if line.strip()]
    detail = one_line(scrub(lines[-1] if lines else "no reason given", url), 200).rstrip(".")
    return f"The {kind} destination did not take the message: {detail}."


def _backoff_seconds(attempts: int) -> float:
    ceiling = settings.BOARD_NOTIFY_RETRY_SECONDS * 2 ** (attempts - 1)
    return random.uniform(ceiling / 2, ceiling)


def message_events(message: NotifyMessage) -> list[tuple[str, JSON]]:
    return [
        (d.event.kind, d.event.facts)
        for d in message.deliveries.select_related("event").order_by("event__created_at", "event_id")
    ]


def message_send(message_id: int) -> None:
    """Send one claimed message; record the outcome (sent, retry later, or given up)."""
    message = NotifyMessage.objects.select_related("destination").filter(pk=message_id).first()
    if message is None or message.status != NotifyMessage.Status.SENDING:
        return
    destination = message.destination
    url = destination_url(destination)
    events = message_events(message)
    if url is None:
        error: str | None = (
            "The destination has no URL any more (removed from BOARD_NOTIFY_URLS); add it back or delete it."
        )
    elif not events:
        error = None
    else:
        error = destination_send(url, destination.kind, events)
    now = timezone.now()
    attempts = message.attempts + 1
    if error is None:
        NotifyMessage.objects.filter(pk=message.pk).update(
            status=NotifyMessage.Status.SENT, attempts=attempts, sent_at=now, last_error=""
        )
        logger.info(
            "notification sent destination=%s message=%s events=%d", destination.pk, message.pk, len(events)
        )
        return
    gave_up = attempts >= settings.BOARD_NOTIFY_ATTEMPTS or url is None
    NotifyMessage.objects.filter(pk=message.pk).update(
        status=NotifyMessage.Status.FAILED if gave_up else NotifyMessage.Status.PENDING,
        attempts=attempts,
        last_error=error[:300],
        next_attempt_at=now + timedelta(seconds=_backoff_seconds(attempts)),
    )
    logger.warning(
        "notification %s destination=%s message=%s attempt=%d: %s",
        "given up" if gave_up else "failed, will retry",
        destination.pk,
        message.pk,
        attempts,
        error,
    )


def destination_test(destination: NotifyDestination) -> tuple[bool, str]:
    """Send a test notification now: whether it was taken, and one sentence saying so or why not."""
    url = destination_url(destination)
    if url is None:
        return (
            False,
            f"The test notification to {destination.name} was not sent: it has no URL (removed from BOARD_NOTIFY_URLS).",
        )
    error = destination_send(url, destination.kind, [("test", {})])
    if error is None:
        return True, f"The test notification to {destination.name} was sent."
    return False, f"The test notification to {destination.name} was not sent: {error[0].lower()}{error[1:]}"


def destinations_sync() -> None:
    """One destination row per BOARD_NOTIFY_URLS entry (rules attach to it); rows of removed entries disabled."""
    urls = settings.BOARD_NOTIFY_URLS
    rows = {row.env_index: row for row in NotifyDestination.objects.filter(env_index__isnull=False)}
    for index, destination in enumerate(urls):
        row = rows.get(index)
        if row is None:
            NotifyDestination.objects.create(
                env_index=index,
                name=f"BOARD_NOTIFY_URLS entry {index + 1} ({destination.kind})",
                kind=destination.kind,
            )
        elif row.kind != destination.kind:
            row.kind = destination.kind
            row.save(update_fields=["kind"])
    removed = NotifyDestination.objects.filter(Q(env_index__gte=len(urls)), enabled=True)
    # Checked first: an idle pass only reads (on SQLite a write, even of no row, locks the file).
    if removed.exists():
        removed.update(enabled=False)


def notify_purge(*, now: datetime) -> int:
    """Forget events and messages older than ``BOARD_NOTIFY_KEEP_DAYS`` (an open condition is kept); how many."""
    # Never sooner than a finished run leaves the board, or its failure would be new again.
    cutoff = now - max(
        timedelta(days=settings.BOARD_NOTIFY_KEEP_DAYS), timedelta(hours=settings.BOARD_RETENTION_HOURS + 1)
    )
    events, _ = NotifyEvent.objects.filter(created_at__lt=cutoff, open=False).delete()
    old = NotifyMessage.objects.filter(
        created_at__lt=cutoff, status__in=(NotifyMessage.Status.SENT, NotifyMessage.Status.FAILED)
    )
    # Their deliveries go too: a delivery without a message would read as one still to send.
    NotifyDelivery.objects.filter(message__in=old).delete()
    messages, _ = old.delete()
    return events + messages
