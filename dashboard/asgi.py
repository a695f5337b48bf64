"""ASGI entry point (gunicorn ``dashboard.asgi --worker-class asgi``): the board, and its change stream.

The change stream (``dashboard.board.push``) is served natively: an open screen
holds a socket and a coroutine. Everything else is the Django application as
WSGI, run by ``a2wsgi`` in a pool of ``BOARD_WEB_THREADS`` threads per process
(default 4): each thread keeps its database connection from one request to the
next, as under gunicorn's threaded worker, which Django's own ASGI handler
(a new thread per request) would not.
"""

import os
import sys
from typing import Any

from dashboard.env import ConfigurationError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

try:
    from a2wsgi import WSGIMiddleware
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    from dashboard.board import push

    django_application = WSGIMiddleware(
        get_wsgi_application(),  # type: ignore[arg-type]
        workers=settings.BOARD_WEB_THREADS,
    )
except ConfigurationError as exc:
    sys.exit(f"Configuration error: {exc}")


async def application(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "http" and push.STREAM_PATH.match(scope["path"]):
        await push.stream(scope, receive, send)
    elif scope["type"] == "http":
        await django_application(scope, receive, send)
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
