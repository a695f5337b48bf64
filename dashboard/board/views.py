"""Board pages: the team overview, run and sandbox pages, the JSON board and the wall kiosk.

Views read snapshots only (a page view costs zero upstream requests) and never
import the Mogplex client. Each refreshing region is a named partial of its
page's template; an htmx poll renders just that partial, or answers 204 when the
page already shows the current board (see ``selectors.unchanged_page``).
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import uuid
import zoneinfo
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import timedelta
from functools import wraps
from typing import Any, cast
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from dashboard import discovery, snapshots
from dashboard.board import acknowledgements, automations_page, run_page, selectors
from dashboard.board.forms import (
    BoardFilterForm,
    KioskParams,
    TrackRunForm,
    default_time_zone,
    kiosk_params_parse,
    quoted,
    time_zone_parse,
)
from dashboard.board.templatetags import age_text, status_word
from dashboard.history import search as history_search
from dashboard.models import DisplayToken, RunSummary
from dashboard.polling.gate import REFUSALS, SOURCE_MESSAGES

# last_seen_at is written at most this often per display, so a wall polling every
# few seconds does not write to the database on every request.
LAST_SEEN_EVERY = timedelta(minutes=1)
# Upstream fields a JSON client may see; our own bookkeeping stays server-side.
_JSON_DROP = frozenset({"freshness", "sig", "needs_attention", "status_known"})


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def board_login_required[V: Callable[..., HttpResponse]](view: V) -> V:
    """``login_required``, except that an htmx poll from a signed-out page is told to go to the
    login page (``HX-Redirect``) instead of having the login form swapped into the board."""
    guarded = login_required(view)

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated and request.headers.get("HX-Request"):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = redirect_to_login(request.get_full_path())["Location"]
            return response
        return guarded(request, *args, **kwargs)

    return cast(V, wrapped)


def _poll_key(request: HttpRequest, page_version: str) -> str:
    """A key binding a page's version to the browser session it was shown to.

    An HMAC (under ``SECRET_KEY``) of the session cookie and the version: the
    page sends it back with each poll, so an unchanged poll can be answered
    without loading the session or the user (see ``answer_unchanged_polls``).
    """
    cookie = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
    return salted_hmac("board.poll", f"{cookie}:{page_version}", algorithm="sha256").hexdigest()[:20]


def answer_unchanged_polls[V: Callable[..., HttpResponse]](view: V) -> V:
    """Answer an htmx poll whose page already shows the current board with 204, before authentication.

    Most polls of an open board find it unchanged, and loading the session and
    the user costs several times what the rest of that answer does. A 204
    carries no board data, so it needs no login check, only proof that this
    browser session was shown this version: the poll's key (``_poll_key``).
    Everything else, a changed board or a key that does not match (the browser
    has signed out, so its session cookie is gone), goes through the full login
    check; an ended session therefore learns nothing beyond "not changed since
    you last saw it", and is sent to the login page on the next change.
    """

    @wraps(view)
    def wrapped(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.htmx:
            version, _, key = request.GET.get("v", "").rpartition(".")
            if version and constant_time_compare(key, _poll_key(request, version)):
                unchanged = selectors.unchanged_page(version)
                if unchanged is not None:
                    return _unchanged_answer(unchanged)
        return view(request, *args, **kwargs)

    return cast(V, wrapped)


def _board_headers(response: HttpResponse) -> HttpResponse:
    response["X-Board-App-Version"] = selectors.app_version()
    response["Cache-Control"] = "no-store"
    patch_vary_headers(response, ["HX-Request"])
    return response


def _unchanged(request: HtmxHttpRequest) -> selectors.UnchangedPage | None:
    sent = request.GET.get("v", "")
    return selectors.unchanged_page(sent) if request.htmx and sent else None


def _unchanged_answer(unchanged: selectors.UnchangedPage) -> HttpResponse:
    """204 for a page that shows the current board, with what it needs to stay true without a swap.

    ``X-Board-Fetched`` (a JSON object: freshness key -> epoch seconds or null)
    is when each badge's data was last fetched, which moves while the board's
    version stands still; ``X-Board-Now`` is the server's clock, so the page's
    clock and ages keep to it. ``board.js`` applies both.
    """
    response = HttpResponse(status=204)
    response["X-Board-Fetched"] = unchanged.fetched
    response["X-Board-Now"] = f"{time.time():.3f}"
    return _board_headers(response)


def _viewer_time_zone(request: HttpRequest) -> tuple[zoneinfo.ZoneInfo, str]:
    """The viewer's zone: ``?tz=`` (remembered in the session), else the session, else the default."""
    asked = request.GET.get("tz", "").strip()
    if asked:
        zone = time_zone_parse(asked)
        if zone is not None:
            request.session["tz"] = asked
            return zone, ""
    remembered = time_zone_parse(request.session.get("tz", "")) if request.session.get("tz") else None
    zone = remembered or default_time_zone()
    if not asked:
        return zone, ""
    return (
        zone,
        f"{quoted(asked)} is not a time zone, so times stay in {zone.key}; use a name like Europe/Paris.",
    )


