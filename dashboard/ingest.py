"""``POST /ingest/runs``: CI jobs register the runs they start.

A pipeline that ran ``mogplex run --json`` posts what it printed (one object or
NDJSON) or ``{"run_ids": [...]}``, with ``Authorization: Bearer <ingest
token>``. The ingest token is the board's own secret (``BOARD_INGEST_TOKEN``),
never a Mogplex token; when it is empty, ingest is disabled.

Answers are JSON: 201 ``{"tracked": [...], "already_tracked": [...]}``; 400,
401, 403, 405 and 413 carry ``{"error": "<one sentence>"}``. Bad input changes
nothing. The submitted token is never echoed or logged.
"""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from dashboard.discovery import InvalidRunInput, run_ids_read, run_track
from dashboard.models import TrackedRun

logger = logging.getLogger(__name__)

INGEST_MAX_BYTES = 64 * 1024


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
        result = run_track(run_ids=run_ids_read(text), via=TrackedRun.Via.INGEST)
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
            "message": "Accepted; the board looks new runs up on each configured source.",
        },
        status=201,
    )
