"""Alerting: the gauges after a known board, the alert rules through promtool, the Grafana dashboard's queries."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from django.conf import settings
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from dashboard import snapshots
from dashboard.models import NotifyDestination, NotifyMessage
from tests import board_data

pytestmark = pytest.mark.django_db

DOCS = Path(settings.BASE_DIR) / "docs"
METRIC = re.compile(r"\bmogplex_board_[a-z_]+\b")


def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.content.decode())
        for sample in family.samples
    }


def known_traffic(now: float) -> None:
    """A board with known contents, notification messages with known outcomes, a request or two."""
    failed = "55555555-5555-4555-8555-555555555555"
    runs = [
        board_data.run_row(board_data.RUN_FAILED, "failed", now=now, finished_at=now - 7200),
        board_data.run_row(failed, "failed", now=now, finished_at=now - 60),
        board_data.run_row(
            board_data.RUN_DONE,
            "failed",
            now=now,
            finished_at=now - 9000,
            acknowledged=[{"problem": "failed", "by": "ada", "at": now - 10, "note": ""}],
        ),
        board_data.run_row(board_data.RUN_ACTIVE, "streaming", now=now, stall_reason="no event for 17 min"),
        board_data.run_row("66666666-6666-4666-8666-666666666666", "success", now=now),
    ]
    sources = [
        board_data.source_row("demo", now=now),
        board_data.source_row("ben", now=now, state="unauthorized"),
    ]
    board_data.publish(board_data.board(now, runs=runs, sources=sources), heartbeat=now - 4)
    snapshots.notifier_heartbeat_write(now - 2)
    configured = settings.MOGPLEX_TOKENS[0].name
    snapshots.source_health_update(
        configured, state="ok", last_success_at=now - 3, effective_interval_seconds=10
    )
    for outcome in ("ok", "ok", "rate_limited"):
        snapshots.upstream_outcome_count("demo", outcome)
    slack = NotifyDestination.objects.create(name="chat", kind="slack", url="slack://a/b/c")
    mail = NotifyDestination.objects.create(name="mail", kind="mailto", url="mailto://h/x@example.com")
    NotifyMessage.objects.create(destination=slack, status=NotifyMessage.Status.SENT, attempts=1)
    NotifyMessage.objects.create(destination=slack, status=NotifyMessage.Status.SENT, attempts=2)
    NotifyMessage.objects.create(destination=slack, status=NotifyMessage.Status.FAILED, attempts=5)
    NotifyMessage.objects.create(destination=mail, status=NotifyMessage.Status.PENDING, attempts=1)


def test_a_scrape_after_known_traffic_shows_the_gauges(client: Client, redis_db: redis.Redis) -> None:
    now = time.time()
    known_traffic(now)
    metrics = scrape(client)

    def value(name: str, **labels: str) -> float:
        return metrics[(name, tuple(sorted(labels.items())))]

    assert value("mogplex_board_runs", status="failed") == 3
    assert value("mogplex_board_runs", status="streaming") == 1
    assert value("mogplex_board_runs", status="success") == 1
    # Two unresolved failures, one stalled run, one unauthorized source (the acknowledged failure is not).
    assert value("mogplex_board_attention_items") == 4
    assert value("mogplex_board_stalled_runs") == 1
    assert 7200 <= value("mogplex_board_oldest_unresolved_failure_age_seconds") < 7260
    assert value("mogplex_board_sources", state="unauthorized") == 1
    assert value("mogplex_board_sources", state="ok") == 1
    assert value("mogplex_board_sources", state="forbidden") == 0
    assert 4 <= value("mogplex_board_poller_heartbeat_age_seconds") < 60
    assert 2 <= value("mogplex_board_notifier_heartbeat_age_seconds") < 60
    assert value("mogplex_board_notify_deliveries_total", destination_kind="slack") == 2
    assert value("mogplex_board_notify_failures_total", destination_kind="slack") == 1
    assert value("mogplex_board_notify_attempts_total", destination_kind="slack") == 8
    assert value("mogplex_board_notify_pending", destination_kind="mailto") == 1
    assert value("mogplex_board_notify_failures_total", destination_kind="mailto") == 0


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: install Debian's prometheus package (apt-get install prometheus)"
    return found


def test_the_alert_rules_pass_promtool() -> None:
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        done = subprocess.run([promtool(), *args], cwd=DOCS, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def _rule_queries() -> list[str]:
    rules = yaml.safe_load((DOCS / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _dashboard_queries() -> list[str]:
    dashboard: dict[str, Any] = json.loads((DOCS / "grafana-dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(queries) >= len(dashboard["panels"]) > 5
    return queries


def test_every_query_of_the_rules_and_the_dashboard_names_an_exported_metric(
    client: Client, redis_db: redis.Redis
) -> None:
    known_traffic(time.time())
    client.get("/healthz")
    exported = {name for name, _ in scrape(client)}
    for query in _rule_queries() + _dashboard_queries():
        named = set(METRIC.findall(query))
        if query.startswith("up{"):
            continue
        assert named, f"a query that names no board metric: {query}"
        missing = named - exported
        assert not missing, f"{query!r} names metrics the board does not export: {sorted(missing)}"
