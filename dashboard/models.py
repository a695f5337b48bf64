"""The board's only database state: what the operator configured.

Snapshots of upstream data live in Redis and can always be rebuilt; these rows
cannot, so they live here.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class TrackedRun(models.Model):
    """A Mogplex run the board follows. The API cannot list runs, so someone told us about it."""

    class Via(models.TextChoices):
        FORM = "form", "dashboard form"
        COMMAND = "command", "track command"
        INGEST = "ingest", "ingest endpoint"

    class Lookup(models.TextChoices):
        NEW = "new", "not fetched yet"
        FOUND = "found", "found"
        NOT_FOUND = "not_found", "no source owns it"

    run_id = models.UUIDField(unique=True)
    source = models.CharField(
        max_length=40, blank=True, help_text="The source that owns the run, once known."
    )
    via = models.CharField(max_length=10, choices=Via.choices)
    lookup = models.CharField(max_length=10, choices=Lookup.choices, default=Lookup.NEW)
    status = models.CharField(max_length=20, blank=True, help_text="Last status seen upstream.")
    tracked_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(
        null=True, blank=True, help_text="When the board first saw it terminal."
    )
    final_fetch_done = models.BooleanField(default=False)
    repo_id = models.UUIDField(
        null=True, blank=True, help_text="The run's repo, when its registration said (repoId)."
    )
    source_hint = models.CharField(
        max_length=40, blank=True, help_text="The source its registration named; it is asked first."
    )

    class Meta:
        ordering = ["-tracked_at"]

    def __str__(self) -> str:
        return str(self.run_id)


class DisplayToken(models.Model):
    """A revocable secret in a kiosk URL. Only its SHA-256 is stored."""

    name = models.CharField(max_length=80, unique=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_seen_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def hash(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()

    @classmethod
    def issue(cls, name: str) -> tuple[DisplayToken, str]:
        """Create a display token; the raw secret is returned once and never stored."""
        raw = secrets.token_urlsafe(24)
        return cls.objects.create(name=name, token_hash=cls.hash(raw)), raw


# The trends' time unit: every time zone's midnight (UTC offsets are whole quarter hours) is a slot boundary.
SLOT_SECONDS = 900


class RunSummary(models.Model):
    """What the board learned of a finished run, kept for ``BOARD_HISTORY_DAYS``.

    Written once, when a terminal run's final fetch lands (``history.run_summary_write``),
    from that fetch's record; after that it depends on nothing in Redis. Acknowledgements
    are linked by ``run_id``.
    """

    run_id = models.UUIDField(unique=True)
    source = models.CharField(max_length=40)
    repo_id = models.CharField(max_length=64, blank=True)
    repo_name = models.CharField(max_length=200, blank=True)
    branch_base = models.CharField(max_length=200, blank=True)
    branch_working = models.CharField(max_length=200, blank=True)
    harness = models.CharField(max_length=80, blank=True)
    status = models.CharField(max_length=20)
    created_at = models.DateTimeField(null=True, blank=True, help_text="When Mogplex created the run.")
    finished_at = models.DateTimeField(
        help_text="When the run ended (its terminal event, else its last update)."
    )
    duration_seconds = models.FloatField(null=True, blank=True)
    pr_url = models.CharField(max_length=500, blank=True)
    pr_at = models.DateTimeField(null=True, blank=True, help_text="When the pull request was delivered.")
    delivery = models.CharField(max_length=20, blank=True, help_text="pull_request or no_changes.")
    failure_code = models.CharField(max_length=60, blank=True)
    failure_reason = models.CharField(max_length=200, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    event_count = models.IntegerField(default=0)
    tracked_at = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField(default=timezone.now)
    # Kept for the trends, which group by them in the database (derived on every save, see derive()).
    finished_slot = models.BigIntegerField(
        default=0,
        help_text="The quarter hour it finished in (epoch seconds // 900): any viewer's local day is whole slots.",
    )
    pr_seconds = models.FloatField(
        null=True, blank=True, help_text="From its creation to its pull request, in seconds."
    )

    class Meta:
        ordering = ["-finished_at", "-id"]
        verbose_name_plural = "run summaries"
        indexes = [
            # Newest first, alone and under each filter the history page offers (docs/benchmarks.md).
            models.Index(fields=["-finished_at", "-id"], name="summary_finished"),
            models.Index(fields=["repo_name", "status", "-finished_at"], name="summary_repo_status"),
            models.Index(fields=["repo_id", "-finished_at"], name="summary_repo_id"),
            models.Index(fields=["status", "-finished_at"], name="summary_status"),
            models.Index(fields=["source", "-finished_at"], name="summary_source"),
            models.Index(fields=["harness", "-finished_at"], name="summary_harness"),
            models.Index(fields=["failure_code", "-finished_at"], name="summary_failure"),
            models.Index(fields=["branch_working"], name="summary_branch_working"),
            models.Index(fields=["branch_base"], name="summary_branch_base"),
            # PostgreSQL's error search reads only the runs that have an error (history/search.py).
            models.Index(fields=["-finished_at", "-id"], condition=~Q(error=""), name="summary_has_error"),
            # The trends (docs/benchmarks.md), each query read from one index alone: runs per slot by
            # outcome; per repo (now and the period before), per source, the failures; durations
            # and the PR lag in order within each group, so a percentile is an OFFSET, not a sort.
            models.Index(fields=["finished_slot", "status", "pr_seconds"], name="summary_slot_status"),
            models.Index(
                fields=["repo_name", "harness", "status", "finished_slot", "duration_seconds"],
                name="summary_repo_slot",
            ),
            models.Index(fields=["source", "finished_slot"], name="summary_source_slot"),
            models.Index(
                fields=["status", "finished_slot", "failure_code", "failure_reason"],
                name="summary_failed_slot",
            ),
            models.Index(
                fields=["repo_name", "duration_seconds", "finished_slot"], name="summary_repo_duration"
            ),
            models.Index(
                fields=["harness", "duration_seconds", "finished_slot"], name="summary_harness_duration"
            ),
            # "Running longer than usual": each repo's p90 over all kept runs (dashboard/history/usual.py).
            models.Index(
                fields=["repo_id", "duration_seconds", "finished_slot"], name="summary_repo_id_duration"
            ),
            models.Index(fields=["pr_seconds", "finished_slot"], name="summary_pr_seconds"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id} {self.status}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.derive()
        super().save(*args, **kwargs)

    def derive(self) -> None:
        """Set the columns the trends group by from the run's times (``bulk_create`` callers call it)."""
        self.finished_slot = int(self.finished_at.timestamp()) // SLOT_SECONDS
        lag = None
        if self.pr_at is not None and self.created_at is not None and self.pr_at >= self.created_at:
            lag = (self.pr_at - self.created_at).total_seconds()
        self.pr_seconds = lag


