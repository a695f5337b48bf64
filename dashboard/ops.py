"""Endpoints for whoever runs the board: liveness, readiness and Prometheus metrics.

None of them needs a login and none of them says anything an outsider could use:
no tokens, no URLs, no error text from upstream.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from dashboard import snapshots
from dashboard.alerting import AlertingCollector

# A heartbeat older than this many poll ticks means the poller is not running.
HEARTBEAT_GRACE_SECONDS = 30

VIEW_LATENCY = Histogram(
    "mogplex_board_view_latency_seconds",
    "Time to answer a board request, by view.",
    ["view"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up. Nothing else is checked."""
    return HttpResponse("ok\n", content_type="text/plain")


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Database and Redis reachable, poller heartbeat recent. 503 with the failing part named otherwise."""
    checks: dict[str, bool] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = True
    except Exception:
        checks["database"] = False
    heartbeat: float | None = None
    try:
        heartbeat = snapshots.heartbeat_read()
        checks["redis"] = True
    except Exception:
        checks["redis"] = False
    checks["poller"] = heartbeat is not None and time.time() - heartbeat < HEARTBEAT_GRACE_SECONDS
    ready = all(checks.values())
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)


class BoardCollector(Collector):
    """Reads the figures the workers keep in Redis at scrape time, so every process agrees."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = time.time()
        budget_used = GaugeMetricFamily(
            "mogplex_board_budget_used", "Requests spent in the current rolling window.", labels=["source"]
        )
        budget = GaugeMetricFamily(
            "mogplex_board_budget", "Requests allowed per rolling window.", labels=["source"]
        )
        interval = GaugeMetricFamily(
            "mogplex_board_effective_refresh_seconds",
            "How often each active run can be refreshed under the budget.",
            labels=["source"],
        )
        age = GaugeMetricFamily(
            "mogplex_board_source_age_seconds", "Seconds since the last successful fetch.", labels=["source"]
        )
        paused = GaugeMetricFamily(
            "mogplex_board_source_paused_seconds", "Seconds left of a Retry-After pause.", labels=["source"]
        )
        requests = CounterMetricFamily(
            "mogplex_board_upstream_requests", "Upstream requests by outcome.", labels=["source", "outcome"]
        )
        limited = CounterMetricFamily(
            "mogplex_board_upstream_rate_limited", "Upstream 429 answers.", labels=["source"]
        )
        for source in settings.MOGPLEX_TOKENS:
            name = source.name
            health = snapshots.source_health_read(name) or {}
            budget.add_metric([name], float(health.get("budget") or settings.MOGPLEX_BUDGET))
            budget_used.add_metric([name], float(health.get("budget_used") or 0))
            if health.get("effective_interval_seconds") is not None:
                interval.add_metric([name], float(health["effective_interval_seconds"]))
            if health.get("last_success_at"):
                age.add_metric([name], now - float(health["last_success_at"]))
            paused.add_metric([name], max(0.0, float(health.get("paused_until") or 0) - now))
            outcomes = snapshots.upstream_outcomes_read(name)
            for outcome, count in sorted(outcomes.items()):
                requests.add_metric([name, outcome], count)
            limited.add_metric([name], outcomes.get("rate_limited", 0))
        yield from (budget_used, budget, interval, age, paused, requests, limited)

        board = snapshots.board_read()
        board_age = GaugeMetricFamily(
            "mogplex_board_snapshot_age_seconds", "Seconds since the board was composed."
        )
        if board and board.get("composed_at"):
            board_age.add_metric([], now - float(board["composed_at"]))
        yield board_age
        heartbeat = snapshots.heartbeat_read()
        heartbeat_age = GaugeMetricFamily(
            "mogplex_board_poller_heartbeat_age_seconds", "Seconds since the poller's last tick."
        )
        if heartbeat is not None:
            heartbeat_age.add_metric([], now - heartbeat)
        yield heartbeat_age


_REGISTRY = CollectorRegistry()
_REGISTRY.register(BoardCollector())
_REGISTRY.register(VIEW_LATENCY)
_REGISTRY.register(AlertingCollector())


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format. With BOARD_METRICS_TOKEN set, a matching bearer token is required."""
    expected = settings.BOARD_METRICS_TOKEN
    if expected:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return HttpResponse("Send Authorization: Bearer <BOARD_METRICS_TOKEN>.\n", status=401)
    try:
        body = generate_latest(_REGISTRY)
    except Exception:
        return HttpResponse("Metrics are unavailable: the cache cannot be reached.\n", status=503)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def view_latency_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Observe each request's latency under its URL name (never the raw path, which carries kiosk tokens)."""

    def middleware(request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = get_response(request)
        match = request.resolver_match
        name = match.view_name if match is not None else "unresolved"
        VIEW_LATENCY.labels(view=name).observe(time.perf_counter() - started)
        return response

    return middleware
