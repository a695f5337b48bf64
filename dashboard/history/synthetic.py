"""Realistic synthetic history, for benchmarks and demos (``manage.py history_fill``).

Runs are spread over the last ``days`` days, busier on weekdays and working hours;
repos and sources are unevenly busy, as a team's are; each repo has its own typical
duration and failure rate; failures carry Mogplex's failure codes and sentences.
Deterministic for a given ``seed``.
"""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta

from django.db import transaction

from dashboard.models import RunSummary
from dashboard.mogplex.failures import failure_reason

HARNESSES = ("claude-code", "codex")
SOURCES = ("ada", "ben", "cleo", "dev", "eve", "finn", "gus", "hana")
ERRORS = {
    "command_failed": "Agent run exited with code {exit}.",
    "model_access_denied": (
        "Anthropic accepted the API key, but the model selected by Claude Code is unavailable for this "
        "account. Check model access with Anthropic, then try again."
    ),
    "rate_limited": "OpenAI rate-limited this run. Wait a moment, then try again.",
}
BATCH = 5000


def _repos(count: int) -> list[str]:
    teams = ("acme", "globex", "initech", "umbrella")
    parts = ("api", "web", "billing", "search", "mobile", "infra", "docs", "auth", "etl", "admin")
    return [f"{teams[i % len(teams)]}/{parts[i % len(parts)]}-{i // len(parts) + 1}" for i in range(count)]


def history_fill(
    *, runs: int = 100_000, days: int = 90, repos: int = 40, sources: int = 8, seed: int = 7
) -> int:
    """Add ``runs`` synthetic summaries finishing over the last ``days`` days; how many were added."""
    rng = random.Random(seed)
    names = _repos(repos)
    source_names = [SOURCES[i] if i < len(SOURCES) else f"member-{i + 1}" for i in range(sources)]
    repo_weights = [1 / (i + 1) ** 0.8 for i in range(repos)]
    source_weights = [1 / (i + 1) ** 0.5 for i in range(sources)]
    typical = {name: rng.uniform(120, 1500) for name in names}
    fail_rate = {name: rng.uniform(0.05, 0.35) for name in names}
    now = datetime.now(tz=UTC)
    start = now - timedelta(days=days)
    made = 0
    batch: list[RunSummary] = []
    with transaction.atomic():
        while made < runs:
            finished = start + timedelta(seconds=rng.uniform(0, days * 86400))
            # Fewer runs at night and at weekends: keep this one with that day-and-hour's odds.
            busy = (0.35 if finished.weekday() >= 5 else 1.0) * (0.3 if not 7 <= finished.hour < 20 else 1.0)
            if rng.random() > busy:
                continue
            repo = rng.choices(names, repo_weights)[0]
            duration = min(typical[repo] * math.exp(rng.gauss(0, 0.6)), 6 * 3600)
            roll = rng.random()
            status = (
                "failed"
                if roll < fail_rate[repo]
                else "cancelled"
                if roll < fail_rate[repo] + 0.04
                else "success"
            )
            code = exit_code = None
            pr_url = delivery = ""
            pr_at = None
            if status == "failed":
                code = rng.choices(list(ERRORS), (0.7, 0.1, 0.2))[0]
                exit_code = rng.choice((1, 2, 127)) if code == "command_failed" else None
            elif status == "success":
                delivery = "pull_request" if rng.random() < 0.8 else "no_changes"
                if delivery == "pull_request":
                    pr_url = f"https://github.com/{repo}/pull/{rng.randint(1, 9999)}"
                    pr_at = finished - timedelta(seconds=rng.uniform(5, 60))
            created = finished - timedelta(seconds=duration)
            batch.append(
                RunSummary(
                    run_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                    source=rng.choices(source_names, source_weights)[0],
                    repo_id=str(uuid.UUID(int=names.index(repo) + 1, version=4)),
                    repo_name=repo,
                    branch_base="main" if rng.random() < 0.85 else "develop",
                    branch_working=f"mogplex/{rng.getrandbits(32):08x}",
                    harness=rng.choices(HARNESSES, (0.65, 0.35))[0],
                    status=status,
                    created_at=created,
                    finished_at=finished,
                    duration_seconds=round(duration, 3),
                    pr_url=pr_url,
                    pr_at=pr_at,
                    delivery=delivery,
                    failure_code=code or "",
                    failure_reason=failure_reason(code, exit_code) or "",
                    exit_code=exit_code,
                    error=ERRORS[code].format(exit=exit_code) if code else "",
                    event_count=rng.randint(8, 200),
                    tracked_at=created,
                    recorded_at=finished,
                )
            )
            batch[-1].derive()
            made += 1
            if len(batch) >= BATCH:
                RunSummary.objects.bulk_create(batch)
                batch = []
        RunSummary.objects.bulk_create(batch)
    return made
