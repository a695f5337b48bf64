"""Typed records of what Mogplex v1 returns, parsed tolerantly.

Upstream is a moving target (contract sections 6, 7 and 9), so the ``parse_*``
functions accept what they can: unknown statuses and event types are kept as the
strings they are, missing or wrongly typed optional fields become ``None``, extra
fields are ignored. A record without its identity (a run without ``runId``, an event
without ``id``) or its status, or with one that is not text, is unreadable: alone it
raises ``RecordShapeError`` (a ``ProtocolError``), but inside an answer that carries
many records (the sandbox list, a run's events, the run in ``/runs/{id}/events``) it
becomes a placeholder whose status (or event type) is ``UNREADABLE`` and whose
``error`` (or ``message``) says what was wrong, so one poisoned record costs only its
own row. Only an answer without its outer shape (no ``sandboxes`` list) fails whole.

Every record has ``to_dict()`` (JSON-safe primitives, ISO strings for times) for
the snapshot store and a matching ``from_dict()``. These use the records' own
snake_case field names, not upstream's spelling.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from urllib.parse import urlsplit

from dashboard.mogplex.errors import ProtocolError, RecordShapeError

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
HARNESSES: tuple[str, ...] = ("codex", "claude-code")
# The product's own threshold for agent calls (contract section 9): a non-terminal
# run untouched for this long has probably lost its worker.
STALE_AFTER = timedelta(hours=6)

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
    return "a list" if isinstance(value, list) else "a JSON object"


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _shape_error(what, f"as {json_type(value)}, not a JSON object")
    return value


def _list(obj: Mapping[str, Any], key: str, what: str) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise _shape_error(what, f"without a {key!r} list")
    return value


def _required_str(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None or value == "":
        raise _shape_error(what, f"without {key!r}")
    if not isinstance(value, str):
        raise _shape_error(what, f"with {key!r} as {json_type(value)}, not text")
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


def _str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def _id(obj: Mapping[str, Any], key: str) -> str | None:
    # UUIDs are compared lowercased (contract section 9).
    value = _str(obj, key)
    return value.lower() if value is not None else None


def _int(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _bool(obj: Mapping[str, Any], key: str) -> bool | None:
    value = obj.get(key)
    return value if isinstance(value, bool) else None


def _payload(obj: Mapping[str, Any], key: str) -> JSONObject:
    value = obj.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


def _strings(obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key)
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str))


def parse_timestamp(value: object) -> datetime | None:
    """An ISO-8601 time as upstream writes it (``Z`` or ``+00:00``, 0-6 fraction digits), in UTC.

    Anything unparseable gives ``None``; a time without an offset is taken as UTC,
    which is what upstream's database clock uses.
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
        # A time at the edge of the calendar (year 1 or 9999) with an offset overflows in UTC.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _time(obj: Mapping[str, Any], key: str) -> datetime | None:
    return parse_timestamp(obj.get(key))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


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
    except ValueError:
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
        raise ProtocolError(
            f"Mogplex answered {status} with ok: false ({error_message(content) or 'no message'}); "
            "an error must not come with a success status, so treat it as an upstream fault and retry later.",
            status=status,
        )
    return body.get("data")


def error_message(content: bytes) -> str | None:
    """Upstream's ``error.message`` (else ``error.code``) from an error envelope, or None if there is none."""
    try:
        body = json.loads(content)
    except ValueError:
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


@dataclass(frozen=True)
class Repo:
    """A repository the token's user can run agents on (``GET /repos``)."""

    id: str
    full_name: str
    installation_id: int | None = None
    default_branch: str | None = None
    root_directory: str | None = None

    def to_dict(self) -> JSONObject:
        return {
            "id": self.id,
            "full_name": self.full_name,
            "installation_id": self.installation_id,
            "default_branch": self.default_branch,
            "root_directory": self.root_directory,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            id=_required_str(data, "id", "a stored repo"),
            full_name=_required_str(data, "full_name", "a stored repo"),
            installation_id=_int(data, "installation_id"),
            default_branch=_str(data, "default_branch"),
            root_directory=_str(data, "root_directory"),
        )


