"""Template filters and tags for the board (``{% load board %}``).

Upstream strings are untrusted: everything here builds HTML with
``format_html`` (which escapes its arguments) and never marks upstream text safe.
"""

from __future__ import annotations

import json
import re
import uuid
import zoneinfo
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django import template
from django.template.defaulttags import CsrfTokenNode
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from dashboard.board import selectors, unreadable
from dashboard.mogplex.text import clip, grapheme_count

register = template.Library()

PAYLOAD_CLIP = 4000


@register.filter
def safe_url(value: Any) -> str:
    """The URL when its scheme is http or https, else "" (no ``javascript:`` links)."""
    if not isinstance(value, str):
        return ""
    text = value.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    return text


# Mogplex's sandbox lifecycle events (``/sandboxes/{id}/logs``) in words; others as they are.
LIFECYCLE_WORDS = {
    "tab_attached": "tab attached",
    "tab_released": "tab released",
    "auto_pause_queued": "pause queued",
    "auto_pause_decision": "auto-pause decision",
    "auto_pause_succeeded": "paused",
    "auto_pause_failed": "pause failed",
    "resume_after_auto_pause": "resumed",
}


@register.filter
def lifecycle_word(event_type: Any) -> str:
    """A sandbox lifecycle event's type in words ("pause queued"); an unknown type as it is."""
    return LIFECYCLE_WORDS.get(str(event_type), str(event_type))


@register.filter
def icon(name: Any) -> SafeString:
    """A symbol of static/board/icons.svg, hidden from screen readers (its word stands beside it)."""
    return format_html(
        '<svg class="icon" aria-hidden="true" focusable="false"><use href="{}#i-{}"></use></svg>',
        static("board/icons.svg"),
        str(name),
    )


@register.filter
def status_icon(status: Any) -> SafeString:
    return icon(selectors.status_icon(str(status)))


@register.filter
def status_tone(status: Any) -> str:
    return selectors.status_tone(str(status))


# Words the board knows besides the statuses (run lookups, error kinds, log errors).
_KNOWN_WORDS = frozenset(selectors.STATUS_ICONS) | {
    "not_found",
    "bad_request",
    "budget_spent",
    "unknown_source",
}


@register.filter
def status_word(status: Any) -> str:
    """A status in words; one the board does not know is shown as it came: ``unknown (queued_v2)``."""
    text = str(status)
    if text in _KNOWN_WORDS:
        return text.replace("_", " ")
    return f"unknown ({text})"


def age_text(seconds: float | None) -> str:
    """A short, readable age: ``8s``, ``4m 10s``, ``2h 5m``, ``3d 4h``."""
    if seconds is None:
        return "never"
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


@register.filter
def age(seconds: float | None) -> str:
    return age_text(seconds)


@register.filter
def usual_duration(seconds: float | None) -> str:
    """A typical duration to the minute: ``14m``, ``2h 5m`` (under a minute: ``40s``)."""
    if seconds is None:
        return "—"
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{round(s / 60)}m" if s < 3570 else "1h 0m"
    return f"{s // 3600}h {s % 3600 // 60}m"


to_epoch = selectors.to_epoch


def _zone(context: template.Context) -> zoneinfo.ZoneInfo:
    zone = context.get("tz")
    return zone if isinstance(zone, zoneinfo.ZoneInfo) else zoneinfo.ZoneInfo("UTC")


# --- ages, and rows rendered once per content --------------------------------------
#
# A row's HTML depends on its content, the viewer's time zone and, through the
# ages it shows ("4m 10s ago"), the clock. Inside ``{% cached_row %}`` an age is
# rendered as a marker that upstream text cannot forge (escaped text never holds
# a raw ``<``), the row is kept by its signature, and the markers are replaced
# with ages for ``now`` each time the row is served. A board of 300 rows where
# one changed renders one row instead of 300.

AGE_MARKERS = "_age_markers"
_AGE_MARK = re.compile(r"<!--age (-?[0-9]+\.[0-9]+)-->")
# Rows kept per template tag (and process), in two generations of this many each: a
# board has a few hundred rows, and a row seen in the older generation moves to the newer
# one, so a full cache drops the rows no board shows any more, not the ones on the wall.
# Rows render to about 1 kB, so a process holds at most ~1 MB per tag (8 tags).
ROW_CACHE_SIZE = 512


