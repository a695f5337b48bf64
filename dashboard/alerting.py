"""Gauges an alert can be written on, read at scrape time from the composed board and the database.

Registered on ``/metrics`` beside the per-source figures in ``dashboard.ops``;
``docs/alerts.yml`` holds the rules written on them and
``docs/grafana-dashboard.json`` a dashboard over them. Items needing attention
and the oldest unresolved failure are the attention lane's, as the pages show it
(``selectors.board_state``); runs by status, stalled runs (``stall_reason``) and
sources by state are counted from the composed board's rows.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from django.db.models import Count, Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from dashboard import snapshots
from dashboard.board import selectors
from dashboard.models import NotifyMessage

JSON = dict[str, Any]
logger = logging.getLogger("dashboard.alerting")

SOURCE_STATES = (
    "ok",
    "unknown",
    "unauthorized",
    "forbidden",
    "rate_limited",
    "unavailable",
    "timeout",
    "protocol",
    "redirect",
)


def _unresolved_failure(run: JSON) -> bool:
    # Resolved as the attention lane resolves it: acknowledged as a failure, or fixed by a later success.
    return run.get("status") == "failed" and selectors.problem_resolution(run, "failed") is None


def _stalled(run: JSON) -> bool:
    stalled = isinstance(run.get("stall_reason"), str) and bool(run["stall_reason"])
    return stalled and selectors.problem_resolution(run, "stalled") is None


class AlertingCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = time.time()
        board = snapshots.board_read() or {}
        runs = [r for r in board.get("runs") or [] if isinstance(r, dict)]
        sources = [s for s in board.get("sources") or [] if isinstance(s, dict)]

        by_status = GaugeMetricFamily(
            "mogplex_board_runs", "Runs on the board, by status.", labels=["status"]
        )
        for status, count in sorted(Counter(str(r.get("status") or "not_found") for r in runs).items()):
            by_status.add_metric([status], count)
        yield by_status

        # The lane as the board shows it (dashboard.board.selectors owns it): unresolved failed
        # and stalled runs, errored sandboxes, automations' failed and waiting job runs, sources the
        # operator must fix, within the window.
        lane = selectors.board_state(board=board, now=now).attention
        attention = GaugeMetricFamily(
            "mogplex_board_attention_items",
            "Items in the attention lane: unresolved failed or stalled runs and job runs, errored sandboxes, "
            "sources to fix.",
        )
        attention.add_metric([], len(lane))
        yield attention

        stalled_runs = GaugeMetricFamily("mogplex_board_stalled_runs", "Runs that stopped making progress.")
        stalled_runs.add_metric([], sum(1 for r in runs if _stalled(r)))
        yield stalled_runs

        oldest = GaugeMetricFamily(
            "mogplex_board_oldest_unresolved_failure_age_seconds",
            "Seconds since the oldest unresolved failure in the attention lane began (0 when there is none).",
        )
        began = [i.began_at for i in lane if i.problem in ("failed", "error") and i.began_at is not None]
        oldest.add_metric([], max(0.0, now - min(began)) if began else 0.0)
        yield oldest

        by_state = GaugeMetricFamily("mogplex_board_sources", "Sources by state.", labels=["state"])
        states = Counter(str(s.get("state") or "unknown") for s in sources)
        for state in sorted(set(SOURCE_STATES) | set(states)):
            by_state.add_metric([state], states.get(state, 0))
        yield by_state

        notifier = GaugeMetricFamily(
            "mogplex_board_notifier_heartbeat_age_seconds", "Seconds since the notifier's last watch pass."
        )
        beat = snapshots.notifier_heartbeat_read()
        if beat is not None:
            notifier.add_metric([], now - beat)
        yield notifier

        try:
            figures = list(_notify_figures())
        except Exception:
            # The database is down (or not reachable from here): the figures from
            # Redis above still go out; these come back with it.
            logger.warning("notification figures left out of /metrics: the database cannot be read")
            return
        yield from figures


def _notify_figures() -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    sent = CounterMetricFamily(
        "mogplex_board_notify_deliveries",
        "Notification messages delivered, by destination kind.",
        labels=["destination_kind"],
    )
    failed = CounterMetricFamily(
        "mogplex_board_notify_failures",
        "Notification messages given up after every attempt failed, by destination kind.",
        labels=["destination_kind"],
    )
    attempts = CounterMetricFamily(
        "mogplex_board_notify_attempts",
        "Attempts to send notification messages (each retry counts), by destination kind.",
        labels=["destination_kind"],
    )
    pending = GaugeMetricFamily(
        "mogplex_board_notify_pending",
        "Notification messages waiting to be sent or retried, by destination kind.",
        labels=["destination_kind"],
    )
    figures: dict[str, dict[str, int]] = {}
    rows = NotifyMessage.objects.values("destination__kind", "status").annotate(
        n=Count("id"), tries=Sum("attempts")
    )
    for row in rows:
        kind = str(row["destination__kind"] or "unknown")
        mine = figures.setdefault(kind, {"sent": 0, "failed": 0, "pending": 0, "tries": 0})
        mine["tries"] += int(row["tries"] or 0)
        status = row["status"]
        if status == NotifyMessage.Status.SENT:
            mine["sent"] += row["n"]
        elif status == NotifyMessage.Status.FAILED:
            mine["failed"] += row["n"]
        else:
            mine["pending"] += row["n"]
    for kind, mine in sorted(figures.items()):
        sent.add_metric([kind], mine["sent"])
        failed.add_metric([kind], mine["failed"])
        attempts.add_metric([kind], mine["tries"])
        pending.add_metric([kind], mine["pending"])
    yield from (sent, failed, attempts, pending)
