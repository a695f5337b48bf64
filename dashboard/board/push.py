"""Push to open pages: a Server-Sent Events stream that says when the board changed.

Each composition that changes the board publishes its version on a Redis
channel (``snapshots.board_write``). In each web process one subscription to it
(``VersionHub``) wakes every open stream, and each stream sends an
``event: board`` carrying the new version. The page (``board.js``) answers it by
polling at once, so a change reaches the screen in the time of one poll instead
of up to a refresh interval later. The stream carries no board data: what the
page shows still comes from its poll, with the poll's own checks.

The stream is an optimisation, never a dependency. Pages keep polling on their
interval whether it is open or not, so a stream that breaks (a proxy that
buffers, a restarted server, Redis gone) costs freshness, not correctness, and
the page says nothing about it; ``EventSource`` reconnects by itself. A server
that cannot hold streams open (Django's WSGI server in development and in the
test suite) answers 204, which tells ``EventSource`` to stop trying.

Who may open one: the same people who may poll. ``/stream/`` needs a signed-in
session; ``/kiosk/<display token>/stream/`` a display token that is not revoked.
Both are checked when the stream opens, and each stream ends after
``LIFETIME_SECONDS`` (the browser reopens it, checked again), so a revoked
display or an ended session loses the stream within minutes, and its polls at
once. An open stream with an unchanged board costs a comment line every
``HEARTBEAT_SECONDS`` (which also lets proxies and the page see it is alive).

This is plain ASGI, served by gunicorn's ``asgi`` worker beside the Django
application (``dashboard.asgi``), so an open screen holds a socket and a
coroutine, not a thread.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import import_module
from types import SimpleNamespace
from typing import Any

import redis.asyncio
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.cookie import parse_cookie
from redis.exceptions import RedisError

from dashboard.snapshots import BOARD_CHANNEL

logger = logging.getLogger(__name__)

# Paths served by ``stream`` (the kiosk's carries its display token, redacted from logs).
STREAM_PATH = re.compile(r"^/(?:kiosk/(?P<token>[^/]+)/)?stream/$")
HEARTBEAT_SECONDS = 20.0
# A stream ends after this long (give or take a tenth, so that many screens opened at
# once do not all come back at once) and the browser reopens it, authorised again.
LIFETIME_SECONDS = 600.0
# How long the browser waits before reopening a stream that ended or broke.
RETRY_MS = 2000
# Open streams a web process holds at most; beyond, a new one is refused (the page polls).
MAX_STREAMS = 2000

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class VersionHub:
    """The board version as this process last heard it, and a wake-up for every stream waiting on it.

    One Redis subscription per process however many streams are open. After it
    (re)connects it reads the current version, so a change published while it was
    away is not missed.
    """

    def __init__(self) -> None:
        self.version: str | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        pause = 0.5
        down = False
        while True:
            client = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(BOARD_CHANNEL)
                    self.heard(await client.get("board:version"))
                    if down:
                        logger.info("Board change stream: Redis is back; pushing changes again.")
                    pause, down = 0.5, False
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.heard(message.get("data"))
            except (RedisError, OSError) as exc:
                # Once per outage: the pages keep polling meanwhile; only their pushes wait.
                if not down:
                    logger.warning(
                        "Board change stream: Redis unavailable (%s); open pages poll until it is back.",
                        type(exc).__name__,
                    )
                down = True
            finally:
                await client.aclose()
            await asyncio.sleep(pause)
            pause = min(pause * 2, 10.0)

    def heard(self, raw: bytes | str | None) -> None:
        version = raw.decode() if isinstance(raw, bytes) else raw
        if version and version != self.version:
            self.version = version
            self._changed.set()
            self._changed = asyncio.Event()

    async def changed(self, seen: str | None, timeout: float) -> str | None:
        """The version once it differs from ``seen``; None if it has not within ``timeout`` seconds."""
        if self.version is not None and self.version != seen:
            return self.version
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return None
        return self.version


_hub: VersionHub | None = None
_closing: asyncio.Event | None = None
_open = 0


def hub() -> VersionHub:
    global _hub
    if _hub is None:
        _hub = VersionHub()
    _hub.start()
    return _hub


def closing() -> asyncio.Event:
    """Set when the web process is stopping: every open stream ends at once (the browser reconnects)."""
    global _closing
    if _closing is None:
        _closing = asyncio.Event()
    return _closing


def close_streams() -> None:
    closing().set()


# --- who may open a stream -----------------------------------------------------------


def authorised(token: str | None, cookie_header: str) -> tuple[int, str]:
    """(status, sentence): 200 when this display token or this session's cookie may read the board.

    Runs in a thread (it reads the database and the session store), once per stream.
    """
    from django.contrib.auth import get_user
    from django.db import close_old_connections

    from dashboard.models import DisplayToken

    close_old_connections()
    try:
        if token is not None:
            from dashboard.board.views import DISPLAY_REVOKED, DISPLAY_UNKNOWN

            display = DisplayToken.objects.filter(token_hash=DisplayToken.hash(token)).first()
            if display is None:
                return 404, DISPLAY_UNKNOWN
            if display.revoked_at is not None:
                return 410, DISPLAY_REVOKED
            return 200, ""
        session_key = parse_cookie(cookie_header).get(settings.SESSION_COOKIE_NAME)
        if not session_key:
            return 403, "Sign in to follow the board."
        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        user = get_user(SimpleNamespace(session=store))  # type: ignore[arg-type]
        if not user.is_authenticated:
            return 403, "Sign in to follow the board."
        return 200, ""
    finally:
        close_old_connections()


# --- the stream -----------------------------------------------------------------------


async def stream(scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one stream (``STREAM_PATH``) until the client leaves, its lifetime ends or the process stops."""
    global _open
    match = STREAM_PATH.match(scope["path"])
    token = match.group("token") if match else None
    cookie = b"; ".join(value for name, value in scope.get("headers", []) if name == b"cookie").decode(
        "latin-1"
    )
    if scope.get("method") != "GET":
        await _answer(send, 405, "Use GET to follow the board.")
        return
    if _open >= MAX_STREAMS:
        await _answer(send, 503, "Too many open streams here; the page polls instead.")
        return
    try:
        status, sentence = await asyncio.to_thread(authorised, token, cookie)
    except Exception:
        logger.exception("Board change stream: could not check who is asking")
        status, sentence = 503, "The board cannot check this stream now; the page polls instead."
    if status != 200:
        await _answer(send, status, sentence)
        return
    the_hub = hub()
    stop = closing()
    _open += 1
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-store"),
                    # nginx would otherwise hold the events back in its buffer.
                    (b"x-accel-buffering", b"no"),
                    (b"referrer-policy", b"no-referrer"),
                ],
            }
        )
        await _event(send, f"retry: {RETRY_MS}\n\n")
        left = asyncio.get_running_loop().create_task(_disconnected(receive))
        ends_at = asyncio.get_running_loop().time() + LIFETIME_SECONDS * random.uniform(0.9, 1.1)
        seen: str | None = None
        try:
            while not left.done() and not stop.is_set():
                remaining = ends_at - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                waiting = asyncio.ensure_future(the_hub.changed(seen, min(HEARTBEAT_SECONDS, remaining)))
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiting, left, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if not waiting.done():
                    waiting.cancel()
                    continue
                version = waiting.result()
                if version is None:
                    await _event(send, ":\n\n")
                else:
                    seen = version
                    await _event(send, f"event: board\ndata: {version}\n\n")
        finally:
            left.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:
        pass  # the client went away mid-write
    finally:
        _open -= 1


async def _event(send: Send, text: str) -> None:
    await send({"type": "http.response.body", "body": text.encode(), "more_body": True})


async def _disconnected(receive: Receive) -> None:
    while (await receive()).get("type") != "http.disconnect":
        pass


async def _answer(send: Send, status: int, sentence: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": sentence.encode()})


def unavailable(request: HttpRequest, token: str | None = None) -> HttpResponse:
    """The stream's URL under a server that cannot hold it open (WSGI): 204, so the page only polls."""
    return HttpResponse(status=204)
