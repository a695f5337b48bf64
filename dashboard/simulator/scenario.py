"""A seeded scenario: a team at work, so the demo board has something to show.

Like a CI job, it starts runs with ``POST /runs`` over real HTTP against the
simulator itself (the ``ci`` write token, an ``Idempotency-Key``), then registers
each run with the board by POSTing what ``mogplex run --json`` prints to the
board's ingest endpoint. The runs then progress inside the simulator, the way
Mogplex's workers write to its database: sandboxes come up, tools run, logs
stream, and runs end (mostly success, some failed with each of Mogplex's
failure codes, a few cancelled). Sandboxes pause, resume, stop and sometimes
error. Team members' accounts are in every readiness state (``TEAM_ACCOUNTS``),
and the demo user's automations have job runs that succeed, fail or wait.

Every choice comes from generators seeded with ``--seed``; only wall-clock
timing (and the random ids the simulator gives runs) differ between two starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from dashboard.simulator.automations import SOURCE_TYPES
from dashboard.simulator.state import API_PREFIX, SimulatorState

log = logging.getLogger("dashboard.simulator.scenario")

USER = "demo"
# What each demo source's account looks like (see dashboard.demo.DEMO_MEMBERS): between
# them, every GitHub state, no platform access, no usable model, compute not
# configured, and an account Mogplex answers {"user": null} for.
TEAM_ACCOUNTS: dict[str, dict[str, Any]] = {
    USER: {},
    "ada": {"github_state": "oauth_connected"},
    "ben": {"github_state": "app_install_pending", "models_usable": False},
    "cleo": {"github_state": "disconnected", "allow_platform_ai": False, "allow_platform_sandbox": False},
    "dev": {"github_state": "app_installed", "vercel_platform_state": "not_configured"},
    "eve": {"user_null": True},
}
# name, description, status, share of job runs that fail
AUTOMATIONS: tuple[tuple[str, str | None, str, float], ...] = (
    ("Review pull requests", "Reviews every opened pull request", "active", 0.05),
    ("Fix failing CI", "Tries a fix when the main branch goes red", "active", 0.7),
    ("Nightly dependency bump", None, "inactive", 0.0),
)
JOB_RUN_FAILURES = (
    "Agent run exited with code 1.",
    "OpenAI rate-limited this run. Wait a moment, then try again.",
    "Repository is outside this automation's GitHub installation",
)
RETENTION_SECONDS = 48 * 3600
INGEST_RETRY_SECONDS = 5.0
INGEST_QUEUE_CAP = 500

PROMPTS = (
    "Fix the flaky checkout test",
    "Upgrade the payment SDK to v5 and fix the breaking changes",
    "Add pagination to the invoices endpoint",
    "Make the settings page load faster",
    "Write docs for the new webhook retries",
    "Remove the deprecated v1 export job",
    "Add a dark mode toggle to the header",
    "Investigate the 500s on /api/orders since yesterday",
    "Bump Node to 22 in CI and fix what breaks",
    "Add an index for the slow dashboard query",
)
COMMANDS = ("npm test", "npm run lint", "pytest -q", "go test ./...", "npm run build", "git status --short")
FILES = (
    "src/app.ts",
    "src/api/orders.ts",
    "README.md",
    "package.json",
    "tests/test_checkout.py",
    "db/schema.sql",
)
THOUGHTS = (
    "Reading the repository layout",
    "Planning the change",
    "Looking for where the bug comes from",
    "Running the test suite",
    "Checking the change against the linter",
    "Writing a regression test",
    "Committing changes",
)
# How a failed run fails: a harness failure code (Mogplex writes its own sentence), or
# an error outside the harness.
FAILURES: tuple[tuple[str | None, int, str | None], ...] = (
    ("command_failed", 1, None),
    ("command_failed", 2, None),
    ("model_access_denied", 1, None),
    ("rate_limited", 1, None),
    (
        None,
        0,
        "The worker lost its command connection. Its command was stopped; inspect its saved output before retrying.",
    ),
)


class Scenario:
    """The background loop; ``run()`` runs until cancelled (when the server stops)."""

    def __init__(
        self,
        state: SimulatorState,
        *,
        base_url: str,
        write_token: str,
        ingest_url: str,
        ingest_token: str,
        seed: int = 7,
        speed: float = 1.0,
    ) -> None:
        self.state = state
        self.base_url = base_url.rstrip("/")
        self.speed = speed
        self.seed = seed
        self.rng = random.Random(seed)
        self._write_token = write_token
        self._ingest_url = ingest_url
        self._ingest_token = ingest_token
        self._ingest_queue: deque[dict[str, Any]] = deque(maxlen=INGEST_QUEUE_CAP)
        self._ingest_wake = asyncio.Event()
        self._ingest_failing_since: float | None = None
        self._ingest_last_complaint = 0.0
        self._started = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._driven: set[str] = set()
        self._client: httpx.AsyncClient | None = None

    # --- plumbing ---------------------------------------------------------

    async def _sleep(self, scenario_seconds: float) -> None:
        await asyncio.sleep(scenario_seconds / self.speed)

    def _spawn(self, job: Callable[[], Awaitable[None]], what: str) -> None:
        async def guarded() -> None:
            try:
                await job()
            except KeyError:
                pass  # a reset took the run or sandbox away: nothing left to drive
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scenario %s stopped on an error", what)

        task = asyncio.ensure_future(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def client(self) -> httpx.AsyncClient:
        assert self._client is not None, "the scenario is not running"
        return self._client

    def _active_runs(self) -> int:
        return sum(1 for run in self.state.runs.values() if run.scenario and run.active)

    async def run(self) -> None:
        """Start runs, drive them, feed the board; until cancelled."""
        async with httpx.AsyncClient(timeout=10) as client:
            self._client = client
            try:
                await self._wait_for_server()
                log.info(
                    "scenario started (seed %d, speed %g), registering runs at %s",
                    self.seed,
                    self.speed,
                    self._ingest_url,
                )
                self._team_accounts()
                await asyncio.gather(
                    self._starter(),
                    self._ingester(),
                    self._dev_sandboxes(),
                    self._automations(),
                    self._housekeeping(),
                )
            finally:
                for task in list(self._tasks):
                    task.cancel()
                for task in list(self._tasks):
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _wait_for_server(self) -> None:
        # The lifespan starts us before uvicorn listens, so wait until it answers.
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await self.client.get(f"{self.base_url}/_sim/health")).status_code == 200:
                    return
            await asyncio.sleep(0.2)

    # --- starting runs, as a CI job does -------------------------------------

    async def _starter(self) -> None:
        target = self.rng.randint(3, 8)
        retarget_at = time.monotonic() + 300 / self.speed
        pending: tuple[str, dict[str, Any], random.Random] | None = None
        while True:
            if time.monotonic() >= retarget_at:
                target = self.rng.randint(3, 8)
                retarget_at = time.monotonic() + 300 / self.speed
            if pending is None and self._active_runs() < target:
                pending = self._next_request()
            if pending is not None:
                key, body, run_rng = pending
                if await self._start(key, body, run_rng):
                    pending = None
                    await self._sleep(self.rng.uniform(2, 15))
                    continue
            await self._sleep(2)

    def _next_request(self) -> tuple[str, dict[str, Any], random.Random]:
        self._started += 1
        run_rng = random.Random(self.rng.getrandbits(64))
        repo = run_rng.choice(self.state.visible_repos(USER))
        body: dict[str, Any] = {
            "repoId": repo.id,
            "prompt": run_rng.choice(PROMPTS),
            "harness": "codex" if run_rng.random() < 0.6 else "claude-code",
            "createBranch": run_rng.random() < 0.8,
        }
        return f"ci-{self.seed}-{self._started}", body, run_rng

    async def _start(self, key: str, body: dict[str, Any], run_rng: random.Random) -> bool:
        """POST /runs; on success queue the run for the board and drive it. A retry reuses the key."""
        try:
            response = await self.client.post(
                f"{self.base_url}{API_PREFIX}/runs",
                json=body,
                headers={"Authorization": f"Bearer {self._write_token}", "Idempotency-Key": key},
            )
            started = response.json()["data"] if response.status_code == 202 else None
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("scenario could not start a run (%s); retrying", type(exc).__name__)
            return False
        if not isinstance(started, dict):
            log.warning("scenario could not start a run (HTTP %d); retrying", response.status_code)
            return False
        run = self.state.runs.get(str(started.get("runId")))
        if run is None:
            return True
        run.scenario = True
        # A replay answers a retry whose first attempt did reach us; drive each run once.
        if run.id not in self._driven:
            self._driven.add(run.id)
            self._ingest_queue.append(started)
            self._ingest_wake.set()
            self._spawn(functools.partial(self._drive, run.id, run_rng), f"run {run.id}")
        return True

    # --- registering runs with the board ----------------------------------------

    async def _ingester(self) -> None:
        while True:
            if not self._ingest_queue:
                self._ingest_wake.clear()
                await self._ingest_wake.wait()
            await self._ingest_pass()
            if self._ingest_queue:
                await asyncio.sleep(max(0.2, INGEST_RETRY_SECONDS / self.speed))

    async def _ingest_pass(self) -> None:
        failed: list[dict[str, Any]] = []
        reason = ""
        while self._ingest_queue:
            flat = self._ingest_queue.popleft()
            try:
                response = await self.client.post(
                    self._ingest_url, json=flat, headers={"Authorization": f"Bearer {self._ingest_token}"}
                )
                if response.is_success:
                    continue
                if response.status_code in (400, 413, 422):
                    # The board understood and refused this run; sending it again will not help.
                    log.warning("the board refused run %s (HTTP %d)", flat.get("runId"), response.status_code)
                    continue
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            failed.append(flat)
        self._ingest_queue.extend(failed)
        now = time.monotonic()
        if failed:
            if self._ingest_failing_since is None or now - self._ingest_last_complaint > 60:
                # The board may not be up yet; say so now and then, not for every run.
                log.info(
                    "could not register %d run(s) with the board at %s (%s); will retry",
                    len(failed),
                    self._ingest_url,
                    reason,
                )
                self._ingest_last_complaint = now
            self._ingest_failing_since = self._ingest_failing_since or now
        elif self._ingest_failing_since is not None:
            log.info("registering runs with the board at %s works again", self._ingest_url)
            self._ingest_failing_since = None

    # --- a run's life --------------------------------------------------------

    async def _drive(self, run_id: str, rng: random.Random) -> None:
        state = self.state
        total = rng.uniform(60, 180)
        draw = rng.random()
        outcome = "success" if draw < 0.75 else "failed" if draw < 0.92 else "cancelled"
        sandbox_fails = outcome == "failed" and rng.random() < 0.3
        chatty = rng.random() < 0.08
        began = time.monotonic()

        await self._sleep(rng.uniform(3, 10))
        reused = bool(state.runs[run_id].detail.get("sandboxRecordId"))
        run = state.set_run_status(run_id, "streaming", sandbox_pending=True)
        sandbox_id = str(run.detail["sandboxRecordId"])
        await self._sleep(rng.uniform(3, 8))
        if reused:
            # It runs in a sandbox someone else has open, which carries on after the run.
            sandbox_fails = False
        elif sandbox_fails:
            state.set_sandbox_status(
                sandbox_id, "error", error="Sandbox failed to start: image pull timed out"
            )
            state.set_run_status(
                run_id,
                "failed",
                error="The development environment stopped during this agent run. Start it again, then retry.",
            )
            return
        else:
            state.set_sandbox_status(sandbox_id, "installing")
            await self._sleep(rng.uniform(5, 15))
            state.set_sandbox_status(sandbox_id, "running")

        elapsed = (time.monotonic() - began) * self.speed
        working = max(10.0, total - elapsed)
        cancel_at = working * rng.uniform(0.3, 0.8) if outcome == "cancelled" else None
        spent = 0.0
        while spent < working * 0.9:
            spent += await self._step(run_id, rng, chatty)
            if cancel_at is not None and spent >= cancel_at:
                await self._cancel(run_id)
                break
        else:
            if outcome == "success":
                state.deliver(run_id, changed=rng.random() < 0.85)
                await self._sleep(rng.uniform(1, 3))
                state.set_run_status(run_id, "success")
            else:
                failure_code, exit_code, error = rng.choice(FAILURES)
                state.set_run_status(
                    run_id, "failed", failure_code=failure_code, exit_code=exit_code, error=error
                )
        if not reused:
            await self._sandbox_after_run(sandbox_id, rng)

    async def _step(self, run_id: str, rng: random.Random, chatty: bool) -> float:
        """One piece of agent work (a tool call, or a thought); returns scenario seconds spent."""
        state = self.state
        run = state.runs[run_id]
        pause = rng.uniform(2, 8)
        await self._sleep(pause)
        if rng.random() < 0.3:
            state.emit(run, "log", message=rng.choice(THOUGHTS), payload={"stage": "agent"})
            return pause
        tool, started_payload, message = self._tool_call(rng, run.detail)
        state.emit(run, "tool_started", tool_name=tool, message=message, payload=started_payload)
        duration = rng.uniform(1, 10)
        await self._sleep(duration)
        run = state.runs[run_id]
        if chatty:
            # Some runs write a lot: enough to go past the 200 events the API will show.
            for line in range(rng.randint(15, 30)):
                state.emit(
                    run,
                    "log",
                    message=f"PASS tests/unit/case_{line:03d}.test.ts",
                    payload={"stream": "stdout"},
                )
        exit_code = 0 if rng.random() < 0.85 else 1
        output = "\n".join(f"line {n}: ok" for n in range(rng.choice((3, 40, 400))))
        state.emit(
            run,
            "tool_finished",
            tool_name=tool,
            message=f"{tool} finished with exit code {exit_code}",
            payload={"exit_code": exit_code, "duration_ms": int(duration * 1000), "output": output},
        )
        return pause + duration

    @staticmethod
    def _tool_call(rng: random.Random, detail: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
        tool = rng.choice(("bash", "bash", "read_file", "edit_file", "grep", "web_fetch", "git"))
        if tool == "bash":
            command = rng.choice(COMMANDS)
            # Agents echo their environment; Mogplex redacts it on read.
            return (
                tool,
                {"input": {"command": command}, "env": {"CI": "1", "NODE_ENV": "test"}},
                f"$ {command}",
            )
        if tool in ("read_file", "edit_file"):
            path = rng.choice(FILES)
            return tool, {"input": {"path": path}}, f"{tool} {path}"
        if tool == "grep":
            return tool, {"input": {"pattern": "TODO", "path": "src"}}, "grep TODO src"
        if tool == "web_fetch":
            fake = "".join(rng.choice("abcdef0123456789") for _ in range(32))
            return (
                tool,
                {
                    "input": {
                        "url": "https://api.github.com/repos/acme/web/pulls",
                        "headers": {"Authorization": f"Bearer {fake}"},
                    }
                },
                "GET https://api.github.com/repos/acme/web/pulls",
            )
        branch = detail.get("branch") if isinstance(detail.get("branch"), dict) else {}
        working = branch.get("working") if branch else "main"
        fake = "".join(rng.choice("abcdef0123456789") for _ in range(24))
        return (
            tool,
            {
                "input": {"args": ["push", "origin", working]},
                "remote": f"https://x-access-token:{fake}@github.com/acme/web.git",
            },
            f"git push origin {working}",
        )

    async def _cancel(self, run_id: str) -> None:
        """Someone cancels the run, through the API as the CLI would."""
        try:
            response = await self.client.post(
                f"{self.base_url}{API_PREFIX}/runs/{run_id}/cancel",
                headers={"Authorization": f"Bearer {self._write_token}"},
            )
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        # The API was unavailable (a fault, say): cancel from the web app instead.
        run = self.state.runs[run_id]
        self.state.cancel_run(run)

    async def _sandbox_after_run(self, sandbox_id: str, rng: random.Random) -> None:
        state = self.state
        await self._sleep(rng.uniform(20, 60))
        if rng.random() < 0.2:
            # Released, but the check finds it busy and leaves it running for a while.
            state.auto_pause_skip(sandbox_id, "auto_pause_skipped_busy", busy_reason="exec_lock")
            await self._sleep(rng.uniform(20, 60))
        state.set_sandbox_status(sandbox_id, "pausing")
        await self._sleep(rng.uniform(3, 6))
        if rng.random() < 0.1:
            state.set_sandbox_status(sandbox_id, "error", error="Auto-pause failed: provider timeout")
            return
        state.set_sandbox_status(sandbox_id, "paused")
        if rng.random() < 0.25:
            await self._sleep(rng.uniform(30, 90))
            state.set_sandbox_status(sandbox_id, "running")
            await self._sleep(rng.uniform(20, 60))
            state.set_sandbox_status(sandbox_id, "pausing")
            await self._sleep(rng.uniform(3, 6))
            state.set_sandbox_status(sandbox_id, "paused")
        await self._sleep(rng.uniform(60, 180))
        state.set_sandbox_status(sandbox_id, "stopped")

    # --- people's own sandboxes, and housekeeping ----------------------------------

    async def _dev_sandboxes(self) -> None:
        """Preview sandboxes opened from the web app, not by runs: one to three at a time."""
        alive = 0

        async def life(rng: random.Random) -> None:
            nonlocal alive
            alive += 1
            try:
                repo = rng.choice(self.state.visible_repos(USER))
                sandbox = self.state.create_sandbox(USER, repo_id=repo.id, status="creating", scenario=True)
                await self._sleep(rng.uniform(3, 8))
                if rng.random() < 0.05:
                    self.state.set_sandbox_status(
                        sandbox.id, "error", error="Install failed: npm ERR! code ERESOLVE"
                    )
                    return
                self.state.set_sandbox_status(sandbox.id, "installing")
                await self._sleep(rng.uniform(5, 20))
                self.state.set_sandbox_status(sandbox.id, "running")
                for _ in range(rng.randint(1, 3)):
                    await self._sleep(rng.uniform(60, 240))
                    self.state.set_sandbox_status(sandbox.id, "pausing")
                    await self._sleep(rng.uniform(3, 6))
                    self.state.set_sandbox_status(sandbox.id, "paused")
                    await self._sleep(rng.uniform(30, 120))
                    self.state.set_sandbox_status(sandbox.id, "running")
                await self._sleep(rng.uniform(30, 120))
                self.state.set_sandbox_status(sandbox.id, "stopped")
            finally:
                alive -= 1

        target = self.rng.randint(1, 3)
        while True:
            if alive < target:
                rng = random.Random(self.rng.getrandbits(64))
                self._spawn(functools.partial(life, rng), "dev sandbox")
                target = self.rng.randint(1, 3)
            await self._sleep(self.rng.uniform(30, 120))

    def _team_accounts(self) -> None:
        for user, fields in TEAM_ACCOUNTS.items():
            self.state.account_set(user, **fields)

    async def _automations(self) -> None:
        """The demo user's automations; job runs arrive on the active ones and succeed, fail or wait."""
        book = self.state.automations
        self.state.ensure_user(USER)
        repos = self.state.visible_repos(USER)
        installation_id = next(r.installation_id for r in repos if r.installation_id is not None)
        made = [
            (
                book.create(
                    USER,
                    installation_id,
                    name=name,
                    description=description,
                    status=status,
                    published=status == "active",
                ),
                failure_share,
            )
            for name, description, status, failure_share in AUTOMATIONS
        ]
        active = [(automation, share) for automation, share in made if automation.status == "active"]

        async def job(automation_id: str, failure_share: float, rng: random.Random) -> None:
            run = book.run_create(automation_id, rng.choice(repos), source_type=rng.choice(SOURCE_TYPES))
            # Now and then one waits for minutes, as when the dispatcher is backed up.
            await self._sleep(rng.uniform(150, 240) if rng.random() < 0.1 else rng.uniform(5, 20))
            book.run_move(run.id, "running")
            await self._sleep(rng.uniform(20, 90))
            if rng.random() < failure_share:
                book.run_move(run.id, "failed", error=rng.choice(JOB_RUN_FAILURES))
            else:
                book.run_move(run.id, "success" if rng.random() < 0.95 else "cancelled")

        while True:
            automation, share = self.rng.choice(active)
            rng = random.Random(self.rng.getrandbits(64))
            self._spawn(functools.partial(job, automation.id, share, rng), f"job run of {automation.id}")
            await self._sleep(self.rng.uniform(30, 120))

    async def _housekeeping(self) -> None:
        # Over weeks of demo, finished runs would pile up; the board has long let them go.
        while True:
            await self._sleep(600)
            dropped = self.state.prune(self.state.clock() - RETENTION_SECONDS / self.speed)
            self._driven &= set(self.state.runs)
            if dropped:
                log.info("scenario dropped %d finished runs and sandboxes", dropped)
