"""What the poller pays to read one ``/runs/{id}/events`` answer of 200 events.

    .venv/bin/python bench/record_parse.py [--events 200] [--repeat 300]

The body is built the way the simulator serves a busy run (tool calls with
command payloads, long outputs clipped at 2,000 characters, log lines, the
harness events, the ``git_delivery`` log), as bytes. Each timed pass does what
``run_events_fetch`` does with it: decode the envelope, parse the records, and
turn them into the snapshot's JSON-safe dict; a second figure times reading that
dict back (``RunEvents.from_dict``, what the board does when it composes rows).
It prints the median and the 95th percentile over ``--repeat`` passes, in
milliseconds, after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dashboard.mogplex.models import RunEvents, parse_envelope, parse_run_events  # noqa: E402


def _stamp(second: int, micro: int) -> str:
    # Postgres text output: six fraction digits mostly, trailing zeros dropped, sometimes none.
    base = f"2026-08-03T15:{second // 60 % 60:02d}:{second % 60:02d}"
    if micro == 0:
        return f"{base}+00:00"
    return f"{base}.{f'{micro:06d}'.rstrip('0')}+00:00"


def _event(n: int) -> dict[str, Any]:
    kind = ("tool_started", "tool_finished", "log", "log")[n % 4]
    payload: dict[str, Any]
    if kind == "tool_started":
        payload = {"input": {"command": "npm test -- --runInBand"}, "env": "[redacted]"}
    elif kind == "tool_finished":
        payload = {
            "exit_code": 0,
            "duration_ms": 5120 + n,
            "output": "\n".join(f"PASS tests/unit/case_{line:03d}.test.ts" for line in range(60))[:2000],
        }
    else:
        payload = {"stage": "agent", "stream": "stdout"}
    return {
        "id": str(uuid.UUID(int=n, version=4)),
        "type": kind,
        "toolName": "bash" if kind.startswith("tool") else None,
        "message": f"$ npm test (step {n})" if kind.startswith("tool") else f"Reading src/module_{n}.ts",
        "payload": payload,
        "createdAt": _stamp(n, (n * 7919) % 1_000_000 if n % 10 else 0),
    }


def body(events: int) -> bytes:
    run_id = str(uuid.UUID(int=10**30, version=4))
    run = {
        "runId": run_id,
        "aiCallId": str(uuid.UUID(int=10**29, version=4)),
        "repoId": str(uuid.UUID(int=10**28, version=4)),
        "sandboxRecordId": str(uuid.UUID(int=10**27, version=4)),
        "sandboxId": "sbx_0123456789abcdefghij",
        "harness": "codex",
        "status": "streaming",
        "branch": {"base": "main", "working": "mogplex/external/1a2b3c4d-5e6f7a8b", "createBranch": True},
        "rootDirectory": None,
        "eventsUrl": f"/api/v1/mogplex/runs/{run_id}/events",
        "cancelUrl": f"/api/v1/mogplex/runs/{run_id}/cancel",
        "createdAt": "2026-08-03T15:00:00.123456+00:00",
        "updatedAt": "2026-08-03T15:03:20.5+00:00",
        "error": None,
        "runtime": {"provider": "trigger", "runId": "run_abcdefghij0123456789"},
    }
    listed = [_event(n) for n in range(events)]
    listed[0] = {**listed[0], "type": "started", "message": "External Mogplex run accepted", "toolName": None}
    return json.dumps({"ok": True, "data": {"run": run, "events": listed}}).encode()


def _time(passes: int, job: Any) -> list[float]:
    timings = []
    for _ in range(passes):
        started = time.perf_counter()
        job()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _figures(name: str, timings: list[float]) -> None:
    ordered = sorted(timings)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    print(f"{name:<38} median {statistics.median(ordered):7.3f} ms   p95 {p95:7.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    content = body(args.events)
    stored = parse_run_events(parse_envelope(content, 200)).to_dict()

    def fetch() -> None:
        parse_run_events(parse_envelope(content, 200)).to_dict()

    def compose() -> None:
        RunEvents.from_dict(stored)

    for job in (fetch, compose):
        _time(30, job)
    print(f"/runs/{{id}}/events answer: {args.events} events, {len(content):,} bytes")
    _figures("decode + parse + to_dict (the fetch)", _time(args.repeat, fetch))
    _figures("from_dict (reading the snapshot)", _time(args.repeat, compose))


if __name__ == "__main__":
    main()
