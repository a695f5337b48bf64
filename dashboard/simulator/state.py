"""The simulated Mogplex world: tokens, repos, runs with their events, sandboxes, and the records.

Everything here runs on the server's single asyncio thread, so nothing is locked.
Catalogue data (repos, agents) is seeded and the same on every start; runs,
events and sandboxes get fresh random UUIDs, so a restarted simulator never
reuses an id that a board still remembers.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import string
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dashboard.simulator.automations import AutomationBook
from dashboard.simulator.cleaning import clean_payload, dumps
from dashboard.simulator.faults import FaultBook
from dashboard.simulator.ratelimit import SlidingWindowLimiter
from dashboard.simulator.records import DEFAULT_CAP, SeqLog
from dashboard.simulator.seed import MODELS, AccountState, Repo, seed_agents, seed_repos, user_profile

RUN_STATUSES = ("pending", "streaming", "success", "failed", "cancelled")
TERMINAL_RUN_STATUSES = frozenset({"success", "failed", "cancelled"})
HARNESSES = ("codex", "claude-code")
EVENT_TYPES = (
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
SANDBOX_STATUSES = ("creating", "installing", "running", "pausing", "stopped", "paused", "error")
LIFECYCLE_EVENT_TYPES = (
    "tab_attached",
    "tab_released",
    "auto_pause_queued",
    "auto_pause_decision",
    "auto_pause_succeeded",
    "auto_pause_failed",
    "resume_after_auto_pause",
)
ACTIVE_SANDBOX_STATUSES = frozenset({"creating", "installing", "running", "pausing"})
# lib/harness/failure.ts: the failure codes a harness run can end with.
FAILURE_CODES = ("model_access_denied", "rate_limited", "command_failed")
HARNESS_PACKAGES = {"codex": "@openai/codex", "claude-code": "@anthropic-ai/claude-code"}
# Mogplex lets a released sandbox idle this long before it checks whether to pause it.
AUTO_PAUSE_GRACE_MS = 90_000
SCOPES = ("read", "write")
API_PREFIX = "/api/v1/mogplex"
_ALNUM = string.ascii_lowercase + string.digits


def iso(moment: float) -> str:
    """An ISO-8601 UTC time as Mogplex serves it: Postgres output, so 0 to 6 fraction digits.

    Trailing zeros are dropped (six digits as a rule, none for a whole second) and
    the offset is ``+00:00``, or ``Z`` for one time in seven, as docs examples
    write it. The record's moment is exact, so ordering by parsed time is true.
    """
    micros = round(moment * 1_000_000)
    whole, fraction = divmod(micros, 1_000_000)
    base = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:06d}".rstrip("0")
    stamp = f"{base}.{digits}" if digits else base
    return f"{stamp}Z" if micros % 7 == 3 else f"{stamp}+00:00"


def js_iso(moment: float) -> str:
    """A time as JavaScript's ``toISOString()`` writes it (payload fields Mogplex's code fills in)."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def harness_failure_sentence(failure_code: str, harness: str, exit_code: int) -> str:
    """The run's ``error`` for a harness failure: ``presentHarnessFailure`` in ``lib/harness/failure.ts``."""
    provider = "Anthropic" if harness == "claude-code" else "OpenAI"
    if failure_code == "model_access_denied":
        agent = "Claude Code" if harness == "claude-code" else "Codex"
        return (
            f"{provider} accepted the API key, but the model selected by {agent} is unavailable for this "
            f"account. Check model access with {provider}, then try again."
        )
    if failure_code == "rate_limited":
        return f"{provider} rate-limited this run. Wait a moment, then try again."
    if failure_code == "command_failed":
        return f"Agent run exited with code {exit_code}."
    raise ValueError(f"unknown failure_code {failure_code!r}; use one of {list(FAILURE_CODES)}")


def new_id() -> str:
    return str(uuid.uuid4())


