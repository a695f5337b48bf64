"""The snapshot store: everything the board knows about upstream, kept in Redis.

The only module that knows the board's Redis keys. Workers write records here
after each fetch; views read the composed board and never call upstream. Every
record carries ``fetched_at`` (epoch seconds, the board's clock) so every
displayed datum can say how old it is. Upstream timestamps stay the ISO strings
upstream sent.

Keys (all JSON unless noted):
- ``board:run:<run_id>``          one tracked run: detail, events (clipped), PR URL; once the run
                                  is finished (or no source owns it) it expires a grace period after
                                  the retention window, so Redis holds live runs, not every run seen
- ``board:sandboxes:<source>``    the last ``/sandboxes`` list of a source
- ``board:repos:<source>``        the last ``/repos`` list of a source
- ``board:account:<source>``      account readiness (``/api/auth/user``, ``/models``)
- ``board:automations:<source>``  the last automation list of a source (every cursor page)
- ``board:automation:<source>:<id>``  one automation: its ``runSummary`` and newest job runs; expires
                                  ``AUTOMATION_TTL_SECONDS`` after its last write, and goes when the
                                  list no longer holds it
- ``board:source:<source>``       source health: state, last success/error, budget, interval
- ``board:sandbox-history:<id>``  list of ``{status, seen_at}`` as the board saw them
- ``board:sandbox-logs:<id>``     a sandbox's logs, fetched when someone asks for them
- ``board:composed``              the composed board, with its ``version``
- ``board:version``               (string) the composed board's version, for the cheap 204 check
- ``board:fetched``               ``{key: epoch | null}``: when each freshness badge's data was fetched
- ``board:heartbeat``             (string) epoch seconds of the poller's last tick
- ``board:outcomes:<source>``     (hash) upstream requests counted by outcome (written by ``polling.gate.settle``)
- ``board:notifier-heartbeat``    (string) epoch seconds of the notifier's last watch pass
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any, NamedTuple, cast

import redis
from django.conf import settings

JSON = dict[str, Any]

# Fields that record *when* we looked, not *what* we saw, and the poller's own
# running figures (budget spent moves on every tick): they are left out of the
# board's version so that an unchanged upstream keeps an unchanged version. They
# still reach the page with the next swap, and the fetch times each badge shows
# with every unchanged poll (``board:fetched``).
TIMING_FIELDS = frozenset(
    {
        "fetched_at",
        "composed_at",
        "heartbeat_at",
        "last_success_at",
        "checked_at",
        "budget_used",
        "sandboxes_fetched_at",
    }
)

SANDBOX_HISTORY_LIMIT = 50
# Each new board version is published here for the change stream (dashboard.board.push).
BOARD_CHANNEL = "board:changed"


@cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)


def redis_client() -> redis.Redis:
    """The Redis connection for ``settings.REDIS_URL`` (one pool per URL per process)."""
    return _client_for(settings.REDIS_URL)


def _get(key: str) -> JSON | None:
    raw = cast(bytes | None, redis_client().get(key))
    return None if raw is None else cast(JSON, json.loads(raw))


def _set(key: str, value: JSON, *, ttl: int | None = None) -> None:
    # Text as text (UTF-8), not ASCII escapes: an emoji is 4 bytes, not 12 characters.
    redis_client().set(key, json.dumps(value, separators=(",", ":"), ensure_ascii=False), ex=ttl)


# --- runs --------------------------------------------------------------------


# A finished run's record outlives the retention window (``BOARD_RETENTION_HOURS``,
# counted from when it finished, which is at or before its last write) by this much
# (or by the window itself when that is shorter), so it never expires while the
# board still shows the run; past it the history keeps it.
FINISHED_RUN_GRACE_SECONDS = 3600


def finished_run_ttl() -> int:
    """Seconds a finished run's record is kept after its last write."""
    hours: float = settings.BOARD_RETENTION_HOURS
    window = round(hours * 3600)
    return window + min(FINISHED_RUN_GRACE_SECONDS, window)