def _state_context(state: selectors.BoardState) -> dict[str, Any]:
    return {
        "state": state,
        "now": state.now,
        "stale_seconds": settings.BOARD_STALE_SECONDS,
        "app_version": selectors.app_version(),
    }


@require_GET
@answer_unchanged_polls
@board_login_required
def overview(request: HtmxHttpRequest) -> HttpResponse:
    """The team's dashboard: active and finished runs, sandboxes, source health."""
    filter_form = BoardFilterForm(request.GET)
    state = selectors.board_state(filter_form.filters())
    zone, tz_problem = _viewer_time_zone(request)
    query = filter_form.query()
    # ?run= (the bookmarklet) fills the track form in; only its POST changes anything.
    track_form = TrackRunForm({"run": request.GET["run"]}) if request.GET.get("run") else TrackRunForm()
    track_form.is_valid()  # a bad prefill shows its sentence at once
    context = {
        **_state_context(state),
        "tz": zone,
        "tz_problem": tz_problem,
        "filter_form": filter_form,
        "track_form": track_form,
        "track_prefilled": track_form.is_bound,
        "bookmarklet": _bookmarklet(request),
        "poll_url": reverse("overview") + ("?" + urlencode(query) if query else ""),
        "refresh": settings.BOARD_PAGE_REFRESH_SECONDS,
        "filtered": bool(query),
        "poll_version": _poll_version(request, state),
    }
    template = "board/overview.html#board" if request.htmx else "board/overview.html"
    return _board_headers(render(request, template, context))


def _bookmarklet(request: HttpRequest) -> str:
    """The "Track on the board" bookmarklet: opens this dashboard with the current page's address as ?run=.

    The board's address is the one this page was reached at (a host Django allows);
    ``json.dumps`` quotes it as a JavaScript string.
    """
    target = request.build_absolute_uri(reverse("overview")) + "?run="
    return f"javascript:void(open({json.dumps(target)}+encodeURIComponent(location.href)))"


@require_POST
@board_login_required
def track_run(request: HttpRequest) -> HttpResponse:
    """Track a pasted run id or run URL; redirect back on success (POST/redirect/GET)."""
    form = TrackRunForm(request.POST)
    if form.is_valid():
        result = discovery.run_track(run_ids=[form.cleaned_data["run"]], via="form")
        if result.tracked:
            messages.success(request, f"Tracking run {form.cleaned_data['run']}; it appears once fetched.")
        else:
            messages.info(request, f"Run {form.cleaned_data['run']} was already tracked.")
        return redirect("overview")
    state = selectors.board_state()
    zone, _ = _viewer_time_zone(request)
    context = {
        **_state_context(state),
        "tz": zone,
        "filter_form": BoardFilterForm(),
        "track_form": form,
        "bookmarklet": _bookmarklet(request),
        "poll_url": reverse("overview"),
        "refresh": settings.BOARD_PAGE_REFRESH_SECONDS,
        "poll_version": _poll_version(request, state),
    }
    return _board_headers(render(request, "board/overview.html", context, status=400))


