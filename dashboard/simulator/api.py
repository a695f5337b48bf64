"""The Mogplex API as a client sees it: the proxy, the routes, envelopes, errors and faults.

Checks run in Mogplex's order: the proxy (307 to ``/login`` without a proper
bearer), route and method resolution (404 HTML, 405 with an empty body: no
authentication, no rate cost), then in the route authentication with the rate
limit, scope, parameters and finally data.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from html import escape
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send

from dashboard.simulator.automations import Automation, decode_cursor
from dashboard.simulator.cleaning import dumps
from dashboard.simulator.faults import Fault
from dashboard.simulator.state import API_PREFIX, HARNESSES, SimulatorState, TokenRecord

Handler = Callable[[Request, tuple[str, ...]], Awaitable[Response]]

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# JavaScript's parseInt(v, 10): leading whitespace, an optional sign, ASCII digits.
_INT_PREFIX = re.compile(r"[\s\ufeff]*([+-]?[0-9]+)")
RESOURCE_METADATA_PATH = "/.well-known/oauth-protected-resource/api/v1/mogplex/mcp"

NOT_FOUND_HTML = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>404: This page could not be found.</title>'
    "</head><body><div><h1>404</h1><h2>This page could not be found.</h2></div></body></html>"
)
LOGIN_HTML = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sign in - Mogplex</title></head>'
    '<body><h1>Sign in to Mogplex</h1><form method="post"><button>Continue with GitHub</button></form>'
    "</body></html>"
)
HOME_HTML = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Mogplex (simulator)</title></head>'
    "<body><h1>Mogplex simulator</h1><p>The API is under /api/v1/mogplex; controls under /_sim/.</p>"
    "</body></html>"
)
# The web app's run page (not under the API prefix): ``<app>/runs/<runId>``.
WEB_RUN_PATH = re.compile(r"/runs/([^/]+)")
RUN_PAGE_HTML = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title} - Mogplex (simulator)</title></head>'
    "<body><h1>{title}</h1>{body}</body></html>"
)
BAD_GATEWAY_HTML = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    "<hr><center>cloudflare</center></body></html>"
)


def is_uuid(value: str) -> bool:
    return UUID_RE.match(value) is not None


def parse_limit(raw: str | None, *, default: int = 100, maximum: int = 200) -> int:
    """A list limit as Mogplex reads it (contract section 5); never an error."""
    if raw is None or raw == "":
        return default
    match = _INT_PREFIX.match(raw)
    if match is None:
        return default
    value = int(match.group(1))
    try:
        float(value)
    except OverflowError:
        # parseInt gives Infinity for this many digits, and Infinity is not finite.
        return default
    return min(max(value, 1), maximum)


def first_raw(request: Request, name: str) -> str | None:
    """The first value of a repeated parameter (``QueryParams.get`` would give the last)."""
    values = request.query_params.getlist(name)
    return values[0] if values else None


def first_filter(request: Request, name: str) -> str | None:
    """A string filter: trimmed, and empty means absent."""
    value = first_raw(request, name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _like(q: str) -> re.Pattern[str]:
    # ILIKE '%q%' without escaping, so % and _ in q act as wildcards.
    body = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in q)
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(payload), status_code=status, headers=headers, media_type="application/json")


def ok(data: Any, status: int = 200) -> Response:
    return json_response({"ok": True, "data": data}, status)


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"ok": False, "error": {"code": code, "message": message}}, status, headers)


def origin_of(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def unauthorized(request: Request) -> Response:
    metadata = f"{origin_of(request)}{RESOURCE_METADATA_PATH}"
    return error(
        401,
        "UNAUTHORIZED",
        "Unauthorized",
        headers={"WWW-Authenticate": f'Bearer resource_metadata="{metadata}"'},
    )


def forbidden(scope: str) -> Response:
    return error(
        403,
        "FORBIDDEN",
        f"Missing required scope: {scope}. Issue a new token with the '{scope}' scope at /settings/api-keys.",
    )


def internal_error(message: str) -> Response:
    return error(500, "INTERNAL_ERROR", message)


def not_found_html() -> Response:
    return HTMLResponse(NOT_FOUND_HTML, status_code=404)


def method_not_allowed() -> Response:
    # Next.js's automatic answer: empty body, no Allow header.
    return Response(status_code=405)


class MogplexApi:
    """An ASGI app serving everything outside ``/_sim/``, recording every request."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        write = self._unimplemented_write
        table: list[tuple[str, dict[str, Handler]]] = [
            (r"/repos", {"GET": self._repos}),
            (
                r"/repos/([^/]+)/env-vars",
                {"GET": self._env_vars, "POST": self._env_vars, "DELETE": self._env_vars},
            ),
            (r"/sandboxes", {"GET": self._sandboxes, "POST": write}),
            (r"/sandboxes/([^/]+)/logs", {"GET": self._sandbox_logs}),
            (r"/runs", {"POST": self._start_run}),
            (r"/runs/([^/]+)", {"GET": self._run}),
            (r"/runs/([^/]+)/events", {"GET": self._run_events}),
            (r"/runs/([^/]+)/cancel", {"POST": self._cancel_run}),
            (r"/models", {"GET": self._models}),
            (r"/agents", {"GET": self._agents}),
            (r"/automations", {"GET": self._automations, "POST": write}),
            (r"/automations/([^/]+)", {"GET": self._automation, "PUT": write}),
            (r"/automations/([^/]+)/runs", {"GET": self._automation_runs}),
            (r"/automations/([^/]+)/runs/([^/]+)", {"GET": self._automation_run}),
            (r"/automations/([^/]+)/(?:publish|trigger)", {"POST": write}),
            (r"/automations/([^/]+)/model", {"PUT": write}),
            (r"/mcp", {"POST": self._mcp}),
            (r"/mcp/servers", {"GET": self._mcp_servers}),
        ]
        self.routes = [(re.compile(pattern), methods) for pattern, methods in table]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        """Answer one request (faults first), and add it to the request record."""
        arrived = self.state.clock()
        token_name = self.state.token_name(request.headers.get("authorization"))
        fault = self.state.faults.take(token_name)
        response = await (self._route(request) if fault is None else self._fault(fault, request))
        self.state.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "token_name": token_name,
                "time": arrived,
                "status": response.status_code,
                "idempotency_key": "idempotency-key" in request.headers,
            }
        )
        return response

    async def _fault(self, fault: Fault, request: Request) -> Response:
        kind = fault.kind
        if kind in ("timeout", "slow"):
            await asyncio.sleep(fault.delay)
            return await self._route(request)
        if kind == "malformed_json":
            body = bytes((await self._route(request)).body)
            return Response(
                body[: max(1, len(body) // 2)], status_code=fault.status or 200, media_type="application/json"
            )
        if kind == "malformed_cursor":
            # A nextCursor Mogplex never gives out (mangled on the way): a client must not send it back.
            routed = await self._route(request)
            body = json.loads(bytes(routed.body))
            data = body.get("data") if isinstance(body, dict) else None
            if not (isinstance(data, dict) and isinstance(data.get("nextCursor"), str)):
                return routed
            data["nextCursor"] = "%%" + data["nextCursor"][:12]
            return Response(json.dumps(body), status_code=routed.status_code, media_type="application/json")
        if kind == "429":
            return self._rate_limited(fault.status or 429)
        if kind == "401":
            return unauthorized(request)
        if kind == "403":
            return forbidden("read")
        if kind == "500":
            return (
                internal_error("Internal server error")
                if fault.status is None
                else error(fault.status, "INTERNAL_ERROR", "Internal server error")
            )
        if kind == "502_html":
            return HTMLResponse(BAD_GATEWAY_HTML, status_code=fault.status or 502)
        if kind == "ok_false_200":
            return error(fault.status or 200, "INTERNAL_ERROR", "Something went wrong")
        # redirect: what proxy.ts answers for the www host, or wherever the test says.
        location = fault.location
        if location is None:
            query = f"?{request.url.query}" if request.url.query else ""
            location = f"http://www.{request.url.netloc}{request.url.path}{query}"
        return Response(status_code=fault.status or 308, headers={"location": location})

    def _rate_limited(self, status: int = 429) -> Response:
        seconds = self.state.limiter.retry_after
        return error(
            status,
            "RATE_LIMITED",
            f"Rate limit exceeded. Retry after {seconds}s.",
            headers={"Retry-After": str(seconds)},
        )

    async def _route(self, request: Request) -> Response:
        path = request.url.path
        method = "GET" if request.method == "HEAD" else request.method
        if len(path) > 1 and path.endswith("/"):
            query = f"?{request.url.query}" if request.url.query else ""
            return Response(status_code=308, headers={"location": path.rstrip("/") + query})
        if path == "/api/auth/user":
            return self._auth_user(request) if method == "GET" else method_not_allowed()
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            sub = path[len(API_PREFIX) :]
            if sub != "/mcp" and not self._proxy_passes(request):
                return self._login_redirect(request)
            for pattern, methods in self.routes:
                match = pattern.fullmatch(sub)
                if match is None:
                    continue
                handler = methods.get(method)
                if handler is None:
                    if sub == "/mcp":
                        return Response(status_code=405, headers={"Allow": "POST, OPTIONS"})
                    return method_not_allowed()
                return await handler(request, match.groups())
            return not_found_html()
        if path == "/login" and method == "GET":
            return HTMLResponse(LOGIN_HTML)
        web_run = WEB_RUN_PATH.fullmatch(path)
        if web_run is not None and method == "GET":
            return self._run_page(web_run.group(1))
        if path == "/" and method == "GET":
            return HTMLResponse(HOME_HTML)
        return not_found_html()

    def _run_page(self, run_id: str) -> Response:
        """The web app's run page, ``/runs/<id>``: where "Open in Mogplex" and the bookmarklet land in the demo.

        Mogplex's own page needs a signed-in browser; the stand-in shows any run it holds,
        which is all a demo needs. Every value is escaped (agents write some of them).
        """
        run = self.state.runs.get(run_id.lower()) if is_uuid(run_id) else None
        if run is None:
            return HTMLResponse(
                RUN_PAGE_HTML.format(
                    title="Run not found",
                    body=f"<p>No run {escape(run_id)} here. Runs the simulator started are listed on the board.</p>",
                ),
                status_code=404,
            )
        detail = run.detail
        raw_branch = detail.get("branch")
        branch: dict[str, Any] = raw_branch if isinstance(raw_branch, dict) else {}
        rows = [
            ("Status", detail.get("status")),
            ("Repo", detail.get("repoId")),
            ("Base branch", branch.get("base")),
            ("Working branch", branch.get("working")),
            ("Harness", detail.get("harness")),
            ("Started", detail.get("createdAt")),
            ("Prompt", run.prompt),
        ]
        table = "".join(
            f"<tr><th scope=row>{escape(name)}</th><td>{escape(str(value))}</td></tr>"
            for name, value in rows
            if value not in (None, "")
        )
        return HTMLResponse(
            RUN_PAGE_HTML.format(
                title=f"Run {escape(run.id)}",
                body=f"<table>{table}</table><p>{len(run.events)} events. This is the simulator's "
                "stand-in for the run's page in the Mogplex web app.</p>",
            )
        )

    @staticmethod
    def _proxy_passes(request: Request) -> bool:
        header = request.headers.get("authorization") or ""
        return header.startswith("Bearer ") and header[len("Bearer ") :].strip() != ""

    @staticmethod
    def _login_redirect(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Response(
            status_code=307, headers={"location": f"{origin_of(request)}/login?next={quote(target, safe='')}"}
        )

    # --- authentication -----------------------------------------------------

    def _authenticate(self, request: Request, scope: str | None) -> TokenRecord | Response:
        """The route's checks: a known token (PATs within their rate window), then ``scope``."""
        header = request.headers.get("authorization") or ""
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        record = self.state.tokens_by_value.get(token) if token else None
        if record is None:
            return unauthorized(request)
        if not record.is_pat and not {"read", "write"} & set(record.scopes):
            # An OAuth token must carry read or write to be accepted at all.
            return unauthorized(request)
        if record.is_pat and not self.state.limiter.try_acquire(record.name, self.state.clock()):
            return self._rate_limited()
        if scope is not None and scope not in record.scopes:
            return forbidden(scope)
        return record

    def _auth_user(self, request: Request) -> Response:
        # Public at the proxy, always 200; only PATs are recognised, and they spend budget.
        header = request.headers.get("authorization") or ""
        user = None
        if header.startswith("Bearer "):
            record = self.state.tokens_by_value.get(header[len("Bearer ") :])
            if (
                record is not None
                and record.is_pat
                and self.state.limiter.try_acquire(record.name, self.state.clock())
            ):
                user = self.state.profile(record.user)
        return json_response({"user": user})

    # --- read routes --------------------------------------------------------

    async def _repos(self, request: Request, params: tuple[str, ...]) -> Response:
        caller = self._authenticate(request, None)
        if isinstance(caller, Response):
            return caller
        repo_id = first_filter(request, "id")
        q = first_filter(request, "q")
        limit = parse_limit(first_raw(request, "limit"))
        repos = self.state.visible_repos(caller.user)
        if repo_id is not None:
            repos = [r for r in repos if r.id == repo_id.lower()] if is_uuid(repo_id) else []
        elif q is not None:
            pattern = _like(q)
            repos = [r for r in repos if pattern.search(r.full_name)]
        return ok({"repos": [self.state.repo_json(repo) for repo in repos[:limit]]})

    async def _sandboxes(self, request: Request, params: tuple[str, ...]) -> Response:
        caller = self._authenticate(request, None)
        if isinstance(caller, Response):
            return caller
        repo_id = first_filter(request, "repo_id")
        status = first_filter(request, "status")
        limit = parse_limit(first_raw(request, "limit"))
        if repo_id is not None and not is_uuid(repo_id):
            return internal_error("Failed to list sandboxes")
        found = self.state.sandboxes_for(caller.user, repo_id=repo_id, status=status, limit=limit)
        return ok({"sandboxes": [sandbox.as_json() for sandbox in found]})

    async def _sandbox_logs(self, request: Request, params: tuple[str, ...]) -> Response:
        caller = self._authenticate(request, "read")
        if isinstance(caller, Response):
            return caller
        (record_id,) = params
        if not is_uuid(record_id):
            return internal_error("Failed to load sandbox logs")
        sandbox = self.state.sandboxes.get(record_id.lower())
        if sandbox is None or sandbox.user != caller.user:
            return error(404, "NOT_FOUND", "Sandbox not found")
        return ok(sandbox.logs_json())

    async def _run(self, request: Request, params: tuple[str, ...]) -> Response:
        caller = self._authenticate(request, None)
        if isinstance(caller, Response):
            return caller
        (run_id,) = params
        if not is_uuid(run_id):
            return internal_error("Failed to load run")
        run = self.state.run_for(caller.user, run_id)
        if run is None:
            return error(404, "NOT_FOUND", "Run not found")
        return ok({"run": run.served_detail()})

    async def _run_events(self, request: Request, params: tuple[str, ...]) -> Response:
        caller = self._authenticate(request, None)
        if isinstance(caller, Response):
            return caller
        (run_id,) = params
        limit = parse_limit(first_raw(request, "limit"))
        if not is_uuid(run_id):
            return internal_error("Failed to list events")
        run = self.state.run_for(caller.user, run_id)
        if run is None:
            return error(404, "NOT_FOUND", "Run not found")
        # Built from each event's cached JSON so a poll costs O(events served), not a re-clean.
        events = ",".join(event.served_json() for event in run.events[:limit])
        body = f'{{"ok":true,"data":{{"run":{dumps(run.served_detail())},"events":[{events}]}}}}'
        return Response(body, media_type="application/json")

    async def _models(self, request: Request, params: tuple[str, ...]) -> Response:
        caller = self._authenticate(request, "read")
        if isinstance(caller, Response):
            return caller
        return ok({"models": self.state.models(caller.user)})

    async def _agents(self, request: Request, params: tuple[str, ...]) -> Response:
        caller = self._authenticate(request, "read")
        if isinstance(caller, Response):
            return caller
        self.state.ensure_user(caller.user)
        return ok({"agents": self.state.agents[caller.user][:200]})

    async def _automations(self, request: Request, params: tuple[str, ...]) -> Response:
        caller = self._authenticate(request, "read")
        if isinstance(caller, Response):
            return caller
        # The route reads the raw parameter: an empty cursor is the first page, not an error.
        try:
            cursor = decode_cursor(first_raw(request, "cursor"))
        except ValueError:
            return error(400, "BAD_REQUEST", "Invalid cursor")
        limit = parse_limit(first_raw(request, "limit"), default=50, maximum=100)
        return ok(self.state.automations.page(caller.user, limit=limit, cursor=cursor))

    def _owned_automation(
        self, request: Request, params: tuple[str, ...], failure: str
    ) -> tuple[TokenRecord, Automation] | Response:
        caller = self._authenticate(request, "read")
        if isinstance(caller, Response):
            return caller
        if not all(is_uuid(value) for value in params):
            return internal_error(failure)
        automation = self.state.automations.owned(caller.user, params[0])
        if automation is None:
            return error(404, "NOT_FOUND", "Automation not found")
        return caller, automation

    async def _automation(self, request: Request, params: tuple[str, ...]) -> Response:
        found = self._owned_automation(request, params, "Failed to load automation")
        if isinstance(found, Response):
            return found
        return ok({"automation": self.state.automations.detail_json(found[1])})

    async def _automation_runs(self, request: Request, params: tuple[str, ...]) -> Response:
        found = self._owned_automation(request, params, "Failed to list automation runs")
        if isinstance(found, Response):
            return found
        limit = parse_limit(first_raw(request, "limit"), default=20, maximum=50)
        return ok({"runs": self.state.automations.runs_json(found[1], limit)})

    async def _automation_run(self, request: Request, params: tuple[str, ...]) -> Response:
        found = self._owned_automation(request, params, "Failed to load automation run logs")
        if isinstance(found, Response):
            return found
        run = next((r for r in found[1].runs if r.id == params[1].lower()), None)
        if run is None:
            return error(404, "NOT_FOUND", "Run not found")
        return ok({"run": self.state.automations.run_detail_json(run)})

    async def _mcp_servers(self, request: Request, params: tuple[str, ...]) -> Response:
        caller = self._authenticate(request, "read")
        if isinstance(caller, Response):
            return caller
        return ok({"servers": []})

    async def _env_vars(self, request: Request, params: tuple[str, ...]) -> Response:
        caller = self._authenticate(request, "read" if request.method in ("GET", "HEAD") else "write")
        if isinstance(caller, Response):
            return caller
        return error(501, "SERVICE_UNAVAILABLE", "Environment variables are not available")

    async def _mcp(self, request: Request, params: tuple[str, ...]) -> Response:
        caller = self._authenticate(request, None)
        if isinstance(caller, Response):
            return caller
        return error(501, "SERVICE_UNAVAILABLE", "MCP is not available in the simulator")

    async def _unimplemented_write(self, request: Request, params: tuple[str, ...]) -> Response:
        # Real write routes a launcher does not need; they exist (no 405) but do nothing here.
        caller = self._authenticate(request, "write")
        if isinstance(caller, Response):
            return caller
        return error(501, "SERVICE_UNAVAILABLE", "This write is not available in the simulator")

    # --- writes a launcher uses ---------------------------------------------

    async def _start_run(self, request: Request, params: tuple[str, ...]) -> Response:
        caller = self._authenticate(request, "write")
        if isinstance(caller, Response):
            return caller
        key = (request.headers.get("idempotency-key") or "").strip()
        if not key:
            return error(400, "BAD_REQUEST", "Idempotency-Key header is required")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error(400, "BAD_REQUEST", "Request body must be JSON")
        problem = _run_request_problem(body)
        if problem is not None:
            return error(400, "BAD_REQUEST", f"Invalid request: {problem}")
        request_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        seen = self.state.idempotency.get((caller.user, key))
        if seen is not None:
            seen_hash, seen_run_id = seen
            if seen_hash != request_hash:
                return error(
                    409,
                    "IDEMPOTENCY_CONFLICT",
                    "Idempotency-Key was already used with a different request body",
                )
            replay = self.state.runs.get(seen_run_id)
            if replay is not None:
                return ok({**replay.detail, "replayed": True}, status=202)
        repo = self.state.repo_for(caller.user, body["repoId"])
        if repo is None:
            return error(404, "NOT_FOUND", "Repo not found")
        run = self.state.create_run(
            caller.user,
            repo_id=repo.id,
            harness=body.get("harness") or "codex",
            base_branch=body.get("baseBranch"),
            create_branch=bool(body.get("createBranch")),
            root_directory=body.get("rootDirectory"),
            prompt=body["prompt"],
            idempotency_key=key,
            request_hash=request_hash,
        )
        self.state.idempotency[(caller.user, key)] = (request_hash, run.id)
        # 202 for a new run as for a replay: the run is accepted, not yet started.
        return ok({**run.detail, "replayed": False}, status=202)

    async def _cancel_run(self, request: Request, params: tuple[str, ...]) -> Response:
        caller = self._authenticate(request, "write")
        if isinstance(caller, Response):
            return caller
        (run_id,) = params
        if not is_uuid(run_id):
            return internal_error("Failed to cancel run")
        run = self.state.run_for(caller.user, run_id)
        if run is None:
            return error(404, "NOT_FOUND", "Run not found")
        cancelled, already_terminal = self.state.cancel_run(run)
        return ok(
            {
                "run": cancelled.served_detail(),
                "status": cancelled.detail.get("status"),
                "alreadyTerminal": already_terminal,
            }
        )


def _run_request_problem(body: Any) -> str | None:
    """What is wrong with a ``POST /runs`` body, or ``None``."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    repo_id = body.get("repoId")
    if not isinstance(repo_id, str) or not is_uuid(repo_id):
        return "repoId must be a UUID"
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "prompt is required"
    if body.get("harness") is not None and body["harness"] not in HARNESSES:
        return f"harness must be one of {', '.join(HARNESSES)}"
    for name in ("baseBranch", "rootDirectory"):
        if body.get(name) is not None and not isinstance(body[name], str):
            return f"{name} must be a string"
    if body.get("createBranch") is not None and not isinstance(body["createBranch"], bool):
        return "createBranch must be a boolean"
    return None