def run_write(record: JSON, *, finished: bool = False) -> None:
    """Store one run record; ``record["run_id"]`` names it.

    ``finished``: the run will not change any more (terminal, or no source owns
    it): its record expires ``finished_run_ttl()`` after this write. A live run's
    record does not expire (a write that says it is live again removes the expiry).
    """
    _set(f"board:run:{record['run_id']}", record, ttl=finished_run_ttl() if finished else None)


def run_read(run_id: str) -> JSON | None:
    return _get(f"board:run:{run_id}")


def runs_read(run_ids: Iterable[str]) -> dict[str, JSON]:
    """Several run records in one round trip; missing ones are left out."""
    ids = list(run_ids)
    if not ids:
        return {}
    raws = cast(list[bytes | None], redis_client().mget([f"board:run:{i}" for i in ids]))
    return {i: cast(JSON, json.loads(raw)) for i, raw in zip(ids, raws, strict=True) if raw is not None}


def run_delete(run_id: str) -> None:
    redis_client().delete(f"board:run:{run_id}")


# --- per-source lists ----------------------------------------------------------


def sandboxes_write(source: str, sandboxes: list[JSON], *, fetched_at: float) -> None:
    _set(f"board:sandboxes:{source}", {"source": source, "fetched_at": fetched_at, "sandboxes": sandboxes})


def sandboxes_read(source: str) -> JSON | None:
    return _get(f"board:sandboxes:{source}")


def repos_write(source: str, repos: list[JSON], *, fetched_at: float) -> None:
    _set(f"board:repos:{source}", {"source": source, "fetched_at": fetched_at, "repos": repos})


def repos_read(source: str) -> JSON | None:
    return _get(f"board:repos:{source}")


def repos_read_many(sources: Iterable[str]) -> dict[str, JSON]:
    """Several sources' repo records in one round trip; sources never fetched are left out."""
    names = list(sources)
    if not names:
        return {}
    raws = cast(list[bytes | None], redis_client().mget([f"board:repos:{name}" for name in names]))
    return {n: cast(JSON, json.loads(raw)) for n, raw in zip(names, raws, strict=True) if raw is not None}


def source_healths_read(sources: Iterable[str]) -> dict[str, JSON]:
    """Several sources' health records in one round trip; missing ones are left out."""
    names = list(sources)
    if not names:
        return {}
    raws = cast(list[bytes | None], redis_client().mget([f"board:source:{name}" for name in names]))
    return {n: cast(JSON, json.loads(raw)) for n, raw in zip(names, raws, strict=True) if raw is not None}


def account_write(source: str, account: JSON) -> None:
    """Account readiness: ``{"fetched_at", "user": {...} | None, "models": int | None}``."""
    _set(f"board:account:{source}", account)


def account_read(source: str) -> JSON | None:
    return _get(f"board:account:{source}")


# --- automations -----------------------------------------------------------------

AUTOMATION_TTL_SECONDS = 2 * 24 * 3600


def automations_write(source: str, automations: list[JSON], *, fetched_at: float, complete: bool) -> None:
    """A source's automation list; ``complete`` is False when it may go on beyond the pages read."""
    _set(
        f"board:automations:{source}",
        {"source": source, "fetched_at": fetched_at, "automations": automations, "complete": complete},
        ttl=AUTOMATION_TTL_SECONDS,
    )


def automations_read_many(sources: Iterable[str]) -> dict[str, JSON]:
    """Several sources' automation lists in one round trip; sources never fetched are left out."""
    names = list(sources)
    if not names:
        return {}
    raws = cast(list[bytes | None], redis_client().mget([f"board:automations:{name}" for name in names]))
    return {n: cast(JSON, json.loads(raw)) for n, raw in zip(names, raws, strict=True) if raw is not None}


def automation_write(source: str, automation_id: str, record: JSON) -> None:
    """One automation: ``{fetched_at, automation: {... run_summary}, job_runs: [...]}``."""
    _set(f"board:automation:{source}:{automation_id}", record, ttl=AUTOMATION_TTL_SECONDS)


