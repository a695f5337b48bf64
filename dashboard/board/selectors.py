"""Selectors: the composed board snapshot turned into what a page shows.

Everything here reads snapshots only (never upstream) and holds the board's
display rules: which runs are active, which need attention, how old each panel's
data is and whether that is too old to be shown as fresh. Views call these and
render; templates format.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings

from dashboard import snapshots
from dashboard.board import unreadable

JSON = dict[str, Any]

ACTIVE_RUN_STATUSES = frozenset({"pending", "streaming"})
FAILED_RUN_STATUSES = frozenset({"failed"})
TERMINAL_RUN_STATUSES = frozenset({"success", "failed", "cancelled"})
# Runs the poller no longer fetches: finished, or no source owns them any more.
ENDED_RUN_STATUSES = TERMINAL_RUN_STATUSES | {"not_found"}
SANDBOX_UP_STATUSES = frozenset({"creating", "installing", "running", "pausing"})
SANDBOX_STATUSES = SANDBOX_UP_STATUSES | {"stopped", "paused", "error"}
# Every run status the board knows (contract section 7) and its own words for runs;
# any other status is shown as "unknown (<status>)" and counted as neither active nor finished.
KNOWN_RUN_STATUSES = (
    ACTIVE_RUN_STATUSES | TERMINAL_RUN_STATUSES | {"not_found", "unknown", unreadable.UNREADABLE}
)
KNOWN_SANDBOX_STATUSES = SANDBOX_STATUSES | {"unknown", unreadable.UNREADABLE}
# Source states that an operator must fix; each is an item of the attention lane.
LANE_SOURCE_STATES = frozenset({"unauthorized", "forbidden", "redirect"})
# Sandboxes that are not doing anything: counted, not listed (unless the viewer asks for them).
SANDBOX_FOLDED_STATUSES = ("paused", "stopped")

PANELS = ("runs", "sandboxes", "sources")
# Source states whose data is being refreshed; any other state is a failing source.
HEALTHY_SOURCE_STATES = frozenset({"ok", "unknown", None})
# The longest value a filter (repo, status, search) takes.
FILTER_MAX_CHARS = 200

# The icon (a symbol of static/board/icons.svg) of every status; always shown beside its word,
# so status never rests on colour alone.
STATUS_ICONS = {
    "pending": "pending",
    "streaming": "streaming",
    "success": "success",
    "failed": "failed",
    "cancelled": "cancelled",
    "creating": "creating",
    "installing": "installing",
    "running": "running",
    "pausing": "pausing",
    "paused": "paused",
    "stopped": "stopped",
    "error": "error",
    "ok": "ok",
    "unknown": "unknown",
    "unauthorized": "unauthorized",
    "forbidden": "forbidden",
    "rate_limited": "rate_limited",
    "unavailable": "unavailable",
    "timeout": "timeout",
    "protocol": "protocol",
    "redirect": "redirect",
    unreadable.UNREADABLE: "unreadable",
}
# The colour family of each status (CSS class `tone-<tone>`).
STATUS_TONES = {
    "pending": "wait",
    "streaming": "live",
    "running": "live",
    "creating": "wait",
    "installing": "wait",
    "pausing": "wait",
    "success": "good",
    "ok": "good",
    "failed": "bad",
    "error": "bad",
    "unauthorized": "bad",
    "forbidden": "bad",
    "unavailable": "bad",
    "protocol": "bad",
    "redirect": "bad",
    "rate_limited": "warn",
    "timeout": "warn",
    "cancelled": "idle",
    "stopped": "idle",
    "paused": "idle",
    "unknown": "idle",
    unreadable.UNREADABLE: "bad",
}

# The dashboard's one line about automations, worst first.
AUTOMATION_HEALTH_WORDS = (
    ("needs_attention", "need attention"),
    ("healthy", "healthy"),
    ("no_activity", "no activity"),
    (None, "not fetched yet"),
)

SORTS = {
    "tracked": "newest tracked first",
    "updated": "recently updated first",
    "repo": "repository",
    "status": "status",
}


def to_epoch(value: Any) -> float | None:
    """Our epoch floats pass through; upstream ISO strings are parsed; anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return None


def _when(value: Any) -> float:
    """A sort key for a time of either kind; unknown times sort as oldest."""
    epoch = to_epoch(value)
    return 0.0 if epoch is None else epoch


def status_icon(status: str) -> str:
    return STATUS_ICONS.get(status, "unknown")


def status_tone(status: str) -> str:
    return STATUS_TONES.get(status, "idle")


