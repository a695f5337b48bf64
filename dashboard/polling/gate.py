"""The source gate: the one owner of whether a source may send, and of what an answer does to it.

Every upstream request reads plan -> ``admit`` -> call -> ``settle`` -> record.

``admit(source, endpoint)`` is one Lua script in Redis (one round trip, atomic
across every worker and process): it refuses while the source is paused after a
429, held after an empty store (below), backing off after errors, probing, or
when the endpoint is denied to the token; otherwise it takes a slot in the
source's rolling window, or refuses when the window is full. Because the checks
and the slot are one step, no request leaves after another worker has recorded
a 429: that worker's ``settle`` and this ``admit`` cannot interleave.

``settle(source, endpoint, admission, error)`` applies the outcome, also in one
script (so two workers settling at once count one failure streak, not two):

- success (and a 404, which is about one id, not the source): the back-off and
  the probe are cleared, the endpoint is readable again;
- 429: nothing is sent until ``Retry-After`` has passed (a later, longer pause wins);
- 5xx, timeouts, protocol errors, 400: back-off from 1 s, doubling per failure
  up to ``BACKOFF_MAX_SECONDS`` (60 s, a status board should come back soon after
  an outage ends), full jitter over the upper half; when it ends one request
  goes out as a probe and the others wait for its answer; requests already in
  flight when a failure came back do not double the back-off again;
- 401: retried once soon (upstream also answers 401 when its token lookup hits a
  database error), then the source is unauthorized; 403 on an endpoint that
  needs no scope, and 3xx: configuration problems; all three back off the same
  way to ``SLOW_RETRY_SECONDS``;
- 403 on an endpoint that needs the ``read`` scope (``READ_SCOPE_ENDPOINTS``):
  only that endpoint is denied, for ``DENIED_RETRY_SECONDS``; the source keeps
  fetching runs and sandboxes, and its health lists the endpoints it cannot read.

Every settled request is counted by outcome for ``/metrics``.

**An empty store.** The window lives in Redis, but correctness must not depend
on Redis keeping it: after a restart without persistence the board would think
nothing was sent in the last minute. So the gate keeps a durable shadow in the
database (``BudgetMark``): when a source sent last (written at most every
``MARK_EVERY_SECONDS``) and until when its last 429 paused it. A gate that finds
a source's state missing in Redis (``seeded`` is gone) seeds it from that row
first: the first window after an empty store is treated as full for every
source that sent within a window of the restart (held until its last mark +
``MARK_EVERY_SECONDS`` + the window), and a 429's pause is restored; a source
that had been quiet starts at once. When the database cannot be read, the source
is held for a whole window.

Why hand-written rather than the ``limits`` library used for sign-in: the
admission decision has to combine the window with the pause, back-off and
probe state in one atomic step, which a rate-limiter library does not offer.

Keys (gate state only; board data lives in ``dashboard.snapshots``):
- ``poll:gate:<source>``         hash: ``seeded``, ``paused_until``, ``hold_until``, ``backoff_until``,
                                 ``failures``, ``kind``, ``at`` (last failure), ``probe_until``, ``mark_at``
- ``poll:gate:window:<source>``  sorted set: one member per admitted request, scored by when it left
- ``poll:gate:denied:<source>``  hash: endpoint template -> epoch until which it is not asked again
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from django.conf import settings
from django.db import DatabaseError
from redis.commands.core import Script

from dashboard import snapshots
from dashboard.models import BudgetMark
from dashboard.mogplex.errors import (
    Forbidden,
    MogplexError,
    NotFound,
    RateLimited,
    RedirectRefused,
    Unauthorized,
)

logger = logging.getLogger("dashboard.polling")

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
SLOW_RETRY_SECONDS = 60.0
# A 401 is believed on the second one in a row; the first is retried this soon.
UNAUTHORIZED_RECHECK_SECONDS = 2.0
# An endpoint the token lacks the scope for is asked again after this long.
DENIED_RETRY_SECONDS = 300.0
# How often the durable mark of "this source is sending" is written (per source).
MARK_EVERY_SECONDS = 2.0
# Upstream counts a request when it arrives, we count it when we decide to send
# it; the time in between varies. Counting over a window a second longer than
# upstream's keeps the budget true at upstream's end too.
TRANSIT_MARGIN_SECONDS = 1

# Endpoints that need the token's ``read`` scope upstream (contract section 2);
# runs, sandboxes, repos and the account need none.
READ_SCOPE_ENDPOINTS = frozenset(
    {
        "/models",
        "/agents",
        "/sandboxes/{id}/logs",
        "/automations",
        "/automations/{id}",
        "/automations/{id}/runs",
        "/automations/{id}/runs/{runId}",
    }
)

SOURCE_MESSAGES = {
    "ok": "",
    "unauthorized": "Mogplex rejects this source's token (401); issue a new token and update the configuration.",
    "forbidden": "The token lacks a scope the board needs (403); issue a token with the 'read' scope.",
    "rate_limited": "Mogplex rate-limited this token (429); the board waits for Retry-After before trying again.",
    "unavailable": "Mogplex is failing or unreachable; the board retries with growing pauses.",
    "timeout": "Mogplex did not answer in time; the board retries with growing pauses.",
    "protocol": "Mogplex answered with something that is not the v1 API; check MOGPLEX_BASE_URL.",
    "redirect": "Mogplex answered with a redirect; set MOGPLEX_BASE_URL to the address it redirects to.",
    "bad_request": "Mogplex rejected a request as malformed; this is a bug in the board.",
}

# Why ``admit`` said no, in words for a page ("Load logs") or a log line.
REFUSALS = {
    "paused": "Mogplex rate-limited this token (429) and the board waits for Retry-After",
    "hold": "the board's store restarted empty, so it waits out one budget window before sending",
    "denied": "the token cannot read this (403, it lacks the 'read' scope)",
    "backoff": "the source is failing and the board waits before trying again",
    "probing": "the board is checking whether the source works again",
    "budget": "the source's request budget for this window is spent",
}


def window_seconds() -> int:
    """The window the board counts its budget over: upstream's window plus a transit margin."""
    return int(settings.MOGPLEX_BUDGET_WINDOW_SECONDS) + TRANSIT_MARGIN_SECONDS


