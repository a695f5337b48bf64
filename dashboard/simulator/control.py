"""``SimulatorControl``: a small httpx wrapper over the simulator's ``/_sim/`` calls.

Used by tests, benchmarks and people poking at a running simulator. Every
method is one HTTP call and raises ``httpx.HTTPStatusError`` when the simulator
refuses it (400 for a bad body, 404 for an unknown run or sandbox).
"""

from __future__ import annotations

from typing import Any, cast

import httpx


class SimulatorControl:
    """Drive a running simulator at ``base_url`` (its origin, e.g. ``http://127.0.0.1:8765``)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=f"{self.base_url}/_sim", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SimulatorControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        query = {key: value for key, value in params.items() if value is not None}
        response = self._http.request(method, path, json=body, params=query)
        response.raise_for_status()
        return response.json()

    @staticmethod
    def _given(**fields: Any) -> dict[str, Any]:
        return {key: value for key, value in fields.items() if value is not None}

    # --- setup ----------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", "/health"))

    def register_token(self, name: str, token: str, scopes: list[str], user: str | None = None) -> None:
        """Register a bearer under ``name`` (what records and faults call it); runs belong to ``user``."""
        self._call("POST", "/tokens", self._given(name=name, token=token, scopes=scopes, user=user))

    def repos(self, user: str) -> list[dict[str, Any]]:
        """The user's seeded repos, hidden ones included (with ``hidden: true``)."""
        return cast(list[dict[str, Any]], self._call("GET", "/repos", user=user))

    # --- runs -----------------------------------------------------------------

    def create_run(
        self,
        user: str,
        repo_id: str | None = None,
        harness: str | None = None,
        base_branch: str | None = None,
        create_branch: bool | None = None,
        root_directory: str | None = None,
        prompt: str | None = None,
    ) -> dict[str, Any]:
        """Create a ``pending`` run directly (no rate cost); returns its RunDetail."""
        body = self._given(
            user=user,
            repo_id=repo_id,
            harness=harness,
            base_branch=base_branch,
            create_branch=create_branch,
            root_directory=root_directory,
            prompt=prompt,
        )
        return cast(dict[str, Any], self._call("POST", "/runs", body))

    def run(self, run_id: str) -> dict[str, Any]:
        """``{run, user, events}`` with the events as stored (payloads not cleaned)."""
        return cast(dict[str, Any], self._call("GET", f"/runs/{run_id}"))

    def set_run_status(
        self,
        run_id: str,
        status: str,
        error: str | None = None,
        *,
        failure_code: str | None = None,
        exit_code: int | None = None,
        sandbox_pending: bool | None = None,
        changed: bool | None = None,
    ) -> dict[str, Any]:
        """Move a run, emitting a real run's events; returns the RunDetail.

        ``sandbox_pending``: on ``streaming``, leave ``sandboxId`` as ``"pending"``
        until the sandbox leaves ``creating``. ``changed=False``: on ``success``,
        deliver "No code changes to deliver" instead of a PR. On ``failed``:
        ``failure_code`` (``model_access_denied``, ``rate_limited``,
        ``command_failed``, the default unless only ``error`` is given) and
        ``exit_code`` (default 1) make the harness failure Mogplex reports, with its
        own sentence as the run's ``error``; ``error`` alone is a failure outside
        the harness.
        """
        body = self._given(
            status=status,
            error=error,
            failure_code=failure_code,
            exit_code=exit_code,
            sandbox_pending=sandbox_pending,
            changed=changed,
        )
        return cast(dict[str, Any], self._call("POST", f"/runs/{run_id}/status", body))

    def add_events(
        self,
        run_id: str,
        count: int,
        type: str | None = None,
        message: str | None = None,
        tool_name: str | None = None,
        payload: Any = None,
    ) -> dict[str, Any]:
        """Append ``count`` events; returns ``{events, event_count}``."""
        body = self._given(count=count, type=type, message=message, tool_name=tool_name, payload=payload)
        return cast(dict[str, Any], self._call("POST", f"/runs/{run_id}/events", body))

    def patch_run(self, run_id: str, **fields: Any) -> dict[str, Any]:
        """Overwrite RunDetail fields verbatim (hostile strings, unknown statuses); returns the RunDetail."""
        return cast(dict[str, Any], self._call("POST", f"/runs/{run_id}/patch", fields))

    def set_run_owner(self, run_id: str, user: str) -> None:
        """Hand the run to ``user``: every other user's token now gets 404 "Run not found" for it."""
        self._call("POST", f"/runs/{run_id}/owner", {"user": user})

    def omit_run_fields(self, run_id: str, fields: list[str]) -> dict[str, Any]:
        """Serve the run without these RunDetail fields (``[]`` serves them all again); returns it as served."""
        return cast(dict[str, Any], self._call("POST", f"/runs/{run_id}/omit", {"fields": fields}))

    # --- accounts and automations ------------------------------------------------

    def set_account(self, user: str, **fields: Any) -> dict[str, Any]:
        """Change what decides ``user``'s readiness; returns the account. Fields: ``github_state``
        (``disconnected``, ``oauth_connected``, ``app_install_pending``, ``app_installed``,
        ``app_installed_with_synced_repos``), ``github_app_available``, ``allow_platform_ai``,
        ``allow_platform_sandbox``, ``vercel_platform_state`` (``ready``, ``not_configured``),
        ``models_usable``, ``user_null`` (``/api/auth/user`` answers ``{"user": null}``)."""
        return cast(dict[str, Any], self._call("POST", f"/users/{user}/account", fields))

    def account(self, user: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", f"/users/{user}/account"))

    def create_automation(self, user: str, **fields: Any) -> dict[str, Any]:
        """Create an automation (``name``, ``description``, ``notes``, ``status``, ``published``);
        returns it as ``GET /automations/{id}`` serves it."""
        return cast(dict[str, Any], self._call("POST", "/automations", {"user": user, **fields}))

    def create_job_run(
        self,
        automation_id: str,
        repo_id: str | None = None,
        source_type: str | None = None,
        age_seconds: float | None = None,
    ) -> dict[str, Any]:
        """A ``pending`` job run, created ``age_seconds`` ago; returns its list record."""
        body = self._given(repo_id=repo_id, source_type=source_type, age_seconds=age_seconds)
        return cast(dict[str, Any], self._call("POST", f"/automations/{automation_id}/runs", body))

    def set_job_run_status(self, job_run_id: str, status: str, error: str | None = None) -> dict[str, Any]:
        """Move a job run (``running``, ``success``, ``failed``, ``cancelled``); returns its list record."""
        body = self._given(status=status, error=error)
        return cast(dict[str, Any], self._call("POST", f"/job-runs/{job_run_id}/status", body))

    # --- sandboxes ------------------------------------------------------------

    def create_sandbox(
        self,
        user: str,
        repo_id: str | None = None,
        status: str | None = None,
        preview_url: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Create a sandbox record. More fields: ``sandbox_id``, ``base_branch``, ``working_branch``,
        ``root_directory``, ``error``, ``install_log``, ``dev_log``, ``extra`` (served verbatim)."""
        body = self._given(user=user, repo_id=repo_id, status=status, preview_url=preview_url, **fields)
        return cast(dict[str, Any], self._call("POST", "/sandboxes", body))

    def omit_sandbox_fields(self, sandbox_id: str, fields: list[str]) -> dict[str, Any]:
        """Serve the sandbox without these fields (``[]`` serves them all again); returns it as served."""
        return cast(dict[str, Any], self._call("POST", f"/sandboxes/{sandbox_id}/omit", {"fields": fields}))

    def sandbox(self, sandbox_id: str) -> dict[str, Any]:
        """``{sandbox, lifecycle_events}`` with every lifecycle event (no 200 cap)."""
        return cast(dict[str, Any], self._call("GET", f"/sandboxes/{sandbox_id}"))

    def set_sandbox_status(self, sandbox_id: str, status: str, error: str | None = None) -> dict[str, Any]:
        body = self._given(status=status, error=error)
        return cast(dict[str, Any], self._call("POST", f"/sandboxes/{sandbox_id}/status", body))

    def add_lifecycle_events(
        self,
        sandbox_id: str,
        count: int,
        event_type: str | None = None,
        payload: Any = None,
        decision_code: str | None = None,
    ) -> int:
        """Append lifecycle events; returns how many the sandbox now has."""
        body = self._given(count=count, event_type=event_type, payload=payload, decision_code=decision_code)
        return int(self._call("POST", f"/sandboxes/{sandbox_id}/lifecycle", body)["lifecycle_event_count"])

    # --- faults, records, config ----------------------------------------------

    def inject_fault(
        self,
        kind: str,
        token: str | None = None,
        count: int | None = None,
        delay_seconds: float | None = None,
        status: int | None = None,
        location: str | None = None,
    ) -> list[dict[str, Any]]:
        """Switch a fault on for token name ``token`` (all requests when ``None``); returns the faults in force."""
        body = self._given(
            kind=kind, token=token, count=count, delay_seconds=delay_seconds, status=status, location=location
        )
        return cast(list[dict[str, Any]], self._call("POST", "/faults", body))

    def faults(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._call("GET", "/faults"))

    def clear_faults(self, token: str | None = None) -> None:
        """Switch off every fault, or only those for token name ``token`` (global faults stay then)."""
        self._call("DELETE", "/faults", token=token)

    def requests(self, since: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Recorded requests after sequence number ``since``:
        ``{seq, method, path, query, token_name, time, status, idempotency_key}``."""
        return cast(list[dict[str, Any]], self._call("GET", "/requests", since=since, limit=limit))

    def status_changes(self, since: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Every run status change after ``since``: ``{seq, run_id, status, time}`` (epoch seconds)."""
        return cast(list[dict[str, Any]], self._call("GET", "/status-changes", since=since, limit=limit))

    def configure(self, window_seconds: float | None = None, limit: int | None = None) -> dict[str, Any]:
        """Change the per-PAT rate window; returns the configuration in force."""
        return cast(
            dict[str, Any],
            self._call("POST", "/config", self._given(window_seconds=window_seconds, limit=limit)),
        )

    def reset(self) -> None:
        """Forget runs, sandboxes, records, faults and rate windows (tokens and repos stay)."""
        self._call("POST", "/reset")
