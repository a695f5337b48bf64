"""The history page and its CSV export with 100 000 finished runs, on SQLite or PostgreSQL.

Fills a fresh database with ``manage.py history_fill``'s synthetic runs (100 000 over
90 days, 40 repos, 8 sources), then, through Django's test client with a signed-in
user (session and user loaded from the database on every request, as in production):

1. the history page: the first page, a filtered page (a busy repo's failures), a
   source's last week, a free-text search in the error, and a deep page (page 100);
   ``--requests`` each, target p50 <= 50 ms for the first and the filtered page;
2. the trends page over 7, 30 and 90 days (``--requests`` / 8 each; target p50 <= 150 ms);
3. the CSV export of about 10 000 rows (a date range): time to the first row,
   the whole export, and the most memory Python held while streaming it (tracemalloc),
   against what holding the same rows as model instances takes.

    .venv/bin/python bench/history.py                      # SQLite, in a temporary folder
    .venv/bin/python bench/history.py --database-url postgres://board@127.0.0.1:55432/board

With PostgreSQL, a database ``bench_history_<pid>`` is created on that server and dropped after;
after the fill it is ``VACUUM ANALYZE``d (SQLite: ``ANALYZE``), as autovacuum would a table
that had that many inserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _pg_database(url: str, create: bool) -> str:
    """Create (or drop) a database of our own beside the one ``url`` names; its URL."""
    import psycopg

    parts = urlsplit(url)
    name = f"bench_history_{os.getpid()}"
    admin = urlunsplit(parts._replace(scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if create:
            conn.execute(f"CREATE DATABASE {name}")
        else:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return urlunsplit(parts._replace(path="/" + name))


def timed(call: object, n: int) -> dict[str, float]:
    """Wall-clock p50/p90/max in ms, and the p50 of this process's CPU time (what a busy machine does not inflate)."""
    times, cpu = [], []
    for _ in range(n):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    times.sort()
    return {
        "p50": statistics.median(times),
        "p90": times[int(len(times) * 0.9) - 1],
        "max": times[-1],
        "cpu": statistics.median(cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="", help="a PostgreSQL server to run on (default: SQLite)")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()

    var = tempfile.mkdtemp(prefix="bench-history-")
    for name in list(os.environ):
        if name.startswith(("MOGPLEX_", "DATABASE_URL", "REDIS_URL")):
            del os.environ[name]
    os.environ["BOARD_VAR_DIR"] = var
    os.environ["DJANGO_SETTINGS_MODULE"] = "dashboard.settings"
    pg = bool(args.database_url)
    os.environ["DATABASE_URL"] = (
        _pg_database(args.database_url, True) if pg else f"sqlite:///{var}/bench.sqlite3"
    )
    try:
        run(args, pg)
    finally:
        if pg:
            from django.db import connections

            connections.close_all()
            _pg_database(args.database_url, False)


def run(args: argparse.Namespace, pg: bool) -> None:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from dashboard.history.synthetic import history_fill
    from dashboard.models import RunSummary

    call_command("migrate", verbosity=0)
    start = time.perf_counter()
    made = history_fill(runs=args.runs)
    fill_s = time.perf_counter() - start
    with connection.cursor() as cursor:
        # What autovacuum does to a table that has had this many inserts (on PostgreSQL the
        # visibility map lets the trends' index-only scans skip the heap).
        cursor.execute("VACUUM ANALYZE" if pg else "ANALYZE")
        if pg:
            # The test server (.ci/postgres) commits asynchronously, and a VACUUM straight after
            # the fill marks no page all-visible (seen: 0 of 3,549); a second or two later it
            # marks them all, as autovacuum would, a while after the inserts.
            deadline = time.monotonic() + 20
            while True:
                cursor.execute(
                    "SELECT relpages, relallvisible FROM pg_class WHERE relname = %s",
                    [RunSummary._meta.db_table],
                )
                pages, visible = cursor.fetchone()
                if visible >= 0.99 * pages or time.monotonic() > deadline:
                    break
                time.sleep(1)
                cursor.execute("VACUUM ANALYZE")
            print(f"  after VACUUM ANALYZE: {visible} of {pages} table pages all-visible")
    engine = (
        "PostgreSQL " + str(connection.pg_version) if pg else "SQLite " + connection.Database.sqlite_version
    )  # type: ignore[attr-defined]
    print(f"{engine}: {made} runs filled in {fill_s:.1f} s")

    client = Client(HTTP_HOST="localhost")
    client.force_login(User.objects.create_user("bench"))
    busy = RunSummary.objects.values_list("repo_name", flat=True).order_by("repo_name").first()
    week_ago = RunSummary.objects.order_by("-finished_at").values_list("finished_at", flat=True).first()
    assert week_ago is not None
    since = week_ago.date().toordinal() - 7
    from datetime import date

    pages = {
        "first page": "/history/",
        "filtered (repo + failed)": f"/history/?repo={busy}&status=failed",
        "source, last 7 days": f"/history/?source=ben&since={date.fromordinal(since).isoformat()}",
        "error contains 'exited'": "/history/?q=exited",
        "page 100": "/history/?page=100",
    }
    for label, url in pages.items():
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert b'<tr id="summary-' in response.content, url
        figures = timed(lambda url=url: client.get(url), args.requests)
        print(
            f"  {label:<28} p50 {figures['p50']:6.1f} ms  p90 {figures['p90']:6.1f} ms  max {figures['max']:6.1f} ms"
            f"  (CPU p50 {figures['cpu']:5.1f} ms)"
        )

    for days in (7, 30, 90):
        url = f"/trends/?days={days}"
        assert client.get(url).status_code == 200, url
        figures = timed(lambda url=url: client.get(url), max(3, args.requests // 8))
        print(
            f"  {f'trends, {days} days':<28} p50 {figures['p50']:6.1f} ms  p90 {figures['p90']:6.1f} ms"
            f"  (CPU p50 {figures['cpu']:5.1f} ms)"
        )

    # About 10 000 rows: the last ~9 days (runs are spread evenly-ish over 90).
    last = week_ago.date()
    first = date.fromordinal(last.toordinal() - 8)
    query = f"since={first.isoformat()}&until={last.isoformat()}"
    from dashboard.history.search import history_request_parse, history_runs

    rows_expected = history_runs(
        history_request_parse({"since": first.isoformat(), "until": last.isoformat()}).filters
    ).count()

    def export() -> tuple[float, float, int, int]:
        start = time.perf_counter()
        response = client.get("/history/export.csv?" + query)
        assert response.streaming
        first_ms = 0.0
        size = lines = 0
        for chunk in response.streaming_content:  # type: ignore[attr-defined]
            if not first_ms:
                first_ms = (time.perf_counter() - start) * 1000
            size += len(chunk)
            lines += chunk.count(b"\n")
        return first_ms, time.perf_counter() - start, size, lines - 1

    first_ms, total_s, size, rows = export()
    # Memory in a second pass: tracemalloc slows Python down several times, so it is not timed.
    tracemalloc.start()
    export()
    _, streaming_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    held = list(
        history_runs(history_request_parse({"since": first.isoformat(), "until": last.isoformat()}).filters)
    )
    _, holding_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rows == rows_expected == len(held), (rows, rows_expected, len(held))
    print(
        f"  CSV export of {rows} rows ({size / 1e6:.1f} MB): first chunk after {first_ms:.0f} ms, "
        f"all in {total_s:.2f} s; peak Python memory while streaming {streaming_peak / 1e6:.1f} MB "
        f"(holding the same rows as models: {holding_peak / 1e6:.1f} MB)"
    )
    print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