# A form inside a cached row carries the viewer's own CSRF token: the kept row holds this
# marker ({% row_csrf_token %}), replaced with the request's token each time it is served.
_CSRF_MARK = "<!--csrf-->"


@register.simple_tag(takes_context=True)
def row_csrf_token(context: template.Context) -> SafeString:
    """``{% csrf_token %}`` for a form inside a ``{% cached_row %}`` (never another viewer's token)."""
    if context.get(AGE_MARKERS):
        return mark_safe(_CSRF_MARK)
    return mark_safe(CsrfTokenNode().render(context))


def _age(context: template.Context, epoch: float) -> SafeString | str:
    """The age of ``epoch`` at the context's ``now``, or a marker for it inside a cached row."""
    if context.get(AGE_MARKERS):
        return mark_safe(f"<!--age {epoch:.3f}-->")
    return age_text(float(context.get("now") or 0) - epoch)


@register.simple_tag(takes_context=True)
def reltime(context: template.Context, value: Any, suffix: str = " ago") -> SafeString | str:
    """``<time>`` with the age relative to the server clock, the absolute time on hover.

    ``data-epoch`` lets the page script advance the age between refreshes.
    """
    epoch = to_epoch(value)
    moment = None if epoch is None else _moment(epoch, _zone(context))
    if epoch is None or moment is None:
        return "—"
    return format_html(
        '<time class="tick" datetime="{}" title="{}" data-epoch="{}" data-suffix="{}">{}{}</time>',
        moment.isoformat(timespec="seconds"),
        moment.strftime("%Y-%m-%d %H:%M:%S %Z"),
        f"{epoch:.3f}",
        suffix,
        _age(context, epoch),
        suffix,
    )


@register.simple_tag(takes_context=True)
def countdown(context: template.Context, value: Any) -> SafeString | str:
    """``<time>`` with how long until ``value`` ("40s"), counting down as the page script ticks."""
    epoch = to_epoch(value)
    moment = None if epoch is None else _moment(epoch, _zone(context))
    if epoch is None or moment is None:
        return "—"
    return format_html(
        '<time class="tick" datetime="{}" data-epoch="{}" data-until="1">{}</time>',
        moment.isoformat(timespec="seconds"),
        f"{epoch:.3f}",
        age_text(epoch - float(context.get("now") or 0)),
    )


@register.simple_tag(takes_context=True)
def age_since(context: template.Context, value: Any) -> SafeString | str:
    """How long since ``value`` (an upstream ISO time or epoch), for "running for"; it ticks like ``reltime``."""
    return reltime(context, value, suffix="")


def _moment(epoch: float, zone: zoneinfo.ZoneInfo) -> datetime | None:
    """``epoch`` in ``zone``; None for a time the calendar cannot hold there (year 9999 east of UTC)."""
    try:
        return datetime.fromtimestamp(epoch, tz=zone)
    except (OverflowError, OSError, ValueError):
        return None


class CachedRowNode(template.Node):
    def __init__(
        self,
        nodelist: template.NodeList,
        key: list[template.base.FilterExpression],
        fallback: template.NodeList | None = None,
    ) -> None:
        self.nodelist = nodelist
        self.key = key
        self.fallback = fallback
        # On the node, so that a template compiled anew (edited, in development)
        # starts with an empty cache.
        self.rows: dict[tuple[object, ...], str] = {}
        self.older: dict[tuple[object, ...], str] = {}

    def render(self, context: template.Context) -> SafeString:
        key = (_zone(context).key, *(part.resolve(context) for part in self.key))
        html = self.rows.get(key)
        if html is None:
            html = self.older.get(key)
            if html is None:
                with context.push({AGE_MARKERS: True}):
                    html = self._render_row(context)
            if len(self.rows) >= ROW_CACHE_SIZE:
                self.older, self.rows = self.rows, {}
            self.rows[key] = html
        now = float(context.get("now") or 0)
        html = _AGE_MARK.sub(lambda m: age_text(now - float(m[1])), html)
        if _CSRF_MARK in html:
            html = html.replace(_CSRF_MARK, CsrfTokenNode().render(context))
        return mark_safe(html)

    def _render_row(self, context: template.Context) -> str:
        """The row, or its ``{% unreadable %}`` part (with ``row_problem`` set) when the row's markup raises."""
        try:
            return str(self.nodelist.render(context))
        except Exception as exc:
            if self.fallback is None:
                raise
            problem = f"the board failed to show it ({type(exc).__name__})"
            # The class name only: a template error's text can quote the whole context.
            unreadable.unreadable_log("row", str(self.key[-1].resolve(context)), problem)
            with context.push({"row_problem": f"{problem[0].upper()}{problem[1:]}."}):
                return str(self.fallback.render(context))


