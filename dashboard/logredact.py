"""Keep display tokens out of log lines.

A wall's display token is part of its URL (``/kiosk/<token>/``, and
``?display=<token>`` on the JSON board), and both Django (``django.request``
logs the path of every 4xx and 5xx answer) and gunicorn's access log write
URLs. ``redact`` replaces the token with ``…``; ``RedactDisplayTokens`` applies
it to log records (see ``LOGGING`` in settings) and ``gunicorn.conf.py`` to the
access log.
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
