"""Run discovery: turning what people paste or pipe into tracked runs.

The Mogplex API cannot list runs, so the board follows the runs it is told
about, by the dashboard form, ``manage.py track`` or the ingest endpoint. All
three go through :func:`run_track`. Input is validated here, at the door: only
well-formed UUIDs ever reach the database or upstream (upstream answers 500 to
anything else). Whether a source owns a run is not known here; the poller's
``run_lookup`` task finds out and marks the row ``found`` or ``not_found``.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from django.db import transaction

from dashboard.models import TrackedRun

logger = logging.getLogger(__name__)

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID_RE = re.compile(rf"^{_UUID}$")
# A run's web address (<app>/runs/<id>) or API address (.../api/v1/mogplex/runs/<id>).
_RUN_PATH_RE = re.compile(rf"^(?P<prefix>.*)/runs/(?P<id>{_UUID})/?$")

_HINT = "paste the UUID from `mogplex run --json` (its runId) or the run's web address."
_JSON_HINT = "feed the output of `mogplex run --json` (one object, or one per line)."
_SHOWN_CHARS = 120
# A list of runs (or of lists of ids) is as deep as any output of `mogplex run --json` goes.
_MAX_LIST_DEPTH = 2


class InvalidRunInput(ValueError):
    """Input that is not a run id; ``str()`` is one sentence saying what to give instead."""


@dataclass(frozen=True)
class TrackResult:
    """What :func:`run_track` did: runs newly tracked, and runs the board already followed."""

    tracked: tuple[UUID, ...]
    already_tracked: tuple[UUID, ...]


def _shown(text: str) -> str:
    """The input as quoted in an error: clipped, and never a pasted Mogplex token."""
    if text.startswith("mog_"):
        return "a Mogplex token"
    clipped = text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."
    return repr(clipped)


def run_id_parse(text: str) -> UUID:
    """A run id from a bare UUID (any case, surrounding whitespace) or a Mogplex run URL.

    Accepted URLs: ``http(s)://<host>/runs/<uuid>`` and
    ``http(s)://<host>/api/v1/mogplex/runs/<uuid>``, with or without a trailing
    slash, query or fragment. Raises :class:`InvalidRunInput` for anything else.
    """
    stripped = text.strip()
    if _UUID_RE.match(stripped):
        return UUID(stripped)
    if stripped.startswith("mog_"):
        raise InvalidRunInput("That is a Mogplex token, not a run id; never paste tokens here, and " + _HINT)
    parts = urlsplit(stripped) if "://" in stripped else None
    if parts is not None and parts.scheme.lower() in ("http", "https") and parts.netloc:
        match = _RUN_PATH_RE.match(parts.path)
        if match:
            # Automation job runs share the /runs/<id> shape but are another id space.
            if re.search(r"/automations/[^/]+$", match["prefix"]):
                raise InvalidRunInput(
                    f"{_shown(stripped)} is an automation job run, not an agent run; " + _HINT
                )
            return UUID(match["id"])
    raise InvalidRunInput(f"{_shown(stripped)} is not a Mogplex run id or run URL; " + _HINT)


def _run_id_from_object(value: Any, where: str, depth: int = 0) -> list[UUID]:
    """Run ids from one JSON value: a (possibly enveloped) run, ``{"run_ids": [...]}``, or a list."""
    if isinstance(value, list):
        if depth >= _MAX_LIST_DEPTH:
            raise InvalidRunInput(f"{where} nests lists in lists; " + _JSON_HINT)
        ids: list[UUID] = []
        for item in value:
            ids.extend(_run_id_from_object(item, where, depth + 1))
        return ids
    if isinstance(value, str):
        return [_located(value, where)]
    if not isinstance(value, dict):
        raise InvalidRunInput(f"{where} is not a JSON object with a runId; " + _JSON_HINT)
    if isinstance(value.get("ok"), bool):
        if not value["ok"]:
            raise InvalidRunInput(f"{where} is a Mogplex error answer, not a run; " + _JSON_HINT)
        value = value.get("data")
        if isinstance(value, dict) and isinstance(value.get("run"), dict):
            value = value["run"]
        if not isinstance(value, dict):
            raise InvalidRunInput(f"{where} has no run in its data; " + _JSON_HINT)
    if "run_ids" in value:
        if not isinstance(value["run_ids"], list) or not value["run_ids"]:
            raise InvalidRunInput(f"{where} has run_ids that is not a non-empty list of run ids.")
        return [_located(item, where) for item in value["run_ids"]]
    for key in ("runId", "run_id"):
        if key in value:
            return [_located(value[key], where)]
    raise InvalidRunInput(f"{where} has no runId; " + _JSON_HINT)


def _located(value: Any, where: str) -> UUID:
    if not isinstance(value, str):
        raise InvalidRunInput(f"{where} has a run id that is not a string; " + _JSON_HINT)
    try:
        return run_id_parse(value)
    except InvalidRunInput as exc:
        raise InvalidRunInput(f"{where}: {exc}") from None


def runs_from_cli_json(text: str) -> list[UUID]:
    """Run ids from what ``mogplex run --json`` prints.

    Accepts one JSON object (pretty-printed or not), several objects one per line
    (NDJSON), the ``{"ok": true, "data": {...}}`` envelope, ``{"run_ids": [...]}``
    and a JSON list of any of those. The id is ``runId`` (or ``run_id``). Raises
    :class:`InvalidRunInput` naming the line for malformed JSON or an object
    without a run id.
    """
    decoder = json.JSONDecoder()
    ids: list[UUID] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            break
        line = text.count("\n", 0, pos) + 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InvalidRunInput(f"Line {exc.lineno} is not valid JSON ({exc.msg}); " + _JSON_HINT) from None
        except RecursionError:
            # The decoder gives up on JSON nested about a thousand deep (valid or not).
            raise InvalidRunInput(
                f"The JSON on line {line} is nested too deeply to be a run; " + _JSON_HINT
            ) from None
        ids.extend(_run_id_from_object(value, f"The JSON on line {line}"))
    if not ids:
        raise InvalidRunInput("No run id was given; " + _HINT)
    return ids


def run_ids_read(text: str) -> list[UUID]:
    """Run ids from free text: ``mogplex run --json`` output, or one id or run URL per line.

    Blank lines and lines starting with ``#`` are skipped. Duplicates are kept;
    :func:`run_track` folds them.
    """
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        return runs_from_cli_json(text)
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)]
    wanted = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not wanted:
        raise InvalidRunInput("No run id was given; " + _HINT)
    ids: list[UUID] = []
    for n, line in wanted:
        try:
            ids.append(run_id_parse(line))
        except InvalidRunInput as exc:
            raise (InvalidRunInput(f"Line {n}: {exc}") if len(wanted) > 1 else exc) from None
    return ids


def run_track(*, run_ids: Sequence[UUID | str], via: str) -> TrackResult:
    """Track runs: validate every input, then create the missing ``TrackedRun`` rows.

    Nothing changes when any input is not a run id (:class:`InvalidRunInput`).
    Tracking a run again is not an error and does not duplicate it; a run whose
    lookup found no owner is looked up again (a token may have been added
    since). Each new run is looked up at once by the poller after the
    transaction commits; if the poller cannot be reached, its scheduler picks
    up ``lookup=new`` rows on its next tick anyway.
    """
    if via not in TrackedRun.Via.values:
        raise ValueError(f"via must be one of {', '.join(TrackedRun.Via.values)}, not {via!r}.")
    parsed = [value if isinstance(value, UUID) else run_id_parse(value) for value in run_ids]
    if not parsed:
        raise InvalidRunInput("No run id was given; " + _HINT)
    unique = list(dict.fromkeys(parsed))
    tracked: list[UUID] = []
    already: list[UUID] = []
    to_look_up: list[UUID] = []
    with transaction.atomic():
        for run_id in unique:
            row, created = TrackedRun.objects.get_or_create(run_id=run_id, defaults={"via": via})
            if created:
                tracked.append(run_id)
                to_look_up.append(run_id)
                continue
            already.append(run_id)
            if row.lookup == TrackedRun.Lookup.NOT_FOUND:
                TrackedRun.objects.filter(pk=row.pk).update(lookup=TrackedRun.Lookup.NEW)
                to_look_up.append(run_id)
        if to_look_up:
            transaction.on_commit(lambda: _lookups_enqueue(to_look_up))
    if tracked:
        logger.info("tracking %d new run(s) via %s", len(tracked), via)
    return TrackResult(tracked=tuple(tracked), already_tracked=tuple(already))


def _lookups_enqueue(run_ids: Iterable[UUID]) -> None:
    """Ask the poller to look each run up now; the scheduler's next tick is the fallback."""
    try:
        # Imported late, and by name: the poller may not be installed in every process.
        tasks = importlib.import_module("dashboard.polling.tasks")
        run_lookup = tasks.run_lookup
    except (ImportError, AttributeError):
        logger.warning("the poller's run_lookup task is not available; its scheduler will look new runs up")
        return
    try:
        for run_id in run_ids:
            run_lookup.delay(str(run_id))
    except Exception as exc:  # the broker may be down; the rows are saved and will be picked up
        logger.warning(
            "could not queue run lookups (%s); the poller's scheduler will look new runs up",
            type(exc).__name__,
        )
