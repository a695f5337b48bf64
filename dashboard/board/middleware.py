"""What the web app answers while Redis (the snapshot store and the broker) cannot be reached.

Views read every board datum from Redis, so with Redis gone they raise a
connection error. Instead of a 500 page, ``CacheUnavailableMiddleware`` answers
503 with one sentence saying the cache is unavailable and that the page retries
by itself:

- an htmx poll gets the sentence as plain text with ``X-Board-Problem: cache``;
  htmx swaps nothing on a 503, so the open page keeps its last board, and the
  page script shows the sentence in its connection banner until a poll succeeds;
- the JSON board gets ``{"error": ...}``;
- anything else gets a small page that reloads itself.

The database (tracked runs, display tokens, sessions, logins) is not involved, so
it is untouched and logging in keeps working.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("dashboard.board")

# Redis unreachable or too slow; kombu's OperationalError is the broker (the same Redis) refusing a task.
CACHE_ERRORS = (RedisConnectionError, RedisTimeoutError, OperationalError)
RETRY_SECONDS = 10
# What an open page's banner says (followed by "showing data from <time>. Retrying…").
CACHE_UNAVAILABLE = "Cache unavailable: the board cannot reach Redis"
CACHE_UNAVAILABLE_LONG = (
    "Cache unavailable: the board cannot reach Redis, where it keeps what the poller fetched from Mogplex."
)


class CacheUnavailableMiddleware:
    """Turns a Redis connection failure inside a view into a clear 503 (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, CACHE_ERRORS):
            return None
        # The class name only: the error's text names the Redis address, which is the operator's business.
        logger.warning("cache unavailable view=%s error=%s", _view_name(request), type(exception).__name__)
        response: HttpResponse
        if request.headers.get("HX-Request"):
            response = HttpResponse(CACHE_UNAVAILABLE, status=503, content_type="text/plain; charset=utf-8")
            response["X-Board-Problem"] = "cache"
        elif _view_name(request) == "board-json":
            response = JsonResponse({"error": f"{CACHE_UNAVAILABLE_LONG} Try again shortly."}, status=503)
        else:
            response = render(
                request,
                "cache_unavailable.html",
                {"message": CACHE_UNAVAILABLE_LONG, "retry_seconds": RETRY_SECONDS},
                status=503,
            )
        response["Retry-After"] = str(RETRY_SECONDS)
        response["Cache-Control"] = "no-store"
        # The warning above is this answer's log line. Django's own ("Service Unavailable: <path>")
        # would put the raw path in the log, and a kiosk's path holds its display token.
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response


def _view_name(request: HttpRequest) -> str:
    # The URL name, never the raw path: kiosk paths carry display tokens.
    match = request.resolver_match
    return match.view_name if match is not None else "unresolved"