def _keys(source: str) -> list[str]:
    return [f"poll:gate:{source}", f"poll:gate:window:{source}", f"poll:gate:denied:{source}"]


# --- admit --------------------------------------------------------------------------------

# KEYS: gate hash, window zset, denied hash.
# ARGV: now, window, budget, member, endpoint, probe_ttl, mark_every.
# Returns {admitted (0/1), reason, until (string), mark_due (0/1)}; numbers go back
# as strings because Redis turns a Lua number into an integer.
_ADMIT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
if not redis.call('HGET', KEYS[1], 'seeded') then return {0, 'cold', '0', 0} end
local g = redis.call('HMGET', KEYS[1], 'paused_until', 'hold_until', 'backoff_until', 'failures', 'probe_until', 'mark_at')
local paused = tonumber(g[1]) or 0
if paused > now then return {0, 'paused', tostring(paused), 0} end
local hold = tonumber(g[2]) or 0
if hold > now then return {0, 'hold', tostring(hold), 0} end
local denied = tonumber(redis.call('HGET', KEYS[3], ARGV[5]) or '0') or 0
if denied > now then return {0, 'denied', tostring(denied), 0} end
local backoff = tonumber(g[3]) or 0
if backoff > now then return {0, 'backoff', tostring(backoff), 0} end
local probe = (tonumber(g[4]) or 0) > 0
if probe then
  local probe_until = tonumber(g[5]) or 0
  if probe_until > now then return {0, 'probing', tostring(probe_until), 0} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {0, 'budget', tostring(tonumber(oldest[2]) + window), 0}
end
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('PEXPIRE', KEYS[2], math.ceil(window * 1000) + 1000)
local reason = 'ok'
if probe then
  redis.call('HSET', KEYS[1], 'probe_until', tostring(now + tonumber(ARGV[6])))
  reason = 'probe'
end
local mark = 0
if now - (tonumber(g[6]) or 0) >= tonumber(ARGV[7]) then
  redis.call('HSET', KEYS[1], 'mark_at', tostring(now))
  mark = 1
end
return {1, reason, '0', mark}
"""

# KEYS: gate hash. ARGV: hold_until, paused_until. Seeds a gate that Redis lost (first one wins).
_SEED = """
if redis.call('HGET', KEYS[1], 'seeded') then return 0 end
local function later(field, value)
  local current = tonumber(redis.call('HGET', KEYS[1], field) or '0') or 0
  if tonumber(value) > current then redis.call('HSET', KEYS[1], field, value) end
