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
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection is closed; the worker reconnects")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]


class Transport(kombu_redis.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"
