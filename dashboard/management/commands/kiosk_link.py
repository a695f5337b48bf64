"""``manage.py kiosk_link NAME``: issue a display token and print the wall screen's URL.

The URL is the only place the raw secret appears; the database keeps its hash.
List and revoke display tokens in the admin (/admin/dashboard/displaytoken/)::

    manage.py kiosk_link lobby-tv
    manage.py kiosk_link team-a --repos acme/web,acme/api --theme light --base-url https://board.example.com
    manage.py kiosk_link lobby-4k --density compact --alert 1
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.http import QueryDict
from django.urls import reverse

from dashboard.board.forms import kiosk_params_parse
from dashboard.models import DisplayToken


class Command(BaseCommand):
    help = (
        "Create a display token for a wall screen and print its kiosk URL (shown once). "
        "Optional --repos, --panels, --refresh, --theme, --tz, --density and --alert set the screen "
        "up through the URL."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="a name for the display, e.g. lobby-tv (unique)")
        parser.add_argument(
            "--base-url",
            default=settings.BOARD_PUBLIC_URL,
            help="the board's address as the screen reaches it (default: BOARD_PUBLIC_URL)",
        )
        parser.add_argument("--repos", default="", help="comma-separated repo names to show")
        parser.add_argument(
            "--panels", default="", help="comma-separated: attention, runs, sandboxes, sources"
        )
        parser.add_argument("--refresh", default="", help="seconds between refreshes (2-300)")
        parser.add_argument("--theme", default="", help="dark (default) or light")
        parser.add_argument("--tz", default="", help="time zone, e.g. Europe/Paris")
        parser.add_argument(
            "--density", default="", help="comfortable (default) or compact: more rows on a big screen"
        )
        parser.add_argument("--alert", default="", help="1: new problems pulse once and chime (default 0)")

    def handle(self, *args: Any, **options: Any) -> None:
        name = str(options["name"]).strip()
        if not name:
            raise CommandError("Give the display a name, e.g. lobby-tv.")
        query = {
            k: str(options[k])
            for k in ("repos", "panels", "refresh", "theme", "tz", "density", "alert")
            if options[k]
        }
        _, problems = kiosk_params_parse(QueryDict(urlencode(query)))
        if problems:
            raise CommandError(" ".join(problems))
        if DisplayToken.objects.filter(name=name).exists():
            raise CommandError(
                f"A display named {name!r} exists already; pick another name, or delete it in the admin first."
            )
        _, raw = DisplayToken.issue(name)
        base = str(options["base_url"]).rstrip("/")
        url = base + reverse("kiosk", args=[raw]) + ("?" + urlencode(query) if query else "")
        self.stdout.write(url)
