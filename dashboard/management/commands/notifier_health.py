"""``manage.py notifier_health``: exit 0 when the notifier's watch loop ran recently, 1 otherwise.

The compose file's health check for the ``notifier`` service: the notifier writes
its heartbeat on every pass of its watch loop (``dashboard.notify.tasks``).
"""

from __future__ import annotations

import sys
import time
from typing import Any, NoReturn

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from dashboard import snapshots


def _default_max_age() -> int:
    return max(30, settings.BOARD_NOTIFY_SCAN_SECONDS * 10)


class Command(BaseCommand):
    help = (
        "Exit 0 when the notifier (celery worker -Q notify) watched the board recently "
        "(default: within 10 passes, at least 30 s), 1 with a sentence saying what is wrong otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max-age", type=int, default=None, help="seconds its heartbeat may be old")

    def handle(self, *args: Any, max_age: int | None, **options: Any) -> None:
        limit = _default_max_age() if max_age is None else max_age
        try:
            heartbeat = snapshots.notifier_heartbeat_read()
        except redis.RedisError as exc:
            self._unhealthy(f"Redis cannot be reached ({type(exc).__name__}); the notifier cannot report.")
        if heartbeat is None:
            self._unhealthy(
                "The notifier has not reported yet; is `celery -A dashboard worker -Q notify` running?"
            )
        age = time.time() - heartbeat
        if age > limit:
            self._unhealthy(
                f"The notifier last watched the board {age:.0f} s ago (more than {limit} s); it is stopped or stuck."
            )
        self.stdout.write(f"ok: the notifier watched the board {max(0.0, age):.0f} s ago")

    def _unhealthy(self, sentence: str) -> NoReturn:
        self.stderr.write(sentence)
        sys.exit(1)