def _opaque(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def _branch(run: Run) -> dict[str, Any]:
    # A patched run may carry anything in ``branch``.
    branch = run.detail.get("branch")
    return branch if isinstance(branch, dict) else {}


@dataclass
class TokenRecord:
    """A registered bearer. ``mog_`` tokens are PATs (rate-limited); anything else counts as OAuth."""

    name: str
    token: str = field(repr=False)
    scopes: tuple[str, ...]
    user: str

    @property
    def is_pat(self) -> bool:
        return self.token.startswith("mog_")


@dataclass
class RunEvent:
    id: str
    type: str
    tool_name: str | None
    message: str | None
    payload: Any
    created_at: float
    # Events never change once written, so their cleaned JSON is computed once.
    _served: str | None = field(default=None, repr=False)

    def served_json(self) -> str:
        """The event as ``GET /runs/{id}/events`` serves it, payload cleaned, as JSON text."""
        if self._served is None:
            self._served = dumps(
                {
                    "id": self.id,
                    "type": self.type,
                    "toolName": self.tool_name,
                    "message": self.message,
                    "payload": clean_payload(self.payload),
                    "createdAt": iso(self.created_at),
                }
            )
        return self._served

    def raw_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "toolName": self.tool_name,
            "message": self.message,
            "payload": self.payload,
            "createdAt": iso(self.created_at),
        }


@dataclass
class Run:
    """An agent run. ``detail`` is the RunDetail exactly as served (patchable verbatim)."""

    id: str
    user: str
    detail: dict[str, Any]
    events: list[RunEvent] = field(default_factory=list)
    prompt: str | None = None
    delivered: bool = False
    scenario: bool = False
    # When ``updatedAt`` was last bumped (epoch seconds), for pruning.
    updated: float = 0.0
    # The harness command's id once it runs (Mogplex's ``runtime_command_id``).
    command_id: str | None = None
    # RunDetail fields left out of what the API serves (a test's "missing optional fields").
    omitted: frozenset[str] = frozenset()

    @property
    def status(self) -> Any:
        return self.detail.get("status")

    def served_detail(self) -> dict[str, Any]:
        """The RunDetail as the API serves it: ``detail`` without the omitted fields."""
        if not self.omitted:
            return self.detail
        return {key: value for key, value in self.detail.items() if key not in self.omitted}

    @property
    def active(self) -> bool:
        return self.detail.get("status") in ("pending", "streaming")


@dataclass
class LifecycleEvent:
    id: str
    event_type: str
    decision_code: str | None
    worker_run_id: str | None
    payload: Any
    created_at: float

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_type": self.event_type,
            "decision_code": self.decision_code,
            "worker_run_id": self.worker_run_id,
            "payload": self.payload,
            "created_at": iso(self.created_at),
        }


@dataclass
class Sandbox:
    id: str
    user: str
    sandbox_id: str | None
    repo_id: str | None
    status: str
    base_branch: str
    working_branch: str
    root_directory: str | None
    preview_url: str | None
    error: str | None
    created_at: float
    last_active_at: float
    install_log: str | None = None
    dev_log: str | None = None
    lifecycle: list[LifecycleEvent] = field(default_factory=list)
    run_id: str | None = None
    # The attached tab's session, and the auto-pause check in flight since the last release.
    session_seq: int = 0
    session_row_id: str | None = None
    pending_release: dict[str, Any] | None = None
    pause_worker: str | None = None
    snapshot_id: str | None = None
    # Fields given verbatim by a test (hostile strings, odd types) override the served ones.
    extra: dict[str, Any] = field(default_factory=dict)
    # Fields left out of what the API serves (a test's "missing optional fields").
    omitted: frozenset[str] = frozenset()
    scenario: bool = False

    def as_json(self) -> dict[str, Any]:
        served = {
            "id": self.id,
            "sandbox_id": self.sandbox_id,
            "repo_id": self.repo_id,
            "status": self.status,
            "base_branch": self.base_branch,
            "working_branch": self.working_branch,
            "root_directory": self.root_directory,
            "preview_url": self.preview_url,
            "error": self.error,
            "created_at": iso(self.created_at),
            "last_active_at": iso(self.last_active_at),
        }
        served.update(self.extra)
        for key in self.omitted:
            served.pop(key, None)
        return served

    def logs_json(self, limit: int = 200) -> dict[str, Any]:
        sandbox = self.as_json()
        sandbox["install_log"] = self.install_log
        sandbox["dev_log"] = self.dev_log
        return {
            "sandbox": sandbox,
            "lifecycle_events": [event.as_json() for event in self.lifecycle[:limit]],
        }


