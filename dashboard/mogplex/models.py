"""Typed records of what Mogplex v1 returns, declared once and parsed tolerantly.

Each record is a frozen pydantic model whose fields say both spellings: upstream's
(``validation_alias``: ``runId``, ``runtime.provider``) and the record's own
snake_case name, which ``to_dict()`` writes for the snapshot store and
``from_dict()`` reads back. The tolerance rules live in the field types below
(each a plain validator, so a wrong type never fails the record):

- unknown statuses and event types are kept as the strings they are;
- a missing or wrongly typed optional field becomes ``None`` (or empty), extra
  fields are ignored, ids are lowercased (contract section 9);
- a record without its identity (a run without ``runId``, an event without
  ``id``) or its status, or with one that is not text, is unreadable: alone it
  raises ``RecordShapeError`` (a ``ProtocolError``), but inside an answer that
  carries many records (sandboxes, a run's events, the run in
  ``/runs/{id}/events``, automations, lifecycle events) it becomes a placeholder
  whose status (or event type) is ``UNREADABLE`` and whose ``error`` (or
  ``message``) says what was wrong, so one poisoned record costs only its own
  row. Only an answer without its outer shape (no ``sandboxes`` list) fails whole.

Why pydantic and not msgspec: msgspec validates a struct all or nothing, so
"a wrong type becomes None" would need every field typed ``Any`` and read by hand
again; pydantic's plain validators keep one reader per kind of field.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Self
from urllib.parse import urlsplit

from pydantic import (
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from dashboard.mogplex import text
from dashboard.mogplex.errors import ProtocolError, RecordShapeError
from dashboard.mogplex.failures import failure_reason

RUN_STATUSES: tuple[str, ...] = ("pending", "streaming", "success", "failed", "cancelled")
ACTIVE_RUN_STATUSES: frozenset[str] = frozenset({"pending", "streaming"})
TERMINAL_STATUSES: frozenset[str] = frozenset({"success", "failed", "cancelled"})
EVENT_TYPES: tuple[str, ...] = (
    "started",
    "status_changed",
    "tool_started",
    "tool_finished",
    "cancel_requested",
    "cancelled",
    "finished",
    "failed",
    "log",
)
SANDBOX_STATUSES: tuple[str, ...] = (
    "creating",
    "installing",
    "running",
    "pausing",
    "stopped",
    "paused",
    "error",
)
ACTIVE_SANDBOX_STATUSES: frozenset[str] = frozenset({"creating", "installing", "running", "pausing"})
LIFECYCLE_EVENT_TYPES: tuple[str, ...] = (
    "tab_attached",
    "tab_released",
    "auto_pause_queued",
    "auto_pause_decision",
    "auto_pause_succeeded",
    "auto_pause_failed",
    "resume_after_auto_pause",
)
# lib/sandbox/auto-pause-types.ts: what an auto-pause check decided.
AUTO_PAUSE_DECISION_CODES: tuple[str, ...] = (
    "would_auto_pause",
    "auto_pause_succeeded",
    "auto_pause_skipped_busy",
    "auto_pause_skipped_grace_period",
    "auto_pause_skipped_missing_credentials",
    "auto_pause_skipped_new_session",
    "auto_pause_skipped_not_found",
    "auto_pause_skipped_not_persistent",
    "auto_pause_skipped_not_running",
    "auto_pause_skipped_status_changed",
    "auto_pause_failed",
)
HARNESSES: tuple[str, ...] = ("codex", "claude-code")
GITHUB_STATES: tuple[str, ...] = (
    "disconnected",
    "oauth_connected",
    "app_install_pending",
    "app_installed",
    "app_installed_with_synced_repos",
)
AUTOMATION_STATUSES: tuple[str, ...] = ("active", "inactive")
JOB_RUN_STATUSES: tuple[str, ...] = ("pending", "running", "success", "failed", "cancelled")
TERMINAL_JOB_RUN_STATUSES: frozenset[str] = frozenset({"success", "failed", "cancelled"})
# The product's own threshold for agent calls (contract section 9): a non-terminal
# run untouched for this long has probably lost its worker.
STALE_AFTER = timedelta(hours=6)
# Mogplex's observability page lists a job run pending for longer than this as needing action.
JOB_RUN_PENDING_TOO_LONG = timedelta(minutes=2)
# A job run's ai_calls events are raw upstream (never cleaned): the board keeps the newest
# of them, each clipped, and only when someone asks for the detail.
AI_CALL_EVENTS_KEPT = 50
AI_CALL_TEXT_CHARS = 500
AI_CALL_PAYLOAD_CHARS = 2048

JSONObject = dict[str, Any]

# The status (or event type) of a placeholder for a record Mogplex sent in a shape
# the board cannot read; its ``error`` (or ``message``) says why.
UNREADABLE = "unreadable"


# -- field readers ----------------------------------------------------------------


def _shape_error(what: str, problem: str) -> RecordShapeError:
    # ``what`` names the record; "a stored ..." ones come from our own snapshot store.
    if what.startswith("a stored "):
        return RecordShapeError(
            f"The snapshot store holds {what.removeprefix('a stored ')} {problem}; rebuild it from Mogplex.",
            problem=problem,
        )
    return RecordShapeError(
        f"Mogplex sent {what} {problem}; the Mogplex API may have changed.", problem=problem
    )


def json_type(value: object) -> str:
    """What a JSON value is, in words: ``a list``, ``a number``, ``null``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list | tuple) else "a JSON object"


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _shape_error(what, f"as {json_type(value)}, not a JSON object")
    return value