end
later('hold_until', ARGV[1])
later('paused_until', ARGV[2])
redis.call('HSET', KEYS[1], 'seeded', '1')
return 1
"""

# KEYS: gate hash, denied hash, outcome counters.
# ARGV: now, outcome, kind, sent_at, endpoint, rule, a, b, jitter.
# rule: 'ok' (a success or a 404), 'pause' (a = retry-after seconds), 'deny' (a = seconds),
# 'backoff' (a = ceiling top, b = seconds for a first 401 or '' for none).
# Returns {failures, until (string), counted (0/1)}.
_SETTLE = """
local now = tonumber(ARGV[1])
local rule = ARGV[6]
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
if rule == 'ok' then
  redis.call('HDEL', KEYS[2], ARGV[5])
  if (tonumber(redis.call('HGET', KEYS[1], 'failures') or '0') or 0) > 0 then
    redis.call('HSET', KEYS[1], 'failures', '0', 'backoff_until', '0', 'probe_until', '0', 'kind', '')
  end
  return {0, '0', 1}
end
if rule == 'pause' then
  local until_ = now + tonumber(ARGV[7])
  local current = tonumber(redis.call('HGET', KEYS[1], 'paused_until') or '0') or 0
  if current > until_ then until_ = current end
  redis.call('HSET', KEYS[1], 'paused_until', tostring(until_), 'probe_until', '0')
  return {0, tostring(until_), 1}
end
if rule == 'deny' then
  local until_ = now + tonumber(ARGV[7])
  redis.call('HSET', KEYS[2], ARGV[5], tostring(until_))
  return {0, tostring(until_), 1}
end
local g = redis.call('HMGET', KEYS[1], 'failures', 'kind', 'at', 'backoff_until')
local failures = tonumber(g[1]) or 0
local kind = ARGV[3]
if failures > 0 and g[2] == kind and tonumber(ARGV[4]) < (tonumber(g[3]) or 0) then
  -- This request left before the last failure of its kind came back: the same
  -- attempt (a stalled upstream answers every request in flight at once).
  return {failures, g[4] or '0', 0}
end
if g[2] ~= kind then failures = 0 end
failures = failures + 1
local delay
if ARGV[8] ~= '' and failures < 2 then
  delay = tonumber(ARGV[8])
else
  local ceiling = math.min(tonumber(ARGV[7]), 1.0 * 2 ^ (failures - 1))
  delay = ceiling / 2 + tonumber(ARGV[9]) * ceiling / 2
end
local until_ = now + delay
redis.call('HSET', KEYS[1], 'failures', tostring(failures), 'kind', kind, 'at', tostring(now),
  'backoff_until', tostring(until_), 'probe_until', '0')
