"""Upstream faults at the board level: each fault on one source while another source stays healthy.

Every fault the simulator can inject, and every odd shape of data it can serve,
is put on a source of its own (``matrix_<fault>``, each its own token on the
session's simulator). All of them run at once against one poller group (beat
and two real Celery workers, the real Valkey) beside ``matrix_healthy``, which is
never faulted; each fault is then its own test case, reading what its scenario
saw. For every fault:

- the board keeps serving: the overview answers 200 and shows the healthy source's run;
- the faulted source's panel says what is wrong and what to do, in the sentence the page shows;
- the healthy run is fetched again within ``FRESH_WITHIN`` while the fault holds;
- once the fault clears, the board is fresh again within ``FRESH_WITHIN`` of the end of the
  back-off or pause the board itself chose, and that back-off is no longer than its policy
  allows for the outage (exponential back-off grows with the outage, not faster);
- after a 429, nothing reaches the simulator on that token until Retry-After has passed.

Connection refused cannot hit one source only: every source shares
``MOGPLEX_BASE_URL``, so ``test_connection_refused_...`` takes the whole upstream
away behind a TCP relay, in a group of its own.

Time is compressed as in tests/test_polling_worker.py: a 6 s budget window (the
simulator's too, so Retry-After is 6 s), runs refreshed every 2 s, sandboxes
every 3 s. Related tests elsewhere: every fault's client-level error class,
tests/test_client.py; the 429 pause with two workers and a 401/500 dead source,
tests/test_polling_worker.py.
"""

from __future__ import annotations

import html as html_lib
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client

from dashboard import snapshots
from dashboard.models import TrackedRun
from dashboard.polling import gate
from dashboard.polling.gate import SLOW_RETRY_SECONDS, UNAUTHORIZED_RECHECK_SECONDS
from dashboard.polling.tasks import COMPOSE_DEBOUNCE_SECONDS, source_blocked_until
from dashboard.simulator.control import SimulatorControl
from tests.audit import AUDIT
from tests.pollers import PollerGroup, Pollers
from tests.relay import TcpRelay
from tests.waiting import wait_for

# The workers read the test database file from other processes (see tests/pollers.py);
# the matrix writes its rows from its module fixture, before any case runs.
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

WINDOW = 6
BUDGET = 50
RUN_REFRESH = 2
SANDBOXES_REFRESH = 3
TICK = 1
READ_TIMEOUT = 2
# Queueing on a loaded two-core machine (the workers, the simulator, these threads
# and whatever else runs there share it).
SLACK = 1.5
# A run is due again RUN_REFRESH after its last planned fetch, and the tick plans
# one tick ahead, so two fetches of a run are at most RUN_REFRESH + TICK apart; the
# board is composed COMPOSE_DEBOUNCE_SECONDS after a fetch.
FRESH_WITHIN = RUN_REFRESH + TICK + COMPOSE_DEBOUNCE_SECONDS + SLACK
SANDBOXES_FRESH_WITHIN = SANDBOXES_REFRESH + TICK + COMPOSE_DEBOUNCE_SECONDS + SLACK
# The first failing request comes with the source's next fetch; a 401 is believed
# on the second one, a timeout takes READ_TIMEOUT to be one.
STATE_WITHIN = FRESH_WITHIN + UNAUTHORIZED_RECHECK_SECONDS + READ_TIMEOUT
# A request that passed the pause check just before another worker wrote the pause
# is already in flight; on this machine the 429 answer reaches Redis well within this.
PAUSE_MARGIN = 0.5
RETRY_AFTER = WINDOW

HEALTHY = "matrix_healthy"
NOBODY = "matrix_nobody"