def _list(obj: Mapping[str, Any], key: str, what: str) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise _shape_error(what, f"without a {key!r} list")
    return value


# An id from a record that could not be read, shown on its row and logged; anything
# else (upstream text of any length or content) is left out.
_SAFE_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def record_id(value: object, key: str) -> str | None:
    """The id of a record, even an unreadable one, when it looks like an id (else None)."""
    if not isinstance(value, Mapping):
        return None
    raw = value.get(key)
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        return None
    text = raw.strip().lower()
    return text if 0 < len(text) <= 64 and set(text) <= _SAFE_ID_CHARS else None


def unreadable_sentence(what: str, error: RecordShapeError) -> str:
    """What a placeholder row says: ``Mogplex sent this sandbox with 'status' as a list, not text.``"""
    return f"Mogplex sent this {what} {error.problem}."


def parse_timestamp(value: object) -> datetime | None:
    """An ISO-8601 time as upstream writes it (``Z`` or ``+00:00``, 0-6 fraction digits), in UTC.

    Anything unparseable gives ``None``; a time without an offset is taken as UTC,
    which is what upstream's database clock uses. A ``datetime`` is taken as it is.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    try:
        # A time at the edge of the calendar (year 1 or 9999) with an offset overflows in UTC.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _lower_id(value: object) -> str | None:
    # UUIDs are compared lowercased (contract section 9).
    return value.lower() if isinstance(value, str) else None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _payload(value: object) -> JSONObject:
    # A copy: the record must not share the answer's dicts.
    return dict(value) if isinstance(value, Mapping) else {}


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(item for item in value if isinstance(item, str))


def _required_text(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None or value == "":
        raise PydanticCustomError("record_shape", "missing", {"missing": True})
    if not isinstance(value, str):
        raise PydanticCustomError("record_shape", "wrong type", {"json_type": json_type(value)})
    return value


def _required_id(value: object) -> str:
    return _required_text(value).lower()


def _mapping_or_empty(value: object) -> object:
    # A nested record sent as anything but an object is read as an empty one.
    return value if isinstance(value, Mapping | BaseModel) else {}


def _mapping_or_none(value: object) -> object:
    return value if isinstance(value, Mapping | BaseModel) else None


def clip_text(value: object, limit: int) -> str | None:
    """Text cut to ``limit`` characters with an ellipsis (``None`` for anything but text); see ``text``."""
    return text.clip_text(value, limit)


def clip_json(value: object, limit: int) -> JSONObject:
    """An object itself when its JSON is short, else ``{"clipped": true, "preview", "size"}``."""
    return text.clip_payload(_payload(value), limit)


Text = Annotated[str | None, PlainValidator(_text)]
LowerId = Annotated[str | None, PlainValidator(_lower_id)]
Integer = Annotated[int | None, PlainValidator(_integer)]
Number = Annotated[float | None, PlainValidator(_number)]
Flag = Annotated[bool | None, PlainValidator(_flag)]
Payload = Annotated[JSONObject, PlainValidator(_payload)]
Strings = Annotated[tuple[str, ...], PlainValidator(_strings), PlainSerializer(list, return_type=list[str])]
Moment = Annotated[
    datetime | None, PlainValidator(parse_timestamp), PlainSerializer(_iso, return_type=str | None)
]
RequiredText = Annotated[str, PlainValidator(_required_text)]
RequiredId = Annotated[str, PlainValidator(_required_id)]
ClippedText = Annotated[str | None, PlainValidator(lambda value: clip_text(value, AI_CALL_TEXT_CHARS))]
ClippedPayload = Annotated[JSONObject, PlainValidator(lambda value: clip_json(value, AI_CALL_PAYLOAD_CHARS))]


def _dump_records(items: tuple[BaseModel, ...]) -> list[JSONObject]:
    return [item.model_dump(mode="json") for item in items]


# A tuple of nested records read by a plain validator (so unreadable ones become placeholders).
RecordsDump = PlainSerializer(_dump_records, return_type=list[JSONObject])


class Record(BaseModel):
    """A record read from Mogplex (``read``) or from the snapshot store (``from_dict``)."""

    model_config = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True, extra="ignore")

    # How sentences name the record: "Mogplex sent <NOUN> without 'id'"; stored: "a stored <STORED_NOUN>".
    NOUN: ClassVar[str] = "a record"
    STORED_NOUN: ClassVar[str] = "record"

    def to_dict(self) -> JSONObject:
        """JSON-safe primitives (ISO strings for times) under the record's own field names."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The record as ``to_dict()`` stored it; ``RecordShapeError`` if the store holds something else."""
        return cls._validated(data, stored=True)

    @classmethod
    def read(cls, value: object) -> Self:
        """The record from upstream's JSON; ``RecordShapeError`` when it has no identity or status."""
        return cls._validated(value, stored=False)

    @classmethod
    def _validated(cls, value: object, *, stored: bool) -> Self:
        what = f"a stored {cls.STORED_NOUN}" if stored else cls.NOUN
        obj = _object(value, what)
        try:
            return cls.model_validate(obj)
        except ValidationError as exc:
            raise _shape_error(what, cls._problem(exc, stored=stored)) from None

    @classmethod
    def _problem(cls, exc: ValidationError, *, stored: bool) -> str:
        first = exc.errors()[0]
        loc = first["loc"]
        key = str(loc[0]) if loc else "?"
        if stored:
            # A missing field is reported under its upstream alias; the store spells it by name.
            key = next(
                (name for name, info in cls.model_fields.items() if info.validation_alias == key),
                key,
            )
        if len(loc) > 1:
            return f"with {'.'.join(str(part) for part in loc)!r} unreadable"
        ctx = first.get("ctx") or {}
        if first["type"] == "missing" or ctx.get("missing"):
            return f"without {key!r}"
        if "json_type" in ctx:
            return f"with {key!r} as {ctx['json_type']}, not text"
        return f"with {key!r} unreadable"

    @classmethod
    def placeholder(cls, **fields: Any) -> Self:
        """A record built without validation: the stand-in for one that could not be read."""
        return cls.model_construct(**fields)


