"""``manage.py track``: tell the board about Mogplex runs to follow.

Mogplex cannot list runs, so the board follows the runs it is told about::

    manage.py track 3f2b8c1e-5d4a-4b6c-9e8f-0a1b2c3d4e5f https://www.mogplex.com/runs/<id>
    mogplex run --json --repo "$REPO_ID" "Fix the flaky test" | manage.py track -
    manage.py track --source ada 3f2b8c1e-5d4a-4b6c-9e8f-0a1b2c3d4e5f
    manage.py track --list

A run's ``repoId`` (in ``mogplex run --json`` output) sends its lookup to the
source whose repos hold it; ``--source`` names the source that owns the runs.

Prints ``tracking <id>`` or ``already tracking <id>`` per run. Bad input: one
sentence on stderr, exit code 2, nothing changed.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn, TextIO
from uuid import UUID

from django.core.management.base import BaseCommand, CommandParser

from dashboard.discovery import InvalidRunInput, RunRef, run_id_parse, run_refs_read, run_track
from dashboard.models import TrackedRun

EXIT_USAGE = 2


class Command(BaseCommand):
    help = (
        "Track Mogplex runs on the board. Give run ids or run web addresses "
        "(https://<host>/runs/<id>), or '-' to read standard input: what `mogplex run --json` "
        "prints (one object or one per line) or one id or address per line. Each new run is "
        "looked up first on the source --source names, else on the sources whose repos hold its "
        "repoId, then on the others. Bad input changes nothing and exits 2. "
        "--list prints the tracked runs (id, source, lookup, status)."
    )
    # Lets tests and callers hand in standard input: call_command("track", "-", stdin=...).
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "runs", nargs="*", metavar="RUN_ID_OR_URL", help="run ids or run web addresses; '-' reads stdin"
        )
        parser.add_argument(
            "--list", dest="show_list", action="store_true", help="print the tracked runs and exit"
        )
        parser.add_argument(
            "--source", metavar="NAME", help="the configured source that owns these runs (asked first)"
        )

    def handle(
        self, *args: Any, runs: list[str], show_list: bool, source: str | None = None, **options: Any
    ) -> None:
        if show_list:
            if runs:
                self._usage("Give either --list or runs to track, not both.")
            self._list()
            return
        if not runs:
            self._usage(
                "Give run ids or run web addresses to track, or '-' to read `mogplex run --json` output."
            )
        try:
            refs: list[RunRef] = []
            for arg in runs:
                if arg == "-":
                    stdin: TextIO = options.get("stdin") or sys.stdin
                    refs.extend(run_refs_read(stdin.read()))
                else:
                    refs.append(RunRef(run_id_parse(arg)))
            result = run_track(run_ids=refs, via=TrackedRun.Via.COMMAND, source=source)
        except InvalidRunInput as exc:
            self._usage(str(exc))
        already = set(result.already_tracked)
        run_ids: list[UUID] = [ref.run_id for ref in refs]
        for run_id in dict.fromkeys(run_ids):
            self.stdout.write(f"{'already tracking' if run_id in already else 'tracking'} {run_id}")
        if result.tracked:
            self.stderr.write(
                "The board looks new runs up on the sources that may own them; `manage.py track --list` shows what it found."
            )

    def _list(self) -> None:
        rows = TrackedRun.objects.order_by("tracked_at")
        for row in rows:
            self.stdout.write(
                f"{row.run_id}  {row.source or '-':<12} {row.lookup:<9} {row.status or '-':<10} "
                f"{row.tracked_at:%Y-%m-%d %H:%M} via {row.via}"
            )
        if not rows:
            self.stderr.write("No runs are tracked yet; add one with `manage.py track RUN_ID_OR_URL`.")

    def _usage(self, message: str) -> NoReturn:
        self.stderr.write(message)
        sys.exit(EXIT_USAGE)
