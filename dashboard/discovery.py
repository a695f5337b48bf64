"""Run discovery: turning what people paste or pipe into tracked runs.

The Mogplex API cannot list runs, so the board follows the runs it is told
about, by the dashboard form, ``manage.py track`` or the ingest endpoint. All
three go through :func:`run_track`. Input is validated here, at the door: only
well-formed UUIDs ever reach the database or upstream (upstream answers 500 to
anything else). Whether a source owns a run is not known here; the poller's
scheduler looks each new run up (``run_lookup_fetch``) and marks the row
``found`` or ``not_found``. A registration can help it: the run's ``repoId``
(``mogplex run --json`` prints it) sends the lookup to the sources whose
``/repos`` hold that repo first, and a named source is asked before any other.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
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
class RunRef:
    """A run to track, and its repo when the registration said (``repoId``)."""

    run_id: UUID
    repo_id: UUID | None = None


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


def _repo_of(value: dict[str, Any]) -> UUID | None:
    """The ``repoId`` (or ``repo_id``) of a run object: only a hint, so anything but a UUID is ignored."""
    for key in ("repoId", "repo_id"):
        raw = value.get(key)
        if isinstance(raw, str) and _UUID_RE.match(raw.strip()):
            return UUID(raw.strip())
    return None


def _refs_from_object(value: Any, where: str, depth: int = 0) -> list[RunRef]:
    """Runs from one JSON value: a (possibly enveloped) run, ``{"run_ids": [...]}``, or a list."""
    if isinstance(value, list):
        if depth >= _MAX_LIST_DEPTH:
            raise InvalidRunInput(f"{where} nests lists in lists; " + _JSON_HINT)
        refs: list[RunRef] = []
        for item in value:
            refs.extend(_refs_from_object(item, where, depth + 1))
        return refs
    if isinstance(value, str):
        return [RunRef(_located(value, where))]
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
    repo_id = _repo_of(value)
    if "run_ids" in value:
        if not isinstance(value["run_ids"], list) or not value["run_ids"]:
            raise InvalidRunInput(f"{where} has run_ids that is not a non-empty list of run ids.")
        return [RunRef(_located(item, where), repo_id) for item in value["run_ids"]]
    for key in ("runId", "run_id"):
        if key in value:
            return [RunRef(_located(value[key], where), repo_id)]
    raise InvalidRunInput(f"{where} has no runId; " + _JSON_HINT)


def _located(value: Any, where: str) -> UUID:
    if not isinstance(value, str):
        raise InvalidRunInput(f"{where} has a run id that is not a string; " + _JSON_HINT)
    try:
        return run_id_parse(value)
    except InvalidRunInput as exc:
        raise InvalidRunInput(f"{where}: {exc}") from None


def runs_from_cli_json(text: str) -> list[UUID]:
    """Run ids from what ``mogplex run --json`` prints (see :func:`run_refs_from_cli_json`)."""
    return [ref.run_id for ref in run_refs_from_cli_json(text)]


def run_refs_from_cli_json(text: str) -> list[RunRef]:
    """Runs (id and repo) from what ``mogplex run --json`` prints.

    Accepts one JSON object (pretty-printed or not), several objects one per line
    (NDJSON), the ``{"ok": true, "data": {...}}`` envelope, ``{"run_ids": [...]}``
    (with an optional ``repo_id`` for all of them) and a JSON list of any of
    those. The id is ``runId`` (or ``run_id``), the repo ``repoId`` (or
    ``repo_id``). Raises :class:`InvalidRunInput` naming the line for malformed
    JSON or an object without a run id.
    """
    decoder = json.JSONDecoder()
    refs: list[RunRef] = []
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
        refs.extend(_refs_from_object(value, f"The JSON on line {line}"))
    if not refs:
        raise InvalidRunInput("No run id was given; " + _HINT)
    return refs


def run_ids_read(text: str) -> list[UUID]:
    """Run ids from free text (see :func:`run_refs_read`)."""
    return [ref.run_id for ref in run_refs_read(text)]


def run_refs_read(text: str) -> list[RunRef]:
    """Runs from free text: ``mogplex run --json`` output, or one id or run URL per line.

    Blank lines and lines starting with ``#`` are skipped. Duplicates are kept;
    :func:`run_track` folds them.
    """
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        return run_refs_from_cli_json(text)
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)]
    wanted = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not wanted:
        raise InvalidRunInput("No run id was given; " + _HINT)
    refs: list[RunRef] = []
    for n, line in wanted:
        try:
            refs.append(RunRef(run_id_parse(line)))
        except InvalidRunInput as exc:
            raise (InvalidRunInput(f"Line {n}: {exc}") if len(wanted) > 1 else exc) from None
    return refs


def source_name_check(name: str) -> str:
    """A configured source's name as given, or :class:`InvalidRunInput` naming the ones there are."""
    # Imported late: the source list is the poller's, and reads settings.
    from dashboard.polling.sources import source_names

    names = source_names()
    if name in names:
        return name
    shown = (
        name
        if len(name) <= 40 and name.isprintable()
        else name[:40].encode("unicode_escape").decode() + "..."
    )
    if not names:
        raise InvalidRunInput(f"No source is named {shown!r}: this board has no Mogplex source configured.")
    raise InvalidRunInput(
        f"No source is named {shown!r}; name one of the configured sources ({', '.join(names)}) or leave it out."
    )


