"""Forms: the track-a-run form, the overview filters, and the kiosk's URL parameters."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.http import QueryDict

from dashboard import discovery
from dashboard.board.selectors import PANELS, SORTS, BoardFilters

KIOSK_PANELS = ("attention", *PANELS)


class TrackRunForm(forms.Form):
    """Paste a run id or a Mogplex run URL."""

    run = forms.CharField(
        label="Track a run",
        max_length=500,
        widget=forms.TextInput(attrs={"placeholder": "run id or Mogplex run URL", "autocomplete": "off"}),
    )

    def clean_run(self) -> str:
        try:
            return str(discovery.run_id_parse(self.cleaned_data["run"]))
        except discovery.InvalidRunInput as exc:
            raise forms.ValidationError(str(exc)) from None


class BoardFilterForm(forms.Form):
    """Overview filters, read from GET parameters so they work without JavaScript."""

    repo = forms.CharField(required=False, max_length=200)
    status = forms.CharField(required=False, max_length=40)
    q = forms.CharField(required=False, max_length=200, label="Search")
    sort = forms.ChoiceField(required=False, choices=[("", "newest tracked first"), *SORTS.items()])

    def filters(self) -> BoardFilters:
        data: dict[str, Any] = self.cleaned_data if self.is_valid() else {}
        repo = str(data.get("repo") or "").strip()
        return BoardFilters(
            repos=(repo,) if repo else (),
            status=str(data.get("status") or "").strip(),
            search=str(data.get("q") or "").strip(),
            sort=str(data.get("sort") or "tracked"),
        )


def time_zone_parse(name: str) -> zoneinfo.ZoneInfo | None:
    """A time zone by IANA name, or None when there is no such zone."""
    try:
        return zoneinfo.ZoneInfo(name.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def default_time_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


@dataclass(frozen=True)
class KioskParams:
    """How a wall screen is configured: all from its URL."""

    repos: tuple[str, ...]
    panels: tuple[str, ...]
    refresh: int
    theme: str
    tz: zoneinfo.ZoneInfo


KIOSK_REFRESH_MIN = 2
KIOSK_REFRESH_MAX = 300


def kiosk_params_parse(query: QueryDict) -> tuple[KioskParams | None, list[str]]:
    """Read the kiosk's URL parameters; return the params or the sentences saying what is wrong."""
    problems: list[str] = []
    repos = tuple(r.strip() for r in query.get("repos", "").split(",") if r.strip())

    panels_raw = [p.strip() for p in query.get("panels", "").split(",") if p.strip()]
    unknown = [p for p in panels_raw if p not in KIOSK_PANELS]
    if unknown:
        problems.append(
            f"panels: {', '.join(unknown)} is not a panel; use a comma-separated list of "
            f"{', '.join(KIOSK_PANELS)}."
        )
    panels = tuple(p for p in KIOSK_PANELS if p in panels_raw) or KIOSK_PANELS

    refresh = 5
    raw_refresh = query.get("refresh", "").strip()
    if raw_refresh:
        if raw_refresh.isdigit() and KIOSK_REFRESH_MIN <= int(raw_refresh) <= KIOSK_REFRESH_MAX:
            refresh = int(raw_refresh)
        else:
            problems.append(
                f"refresh: {raw_refresh[:20]!r} is not a number of seconds between "
                f"{KIOSK_REFRESH_MIN} and {KIOSK_REFRESH_MAX}."
            )

    theme = query.get("theme", "dark").strip() or "dark"
    if theme not in ("dark", "light"):
        problems.append(f"theme: {theme[:20]!r} is not a theme; use dark or light.")

    tz = default_time_zone()
    asked_tz = query.get("tz", "")
    if asked_tz:
        found = time_zone_parse(asked_tz)
        if found is None:
            problems.append(f"tz: {asked_tz[:40]!r} is not a time zone; use a name like Europe/Paris.")
        else:
            tz = found

    if problems:
        return None, problems
    return KioskParams(repos=repos, panels=panels, refresh=refresh, theme=theme, tz=tz), []