def parse_repo(value: object) -> Repo:
    """One repo object from ``GET /repos``."""
    obj = _object(value, "a repo")
    return Repo(
        id=_required_str(obj, "id", "a repo").lower(),
        full_name=_required_str(obj, "full_name", "a repo"),
        installation_id=_int(obj, "installation_id"),
        default_branch=_str(obj, "default_branch"),
        root_directory=_str(obj, "root_directory"),
    )


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


@dataclass(frozen=True)
class Sandbox:
    """A cloud sandbox (``GET /sandboxes``); ``id`` is the record id, ``sandbox_id`` the provider's."""

    id: str
    status: str
    sandbox_id: str | None = None
    repo_id: str | None = None
    base_branch: str | None = None
    working_branch: str | None = None
    root_directory: str | None = None
    preview_url: str | None = None
    error: str | None = None
    created_at: datetime | None = None
    last_active_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        """Whether upstream counts this sandbox as up (creating, installing, running or pausing)."""
        return self.status in ACTIVE_SANDBOX_STATUSES

    def to_dict(self) -> JSONObject:
        return {
            "id": self.id,
            "status": self.status,
            "sandbox_id": self.sandbox_id,
            "repo_id": self.repo_id,
            "base_branch": self.base_branch,
            "working_branch": self.working_branch,
            "root_directory": self.root_directory,
            "preview_url": self.preview_url,
            "error": self.error,
            "created_at": _iso(self.created_at),
            "last_active_at": _iso(self.last_active_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            id=_required_str(data, "id", "a stored sandbox"),
            status=_required_str(data, "status", "a stored sandbox"),
            sandbox_id=_str(data, "sandbox_id"),
            repo_id=_str(data, "repo_id"),
            base_branch=_str(data, "base_branch"),
            working_branch=_str(data, "working_branch"),
            root_directory=_str(data, "root_directory"),
            preview_url=_str(data, "preview_url"),
            error=_str(data, "error"),
            created_at=_time(data, "created_at"),
            last_active_at=_time(data, "last_active_at"),
        )


def parse_sandbox(value: object) -> Sandbox:
    """One sandbox object (snake_case, unlike runs)."""
    obj = _object(value, "a sandbox")
    return Sandbox(
        id=_required_str(obj, "id", "a sandbox").lower(),
        status=_required_str(obj, "status", "a sandbox"),
        sandbox_id=_str(obj, "sandbox_id"),
        repo_id=_id(obj, "repo_id"),
        base_branch=_str(obj, "base_branch"),
        working_branch=_str(obj, "working_branch"),
        root_directory=_str(obj, "root_directory"),
        preview_url=_str(obj, "preview_url"),
        error=_str(obj, "error"),
        created_at=_time(obj, "created_at"),
        last_active_at=_time(obj, "last_active_at"),
    )


def parse_sandboxes(data: object) -> tuple[Sandbox, ...]:
    """The ``data`` of ``GET /sandboxes``: ``{"sandboxes": [...]}``; an unreadable one becomes a placeholder."""
    obj = _object(data, "sandboxes")
    items = _list(obj, "sandboxes", "the sandbox list")
    return tuple(_sandbox_or_placeholder(item, index) for index, item in enumerate(items))


def _sandbox_or_placeholder(value: object, index: int) -> Sandbox:
    try:
        return parse_sandbox(value)
    except RecordShapeError as exc:
        return Sandbox(
            id=record_id(value, "id") or f"unreadable-{index}",
            status=UNREADABLE,
            error=unreadable_sentence("sandbox", exc),
        )


@dataclass(frozen=True)
class SandboxLifecycleEvent:
    """One auto-pause or tab event of a sandbox; ``payload`` is unsanitised upstream text."""

    id: str
    event_type: str
    decision_code: str | None = None
    worker_run_id: str | None = None
    payload: JSONObject = field(default_factory=dict)
    created_at: datetime | None = None

    def to_dict(self) -> JSONObject:
        return {
            "id": self.id,
            "event_type": self.event_type,
            "decision_code": self.decision_code,
            "worker_run_id": self.worker_run_id,
            "payload": self.payload,
            "created_at": _iso(self.created_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            id=_required_str(data, "id", "a stored lifecycle event"),
            event_type=_required_str(data, "event_type", "a stored lifecycle event"),
            decision_code=_str(data, "decision_code"),
            worker_run_id=_str(data, "worker_run_id"),
            payload=_payload(data, "payload"),
            created_at=_time(data, "created_at"),
        )


def parse_lifecycle_event(value: object) -> SandboxLifecycleEvent:
    """One entry of ``lifecycle_events``."""
    obj = _object(value, "a sandbox lifecycle event")
    return SandboxLifecycleEvent(
        id=_required_str(obj, "id", "a sandbox lifecycle event").lower(),
        event_type=_required_str(obj, "event_type", "a sandbox lifecycle event"),
        decision_code=_str(obj, "decision_code"),
        worker_run_id=_str(obj, "worker_run_id"),
        payload=_payload(obj, "payload"),
        created_at=_time(obj, "created_at"),
    )


@dataclass(frozen=True)
class SandboxLogs:
    """``GET /sandboxes/{id}/logs``: the sandbox, its logs and its oldest 200 lifecycle events."""

    sandbox: Sandbox
    install_log: str | None = None
    dev_log: str | None = None
    lifecycle_events: tuple[SandboxLifecycleEvent, ...] = ()

    def to_dict(self) -> JSONObject:
        return {
            "sandbox": self.sandbox.to_dict(),
            "install_log": self.install_log,
            "dev_log": self.dev_log,
            "lifecycle_events": [event.to_dict() for event in self.lifecycle_events],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            sandbox=Sandbox.from_dict(_object(data.get("sandbox"), "a stored sandbox")),
            install_log=_str(data, "install_log"),
            dev_log=_str(data, "dev_log"),
            lifecycle_events=tuple(
                SandboxLifecycleEvent.from_dict(_object(item, "a stored lifecycle event"))
                for item in data.get("lifecycle_events") or ()
            ),
        )


def parse_sandbox_logs(data: object) -> SandboxLogs:
    """The ``data`` of ``GET /sandboxes/{id}/logs``."""
    obj = _object(data, "sandbox logs")
    sandbox = _object(obj.get("sandbox"), "sandbox logs without a sandbox")
    events = obj.get("lifecycle_events")
    return SandboxLogs(
        sandbox=parse_sandbox(sandbox),
        install_log=_str(sandbox, "install_log"),
        dev_log=_str(sandbox, "dev_log"),
        lifecycle_events=tuple(parse_lifecycle_event(item) for item in events)
        if isinstance(events, list)
        else (),
    )


# -- runs -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunBranch:
    """Where a run works: its base branch, its working branch, and whether it made a new one."""

    base: str | None = None
    working: str | None = None
    create_branch: bool | None = None

    def to_dict(self) -> JSONObject:
        return {"base": self.base, "working": self.working, "create_branch": self.create_branch}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            base=_str(data, "base"), working=_str(data, "working"), create_branch=_bool(data, "create_branch")
        )


@dataclass(frozen=True)
class RunDetail:
    """An agent run (``GET /runs/{id}``, and ``run`` in ``/events``). There is no PR URL here."""

    run_id: str
    status: str
    ai_call_id: str | None = None
    repo_id: str | None = None
    sandbox_record_id: str | None = None
    sandbox_id: str | None = None
    harness: str | None = None
    branch: RunBranch = field(default_factory=RunBranch)
    root_directory: str | None = None
    events_url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    error: str | None = None
    runtime_provider: str | None = None
    runtime_run_id: str | None = None

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

    def to_dict(self) -> JSONObject:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "ai_call_id": self.ai_call_id,
            "repo_id": self.repo_id,
            "sandbox_record_id": self.sandbox_record_id,
            "sandbox_id": self.sandbox_id,
            "harness": self.harness,
            "branch": self.branch.to_dict(),
            "root_directory": self.root_directory,
            "events_url": self.events_url,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "error": self.error,
            "runtime_provider": self.runtime_provider,
            "runtime_run_id": self.runtime_run_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        branch = data.get("branch")
        return cls(
            run_id=_required_str(data, "run_id", "a stored run"),
            status=_required_str(data, "status", "a stored run"),
            ai_call_id=_str(data, "ai_call_id"),
            repo_id=_str(data, "repo_id"),
            sandbox_record_id=_str(data, "sandbox_record_id"),
            sandbox_id=_str(data, "sandbox_id"),
            harness=_str(data, "harness"),
            branch=RunBranch.from_dict(branch) if isinstance(branch, Mapping) else RunBranch(),
            root_directory=_str(data, "root_directory"),
            events_url=_str(data, "events_url"),
            created_at=_time(data, "created_at"),
            updated_at=_time(data, "updated_at"),
            error=_str(data, "error"),
            runtime_provider=_str(data, "runtime_provider"),
            runtime_run_id=_str(data, "runtime_run_id"),
        )


def parse_run_detail(value: object) -> RunDetail:
    """A RunDetail object (camelCase), as in ``{"run": ...}`` or the flat ``mogplex run --json`` output."""
    obj = _object(value, "a run")
    branch = obj.get("branch")
    runtime = obj.get("runtime")
    branch_obj: Mapping[str, Any] = branch if isinstance(branch, Mapping) else {}
    runtime_obj: Mapping[str, Any] = runtime if isinstance(runtime, Mapping) else {}
    return RunDetail(
        run_id=_required_str(obj, "runId", "a run").lower(),
        status=_required_str(obj, "status", "a run"),
        ai_call_id=_id(obj, "aiCallId"),
        repo_id=_id(obj, "repoId"),
        sandbox_record_id=_id(obj, "sandboxRecordId"),
        sandbox_id=_str(obj, "sandboxId"),
        harness=_str(obj, "harness"),
        branch=RunBranch(
            base=_str(branch_obj, "base"),
            working=_str(branch_obj, "working"),
            create_branch=_bool(branch_obj, "createBranch"),
        ),
        root_directory=_str(obj, "rootDirectory"),
        events_url=_str(obj, "eventsUrl"),
        created_at=_time(obj, "createdAt"),
        updated_at=_time(obj, "updatedAt"),
        error=_str(obj, "error"),
        runtime_provider=_str(runtime_obj, "provider"),
        runtime_run_id=_str(runtime_obj, "runId"),
    )


def parse_run(data: object) -> RunDetail:
    """The ``data`` of ``GET /runs/{id}``: ``{"run": RunDetail}``."""
    return parse_run_detail(_object(data, "a run response").get("run"))


@dataclass(frozen=True)
class RunEvent:
    """One event of a run. ``message`` and ``tool_name`` are agent-written and unsanitised."""

    id: str
    type: str
    tool_name: str | None = None
    message: str | None = None
    payload: JSONObject = field(default_factory=dict)
    created_at: datetime | None = None

    def to_dict(self) -> JSONObject:
        return {
            "id": self.id,
            "type": self.type,
            "tool_name": self.tool_name,
            "message": self.message,
            "payload": self.payload,
            "created_at": _iso(self.created_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            id=_required_str(data, "id", "a stored event"),
            type=_required_str(data, "type", "a stored event"),
            tool_name=_str(data, "tool_name"),
            message=_str(data, "message"),
            payload=_payload(data, "payload"),
            created_at=_time(data, "created_at"),
        )


def parse_run_event(value: object) -> RunEvent:
    """One entry of ``events`` in ``GET /runs/{id}/events``."""
    obj = _object(value, "a run event")
    return RunEvent(
        id=_required_str(obj, "id", "a run event").lower(),
        type=_required_str(obj, "type", "a run event"),
        tool_name=_str(obj, "toolName"),
        message=_str(obj, "message"),
        payload=_payload(obj, "payload"),
        created_at=_time(obj, "createdAt"),
    )


@dataclass(frozen=True)
class RunEvents:
    """``GET /runs/{id}/events``: the run's state and its first events (oldest first, at most 200).

    ``server_date`` is the response's HTTP ``Date``, for estimating upstream's clock skew.
    """

    run: RunDetail
    events: tuple[RunEvent, ...] = ()
    server_date: datetime | None = None

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

    def truncated(self, limit: int) -> bool:
        """Whether the feed hit ``limit``: events after that are invisible through v1."""
        return len(self.events) == limit

    def to_dict(self) -> JSONObject:
        return {
            "run": self.run.to_dict(),
            "events": [event.to_dict() for event in self.events],
            "server_date": _iso(self.server_date),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            run=RunDetail.from_dict(_object(data.get("run"), "a stored run")),
            events=tuple(
                RunEvent.from_dict(_object(item, "a stored event")) for item in data.get("events") or ()
            ),
            server_date=_time(data, "server_date"),
        )


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
        detail = RunDetail(
            run_id=record_id(run, "runId") or "", status=UNREADABLE, error=unreadable_sentence("run", exc)
        )
    return RunEvents(
        run=detail,
        events=tuple(_event_or_placeholder(item, index) for index, item in enumerate(events)),
        server_date=server_date,
    )


def _event_or_placeholder(value: object, index: int) -> RunEvent:
    try:
        return parse_run_event(value)
    except RecordShapeError as exc:
        created_at = _time(value, "createdAt") if isinstance(value, Mapping) else None
        # Events are oldest first and capped, so an id-less one keeps its position as its id.
        return RunEvent(
            id=record_id(value, "id") or f"unreadable-{index}",
            type=UNREADABLE,
            message=unreadable_sentence("event", exc),
            created_at=created_at,
        )


# -- models and agents ------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """An AI model the user may run with; prices are USD per token."""

    id: str
    provider: str | None = None
    name: str | None = None
    context_length: int | None = None
    capabilities: tuple[str, ...] = ()
    pricing_input: float | None = None
    pricing_output: float | None = None

    def to_dict(self) -> JSONObject:
        return {
            "id": self.id,
            "provider": self.provider,
            "name": self.name,
            "context_length": self.context_length,
            "capabilities": list(self.capabilities),
            "pricing_input": self.pricing_input,
            "pricing_output": self.pricing_output,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            id=_required_str(data, "id", "a stored model"),
            provider=_str(data, "provider"),
            name=_str(data, "name"),
            context_length=_int(data, "context_length"),
            capabilities=_strings(data, "capabilities"),
            pricing_input=_float(data, "pricing_input"),
            pricing_output=_float(data, "pricing_output"),
        )


def parse_model(value: object) -> Model:
    """One entry of ``GET /models``; ``id`` is an opaque string, not a UUID."""
    obj = _object(value, "a model")
    pricing = obj.get("pricing")
    pricing_obj: Mapping[str, Any] = pricing if isinstance(pricing, Mapping) else {}
    return Model(
        id=_required_str(obj, "id", "a model"),
        provider=_str(obj, "provider"),
        name=_str(obj, "name"),
        context_length=_int(obj, "contextLength"),
        capabilities=_strings(obj, "capabilities"),
        pricing_input=_float(pricing_obj, "input"),
        pricing_output=_float(pricing_obj, "output"),
    )


def parse_models(data: object) -> tuple[Model, ...]:
    """The ``data`` of ``GET /models``: ``{"models": [...]}`` (the board only counts them; unreadable ones are left out)."""
    return _readable(parse_model, _list(_object(data, "models"), "models", "the model list"))


@dataclass(frozen=True)
class Agent:
    """An agent definition: a preset (``id`` is ``preset:<name>``) or one of the user's own."""

    id: str
    name: str | None = None
    model: str | None = None
    slug: str | None = None
    description: str | None = None
    category: str | None = None
    preset: bool | None = None

    def to_dict(self) -> JSONObject:
        return {
            "id": self.id,
            "name": self.name,
            "model": self.model,
            "slug": self.slug,
            "description": self.description,
            "category": self.category,
            "preset": self.preset,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            id=_required_str(data, "id", "a stored agent"),
            name=_str(data, "name"),
            model=_str(data, "model"),
            slug=_str(data, "slug"),
            description=_str(data, "description"),
            category=_str(data, "category"),
            preset=_bool(data, "preset"),
        )


def parse_agent(value: object) -> Agent:
    """One entry of ``GET /agents``."""
    obj = _object(value, "an agent")
    return Agent(
        id=_required_str(obj, "id", "an agent"),
        name=_str(obj, "name"),
        model=_str(obj, "model"),
        slug=_str(obj, "slug"),
        description=_str(obj, "description"),
        category=_str(obj, "category"),
        preset=_bool(obj, "preset"),
    )


def parse_agents(data: object) -> tuple[Agent, ...]:
    """The ``data`` of ``GET /agents``: ``{"agents": [...]}``."""
    return tuple(parse_agent(item) for item in _list(_object(data, "agents"), "agents", "the agent list"))


# -- the account ------------------------------------------------------------------


@dataclass(frozen=True)
class AccountUser:
    """Who a PAT belongs to (``GET /api/auth/user``); every field may be missing."""

    id: str | None = None
    email: str | None = None
    username: str | None = None
    name: str | None = None
    github_username: str | None = None
    github_state: str | None = None
    github_status_label: str | None = None
    allow_platform_ai: bool | None = None
    allow_platform_sandbox: bool | None = None

    def to_dict(self) -> JSONObject:
        return {
            "id": self.id,
            "email": self.email,
            "username": self.username,
            "name": self.name,
            "github_username": self.github_username,
            "github_state": self.github_state,
            "github_status_label": self.github_status_label,
            "allow_platform_ai": self.allow_platform_ai,
            "allow_platform_sandbox": self.allow_platform_sandbox,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            id=_str(data, "id"),
            email=_str(data, "email"),
            username=_str(data, "username"),
            name=_str(data, "name"),
            github_username=_str(data, "github_username"),
            github_state=_str(data, "github_state"),
            github_status_label=_str(data, "github_status_label"),
            allow_platform_ai=_bool(data, "allow_platform_ai"),
            allow_platform_sandbox=_bool(data, "allow_platform_sandbox"),
        )


def parse_account_user(value: object) -> AccountUser:
    """The ``user`` object of ``GET /api/auth/user``."""
    obj = _object(value, "a user")
    access = obj.get("platform_access")
    access_obj: Mapping[str, Any] = access if isinstance(access, Mapping) else {}
    return AccountUser(
        id=_id(obj, "id"),
        email=_str(obj, "email"),
        username=_str(obj, "username"),
        name=_str(obj, "name"),
        github_username=_str(obj, "github_username"),
        github_state=_str(obj, "github_state"),
        github_status_label=_str(obj, "github_status_label"),
        allow_platform_ai=_bool(access_obj, "allowPlatformAi"),
        allow_platform_sandbox=_bool(access_obj, "allowPlatformSandbox"),
    )


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
