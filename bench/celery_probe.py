"""A Celery worker that also measures the scheduler: CPU time of each ``poll_tick`` it runs.

``python -m bench.celery_probe worker ...`` takes the same arguments as
``celery -A dashboard worker``. Around each ``poll_tick`` it reads the running
thread's CPU clock (``time.thread_time``: the worker uses a thread pool, so the
process clock would count the fetch tasks running beside it) and adds the
difference, the wall time and a count to Redis (``bench:tick:*``), where the
bench reads them. Nothing in the product is changed.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import redis
from celery.signals import task_postrun, task_prerun

from dashboard.celery import app

_started = threading.local()
_redis = redis.Redis.from_url(os.environ["REDIS_URL"])


def _is_tick(task: Any) -> bool:
    return str(getattr(task, "name", "")).endswith(".poll_tick")


@task_prerun.connect
def _tick_started(task: Any = None, **_: Any) -> None:
    if _is_tick(task):
        _started.at = (time.thread_time(), time.perf_counter())


@task_postrun.connect
def _tick_finished(task: Any = None, **_: Any) -> None:
    started = getattr(_started, "at", None)
    if not _is_tick(task) or started is None:
        return
    _started.at = None
    pipe = _redis.pipeline()
    pipe.incrbyfloat("bench:tick:cpu", time.thread_time() - started[0])
    pipe.incrbyfloat("bench:tick:wall", time.perf_counter() - started[1])
    pipe.incr("bench:tick:count")
    pipe.execute()


if __name__ == "__main__":
    app.worker_main(sys.argv[1:])
