"""Celery beat's scheduler for the board: one log line per broker outage, not a traceback per tick.

Beat sends ``poll_tick`` every second. Celery's scheduler logs each send that
fails as an ERROR with two stack traces, so a Redis outage of a minute and a
half wrote 88 tracebacks. This one says once that it cannot send (and why),
and once that it sends again; the sends in between fail quietly, as they must
until Redis is back.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.beat import PersistentScheduler, ScheduleEntry

# Celery beat's own logger, for its "Sending due task" line (celery-types does not declare it).
celery_beat_logger = logging.getLogger("celery.beat")
logger = logging.getLogger("dashboard.polling.beat")


class BoardScheduler(PersistentScheduler):
    """``PersistentScheduler`` whose failed sends are logged once per outage."""

    failing_since: str | None = None

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        celery_beat_logger.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as exc:  # whatever the broker raised; the next tick tries again
            cause = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            if self.failing_since is None:
                self.failing_since = cause
                logger.warning(
                    "beat cannot send %s to the broker (%s); it keeps trying every tick and says "
                    "when it sends again",
                    entry.task,
                    cause,
                )
            return
        if self.failing_since is not None:
            logger.warning("beat sends %s to the broker again", entry.task)
            self.failing_since = None