UNAUTHORIZED = "Mogplex rejects this source's token (401); issue a new token and update the configuration."
FORBIDDEN = "The token lacks a scope the board needs (403); issue a token with the 'read' scope."
RATE_LIMITED = "Mogplex rate-limited this token (429); the board waits for Retry-After before trying again."
UNAVAILABLE = "Mogplex is failing or unreachable; the board retries with growing pauses."
TIMEOUT = "Mogplex did not answer in time; the board retries with growing pauses."
PROTOCOL = "Mogplex answered with something that is not the v1 API; check MOGPLEX_BASE_URL."
OK_FALSE = (
    "Mogplex answered an error with a success status (200, ok: false): Something went wrong; "
    "the board retries with growing pauses."
)
# The simulator redirects to the www name of its own address, over plain http; the port follows.
REDIRECT = "Mogplex answered with a redirect to http://www.127.0.0.1:"

RUN_OPTIONAL_FIELDS = [
    "aiCallId",
    "repoId",
    "sandboxRecordId",
    "sandboxId",
    "harness",
    "branch",
    "rootDirectory",
    "eventsUrl",
    "cancelUrl",
    "createdAt",
    "updatedAt",
    "error",
    "runtime",
]
SANDBOX_OPTIONAL_FIELDS = [
    "sandbox_id",
    "repo_id",
    "base_branch",
    "working_branch",
    "root_directory",
    "preview_url",
    "error",
    "created_at",
    "last_active_at",
]
LONG_MESSAGE = ("The agent wrote one very long line of output. " * 500)[:20_000]
# Strings are cut to 2,000 characters upstream and this is past 20,000 in all, so
# upstream serves it as a 20,000-character preview (contract 6.5, rule 5).
BIG_PAYLOAD = {f"part{i:02}": "p" * 2_000 for i in range(25)}


def _token() -> str:
    alphabet = string.ascii_letters + string.digits
    return "mog_" + "".join(secrets.choice(alphabet) for _ in range(24))


# --- reading the board and its pages -----------------------------------------------------


def page_text(markup: str) -> str:
    """What a person reads: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def row_text(markup: str, row_id: str) -> str:
    """The words of the table row ``<tr id=row_id>`` on a page ("" when there is none)."""
    match = re.search(rf'<tr id="{re.escape(row_id)}".*?</tr>', markup, re.DOTALL)
    return page_text(match.group(0)) if match else ""


def banner(source: str, state: str, sentence: str) -> str:
    return f"Source {source} is {state.replace('_', ' ')}: {sentence}"


def board() -> dict[str, Any]:
    return snapshots.board_read() or {}


def source_health(name: str) -> dict[str, Any]:
    return next((s for s in board().get("sources", []) if s.get("name") == name), {})


def board_run(run_id: str) -> dict[str, Any]:
    return next((r for r in board().get("runs", []) if r["run_id"] == run_id), {})


def board_sandbox(sandbox_id: str) -> dict[str, Any]:
    return next((s for s in board().get("sandboxes", []) if s.get("id") == sandbox_id), {})


def fetched_since(run_id: str, since: float) -> bool:
    return (board_run(run_id).get("fetched_at") or 0.0) > since


# --- the matrix: one group, every fault at once -------------------------------------------


@dataclass(frozen=True)
class Case:
    """One fault: the source it is put on, and what the board must say while it holds."""

    id: str
    kind: str | None = None  # the simulator's fault kind; None for faults in the data
    state: str = "ok"  # the source's state while it holds
    sentence: str = ""  # what the page says about it
    options: dict[str, Any] = field(default_factory=dict)
    runs: int = 1  # active runs on the source; more runs, more requests in flight at once

    @property
    def source(self) -> str:
        return f"matrix_{self.id.replace(' ', '_').replace('-', '_')}"


@dataclass
class Outcome:
    """What a case's scenario measured, or how it failed."""

    error: BaseException | None = None
    measured: dict[str, float] = field(default_factory=dict)