@cache
def _computed_app_version() -> str:
    """A hash of the templates and static files: a deploy that changes them changes it."""
    digest = hashlib.blake2b(digest_size=6)
    base = Path(settings.BASE_DIR)
    for folder in ("templates", "static/board"):
        for path in sorted((base / folder).rglob("*")):
            if path.is_file():
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def app_version() -> str:
    """The version of the page code; a page that sees another one reloads itself."""
    configured: str = getattr(settings, "BOARD_APP_VERSION", "")
    return configured or _computed_app_version()


@dataclass(frozen=True)
class Freshness:
    """How old one panel's data is, and whether that is too old to show as fresh.

    ``key`` names it in the fetch times an unchanged poll answers with
    (``board_fetched``, the ``X-Board-Fetched`` header), so that the page can
    advance its badge without a re-render; "" for a datum no poll updates.
    """

    fetched_at: float | None
    age: float | None
    stale: bool
    key: str = ""

    @property
    def never(self) -> bool:
        return self.fetched_at is None


def freshness(fetched_at: float | None, now: float, *, key: str = "") -> Freshness:
    if fetched_at is None:
        return Freshness(None, None, True, key)
    age = max(0.0, now - fetched_at)
    return Freshness(fetched_at, age, age > settings.BOARD_STALE_SECONDS, key)


def freshness_json(fresh: Freshness) -> JSON:
    """A ``Freshness`` as ``board.json`` and ``board --json`` give it."""
    return {"fetched_at": fresh.fetched_at, "age_seconds": fresh.age, "stale": fresh.stale}


@dataclass(frozen=True)
class PollerHealth:
    heartbeat_at: float | None
    age: float | None
    stale: bool


def poller_health(heartbeat_at: float | None, now: float) -> PollerHealth:
    if heartbeat_at is None:
        return PollerHealth(None, None, True)
    age = max(0.0, now - heartbeat_at)
    return PollerHealth(heartbeat_at, age, age > settings.BOARD_STALE_SECONDS)


@dataclass
class BoardFilters:
    """What the viewer asked to see; all optional."""

    repos: tuple[str, ...] = ()
    status: str = ""
    sources: tuple[str, ...] = ()
    search: str = ""
    sort: str = "tracked"


@dataclass(frozen=True)
class LaneItem:
    """One thing in the attention lane (or, resolved, below it).

    ``kind`` is ``run``, ``sandbox``, ``job_run`` (an automation's) or ``source``;
    ``row`` the run, sandbox or job run row, or the source's health; ``problem``
    what is wrong (``failed``, ``stalled``, ``error``, or the source's state); ``began_at`` when it began
    (epoch seconds, None when unknown); ``reason`` one line saying why.
    """

    kind: str
    problem: str
    began_at: float | None
    row: JSON
    reason: str
    resolution: JSON | None = None

    @property
    def sig(self) -> str:
        return str(self.row.get("sig") or "")

    @property
    def target_id(self) -> str:
        """The run's or sandbox's id ("" for a source): what an acknowledgement names."""
        if self.kind == "source":
            return ""
        return str(self.row.get("run_id" if self.kind == "run" else "id") or "")

    @property
    def what(self) -> str:
        """What it is, in a word or two, before its repo: "sandbox", "automation <name>", or nothing for a run."""
        if self.kind == "sandbox":
            return "sandbox"
        if self.kind == "job_run":
            return (
                f"automation {self.row.get('automation_name') or self.row.get('automation_id') or ''}".strip()
            )
        return ""

    @property
    def dom_id(self) -> str:
        if self.kind == "source":
            return f"source-{self.row.get('name')}"
        return f"{self.kind}-{self.target_id}"