return {failures, tostring(until_), 1}
"""


@cache
def _scripts(url: str) -> tuple[Script, Script, Script]:
    client = snapshots.redis_client()
    return client.register_script(_ADMIT), client.register_script(_SEED), client.register_script(_SETTLE)


def _script(index: int) -> Script:
    return _scripts(settings.REDIS_URL)[index]


@dataclass(frozen=True)
class Admission:
    """``admit``'s answer. ``reason``: ``ok`` or ``probe`` when admitted, else a key of ``REFUSALS``.

    ``until`` is when a refused request may be tried again (0 when unknown or admitted);
    ``sent_at`` is when it was admitted.
    """

    admitted: bool
    reason: str
    until: float
    sent_at: float

    @property
    def sentence(self) -> str:
        return REFUSALS.get(self.reason, "")


class Refused(Exception):
    """The gate said no: nothing was sent. Carries the ``Admission`` saying why and until when."""

    def __init__(self, source: str, admission: Admission) -> None:
        super().__init__(f"{source}: {admission.reason}")
        self.source = source
        self.admission = admission


def admit(source: str, endpoint: str, *, now: float | None = None) -> Admission:
    """One atomic decision: may ``source`` send a request to ``endpoint`` now? Admitted means a slot is taken."""
    at = time.time() if now is None else now
    args: list[str | int | float] = [
        repr(at),
        window_seconds(),
        int(settings.MOGPLEX_BUDGET),
        f"{at!r}:{uuid.uuid4().hex[:12]}",
        endpoint,
        float(settings.MOGPLEX_CONNECT_TIMEOUT) + float(settings.MOGPLEX_READ_TIMEOUT) + 2.0,
        MARK_EVERY_SECONDS,
    ]
    keys = _keys(source)
    answer = cast(list[Any], _script(0)(keys=keys, args=args))
    if answer[1] == b"cold":
        _seed(source, at)
        answer = cast(list[Any], _script(0)(keys=keys, args=args))
    admitted, reason, until, mark_due = int(answer[0]), answer[1].decode(), float(answer[2]), int(answer[3])
    if mark_due:
        _mark(source, sent_at=at)
    return Admission(bool(admitted), reason, until, at)


def _seed(source: str, now: float) -> None:
    """Rebuild what Redis lost about ``source`` from its durable mark (see the module docstring)."""
    window = window_seconds()
    try:
        mark = BudgetMark.objects.filter(source=source).first()
    except DatabaseError:
        hold, paused = now + window, 0.0
        logger.warning("gate source=%s state=seeded cannot read its budget mark; holding one window", source)
    else:
        sent_at = mark.sent_at if mark else 0.0
        hold = sent_at + MARK_EVERY_SECONDS + window
        paused = mark.paused_until if mark else 0.0
    if (
        cast(int, _script(1)(keys=_keys(source)[:1], args=[repr(hold), repr(paused)]))
        and max(hold, paused) > now
    ):
        logger.info(
            "gate source=%s state=seeded sends nothing for %.1f s (it was sending before the store came back empty)",
            source,
            max(hold, paused) - now,
        )


def _mark(source: str, *, sent_at: float | None = None, paused_until: float | None = None) -> None:
    fields: dict[str, float] = {}
    if sent_at is not None:
        fields["sent_at"] = sent_at
    if paused_until is not None:
        fields["paused_until"] = paused_until
    try:
        BudgetMark.objects.update_or_create(source=source, defaults=fields)
    except DatabaseError as exc:
        # The window in Redis still holds; only a later empty store would not know this.
        logger.warning("gate source=%s cannot write its budget mark (%s)", source, type(exc).__name__)


# --- settle -------------------------------------------------------------------------------


def settle(source: str, endpoint: str, admission: Admission, error: MogplexError | None = None) -> float:
    """Apply the outcome of an admitted request to ``source``: its gate, its health and the counters.

    Returns the end of the pause, back-off or denial the outcome set (0 for none).
    """
    now = time.time()
    outcome = "ok" if error is None else error.kind
    keys = [*_keys(source)[::2], snapshots.upstream_outcomes_key(source)]
    base = [repr(now), outcome, outcome, repr(admission.sent_at), endpoint]
    if error is None or isinstance(error, NotFound):
        _script(2)(keys=keys, args=[*base, "ok", "", "", ""])
        _source_succeeded(source, endpoint)
        return 0.0
    if isinstance(error, RateLimited):
        answer = cast(
            list[Any], _script(2)(keys=keys, args=[*base, "pause", repr(max(error.retry_after, 0.0)), "", ""])
        )
        until = float(answer[1])
        _mark(source, paused_until=until)
        snapshots.source_health_update(
            source,
            state="rate_limited",
            message=SOURCE_MESSAGES["rate_limited"],
            paused_until=until,
            next_try_at=until,
            last_error_at=now,
            last_error_kind=outcome,
        )
        return until
    if isinstance(error, Forbidden) and endpoint in READ_SCOPE_ENDPOINTS:
        denied_answer = cast(
            list[Any], _script(2)(keys=keys, args=[*base, "deny", repr(DENIED_RETRY_SECONDS), "", ""])
        )
        health = snapshots.source_health_read(source) or {}
        denied = sorted({*health.get("denied_endpoints", []), endpoint})
        snapshots.source_health_update(source, denied_endpoints=denied)
        return float(denied_answer[1])
    # A rejected token, a missing scope or a redirect usually needs the operator, but
    # an upstream that answers so for a moment (a deploy, a moved load balancer)
    # should not cost a minute, so they grow from seconds like any other failure.
    configuration = isinstance(error, Unauthorized | Forbidden | RedirectRefused)
    top = SLOW_RETRY_SECONDS if configuration else BACKOFF_MAX_SECONDS
    recheck = repr(UNAUTHORIZED_RECHECK_SECONDS) if isinstance(error, Unauthorized) else ""
    answer = cast(
        list[Any], _script(2)(keys=keys, args=[*base, "backoff", repr(top), recheck, repr(random.random())])
    )
    failures, until, counted = int(answer[0]), float(answer[1]), int(answer[2])
    if not counted or (isinstance(error, Unauthorized) and failures < 2):
        snapshots.source_health_update(source, last_error_at=now, last_error_kind=outcome)
        return until
    snapshots.source_health_update(
        source,
        state=outcome if outcome in SOURCE_MESSAGES else "unavailable",
        message=error.board_message or SOURCE_MESSAGES.get(outcome, str(error)),
        next_try_at=until,
        last_error_at=now,
        last_error_kind=outcome,
    )
    return until


def _source_succeeded(source: str, endpoint: str) -> None:
    health = snapshots.source_health_read(source) or {}
    fields: dict[str, object] = {"last_success_at": time.time()}
    if health.get("state") != "ok":
        fields.update(state="ok", message="", paused_until=None, next_try_at=None)
    if endpoint in (health.get("denied_endpoints") or []):
        fields["denied_endpoints"] = [e for e in health["denied_endpoints"] if e != endpoint]
    snapshots.source_health_update(source, **fields)


# --- reading the gate ---------------------------------------------------------------------


@dataclass(frozen=True)
class GateState:
    """What the gate holds for a source (epoch seconds; 0 for none)."""

    paused_until: float
    hold_until: float
    backoff_until: float
    probe_until: float
    failures: int
    kind: str
    denied: dict[str, float]
    used: int = 0

    def blocked_until(self, now: float) -> float:
        """When the source may send again (pause, hold, back-off), or 0 when it may now.

        A probe in flight is not counted: its answer, due any moment, decides.
        """
        until = max(self.paused_until, self.hold_until, self.backoff_until)
        return until if until > now else 0.0


def read(source: str, *, now: float | None = None) -> GateState:
    """The gate's state for ``source``, with the requests sent in the current window (one round trip)."""
    return read_many([source], now=now)[source]


