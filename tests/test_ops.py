"""Operator endpoints: liveness, readiness and metrics, unauthenticated and leaking nothing."""

from __future__ import annotations

import time

import pytest
import redis
from django.test import Client
from pytest_django.fixtures import Settings

from dashboard import snapshots


@pytest.fixture(autouse=True)
def _board_redis(settings: Settings, redis_db: redis.Redis, valkey_server: str) -> None:
    settings.REDIS_URL = valkey_server


def test_healthz_answers_without_login(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok\n"


@pytest.mark.django_db
def test_readyz_names_the_poller_when_its_heartbeat_is_missing(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "checks": {"database": True, "redis": True, "poller": False}}


@pytest.mark.django_db
def test_readyz_is_ready_with_a_recent_heartbeat(client: Client) -> None:
    snapshots.heartbeat_write(time.time())
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["ready"] is True


@pytest.mark.django_db
def test_readyz_says_redis_when_the_cache_is_unreachable(client: Client, settings: Settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] is False


def test_metrics_report_budget_and_heartbeat(client: Client) -> None:
    """The request counters move with real requests: tests/test_gate.py scrapes them after known traffic."""
    now = time.time()
    snapshots.source_health_update(
        "demo", budget=50, budget_used=17, effective_interval_seconds=12.5, last_success_at=now - 3
    )
    snapshots.heartbeat_write(now)
    body = client.get("/metrics").content.decode()
    assert 'mogplex_board_budget_used{source="demo"} 17.0' in body
    assert 'mogplex_board_upstream_rate_limited_total{source="demo"} 0.0' in body
    assert 'mogplex_board_effective_refresh_seconds{source="demo"} 12.5' in body
    assert "mogplex_board_poller_heartbeat_age_seconds" in body


def test_metrics_can_require_a_bearer_token(client: Client, settings: Settings) -> None:
    settings.BOARD_METRICS_TOKEN = "metrics-secret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer metrics-secret"}).status_code == 200