@dataclass
class BoardState:
    """The board as a page shows it: rows split by purpose, plus freshness per panel."""

    now: float
    version: str | None
    composed_at: float | None
    poller: PollerHealth
    active_runs: list[JSON]
    finished_runs: list[JSON]
    attention: list[LaneItem]
    sandboxes: list[JSON]
    sources: list[JSON]
    panels: dict[str, Freshness]
    repos: list[str]
    statuses: list[str]
    empty: bool
    problem_sources: list[JSON] = field(default_factory=list)
    # How fresh each source's data is (its live runs and its sandbox list), by source name.
    source_freshness: dict[str, Freshness] = field(default_factory=dict)
    source_names: list[str] = field(default_factory=list)
    # The sandboxes panel's rows: paused and stopped ones are folded into ``sandboxes_folded``.
    sandbox_rows: list[JSON] = field(default_factory=list)
    sandboxes_folded: dict[str, int] = field(default_factory=dict)
    # Active sandboxes that no tracked run points at (``sandbox_record_id``).
    untracked_sandboxes: list[JSON] = field(default_factory=list)

    @property
    def stale_sources(self) -> list[str]:
        """The sources whose data is too old to show as fresh (their rows say STALE), in order."""
        return [name for name, f in self.source_freshness.items() if f.stale]

    # Resolved problems, newest resolution first (dimmed on the wall, with why).
    resolved: list[LaneItem] = field(default_factory=list)
    # Repos with an unresolved failed run: (repo, when its first unresolved failure ended).
    failing_since: list[tuple[str, float | None]] = field(default_factory=list)
    # Runs in a status the board does not know: neither active nor finished.
    unknown_runs: list[JSON] = field(default_factory=list)
    # When the first failure in the lane leaves it (BOARD_ATTENTION_HOURS); 0: none will.
    lane_expires_at: float = 0.0
    # Tracked runs no source has claimed yet: not running, only being looked up (one collapsed line).
    looking_up: int = 0
    # Each source's automations with their health and newest job runs (the automations page).
    automations: list[JSON] = field(default_factory=list)
    # Job runs that may need attention (failed or pending), as rows.
    job_runs: list[JSON] = field(default_factory=list)

    @property
    def automation_health(self) -> list[tuple[str, int]]:
        """How many automations are in each health class, worst first (classes with none left out)."""
        counts = Counter(a.get("health") for a in self.automations)
        return [(word, counts[key]) for key, word in AUTOMATION_HEALTH_WORDS if counts[key]]

    @property
    def automations_needing_attention(self) -> list[JSON]:
        return [a for a in self.automations if a.get("health") == "needs_attention"]

    @property
    def stale_flags(self) -> str:
        """One letter per panel (and the poller): ``s`` stale, ``f`` fresh."""
        flags = [self.panels[p].stale for p in PANELS] + [self.poller.stale]
        flags += [f.stale for f in self.source_freshness.values()]
        return "".join("s" if f else "f" for f in flags)

    @property
    def flips_at(self) -> int:
        """The earliest epoch second at which a fresh panel would turn stale (0: none would)."""
        times = [
            f.fetched_at + settings.BOARD_STALE_SECONDS
            for f in [*self.panels.values(), *self.source_freshness.values()]
            if not f.stale and f.fetched_at is not None
        ]
        if not self.poller.stale and self.poller.heartbeat_at is not None:
            times.append(self.poller.heartbeat_at + settings.BOARD_STALE_SECONDS)
        if self.lane_expires_at:
            times.append(self.lane_expires_at)
        return int(min(times)) + 1 if times else 0

    @property
    def page_version(self) -> str:
        """What the page says it shows: board content, stale/fresh flags, next flip time."""
        return f"{self.version or 'none'}.{self.stale_flags}.{self.flips_at}"

    @property
    def health(self) -> str:
        """The board's state for scripts (``state`` in ``board.json`` and ``board --json``).

        ``poller_down`` (no board, or the poller's heartbeat is stale: nothing is
        fresh), else ``attention`` (something needs someone, even if some data is
        old), else ``stale`` (a panel or a source is too old, or a source is
        failing), else ``ok``.
        """
        if self.empty or self.poller.stale:
            return "poller_down"
        if self.attention:
            return "attention"
        if any(f.stale for f in self.panels.values()) or self.problem_sources or self.stale_sources:
            return "stale"
        return "ok"

    @property
    def stale(self) -> bool:
        """Whether any part of the board is too old to be shown as fresh (or was never fetched)."""
        return (
            self.empty
            or self.poller.stale
            or any(f.stale for f in self.panels.values())
            or bool(self.stale_sources)
        )

    @property
    def data_fetched_at(self) -> float | None:
        """When the oldest stale part of the board was fetched (None: never, or nothing is stale)."""
        times = [f.fetched_at for f in self.panels.values() if f.stale]
        times += [f.fetched_at for f in self.source_freshness.values() if f.stale]
        if self.poller.stale:
            times.append(self.poller.heartbeat_at)
        known = [t for t in times if t is not None]
        return min(known) if known and len(known) == len(times) else None

    @property
    def overall(self) -> str:
        """One word for the tab title and favicon: attention, stale, active or clear.

        Attention wins over stale (the headline then says both); a stale board is
        never "clear".
        """
        if self.attention:
            return "attention"
        if self.stale:
            return "stale"
        if self.active_runs:
            return "active"
        return "clear"