def _read_or_placeholder[R: Record](
    cls: type[R], value: object, index: int, *, key: str, noun: str, build: Callable[[str, str, object], R]
) -> R:
    """``cls.read(value)``, or the placeholder ``build(id, sentence, value)`` for an unreadable one."""
    try:
        return cls.read(value)
    except RecordShapeError as exc:
        return build(record_id(value, key) or f"unreadable-{index}", unreadable_sentence(noun, exc), value)


def http_url(value: object) -> str | None:
    """``value`` if it is an absolute http(s) URL, else ``None``: the only links the board follows."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
        return None
    return value.strip()


# -- envelopes --------------------------------------------------------------------


def decode_json(content: bytes, status: int) -> Any:
    """The JSON in a response body, or ``ProtocolError`` naming the HTTP status."""
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        # RecursionError: JSON nested about a thousand deep, which no Mogplex answer is.
        raise ProtocolError(
            f"Mogplex answered {status} with a body that is not JSON; check the base URL points at Mogplex.",
            status=status,
        ) from None


def parse_envelope(content: bytes, status: int) -> Any:
    """The ``data`` of a ``{"ok": true, "data": ...}`` body (contract section 4).

    A body that is not JSON, has no boolean ``ok``, or says ``ok: false`` (this is
    only called for a 2xx) is a ``ProtocolError`` that names the status.
    """
    body = decode_json(content, status)
    ok = body.get("ok") if isinstance(body, dict) else None
    if not isinstance(ok, bool):
        raise ProtocolError(
            f"Mogplex answered {status} with JSON that has no boolean 'ok'; "
            "check the base URL points at Mogplex.",
            status=status,
        )
    if not ok:
        said = " ".join((error_message(content) or "no message").split())[:200]
        raise ProtocolError(
            f"Mogplex answered {status} with ok: false ({said}); "
            "an error must not come with a success status, so treat it as an upstream fault and retry later.",
            status=status,
            board_message=(
                f"Mogplex answered an error with a success status ({status}, ok: false): {said}; "
                "the board retries with growing pauses."
            ),
        )
    return body.get("data")


def error_message(content: bytes) -> str | None:
    """Upstream's ``error.message`` (else ``error.code``) from an error envelope, or None if there is none."""
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    for key in ("message", "code"):
        text = error.get(key)
        if isinstance(text, str) and text.strip():
            # Untrusted text that ends up in logs and on the board: keep it short.
            return text.strip()[:300]
    return None


# -- repos ------------------------------------------------------------------------


class Repo(Record):
    """A repository the token's user can run agents on (``GET /repos``)."""

    NOUN: ClassVar[str] = "a repo"
    STORED_NOUN: ClassVar[str] = "repo"

    id: RequiredId
    full_name: RequiredText
    installation_id: Integer = None
    default_branch: Text = None
    root_directory: Text = None

    @property
    def app_covered(self) -> bool:
        """Whether the GitHub App covers the repo (``installation_id`` null: synced only, no triggers)."""
        return self.installation_id is not None


def parse_repo(value: object) -> Repo:
    """One repo object from ``GET /repos``."""
    return Repo.read(value)


def parse_repos(data: object) -> tuple[Repo, ...]:
    """The ``data`` of ``GET /repos``: ``{"repos": [...]}``.

    Repos only give rows their names, so one that cannot be read is left out (its
    runs show the repo id) rather than costing the whole list.
    """
    return _readable(parse_repo, _list(_object(data, "repos"), "repos", "the repo list"))


def _readable[R](parse: Callable[[object], R], items: list[Any]) -> tuple[R, ...]:
    """Each item parsed, leaving out those that cannot be read."""
    parsed = []
    for item in items:
        try:
            parsed.append(parse(item))
        except RecordShapeError:
            continue
    return tuple(parsed)


# -- sandboxes --------------------------------------------------------------------


class Sandbox(Record):
    """A cloud sandbox (``GET /sandboxes``); ``id`` is the record id, ``sandbox_id`` the provider's."""

    NOUN: ClassVar[str] = "a sandbox"
    STORED_NOUN: ClassVar[str] = "sandbox"

    id: RequiredId
    status: RequiredText
    sandbox_id: Text = None
    repo_id: LowerId = None
    base_branch: Text = None
    working_branch: Text = None
    root_directory: Text = None
    preview_url: Text = None
    error: Text = None
    created_at: Moment = None
    last_active_at: Moment = None

    @property
    def is_active(self) -> bool:
        """Whether upstream counts this sandbox as up (creating, installing, running or pausing)."""
        return self.status in ACTIVE_SANDBOX_STATUSES