class Matrix:
    """The simulator, a viewer's account, each source's first run and sandbox, and each case's outcome."""

    def __init__(self, sim: SimulatorControl, user: User) -> None:
        self.sim = sim
        self.user = user
        self.runs: dict[str, str] = {}
        self.sandboxes: dict[str, str] = {}
        self.outcomes: dict[str, Outcome] = {}

    def browser(self) -> Client:
        client = Client()
        client.force_login(self.user)
        return client

    def overview(self, client: Client) -> str:
        """The overview page, which must answer 200 and show the healthy source's run, without a banner."""
        response = client.get("/")
        assert response.status_code == 200, f"the overview answered {response.status_code}"
        markup = response.content.decode()
        healthy_row = row_text(markup, f"run-{self.runs[HEALTHY]}")
        assert "streaming" in healthy_row, "the healthy source's run is missing from the overview"
        assert f"Source {HEALTHY} is" not in page_text(markup), "the healthy source is shown as failing"
        return markup

    def healthy_fetched_within(self, seconds: float) -> float:
        """Wait for a fetch of the healthy run after now; how long it took."""
        since = time.time()
        wait_for(
            lambda: fetched_since(self.runs[HEALTHY], since),
            timeout=seconds,
            what="the healthy source's run to be fetched again",
            interval=0.1,
        )
        assert source_health(HEALTHY).get("state") == "ok"
        return time.time() - since

    def fresh_again(self, source: str, cleared_at: float, longest: float) -> tuple[float, float]:
        """Wait until ``source`` is ok and its run fetched after ``cleared_at``.

        Returns when that was, and the end of the longest back-off or pause the
        board held the source in meanwhile (sampled from the poller's own state).
        """
        blocked = cleared_at

        def fresh() -> bool:
            nonlocal blocked
            blocked = max(blocked, source_blocked_until(source))
            return source_health(source).get("state") == "ok" and fetched_since(self.runs[source], cleared_at)

        try:
            wait_for(fresh, timeout=longest + FRESH_WITHIN + 10, what=f"{source} fresh again", interval=0.1)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}: the fault cleared {time.time() - cleared_at:.1f} s ago, the board still holds "
                f"{source} for {source_blocked_until(source) - time.time():.1f} s "
                f"({gate.read(source)}); its health: {source_health(source)}"
            ) from None
        return time.time(), blocked


def _longest_hold(case: Case, outage: float) -> float:
    """How long after the fault clears the board may still hold the source back, by its policy."""
    if case.kind == "429":
        return RETRY_AFTER
    # Full jitter over a doubling ceiling: the k-th failure's ceiling 2**(k-1) is at
    # most twice the time since the first failure, plus one. A timeout is recorded
    # READ_TIMEOUT after its request left, which may be after the fault cleared.
    drain = READ_TIMEOUT if case.kind == "timeout" else 0.0
    return drain + 2 * (outage + drain) + 1