# Every key a template may name, so that a record missing one (upstream is tolerant,
# so are we) renders as empty instead of failing a filter-argument lookup.
RUN_KEYS = ["run_id", *unreadable.RUN_FIELDS]
EVENT_KEYS = ("id", "type", "tool_name", "message", "payload", "created_at")
SANDBOX_KEYS = list(unreadable.SANDBOX_FIELDS)
SOURCE_KEYS = [
    "name",
    "state",
    "message",
    "last_success_at",
    "last_error_at",
    "last_error_kind",
    "paused_until",
    "next_try_at",
    "denied_endpoints",
    "budget",
    "budget_used",
    "window_seconds",
    "effective_interval_seconds",
    "active_runs",
    "lookups_waiting",
    "lookup_share_percent",
    "automations_interval_seconds",
]
RUN_DETAIL_KEYS = [
    "run_id",
    "status",
    "repo_id",
    "sandbox_record_id",
    "sandbox_id",
    "harness",
    "branch",
    "created_at",
    "updated_at",
    "error",
]


def with_keys(record: Any, keys: Iterable[str]) -> JSON:
    """A copy of ``record`` (any JSON value) as a dict holding at least ``keys``."""
    row: JSON = dict(record) if isinstance(record, dict) else {}
    for key in keys:
        row.setdefault(key, None)
    return row


def run_detail_shape(run: Any) -> JSON:
    """A stored RunDetail with every key the run page names (``branch`` always a dict)."""
    row = with_keys(run, RUN_DETAIL_KEYS)
    row["branch"] = with_keys(row["branch"], ("base", "working"))
    return row


def event_shape(event: Any) -> JSON:
    return with_keys(event, EVENT_KEYS)


def _run_status(run: JSON) -> str:
    return str(run.get("status") or ("unknown" if run.get("lookup") != "not_found" else "not_found"))


def stall_reason(run: JSON) -> str | None:
    """Why a run seems stalled ("no event for 17 min"), or None.

    The poller's ``stall_reason`` when it gives one; else the hard rule: no
    ``updatedAt`` change for 6 hours (``possibly_stale``).
    """
    reason = run.get("stall_reason")
    if isinstance(reason, str) and reason:
        return reason
    if run.get("possibly_stale") is True:
        return "no update for over 6 hours"
    return None


def run_problem(row: JSON) -> str | None:
    """What is wrong with a run: ``failed``, ``stalled`` or None. An unknown status alone is no problem."""
    if row.get("status") in FAILED_RUN_STATUSES:
        return "failed"
    if row.get("status") not in TERMINAL_RUN_STATUSES and stall_reason(row) is not None:
        return "stalled"
    return None


def problem_resolution(row: JSON, problem: str | None) -> JSON | None:
    """How a problem was resolved: ``{how: "acknowledged", by, at, note}`` or ``{how: "fixed", run_id,
    after_seconds, at}``; None while it is not (or there is no problem)."""
    if problem is None:
        return None
    acks = row.get("acknowledged")
    for ack in acks if isinstance(acks, list) else []:
        if isinstance(ack, dict) and ack.get("problem") == problem:
            return {
                "how": "acknowledged",
                "by": str(ack.get("by") or ""),
                "at": ack.get("at"),
                "note": str(ack.get("note") or ""),
            }
    fixed = row.get("fixed_by")
    if problem != "failed" or not isinstance(fixed, dict):
        return None
    # A later success: an agent run, or for a job run a later job run of the same automation
    # (a job-run id, never an agent run's).
    key = "job_run_id" if fixed.get("job_run_id") else "run_id"
    if not fixed.get(key):
        return None
    return {
        "how": "fixed",
        key: str(fixed[key]),
        "after_seconds": fixed.get("after_seconds"),
        "at": fixed.get("at"),
    }


JOB_RUN_KEYS = (
    "id",
    "source",
    "automation_id",
    "automation_name",
    "status",
    "repo_id",
    "repo_name",
    "source_type",
    "created_at",
    "started_at",
    "completed_at",
    "duration_ms",
    "error",
    "fetched_at",
    "pending_too_long",
    "acknowledged",
    "fixed_by",
)


def job_run_problem(row: JSON) -> str | None:
    """What is wrong with an automation's job run: ``failed``, ``stalled`` (pending over 2 min, as the
    poller found it when it composed the board) or None."""
    if row.get("status") == "failed":
        return "failed"
    if row.get("status") == "pending" and row.get("pending_too_long") is True:
        return "stalled"
    return None


def _job_run_row(job_run: Any) -> JSON:
    row = with_keys(job_run, JOB_RUN_KEYS)
    row["sig"] = row.get("sig") or snapshots.content_version(row)
    row["status"] = str(row.get("status") or "unknown")
    row["problem"] = job_run_problem(row)
    row["resolution"] = problem_resolution(row, row["problem"])
    row["needs_attention"] = row["problem"] is not None and row["resolution"] is None
    return row


