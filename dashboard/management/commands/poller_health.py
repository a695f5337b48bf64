"""``manage.py poller_health``: exit 0 when the poller's heartbeat is recent, 1 otherwise.

The compose file's health check for the ``worker`` and ``beat`` services. The
heartbeat is written by ``poll_tick``, which beat schedules and a worker runs,
so a recent one means both are doing their job; it is the same check as
``/readyz``'s ``poller``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, NoReturn

import redis
from django.core.management.base import BaseCommand, CommandParser

from dashboard import snapshots
from dashboard.ops import HEARTBEAT_GRACE_SECONDS


class Command(BaseCommand):
    help = (
        "Exit 0 when the poller (Celery worker and beat) ticked within the last "
        f"{HEARTBEAT_GRACE_SECONDS} seconds, 1 with a sentence saying what is wrong otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-age",
            type=int,
            default=HEARTBEAT_GRACE_SECONDS,
            help=f"seconds a heartbeat may be old (default {HEARTBEAT_GRACE_SECONDS})",
        )

    def handle(self, *args: Any, max_age: int, **options: Any) -> None:
        try:
            heartbeat = snapshots.heartbeat_read()
        except redis.RedisError as exc:
            self._unhealthy(f"Redis cannot be reached ({type(exc).__name__}); the poller cannot report.")
        if heartbeat is None:
            self._unhealthy("The poller has not reported yet; is beat running, and a worker?")
        age = time.time() - heartbeat
        if age > max_age:
            self._unhealthy(
                f"The poller last reported {age:.0f} s ago (more than {max_age} s); "
                "the worker or beat is stopped or stuck."
            )
        self.stdout.write(f"ok: the poller reported {max(0.0, age):.0f} s ago")

    def _unhealthy(self, sentence: str) -> NoReturn:
        self.stderr.write(sentence)
        sys.exit(1)
