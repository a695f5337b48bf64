"""Forms: the track-a-run form, the overview filters, and the kiosk's URL parameters."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.http import QueryDict

from dashboard import discovery
from dashboard.board.selectors import FILTER_MAX_CHARS, PANELS, SORTS, BoardFilters

KIOSK_PANELS = ("attention", *PANELS)


# How a hostile value is quoted back in a message: clipped, control characters escaped.
QUOTED_CHARS = 40


def quoted(text: str, limit: int = QUOTED_CHARS) -> str:
    """``text`` as a message quotes it: at most ``limit`` characters, shown as a Python literal,
    so control characters, bidi overrides and null bytes appear escaped, never raw."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


_RUN_HINT = "paste the UUID from `mogplex run --json` (its runId) or the run's web address."


class TrackRunForm(forms.Form):
    """Paste a run id or a Mogplex run URL."""

    run = forms.CharField(
        label="Track a run",
        max_length=500,
        widget=forms.TextInput(attrs={"placeholder": "run id or Mogplex run URL", "autocomplete": "off"}),
        error_messages={
            "required": "Nothing was pasted; " + _RUN_HINT,
            "max_length": "That is %(show_value)d characters, too long for a run id or run URL; " + _RUN_HINT,
            "null_characters_not_allowed": "That text holds a null character, so it is not a run id; "
            + _RUN_HINT,
        },
    )

    def clean_run(self) -> str:
        try:
            return str(discovery.run_id_parse(self.cleaned_data["run"]))
        except discovery.InvalidRunInput as exc:
            raise forms.ValidationError(str(exc)) from None


def _filter_messages(what: str, fix: str) -> dict[str, str]:
    return {
        "max_length": f"The {what} is longer than %(limit_value)d characters; {fix}",
        "null_characters_not_allowed": f"The {what} holds a null character; {fix}",
    }


class BoardFilterForm(forms.Form):
    """Overview filters, read from GET parameters so they work without JavaScript.

    A bad filter is left out (the others still apply) and its error says why.
    """

    repo = forms.CharField(
        required=False,
        max_length=FILTER_MAX_CHARS,
        error_messages=_filter_messages("repo filter", "choose a repo from the list."),
    )
    status = forms.CharField(
        required=False,
        max_length=FILTER_MAX_CHARS,
        error_messages=_filter_messages("status filter", "choose a status from the list."),
    )
    source = forms.CharField(
        required=False,
        max_length=FILTER_MAX_CHARS,
        error_messages=_filter_messages("source filter", "choose a source from the list."),
    )
    q = forms.CharField(
        required=False,
        max_length=FILTER_MAX_CHARS,
        label="Search",
        error_messages=_filter_messages("search", "search for a shorter part of a repo, branch or message."),
    )
    sort = forms.ChoiceField(
        required=False,
        choices=[("", "newest tracked first"), *SORTS.items()],
        error_messages={
            "invalid_choice": "That sort order is not offered; choose newest tracked first, "
            "recently updated first, repository or status."
        },
    )

    def filters(self) -> BoardFilters:
        if not self.is_bound:
            return BoardFilters()
        # Fields that passed stay in cleaned_data when another one failed.
        self.is_valid()
        data: dict[str, Any] = self.cleaned_data
        repo = str(data.get("repo") or "").strip()
        source = str(data.get("source") or "").strip()
        return BoardFilters(
            repos=(repo,) if repo else (),
            sources=(source,) if source else (),
            status=str(data.get("status") or "").strip(),
            search=str(data.get("q") or "").strip(),
            sort=str(data.get("sort") or "tracked"),
        )

    def query(self) -> dict[str, str]:
        """The filters that apply, as URL parameters (a bad one is left out)."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {k: str(v) for k, v in self.cleaned_data.items() if v}


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
    density: str = "comfortable"
    alert: bool = False
    sources: tuple[str, ...] = ()


KIOSK_REFRESH_MIN = 2
KIOSK_REFRESH_MAX = 300
# How large the wall's type is: comfortable suits a screen read from across a room,
# compact fits more rows on a big screen (a 4K TV at compact is still larger than 1080p).
KIOSK_DENSITIES = ("comfortable", "compact")


def kiosk_params_parse(query: QueryDict) -> tuple[KioskParams | None, list[str]]:
    """Read the kiosk's URL parameters; return the params or the sentences saying what is wrong."""
    problems: list[str] = []
    repos = tuple(r.strip() for r in query.get("repos", "").split(",") if r.strip())
    sources = tuple(s.strip() for s in query.get("sources", "").split(",") if s.strip())
    configured = [source.name for source in settings.MOGPLEX_TOKENS]
    strangers = [s for s in sources if s not in configured]
    if strangers:
        named = ", ".join(quoted(s, 20) for s in strangers[:3]) + (
            " and others" if len(strangers) > 3 else ""
        )
        problems.append(
            f"sources: {named} {'is not a configured source' if len(strangers) == 1 else 'are not configured sources'}; "
            f"use a comma-separated list of {', '.join(configured[:10])}."
        )

    panels_raw = [p.strip() for p in query.get("panels", "").split(",") if p.strip()]
    unknown = [p for p in panels_raw if p not in KIOSK_PANELS]
    if unknown:
        named = ", ".join(quoted(p, 20) for p in unknown[:3]) + (" and others" if len(unknown) > 3 else "")
        problems.append(
            f"panels: {named} {'is not a panel' if len(unknown) == 1 else 'are not panels'}; "
            f"use a comma-separated list of {', '.join(KIOSK_PANELS)}."
        )
    panels = tuple(p for p in KIOSK_PANELS if p in panels_raw) or KIOSK_PANELS

    refresh = 5
    raw_refresh = query.get("refresh", "").strip()
    if raw_refresh:
        # isdigit() alone accepts "²", which int() refuses: ASCII digits only.
        if (
            raw_refresh.isascii()
            and raw_refresh.isdigit()
            and KIOSK_REFRESH_MIN <= int(raw_refresh) <= KIOSK_REFRESH_MAX
        ):
            refresh = int(raw_refresh)
        else:
            problems.append(
                f"refresh: {quoted(raw_refresh, 20)} is not a number of seconds between "
                f"{KIOSK_REFRESH_MIN} and {KIOSK_REFRESH_MAX}."
            )

    theme = query.get("theme", "dark").strip() or "dark"
    if theme not in ("dark", "light", "auto"):
        problems.append(f"theme: {quoted(theme, 20)} is not a theme; use dark, light or auto.")

    tz = default_time_zone()
    asked_tz = query.get("tz", "")
    if asked_tz:
        found = time_zone_parse(asked_tz)
        if found is None:
            problems.append(f"tz: {quoted(asked_tz)} is not a time zone; use a name like Europe/Paris.")
        else:
            tz = found

    density = query.get("density", "").strip() or KIOSK_DENSITIES[0]
    if density not in KIOSK_DENSITIES:
        problems.append(
            f"density: {quoted(density, 20)} is not a density; use {' or '.join(KIOSK_DENSITIES)}."
        )

    alert = query.get("alert", "").strip() or "0"
    if alert not in ("0", "1"):
        problems.append(
            f"alert: {quoted(alert, 20)} is not 0 or 1; use alert=1 to pulse (and chime for) new problems."
        )

    if problems:
        return None, problems
    return (
        KioskParams(
            repos=repos,
            panels=panels,
            refresh=refresh,
            theme=theme,
            tz=tz,
            density=density,
            alert=alert == "1",
            sources=sources,
        ),
        [],
    )