def upstream_fault(m: Matrix, case: Case) -> dict[str, float]:
    """An HTTP-level fault on ``case.source`` until cleared: state, words, healthy neighbour, recovery."""
    source = case.source
    client = m.browser()
    faulted_at = time.time()
    m.sim.inject_fault(str(case.kind), token=source, **case.options)
    wait_for(
        lambda: source_health(source).get("state") == case.state,
        timeout=STATE_WITHIN,
        what=f"{source} shown as {case.state}",
        interval=0.1,
    )
    shown_after = time.time() - faulted_at
    markup = m.overview(client)
    assert banner(source, case.state, case.sentence) in page_text(markup)
    assert case.sentence in row_text(markup, f"source-{source}")
    if case.kind == "429":
        assert f"{source} rate limited until" in row_text(markup, f"source-{source}")
    healthy_after = m.healthy_fetched_within(FRESH_WITHIN)

    if case.kind == "429":
        # Hold the fault through a whole pause, so the board comes back once, is refused again.
        first = wait_for(
            lambda: _limited(m.sim, source), timeout=STATE_WITHIN, what="a 429 on the record", interval=0.1
        )[0]
        wait_for(
            lambda: any(r["time"] >= first["time"] + RETRY_AFTER for r in _limited(m.sim, source)),
            timeout=RETRY_AFTER + FRESH_WITHIN,
            what=f"{source} to try again after Retry-After and be refused again",
            interval=0.1,
        )

    cleared_at = time.time()
    m.sim.clear_faults(token=source)
    outage = cleared_at - faulted_at
    longest = _longest_hold(case, outage)
    fresh_at, blocked_until = m.fresh_again(source, cleared_at, longest)
    held = blocked_until - cleared_at
    assert held <= longest + SLACK, f"the board held {source} {held:.1f} s after the fault cleared"
    late = fresh_at - max(cleared_at, blocked_until)
    assert late <= FRESH_WITHIN, f"{source} was fresh {late:.1f} s after it could send again"

    measured = {
        "shown after (s)": shown_after,
        "healthy refetched within (s)": healthy_after,
        "held after clearing (s)": held,
        "fresh after clearing (s)": fresh_at - cleared_at,
    }
    if case.kind == "429":
        records = [r for r in m.sim.requests() if r["token_name"] == source]
        hits = [r for r in records if r["status"] == 429]
        for hit in hits:
            early = [r for r in records if hit["time"] + PAUSE_MARGIN < r["time"] < hit["time"] + RETRY_AFTER]
            assert early == [], f"sent during the pause after the 429 at {hit['time']:.3f}: {early}"
        measured["429s"] = len(hits)
        measured["most requests in flight after a 429"] = max(
            sum(1 for r in records if hit["time"] < r["time"] <= hit["time"] + PAUSE_MARGIN) for hit in hits
        )

    assert f"Source {source} is" not in page_text(m.overview(client))
    return measured


def _limited(sim: SimulatorControl, source: str) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if r["token_name"] == source and r["status"] == 429]


def run_not_found(m: Matrix, case: Case) -> dict[str, float]:
    """A tracked run upstream no longer shows this source (404): the run says so, the source stays ok."""
    source, run_id = case.source, m.runs[case.source]
    client = m.browser()
    faulted_at = time.time()
    m.sim.set_run_owner(run_id, NOBODY)

    def last_fetch_failed() -> bool:
        page = page_text(client.get(f"/runs/{run_id}/").content.decode())
        return "The last fetch failed (not found)" in page and "showing the last good data" in page

    wait_for(
        last_fetch_failed, timeout=FRESH_WITHIN, what="the run page to say its fetch failed", interval=0.2
    )
    # Declared not found only once every source has answered 404, so the sources
    # under 401 and 403 have to come back first (at most SLOW_RETRY_SECONDS after their faults).
    wait_for(
        lambda: board_run(run_id).get("lookup") == "not_found",
        timeout=SLOW_RETRY_SECONDS + 3 * STATE_WITHIN + 2 * FRESH_WITHIN + 10,
        what="the run marked not found",
        interval=0.2,
    )
    not_found_after = time.time() - faulted_at
    markup = m.overview(client)
    assert "not found" in row_text(markup, f"run-{run_id}")
    assert f"Source {source} is" not in page_text(markup), "a 404 is about one run, not the source"
    assert source_health(source).get("state") == "ok"
    run_page = client.get(f"/runs/{run_id}/")
    assert run_page.status_code == 200
    assert (
        f"No configured source owns run {run_id}: check the id, or add a read token of whoever started it "
        "(MOGPLEX_TOKEN_<NAME>); untrack it in the admin."
    ) in page_text(run_page.content.decode())
    healthy_after = m.healthy_fetched_within(FRESH_WITHIN)

    # The run is the source's again; tracking it again, as an operator would, brings it back.
    m.sim.set_run_owner(run_id, source)
    cleared_at = time.time()
    tracked = client.post("/track/", {"run": run_id})
    assert tracked.status_code == 302
    wait_for(
        lambda: board_run(run_id).get("lookup") == "found" and fetched_since(run_id, cleared_at),
        timeout=FRESH_WITHIN,
        what="the run found again after tracking it again",
        interval=0.1,
    )
    assert board_run(run_id)["source"] == source
    return {
        "not found after (s)": not_found_after,
        "healthy refetched within (s)": healthy_after,
        "fresh after tracking again (s)": time.time() - cleared_at,
    }