def _poll_version(request: HttpRequest, state: selectors.BoardState) -> str:
    """What the overview's poll sends back: the page version and this session's key for it."""
    return f"{state.page_version}.{_poll_key(request, state.page_version)}"


@require_GET
@board_login_required
def run_detail(request: HtmxHttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """One run, live: status, outcome, links and its event timeline, refreshed like the board.

    An htmx poll sends the page's version (``v``); when the run's record would render
    the same page it is answered 204 with the record's fetch time (``run_page``).
    """
    record = snapshots.run_read(str(run_id))
    if record is None:
        return _kept_run_detail(request, run_id)
    now = time.time()
    zone, tz_problem = _viewer_time_zone(request)
    params, problems = run_page.run_page_params(request.GET)
    record = selectors.with_keys(
        record, ("lookup", "error_kind", "error_at", "pr_url", "events_truncated", "source")
    )
    board = snapshots.board_read() or {}
    row = selectors.with_keys(
        next((r for r in board.get("runs", []) if r.get("run_id") == str(run_id)), {}), selectors.RUN_KEYS
    )
    problem = selectors.run_problem(row) if row.get("run_id") else None
    resolution = selectors.problem_resolution(row, problem)
    page = run_page.run_page(record, row, params, now, also=[problem, resolution])
    if resolution is not None and page.overall == "attention":
        # Resolved: the tab title and icon no longer call for attention.
        page = dataclasses.replace(page, overall="clear" if page.final else "active")
    if request.htmx and request.GET.get("v") == page.version:
        return _unchanged_answer(selectors.UnchangedPage(fetched=json.dumps(page.fetched)))
    query = params.query()
    context = {
        "record": record,
        "row": row,
        "run": selectors.run_detail_shape(record.get("run")),
        "run_id": str(run_id),
        "problem": problem,
        "resolution": resolution,
        "stall_reason": selectors.stall_reason(row),
        "page": page,
        "status": page.status,
        "events": page.events,
        "freshness": page.freshness,
        "params": params,
        "problems": problems + ([tz_problem] if tz_problem else []),
        "order_url": reverse("run-detail", args=[run_id])
        + "?"
        + urlencode({**query, "order": "oldest" if params.order == "newest" else "newest"}),
        "poll_url": reverse("run-detail", args=[run_id]) + ("?" + urlencode(query) if query else ""),
        "refresh": settings.BOARD_PAGE_REFRESH_SECONDS,
        "now": now,
        "tz": zone,
        "stale_seconds": settings.BOARD_STALE_SECONDS,
        "app_url": settings.MOGPLEX_APP_URL.rstrip("/") + f"/runs/{run_id}",
        "app_version": selectors.app_version(),
    }
    template = "board/run.html#board" if request.htmx else "board/run.html"
    return _board_headers(render(request, template, context))


def _kept_run_detail(request: HtmxHttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """A finished run whose record has expired from Redis, from its history summary; 404 when neither."""
    summary = RunSummary.objects.filter(run_id=run_id).first()
    if summary is None:
        raise Http404("This run is not tracked, or has not been fetched yet.")
    page = run_page.kept_run_page(
        summary, history_search.run_acknowledgements([str(run_id)]).get(str(run_id), [])
    )
    if request.htmx and request.GET.get("v") == page.version:
        return _unchanged_answer(selectors.UnchangedPage(fetched=json.dumps(page.fetched)))
    zone, tz_problem = _viewer_time_zone(request)
    context = {
        "page": page,
        "summary": summary,
        "status": summary.status,
        "run_id": str(run_id),
        "problems": [tz_problem] if tz_problem else [],
        "now": time.time(),
        "tz": zone,
        "refresh": settings.BOARD_PAGE_REFRESH_SECONDS,
        "retention_hours": settings.BOARD_RETENTION_HOURS,
        "history_url": reverse("history") + "?" + urlencode({"repo": summary.repo_name})
        if summary.repo_name
        else reverse("history"),
        "app_url": settings.MOGPLEX_APP_URL.rstrip("/") + f"/runs/{run_id}",
        "app_version": selectors.app_version(),
    }
    template = "board/run_kept.html#board" if request.htmx else "board/run_kept.html"
    return _board_headers(render(request, template, context))


@require_GET
@board_login_required
def automations(request: HttpRequest) -> HttpResponse:
    """Every source's automations: status, health as Mogplex classifies it, newest job runs."""
    from dashboard.polling.sources import source_names

    sections = automations_page.automations_page(snapshots.board_read(), source_names())
    return _sources_page(request, "board/automations.html", sections)


def _sources_page(request: HttpRequest, template: str, sections: object, **context: object) -> HttpResponse:
    """A page of one section per source (repos, automations), in the viewer's time zone."""
    zone, _ = _viewer_time_zone(request)
    context |= {"sections": sections, "now": time.time(), "tz": zone, "app_version": selectors.app_version()}
    return _board_headers(render(request, template, context))


def _sandbox_find(sandbox_id: str) -> dict[str, Any] | None:
    board = snapshots.board_read() or {}
    for sandbox in board.get("sandboxes", []):
        if str(sandbox.get("id")) == sandbox_id or str(sandbox.get("sandbox_id")) == sandbox_id:
            return selectors.with_keys(sandbox, selectors.SANDBOX_KEYS)
    return None


@require_GET
@board_login_required
def repos(request: HttpRequest) -> HttpResponse:
    """Every repo each source can see, with its runs and sandboxes on the board."""
    from dashboard.board.repos_page import REPOS_CAP, repos_page
    from dashboard.polling.sources import source_names

    sections = repos_page(snapshots.board_read(), source_names())
    return _sources_page(request, "board/repos.html", sections, cap=REPOS_CAP)


@board_login_required
def sandbox_detail(request: HttpRequest, sandbox_id: uuid.UUID) -> HttpResponse:
    """One sandbox: its current row and the status history the board has seen."""
    sandbox = _sandbox_find(str(sandbox_id))
    history = snapshots.sandbox_history_read(str(sandbox_id))
    if sandbox is None and not history:
        raise Http404("The board has not seen this sandbox.")
    now = time.time()
    zone, _ = _viewer_time_zone(request)
    problem = "error" if sandbox is not None and sandbox.get("status") == "error" else None
    context = {
        "sandbox": sandbox,
        "problem": problem,
        "resolution": selectors.problem_resolution(sandbox or {}, problem),
        "sandbox_id": str(sandbox_id),
        "history": list(reversed(history)),
        "now": now,
        "tz": zone,
        "freshness": selectors.freshness(sandbox.get("fetched_at") if sandbox else None, now),
        "stale_seconds": settings.BOARD_STALE_SECONDS,
        "app_version": selectors.app_version(),
    }
    return _board_headers(render(request, "board/sandbox.html", context))


# Logs fetched less than this long ago are shown as they are; older ones are fetched again.
SANDBOX_LOGS_FRESH_SECONDS = 60

SANDBOX_LOG_ERRORS = {
    "not_found": "Mogplex no longer has this sandbox.",
    "forbidden": "The source's token lacks the read scope that sandbox logs need; add it at /settings/api-keys.",
    "unknown_source": "The source that owned this sandbox is no longer configured.",
}


def sandbox_logs_problem(logs: dict[str, Any], now: float) -> str:
    """Why the last ask for a sandbox's logs brought none: the source's real state, in one or two sentences.

    A refusal by the source gate says what held the request back (a 429's pause,
    a back-off, the budget); a failed request says the source's state and its
    sentence, as the sources panel does.
    """
    kind = str(logs.get("error_kind") or "")
    name = str(logs.get("source") or "")
    refused = str(logs.get("refused") or "")
    if kind in SANDBOX_LOG_ERRORS and kind != "forbidden":
        return SANDBOX_LOG_ERRORS[kind]
    if kind == "forbidden" or refused == "denied":
        return SANDBOX_LOG_ERRORS["forbidden"]
    health = snapshots.source_health_read(name) or {}
    retry_at = float(logs.get("retry_at") or 0) or float(health.get("next_try_at") or 0)
    later = f" Next try in {age_text(retry_at - now)}." if retry_at > now else ""
    if kind == "refused" and refused in ("budget", "hold"):
        return f"Source {name}: {REFUSALS[refused]}.{later}"
    state = str(health.get("state") or "")
    if kind != "refused" and kind in SOURCE_MESSAGES:
        state = kind
    elif state == "ok" and refused in ("backoff", "probing"):
        # A first 401 is retried before the source is called unauthorized: say what it was.
        state = str(health.get("last_error_kind") or "")
    if state in SOURCE_MESSAGES and state != "ok":
        message = health.get("message") if health.get("state") == state else None
        return f"Source {name} is {status_word(state)}: {message or SOURCE_MESSAGES[state]}{later}"
    reason = REFUSALS.get(refused, "Mogplex did not answer with the logs")
    return f"Source {name}: {reason}.{later}"


@require_GET
@board_login_required
def sandbox_logs(request: HttpRequest, sandbox_id: uuid.UUID) -> HttpResponse:
    """A sandbox's logs, loaded on request.

    The view never calls Mogplex: it asks the poller for one fetch (a request of
    the owning source's budget, at most one per sandbox per minute) and polls
    this URL until the snapshot has arrived.
    """
    key = str(sandbox_id)
    now = time.time()
    logs = snapshots.sandbox_logs_read(key)
    fresh = logs is not None and now - float(logs["fetched_at"]) < SANDBOX_LOGS_FRESH_SECONDS
    context: dict[str, Any] = {"sandbox_id": key, "logs_requested": True, "logs": logs, "now": now}
    if not fresh:
        sandbox = _sandbox_find(key)
        if sandbox is None or not sandbox.get("source"):
            context["logs_error"] = (
                "The board has no current record of this sandbox, so it cannot ask for its logs."
            )
        else:
            if snapshots.sandbox_logs_request_claim(key, seconds=SANDBOX_LOGS_FRESH_SECONDS):
                from dashboard.polling.tasks import sandbox_logs_fetch

                sandbox_logs_fetch.delay(str(sandbox["source"]), key)
            context["logs_pending"] = True
    elif logs is not None and logs.get("error_kind"):
        context["logs_error"] = sandbox_logs_problem(logs, now)
    return render(request, "board/sandbox.html#logs", context)


ACKNOWLEDGE_SIGN_IN = "Sign in to acknowledge problems on the board; nothing was changed."


def _refused(request: HttpRequest, sentence: str, status: int) -> HttpResponse:
    """One sentence saying what was wrong, with the way back; nothing was changed."""
    context = {"sentence": sentence, "back": _next_url(request), "app_version": selectors.app_version()}
    return _board_headers(render(request, "board/refused.html", context, status=status))


def _next_url(request: HttpRequest) -> str:
    """Where to go back to: the form's ``next`` when it is a page of this site, else the overview."""
    asked = request.POST.get("next", "")
    if asked and url_has_allowed_host_and_scheme(
        asked, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return asked
    return reverse("overview")


def _recompose() -> None:
    """Compose the board now, so the change shows on the next refresh of every page and wall.

    It reads the database and the snapshots only (no upstream request). When
    the poller is composing at this moment, the poller is asked to compose
    once more instead (its snapshot would otherwise miss this change).
    """
    from dashboard.polling.tasks import board_compose

    board_compose()


def _acknowledgement_change(
    request: HttpRequest, target: str, target_id: uuid.UUID, *, undo: bool
) -> HttpResponse:
    if not request.user.is_authenticated:
        return _refused(request, ACKNOWLEDGE_SIGN_IN, 403)
    label = acknowledgements.target_label(target, target_id)
    try:
        if undo:
            acknowledgements.acknowledgement_delete(target=target, target_id=target_id)
            done = f"{label} is no longer acknowledged: it is back in the attention lane if it still needs attention."
        else:
            ack = acknowledgements.acknowledgement_create(
                target=target,
                target_id=target_id,
                user=request.user,
                note=request.POST.get("note", ""),
                now=time.time(),
            )
            word = acknowledgements.PROBLEM_WORDS[ack.problem]
            done = f"{label}: its {word} is acknowledged and has left the attention lane."
    except acknowledgements.AcknowledgementRefused as refused:
        return _refused(request, str(refused), refused.status)
    _recompose()
    messages.success(request, done)
    return redirect(_next_url(request))


@require_POST
def run_acknowledge(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Acknowledge a failed or stalled run (an optional ``note``, at most 200 characters)."""
    return _acknowledgement_change(request, "run", run_id, undo=False)


@require_POST
def run_unacknowledge(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    return _acknowledgement_change(request, "run", run_id, undo=True)


@require_POST
def sandbox_acknowledge(request: HttpRequest, sandbox_id: uuid.UUID) -> HttpResponse:
    """Acknowledge a sandbox in error (an optional ``note``, at most 200 characters)."""
    return _acknowledgement_change(request, "sandbox", sandbox_id, undo=False)


@require_POST
def sandbox_unacknowledge(request: HttpRequest, sandbox_id: uuid.UUID) -> HttpResponse:
    return _acknowledgement_change(request, "sandbox", sandbox_id, undo=True)


@require_POST
def job_run_acknowledge(request: HttpRequest, job_run_id: uuid.UUID) -> HttpResponse:
    """Acknowledge an automation's failed job run, or one pending too long (an optional ``note``)."""
    return _acknowledgement_change(request, "job_run", job_run_id, undo=False)


@require_POST
def job_run_unacknowledge(request: HttpRequest, job_run_id: uuid.UUID) -> HttpResponse:
    return _acknowledgement_change(request, "job_run", job_run_id, undo=True)


DISPLAY_REVOKED = "This display link was revoked; ask an operator for a new one."


def _display_token(raw: str) -> DisplayToken:
    """The display token for ``raw``; 404 (no hint why) when unknown.

    A revoked token is returned as it is (``revoked_at`` set): only a screen that
    holds the exact secret learns that it was revoked, and it should say so
    rather than look like a lost connection.
    """
    token = DisplayToken.objects.filter(token_hash=DisplayToken.hash(raw)).first()
    if token is None:
        raise Http404("Not found.")
    if token.revoked_at is not None:
        return token
    now = timezone.now()
    if token.last_seen_at is None or now - token.last_seen_at >= LAST_SEEN_EVERY:
        # Conditional, so several walls on one token write once a minute between them.
        DisplayToken.objects.filter(pk=token.pk).filter(
            Q(last_seen_at__isnull=True) | Q(last_seen_at__lte=now - LAST_SEEN_EVERY)
        ).update(last_seen_at=now)
    return token


def _row_json(row: dict[str, Any]) -> dict[str, Any]:
    """A row for scripts: its fields, its source, and how fresh its data is (its source's freshness)."""
    data = {k: v for k, v in row.items() if k not in _JSON_DROP}
    fresh = row.get("freshness")
    data["freshness"] = selectors.freshness_json(fresh) if isinstance(fresh, selectors.Freshness) else None
    return data


def _lane_json(item: selectors.LaneItem) -> dict[str, Any]:
    """A lane item for scripts: what it is, its id (a source's name), what is wrong, since when, why."""
    key = {"run": "run_id", "sandbox": "id", "job_run": "id", "source": "name"}[item.kind]
    return {
        "kind": item.kind,
        "id": item.row.get(key),
        "problem": item.problem,
        "began_at": item.began_at,
        "reason": item.reason,
        "resolution": item.resolution,
    }


DISPLAY_UNKNOWN = "This display link is not known; ask an operator for a display link."


# Read-only whatever the method (anything but GET is refused below), so a POST needs no CSRF
# token to be told so in JSON.
@csrf_exempt
def board_json(request: HttpRequest) -> HttpResponse:
    """The board as JSON for scripts and bots: a session login or ``?display=<display token>``.

    Every answer is JSON, errors too (``{"error": "<one sentence>"}``).
    """
    if request.method != "GET":
        response = JsonResponse({"error": "Use GET to read /api/board.json."}, status=405)
        response["Allow"] = "GET"
        return response
    if not request.user.is_authenticated:
        raw = request.GET.get("display", "")
        if not raw:
            return JsonResponse({"error": "Log in, or pass ?display=<display token>."}, status=401)
        try:
            token = _display_token(raw)
        except Http404:
            return JsonResponse({"error": DISPLAY_UNKNOWN}, status=404)
        if token.revoked_at is not None:
            return _board_headers(JsonResponse({"error": DISPLAY_REVOKED}, status=410))
    state = selectors.board_state()
    payload = {
        "state": state.health,
        "stale_sources": state.stale_sources,
        "version": state.version,
        "composed_at": state.composed_at,
        "now": state.now,
        "stale_seconds": settings.BOARD_STALE_SECONDS,
        "poller": {
            "heartbeat_at": state.poller.heartbeat_at,
            "age_seconds": state.poller.age,
            "stale": state.poller.stale,
        },
        "panels": {name: selectors.freshness_json(f) for name, f in state.panels.items()},
        "source_freshness": {name: selectors.freshness_json(f) for name, f in state.source_freshness.items()},
        "active_runs": [_row_json(r) for r in state.active_runs],
        "finished_runs": [_row_json(r) for r in state.finished_runs],
        "attention": [_lane_json(item) for item in state.attention],
        "resolved": [_lane_json(item) for item in state.resolved],
        "failing_since": [{"repo": repo, "since": since} for repo, since in state.failing_since],
        "unknown_status_runs": [_row_json(r) for r in state.unknown_runs],
        "sandboxes": [_row_json(s) for s in state.sandboxes],
        "automations": state.automations,
        "sources": state.sources,
    }
    return _board_headers(JsonResponse(payload))


# The most rows a kiosk panel is sent. The page shows those that fit its screen
# whole and says "+N more" for the rest (board.js); this only bounds the markup,
# and is more than the densest layout fits on a 4K or a portrait screen.
KIOSK_ROWS_SENT = 80
# Resolved problems listed, dimmed, below the lane's unresolved ones.
KIOSK_RESOLVED_SHOWN = 3


@require_GET
def kiosk(request: HtmxHttpRequest, token: str) -> HttpResponse:
    """The wall screen: no login prompt, no chrome, configured by its URL."""
    if _display_token(token).revoked_at is not None:
        return _kiosk_revoked(request)
    params, problems = kiosk_params_parse(request.GET)
    if params is None:
        return render(request, "board/kiosk_problem.html", {"problems": problems}, status=400)
    unchanged = _unchanged(request)
    if unchanged is not None:
        return _unchanged_answer(unchanged)
    state = selectors.board_state(selectors.BoardFilters(repos=params.repos, sources=params.sources))
    context = {
        **_state_context(state),
        "params": params,
        "tz": params.tz,
        "poll_url": _without_version(request),
        "stream_url": reverse("kiosk-stream", args=[token]),
        "refresh": params.refresh,
        "rows": _kiosk_rows(state, params),
    }
    if request.htmx:
        wall = _shared_walls.get(
            (state.page_version, params), lambda: render_to_string(WALL, context, request)
        )
        response = HttpResponse(_SERVER_TIME.sub(f'data-server-time="{time.time():.3f}"', wall, count=1))
    else:
        response = render(request, "board/kiosk.html", context)
    response["X-Robots-Tag"] = "noindex"
    response["Referrer-Policy"] = "no-referrer"
    return _board_headers(response)


WALL = "board/kiosk.html#wall"
_SERVER_TIME = re.compile(r'data-server-time="[0-9.]*"')
# A wall rendered for one poll serves the polls of every wall that shows the same board
# with the same parameters for this long: a pushed change (dashboard/board/push.py)
# brings every open wall's poll at once, and 200 walls then cost one rendering per
# process, not 200. Each answer still carries its own server time (the page's clock);
# the ages it shows are at most this much older, and the page ticks them on.
WALL_SHARED_SECONDS = 1.0


class SharedWalls:
    """Rendered walls by (page version, parameters), each kept ``WALL_SHARED_SECONDS``; one rendering at a time per key."""

    KEPT = 32

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._walls: OrderedDict[Hashable, tuple[float, str]] = OrderedDict()
        self._rendering: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, render: Callable[[], str]) -> str:
        with self._lock:
            rendering = self._rendering.setdefault(key, threading.Lock())
        # Polls that arrive while it is being rendered wait for that rendering.
        with rendering:
            with self._lock:
                kept = self._walls.get(key)
            if kept is not None and time.monotonic() - kept[0] < WALL_SHARED_SECONDS:
                return kept[1]
            wall = render()
            with self._lock:
                self._walls[key] = (time.monotonic(), wall)
                self._walls.move_to_end(key)
                while len(self._walls) > self.KEPT:
                    gone, _ = self._walls.popitem(last=False)
                    self._rendering.pop(gone, None)
            return wall


_shared_walls = SharedWalls()


def _kiosk_revoked(request: HtmxHttpRequest) -> HttpResponse:
    """410 with the sentence: as a page, or (to an open wall's poll) as text the page script shows.

    htmx swaps nothing on a 4xx, so an open wall keeps its markup; ``board.js``
    reads ``X-Board-Problem: revoked`` and hides the board behind the sentence.
    """
    if request.htmx:
        response = HttpResponse(DISPLAY_REVOKED, status=410, content_type="text/plain; charset=utf-8")
        response["X-Board-Problem"] = "revoked"
    else:
        response = render(
            request,
            "board/kiosk_problem.html",
            {"heading": "This display link was revoked", "problems": [DISPLAY_REVOKED]},
            status=410,
        )
    response["X-Robots-Tag"] = "noindex"
    response["Referrer-Policy"] = "no-referrer"
    return _board_headers(response)


def _without_version(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("v", None)
    return request.path + ("?" + query.urlencode() if query else "")


def _kiosk_rows(state: selectors.BoardState, params: KioskParams) -> dict[str, Any]:
    """The rows sent for each panel (at most ``KIOSK_ROWS_SENT``), how many were not sent, and the total."""
    attention_ids = {i.row.get("run_id") for i in state.attention if i.kind == "run"}
    # The attention lane is pinned; the runs panel shows the other live runs.
    runs = [r for r in state.active_runs if r.get("run_id") not in attention_ids]
    up = [
        s for s in state.sandboxes if s["status"] in selectors.SANDBOX_UP_STATUSES or s["status"] == "error"
    ]
    lists: dict[str, list[Any]] = {
        "attention": state.attention,
        # The most recent resolutions only: the wall is for what needs someone.
        "resolved": state.resolved[:KIOSK_RESOLVED_SHOWN],
        "runs": runs,
        "sandboxes": up,
        "sources": state.sources,
    }
    return {
        name: {
            "shown": items[:KIOSK_ROWS_SENT],
            "hidden": max(0, len(items) - KIOSK_ROWS_SENT),
            "total": len(items),
        }
        for name, items in lists.items()
    }


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404: JSON under ``/api/`` (scripts read it), Django's page everywhere else."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"error": "There is no such address; the board's JSON is at /api/board.json."}, status=404
        )
    return defaults.page_not_found(request, exception)