def automations_detail_read(source: str, automation_ids: Iterable[str]) -> dict[str, JSON]:
    """Several of a source's automation records in one round trip, by id; missing ones are left out."""
    ids = list(automation_ids)
    if not ids:
        return {}
    raws = cast(list[bytes | None], redis_client().mget([f"board:automation:{source}:{i}" for i in ids]))
    return {i: cast(JSON, json.loads(raw)) for i, raw in zip(ids, raws, strict=True) if raw is not None}


def automations_forget(source: str, automation_ids: Iterable[str]) -> None:
    """Drop the records of automations the source no longer lists."""
    keys = [f"board:automation:{source}:{i}" for i in automation_ids]
    if keys:
        redis_client().delete(*keys)


# --- source health -------------------------------------------------------------


def source_health_read(source: str) -> JSON | None:
    return _get(f"board:source:{source}")


def source_health_update(source: str, **fields: Any) -> JSON:
    """Merge ``fields`` into a source's health record and return the result.

    Read-modify-write without a lock: each field has a single writer at a time
    in practice (the fetch on that source), and a lost update is repaired by the
    next fetch.
    """
    health = source_health_read(source) or {"name": source}
    health.update(fields)
    _set(f"board:source:{source}", health)
    return health


def source_healths_update(updates: Mapping[str, Mapping[str, Any]]) -> None:
    """``source_health_update`` for several sources: their records read in one round trip, written in one."""
    if not updates:
        return
    names = list(updates)
    current = source_healths_read(names)
    with redis_client().pipeline(transaction=False) as pipe:
        for name in names:
            health = {**current.get(name, {"name": name}), **updates[name]}
            pipe.set(f"board:source:{name}", json.dumps(health, separators=(",", ":"), ensure_ascii=False))
        pipe.execute()


# --- sandbox history -------------------------------------------------------------


def sandbox_history_append(sandbox_id: str, status: str, *, seen_at: float) -> None:
    """Record a status the board saw for a sandbox, if it differs from the last one.

    The history lives as long as a finished run's record after the sandbox was last
    seen (each sighting renews it), so Redis holds the histories of the sandboxes the
    board can still show, not of every sandbox seen in a week.
    """
    key = f"board:sandbox-history:{sandbox_id}"
    client = redis_client()
    last = cast(bytes | None, client.lindex(key, -1))
    if last is not None and json.loads(last)["status"] == status:
        client.expire(key, finished_run_ttl())
        return
    pipe = client.pipeline()
    pipe.rpush(key, json.dumps({"status": status, "seen_at": seen_at}))
    pipe.ltrim(key, -SANDBOX_HISTORY_LIMIT, -1)
    pipe.expire(key, finished_run_ttl())
    pipe.execute()


def sandbox_history_read(sandbox_id: str) -> list[JSON]:
    raws = cast(list[bytes], redis_client().lrange(f"board:sandbox-history:{sandbox_id}", 0, -1))
    return [cast(JSON, json.loads(raw)) for raw in raws]


# --- sandbox logs, fetched on request ------------------------------------------------

SANDBOX_LOGS_TTL_SECONDS = 24 * 3600


def sandbox_logs_write(sandbox_id: str, record: JSON) -> None:
    """``{sandbox_id, source, fetched_at, install_log, dev_log, lifecycle_events, error_kind}``."""
    _set(f"board:sandbox-logs:{sandbox_id}", record, ttl=SANDBOX_LOGS_TTL_SECONDS)


def sandbox_logs_read(sandbox_id: str) -> JSON | None:
    return _get(f"board:sandbox-logs:{sandbox_id}")


def sandbox_logs_request_claim(sandbox_id: str, *, seconds: int) -> bool:
    """True for the first request for a sandbox's logs within ``seconds``; later ones wait for it."""
    return bool(redis_client().set(f"board:sandbox-logs-requested:{sandbox_id}", "1", nx=True, ex=seconds))


