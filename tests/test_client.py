"""The Mogplex client against the simulator over real HTTP: what it sends, what it raises, what it logs."""

from __future__ import annotations

import logging
import re
import socket
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from dashboard.demo import new_pat
from dashboard.mogplex.client import MogplexClient, redirect_advice, retry_after_seconds
from dashboard.mogplex.config import Source, Token
from dashboard.mogplex.errors import (
    ERROR_KINDS,
    BadRequest,
    Forbidden,
    InvalidId,
    MogplexError,
    NotFound,
    ProtocolError,
    RateLimited,
    RedirectRefused,
    Unauthorized,
    Unavailable,
    UpstreamTimeout,
)
from dashboard.simulator.control import SimulatorControl
from tests.waiting import wait_for

USER = "carol"
MISSING_RUN = "6f1c1f5e-0000-4000-8000-000000000000"
ALLOWED_PATH = re.compile(
    r"^/api/v1/mogplex/(repos|sandboxes|sandboxes/[0-9a-f-]{36}/logs|runs/[0-9a-f-]{36}"
    r"|runs/[0-9a-f-]{36}/events|models|agents|automations|automations/[0-9a-f-]{36}"
    r"|automations/[0-9a-f-]{36}/runs|automations/[0-9a-f-]{36}/runs/[0-9a-f-]{36})$|^/api/auth/user$"
)
LOG_LINE = re.compile(r"^mogplex source=(\S+) endpoint=(\S+) outcome=(\S+) status=(\S+) ms=\d+$")


@dataclass
class Reader:
    """A registered read-scoped PAT, and a client that reads with it."""

    name: str
    token: str
    client: MogplexClient
    sim: SimulatorControl

    def new_requests(self, since: int) -> list[dict[str, Any]]:
        return self.sim.requests(since=since)

    def mark(self) -> int:
        records = self.sim.requests()
        return int(records[-1]["seq"]) if records else 0


@pytest.fixture
def reader(sim: SimulatorControl, simulator_server: str) -> Iterator[Reader]:
    token = new_pat()
    sim.register_token("reader", token, ["read"], user=USER)
    with MogplexClient(simulator_server, Source("reader", Token(token))) as client:
        yield Reader("reader", token, client, sim)