def unknown_values(m: Matrix, case: Case) -> dict[str, float]:
    """A run status, an event type and a sandbox status the contract does not list: shown as they are."""
    source, run_id, sandbox_id = case.source, m.runs[case.source], m.sandboxes[case.source]
    client = m.browser()
    faulted_at = time.time()
    m.sim.patch_run(run_id, status="awaiting_approval")
    m.sim.add_events(run_id, 1, type="reasoning", message="Weighing two approaches")
    m.sim.set_sandbox_status(sandbox_id, "hibernating")

    def shown() -> bool:
        run = board_run(run_id)
        return (
            run.get("status") == "awaiting_approval"
            and (run.get("latest_event") or {}).get("type") == "reasoning"
            and board_sandbox(sandbox_id).get("status") == "hibernating"
        )

    wait_for(shown, timeout=SANDBOXES_FRESH_WITHIN, what="the unknown values on the board", interval=0.1)
    markup = m.overview(client)
    run_row = row_text(markup, f"run-{run_id}")
    assert "unknown (awaiting_approval)" in run_row
    assert "reasoning" in run_row and "Weighing two approaches" in run_row
    assert "hibernating" in row_text(markup, f"sandbox-{sandbox_id}")
    _assert_source_untouched(markup, source, faulted_at)
    healthy_after = m.healthy_fetched_within(FRESH_WITHIN)

    cleared_at = time.time()
    m.sim.patch_run(run_id, status="streaming")
    m.sim.add_events(run_id, 1, type="log", message="Back on a known path")
    m.sim.set_sandbox_status(sandbox_id, "running")
    wait_for(
        lambda: (
            board_run(run_id).get("status") == "streaming"
            and (board_run(run_id).get("latest_event") or {}).get("message") == "Back on a known path"
            and board_sandbox(sandbox_id).get("status") == "running"
        ),
        timeout=SANDBOXES_FRESH_WITHIN,
        what="known values back on the board",
        interval=0.1,
    )
    return {
        "healthy refetched within (s)": healthy_after,
        "fresh after clearing (s)": time.time() - cleared_at,
    }


def missing_fields(m: Matrix, case: Case) -> dict[str, float]:
    """Every optional field of a run and a sandbox left out: the rows still show, with dashes."""
    source, run_id, sandbox_id = case.source, m.runs[case.source], m.sandboxes[case.source]
    client = m.browser()
    before = row_text(m.overview(client), f"run-{run_id}")
    assert "codex" in before and "acme/" in before
    faulted_at = time.time()
    m.sim.omit_run_fields(run_id, RUN_OPTIONAL_FIELDS)
    m.sim.omit_sandbox_fields(sandbox_id, SANDBOX_OPTIONAL_FIELDS)
    wait_for(
        lambda: (
            board_run(run_id).get("harness") is None
            and board_run(run_id).get("repo_id") is None
            and board_sandbox(sandbox_id).get("repo_id") is None
            and board_sandbox(sandbox_id).get("last_active_at") is None
        ),
        timeout=SANDBOXES_FRESH_WITHIN,
        what="the run and sandbox without their optional fields on the board",
        interval=0.1,
    )
    markup = m.overview(client)
    run_row = row_text(markup, f"run-{run_id}")
    assert "streaming" in run_row and "(repo unknown)" in run_row and "codex" not in run_row
    assert "(repo unknown)" in row_text(markup, f"sandbox-{sandbox_id}")
    run_page = client.get(f"/runs/{run_id}/")
    assert run_page.status_code == 200
    _assert_source_untouched(markup, source, faulted_at)
    healthy_after = m.healthy_fetched_within(FRESH_WITHIN)

    cleared_at = time.time()
    m.sim.omit_run_fields(run_id, [])
    m.sim.omit_sandbox_fields(sandbox_id, [])
    wait_for(
        lambda: (
            board_run(run_id).get("harness") == "codex"
            and board_run(run_id).get("repo_name")
            and board_sandbox(sandbox_id).get("repo_name")
        ),
        timeout=SANDBOXES_FRESH_WITHIN,
        what="the fields back on the board",
        interval=0.1,
    )
    return {
        "healthy refetched within (s)": healthy_after,
        "fresh after clearing (s)": time.time() - cleared_at,
    }