@register.tag
def cached_row(parser: template.base.Parser, token: template.base.Token) -> CachedRowNode:
    """``{% cached_row row.sig ... %}…{% unreadable %}…{% endcached_row %}``: render once per key and time zone.

    The key must name everything the row shows except ages and the time zone
    (for a board row, its content signature ``sig``); ages are filled in per request.
    When the row's markup raises (a poisoned record), the optional ``{% unreadable %}``
    part is shown in its place, with ``row_problem`` saying so, and the error is logged
    once: one bad row never costs the board.
    """
    bits = token.split_contents()[1:]
    if not bits:
        raise template.TemplateSyntaxError("cached_row needs the row's signature as its key.")
    nodelist = parser.parse(("unreadable", "endcached_row"))
    fallback = None
    if parser.next_token().contents == "unreadable":
        fallback = parser.parse(("endcached_row",))
        parser.delete_first_token()
    return CachedRowNode(nodelist, [parser.compile_filter(bit) for bit in bits], fallback)


@register.simple_tag(takes_context=True)
def clock(context: template.Context, value: Any) -> str:
    """An absolute time of day in the viewer's time zone (``HH:MM:SS``)."""
    epoch = to_epoch(value)
    moment = None if epoch is None else _moment(epoch, _zone(context))
    return "—" if moment is None else moment.strftime("%H:%M:%S")


@register.simple_tag(takes_context=True)
def wall_clock(context: template.Context, value: Any) -> SafeString | str:
    """The time of day at ``value`` in the viewer's zone, as a clock the page script keeps running.

    ``data-tz`` is the zone's name for the browser's own zone rules; ``data-utc-offset``
    (seconds east of UTC at ``value``) is the fallback where the browser does not know the zone.
    """
    epoch = to_epoch(value)
    zone = _zone(context)
    moment = None if epoch is None else _moment(epoch, zone)
    if moment is None:
        return "—"
    offset = moment.utcoffset()
    return format_html(
        '<time class="clock" data-clock data-tz="{}" data-utc-offset="{}">{}</time>',
        zone.key,
        int(offset.total_seconds()) if offset is not None else 0,
        moment.strftime("%H:%M:%S"),
    )


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON, clipped; the template autoescapes the result."""
    if value is None:
        return ""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    shown, clipped = clip(text, PAYLOAD_CLIP)
    if clipped:
        more = grapheme_count(text) - grapheme_count(shown) + 1
        return shown.removesuffix("…") + f"\n… clipped ({more} more characters)"
    return text


@register.simple_tag
def freshness_badge(fresh: selectors.Freshness) -> SafeString:
    """How old a panel's data is; says STALE with the age, loudly, past the threshold.

    The page script advances the age each second (``data-fetched-at``), moves the
    fetch time forward when an unchanged poll says the data was fetched again
    (``data-fetched-key`` names it in ``X-Board-Fetched``), and turns the badge
    STALE itself if no fresh data arrives.
    """
    if fresh.fetched_at is None:
        return format_html(
            '<span class="fresh tick is-stale" data-fetched-at="" data-fetched-key="{}">STALE · never fetched</span>',
            fresh.key,
        )
    if fresh.stale:
        return format_html(
            '<span class="fresh tick is-stale" data-fetched-at="{}" data-fetched-key="{}">STALE · data {} old</span>',
            f"{fresh.fetched_at:.3f}",
            fresh.key,
            age_text(fresh.age),
        )
    return format_html(
        '<span class="fresh tick" data-fetched-at="{}" data-fetched-key="{}">updated {} ago</span>',
        f"{fresh.fetched_at:.3f}",
        fresh.key,
        age_text(fresh.age),
    )


@register.filter
def as_uuid(value: Any) -> str:
    """The canonical UUID text, or "" (so a hostile id never reaches ``{% url %}``)."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return ""
