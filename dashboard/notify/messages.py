"""What a notification says: one event, or a digest of several, written for one dialect.

Titles are the board's own words; every upstream value goes through
``neutralise``. Links are only the board's run page and Mogplex's, built from
settings and a run id (a UUID); an upstream PR address is shown as text, never
as the target of a label. Nothing here can reach a token, a secret or a display
link: events carry only the facts below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboard.notify.destinations import Dialect
from dashboard.notify.neutralise import neutralise

JSON = dict[str, Any]

TITLES = {
    "run_failed": "Run failed",
    "run_stalled": "Run stalled",
    "job_run_failed": "Automation job run failed",
    "failure_resolved": "Failure resolved",
    "source_problem": "Source needs attention",
    "source_recovered": "Source recovered",
    "poller_down": "The poller stopped reporting",
    "poller_back": "The poller is reporting again",
    "test": "Test notification",
}

# Messages about one run (or job run), headed by its repo.
RUN_MESSAGES = frozenset({"run_failed", "run_stalled", "failure_resolved", "job_run_failed"})

SOURCE_STATES = {
    "unauthorized": "unauthorized (Mogplex rejects its token)",
    "forbidden": "forbidden (its token lacks a scope)",
    "redirect": "redirected (MOGPLEX_BASE_URL answers with a redirect)",
}


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str
    markdown: bool


class _Writer:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.markdown = dialect == "markdown"

    def v(self, value: object, limit: int = 300) -> str:
        return neutralise(value, self.dialect, limit=limit)

    def strong(self, text: str) -> str:
        return f"**{text}**" if self.markdown else text

    def link(self, label: str, url: str) -> str:
        # Only ever called with the board's own addresses (settings + a UUID).
        return f"[{label}]({url})" if self.markdown else f"{label}: {url}"

    def links(self, facts: JSON) -> str:
        parts = []
        if facts.get("board_url"):
            label = "Board automations page" if facts.get("job_run_id") else "Board run page"
            parts.append(self.link(label, str(facts["board_url"])))
        if facts.get("mogplex_url"):
            parts.append(self.link("Mogplex", str(facts["mogplex_url"])))
        return (" · " if self.markdown else "\n").join(parts)

    def run_head(self, facts: JSON) -> str:
        repo = self.strong(self.v(facts.get("repo") or "unknown repo", 120))
        if facts.get("job_run_id"):
            automation = self.v(facts.get("automation") or "?", 120)
            return f"{repo} · automation {automation} · source {self.v(facts.get('source') or '?', 40)}"
        branch = self.v(facts.get("branch") or "?", 120)
        if facts.get("working_branch"):
            branch += " → " + self.v(facts["working_branch"], 120)
        return f"{repo} · {branch} · source {self.v(facts.get('source') or '?', 40)}"

    def summary(self, kind: str, facts: JSON) -> str:
        """One line for a digest."""
        if kind in RUN_MESSAGES:
            line = f"{TITLES[kind]}: {self.run_head(facts)}"
            if kind == "job_run_failed" and facts.get("error"):
                line += f" — {self.v(facts['error'], 120)}"
            if kind == "run_failed" and facts.get("reason"):
                line += f" — {self.v(facts['reason'], 120)}"
            if kind == "run_stalled" and facts.get("stall_reason"):
                line += f" — {self.v(facts['stall_reason'], 120)}"
            if facts.get("board_url"):
                line += " " + self.link("run", str(facts["board_url"]))
            return line
        return f"{TITLES.get(kind, kind)}: {self.detail(kind, facts)}"

    def detail(self, kind: str, facts: JSON) -> str:
        if kind == "source_problem":
            state = SOURCE_STATES.get(str(facts.get("state")), self.v(facts.get("state"), 40))
            return f"source {self.v(facts.get('source'), 40)} is {state}"
        if kind == "source_recovered":
            return f"source {self.v(facts.get('source'), 40)} is fetching again"
        if kind == "poller_down":
            return (
                f"no poll tick for over {int(facts.get('stale_seconds') or 0)} s; "
                "the board is not being refreshed (is the Celery worker and beat running?)"
            )
        if kind == "poller_back":
            return "the poller is ticking again; the board is being refreshed"
        if kind == "test":
            return "the board can reach this destination"
        return ""

    def body(self, kind: str, facts: JSON) -> str:
        if kind not in RUN_MESSAGES:
            return self.detail(kind, facts)
        lines = [self.run_head(facts)]
        if kind == "job_run_failed" and facts.get("error"):
            lines.append(f"Error: {self.v(facts['error'], 300)}")
        if kind == "run_failed":
            if facts.get("reason"):
                lines.append(f"Reason: {self.v(facts['reason'], 200)}")
            if facts.get("error"):
                lines.append(f"Error: {self.v(facts['error'], 300)}")
            if facts.get("pr_url"):
                lines.append(f"Pull request: {self.v(facts['pr_url'], 300)}")
            elif facts.get("delivery") == "no_changes":
                lines.append("No changes")
        elif kind == "run_stalled":
            lines.append(f"Stalled: {self.v(facts.get('stall_reason') or 'no progress', 200)}")
        elif kind == "failure_resolved":
            lines.append(f"Resolved: {self.v(facts.get('how') or 'resolved', 200)}")
        links = self.links(facts)
        if links:
            lines.append(links)
        return ("\n\n" if self.markdown else "\n").join(lines)


def render(events: list[tuple[str, JSON]], dialect: Dialect) -> Rendered:
    """The message for ``events`` (``(kind, facts)`` pairs): the event itself, or a digest of them all."""
    writer = _Writer(dialect)
    if len(events) == 1:
        kind, facts = events[0]
        title = TITLES.get(kind, kind)
        if kind == "source_problem":
            title = "Source " + {"redirect": "redirected"}.get(
                str(facts.get("state")), str(facts.get("state"))
            )
            title = title if facts.get("state") in SOURCE_STATES else TITLES[kind]
        return Rendered(title, writer.body(kind, facts), writer.markdown)
    counts: dict[str, int] = {}
    for kind, _ in events:
        counts[kind] = counts.get(kind, 0) + 1
    title = f"{len(events)} board events: " + ", ".join(
        f"{n} × {TITLES.get(kind, kind).lower()}" for kind, n in counts.items()
    )
    lines = [("- " if writer.markdown else "• ") + writer.summary(kind, facts) for kind, facts in events]
    return Rendered(title, "\n".join(lines), writer.markdown)