def run_ended_at(row: JSON) -> float | None:
    """When a finished run ended: the board's ``finished_at``, else upstream's ``updated_at``."""
    return to_epoch(row.get("finished_at")) or to_epoch(row.get("updated_at"))


def _lane_item(row: JSON, kind: str) -> LaneItem:
    problem = str(row["problem"])
    if kind == "sandbox":
        began = to_epoch(row.get("last_active_at")) or to_epoch(row.get("created_at"))
        reason = str(row.get("error") or "The sandbox is in error.")
    elif kind == "job_run" and problem == "failed":
        began = to_epoch(row.get("completed_at")) or to_epoch(row.get("created_at"))
        reason = str(row.get("error") or "The job run failed.")
    elif kind == "job_run":
        began = to_epoch(row.get("created_at"))
        reason = "waiting to start for over 2 min"
    elif problem == "failed":
        began = run_ended_at(row)
        # One plain reason from the failure code; the upstream sentence is shown beside it.
        reason = str(row.get("failure_reason") or row.get("error") or "The run failed.")
    else:
        latest = row.get("latest_event") or {}
        began = to_epoch(latest.get("created_at")) or to_epoch(row.get("updated_at"))
        reason = stall_reason(row) or "stalled"
    return LaneItem(kind, problem, began, row, reason, row.get("resolution"))


def _source_item(source: JSON) -> LaneItem:
    # The problem began after the last success; a source that never succeeded, at its first error.
    began = to_epoch(source.get("last_success_at")) or to_epoch(source.get("last_error_at"))
    return LaneItem("source", str(source.get("state")), began, source, str(source.get("message") or ""))


def _in_window(item: LaneItem, now: float) -> bool:
    """Failures (runs and sandboxes) leave the lane ``BOARD_ATTENTION_HOURS`` after they began."""
    if item.problem not in ("failed", "error") or item.began_at is None:
        return True
    return now - item.began_at <= settings.BOARD_ATTENTION_HOURS * 3600


def attention_lane(
    runs: list[JSON],
    sandboxes: list[JSON],
    sources: list[JSON],
    now: float,
    job_runs: Iterable[JSON] = (),
) -> tuple[list[LaneItem], list[LaneItem], float]:
    """The lane (unresolved, newest problem first), the resolved items, and when the lane next changes by itself.

    The lane holds failed and stalled runs, errored sandboxes, automations' failed
    job runs and job runs pending over 2 min, and sources an operator must fix; a
    failure leaves it ``BOARD_ATTENTION_HOURS`` after it ended, resolved or not.
    The third value is the epoch second at which the first failure in the lane
    leaves it (0.0: none will).
    """
    items = [_lane_item(r, "run") for r in runs if r.get("problem") and not r.get("unreadable")]
    items += [_lane_item(s, "sandbox") for s in sandboxes if s.get("problem") and not s.get("unreadable")]
    items += [_lane_item(j, "job_run") for j in job_runs if j.get("problem")]
    items = [i for i in items if _in_window(i, now)]
    lane = [i for i in items if i.resolution is None]
    lane += [_source_item(s) for s in sources if s.get("state") in LANE_SOURCE_STATES]
    lane.sort(key=lambda i: i.began_at or 0.0, reverse=True)
    resolved = [i for i in items if i.resolution is not None]
    resolved.sort(key=lambda i: to_epoch((i.resolution or {}).get("at")) or 0.0, reverse=True)
    expiries = [
        i.began_at + settings.BOARD_ATTENTION_HOURS * 3600
        for i in lane
        if i.problem in ("failed", "error") and i.began_at is not None
    ]
    return lane, resolved, min(expiries) if expiries else 0.0


def failing_since(lane: list[LaneItem]) -> list[tuple[str, float | None]]:
    """Each repo with an unresolved failed run, and when its first unresolved failure ended; reddest first."""
    since: dict[str, float | None] = {}
    for item in lane:
        if item.kind != "run" or item.problem != "failed":
            continue
        repo = str(item.row.get("repo_name") or item.row.get("repo_id") or "(repo unknown)")
        known = [t for t in (since.get(repo), item.began_at) if t is not None]
        since[repo] = min(known) if known else None
    return sorted(since.items(), key=lambda kv: (kv[1] is None, kv[1] or 0.0))


def _being_looked_up(row: JSON) -> bool:
    """A tracked run no source has claimed yet (and no status seen): shown as "being looked up", not running."""
    return row.get("lookup") == "new" and not row.get("source") and row.get("status") in ("unknown", "")


