"""The Celery broker transport: kombu's Redis transport, surviving a Redis that dies under it.

When Redis is killed while the worker holds prefetched messages, the worker's
consumer closes its connection to start again. Closing a channel puts those
messages back (``restore_unacked``), which needs a Redis client; the channel
builds a new connection pool for it from the connection it belongs to, which
kombu has already cleared by then. kombu 5.7 then raises ``AttributeError:
'NoneType' object has no attribute 'hostname'``, which Celery treats as
unrecoverable: the worker exits (``CRITICAL ... Unrecoverable error``).

``Channel`` raises a Redis ``ConnectionError`` there instead, one of the errors
the consumer expects while a connection is lost; the consumer drops the closing
channel and reconnects as it does for any outage. The messages left unrestored
were in a Redis that is gone (or comes back from its append-only file, and then
Redis redelivers them after the visibility timeout); the poller's next tick
plans the work again anyway.

``dashboard.celery`` makes this the transport for ``redis://`` and ``rediss://``
URLs (kombu's aliases), so TLS set up by the scheme keeps working.

``tasks_publish`` sends many task messages in one round trip: what the tick
needs for its forty-odd fetches a second (see its docstring).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps

if TYPE_CHECKING:
    from celery import Celery, Task


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection is closed; the worker reconnects")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]


class Transport(kombu_redis.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"


# --- many task messages in one round trip ------------------------------------------------


@dataclass(frozen=True)
class TaskSend:
    """One task message: the task, its arguments (names and ids, never a token) and its delay in seconds."""

    task: Task[Any, Any]
    args: tuple[str, ...]
    countdown: float = 0.0


@dataclass(frozen=True)
class _Template:
    queue: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    embed: dict[str, Any]


_templates: dict[tuple[int, str], _Template | None] = {}


def _template(app: Celery, task: Task[Any, Any]) -> _Template | None:
    """What every message of ``task`` shares, as Celery builds it; None when it is not routed to a plain queue."""
    key = (id(app), task.name)
    if key not in _templates:
        queue_option = getattr(task, "queue", None)
        route = app.amqp.router.route({"queue": queue_option} if queue_option else {}, task.name, (), {})
        queue = route.get("queue")
        exchange = getattr(queue, "exchange", None)
        plain = getattr(exchange, "type", "direct") == "direct" and not route.get("exchange")
        # Options this path does not copy (a priority, an expiry) go the usual way.
        if queue is None or not plain or task.priority or task.expires:
            _templates[key] = None
        else:
            headers, properties, body, _ = app.amqp.create_task_message(
                "",
                task.name,
                (),
                {},
                time_limit=task.time_limit,
                soft_time_limit=task.soft_time_limit,
                ignore_result=task.ignore_result,
            )
            delivery_mode = getattr(exchange, "delivery_mode", None) or app.conf.task_default_delivery_mode
            _templates[key] = _Template(
                queue=queue.name,
                headers=headers,
                properties={
                    **properties,
                    "delivery_mode": delivery_mode,
                    "delivery_info": {"exchange": "", "routing_key": queue.name},
                    "priority": 0,
                    "body_encoding": "base64",
                },
                embed=body[2],
            )
    return _templates[key]


def tasks_publish(app: Celery, sends: Sequence[TaskSend], *, now: float) -> None:
    """Publish task messages in one round trip to the broker, each the message ``apply_async`` would send.

    ``apply_async`` costs about a millisecond a message, nearly all of it Celery's
    and kombu's bookkeeping around one Redis LPUSH; the poller's tick sends forty
    fetches a second at 50 tokens. Here each task's message is built by Celery
    once (``create_task_message``) and copied with its id, arguments and ETA, and
    all of them go to the queue in one transaction, so a broker that fails midway
    leaves none of them queued. A task routed to anything but a plain queue is
    sent with ``apply_async``. Countdowns count from ``now`` (epoch seconds).
    """
    parent = app.current_worker_task
    parent_id = parent.request.id if parent else None
    root_id = (parent.request.root_id or parent.request.id) if parent else None
    reply_to = app.thread_oid
    start = datetime.fromtimestamp(now, tz=UTC)
    pushes: list[tuple[str, str]] = []
    for send in sends:
        template = _template(app, send.task)
        if template is None:
            send.task.apply_async(send.args, countdown=send.countdown)
            continue
        task_id = str(uuid.uuid4())
        eta = (start + timedelta(seconds=send.countdown)).isoformat() if send.countdown > 0 else None
        headers = {
            **template.headers,
            "id": task_id,
            "root_id": root_id or task_id,
            "parent_id": parent_id,
            "eta": eta,
            "argsrepr": repr(send.args),
        }
        body = dumps([list(send.args), {}, template.embed]).encode()
        message = {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {
                **template.properties,
                "correlation_id": task_id,
                "reply_to": reply_to,
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        pushes.append((template.queue, dumps(message)))
    if not pushes:
        return
    # Tried twice, as CELERY_TASK_PUBLISH_RETRY_POLICY has apply_async do: a connection
    # the pool kept across a Redis restart fails once, then a new one is made.
    for attempt in (1, 2):
        try:
            with (
                app.producer_or_acquire() as producer,
                producer.channel.conn_or_acquire() as client,
                client.pipeline(transaction=True) as pipe,
            ):
                for queue, payload in pushes:
                    pipe.lpush(queue, payload)
                pipe.execute()
            return
        except (redis.ConnectionError, redis.TimeoutError):
            if attempt == 2:
                raise
