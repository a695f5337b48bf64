"""Publishing many task messages in one round trip (``broker.tasks_publish``), against the real Valkey.

What the tick publishes this way must be the message ``apply_async`` would have
sent, so the worker handles it exactly as before: these tests compare the two
on the queue. That a real worker runs them at their slots is in
``test_polling_worker.py``.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
import redis
import time_machine
from django.conf import settings

from dashboard.celery import app
from dashboard.polling import broker, tasks

RUN_ID = "0b5c2a38-8f5e-4a53-9d7e-3c1f1e2d4a6b"
PER_MESSAGE = {"id", "root_id"}


@pytest.fixture
def queue(redis_db: redis.Redis) -> redis.Redis:
    """The broker's database (the tests' is another), emptied."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    return client


def _popped(queue: redis.Redis) -> dict[str, Any]:
    raw = queue.rpop("celery")
    assert raw is not None, "nothing was queued on 'celery'"
    message: dict[str, Any] = json.loads(raw)  # type: ignore[arg-type]
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def _without_ids(message: dict[str, Any]) -> dict[str, Any]:
    """The message less what differs between any two messages: ids and delivery tags, checked apart."""
    headers, properties = message["headers"], message["properties"]
    assert headers["root_id"] == headers["id"] == properties["correlation_id"]
    assert properties["delivery_tag"]
    return {
        **message,
        "headers": {k: v for k, v in headers.items() if k not in PER_MESSAGE},
        "properties": {k: v for k, v in properties.items() if k not in {"correlation_id", "delivery_tag"}},
    }


@pytest.mark.parametrize("countdown", [0.0, 2.5])
@pytest.mark.parametrize(
    ("task", "args"),
    [(tasks.run_events_fetch, ("alice", RUN_ID)), (tasks.sandboxes_fetch, ("alice",))],
    ids=["run_events_fetch", "sandboxes_fetch"],
)
def test_a_published_message_is_the_one_apply_async_sends(
    queue: redis.Redis, task: Any, args: tuple[str, ...], countdown: float
) -> None:
    with time_machine.travel(1_800_000_000, tick=False):
        task.apply_async(args, countdown=countdown or None)
        expected = _popped(queue)
        broker.tasks_publish(app, [broker.TaskSend(task, args, countdown)], now=time.time())
        published = _popped(queue)

    assert _without_ids(published) == _without_ids(expected)
    assert published["body"][0] == list(args)
    assert (published["headers"]["eta"] is None) == (countdown == 0)


def test_every_message_goes_in_one_transaction_with_its_own_id(queue: redis.Redis) -> None:
    sends = [broker.TaskSend(tasks.run_events_fetch, ("alice", RUN_ID), 1.2 * n) for n in range(4)]
    sends.append(broker.TaskSend(tasks.repos_fetch, ("bob",), 6.0))
    broker.tasks_publish(app, sends, now=time.time())

    messages = [_popped(queue) for _ in sends]
    assert queue.llen("celery") == 0
    assert [m["headers"]["task"] for m in messages] == [send.task.name for send in sends]
    assert [m["body"][0] for m in messages] == [list(send.args) for send in sends]
    assert len({m["headers"]["id"] for m in messages}) == len(sends)
    etas = [m["headers"]["eta"] for m in messages]
    assert etas[0] is None and etas[1:] == sorted(etas[1:])


def test_nothing_to_publish_sends_nothing(queue: redis.Redis) -> None:
    broker.tasks_publish(app, [], now=time.time())
    assert queue.llen("celery") == 0