def _run_row(run: Any, now: float) -> JSON:
    """A composed run as a page shows it; a run that cannot be shown becomes one row that says so."""
    problem = unreadable.run_row_problem(run)
    if problem is not None:
        row = unreadable.placeholder(run, id_key="run_id", what="run", problem=problem, keys=RUN_KEYS)
        row.update(needs_attention=False, status_known=True, problem=None, resolution=None)
        return row
    row = with_keys(run, RUN_KEYS)
    if row["latest_event"] is not None:
        row["latest_event"] = event_shape(row["latest_event"])
    row["freshness"] = freshness(run.get("fetched_at"), now)
    row["sig"] = run.get("sig") or snapshots.content_version(run)
    row["status"] = _run_status(run)
    row["status_known"] = row["status"] in KNOWN_RUN_STATUSES
    row["problem"] = run_problem(row)
    row["resolution"] = problem_resolution(row, row["problem"])
    row["needs_attention"] = row["problem"] is not None and row["resolution"] is None
    # The poller's placeholder for a run Mogplex sent in a shape it cannot read.
    row["unreadable"] = (
        (row["error"] or "Mogplex sent it in a shape the board cannot read.")
        if row["status"] == unreadable.UNREADABLE
        else None
    )
    return row


def _sandbox_row(sandbox: Any, now: float) -> JSON:
    """A composed sandbox as a page shows it; one that cannot be shown becomes one row that says so."""
    problem = unreadable.sandbox_row_problem(sandbox)
    if problem is not None:
        row = unreadable.placeholder(sandbox, id_key="id", what="sandbox", problem=problem, keys=SANDBOX_KEYS)
        row.update(status_known=True, problem=None, resolution=None)
        return row
    row = with_keys(sandbox, SANDBOX_KEYS)
    row["sig"] = sandbox.get("sig") or snapshots.content_version(sandbox)
    row["status"] = str(sandbox.get("status") or "unknown")
    row["status_known"] = row["status"] in KNOWN_SANDBOX_STATUSES
    row["problem"] = "error" if row["status"] == "error" else None
    row["resolution"] = problem_resolution(row, row["problem"])
    row["untracked"] = row["status"] in SANDBOX_UP_STATUSES and not row["tracked_run_id"]
    row["unreadable"] = (
        (row["error"] or "Mogplex sent it in a shape the board cannot read.")
        if row["status"] == unreadable.UNREADABLE
        else None
    )
    return row


def _matches(row: JSON, filters: BoardFilters, repo_key: str) -> bool:
    if filters.repos and (row.get(repo_key) or "") not in filters.repos:
        return False
    if filters.status and row.get("status") != filters.status:
        return False
    if filters.sources and (row.get("source") or "") not in filters.sources:
        return False
    if filters.search:
        needle = filters.search.lower()
        haystack = " ".join(str(v) for v in row.values() if isinstance(v, str)).lower()
        latest = row.get("latest_event") or {}
        haystack += " " + " ".join(str(v) for v in latest.values() if isinstance(v, str)).lower()
        if needle not in haystack:
            return False
    return True


def _sort_runs(rows: list[JSON], sort: str) -> list[JSON]:
    # Stable order first (tracked_at, then id) so rows keep their positions between refreshes.
    rows = sorted(rows, key=lambda r: (_when(r.get("tracked_at")), str(r.get("run_id"))), reverse=True)
    if sort == "updated":
        rows.sort(key=lambda r: _when(r.get("updated_at")), reverse=True)
    elif sort == "repo":
        rows.sort(key=lambda r: str(r.get("repo_name") or r.get("repo_id") or "").lower())
    elif sort == "status":
        rows.sort(key=lambda r: str(r.get("status")))
    return rows


def _panel_fetched_at(values: Iterable[Any]) -> float | None:
    """A panel is as old as its oldest part; ``None`` when nothing was ever fetched."""
    present = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return min(present) if present else None