def parse_sandbox(value: object) -> Sandbox:
    """One sandbox object (snake_case, unlike runs)."""
    return Sandbox.read(value)


def parse_sandboxes(data: object) -> tuple[Sandbox, ...]:
    """The ``data`` of ``GET /sandboxes``: ``{"sandboxes": [...]}``; an unreadable one becomes a placeholder."""
    obj = _object(data, "sandboxes")
    items = _list(obj, "sandboxes", "the sandbox list")
    return tuple(
        _read_or_placeholder(
            Sandbox,
            item,
            index,
            key="id",
            noun="sandbox",
            build=lambda id_, sentence, _: Sandbox.placeholder(id=id_, status=UNREADABLE, error=sentence),
        )
        for index, item in enumerate(items)
    )


class SandboxLifecycleEvent(Record):
    """One auto-pause or tab event of a sandbox, for its timeline; ``payload`` is unsanitised upstream text.

    ``decision_code`` is one of ``AUTO_PAUSE_DECISION_CODES`` on the decision,
    success and failure events; ``worker_run_id`` is the auto-pause worker's id.
    """

    NOUN: ClassVar[str] = "a sandbox lifecycle event"
    STORED_NOUN: ClassVar[str] = "lifecycle event"

    id: RequiredId
    event_type: RequiredText
    decision_code: Text = None
    worker_run_id: Text = None
    payload: Payload = Field(default_factory=dict)
    created_at: Moment = None


def parse_lifecycle_event(value: object) -> SandboxLifecycleEvent:
    """One entry of ``lifecycle_events``."""
    return SandboxLifecycleEvent.read(value)


