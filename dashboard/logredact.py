"""Keep display tokens out of log lines.

A wall's display token is part of its URL (``/kiosk/<token>/``, and
``?display=<token>`` on the JSON board), and both Django (``django.request``
logs the path of every 4xx and 5xx answer) and gunicorn's access log write
URLs. ``redact`` replaces the token with ``…``; ``RedactDisplayTokens`` applies
it to log records (see ``LOGGING`` in settings) and ``gunicorn.conf.py`` to the
access log.

``QuietBadRequests`` turns Django's report of a request it refused as suspicious
(a foreign ``Host``, a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``) from an ERROR
with a traceback into one WARNING line: the client sent something wrong, the
board answered 400, and there is nothing in the board to fix.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_TOKEN_IN_URL = re.compile(r"(/kiosk/|[?&]display=)[^/?&#\s\"']+")


def redact(text: str) -> str:
    """``text`` with any display token in a kiosk path or ``display=`` parameter replaced by ``…``."""
    return _TOKEN_IN_URL.sub(r"\1…", text)


def redacted(value: Any) -> Any:
    """``redact`` for strings; anything else as it is."""
    return redact(value) if isinstance(value, str) else value


class RedactDisplayTokens(logging.Filter):
    """A logging filter that redacts display tokens in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redacted(record.msg)
        if isinstance(record.args, dict):
            record.args = {key: redacted(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(redacted(value) for value in record.args)
        return True


class QuietBadRequests(logging.Filter):
    """Django's ``django.security.*`` records (a refused request) as one WARNING line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security.") and record.levelno > logging.WARNING:
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True