def board_fetched(board: JSON) -> dict[str, float | None]:
    """When the data behind each freshness badge of the board was fetched: ``{key: epoch | None}``.

    The one place these times are computed. ``board_state`` turns them into each
    panel's ``Freshness``; the poller stores them beside the composed board
    (``snapshots.board_write``), where an unchanged poll reads them in its one
    round trip and hands them to the page (``X-Board-Fetched``): the board's
    version ignores fetch times, so without them a quiet board's badges would
    count from the last change rather than the last fetch.
    """
    runs = [r for r in board.get("runs", []) if isinstance(r, dict)]
    sources = [s for s in board.get("sources", []) if isinstance(s, dict)]
    # A failing source marks only its own rows STALE (through "source:<name>"); the
    # panels are as fresh as the healthy sources' data, or everyone's when all fail.
    failing = {s.get("name") for s in sources if s.get("state") not in HEALTHY_SOURCE_STATES}
    # Ended runs are never fetched again, so only live runs say how fresh the panel is;
    # with none live, the board's composition time does (the run list itself is current).
    # A row that could not be read says so itself, and costs the panel nothing.
    live = [
        r
        for r in runs
        if unreadable.run_row_problem(r) is None
        and _run_status(r) not in ENDED_RUN_STATUSES | {unreadable.UNREADABLE}
    ]
    live_fetched = [r.get("fetched_at") for r in (_healthy(live, failing) or live)]
    raw_sandboxes = board.get("sandboxes_fetched_at")
    sandboxes_fetched: dict[Any, Any] = raw_sandboxes if isinstance(raw_sandboxes, dict) else {}
    healthy_sandboxes = {k: v for k, v in sandboxes_fetched.items() if k not in failing} or sandboxes_fetched
    healthy_sources = [s for s in sources if s.get("name") not in failing] or sources
    fetched: dict[str, float | None] = {
        "runs": _panel_fetched_at(live_fetched)
        if live_fetched
        else _panel_fetched_at([board.get("composed_at")]),
        "sandboxes": _panel_fetched_at(healthy_sandboxes.values()),
        "sources": _panel_fetched_at(s.get("last_success_at") for s in healthy_sources) if sources else None,
    }
    live_by_source: dict[Any, list[Any]] = {}
    for run in live:
        live_by_source.setdefault(run.get("source"), []).append(run.get("fetched_at"))
    for source in sources:
        name = source.get("name")
        if not isinstance(name, str):
            continue
        # A source is as old as its oldest live part: its live runs and its sandbox list;
        # with neither, its last successful request.
        parts = [*live_by_source.get(name, []), sandboxes_fetched.get(name)]
        fetched[f"source:{name}"] = _panel_fetched_at(parts) or _panel_fetched_at(
            [source.get("last_success_at")]
        )
    return fetched


def _healthy(rows: list[JSON], failing: set[Any]) -> list[JSON]:
    return [r for r in rows if r.get("source") not in failing]