def closed_port() -> int:
    """A port that was just bound and closed again: nothing listens there."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def started_run(sim: SimulatorControl, *, user: str = USER) -> str:
    return str(sim.create_run(user)["runId"])


# -- reading ----------------------------------------------------------------------------


def test_run_events_brings_the_status_and_the_events_in_one_request(reader: Reader) -> None:
    sim = reader.sim
    run_id = started_run(sim)
    sim.set_run_status(run_id, "streaming")
    sim.add_events(run_id, 3, type="tool_started", tool_name="bash", message="ls")
    mark = reader.mark()

    result = reader.client.run_events(run_id)

    assert result.run.run_id == run_id
    assert result.run.status == "streaming"
    assert not result.run.is_terminal
    assert [e.tool_name for e in result.events if e.type == "tool_started"] == ["bash"] * 3
    assert result.server_date is not None
    assert abs(result.server_date - datetime.now(UTC)) < timedelta(minutes=5)
    [request] = reader.new_requests(mark)
    assert request["path"] == f"/api/v1/mogplex/runs/{run_id}/events"
    assert request["query"] == "limit=200"
    assert request["token_name"] == "reader"


def test_a_successful_run_shows_its_pull_request(reader: Reader) -> None:
    run_id = started_run(reader.sim)
    reader.sim.set_run_status(run_id, "streaming")
    reader.sim.set_run_status(run_id, "success")

    result = reader.client.run_events(run_id)

    assert result.run.is_terminal
    pr_url = result.pr_url()
    assert pr_url is not None
    assert pr_url.startswith(("https://", "http://"))


def test_a_long_run_is_flagged_truncated_at_the_limit(reader: Reader) -> None:
    run_id = started_run(reader.sim)
    reader.sim.add_events(run_id, 205)

    full = reader.client.run_events(run_id)
    capped = reader.client.run_events(run_id, limit=50)

    assert len(full.events) == 200
    assert full.truncated(200)
    assert len(capped.events) == 50
    assert capped.truncated(50)


def test_a_limit_outside_one_to_two_hundred_is_refused_before_sending(reader: Reader) -> None:
    run_id = started_run(reader.sim)
    mark = reader.mark()

    for limit in (0, 201, -1):
        with pytest.raises(ValueError, match="limit"):
            reader.client.run_events(run_id, limit=limit)

    assert reader.new_requests(mark) == []


def test_every_read_sends_one_get_on_the_allow_list_without_an_idempotency_key(reader: Reader) -> None:
    sim = reader.sim
    run_id = started_run(sim)
    sandbox_id = str(sim.create_sandbox(USER, status="running")["id"])
    automation_id = str(sim.create_automation(USER)["id"])
    job_run_id = str(sim.create_job_run(automation_id)["id"])
    mark = reader.mark()
    client = reader.client

    repos = client.repos()
    sandboxes = client.sandboxes()
    logs = client.sandbox_logs(sandbox_id)
    run = client.run(run_id)
    events = client.run_events(run_id)
    models = client.models()
    agents = client.agents()
    user = client.auth_user()
    page = client.automations()
    automation = client.automation(automation_id)
    job_runs = client.automation_runs(automation_id)
    job_run = client.automation_run(automation_id, job_run_id)

    assert [a.id for a in page.automations] == [automation.id] == [automation_id]
    assert [r.id for r in job_runs] == [job_run.id] == [job_run_id]
    assert repos and all(repo.full_name for repo in repos)
    assert [s.id for s in sandboxes] == [sandbox_id]
    assert logs.sandbox.id == sandbox_id
    assert run.run_id == events.run.run_id == run_id
    assert models and agents
    assert user is not None
    records = reader.new_requests(mark)
    assert len(records) == 12
    assert {r["method"] for r in records} == {"GET"}
    assert all(ALLOWED_PATH.match(r["path"]) for r in records), [r["path"] for r in records]
    assert not any(r["idempotency_key"] for r in records)
    assert {r["token_name"] for r in records} == {"reader"}
    assert {r["status"] for r in records} == {200}


@pytest.mark.parametrize(
    "form", ["{origin}", "{origin}/", "{origin}/api/v1/mogplex", "{origin}/api/v1/mogplex/"]
)
def test_the_base_url_works_as_an_origin_or_with_the_api_prefix(
    reader: Reader, simulator_server: str, form: str
) -> None:
    run_id = started_run(reader.sim)
    mark = reader.mark()

    with MogplexClient(form.format(origin=simulator_server), Source("reader", Token(reader.token))) as client:
        assert client.run(run_id).run_id == run_id
        assert client.auth_user() is not None

    paths = [r["path"] for r in reader.new_requests(mark)]
    assert paths == [f"/api/v1/mogplex/runs/{run_id}", "/api/auth/user"]


def test_ids_are_lowercased_before_sending(reader: Reader) -> None:
    run_id = started_run(reader.sim)
    mark = reader.mark()

    assert reader.client.run(f"  {run_id.upper()} ").run_id == run_id

    [request] = reader.new_requests(mark)
    assert request["path"] == f"/api/v1/mogplex/runs/{run_id}"


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-a-uuid",
        "123",
        "",
        "6f1c1f5e-0000-4000-8000-00000000000",
        "{6f1c1f5e-0000-4000-8000-000000000000}",
        "urn:uuid:6f1c1f5e-0000-4000-8000-000000000000",
        "6f1c1f5e000040008000000000000000",
        "../repos",
    ],
)
def test_a_bad_id_is_never_sent(reader: Reader, bad_id: str) -> None:
    mark = reader.mark()
    calls: list[Callable[[str], object]] = [
        reader.client.run,
        reader.client.run_events,
        reader.client.sandbox_logs,
    ]

    for call in calls:
        with pytest.raises(InvalidId):
            call(bad_id)

    assert reader.new_requests(mark) == []


# -- failures, each from a real answer ---------------------------------------------------


def test_unknown_token_is_unauthorized(simulator_server: str, sim: SimulatorControl) -> None:
    with (
        MogplexClient(simulator_server, Source("nobody", Token(new_pat()))) as client,
        pytest.raises(Unauthorized) as raised,
    ):
        client.repos()

    assert raised.value.status == 401
    assert raised.value.kind == "unauthorized"
    assert "fix the token" in str(raised.value)


def test_missing_scope_is_forbidden_and_names_the_scope(simulator_server: str, sim: SimulatorControl) -> None:
    token = new_pat()
    sim.register_token("unscoped", token, [], user=USER)

    with MogplexClient(simulator_server, Source("unscoped", Token(token))) as client:
        assert client.repos() is not None  # no scope is enforced on /repos
        with pytest.raises(Forbidden) as raised:
            client.models()

    assert raised.value.status == 403
    assert "Missing required scope: read" in str(raised.value)
    assert "'unscoped'" in str(raised.value)


def test_another_users_run_and_an_unknown_run_are_not_found(reader: Reader) -> None:
    someone_elses = started_run(reader.sim, user="dave")

    for run_id in (someone_elses, MISSING_RUN):
        with pytest.raises(NotFound) as raised:
            reader.client.run_events(run_id)
        assert raised.value.status == 404
        assert "Run not found" in str(raised.value)


def test_spent_budget_is_rate_limited_with_upstreams_retry_after(reader: Reader) -> None:
    reader.sim.configure(window_seconds=7, limit=1)
    reader.client.repos()

    with pytest.raises(RateLimited) as raised:
        reader.client.repos()

    assert raised.value.status == 429
    assert raised.value.retry_after == 7
    assert "respect the rate limit" in str(raised.value)


@pytest.mark.parametrize(
    ("fault", "error_class", "status"),
    [
        ("401", Unauthorized, 401),
        ("403", Forbidden, 403),
        ("429", RateLimited, 429),
        ("500", Unavailable, 500),
        ("502_html", Unavailable, 502),
        ("malformed_json", ProtocolError, 200),
        ("ok_false_200", ProtocolError, 200),
        ("redirect", RedirectRefused, 308),
    ],
)
def test_each_injected_fault_raises_its_error_class(
    reader: Reader, fault: str, error_class: type[MogplexError], status: int
) -> None:
    run_id = started_run(reader.sim)
    reader.sim.inject_fault(fault, token="reader", count=1)

    with pytest.raises(error_class) as raised:
        reader.client.run_events(run_id)

    assert type(raised.value) is error_class
    assert raised.value.status == status
    assert raised.value.kind in ERROR_KINDS
    if error_class is ProtocolError:
        assert str(status) in str(raised.value)
    # The fault was one-shot: the next poll works.
    assert reader.client.run_events(run_id).run.run_id == run_id


def test_rate_limit_fault_carries_retry_after(reader: Reader) -> None:
    reader.sim.inject_fault("429", token="reader", count=1)

    with pytest.raises(RateLimited) as raised:
        reader.client.sandboxes()

    assert raised.value.retry_after == 60


def test_a_redirect_is_refused_and_not_followed(reader: Reader, simulator_server: str) -> None:
    mark = reader.mark()
    reader.sim.inject_fault(
        "redirect", token="reader", count=1, location="https://mogplex.com/api/v1/mogplex/repos"
    )

    with pytest.raises(RedirectRefused) as raised:
        reader.client.repos()

    message = str(raised.value)
    assert message == (
        f"Mogplex at {simulator_server} answered 308 redirect to https://mogplex.com, another host than "
        "127.0.0.1, so it must not be trusted with the token unless you know it is Mogplex: check "
        "MOGPLEX_BASE_URL."
    )
    assert raised.value.board_message == (
        "Mogplex answered with a redirect to https://mogplex.com, another host than 127.0.0.1, so it "
        "must not be trusted with the token unless you know it is Mogplex: check MOGPLEX_BASE_URL."
    )
    assert raised.value.location == "https://mogplex.com/api/v1/mogplex/repos"
    records = reader.new_requests(mark)
    assert [(r["path"], r["status"]) for r in records] == [("/api/v1/mogplex/repos", 308)]


def test_a_redirect_to_the_login_page_points_at_the_token(reader: Reader, simulator_server: str) -> None:
    # What the proxy answers when no usable bearer reaches it (something stripped the header).
    login = f"{simulator_server}/login?next=%2Fapi%2Fv1%2Fmogplex%2Frepos"
    reader.sim.inject_fault("redirect", token="reader", count=1, status=307, location=login)

    with pytest.raises(RedirectRefused) as raised:
        reader.client.repos()

    assert raised.value.status == 307
    assert "login page" in str(raised.value)
    assert "MOGPLEX_TOKEN" in str(raised.value)
    # The precise reason reaches the source's row too, without the login page's query.
    assert raised.value.board_message == (
        "Mogplex answered with a redirect to its login page, so the bearer token did not reach the "
        "API; check MOGPLEX_TOKEN and that no proxy strips the Authorization header."
    )


def test_a_redirect_shows_where_it_points_but_never_its_path_or_query(
    reader: Reader, simulator_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    location = "https://user:pw@evil.example:8443/steal?token=mog_abc#x"
    reader.sim.inject_fault("redirect", token="reader", count=1, status=302, location=location)

    with caplog.at_level("INFO", logger="dashboard.mogplex"), pytest.raises(RedirectRefused) as raised:
        reader.client.repos()

    said = raised.value.board_message or ""
    assert said.startswith("Mogplex answered with a redirect to https://evil.example:8443, another host")
    assert "must not be trusted with the token" in said
    for secret in ("steal", "token=", "mog_abc", "user:pw"):
        assert secret not in said and secret not in str(raised.value)
        assert secret not in caplog.text
    assert "outcome=redirect status=302" in caplog.text
    assert "redirect_to=https://evil.example:8443" in caplog.text


@pytest.mark.parametrize(
    ("base", "location", "advice"),
    [
        (
            "https://www.mogplex.com",
            "https://mogplex.com/api/v1/mogplex/repos?limit=200",
            "redirect to https://mogplex.com, the same site; set MOGPLEX_BASE_URL to https://mogplex.com.",
        ),
        (
            "https://mogplex.com",
            "https://www.mogplex.com/api/v1/mogplex/repos",
            "redirect to https://www.mogplex.com, the same site; set MOGPLEX_BASE_URL to https://www.mogplex.com.",
        ),
        (
            "https://mogplex.com",
            "http://mogplex.com/api/v1/mogplex/repos",
            "redirect to http://mogplex.com, plain http, so it must not be trusted with the token: keep "
            "MOGPLEX_BASE_URL on https and check what answers at it.",
        ),
        (
            "https://mogplex.com",
            "https://mogplex.example.net/x",
            "redirect to https://mogplex.example.net, another host than mogplex.com, so it must not be "
            "trusted with the token unless you know it is Mogplex: check MOGPLEX_BASE_URL.",
        ),
    ],
)
def test_redirect_advice_says_same_site_or_not_to_be_trusted(base: str, location: str, advice: str) -> None:
    assert redirect_advice(base, location) == advice


def test_an_error_sent_with_200_says_what_upstream_said(reader: Reader) -> None:
    reader.sim.inject_fault("ok_false_200", token="reader", count=1)

    with pytest.raises(ProtocolError) as raised:
        reader.client.sandboxes()

    assert raised.value.board_message == (
        "Mogplex answered an error with a success status (200, ok: false): Something went wrong; "
        "the board retries with growing pauses."
    )


def test_an_empty_token_is_refused_before_anything_is_sent(simulator_server: str, reader: Reader) -> None:
    mark = reader.mark()

    with pytest.raises(ValueError, match="'blank' has an empty token"):
        MogplexClient(simulator_server, Source("blank", Token("   ")))

    assert reader.new_requests(mark) == []


def test_a_slow_answer_is_a_timeout(simulator_server: str, reader: Reader) -> None:
    reader.sim.inject_fault("timeout", token="reader", count=1, delay_seconds=1)
    mark = reader.mark()

    with (
        MogplexClient(simulator_server, Source("reader", Token(reader.token)), read_timeout=0.3) as client,
        pytest.raises(UpstreamTimeout) as raised,
    ):
        client.agents()

    assert raised.value.kind == "timeout"
    assert raised.value.status is None
    assert "did not answer" in str(raised.value)
    # The simulator records the request once it has finished sleeping; waiting for it also keeps
    # it out of the next test's record.
    wait_for(lambda: reader.new_requests(mark), timeout=10, what="the timed-out request to be recorded")


def test_a_closed_port_is_unavailable(sim: SimulatorControl) -> None:
    port = closed_port()

    with (
        MogplexClient(f"http://127.0.0.1:{port}", Source("reader", Token(new_pat()))) as client,
        pytest.raises(Unavailable) as raised,
    ):
        client.repos()

    assert raised.value.status is None
    assert f"http://127.0.0.1:{port}" in str(raised.value)


def test_an_unknown_path_on_the_server_is_a_protocol_error(
    simulator_server: str, sim: SimulatorControl
) -> None:
    # A base URL with a path prefix the server does not serve: its 404 page is HTML.
    with (
        MogplexClient(f"{simulator_server}/not-mogplex", Source("reader", Token(new_pat()))) as client,
        pytest.raises(ProtocolError) as raised,
    ):
        client.models()

    assert raised.value.status == 404
    assert "check the base URL" in str(raised.value)


# -- the token never shows ---------------------------------------------------------------


def test_the_token_is_in_no_error_text_log_line_or_repr(
    reader: Reader, simulator_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    run_id = started_run(reader.sim)
    raised: list[BaseException] = []
    for fault in ("401", "403", "429", "500", "502_html", "malformed_json", "ok_false_200", "redirect"):
        reader.sim.inject_fault(fault, token="reader", count=1)
        with pytest.raises(MogplexError) as caught:
            reader.client.run_events(run_id)
        raised.append(caught.value)
    reader.sim.inject_fault("timeout", token="reader", count=1, delay_seconds=1)
    mark = reader.mark()
    slow = MogplexClient(simulator_server, Source("reader", Token(reader.token)), read_timeout=0.2)
    with slow, pytest.raises(UpstreamTimeout) as caught_timeout:
        slow.run(run_id)
    raised.append(caught_timeout.value)
    # Let the simulator finish the abandoned request, so it cannot land in another test's record.
    wait_for(lambda: reader.new_requests(mark), timeout=10, what="the timed-out request to be recorded")
    shown = [repr(slow), str(slow), repr(slow.source)]
    port = closed_port()
    closed = MogplexClient(f"http://127.0.0.1:{port}", Source("reader", Token(reader.token)))
    with closed, pytest.raises(Unavailable) as caught_closed:
        closed.run(run_id)
    raised.append(caught_closed.value)
    with pytest.raises(InvalidId) as caught_invalid:
        reader.client.run(reader.token)
    raised.append(caught_invalid.value)

    assert {type(e).__name__ for e in raised} >= {
        "Unauthorized",
        "Forbidden",
        "RateLimited",
        "Unavailable",
        "ProtocolError",
        "RedirectRefused",
        "UpstreamTimeout",
        "InvalidId",
    }
    for error in raised:
        shown += [str(error), repr(error), "".join(traceback.format_exception(error))]
        chained = error.__cause__ or error.__context__
        while chained is not None:
            shown += [str(chained), repr(chained)]
            chained = chained.__cause__ or chained.__context__
    shown.append(caplog.text)
    shown += [repr(record.__dict__) for record in caplog.records]
    assert all(reader.token not in text for text in shown)
    assert all(reader.token[4:] not in text for text in shown)


def test_one_log_line_per_request_naming_the_endpoint_template(
    reader: Reader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dashboard.mogplex")
    run_id = started_run(reader.sim)

    reader.client.run_events(run_id)
    reader.sim.inject_fault("500", token="reader", count=1)
    with pytest.raises(Unavailable):
        reader.client.run(run_id)
    with pytest.raises(NotFound):
        reader.client.run(MISSING_RUN)
    with pytest.raises(InvalidId):
        reader.client.run("nope")  # nothing sent, nothing logged

    records = [r for r in caplog.records if r.name == "dashboard.mogplex"]
    lines = [LOG_LINE.match(r.getMessage()) for r in records]
    assert all(lines), [r.getMessage() for r in records]
    assert [m.groups() for m in lines if m] == [
        ("reader", "/runs/{id}/events", "ok", "200"),
        ("reader", "/runs/{id}", "unavailable", "500"),
        ("reader", "/runs/{id}", "not_found", "404"),
    ]
    assert [r.levelno for r in records] == [logging.INFO, logging.WARNING, logging.WARNING]
    assert run_id not in caplog.text


def test_a_connection_failure_logs_no_status(caplog: pytest.LogCaptureFixture, sim: SimulatorControl) -> None:
    caplog.set_level(logging.INFO, logger="dashboard.mogplex")
    port = closed_port()

    with (
        MogplexClient(f"http://127.0.0.1:{port}", Source("reader", Token(new_pat()))) as client,
        pytest.raises(Unavailable),
    ):
        client.sandboxes()

    [record] = [r for r in caplog.records if r.name == "dashboard.mogplex"]
    assert record.getMessage().startswith(
        "mogplex source=reader endpoint=/sandboxes outcome=unavailable status=- ms="
    )


# -- small pieces ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("60", 60),
        ("7", 7),
        ("2.5", 2.5),
        (" 30 ", 30),
        (None, 60),
        ("", 60),
        ("soon", 60),
        ("-5", 60),
        ("nan", 60),
    ],
)
def test_retry_after_defaults_to_sixty_when_absent_or_malformed(header: str | None, seconds: float) -> None:
    assert retry_after_seconds(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)

    assert 100 < retry_after_seconds(format_datetime(later, usegmt=True)) <= 120


def test_every_error_class_has_its_own_kind() -> None:
    classes = [
        Unauthorized,
        Forbidden,
        NotFound,
        RateLimited,
        Unavailable,
        UpstreamTimeout,
        ProtocolError,
        RedirectRefused,
        BadRequest,
    ]

    assert sorted(ERROR_KINDS) == sorted(cls.kind for cls in classes)
    assert len(set(ERROR_KINDS)) == len(ERROR_KINDS)
    assert all(str(cls()).endswith(".") for cls in classes)


# -- automations, job runs, readiness, failures -------------------------------------------


def test_automations_page_by_cursor_and_only_a_well_formed_cursor_is_passed_on(reader: Reader) -> None:
    sim = reader.sim
    made = [str(sim.create_automation(USER, name=f"A{n}")["id"]) for n in range(3)]
    mark = reader.mark()

    first = reader.client.automations(limit=2)
    second = reader.client.automations(cursor=first.next_cursor, limit=2)

    assert [a.id for a in first.automations + second.automations] == made[::-1]
    assert first.next_cursor is not None and second.next_cursor is None
    assert not first.cursor_refused
    for bad in ("%%", "abc", "", "eyJ4IjoxfQ"):
        with pytest.raises(ValueError, match="not a cursor Mogplex gave out"):
            reader.client.automations(cursor=bad)
    records = reader.new_requests(mark)
    assert [r["query"] for r in records] == ["limit=2", f"limit=2&cursor={first.next_cursor}"]
    assert {r["status"] for r in records} == {200}


def test_an_automation_has_its_run_summary_and_job_runs(reader: Reader) -> None:
    sim = reader.sim
    automation_id = str(sim.create_automation(USER, name="Review PRs")["id"])
    ok, bad, waiting = (str(sim.create_job_run(automation_id)["id"]) for _ in range(3))
    for job in (ok, bad):
        sim.set_job_run_status(job, "running")
    sim.set_job_run_status(ok, "success")
    sim.set_job_run_status(bad, "failed", error="Agent run exited with code 2.")
    old = str(sim.create_job_run(automation_id, age_seconds=600)["id"])

    automation = reader.client.automation(automation_id)
    runs = reader.client.automation_runs(automation_id, limit=10)
    detail = reader.client.automation_run(automation_id, bad)

    summary = automation.run_summary
    assert (summary.pending_count, summary.running_count, summary.failed_24h) == (2, 0, 1)
    assert summary.last_run_id == waiting  # the newest by creation, not the oldest pending
    assert automation.is_active and automation.published_version is not None
    by_id = {run.id: run for run in runs}
    assert by_id[bad].error == "Agent run exited with code 2." and by_id[bad].is_terminal
    assert by_id[ok].duration_ms is not None and by_id[ok].repo_full_name
    now = datetime.now(UTC)
    assert by_id[old].pending_too_long(now) and not by_id[waiting].pending_too_long(now)
    assert [e.event_type for e in detail.ai_calls[0].events] == ["started", "tool_started", "failed"]
    assert [d.outcome for d in detail.dispatch_events] == ["queued", "started", "failed"]


def test_a_job_run_id_is_not_a_run(reader: Reader) -> None:
    automation_id = str(reader.sim.create_automation(USER)["id"])
    job_run_id = str(reader.sim.create_job_run(automation_id)["id"])

    with pytest.raises(NotFound):
        reader.client.run_events(job_run_id)
    with pytest.raises(ValueError):
        reader.client.automation_runs(automation_id, limit=51)


def test_account_readiness_reads_mogplexs_fields(reader: Reader) -> None:
    reader.sim.set_account(USER, github_state="oauth_connected", allow_platform_sandbox=False)

    user = reader.client.auth_user()

    assert user is not None
    assert (user.github_state, user.github_status_label) == ("oauth_connected", "OAuth only")
    assert not user.github_ready
    assert user.github_primary_action is not None
    assert user.github_primary_action.url("https://mogplex.com") == "https://mogplex.com/api/auth/github"
    assert (user.allow_platform_ai, user.allow_platform_sandbox) == (True, False)
    assert user.vercel.status_label == "Platform ready"
    assert all(repo.installation_id is None for repo in reader.client.repos())
    reader.sim.set_account(USER, user_null=True)
    assert reader.client.auth_user() is None


@pytest.mark.parametrize(
    ("failure_code", "exit_code", "reason"),
    [
        ("model_access_denied", 1, "model not available to this account"),
        ("rate_limited", 1, "the model provider rate-limited the run"),
        ("command_failed", 2, "the agent exited with code 2"),
    ],
)
def test_a_failed_run_gives_one_plain_reason(
    reader: Reader, failure_code: str, exit_code: int, reason: str
) -> None:
    run_id = started_run(reader.sim)
    reader.sim.set_run_status(run_id, "streaming")
    reader.sim.set_run_status(run_id, "failed", failure_code=failure_code, exit_code=exit_code)

    result = reader.client.run_events(run_id)

    outcome = result.outcome()
    assert (outcome.failure_code, outcome.exit_code, outcome.reason) == (failure_code, exit_code, reason)
    assert outcome.terminal_event == "failed" and outcome.delivery is None
    # Mogplex's own sentence stays beside the plain reason.
    assert result.run.error is not None and result.run.error.endswith(("try again.", f"code {exit_code}."))


def test_a_delivery_without_changes_is_not_a_pull_request(reader: Reader) -> None:
    run_id = started_run(reader.sim)
    reader.sim.set_run_status(run_id, "streaming")
    reader.sim.set_run_status(run_id, "success", changed=False)

    outcome = reader.client.run_events(run_id).outcome()

    assert (outcome.terminal_event, outcome.delivery, outcome.reason) == ("finished", "no_changes", None)
    assert outcome.exit_code == 0


def test_sandbox_lifecycle_for_a_timeline(reader: Reader) -> None:
    sandbox_id = str(reader.sim.create_sandbox(USER, status="running")["id"])
    for status in ("pausing", "paused", "running"):
        reader.sim.set_sandbox_status(sandbox_id, status)

    events = reader.client.sandbox_logs(sandbox_id).lifecycle_events

    assert [e.event_type for e in events] == [
        "tab_attached",
        "tab_released",
        "auto_pause_queued",
        "auto_pause_succeeded",
        "resume_after_auto_pause",
        "tab_attached",
    ]
    assert events[3].decision_code == "auto_pause_succeeded"
    assert events[2].payload["grace_period_ms"] == 90_000
    stamps = [e.created_at for e in events]
    assert all(stamps) and stamps == sorted(stamps)  # type: ignore[type-var]