def _lifecycle_events(value: object) -> tuple[SandboxLifecycleEvent, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(
        item
        if isinstance(item, SandboxLifecycleEvent)
        else _read_or_placeholder(
            SandboxLifecycleEvent,
            item,
            index,
            key="id",
            noun="lifecycle event",
            build=lambda id_, sentence, raw: SandboxLifecycleEvent.placeholder(
                id=id_,
                event_type=UNREADABLE,
                payload={"problem": sentence},
                created_at=parse_timestamp(raw.get("created_at")) if isinstance(raw, Mapping) else None,
            ),
        )
        for index, item in enumerate(value)
    )


class SandboxLogs(Record):
    """``GET /sandboxes/{id}/logs``: the sandbox, its logs and its oldest 200 lifecycle events."""

    NOUN: ClassVar[str] = "sandbox logs"
    STORED_NOUN: ClassVar[str] = "sandbox logs"

    sandbox: Sandbox
    install_log: Text = Field(default=None, validation_alias=AliasPath("sandbox", "install_log"))
    dev_log: Text = Field(default=None, validation_alias=AliasPath("sandbox", "dev_log"))
    # An unreadable lifecycle event becomes a placeholder, keeping its place in the timeline.
    lifecycle_events: Annotated[
        tuple[SandboxLifecycleEvent, ...], PlainValidator(_lifecycle_events), RecordsDump
    ] = ()


def parse_sandbox_logs(data: object) -> SandboxLogs:
    """The ``data`` of ``GET /sandboxes/{id}/logs``; an unreadable lifecycle event becomes a placeholder."""
    obj = _object(data, "sandbox logs")
    sandbox = _object(obj.get("sandbox"), "sandbox logs without a sandbox")
    return SandboxLogs.placeholder(
        sandbox=parse_sandbox(sandbox),
        install_log=_text(sandbox.get("install_log")),
        dev_log=_text(sandbox.get("dev_log")),
        lifecycle_events=_lifecycle_events(obj.get("lifecycle_events")),
    )


# -- runs -------------------------------------------------------------------------


class RunBranch(Record):
    """Where a run works: its base branch, its working branch, and whether it made a new one."""

    base: Text = None
    working: Text = None
    create_branch: Flag = Field(default=None, validation_alias="createBranch")


class RunDetail(Record):
    """An agent run (``GET /runs/{id}``, and ``run`` in ``/events``). There is no PR URL here."""

    NOUN: ClassVar[str] = "a run"
    STORED_NOUN: ClassVar[str] = "run"

    run_id: RequiredId = Field(validation_alias="runId")
    status: RequiredText
    ai_call_id: LowerId = Field(default=None, validation_alias="aiCallId")
    repo_id: LowerId = Field(default=None, validation_alias="repoId")
    sandbox_record_id: LowerId = Field(default=None, validation_alias="sandboxRecordId")
    sandbox_id: Text = Field(default=None, validation_alias="sandboxId")
    harness: Text = None
    branch: Annotated[RunBranch, BeforeValidator(_mapping_or_empty)] = Field(default_factory=RunBranch)
    root_directory: Text = Field(default=None, validation_alias="rootDirectory")
    events_url: Text = Field(default=None, validation_alias="eventsUrl")
    created_at: Moment = Field(default=None, validation_alias="createdAt")
    updated_at: Moment = Field(default=None, validation_alias="updatedAt")
    error: Text = None
    runtime_provider: Text = Field(default=None, validation_alias=AliasPath("runtime", "provider"))
    runtime_run_id: Text = Field(default=None, validation_alias=AliasPath("runtime", "runId"))

    @property
    def is_terminal(self) -> bool:
        """Success, failed or cancelled: the run will not change again. Unknown statuses are not terminal."""
        return self.status in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """Pending or streaming."""
        return self.status in ACTIVE_RUN_STATUSES

    def possibly_stale(self, now: datetime) -> bool:
        """A non-terminal run whose ``updated_at`` is older than ``STALE_AFTER``: its worker may be dead."""
        return not self.is_terminal and self.updated_at is not None and now - self.updated_at > STALE_AFTER


def parse_run_detail(value: object) -> RunDetail:
    """A RunDetail object (camelCase), as in ``{"run": ...}`` or the flat ``mogplex run --json`` output."""
    return RunDetail.read(value)


def parse_run(data: object) -> RunDetail:
    """The ``data`` of ``GET /runs/{id}``: ``{"run": RunDetail}``."""
    return parse_run_detail(_object(data, "a run response").get("run"))


class RunEvent(Record):
    """One event of a run. ``message`` and ``tool_name`` are agent-written and unsanitised."""

    NOUN: ClassVar[str] = "a run event"
    STORED_NOUN: ClassVar[str] = "event"

    id: RequiredId
    type: RequiredText
    tool_name: Text = Field(default=None, validation_alias="toolName")
    message: Text = None
    payload: Payload = Field(default_factory=dict)
    created_at: Moment = Field(default=None, validation_alias="createdAt")


def parse_run_event(value: object) -> RunEvent:
    """One entry of ``events`` in ``GET /runs/{id}/events``."""
    return RunEvent.read(value)


class RunOutcome(Record):
    """How a run ended, from its events: the terminal event's codes and what was delivered.

    ``failure_code`` and ``exit_code`` come from the last ``finished`` or ``failed``
    event's payload; ``delivery`` is ``pull_request`` or ``no_changes`` from the
    last ``git_delivery`` log ("No code changes to deliver" is not a PR).
    """

    terminal_event: Text = None
    failure_code: Text = None
    exit_code: Integer = None
    delivery: Text = None

    @property
    def reason(self) -> str | None:
        """One plain reason for a failure ("the agent exited with code 2"); an unknown code as it is."""
        return failure_reason(self.failure_code, self.exit_code)


class RunEvents(Record):
    """``GET /runs/{id}/events``: the run's state and its first events (oldest first, at most 200).

    ``server_date`` is the response's HTTP ``Date``, for estimating upstream's clock skew.
    """

    NOUN: ClassVar[str] = "a run events response"
    STORED_NOUN: ClassVar[str] = "run events"

    run: RunDetail
    events: tuple[RunEvent, ...] = ()
    server_date: Moment = None

    def pr_url(self) -> str | None:
        """The pull request URL from the last ``git_delivery`` log event that has an http(s) one.

        It is the only v1 source of a run's PR (contract section 9).
        """
        for event in reversed(self.events):
            if event.type != "log" or event.payload.get("stage") != "git_delivery":
                continue
            url = http_url(event.payload.get("pull_request_url"))
            if url is not None:
                return url
        return None

    def outcome(self) -> RunOutcome:
        """The terminal event's ``failure_code`` and ``exit_code``, and what was delivered, if the feed shows them."""
        terminal = next(
            (e for e in reversed(self.events) if e.type in ("finished", "failed", "cancelled")), None
        )
        delivery = next(
            (
                e
                for e in reversed(self.events)
                if e.type == "log" and e.payload.get("stage") == "git_delivery"
            ),
            None,
        )
        delivered = None
        if delivery is not None:
            delivered = "pull_request" if http_url(delivery.payload.get("pull_request_url")) else "no_changes"
        payload = terminal.payload if terminal is not None else {}
        return RunOutcome(
            terminal_event=terminal.type if terminal is not None else None,
            failure_code=_text(payload.get("failure_code")),
            exit_code=_integer(payload.get("exit_code")),
            delivery=delivered,
        )

    def truncated(self, limit: int) -> bool:
        """Whether the feed hit ``limit``: events after that are invisible through v1."""
        return len(self.events) == limit


def parse_run_events(data: object, server_date: datetime | None = None) -> RunEvents:
    """The ``data`` of ``GET /runs/{id}/events``: ``{"run": RunDetail, "events": [...]}``.

    A run object that cannot be read becomes a placeholder ``RunDetail`` (status
    ``UNREADABLE``); so does each unreadable event (type ``UNREADABLE``), keeping its
    place among the others. A response without a ``run`` object or an ``events`` list
    is not this endpoint's answer at all, and raises.
    """
    obj = _object(data, "a run events response")
    run = obj.get("run")
    if not isinstance(run, Mapping):
        raise _shape_error("a run events response", f"with 'run' as {json_type(run)}, not a JSON object")
    events = _list(obj, "events", "a run events response")
    try:
        detail = parse_run_detail(run)
    except RecordShapeError as exc:
        detail = RunDetail.placeholder(
            run_id=record_id(run, "runId") or "", status=UNREADABLE, error=unreadable_sentence("run", exc)
        )
    return RunEvents.placeholder(
        run=detail,
        events=tuple(
            _read_or_placeholder(
                RunEvent,
                item,
                index,
                key="id",
                noun="event",
                build=lambda id_, sentence, raw: RunEvent.placeholder(
                    id=id_,
                    type=UNREADABLE,
                    message=sentence,
                    created_at=parse_timestamp(raw.get("createdAt")) if isinstance(raw, Mapping) else None,
                ),
            )
            for index, item in enumerate(events)
        ),
        server_date=server_date,
    )


# -- models and agents ------------------------------------------------------------


class Model(Record):
    """An AI model the user may run with; prices are USD per token."""

    NOUN: ClassVar[str] = "a model"
    STORED_NOUN: ClassVar[str] = "model"

    id: RequiredText
    provider: Text = None
    name: Text = None
    context_length: Integer = Field(default=None, validation_alias="contextLength")
    capabilities: Strings = ()
    pricing_input: Number = Field(default=None, validation_alias=AliasPath("pricing", "input"))
    pricing_output: Number = Field(default=None, validation_alias=AliasPath("pricing", "output"))


def parse_model(value: object) -> Model:
    """One entry of ``GET /models``; ``id`` is an opaque string, not a UUID."""
    return Model.read(value)


def parse_models(data: object) -> tuple[Model, ...]:
    """The ``data`` of ``GET /models``: ``{"models": [...]}`` (the board only counts them; unreadable ones are left out)."""
    return _readable(parse_model, _list(_object(data, "models"), "models", "the model list"))


class Agent(Record):
    """An agent definition: a preset (``id`` ``preset:<TEMPLATE NAME>``, ``slug`` null) or one of the user's own."""

    NOUN: ClassVar[str] = "an agent"
    STORED_NOUN: ClassVar[str] = "agent"

    id: RequiredText
    name: Text = None
    model: Text = None
    slug: Text = None
    description: Text = None
    category: Text = None
    preset: Flag = None

    @property
    def is_preset(self) -> bool:
        """A preset template, by its flag or, when that is missing, by its ``preset:`` id."""
        return self.preset if self.preset is not None else self.id.startswith("preset:")


def parse_agent(value: object) -> Agent:
    """One entry of ``GET /agents``."""
    return Agent.read(value)


def parse_agents(data: object) -> tuple[Agent, ...]:
    """The ``data`` of ``GET /agents``: ``{"agents": [...]}``."""
    return tuple(parse_agent(item) for item in _list(_object(data, "agents"), "agents", "the agent list"))


# -- the account ------------------------------------------------------------------


class GithubAction(Record):
    """What Mogplex says to do next about GitHub: ``kind`` (``connect``, ``install``,
    ``complete_install``, ``open_spaces``), a label, and an ``href`` into the Mogplex app."""

    kind: Text = None
    label: Text = None
    href: Text = None

    def url(self, app_base: str) -> str | None:
        """The action's address under ``app_base`` (relative hrefs are joined to it), http(s) only."""
        if self.href is None:
            return None
        if self.href.startswith("/") and not self.href.startswith("//"):
            return http_url(app_base.rstrip("/") + self.href)
        return http_url(self.href)


class VercelCapability(Record):
    """The compute capability Mogplex reports (``vercel`` in ``/api/auth/user``)."""

    platform_state: Text = Field(default=None, validation_alias="platformState")
    personal_state: Text = Field(default=None, validation_alias="personalState")
    linked_project_state: Text = Field(default=None, validation_alias="linkedProjectState")
    can_use_platform_ops: Flag = Field(default=None, validation_alias="canUsePlatformOps")
    can_link_user_billing_project: Flag = Field(default=None, validation_alias="canLinkUserBillingProject")
    can_use_user_billing: Flag = Field(default=None, validation_alias="canUseUserBilling")
    status_label: Text = Field(default=None, validation_alias="statusLabel")
    status_detail: Text = Field(default=None, validation_alias="statusDetail")


class AccountUser(Record):
    """Who a PAT belongs to and how ready the account is (``GET /api/auth/user``); every field may be missing.

    GitHub readiness is ``github_state`` (one of ``GITHUB_STATES``; only
    ``app_installed_with_synced_repos`` is ready) with Mogplex's own label, one
    sentence of detail and the next action; ``allow_platform_*`` is the platform
    access; ``vercel`` the compute capability.
    """

    NOUN: ClassVar[str] = "a user"
    STORED_NOUN: ClassVar[str] = "user"

    id: LowerId = None
    email: Text = None
    username: Text = None
    name: Text = None
    avatar_url: Text = None
    github_username: Text = None
    github_state: Text = None
    github_connected: Flag = None
    github_app_connected: Flag = None
    github_connection_mode: Text = None
    github_app_available: Flag = None
    github_install_pending: Flag = None
    github_installation_count: Integer = None
    github_synced_repo_count: Integer = None
    github_covered_repo_count: Integer = None
    github_status_label: Text = None
    github_status_detail: Text = None
    github_primary_action: Annotated[GithubAction | None, BeforeValidator(_mapping_or_none)] = None
    allow_platform_ai: Flag = Field(
        default=None, validation_alias=AliasPath("platform_access", "allowPlatformAi")
    )
    allow_platform_sandbox: Flag = Field(
        default=None, validation_alias=AliasPath("platform_access", "allowPlatformSandbox")
    )
    vercel: Annotated[VercelCapability, BeforeValidator(_mapping_or_empty)] = Field(
        default_factory=VercelCapability
    )
    account_vercel_project_id: Text = None
    account_vercel_team_id: Text = None

    @property
    def github_ready(self) -> bool:
        """GitHub App coverage is active and synced repositories are there."""
        return self.github_state == "app_installed_with_synced_repos"


def parse_account_user(value: object) -> AccountUser:
    """The ``user`` object of ``GET /api/auth/user``."""
    return AccountUser.read(value)


def parse_auth_user(body: object) -> AccountUser | None:
    """The whole body of ``GET /api/auth/user`` (not an envelope).

    ``{"user": null}`` gives ``None``: upstream says that for a missing, invalid,
    OAuth *or rate-limited* token alike, so it proves nothing about the token.
    """
    obj = _object(body, "the auth user response")
    if "user" not in obj:
        raise _shape_error("the auth user response", "without 'user'")
    user = obj["user"]
    return None if user is None else parse_account_user(user)


# -- automations ------------------------------------------------------------------

_CURSOR_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$")
_CURSOR_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_CURSOR_CHARS = 512


def automation_cursor_valid(cursor: object) -> bool:
    """Whether ``cursor`` is one Mogplex would accept: base64url of ``{createdAt, id}`` with an ISO time and a UUID.

    Mirrors ``parseMogplexApiAutomationCursor``; anything else would cost a 400
    ``Invalid cursor``, so the board never sends it.
    """
    if not isinstance(cursor, str) or not 0 < len(cursor) <= MAX_CURSOR_CHARS or not _BASE64URL.match(cursor):
        return False
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        return False
    if not isinstance(decoded, dict):
        return False
    created_at, automation_id = decoded.get("createdAt"), decoded.get("id")
    if not isinstance(created_at, str) or not _CURSOR_DATE.match(created_at):
        return False
    if not isinstance(automation_id, str) or not _CURSOR_ID.match(automation_id):
        return False
    return parse_timestamp(created_at) is not None


class Automation(Record):
    """An automation as ``GET /automations`` lists it; ``status`` is ``active`` or ``inactive``."""

    NOUN: ClassVar[str] = "an automation"
    STORED_NOUN: ClassVar[str] = "automation"

    id: RequiredId
    status: RequiredText
    installation_id: Integer = Field(default=None, validation_alias="installationId")
    name: Text = None
    description: Text = None
    published_version_id: LowerId = Field(default=None, validation_alias="publishedVersionId")
    created_at: Moment = Field(default=None, validation_alias="createdAt")
    updated_at: Moment = Field(default=None, validation_alias="updatedAt")

    @property
    def is_active(self) -> bool:
        return self.status == "active"


class AutomationRunSummary(Record):
    """``runSummary``: the last job run (its id is a job-run id, not an agent run's) and the counts."""

    last_run_id: LowerId = Field(default=None, validation_alias="lastRunId")
    last_run_status: Text = Field(default=None, validation_alias="lastRunStatus")
    running_count: Integer = Field(default=None, validation_alias="runningCount")
    pending_count: Integer = Field(default=None, validation_alias="pendingCount")
    failed_24h: Integer = Field(default=None, validation_alias="failed24h")


class PublishedVersion(Record):
    id: LowerId = None
    version_number: Integer = Field(default=None, validation_alias="versionNumber")
    created_at: Moment = Field(default=None, validation_alias="createdAt")


class AutomationDetail(Automation):
    """``GET /automations/{id}``: the automation with its notes, published version and ``runSummary``.

    The graphs are left out: the board shows health, not the flow.
    """

    notes: Text = None
    published_version: Annotated[PublishedVersion | None, BeforeValidator(_mapping_or_none)] = Field(
        default=None, validation_alias="publishedVersion"
    )
    run_summary: Annotated[AutomationRunSummary, BeforeValidator(_mapping_or_empty)] = Field(
        default_factory=AutomationRunSummary, validation_alias="runSummary"
    )


class AutomationPage(Record):
    """One page of ``GET /automations``. ``next_cursor`` is upstream's, and only ever one Mogplex would accept:
    a malformed one is dropped and ``cursor_refused`` says the list may go on beyond this page."""

    automations: tuple[Automation, ...] = ()
    next_cursor: Text = None
    cursor_refused: bool = False


def _automation_or_placeholder(value: object, index: int) -> Automation:
    return _read_or_placeholder(
        Automation,
        value,
        index,
        key="id",
        noun="automation",
        build=lambda id_, sentence, _: Automation.placeholder(
            id=id_, status=UNREADABLE, description=sentence
        ),
    )


def parse_automations(data: object) -> AutomationPage:
    """The ``data`` of ``GET /automations``: ``{"automations": [...], "nextCursor": str|null}``."""
    obj = _object(data, "automations")
    items = _list(obj, "automations", "the automation list")
    cursor = obj.get("nextCursor")
    valid = automation_cursor_valid(cursor)
    return AutomationPage.placeholder(
        automations=tuple(_automation_or_placeholder(item, index) for index, item in enumerate(items)),
        next_cursor=cursor if valid else None,
        cursor_refused=cursor is not None and not valid,
    )


def parse_automation(data: object) -> AutomationDetail:
    """The ``data`` of ``GET /automations/{id}``: ``{"automation": {...}}``."""
    return AutomationDetail.read(_object(data, "an automation response").get("automation"))


# -- job runs ---------------------------------------------------------------------


class JobRun(Record):
    """A job run of an automation (``GET /automations/{id}/runs``). Its id is not an agent run's:
    ``/runs/{id}`` does not know it."""

    NOUN: ClassVar[str] = "a job run"
    STORED_NOUN: ClassVar[str] = "job run"

    id: RequiredId
    status: RequiredText
    automation_id: LowerId = Field(default=None, validation_alias="flow_id")
    created_at: Moment = None
    started_at: Moment = None
    completed_at: Moment = None
    duration_ms: Integer = None
    input_tokens: Integer = None
    output_tokens: Integer = None
    error: Text = None
    source_kind: Text = None
    source_type: Text = None
    repo_id: LowerId = Field(default=None, validation_alias=AliasPath("repo", "id"))
    repo_full_name: Text = Field(default=None, validation_alias=AliasPath("repo", "full_name"))
    runtime_run_id: Text = None
    cancel_requested_at: Moment = None
    cancelled_at: Moment = None
    cancel_reason: Text = None
    cost_usd: Number = None
    cancelable: Flag = None
    latest_dispatch_outcome: Text = Field(
        default=None, validation_alias=AliasPath("latest_dispatch_event", "outcome")
    )
    latest_dispatch_reason: Text = Field(
        default=None, validation_alias=AliasPath("latest_dispatch_event", "reason")
    )

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_JOB_RUN_STATUSES

    def pending_too_long(self, now: datetime) -> bool:
        """Pending for longer than ``JOB_RUN_PENDING_TOO_LONG`` (Mogplex's "Action required")."""
        return (
            self.status == "pending"
            and self.created_at is not None
            and now - self.created_at > JOB_RUN_PENDING_TOO_LONG
        )


def parse_job_runs(data: object) -> tuple[JobRun, ...]:
    """The ``data`` of ``GET /automations/{id}/runs``: ``{"runs": [...]}``, newest first."""
    items = _list(_object(data, "job runs"), "runs", "the job run list")
    return tuple(
        _read_or_placeholder(
            JobRun,
            item,
            index,
            key="id",
            noun="job run",
            build=lambda id_, sentence, _: JobRun.placeholder(id=id_, status=UNREADABLE, error=sentence),
        )
        for index, item in enumerate(items)
    )


class AiCallEvent(Record):
    """One raw event of a job run's AI call, clipped: upstream never cleans these."""

    NOUN: ClassVar[str] = "an AI call event"
    STORED_NOUN: ClassVar[str] = "AI call event"

    id: RequiredId
    event_type: RequiredText
    tool_name: ClippedText = None
    message: ClippedText = None
    payload: ClippedPayload = Field(default_factory=dict)
    created_at: Moment = None


def _ai_call_events(value: object) -> tuple[AiCallEvent, ...]:
    if not isinstance(value, list | tuple):
        return ()
    # The newest ones: the end of a call says how it went.
    kept = list(value)[-AI_CALL_EVENTS_KEPT:]
    return tuple(
        item
        if isinstance(item, AiCallEvent)
        else _read_or_placeholder(
            AiCallEvent,
            item,
            index,
            key="id",
            noun="AI call event",
            build=lambda id_, sentence, _: AiCallEvent.placeholder(
                id=id_, event_type=UNREADABLE, message=sentence
            ),
        )
        for index, item in enumerate(kept)
    )


def _count(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return len(value) if isinstance(value, list | tuple) else 0


class AiCall(Record):
    """An AI call of a job run, with its newest events (``events_total`` counts them all)."""

    NOUN: ClassVar[str] = "an AI call"
    STORED_NOUN: ClassVar[str] = "AI call"

    id: RequiredId
    status: Text = None
    model: ClippedText = None
    error: ClippedText = None
    started_at: Moment = None
    completed_at: Moment = None
    total_tokens: Integer = None
    tool_calls_count: Integer = None
    events: Annotated[tuple[AiCallEvent, ...], PlainValidator(_ai_call_events), RecordsDump] = ()
    events_total: int = 0


def _ai_calls(value: object) -> tuple[AiCall, ...]:
    if not isinstance(value, list | tuple):
        return ()
    calls = []
    for item in value:
        if isinstance(item, AiCall):
            calls.append(item)
            continue
        if not isinstance(item, Mapping):
            continue
        try:
            calls.append(AiCall.read({"events_total": _count(item.get("events")), **item}))
        except RecordShapeError:
            continue
    return tuple(calls)


class DispatchEvent(Record):
    event_kind: Text = None
    outcome: Text = None
    reason: ClippedText = None
    created_at: Moment = None


def _dispatch_events(value: object) -> tuple[DispatchEvent, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(
        item if isinstance(item, DispatchEvent) else DispatchEvent.model_validate(item)
        for item in value
        if isinstance(item, Mapping | DispatchEvent)
    )


class JobRunDetail(JobRun):
    """``GET /automations/{id}/runs/{runId}``: the job run with its dispatch events and AI calls, clipped."""

    dispatch_events: Annotated[tuple[DispatchEvent, ...], PlainValidator(_dispatch_events), RecordsDump] = ()
    ai_calls: Annotated[tuple[AiCall, ...], PlainValidator(_ai_calls), RecordsDump] = ()


def parse_job_run(data: object) -> JobRunDetail:
    """The ``data`` of ``GET /automations/{id}/runs/{runId}``: ``{"run": {...}}``."""
    return JobRunDetail.read(_object(data, "a job run response").get("run"))