def board_state(
    filters: BoardFilters | None = None, *, now: float | None = None, board: JSON | None = None
) -> BoardState:
    """Read the composed board snapshot (or take ``board``, one already read) and shape it for a page."""
    filters = filters or BoardFilters()
    now = time.time() if now is None else now
    board = (snapshots.board_read() or {}) if board is None else board
    heartbeat = snapshots.heartbeat_read()
    if heartbeat is None:
        heartbeat = board.get("heartbeat_at")

    runs = [_run_row(r, now) for r in board.get("runs", [])]
    sandboxes = [_sandbox_row(s, now) for s in board.get("sandboxes", [])]
    sources = [with_keys(s, SOURCE_KEYS) for s in board.get("sources", [])]

    # Filter choices: a name no filter can take (too long, a null byte) shows in its row, not offered.
    repos = sorted(
        name
        for name in {str(r.get("repo_name") or "") for r in runs}
        | {str(s.get("repo_name") or "") for s in sandboxes}
        if 0 < len(name) <= FILTER_MAX_CHARS and "\x00" not in name
    )
    statuses = sorted(
        name
        for name in {str(r["status"]) for r in runs} | {str(s["status"]) for s in sandboxes}
        if len(name) <= FILTER_MAX_CHARS and "\x00" not in name
    )

    shown_runs = _sort_runs([r for r in runs if _matches(r, filters, "repo_name")], filters.sort)
    # Not yet fetched ("unknown") and unreadable runs stay with the active ones, as before;
    # a status Mogplex sent that the board does not know is neither active nor finished.
    # A run no source has claimed yet is only being looked up: one collapsed line, not a row.
    looking_up = [r for r in shown_runs if _being_looked_up(r)]
    active = [
        r
        for r in shown_runs
        if r["status_known"] and r["status"] not in ENDED_RUN_STATUSES and not _being_looked_up(r)
    ]
    unknown = [r for r in shown_runs if not r["status_known"]]
    finished = [r for r in shown_runs if r["status"] in ENDED_RUN_STATUSES]
    # Unresolved failures first among the finished, most recently finished next.
    finished.sort(key=lambda r: _when(r.get("finished_at") or r.get("updated_at")), reverse=True)
    finished.sort(key=lambda r: not (r["status"] in FAILED_RUN_STATUSES and r["resolution"] is None))

    shown_sandboxes = [s for s in sandboxes if _matches(s, filters, "repo_name")]
    shown_sandboxes.sort(key=lambda s: (s["status"] not in SANDBOX_UP_STATUSES, str(s.get("id"))))
    job_runs = [_job_run_row(j) for j in board.get("job_runs", []) if isinstance(j, dict)]
    shown_job_runs = [j for j in job_runs if _matches(j, filters, "repo_name")]
    lane, resolved, lane_expires_at = attention_lane(
        shown_runs, shown_sandboxes, sources, now, shown_job_runs
    )
    # Folded unless the viewer filtered for that status, so they can still be listed.
    fold = [] if filters.status else SANDBOX_FOLDED_STATUSES
    sandbox_rows = [s for s in shown_sandboxes if s["status"] not in fold]
    folded = {status: sum(1 for s in shown_sandboxes if s["status"] == status) for status in fold}

    fetched = board_fetched(board)
    panels = {name: freshness(fetched.get(name), now, key=name) for name in PANELS}
    problems = [s for s in sources if s.get("state") not in ("ok", None)]
    source_fresh = {
        key.removeprefix("source:"): freshness(value, now, key=key)
        for key, value in fetched.items()
        if key.startswith("source:")
    }
    _rows_freshness(runs, sandboxes, source_fresh, now)
    for source in sources:
        fresh = source_fresh.get(str(source.get("name")))
        source["stale"] = fresh is not None and fresh.stale
    return BoardState(
        now=now,
        version=board.get("version"),
        composed_at=board.get("composed_at"),
        poller=poller_health(heartbeat, now),
        active_runs=active,
        finished_runs=finished,
        attention=lane,
        sandboxes=shown_sandboxes,
        sources=sources,
        panels=panels,
        repos=repos,
        statuses=statuses,
        empty=not board,
        problem_sources=problems,
        source_freshness=source_fresh,
        sandbox_rows=sandbox_rows,
        sandboxes_folded={status: n for status, n in folded.items() if n},
        untracked_sandboxes=[s for s in shown_sandboxes if s.get("untracked")],
        source_names=sorted(
            name
            for name in {str(s.get("name") or "") for s in sources}
            | {str(r.get("source") or "") for r in runs}
            | {str(b.get("source") or "") for b in sandboxes}
            if 0 < len(name) <= FILTER_MAX_CHARS and "\x00" not in name
        ),
        resolved=resolved,
        failing_since=failing_since(lane),
        unknown_runs=unknown,
        lane_expires_at=lane_expires_at,
        looking_up=len(looking_up),
        automations=[a for a in board.get("automations", []) if isinstance(a, dict)],
        job_runs=job_runs,
    )


def _rows_freshness(
    runs: list[JSON], sandboxes: list[JSON], source_fresh: dict[str, Freshness], now: float
) -> None:
    """Give each row its source's freshness: a failing source's rows say STALE, the others' stay fresh.

    An ended run's data is final (it is never fetched again), so it is never stale.
    A row of a source no longer configured is as old as its own fetch.
    """
    for row in [*runs, *sandboxes]:
        own = freshness(row.get("fetched_at"), now)
        if "run_id" in row and row.get("status") in ENDED_RUN_STATUSES:
            row["freshness"] = Freshness(own.fetched_at, own.age, False)
        else:
            row["freshness"] = source_fresh.get(str(row.get("source") or ""), own)


@dataclass(frozen=True)
class UnchangedPage:
    """What an unchanged poll answers with: no board, only how fresh the page's data now is.

    ``fetched`` is the JSON object of ``board_fetched`` as the poller stored it
    (``{}`` when none is stored), passed through unparsed.
    """

    fetched: str


def unchanged_page(sent: str, *, now: float | None = None) -> UnchangedPage | None:
    """An ``UnchangedPage`` when a page showing ``sent`` would render the same board now, else None.

    The cheap path of the refresh protocol: it reads the board version, the
    poller heartbeat and the fetch times only, in one round trip. When every
    panel the page shows is fresh and no panel can have crossed the stale
    threshold yet, an equal board version is enough. Otherwise (the page shows
    something stale, or a flip time has passed) it falls back to composing the
    state, which costs one more Redis read.
    """
    now = time.time() if now is None else now
    try:
        version, flags, flips = sent.split(".")
        flips_at = int(flips)
    except ValueError:
        return None
    current = snapshots.board_poll_read()
    if (current.version or "none") != version:
        return None
    unchanged = UnchangedPage(current.fetched or "{}")
    nothing_can_flip = "s" not in flags and (flips_at == 0 or now < flips_at)
    if nothing_can_flip and current.heartbeat is not None and not poller_health(current.heartbeat, now).stale:
        return unchanged
    return unchanged if board_state(now=now).page_version == sent else None