# --- notifications (dashboard/notify) ----------------------------------------------


class NotifyDestination(models.Model):
    """Where notifications go: one Apprise URL, from BOARD_NOTIFY_URLS or added in the admin.

    A destination from the environment keeps its URL there (``env_index`` says
    which entry) and none here; one added in the admin keeps it in ``url``,
    which no page shows again.
    """

    name = models.CharField(max_length=80, unique=True)
    kind = models.CharField(max_length=40, editable=False, help_text="The Apprise service (its URL scheme).")
    url = models.TextField(blank=True, help_text="An Apprise URL; kept secret, never shown again.")
    env_index = models.PositiveIntegerField(null=True, blank=True, unique=True, editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class NotifyRule(models.Model):
    """Which events go to a destination, optionally only for some repos or sources.

    A destination without rules gets every event.
    """

    destination = models.ForeignKey(NotifyDestination, on_delete=models.CASCADE, related_name="rules")
    events = models.JSONField(default=list, help_text="Event kinds this rule sends.")
    repos = models.CharField(
        max_length=500, blank=True, help_text="Only runs in these repos (owner/name, comma-separated)."
    )
    sources = models.CharField(
        max_length=500, blank=True, help_text="Only runs and sources of these sources (comma-separated)."
    )

    def __str__(self) -> str:
        return f"{self.destination}: {', '.join(self.events) or 'nothing'}"


class NotifyEvent(models.Model):
    """One transition the board noticed (a run failed, a source recovered...), stored once by its key."""

    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=30)
    facts = models.JSONField(default=dict, help_text="What the message says; upstream text, no secret.")
    repo = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=40, blank=True)
    subject = models.CharField(max_length=100, blank=True, help_text="The run id, source name or 'poller'.")
    open = models.BooleanField(default=False, help_text="A condition whose end is announced too.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.key


class NotifyMessage(models.Model):
    """One message to one destination: a single event or a digest of several."""

    class Status(models.TextChoices):
        PENDING = "pending", "waiting to be sent"
        SENDING = "sending", "being sent"
        SENT = "sent", "sent"
        FAILED = "failed", "given up"

    destination = models.ForeignKey(NotifyDestination, on_delete=models.CASCADE, related_name="messages")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.destination} #{self.pk}"


