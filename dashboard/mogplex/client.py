"""The read-only Mogplex v1 client: the only code in the board that speaks HTTP to Mogplex.

It sends GET, and only to the contract's allow-list (section 10); it has no
method that writes and never sends an ``Idempotency-Key``. It never follows a
redirect: httpx would drop the token on a cross-host hop and land on a login
page, so a 3xx is a configuration error (section 1). Each request is logged once
on ``dashboard.mogplex``, by endpoint template, never with the token.

Retry policy is not here: a failure raises a ``MogplexError`` whose ``kind`` the
poller acts on.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

from dashboard.mogplex.config import API_PREFIX, Source, is_loopback_host, normalize_base_url
from dashboard.mogplex.errors import (
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
from dashboard.mogplex.models import (
    AccountUser,
    Agent,
    AutomationDetail,
    AutomationPage,
    JobRun,
    JobRunDetail,
    Model,
    Repo,
    RunDetail,
    RunEvents,
    Sandbox,
    SandboxLogs,
    automation_cursor_valid,
    decode_json,
    error_message,
    parse_agents,
    parse_auth_user,
    parse_automation,
    parse_automations,
    parse_envelope,
    parse_job_run,
    parse_job_runs,
    parse_models,
    parse_repos,
    parse_run,
    parse_run_events,
    parse_sandbox_logs,
    parse_sandboxes,
)

logger = logging.getLogger("dashboard.mogplex")

USER_AGENT = "mogplex-status-board/0.1"
MAX_LIMIT = 200
MAX_AUTOMATIONS_LIMIT = 100
MAX_JOB_RUNS_LIMIT = 50
DEFAULT_RETRY_AFTER = 60.0

# The only requests this client can make: path template -> whether it hangs off
# the API base (True) or the origin base (False). Each ``{id}`` is a UUID.
ALLOWED_ENDPOINTS: Mapping[str, bool] = {
    "/repos": True,
    "/sandboxes": True,
    "/sandboxes/{id}/logs": True,
    "/runs/{id}": True,
    "/runs/{id}/events": True,
    "/models": True,
    "/agents": True,
    "/automations": True,
    "/automations/{id}": True,
    "/automations/{id}/runs": True,
    # The automation's id, then the job run's.
    "/automations/{id}/runs/{id}": True,
    "/api/auth/user": False,
}

T = TypeVar("T")


def validate_uuid(value: str) -> str:
    """``value`` as a lowercase canonical UUID, or ``InvalidId``: upstream answers 500 to a non-UUID id."""
    text = value.strip() if isinstance(value, str) else ""
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        parsed = None
    # uuid.UUID also accepts braces, urn: prefixes and bare hex, which upstream does not.
    if parsed is None or str(parsed) != text.lower():
        # The value is not echoed: a token pasted into the wrong field must not end up in a log.
        raise InvalidId("That is not a Mogplex id; ids are UUIDs like 3f2a9c1e-0000-4000-8000-000000000000.")
    return text.lower()


class MogplexClient:
    """Read-only access to one Mogplex account (a ``Source``) at one base URL.

    ``base_url`` is an origin (``https://mogplex.com``) or origin + ``/api/v1/mogplex``.
    Use it as a context manager, or call ``close()``. Every method sends exactly
    one GET and raises a ``MogplexError`` subclass on failure, ``InvalidId``
    (before sending anything) for an id that is not a UUID.
    """

    def __init__(
        self,
        base_url: str,
        source: Source,
        *,
        connect_timeout: float = 5,
        read_timeout: float = 15,
    ) -> None:
        if not source.token.reveal():
            # An empty bearer would not reach the API at all: the proxy sends it to the login page.
            raise ValueError(f"source '{source.name}' has an empty token; set its Mogplex token.")
        self.base_url = normalize_base_url(base_url)
        self.api_base = self.base_url + API_PREFIX
        self.source = source
        self._http = httpx.Client(
            follow_redirects=False,
            timeout=httpx.Timeout(
                connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
            ),
            headers={
                "Authorization": f"Bearer {source.token.reveal()}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
        )

    def __repr__(self) -> str:
        return f"MogplexClient(base_url={self.base_url!r}, source={self.source.name!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- the endpoints ------------------------------------------------------------

    def repos(self) -> tuple[Repo, ...]:
        """The user's repos, sorted by full name (at most 200)."""
        return self._get("/repos", lambda r: parse_repos(_data(r)), params={"limit": MAX_LIMIT})

    def sandboxes(self) -> tuple[Sandbox, ...]:
        """The user's sandboxes, most recently active first (at most 200)."""
        return self._get("/sandboxes", lambda r: parse_sandboxes(_data(r)), params={"limit": MAX_LIMIT})

    def sandbox_logs(self, sandbox_id: str) -> SandboxLogs:
        """One sandbox with its logs and lifecycle events; ``sandbox_id`` is the record id. Needs ``read``."""
        return self._get("/sandboxes/{id}/logs", lambda r: parse_sandbox_logs(_data(r)), path_id=sandbox_id)

    def run(self, run_id: str) -> RunDetail:
        """One run's state. Prefer ``run_events``, which costs the same and brings the events."""
        return self._get("/runs/{id}", lambda r: parse_run(_data(r)), path_id=run_id)

    def run_events(self, run_id: str, limit: int = MAX_LIMIT) -> RunEvents:
        """A run's state and its first ``limit`` events (oldest first), in one request.

        ``limit`` is 1..200; ``RunEvents.truncated(limit)`` says whether later events are hidden.
        """
        _check_limit(limit, MAX_LIMIT, "events")
        return self._get(
            "/runs/{id}/events",
            lambda r: parse_run_events(_data(r), server_date=_server_date(r)),
            path_id=run_id,
            params={"limit": limit},
        )

    def models(self) -> tuple[Model, ...]:
        """The models the user may use. Needs ``read``."""
        return self._get("/models", lambda r: parse_models(_data(r)))

    def agents(self) -> tuple[Agent, ...]:
        """Preset agents, then the user's own. Needs ``read``."""
        return self._get("/agents", lambda r: parse_agents(_data(r)))

    def automations(self, cursor: str | None = None, limit: int = MAX_AUTOMATIONS_LIMIT) -> AutomationPage:
        """One page of the user's automations, newest first. Needs ``read``.

        ``cursor`` is a page's ``next_cursor`` (``None`` for the first page); one
        Mogplex would refuse (400 ``Invalid cursor``) raises ``ValueError`` before
        anything is sent. ``limit`` is 1..100.
        """
        if cursor is not None and not automation_cursor_valid(cursor):
            raise ValueError("That is not a cursor Mogplex gave out; start again from the first page.")
        _check_limit(limit, MAX_AUTOMATIONS_LIMIT, "automations")
        params: dict[str, int | str] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        return self._get("/automations", lambda r: parse_automations(_data(r)), params=params)

    def automation(self, automation_id: str) -> AutomationDetail:
        """One automation with its ``runSummary``. Needs ``read``."""
        return self._get("/automations/{id}", lambda r: parse_automation(_data(r)), path_id=automation_id)

    def automation_runs(self, automation_id: str, limit: int = MAX_JOB_RUNS_LIMIT) -> tuple[JobRun, ...]:
        """An automation's newest job runs (``limit`` 1..50). Their ids are job-run ids: never ``run_events`` them."""
        _check_limit(limit, MAX_JOB_RUNS_LIMIT, "job runs")
        return self._get(
            "/automations/{id}/runs",
            lambda r: parse_job_runs(_data(r)),
            path_id=automation_id,
            params={"limit": limit},
        )

    def automation_run(self, automation_id: str, job_run_id: str) -> JobRunDetail:
        """One job run with its dispatch events and AI calls (raw upstream, clipped here). Needs ``read``.

        It carries every AI call's events, so fetch it on request only.
        """
        return self._get(
            "/automations/{id}/runs/{id}",
            lambda r: parse_job_run(_data(r)),
            path_id=(automation_id, job_run_id),
        )

    def auth_user(self) -> AccountUser | None:
        """Who the token belongs to, or ``None``, which upstream also says for a rate-limited token.

        It spends budget and has side effects upstream, so call it rarely.
        """
        return self._get("/api/auth/user", lambda r: parse_auth_user(decode_json(r.content, r.status_code)))

    # -- the one way out ----------------------------------------------------------

    def _get(
        self,
        template: str,
        parse: Callable[[httpx.Response], T],
        *,
        path_id: str | tuple[str, ...] | None = None,
        params: Mapping[str, int | str] | None = None,
    ) -> T:
        """Send one GET to an allow-listed endpoint, classify the answer, parse it, log it once.

        ``path_id`` fills the template's ``{id}`` places in order (one id, or a tuple of them).
        """
        on_api_base = ALLOWED_ENDPOINTS.get(template)
        if on_api_base is None:
            raise ValueError(f"{template} is not on the read-only allow-list; the board never calls it.")
        ids = () if path_id is None else (path_id,) if isinstance(path_id, str) else path_id
        if template.count("{id}") != len(ids):
            raise ValueError(f"{template} needs {template.count('{id}')} id(s) in its path.")
        path = template
        for one in ids:
            path = path.replace("{id}", validate_uuid(one), 1)
        url = (self.api_base if on_api_base else self.base_url) + path

        started = time.monotonic()
        status, outcome = self._exchange(url, template, params, parse)
        ms = round((time.monotonic() - started) * 1000)
        kind = outcome.kind if isinstance(outcome, MogplexError) else "ok"
        redirect_to = (
            f" redirect_to={_origin(outcome.location)}"
            if isinstance(outcome, RedirectRefused) and outcome.location
            else ""
        )
        logger.log(
            logging.WARNING if isinstance(outcome, MogplexError) else logging.INFO,
            "mogplex source=%s endpoint=%s outcome=%s status=%s ms=%d%s",
            self.source.name,
            template,
            kind,
            "-" if status is None else status,
            ms,
            redirect_to,
            extra={
                "mogplex_source": self.source.name,
                "mogplex_endpoint": template,
                "mogplex_outcome": kind,
                "mogplex_status": status,
                "mogplex_ms": ms,
            },
        )
        if isinstance(outcome, MogplexError):
            # Raised here, outside any ``except`` block, so no httpx exception
            # (which holds the request and its Authorization header) rides
            # along as ``__context__``.
            raise outcome
        return outcome

    def _exchange(
        self,
        url: str,
        template: str,
        params: Mapping[str, int | str] | None,
        parse: Callable[[httpx.Response], T],
    ) -> tuple[int | None, T | MogplexError]:
        """The HTTP status (None if nothing answered) and the parsed result or the failure."""
        response = self._send(url, template, params)
        if isinstance(response, MogplexError):
            return None, response
        status = response.status_code
        try:
            return status, parse(self._check(response, template))
        except ProtocolError as exc:
            if exc.status is None:
                # A shape error from the models: say where and with which status it came.
                return status, ProtocolError(
                    f"Mogplex at {self.base_url} answered {status} to GET {template} with an "
                    f"unexpected shape: {exc}",
                    status=status,
                )
            return status, exc
        except MogplexError as exc:
            return status, exc

    def _send(
        self, url: str, template: str, params: Mapping[str, int | str] | None
    ) -> httpx.Response | MogplexError:
        where = f"Mogplex at {self.base_url}"
        try:
            return self._http.get(url, params=params)
        except httpx.TimeoutException:
            return UpstreamTimeout(
                f"{where} did not answer GET {template} in time; check the base URL and the network, "
                "then try again."
            )
        except httpx.TransportError as exc:
            # The class name says what happened (ConnectError, ReadError, ...);
            # its text is left out because httpx may quote the request in it.
            return Unavailable(
                f"{where} could not be reached for GET {template} ({type(exc).__name__}); "
                "check the base URL and that Mogplex is up."
            )

    def _check(self, response: httpx.Response, template: str) -> httpx.Response:
        """Return a 2xx response; raise the error class for anything else."""
        status = response.status_code
        where = f"Mogplex at {self.base_url}"
        if 200 <= status < 300:
            return response
        if 300 <= status < 400:
            raise self._redirect(response)
        upstream = error_message(response.content)
        if status == 401:
            raise Unauthorized(
                f"{where} rejected the token of source '{self.source.name}' (401); fix the token: "
                "it is missing, invalid, expired or revoked.",
                status=status,
            )
        if status == 403:
            # Upstream's message names the missing scope and where to issue a token with it.
            advice = upstream or "a scope is missing; add the scope to the token."
            raise Forbidden(
                f"{where} refused GET {template} for source '{self.source.name}' (403): {advice}",
                status=status,
            )
        if status == 429:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            raise RateLimited(
                f"{where} rate-limited source '{self.source.name}' (429); respect the rate limit: "
                f"send nothing on this token for {retry_after:g} s.",
                retry_after=retry_after,
                status=status,
            )
        if status == 404 and upstream is not None:
            raise NotFound(
                f"{where} answered 404 to GET {template} for source '{self.source.name}' ({upstream}); "
                "the id does not exist or belongs to another account.",
                status=status,
            )
        if status == 404:
            # An HTML 404 is an unknown path, not an unknown id: the base URL is wrong.
            raise ProtocolError(
                f"{where} answered 404 without a Mogplex error to GET {template}; "
                "check the base URL points at Mogplex.",
                status=status,
            )
        if status >= 500:
            detail = f" ({upstream})" if upstream else ""
            raise Unavailable(
                f"{where} failed with {status} on GET {template}{detail}; it is an upstream problem, "
                "try again later.",
                status=status,
            )
        if 400 <= status < 500:
            detail = f" ({upstream})" if upstream else ""
            raise BadRequest(
                f"{where} rejected GET {template} with {status}{detail}; the board sent a request "
                "Mogplex does not accept, report it as a bug.",
                status=status,
            )
        raise ProtocolError(
            f"{where} answered GET {template} with status {status}; check the base URL points at Mogplex.",
            status=status,
        )

    def _redirect(self, response: httpx.Response) -> RedirectRefused:
        status = response.status_code
        where = f"Mogplex at {self.base_url}"
        raw_location = response.headers.get("Location")
        if not raw_location:
            return RedirectRefused(
                f"{where} answered {status} redirect without a Location; check MOGPLEX_BASE_URL.",
                status=status,
                board_message="Mogplex answered with a redirect without a Location; check MOGPLEX_BASE_URL.",
            )
        location = urljoin(str(response.request.url), raw_location)
        if urlsplit(location).path.startswith("/login"):
            advice = (
                "redirect to its login page, so the bearer token did not reach the API; check "
                "MOGPLEX_TOKEN and that no proxy strips the Authorization header."
            )
            return RedirectRefused(
                f"{where} answered {status} {advice}",
                status=status,
                location=location,
                board_message=f"Mogplex answered with a {advice}",
            )
        advice = redirect_advice(self.base_url, location)
        return RedirectRefused(
            f"{where} answered {status} {advice}",
            status=status,
            location=location,
            board_message=f"Mogplex answered with a {advice}",
        )


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: never its path, query or credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def redirect_advice(base_url: str, location: str) -> str:
    """What to do about a redirect from ``base_url`` to ``location``, starting "redirect to <origin>".

    A redirect between the www and the bare host of one name (Mogplex's own proxy sends
    www to the apex) is the same site: point the base URL there. A redirect to another
    host, or to plain http from https, must not be trusted with the token.
    """
    try:
        target = _origin(location)
        target_host = (urlsplit(location).hostname or "").lower()
    except ValueError:
        return "redirect to an address that is not a URL; check MOGPLEX_BASE_URL."
    base = urlsplit(base_url)
    base_host = (base.hostname or "").lower()
    scheme = urlsplit(location).scheme.lower()
    untrusted = "it must not be trusted with the token"
    if scheme not in {"http", "https"}:
        return f"redirect to a {scheme or 'relative'} address; {untrusted}: check MOGPLEX_BASE_URL."
    if scheme == "http" and base.scheme == "https":
        return (
            f"redirect to {target}, plain http, so {untrusted}: keep MOGPLEX_BASE_URL on https and "
            "check what answers at it."
        )
    if target_host.removeprefix("www.") != base_host.removeprefix("www."):
        return (
            f"redirect to {target}, another host than {base_host}, so {untrusted} unless you know it "
            "is Mogplex: check MOGPLEX_BASE_URL."
        )
    if scheme == "http" and not is_loopback_host(target_host):
        return (
            f"redirect to {target}, the same site over plain http, so {untrusted}: use its https "
            "address in MOGPLEX_BASE_URL."
        )
    return f"redirect to {target}, the same site; set MOGPLEX_BASE_URL to {target}."


# -- reading a response -----------------------------------------------------------


def _check_limit(limit: int, most: int, what: str) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise ValueError(f"limit is {limit!r}; Mogplex returns 1 to {most} {what}.")


def _data(response: httpx.Response) -> Any:
    return parse_envelope(response.content, response.status_code)


def retry_after_seconds(value: str | None) -> float:
    """Seconds from a ``Retry-After`` (delta-seconds or HTTP date); 60 when absent or malformed."""
    if value is None:
        return DEFAULT_RETRY_AFTER
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    if not math.isfinite(seconds) or seconds < 0:
        return DEFAULT_RETRY_AFTER
    return seconds


def _server_date(response: httpx.Response) -> datetime | None:
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