class SimulatorState:
    """All simulated data and records; the HTTP layers only read and call methods on it."""

    def __init__(
        self,
        *,
        seed: int = 0,
        window_seconds: float = 60.0,
        limit: int = 60,
        clock: Callable[[], float] = time.time,
        record_cap: int = DEFAULT_CAP,
    ) -> None:
        self.seed = seed
        self.clock = clock
        self.tokens_by_value: dict[str, TokenRecord] = {}
        self.tokens_by_name: dict[str, TokenRecord] = {}
        self.repos: dict[str, Repo] = {}
        self.user_repos: dict[str, list[Repo]] = {}
        self.agents: dict[str, list[dict[str, Any]]] = {}
        self.runs: dict[str, Run] = {}
        self.idempotency: dict[tuple[str, str], tuple[str, str]] = {}
        self.sandboxes: dict[str, Sandbox] = {}
        self.limiter = SlidingWindowLimiter(window_seconds, limit)
        self.faults = FaultBook()
        self.requests = SeqLog(record_cap)
        self.status_changes = SeqLog(record_cap)
        self._pr_numbers: dict[str, int] = {}
        self.accounts: dict[str, AccountState] = {}
        self._last_moment = 0.0
        self.automations = AutomationBook(self.now, iso)

    def now(self) -> float:
        """The moment a new record is written at.

        Postgres keeps microseconds, so a served time has six fraction digits as a
        rule; now and then the first record of a new second falls on the whole
        second (and is served with none), never out of order.
        """
        moment = self.clock()
        second = float(math.floor(moment))
        if second > self._last_moment and round(moment * 1_000_000) % 5 == 0:
            moment = second
        self._last_moment = max(self._last_moment, moment)
        return moment

    # --- tokens and users -------------------------------------------------

    def register_token(
        self, name: str, token: str, scopes: list[str], user: str | None = None
    ) -> TokenRecord:
        """Register (or replace) the token called ``name``; its runs belong to ``user`` (default ``name``)."""
        if not name or not token:
            raise ValueError("a token needs a non-empty name and token")
        old = self.tokens_by_name.pop(name, None)
        if old is not None:
            self.tokens_by_value.pop(old.token, None)
            self.limiter.forget(name)
        clash = self.tokens_by_value.pop(token, None)
        if clash is not None:
            self.tokens_by_name.pop(clash.name, None)
        record = TokenRecord(name=name, token=token, scopes=tuple(scopes), user=user or name)
        self.tokens_by_name[name] = record
        self.tokens_by_value[token] = record
        self.ensure_user(record.user)
        return record

    def token_name(self, authorization: str | None) -> str | None:
        """The registered name of the bearer in ``authorization``, for records and faults.

        ``None`` when no bearer was sent, ``"unknown"`` for one that is not
        registered. The scheme is matched case-insensitively here (so a lowercase
        ``bearer`` still shows whose token it was), unlike the proxy.
        """
        if not authorization:
            return None
        scheme, _, rest = authorization.partition(" ")
        if scheme.lower() != "bearer" or not rest.strip():
            return None
        record = self.tokens_by_value.get(rest)
        return record.name if record is not None else "unknown"

    def ensure_user(self, user: str) -> None:
        if user in self.user_repos:
            return
        repos = seed_repos(self.seed, user)
        self.user_repos[user] = repos
        for repo in repos:
            self.repos[repo.id] = repo
        self.agents[user] = seed_agents(self.seed, user)
        self.accounts.setdefault(user, AccountState())

    def account(self, user: str) -> AccountState:
        self.ensure_user(user)
        return self.accounts[user]

    def account_set(self, user: str, **fields: Any) -> AccountState:
        """Change what decides ``user``'s readiness (``AccountState`` fields); the rest stays."""
        current = self.account(user)
        unknown = set(fields) - set(current.as_json())
        if unknown:
            raise ValueError(f"unknown account fields {sorted(unknown)}; use {sorted(current.as_json())}")
        self.accounts[user] = AccountState(**{**current.as_json(), **fields})
        return self.accounts[user]

    def visible_repos(self, user: str) -> list[Repo]:
        """The repos ``GET /repos`` lists: none until GitHub is connected, sorted by full name."""
        if not self.account(user).repos_synced:
            return []
        return sorted((r for r in self.user_repos[user] if not r.hidden), key=lambda r: r.full_name)

    def repo_json(self, repo: Repo) -> dict[str, Any]:
        return repo.as_json(app_installed=self.account(repo.user).repos_covered)

    def _default_repo(self, user: str) -> Repo:
        # A test may start a run for a user whose GitHub is not connected; use their first seeded repo.
        visible = self.visible_repos(user)
        return visible[0] if visible else self.user_repos[user][0]

    def repo_for(self, user: str, repo_id: str) -> Repo | None:
        repo = self.repos.get(repo_id.lower())
        return repo if repo is not None and repo.user == user else None

    def profile(self, user: str) -> dict[str, Any] | None:
        """The ``user`` of ``GET /api/auth/user``, or ``None`` when the account says to answer null."""
        account = self.account(user)
        if account.user_null:
            return None
        return user_profile(self.seed, user, account, self.user_repos[user])

    def models(self, user: str) -> list[dict[str, Any]]:
        """The models ``user`` may use: none when the account has no usable model."""
        if not self.account(user).models_usable:
            return []
        return sorted(MODELS, key=lambda model: str(model["provider"]))

    # --- runs ---------------------------------------------------------------

    def run_for(self, user: str, run_id: str) -> Run | None:
        """The run if it exists and belongs to ``user``; "not yours" looks like "does not exist"."""
        run = self.runs.get(run_id.lower())
        return run if run is not None and run.user == user else None

    def create_run(
        self,
        user: str,
        *,
        repo_id: str | None = None,
        harness: str = "codex",
        base_branch: str | None = None,
        create_branch: bool = False,
        root_directory: str | None = None,
        prompt: str | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        scenario: bool = False,
    ) -> Run:
        """Create a ``pending`` run for ``user``, as ``POST /runs`` does; an unknown ``repo_id`` is kept verbatim.

        Like ``runs-db.ts``, it reuses an active sandbox on the same repo, working
        branch and root directory (so ``sandboxRecordId`` is set while pending),
        and writes the ``started`` "External Mogplex run accepted" event at once.
        """
        self.ensure_user(user)
        repo = self.repo_for(user, repo_id) if repo_id else self._default_repo(user)
        run_id = new_id()
        now = self.now()
        base = base_branch or (repo.default_branch if repo else None) or "main"
        if create_branch:
            # Mogplex hashes the idempotency key and the request, so the branch
            # does not reveal the run id.
            key_hash = hashlib.sha256((idempotency_key or run_id).encode()).hexdigest()
            body_hash = hashlib.sha256((request_hash or run_id).encode()).hexdigest()
            working = f"mogplex/external/{key_hash[:8]}-{body_hash[:8]}"
        else:
            working = base
        root = root_directory if root_directory is not None else (repo.root_directory if repo else None)
        reused = self._active_sandbox(user, repo.id if repo else repo_id, working, root)
        detail: dict[str, Any] = {
            "runId": run_id,
            "aiCallId": new_id(),
            "repoId": repo.id if repo else repo_id,
            "sandboxRecordId": reused.id if reused else None,
            "sandboxId": reused.sandbox_id if reused else None,
            "harness": harness,
            "status": "pending",
            "branch": {"base": base, "working": working, "createBranch": create_branch},
            "rootDirectory": root,
            "eventsUrl": f"{API_PREFIX}/runs/{run_id}/events",
            "cancelUrl": f"{API_PREFIX}/runs/{run_id}/cancel",
            "createdAt": iso(now),
            "updatedAt": iso(now),
            "error": None,
            "runtime": {"provider": "trigger", "runId": _opaque("run_", 20)},
        }
        run = Run(id=run_id, user=user, detail=detail, prompt=prompt, scenario=scenario, updated=now)
        self.runs[run_id] = run
        if reused is not None:
            reused.run_id = run_id
        self._record_status(run, now)
        self.emit(
            run,
            "started",
            message="External Mogplex run accepted",
            payload={"external_run_id": run_id, "harness_id": harness, "working_branch": working},
        )
        return run

    def _active_sandbox(
        self, user: str, repo_id: str | None, working_branch: str, root_directory: str | None
    ) -> Sandbox | None:
        """``findActiveSandbox``: the newest active sandbox on that repo, branch and root directory."""
        found = [
            s
            for s in self.sandboxes.values()
            if s.user == user
            and s.repo_id == repo_id
            and s.working_branch == working_branch
            and s.root_directory == root_directory
            and s.status in ACTIVE_SANDBOX_STATUSES
        ]
        return max(found, key=lambda s: s.created_at) if found else None

    def _record_status(self, run: Run, now: float) -> None:
        self.status_changes.append({"run_id": run.id, "status": run.detail.get("status"), "time": now})

    def emit(
        self,
        run: Run,
        type: str,
        *,
        message: str | None = None,
        tool_name: str | None = None,
        payload: Any = None,
    ) -> RunEvent:
        """Append one event to ``run`` (an event insert does not touch the run's ``updatedAt``)."""
        event = RunEvent(
            id=new_id(),
            type=type,
            tool_name=tool_name,
            message=message,
            payload={} if payload is None else payload,
            created_at=self.now(),
        )
        run.events.append(event)
        return event

    def add_events(
        self,
        run_id: str,
        count: int,
        *,
        type: str = "log",
        message: str | None = None,
        tool_name: str | None = None,
        payload: Any = None,
    ) -> list[RunEvent]:
        """Append ``count`` events; without a message each gets ``<type> <n>``, numbered from 1 per call."""
        run = self.runs[run_id.lower()]
        if tool_name is None and type in ("tool_started", "tool_finished"):
            tool_name = "bash"
        made = []
        for n in range(1, count + 1):
            text = message if message is not None else f"{type} {n}"
            made.append(self.emit(run, type, message=text, tool_name=tool_name, payload=payload))
        return made

    def _touch(self, run: Run, now: float) -> None:
        run.updated = now
        run.detail["updatedAt"] = iso(now)

    def deliver(self, run_id: str, *, changed: bool = True) -> RunEvent:
        """Emit the ``git_delivery`` log event: the only place the PR URL shows up in v1."""
        run = self.runs[run_id.lower()]
        branch = _branch(run)
        url = None
        if changed:
            repo = self.repos.get(str(run.detail.get("repoId")))
            full_name = repo.full_name if repo else "acme/unknown"
            number = self._pr_numbers.get(full_name, 100 + len(full_name) * 7) + 1
            self._pr_numbers[full_name] = number
            url = f"https://github.com/{full_name}/pull/{number}"
        run.delivered = True
        return self.emit(
            run,
            "log",
            message="Pull request ready" if changed else "No code changes to deliver",
            payload={
                "stage": "git_delivery",
                "changed": changed,
                "pull_request_url": url,
                "base_branch": branch.get("base"),
                "working_branch": branch.get("working"),
                "auto_committed_files": ["README.md"] if changed and len(run.events) % 3 == 0 else [],
            },
        )

    def set_run_status(
        self,
        run_id: str,
        status: str,
        *,
        error: str | None = None,
        failure_code: str | None = None,
        exit_code: int | None = None,
        sandbox_pending: bool = False,
        changed: bool = True,
    ) -> Run:
        """Move a run to ``status``, writing the events Mogplex's harness route writes.

        ``streaming``: the sandbox (a new one unless the run reuses one; its
        ``sandboxId`` is ``"pending"`` until it leaves ``creating`` when
        ``sandbox_pending``), then "Harness run started", "Synchronized <branch>",
        "Installed <package>" and the ``status_changed`` "Harness run streaming".
        ``success``: the ``git_delivery`` log (a PR, or no changes when ``changed``
        is false), then ``finished`` with ``{exit_code: 0, failure_code: null}``.
        ``failed``: with a ``failure_code`` (the default, ``command_failed`` with
        exit code 1, when no ``error`` is given) the run's ``error`` is Mogplex's
        own sentence and the ``failed`` event carries ``{exit_code, failure_code}``;
        with only an ``error``, the run failed outside the harness ("Harness stream
        failed", that error). ``cancelled``: "Harness run cancelled".
        """
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}; use one of {list(RUN_STATUSES)}")
        if failure_code is not None and status != "failed":
            raise ValueError("failure_code is for a run moved to failed")
        run = self.runs[run_id.lower()]
        old = run.detail.get("status")
        if old == status:
            return run
        now = self.now()
        harness = str(run.detail.get("harness") or "codex")
        if status == "streaming":
            self._start_harness(run, harness, pending=sandbox_pending)
        elif status == "success" and not run.delivered:
            self.deliver(run.id, changed=changed)
        run.detail["status"] = status
        if status == "failed":
            if failure_code is None and error is None:
                failure_code = "command_failed"
            if failure_code is not None:
                code = 1 if exit_code is None else exit_code
                run.detail["error"] = harness_failure_sentence(failure_code, harness, code)
                self.emit(
                    run,
                    "failed",
                    message="Harness run failed",
                    payload={"exit_code": code, "failure_code": failure_code},
                )
            else:
                run.detail["error"] = error
                self.emit(
                    run,
                    "failed",
                    message="Harness stream failed",
                    payload={"error": error, "commandTerminationConfirmed": True},
                )
        elif error is not None:
            run.detail["error"] = error
        if status == "success":
            self.emit(
                run,
                "finished",
                message="Harness run finished",
                payload={"exit_code": 0, "failure_code": None},
            )
        elif status == "cancelled":
            self.emit(
                run,
                "cancelled",
                message="Harness run cancelled",
                payload={
                    "runtime_command_id": run.command_id,
                    "install_logs_present": run.command_id is not None,
                },
            )
        self._touch(run, now)
        self._record_status(run, now)
        return run

    def _start_harness(self, run: Run, harness: str, *, pending: bool) -> None:
        if not run.detail.get("sandboxRecordId"):
            self._sandbox_for_run(run, pending=pending)
        else:
            sandbox = self.sandboxes.get(str(run.detail["sandboxRecordId"]))
            if sandbox is not None:
                run.detail["sandboxId"] = sandbox.sandbox_id
                sandbox.last_active_at = self.now()
        branch = _branch(run)
        working = branch.get("working") or "main"
        run.command_id = _opaque("cmd_", 16)
        self.emit(
            run,
            "started",
            message=f"Harness run started: {harness}",
            payload={"harness_id": harness, "ai_billing_source": "platform"},
        )
        self.emit(
            run,
            "log",
            message=f"Synchronized {working}",
            payload={
                "stage": "git_sync",
                "base_branch": branch.get("base"),
                "working_branch": working,
                "created_branch": bool(branch.get("createBranch")),
            },
        )
        package = HARNESS_PACKAGES.get(harness, harness)
        self.emit(
            run,
            "log",
            message=f"Installed {package}",
            payload={"stage": "install", "logs": f"added 1 package ({package}) in 3s\n"},
        )
        self.emit(
            run,
            "status_changed",
            message="Harness run streaming",
            payload={"from": "pending", "to": "streaming", "runtime_command_id": run.command_id},
        )

    def cancel_run(self, run: Run) -> tuple[Run, bool]:
        """What ``POST /runs/{id}/cancel`` does; the flag says whether the run was already terminal."""
        if run.detail.get("status") in TERMINAL_RUN_STATUSES:
            return run, True
        payload = {"external_run_id": run.id, "runtime_command_id": run.command_id}
        self.emit(run, "cancel_requested", message="Cancellation requested", payload=payload)
        run.detail["status"] = "cancelled"
        now = self.now()
        self._touch(run, now)
        self._record_status(run, now)
        self.emit(run, "cancelled", message="External Mogplex run cancelled", payload=payload)
        return run, False

    def patch_run(self, run_id: str, fields: dict[str, Any]) -> Run:
        """Overwrite RunDetail fields verbatim; ``updatedAt`` bumps unless it is one of them."""
        run = self.runs[run_id.lower()]
        old = run.detail.get("status")
        run.detail.update(fields)
        now = self.now()
        if "updatedAt" not in fields:
            self._touch(run, now)
        if run.detail.get("status") != old:
            self._record_status(run, now)
        return run

    def run_owner_set(self, run_id: str, user: str) -> Run:
        """Hand ``run_id`` to ``user``: its old owner's tokens get 404 for it, as for any run not theirs."""
        run = self.runs[run_id.lower()]
        self.ensure_user(user)
        run.user = user
        return run

    def run_fields_omit(self, run_id: str, fields: Iterable[str]) -> Run:
        """Serve ``run_id`` without ``fields`` from now on (an empty list serves every field again)."""
        run = self.runs[run_id.lower()]
        run.omitted = frozenset(fields)
        return run

    def _sandbox_for_run(self, run: Run, *, pending: bool) -> Sandbox:
        branch = _branch(run)
        sandbox = self.create_sandbox(
            run.user,
            repo_id=run.detail.get("repoId"),
            status="creating" if pending else "running",
            base_branch=branch.get("base") or "main",
            working_branch=branch.get("working") or "main",
            root_directory=run.detail.get("rootDirectory"),
            run_id=run.id,
            scenario=run.scenario,
        )
        run.detail["sandboxRecordId"] = sandbox.id
        run.detail["sandboxId"] = sandbox.sandbox_id
        return sandbox

    # --- sandboxes ----------------------------------------------------------

    def create_sandbox(
        self,
        user: str,
        *,
        repo_id: str | None = None,
        status: str = "running",
        sandbox_id: str | None = None,
        preview_url: str | None = None,
        base_branch: str | None = None,
        working_branch: str | None = None,
        root_directory: str | None = None,
        error: str | None = None,
        install_log: str | None = None,
        dev_log: str | None = None,
        run_id: str | None = None,
        extra: dict[str, Any] | None = None,
        scenario: bool = False,
    ) -> Sandbox:
        """Create a sandbox record; while ``creating`` its provider id is ``"pending"``."""
        self.ensure_user(user)
        if repo_id is None:
            repo_id = self._default_repo(user).id
        repo = self.repos.get(repo_id)
        now = self.now()
        base = base_branch or (repo.default_branch if repo else None) or "main"
        if sandbox_id is None:
            sandbox_id = "pending" if status == "creating" else _opaque("sbx_", 20)
        sandbox = Sandbox(
            id=new_id(),
            user=user,
            sandbox_id=sandbox_id,
            repo_id=repo_id,
            status=status,
            base_branch=base,
            working_branch=working_branch or base,
            root_directory=root_directory
            if root_directory is not None
            else (repo.root_directory if repo else None),
            preview_url=preview_url,
            error=error,
            created_at=now,
            last_active_at=now,
            install_log=install_log,
            dev_log=dev_log,
            run_id=run_id,
            extra=dict(extra or {}),
            scenario=scenario,
        )
        if status == "running":
            self._sandbox_running(sandbox)
            self._attach(sandbox)
        self.sandboxes[sandbox.id] = sandbox
        return sandbox

    def _sandbox_running(self, sandbox: Sandbox) -> None:
        if sandbox.preview_url is None and sandbox.sandbox_id and sandbox.sandbox_id != "pending":
            sandbox.preview_url = f"https://{sandbox.sandbox_id.replace('_', '-')}-3000.preview.mogplex.dev"
        if sandbox.dev_log is None:
            sandbox.dev_log = "$ npm run dev\n> ready on http://0.0.0.0:3000\n"

    def _lifecycle(
        self,
        sandbox: Sandbox,
        event_type: str,
        *,
        decision_code: str | None = None,
        worker_run_id: str | None = None,
        payload: Any = None,
    ) -> LifecycleEvent:
        event = LifecycleEvent(
            id=new_id(),
            event_type=event_type,
            decision_code=decision_code,
            worker_run_id=worker_run_id,
            payload={} if payload is None else payload,
            created_at=self.now(),
        )
        sandbox.lifecycle.append(event)
        return event

    def _attach(self, sandbox: Sandbox) -> None:
        sandbox.session_seq += 1
        sandbox.session_row_id = new_id()
        self._lifecycle(
            sandbox,
            "tab_attached",
            payload={"event_seq": sandbox.session_seq, "session_row_id": sandbox.session_row_id},
        )

    def _release(self, sandbox: Sandbox, reason: str) -> dict[str, Any]:
        """The tab lets go (``tab_released``) and the auto-pause check is queued with its grace period."""
        sandbox.session_seq += 1
        released = self._lifecycle(
            sandbox,
            "tab_released",
            payload={
                "event_seq": sandbox.session_seq,
                "session_row_id": sandbox.session_row_id,
                "release_reason": reason,
            },
        )
        release = {"release_event_id": released.id, "released_at": js_iso(released.created_at)}
        sandbox.pause_worker = _opaque("run_", 20)
        sandbox.pending_release = release
        self._lifecycle(
            sandbox,
            "auto_pause_queued",
            worker_run_id=sandbox.pause_worker,
            payload={**release, "grace_period_ms": AUTO_PAUSE_GRACE_MS},
        )
        return release

    def auto_pause_skip(self, sandbox_record_id: str, decision_code: str, **payload: Any) -> Sandbox:
        """A released sandbox that the auto-pause check then leaves running (e.g. ``auto_pause_skipped_busy``)."""
        sandbox = self.sandboxes[sandbox_record_id.lower()]
        release = self._release(sandbox, "pagehide")
        self._lifecycle(
            sandbox,
            "auto_pause_decision",
            decision_code=decision_code,
            worker_run_id=sandbox.pause_worker,
            payload={**release, **payload},
        )
        sandbox.pending_release = None
        self._attach(sandbox)
        return sandbox

    def add_lifecycle_events(
        self,
        sandbox_record_id: str,
        count: int,
        *,
        event_type: str = "tab_attached",
        decision_code: str | None = None,
        worker_run_id: str | None = None,
        payload: Any = None,
    ) -> list[LifecycleEvent]:
        sandbox = self.sandboxes[sandbox_record_id.lower()]
        made = [
            self._lifecycle(
                sandbox, event_type, decision_code=decision_code, worker_run_id=worker_run_id, payload=payload
            )
            for _ in range(count)
        ]
        sandbox.last_active_at = self.now()
        return made

    def sandbox_fields_omit(self, sandbox_record_id: str, fields: Iterable[str]) -> Sandbox:
        """Serve the sandbox without ``fields`` from now on (an empty list serves every field again)."""
        sandbox = self.sandboxes[sandbox_record_id.lower()]
        sandbox.omitted = frozenset(fields)
        return sandbox

    def set_sandbox_status(self, sandbox_record_id: str, status: str, *, error: str | None = None) -> Sandbox:
        """Move a sandbox, writing the lifecycle events and logs that go with the move.

        Leaving ``creating`` gives it a provider id, which its run (if any) picks up too.
        """
        sandbox = self.sandboxes[sandbox_record_id.lower()]
        old = sandbox.status
        now = self.now()
        sandbox.status = status
        sandbox.last_active_at = now
        if sandbox.sandbox_id == "pending" and status != "creating":
            sandbox.sandbox_id = _opaque("sbx_", 20)
            run = self.runs.get(sandbox.run_id or "")
            if run is not None and run.detail.get("sandboxId") == "pending":
                run.detail["sandboxId"] = sandbox.sandbox_id
                self._touch(run, now)
        if status == "error":
            sandbox.error = error or "Sandbox failed"
        elif error is not None:
            sandbox.error = error
        if status == "installing":
            sandbox.install_log = (sandbox.install_log or "") + "$ npm ci\nadded 1342 packages in 21s\n"
        elif status == "running":
            self._sandbox_running(sandbox)
            if old == "pausing":
                # The provider would not stop it: Mogplex puts it back to running.
                self._pause_outcome(sandbox, "auto_pause_failed", error=error or "Auto-pause failed")
            elif old == "paused":
                self._lifecycle(
                    sandbox,
                    "resume_after_auto_pause",
                    payload={"snapshot_id": sandbox.snapshot_id, "from": old},
                )
            if old not in ("running",):
                self._attach(sandbox)
        elif status == "pausing":
            if sandbox.pending_release is None:
                self._release(sandbox, "pagehide")
        elif status == "paused":
            sandbox.snapshot_id = _opaque("snap_", 16)
            self._pause_outcome(sandbox, "auto_pause_succeeded", snapshot_id=sandbox.snapshot_id)
        elif status == "error" and old == "pausing":
            self._pause_outcome(sandbox, "auto_pause_failed", error=sandbox.error)
        elif status == "stopped" and old in ("running", "installing"):
            sandbox.session_seq += 1
            self._lifecycle(
                sandbox,
                "tab_released",
                payload={
                    "event_seq": sandbox.session_seq,
                    "session_row_id": sandbox.session_row_id,
                    "release_reason": "stopped",
                },
            )
        return sandbox

    def _pause_outcome(self, sandbox: Sandbox, code: str, **payload: Any) -> None:
        # recordAutoPauseDecision: the event type is the code for a success or a failure.
        release = sandbox.pending_release or {}
        self._lifecycle(
            sandbox,
            code,
            decision_code=code,
            worker_run_id=sandbox.pause_worker,
            payload={**release, **payload},
        )
        sandbox.pending_release = None

    def sandboxes_for(
        self, user: str, *, repo_id: str | None, status: str | None, limit: int
    ) -> list[Sandbox]:
        found = [
            s
            for s in self.sandboxes.values()
            if s.user == user
            and (repo_id is None or (s.repo_id or "").lower() == repo_id.lower())
            and (status is None or s.status == status)
        ]
        found.sort(key=lambda s: s.last_active_at, reverse=True)
        return found[:limit]

    # --- housekeeping -------------------------------------------------------

    def reset(self) -> None:
        """Forget runs, sandboxes, automations, records, faults and rate windows; keep tokens and repos.

        Every user's account is ready again (the default ``AccountState``).
        """
        self.runs.clear()
        self.idempotency.clear()
        self.sandboxes.clear()
        self.automations.clear()
        for user in self.accounts:
            self.accounts[user] = AccountState()
        self.requests.clear()
        self.status_changes.clear()
        self.faults.clear()
        self.limiter.clear()

    def prune(self, before: float) -> int:
        """Drop scenario runs finished, sandboxes stopped and job runs ended before ``before``; return how many went."""
        old_runs = [
            run_id
            for run_id, run in self.runs.items()
            if run.scenario and not run.active and run.updated < before
        ]
        for run_id in old_runs:
            del self.runs[run_id]
        old_sandboxes = [
            sandbox_id
            for sandbox_id, sandbox in self.sandboxes.items()
            if sandbox.scenario and sandbox.status in ("stopped", "error") and sandbox.last_active_at < before
        ]
        for sandbox_id in old_sandboxes:
            del self.sandboxes[sandbox_id]
        if old_runs:
            self.idempotency = {key: seen for key, seen in self.idempotency.items() if seen[1] in self.runs}
        return len(old_runs) + len(old_sandboxes) + self.automations.prune(before)