class NotifyDelivery(models.Model):
    """One event for one destination: at most one per pair, so nothing is sent twice."""

    event = models.ForeignKey(NotifyEvent, on_delete=models.CASCADE, related_name="deliveries")
    destination = models.ForeignKey(NotifyDestination, on_delete=models.CASCADE, related_name="deliveries")
    message = models.ForeignKey(
        NotifyMessage, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "destination"], name="notify_delivery_once"),
        ]

    def __str__(self) -> str:
        return f"{self.event} -> {self.destination}"


class Acknowledgement(models.Model):
    """Someone has seen a problem (a failed or stalled run or job run, an errored sandbox) and is on it.

    Operator state like the tracked runs: it lives here, survives restarts, and
    takes the problem out of the attention lane. One per problem: a run
    acknowledged while stalled that later fails needs acknowledging again.
    """

    NOTE_MAX_CHARS = 200

    class Target(models.TextChoices):
        RUN = "run", "run"
        SANDBOX = "sandbox", "sandbox"
        # An automation's job run: its own id space, not an agent run's.
        JOB_RUN = "job_run", "job run"

    class Problem(models.TextChoices):
        FAILED = "failed", "failure"
        STALLED = "stalled", "stall"
        ERROR = "error", "error"

    target = models.CharField(max_length=10, choices=Target.choices)
    target_id = models.UUIDField(help_text="The run id, the sandbox id or the job run id.")
    problem = models.CharField(max_length=10, choices=Problem.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too, so "acknowledged by ada" stays true after the account is removed.
    username = models.CharField(max_length=150)
    acknowledged_at = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=NOTE_MAX_CHARS, blank=True)

    class Meta:
        ordering = ["-acknowledged_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["target", "target_id", "problem"], name="one_acknowledgement_per_problem"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_target_display()} {self.target_id} {self.get_problem_display()} by {self.username}"


class BudgetMark(models.Model):
    """What the board last knew of a source's upstream budget, kept where a Redis restart cannot lose it.

    The request window itself lives in Redis (``dashboard.polling.gate``); this
    row is its durable shadow, so that a store that comes back empty never lets
    a source overspend: ``sent_at`` is a time at which the source was sending
    (written at most every ``gate.MARK_EVERY_SECONDS``), ``paused_until`` the end
    of the last 429's Retry-After. Epoch seconds, like every time the poller keeps.
    """

    source = models.CharField(max_length=40, unique=True)
    sent_at = models.FloatField(default=0.0)
    paused_until = models.FloatField(default=0.0)

    def __str__(self) -> str:
        return self.source