def big_payload(m: Matrix, case: Case) -> dict[str, float]:
    """An event with a 20,000-character message and a 20,000-character payload: clipped, nothing else moves."""
    source, run_id = case.source, m.runs[case.source]
    client = m.browser()
    faulted_at = time.time()
    m.sim.add_events(run_id, 1, type="log", message=LONG_MESSAGE, payload=BIG_PAYLOAD)
    wait_for(
        lambda: ((board_run(run_id).get("latest_event") or {}).get("message") or "").startswith(
            LONG_MESSAGE[:40]
        ),
        timeout=FRESH_WITHIN,
        what="the long event on the board",
        interval=0.1,
    )
    stored = (snapshots.run_read(run_id) or {})["events"][-1]["payload"]
    assert stored.get("clipped") and stored["size"] >= 20_000, (
        "upstream did not serve a 20,000-character payload"
    )

    markup = m.overview(client)
    run_row = row_text(markup, f"run-{run_id}")
    assert LONG_MESSAGE[:60] in run_row and LONG_MESSAGE[:200] not in run_row
    run_page = client.get(f"/runs/{run_id}/").content.decode()
    assert LONG_MESSAGE[:900] in page_text(run_page)
    assert LONG_MESSAGE[:1_001] not in run_page
    assert len(run_page) < 40_000, f"the run page grew to {len(run_page)} characters"
    _assert_source_untouched(markup, source, faulted_at)
    healthy_after = m.healthy_fetched_within(FRESH_WITHIN)

    cleared_at = time.time()
    m.sim.add_events(run_id, 1, type="log", message="A short line again")
    wait_for(
        lambda: (board_run(run_id).get("latest_event") or {}).get("message") == "A short line again",
        timeout=FRESH_WITHIN,
        what="the next event on the board",
        interval=0.1,
    )
    assert "A short line again" in row_text(m.overview(client), f"run-{run_id}")
    return {
        "healthy refetched within (s)": healthy_after,
        "fresh after clearing (s)": time.time() - cleared_at,
    }


def _assert_source_untouched(markup: str, source: str, since: float) -> None:
    """Odd data is not a fault of the source: no banner, no error recorded."""
    assert f"Source {source} is" not in page_text(markup)
    health = source_health(source)
    assert health.get("state") == "ok"
    assert (health.get("last_error_at") or 0.0) < since


CASES = [
    Case("401", "401", "unauthorized", UNAUTHORIZED),
    Case("403", "403", "forbidden", FORBIDDEN),
    Case("404 on a tracked run"),
    # Several runs, so several fetches are due when the pause is set and when it ends.
    Case("429", "429", "rate_limited", RATE_LIMITED, runs=4),
    Case("500", "500", "unavailable", UNAVAILABLE),
    Case("502 html", "502_html", "unavailable", UNAVAILABLE),
    # Several runs, so several requests are on their way when the first one times out.
    Case("timeout", "timeout", "timeout", TIMEOUT, {"delay_seconds": READ_TIMEOUT + 2}, runs=6),
    Case("malformed json", "malformed_json", "protocol", PROTOCOL),
    Case("ok false 200", "ok_false_200", "protocol", OK_FALSE),
    Case("redirect", "redirect", "redirect", REDIRECT),
    Case("unknown values"),
    Case("missing fields"),
    Case("20k payload"),
]
SCENARIOS: dict[str, Callable[[Matrix, Case], dict[str, float]]] = {
    "404 on a tracked run": run_not_found,
    "unknown values": unknown_values,
    "missing fields": missing_fields,
    "20k payload": big_payload,
}
SOURCES = [HEALTHY, *(case.source for case in CASES)]
TOKENS = {name: _token() for name in SOURCES}


