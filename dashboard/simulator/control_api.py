"""The ``/_sim/`` control surface: set up data, move runs and sandboxes, inject faults, read records.

Plain JSON in and out, no envelope, no authentication, no rate cost, and never
recorded in the request record: it is the test's hand, not a client of Mogplex.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dashboard.simulator.cleaning import dumps
from dashboard.simulator.faults import Fault
from dashboard.simulator.state import SimulatorState


class BadInput(Exception):
    """A control call with a body it cannot use; answered with 400 and the message."""


def _json(payload: Any, status: int = 200) -> Response:
    return Response(dumps(payload), status_code=status, media_type="application/json")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadInput(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object")
    return body


def _opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise BadInput(f"{name} must be a string")
    return value


def _req_str(body: dict[str, Any], name: str) -> str:
    value = _opt_str(body, name)
    if not value:
        raise BadInput(f"{name} is required")
    return value


def _opt_number(body: dict[str, Any], name: str, minimum: float = 0) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise BadInput(f"{name} must be a number of at least {minimum}")
    return float(value)


def _opt_int(body: dict[str, Any], name: str, minimum: int = 0) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadInput(f"{name} must be an integer of at least {minimum}")
    return value


def _field_names(body: dict[str, Any]) -> list[str]:
    fields = body.get("fields")
    if not isinstance(fields, list) or not all(isinstance(name, str) for name in fields):
        raise BadInput("fields must be a list of field names (an empty list serves every field again)")
    return list(fields)


def _since(request: Request) -> tuple[int, int | None]:
    try:
        since = int(request.query_params.get("since") or 0)
        raw_limit = request.query_params.get("limit")
        limit = int(raw_limit) if raw_limit else None
    except ValueError:
        raise BadInput("since and limit must be integers") from None
    return since, limit


Endpoint = Callable[[Request], Awaitable[Response]]


def _guarded(endpoint: Endpoint) -> Endpoint:
    async def wrapper(request: Request) -> Response:
        try:
            return await endpoint(request)
        except BadInput as exc:
            return _json({"error": str(exc)}, 400)
        except KeyError as exc:
            return _json({"error": f"not found: {exc.args[0] if exc.args else ''}"}, 404)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)

    return wrapper


class ControlSurface:
    """Starlette routes for ``/_sim/`` over one ``SimulatorState``."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        spec: list[tuple[str, Endpoint, list[str]]] = [
            ("/health", self.health, ["GET"]),
            ("/tokens", self.register_token, ["POST"]),
            ("/repos", self.repos, ["GET"]),
            ("/runs", self.create_run, ["POST"]),
            ("/runs/{run_id}", self.run, ["GET"]),
            ("/runs/{run_id}/status", self.run_status, ["POST"]),
            ("/runs/{run_id}/events", self.run_events, ["POST"]),
            ("/runs/{run_id}/patch", self.patch_run, ["POST"]),
            ("/runs/{run_id}/owner", self.run_owner, ["POST"]),
            ("/runs/{run_id}/omit", self.run_omit, ["POST"]),
            ("/users/{user}/account", self.account, ["GET", "POST"]),
            ("/automations", self.create_automation, ["POST"]),
            ("/automations/{automation_id}/runs", self.create_job_run, ["POST"]),
            ("/job-runs/{job_run_id}/status", self.job_run_status, ["POST"]),
            ("/sandboxes", self.create_sandbox, ["POST"]),
            ("/sandboxes/{sandbox_id}", self.sandbox, ["GET"]),
            ("/sandboxes/{sandbox_id}/status", self.sandbox_status, ["POST"]),
            ("/sandboxes/{sandbox_id}/lifecycle", self.sandbox_lifecycle, ["POST"]),
            ("/sandboxes/{sandbox_id}/omit", self.sandbox_omit, ["POST"]),
            ("/faults", self.faults, ["GET", "POST", "DELETE"]),
            ("/requests", self.requests, ["GET"]),
            ("/status-changes", self.status_changes, ["GET"]),
            ("/config", self.config, ["GET", "POST"]),
            ("/reset", self.reset, ["POST"]),
        ]
        return [Route(path, _guarded(endpoint), methods=methods) for path, endpoint, methods in spec]

    async def health(self, request: Request) -> Response:
        return _json(
            {
                "ok": True,
                "tokens": len(self.state.tokens_by_name),
                "runs": len(self.state.runs),
                "sandboxes": len(self.state.sandboxes),
            }
        )

    async def register_token(self, request: Request) -> Response:
        body = await _body(request)
        scopes = body.get("scopes", ["read"])
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise BadInput("scopes must be a list of strings")
        record = self.state.register_token(
            _req_str(body, "name"), _req_str(body, "token"), scopes, _opt_str(body, "user")
        )
        # The token itself is never echoed back.
        return _json({"name": record.name, "scopes": list(record.scopes), "user": record.user})

    async def repos(self, request: Request) -> Response:
        user = request.query_params.get("user") or ""
        if not user:
            raise BadInput("user is required")
        self.state.ensure_user(user)
        return _json([{**repo.as_json(), "hidden": repo.hidden} for repo in self.state.user_repos[user]])

    async def create_run(self, request: Request) -> Response:
        body = await _body(request)
        harness = _opt_str(body, "harness") or "codex"
        run = self.state.create_run(
            _req_str(body, "user"),
            repo_id=_opt_str(body, "repo_id"),
            harness=harness,
            base_branch=_opt_str(body, "base_branch"),
            create_branch=bool(body.get("create_branch", False)),
            root_directory=_opt_str(body, "root_directory"),
            prompt=_opt_str(body, "prompt"),
        )
        return _json(run.detail)

    async def run(self, request: Request) -> Response:
        run = self.state.runs[request.path_params["run_id"].lower()]
        return _json(
            {
                "run": run.detail,
                "user": run.user,
                "events": [event.raw_json() for event in run.events],
            }
        )

    async def run_status(self, request: Request) -> Response:
        body = await _body(request)
        run = self.state.set_run_status(
            request.path_params["run_id"],
            _req_str(body, "status"),
            error=_opt_str(body, "error"),
            failure_code=_opt_str(body, "failure_code"),
            exit_code=_opt_int(body, "exit_code"),
            sandbox_pending=bool(body.get("sandbox_pending", False)),
            changed=bool(body.get("changed", True)),
        )
        return _json(run.detail)

    async def run_events(self, request: Request) -> Response:
        body = await _body(request)
        count = _opt_int(body, "count", minimum=1) or 1
        made = self.state.add_events(
            request.path_params["run_id"],
            count,
            type=_opt_str(body, "type") or "log",
            message=_opt_str(body, "message"),
            tool_name=_opt_str(body, "tool_name"),
            payload=body.get("payload"),
        )
        run = self.state.runs[request.path_params["run_id"].lower()]
        return _json({"events": [event.raw_json() for event in made], "event_count": len(run.events)})

    async def patch_run(self, request: Request) -> Response:
        body = await _body(request)
        return _json(self.state.patch_run(request.path_params["run_id"], body).detail)

    async def run_owner(self, request: Request) -> Response:
        body = await _body(request)
        run = self.state.run_owner_set(request.path_params["run_id"], _req_str(body, "user"))
        return _json({"run": run.detail, "user": run.user})

    async def run_omit(self, request: Request) -> Response:
        run = self.state.run_fields_omit(request.path_params["run_id"], _field_names(await _body(request)))
        return _json(run.served_detail())

    async def account(self, request: Request) -> Response:
        user = request.path_params["user"]
        if request.method == "POST":
            body = await _body(request)
            for name, value in body.items():
                wanted = str if name in ("github_state", "vercel_platform_state") else bool
                if not isinstance(value, wanted):
                    raise BadInput(f"{name} must be {'a string' if wanted is str else 'true or false'}")
            self.state.account_set(user, **body)
        return _json({"user": user, **self.state.account(user).as_json()})

    async def create_automation(self, request: Request) -> Response:
        body = await _body(request)
        user = _req_str(body, "user")
        self.state.ensure_user(user)
        installation_id = self.state.user_repos[user][0].installation_id or 1
        automation = self.state.automations.create(
            user,
            installation_id,
            name=_opt_str(body, "name") or "Review pull requests",
            description=_opt_str(body, "description"),
            notes=_opt_str(body, "notes"),
            status=_opt_str(body, "status") or "active",
            published=bool(body.get("published", True)),
        )
        return _json(self.state.automations.detail_json(automation))

    async def create_job_run(self, request: Request) -> Response:
        body = await _body(request)
        automation = self.state.automations.automations[request.path_params["automation_id"].lower()]
        repo_id = _opt_str(body, "repo_id")
        repo = (
            self.state.repo_for(automation.user, repo_id)
            if repo_id
            else self.state.user_repos[automation.user][0]
        )
        run = self.state.automations.run_create(
            automation.id,
            repo,
            source_type=_opt_str(body, "source_type") or "pull_request.opened",
            age_seconds=_opt_number(body, "age_seconds") or 0.0,
        )
        return _json(self.state.automations.run_json(run))

    async def job_run_status(self, request: Request) -> Response:
        body = await _body(request)
        run = self.state.automations.run_move(
            request.path_params["job_run_id"], _req_str(body, "status"), error=_opt_str(body, "error")
        )
        return _json(self.state.automations.run_json(run))

    async def create_sandbox(self, request: Request) -> Response:
        body = await _body(request)
        extra = body.get("extra")
        if extra is not None and not isinstance(extra, dict):
            raise BadInput("extra must be an object of fields to serve verbatim")
        sandbox = self.state.create_sandbox(
            _req_str(body, "user"),
            repo_id=_opt_str(body, "repo_id"),
            status=_opt_str(body, "status") or "running",
            sandbox_id=_opt_str(body, "sandbox_id"),
            preview_url=_opt_str(body, "preview_url"),
            base_branch=_opt_str(body, "base_branch"),
            working_branch=_opt_str(body, "working_branch"),
            root_directory=_opt_str(body, "root_directory"),
            error=_opt_str(body, "error"),
            install_log=_opt_str(body, "install_log"),
            dev_log=_opt_str(body, "dev_log"),
            extra=extra,
        )
        return _json(sandbox.as_json())

    async def sandbox(self, request: Request) -> Response:
        sandbox = self.state.sandboxes[request.path_params["sandbox_id"].lower()]
        return _json(sandbox.logs_json(limit=len(sandbox.lifecycle)))

    async def sandbox_status(self, request: Request) -> Response:
        body = await _body(request)
        sandbox = self.state.set_sandbox_status(
            request.path_params["sandbox_id"], _req_str(body, "status"), error=_opt_str(body, "error")
        )
        return _json(sandbox.as_json())

    async def sandbox_lifecycle(self, request: Request) -> Response:
        body = await _body(request)
        sandbox_id = request.path_params["sandbox_id"]
        self.state.add_lifecycle_events(
            sandbox_id,
            _opt_int(body, "count", minimum=1) or 1,
            event_type=_opt_str(body, "event_type") or "tab_attached",
            decision_code=_opt_str(body, "decision_code"),
            worker_run_id=_opt_str(body, "worker_run_id"),
            payload=body.get("payload"),
        )
        return _json({"lifecycle_event_count": len(self.state.sandboxes[sandbox_id.lower()].lifecycle)})

    async def sandbox_omit(self, request: Request) -> Response:
        sandbox = self.state.sandbox_fields_omit(
            request.path_params["sandbox_id"], _field_names(await _body(request))
        )
        return _json(sandbox.as_json())

    async def faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.state.faults.clear(request.query_params.get("token") or None)
        elif request.method == "POST":
            body = await _body(request)
            status = _opt_int(body, "status", minimum=100)
            self.state.faults.add(
                Fault(
                    kind=str(body.get("kind")),
                    token=_opt_str(body, "token"),
                    remaining=_opt_int(body, "count", minimum=1),
                    delay_seconds=_opt_number(body, "delay_seconds"),
                    status=status,
                    location=_opt_str(body, "location"),
                )
            )
        return _json(self.state.faults.as_json())

    async def requests(self, request: Request) -> Response:
        since, limit = _since(request)
        return _json(self.state.requests.since(since, limit))

    async def status_changes(self, request: Request) -> Response:
        since, limit = _since(request)
        return _json(self.state.status_changes.since(since, limit))

    async def config(self, request: Request) -> Response:
        limiter = self.state.limiter
        if request.method == "POST":
            body = await _body(request)
            window = _opt_number(body, "window_seconds")
            limit = _opt_int(body, "limit", minimum=1)
            if window is not None:
                if window <= 0:
                    raise BadInput("window_seconds must be positive")
                limiter.window_seconds = window
            if limit is not None:
                limiter.limit = limit
        return _json({"window_seconds": limiter.window_seconds, "limit": limiter.limit})

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return _json({"ok": True})
