"""``POST /ingest/runs``: CI jobs register the runs they start.

A pipeline that ran ``mogplex run --json`` posts what it printed (one object or
NDJSON) or ``{"run_ids": [...]}``, with ``Authorization: Bearer <ingest
token>``. The ingest token is the board's own secret (``BOARD_INGEST_TOKEN``),
never a Mogplex token; when it is empty, ingest is disabled.

Answers are JSON: 201 ``{"tracked": [...], "already_tracked": [...]}``; 400,
401, 403, 405, 413 and 429 carry ``{"error": "<one sentence>"}``. Bad input changes
nothing. The submitted token is never echoed or logged.

A run's ``repoId`` in the body sends its lookup to the source whose repos hold
it; ``?source=<name>`` names the source that owns every run of the request.

A CI job gone wrong can register hundreds of runs nobody owns; each costs
lookups on every source. So a request that would register more than
``BOARD_INGEST_MAX_RUNS`` new runs, or more than ``BOARD_INGEST_RUNS_PER_HOUR``
new runs in any rolling hour (a moving window in Redis, across web processes),
is answered 429 with one sentence and ``Retry-After``, and tracks nothing. Runs
already tracked never count. Without Redis the hourly count cannot be kept;
the request is let through (the per-request limit still holds) and one line
is logged.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from functools import cache

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from limits import RateLimitItemPerHour
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from dashboard.discovery import (
    InvalidRunInput,
    new_run_count,
    run_refs_read,
    run_track,
    source_name_check,
)
from dashboard.models import TrackedRun

logger = logging.getLogger(__name__)

INGEST_MAX_BYTES = 64 * 1024
LIMITS_PREFIX = "ingest"


@cache
def _limiter_for(url: str) -> MovingWindowRateLimiter:
    storage = RedisStorage(
        url, key_prefix=LIMITS_PREFIX, wrap_exceptions=True, socket_timeout=2, socket_connect_timeout=2
    )
    return MovingWindowRateLimiter(storage)


def _over_limit(new: int) -> JsonResponse | None:
    """The 429 for a request registering ``new`` runs, when that is more than a team plausibly starts."""
    most: int = settings.BOARD_INGEST_MAX_RUNS
    if new > most:
        response = _error(
            429,
            f"This request would register {new} new runs, more than the {most} a team plausibly starts at once "
            "(BOARD_INGEST_MAX_RUNS); nothing was tracked. Check the CI job, or send them in smaller batches.",
        )
        response["Retry-After"] = "60"
        return response
    if new == 0:
        return None
    per_hour: int = settings.BOARD_INGEST_RUNS_PER_HOUR
    item = RateLimitItemPerHour(per_hour)
    limiter = _limiter_for(settings.REDIS_URL)
    try:
        if limiter.hit(item, "runs", cost=new):
            return None
        stats = limiter.get_window_stats(item, "runs")
    except StorageError:
        logger.warning("ingest: Redis is unavailable, so the hourly limit of new runs is not counted")
        return None
    wait = max(1, math.ceil(stats.reset_time - time.time()))
    response = _error(
        429,
        f"Ingest has registered {per_hour - stats.remaining} new runs in the last hour; {new} more would pass "
        f"the {per_hour} a team plausibly starts (BOARD_INGEST_RUNS_PER_HOUR), so nothing was tracked. "
        f"Check the CI job that sends them, or try again in {wait} s.",
    )
    response["Retry-After"] = str(wait)
    return response


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _bearer_ok(request: HttpRequest, expected: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer":
        # Compare anyway, so a missing header and a wrong token take the same path.
        presented = ""
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


def _body(request: HttpRequest, most: int) -> bytes:
    """At most ``most`` bytes of the body, also when it comes with chunked transfer encoding.

    Django reads a body by its Content-Length and sees none in a chunked one; the
    server (gunicorn) has already taken the chunking off ``wsgi.input``.
    """
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if chunked and "Content-Length" not in request.headers:
        stream = request.META.get("wsgi.input")
        return bytes(stream.read(most)) if stream is not None else b""
    return request.read(most)


@csrf_exempt
def runs_ingest(request: HttpRequest) -> JsonResponse:
    """Track the runs in the body; see the module docstring for the protocol."""
    if request.method != "POST":
        response = _error(405, "Use POST to send runs to /ingest/runs.")
        response["Allow"] = "POST"
        return response
    expected: str = settings.BOARD_INGEST_TOKEN
    if not expected:
        return _error(403, "Ingest is disabled on this board; set BOARD_INGEST_TOKEN to enable it.")
    if not _bearer_ok(request, expected):
        response = _error(401, "Send the board's ingest token as 'Authorization: Bearer <token>'.")
        response["WWW-Authenticate"] = 'Bearer realm="board-ingest"'
        return response
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    too_big = _error(413, f"The body is larger than {INGEST_MAX_BYTES // 1024} KB; send fewer runs at once.")
    if declared > INGEST_MAX_BYTES:
        return too_big
    body = _body(request, INGEST_MAX_BYTES + 1)
    if len(body) > INGEST_MAX_BYTES:
        return too_big
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _error(400, "The body is not UTF-8 text; send the JSON that `mogplex run --json` prints.")
    try:
        source = request.GET.get("source")
        if source is not None:
            source_name_check(source)
        refs = run_refs_read(text)
        refused = _over_limit(new_run_count(refs))
        if refused is not None:
            logger.warning("ingest: refused a request registering too many new runs (429)")
            return refused
        result = run_track(run_ids=refs, via=TrackedRun.Via.INGEST, source=source)
    except InvalidRunInput as exc:
        return _error(400, str(exc))
    # discovery logs the new runs ("tracking N new run(s) via ingest"); this is the detail.
    logger.debug(
        "ingest: %d new run(s), %d already tracked", len(result.tracked), len(result.already_tracked)
    )
    return JsonResponse(
        {
            "tracked": [str(r) for r in result.tracked],
            "already_tracked": [str(r) for r in result.already_tracked],
            "message": "Accepted; the board looks new runs up on the sources that may own them.",
        },
        status=201,
    )
