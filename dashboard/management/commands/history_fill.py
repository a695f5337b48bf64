"""``manage.py history_fill``: add realistic synthetic finished runs to the history (benchmarks, demos)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.history.synthetic import history_fill


class Command(BaseCommand):
    help = (
        "Add synthetic finished runs to the history: --runs over the last --days days, across --repos "
        "repos and --sources sources (team members). For benchmarks and demos; never against a real board's "
        "database unless you mean it (--yes)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--runs", type=int, default=100_000)
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--repos", type=int, default=40)
        parser.add_argument("--sources", type=int, default=8)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--yes", action="store_true", help="really add them")

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("runs", "days", "repos", "sources"):
            if options[name] < 1:
                raise CommandError(f"--{name} must be at least 1.")
        if not options["yes"]:
            raise CommandError(
                "This adds synthetic runs to the board's history; run it again with --yes if that is what you want."
            )
        made = history_fill(
            runs=options["runs"],
            days=options["days"],
            repos=options["repos"],
            sources=options["sources"],
            seed=options["seed"],
        )
        self.stdout.write(f"Added {made} synthetic finished runs over {options['days']} days.")