def read_many(sources: Iterable[str], *, now: float | None = None) -> dict[str, GateState]:
    """``read`` for several sources in one round trip."""
    names = list(sources)
    at = time.time() if now is None else now
    since = f"({at - window_seconds()!r}"
    with snapshots.redis_client().pipeline(transaction=False) as pipe:
        for name in names:
            gate_key, window_key, denied_key = _keys(name)
            pipe.hgetall(gate_key)
            pipe.hgetall(denied_key)
            pipe.zcount(window_key, since, "+inf")
        replies = pipe.execute()
    return {name: _gate_state(*replies[3 * i : 3 * i + 3]) for i, name in enumerate(names)}


def _gate_state(raw: dict[bytes, bytes], denied: dict[bytes, bytes], used: int) -> GateState:
    fields = {k.decode(): v.decode() for k, v in raw.items()}

    def number(name: str) -> float:
        try:
            return float(fields.get(name) or 0)
        except ValueError:
            return 0.0

    return GateState(
        paused_until=number("paused_until"),
        hold_until=number("hold_until"),
        backoff_until=number("backoff_until"),
        probe_until=number("probe_until"),
        failures=int(number("failures")),
        kind=fields.get("kind", ""),
        denied={k.decode(): float(v) for k, v in denied.items()},
        used=int(used),
    )


def blocked_until(source: str) -> float:
    """Epoch until which ``source`` sends nothing (pause, hold, back-off), or 0."""
    return read(source).blocked_until(time.time())


def paused_until(source: str) -> float | None:
    """Epoch until which ``source`` is paused after a 429, or None."""
    until = read(source).paused_until
    return until if until > time.time() else None


def used(source: str, *, now: float | None = None) -> int:
    """Requests ``source`` sent in the current rolling window."""
    at = time.time() if now is None else now
    count = snapshots.redis_client().zcount(_keys(source)[1], f"({at - window_seconds()!r}", "+inf")
    return int(cast(int, count))


def reset(source: str) -> None:
    """Forget ``source``'s gate in Redis and its durable mark (for operators and tests)."""
    snapshots.redis_client().delete(*_keys(source))
    BudgetMark.objects.filter(source=source).delete()