def _group_settings(base_url: str, tokens: dict[str, str]) -> dict[str, str]:
    return {
        "MOGPLEX_BASE_URL": base_url,
        **{f"MOGPLEX_TOKEN_{name.upper()}": token for name, token in tokens.items()},
        "MOGPLEX_BUDGET": str(BUDGET),
        "MOGPLEX_BUDGET_WINDOW_SECONDS": str(WINDOW),
        "MOGPLEX_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT),
        "BOARD_POLL_TICK_SECONDS": str(TICK),
        "BOARD_RUN_REFRESH_SECONDS": str(RUN_REFRESH),
        "BOARD_SANDBOXES_REFRESH_SECONDS": str(SANDBOXES_REFRESH),
        "BOARD_REPOS_REFRESH_SECONDS": "10",
    }


def _start_runs(
    sim: SimulatorControl, tokens: dict[str, str], more: dict[str, int] | None = None
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Register each source's token and give it a streaming run (which brings a sandbox).

    Returns each source's run and sandbox, and every run id (``more`` asks for extra runs).
    """
    runs: dict[str, str] = {}
    sandboxes: dict[str, str] = {}
    every: list[str] = []
    for name, token in tokens.items():
        sim.register_token(name, token, ["read"], user=name)
        for _ in range((more or {}).get(name, 1)):
            run_id = sim.create_run(name)["runId"]
            detail = sim.set_run_status(run_id, "streaming")
            every.append(run_id)
            runs.setdefault(name, run_id)
            sandboxes.setdefault(name, detail["sandboxRecordId"])
    return runs, sandboxes, every


def _track_and_wait(run_ids: list[str], sources: list[str], group: PollerGroup) -> None:
    for run_id in run_ids:
        TrackedRun.objects.create(run_id=run_id, via=TrackedRun.Via.COMMAND)

    def all_fresh() -> bool:
        shown = board()
        found = {r["run_id"] for r in shown.get("runs", []) if r.get("lookup") == "found"}
        sources_ok = all(s.get("state") == "ok" for s in shown.get("sources", []))
        boxes = {s.get("source") for s in shown.get("sandboxes", [])}
        return found >= set(run_ids) and sources_ok and boxes >= set(sources)

    wait_for(all_fresh, timeout=90, what=f"every run, sandbox and source on the board\n{group.log_tail()}")


@pytest.fixture(scope="module")
def matrix(
    pollers: Pollers, simulator_server: str, valkey_server: str, django_db_blocker: Any
) -> Iterator[Matrix]:
    """Every case's scenario, run at once in threads of its own; each test case reads its outcome."""
    sim = SimulatorControl(simulator_server)
    AUDIT.collect(simulator_server)
    sim.reset()
    sim.clear_faults()
    sim.configure(window_seconds=WINDOW, limit=60)
    redis.Redis.from_url(valkey_server).flushdb()
    with django_db_blocker.unblock():
        runs, sandboxes, every = _start_runs(sim, TOKENS, {case.source: case.runs for case in CASES})
        group = pollers.ensure(_group_settings(simulator_server, TOKENS))
        if group.workers < 2:
            group.add_worker()
        group.wait_ticking(redis.Redis.from_url(valkey_server))
        _track_and_wait(every, SOURCES, group)
        user = User.objects.create_user("matrix-viewer", password="correct horse battery")
        m = Matrix(sim, user)
        m.runs, m.sandboxes = runs, sandboxes

        def play(case: Case) -> None:
            outcome = m.outcomes[case.id]
            try:
                outcome.measured = SCENARIOS.get(case.id, upstream_fault)(m, case)
            except BaseException as exc:  # handed to the case's test, traceback and all
                outcome.error = exc
            finally:
                connections.close_all()

        threads = []
        for case in CASES:
            m.outcomes[case.id] = Outcome()
            threads.append(threading.Thread(target=play, args=(case,), name=case.id))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        try:
            yield m
        finally:
            sim.clear_faults()
            TrackedRun.objects.filter(run_id__in=every).delete()
            user.delete()
            sim.close()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_fault_on_one_source(matrix: Matrix, case: Case) -> None:
    outcome = matrix.outcomes[case.id]
    print(f"{case.id}: " + ", ".join(f"{k} {v:.3g}" for k, v in outcome.measured.items()))
    if outcome.error is not None:
        raise outcome.error


# --- connection refused: the whole upstream goes away --------------------------------------


REFUSED_TOKENS = {"matrix_east": _token(), "matrix_west": _token()}


def test_connection_refused_then_back(
    pollers: Pollers, sim: SimulatorControl, simulator_server: str, redis_db: redis.Redis
) -> None:
    """Every source shares the base URL, so a refused connection hits them all; the board still serves."""
    sim.configure(window_seconds=WINDOW, limit=60)
    runs, _, every = _start_runs(sim, REFUSED_TOKENS)
    relay = TcpRelay(int(simulator_server.rsplit(":", 1)[1]))
    relay.start()
    try:
        group = pollers.ensure(_group_settings(f"http://127.0.0.1:{relay.port}", REFUSED_TOKENS))
        group.wait_ticking(redis_db)
        _track_and_wait(every, list(REFUSED_TOKENS), group)
        browser = Client()
        browser.force_login(User.objects.create_user("viewer", password="correct horse battery"))

        faulted_at = time.time()
        relay.stop()
        wait_for(
            lambda: all(source_health(name).get("state") == "unavailable" for name in REFUSED_TOKENS),
            timeout=STATE_WITHIN,
            what="every source shown as unavailable",
            interval=0.1,
        )
        response = browser.get("/")
        assert response.status_code == 200
        markup = response.content.decode()
        for name, run_id in runs.items():
            assert banner(name, "unavailable", UNAVAILABLE) in page_text(markup)
            # The last good data stays, with its age.
            assert "streaming" in row_text(markup, f"run-{run_id}")
        assert "STALE: the poller" not in page_text(markup)
        # Nothing answered: the client logged no HTTP status for these failures.
        logs = "\n".join(path.read_text(errors="replace") for path in group.dir.glob("worker*.log"))
        assert re.search(r"mogplex source=matrix_east endpoint=\S+ outcome=unavailable status=- ", logs)

        cleared_at = time.time()
        relay.start()
        longest = 2 * (cleared_at - faulted_at) + 1
        blocked = dict.fromkeys(REFUSED_TOKENS, cleared_at)
        fresh_at: dict[str, float] = {}

        def all_fresh() -> bool:
            for name in REFUSED_TOKENS:
                blocked[name] = max(blocked[name], source_blocked_until(name))
                if name not in fresh_at and (
                    source_health(name).get("state") == "ok" and fetched_since(runs[name], cleared_at)
                ):
                    fresh_at[name] = time.time()
            return len(fresh_at) == len(REFUSED_TOKENS)

        wait_for(
            all_fresh, timeout=longest + FRESH_WITHIN + 10, what="every source fresh again", interval=0.1
        )
        for name in REFUSED_TOKENS:
            print(
                f"{name}: held after reopening {blocked[name] - cleared_at:.3g} s, "
                f"fresh after reopening {fresh_at[name] - cleared_at:.3g} s"
            )
            assert blocked[name] - cleared_at <= longest + SLACK
            assert fresh_at[name] - max(cleared_at, blocked[name]) <= FRESH_WITHIN
        assert "Source matrix_" not in page_text(browser.get("/").content.decode())
    finally:
        relay.stop()
