"""One worker process hammering one source through the source gate: threads that admit, call, settle.

Used by tests/test_gate.py and bench/admission.py to put the gate under contention
from several real processes at once (the way Celery worker processes share it).
Each thread loops until ``--seconds`` have passed: ``gate.admit``; when admitted,
one real request to the simulator with the board's client (``/sandboxes``), then
``gate.settle`` with the outcome; when refused, a short random wait. Every admitted
request is written as one JSON line to ``--out``:
``{admitted_at, settled_at, status, until}`` (``until``: the pause a 429 set), and
the refusals by reason to ``<out>.refusals`` (one JSON object).

    python -m tests.gate_hammer --source NAME --threads 8 --seconds 20 --out FILE [--until-ok N]

The process is configured by its environment like a worker (``MOGPLEX_TOKEN_<NAME>``,
``MOGPLEX_BASE_URL``, ``REDIS_URL``, ``DATABASE_URL``, ``DJANGO_SETTINGS_MODULE``).
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time


def hammer(source: str, threads: int, seconds: float, out: str, start_at: float, until_ok: int = 0) -> None:
    from dashboard.mogplex.client import MogplexClient
    from dashboard.mogplex.errors import MogplexError
    from dashboard.polling import gate
    from dashboard.polling.sources import source_client

    lock = threading.Lock()
    lines: list[str] = []
    refusals: dict[str, int] = {}
    oks = [0]
    # Everything imported and every client built before the clock starts: on a loaded
    # machine that alone can take seconds.
    clients = [source_client(source) for _ in range(threads)]
    gate.used(source)
    start_at = max(start_at, time.time())
    deadline = start_at + seconds

    def loop(client: MogplexClient) -> None:
        while time.time() < start_at:
            time.sleep(0.01)
        while time.time() < deadline and not (until_ok and oks[0] >= until_ok):
            admission = gate.admit(source, "/sandboxes")
            if not admission.admitted:
                with lock:
                    refusals[admission.reason] = refusals.get(admission.reason, 0) + 1
                time.sleep(random.uniform(0.002, 0.02))
                continue
            status, until = 200, 0.0
            try:
                client.sandboxes()
                gate.settle(source, "/sandboxes", admission)
            except MogplexError as exc:
                set_until = gate.settle(source, "/sandboxes", admission, exc)
                status = exc.status or 0
                if status == 429:
                    until = set_until
            settled_at = time.time()
            line = json.dumps(
                {"admitted_at": admission.sent_at, "settled_at": settled_at, "status": status, "until": until}
            )
            with lock:
                lines.append(line)
                oks[0] += status == 200
        client.close()

    workers = [threading.Thread(target=loop, args=(client,)) for client in clients]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    with open(out, "w") as file:
        file.write("\n".join(lines) + ("\n" if lines else ""))
    with open(out + ".refusals", "w") as file:
        json.dump(refusals, file)


def violations(records: list[dict[str, float]]) -> list[tuple[dict[str, float], dict[str, float]]]:
    """Pairs (429, request) where the request was admitted after the 429 was settled and before its pause ended."""
    limited = sorted((r for r in records if r["status"] == 429), key=lambda r: r["settled_at"])
    found = []
    for hit in limited:
        for record in records:
            if hit["settled_at"] < record["admitted_at"] < hit["until"]:
                found.append((hit, record))
    return found


def main() -> None:
    import django

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--start-at", type=float, default=0.0, help="epoch to start at, so processes start together"
    )
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--until-ok", type=int, default=0, help="stop after this many 200 answers (0: run --seconds)"
    )
    args = parser.parse_args()
    django.setup()
    hammer(args.source, args.threads, args.seconds, args.out, args.start_at, args.until_ok)


if __name__ == "__main__":
    main()