def new_run_count(runs: Sequence[UUID | str | RunRef]) -> int:
    """How many of ``runs`` (already valid) the board does not track yet: what registering them would add."""
    ids = list(dict.fromkeys(_ref(value).run_id for value in runs))
    known = 0
    for start in range(0, len(ids), 500):
        known += TrackedRun.objects.filter(run_id__in=ids[start : start + 500]).count()
    return len(ids) - known


def _ref(value: UUID | str | RunRef) -> RunRef:
    if isinstance(value, RunRef):
        return value
    return RunRef(value if isinstance(value, UUID) else run_id_parse(value))


def run_track(*, run_ids: Sequence[UUID | str | RunRef], via: str, source: str | None = None) -> TrackResult:
    """Track runs: validate every input, then create the missing ``TrackedRun`` rows.

    Nothing changes when any input is not a run id, or ``source`` is not a
    configured source (:class:`InvalidRunInput`). Tracking a run again is not an
    error and does not duplicate it; a run whose lookup found no owner is
    looked up again (a token may have been added since). A run's repo
    (``RunRef.repo_id``) and the named ``source`` are kept on its row, for the
    lookup. The poller's scheduler looks new runs up on its next tick, each
    within a bounded share of each source's budget.
    """
    if via not in TrackedRun.Via.values:
        raise ValueError(f"via must be one of {', '.join(TrackedRun.Via.values)}, not {via!r}.")
    named = source_name_check(source) if source is not None else ""
    parsed = [_ref(value) for value in run_ids]
    if not parsed:
        raise InvalidRunInput("No run id was given; " + _HINT)
    unique: dict[UUID, RunRef] = {}
    for ref in parsed:
        if ref.run_id not in unique or unique[ref.run_id].repo_id is None:
            unique[ref.run_id] = ref
    tracked: list[UUID] = []
    already: list[UUID] = []
    with transaction.atomic():
        for run_id, ref in unique.items():
            row, created = TrackedRun.objects.get_or_create(
                run_id=run_id, defaults={"via": via, "repo_id": ref.repo_id, "source_hint": named}
            )
            if created:
                tracked.append(run_id)
                continue
            already.append(run_id)
            changes: dict[str, Any] = {}
            if ref.repo_id is not None and row.repo_id is None:
                changes["repo_id"] = ref.repo_id
            if named and row.source_hint != named:
                changes["source_hint"] = named
            if row.lookup == TrackedRun.Lookup.NOT_FOUND:
                changes["lookup"] = TrackedRun.Lookup.NEW
                changes["finished_at"] = None
            if changes:
                TrackedRun.objects.filter(pk=row.pk).update(**changes)
    if tracked:
        logger.info("tracking %d new run(s) via %s", len(tracked), via)
    return TrackResult(tracked=tuple(tracked), already_tracked=tuple(already))