# --- the composed board ------------------------------------------------------------


def content_version(board: JSON) -> str:
    """A short hash of what the board shows, ignoring when things were fetched."""
    digest = hashlib.blake2b(
        json.dumps(_without_timing(board), sort_keys=True, separators=(",", ":")).encode(), digest_size=8
    )
    return digest.hexdigest()


def _without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in TIMING_FIELDS and k != "version"}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def board_write(board: JSON, *, fetched: Mapping[str, float | None] | None = None) -> str:
    """Store the composed board, setting ``board["version"]`` and each row's ``sig``; return the version.

    A row's signature is computed once here rather than on every page render:
    pages keep rendered rows by it (``{% cached_row %}``). ``fetched`` is when the
    data behind each of the board's freshness badges was fetched
    (``selectors.board_fetched``), kept beside the version for unchanged polls;
    without it, none is kept (a map from another board never outlives it).
    """
    for row in (*board.get("runs", []), *board.get("sandboxes", []), *board.get("job_runs", [])):
        row.pop("sig", None)
        row["sig"] = content_version(row)
    version = content_version(board)
    board["version"] = version
    pipe = redis_client().pipeline()
    pipe.set("board:composed", json.dumps(board, separators=(",", ":"), ensure_ascii=False))
    pipe.set("board:version", version, get=True)
    if fetched is None:
        pipe.delete("board:fetched")
    else:
        pipe.set("board:fetched", json.dumps(fetched, separators=(",", ":")))
    before = pipe.execute()[1]
    if before is None or before.decode() != version:
        # Open pages hear of it at once (dashboard.board.push); an unchanged board says nothing.
        redis_client().publish(BOARD_CHANNEL, version)
    return version


def board_read() -> JSON | None:
    return _get("board:composed")


def board_version() -> str | None:
    raw = cast(bytes | None, redis_client().get("board:version"))
    return None if raw is None else raw.decode()


# --- upstream outcome counters (for /metrics) ----------------------------------------


def upstream_outcomes_key(source: str) -> str:
    """The hash of ``source``'s upstream requests by outcome; the source gate counts each one it settles."""
    return f"board:outcomes:{source}"


def upstream_outcome_count(source: str, outcome: str) -> None:
    """Count one upstream request of ``source`` by outcome (the gate counts in its settle script)."""
    redis_client().hincrby(upstream_outcomes_key(source), outcome, 1)


def upstream_outcomes_read(source: str) -> dict[str, int]:
    """Upstream requests of ``source`` by outcome (``ok`` or an error kind), as counted by the gate."""
    raw = cast(dict[bytes, bytes], redis_client().hgetall(upstream_outcomes_key(source)))
    return {k.decode(): int(v) for k, v in raw.items()}


# --- poller heartbeat ----------------------------------------------------------------


def heartbeat_write(now: float) -> None:
    redis_client().set("board:heartbeat", repr(now))


def heartbeat_read() -> float | None:
    raw = cast(bytes | None, redis_client().get("board:heartbeat"))
    return None if raw is None else float(raw)


def notifier_heartbeat_write(now: float) -> None:
    redis_client().set("board:notifier-heartbeat", repr(now))


def notifier_heartbeat_read() -> float | None:
    raw = cast(bytes | None, redis_client().get("board:notifier-heartbeat"))
    return None if raw is None else float(raw)


class BoardPoll(NamedTuple):
    """What an unchanged poll needs: the board version, the poller heartbeat, the fetch times (JSON text)."""

    version: str | None
    heartbeat: float | None
    fetched: str | None


def board_poll_read() -> BoardPoll:
    """The board version, the poller heartbeat and the fetch times in one round trip (the refresh poll's cheap path)."""
    version, heartbeat, fetched = cast(
        list[bytes | None], redis_client().mget("board:version", "board:heartbeat", "board:fetched")
    )
    return BoardPoll(
        None if version is None else version.decode(),
        None if heartbeat is None else float(heartbeat),
        None if fetched is None else fetched.decode(),
    )
