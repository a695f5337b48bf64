"""Template filters and tags for the board (``{% load board %}``).

Upstream strings are untrusted: everything here builds HTML with
``format_html`` (which escapes its arguments) and never marks upstream text safe.
"""

from __future__ import annotations

import json
import uuid
import zoneinfo
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from dashboard.board import selectors

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


@register.filter
def status_icon(status: Any) -> str:
    return selectors.status_icon(str(status))


@register.filter
def status_tone(status: Any) -> str:
    return selectors.status_tone(str(status))


@register.filter
def status_word(status: Any) -> str:
    return str(status).replace("_", " ")


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


to_epoch = selectors.to_epoch


def _zone(context: template.Context) -> zoneinfo.ZoneInfo:
    zone = context.get("tz")
    return zone if isinstance(zone, zoneinfo.ZoneInfo) else zoneinfo.ZoneInfo("UTC")


@register.simple_tag(takes_context=True)
def reltime(context: template.Context, value: Any, suffix: str = " ago") -> SafeString | str:
    """``<time>`` with the age relative to the server clock, the absolute time on hover.

    ``data-epoch`` lets the page script advance the age between refreshes.
    """
    epoch = to_epoch(value)
    if epoch is None:
        return "—"
    now = float(context.get("now") or 0)
    moment = datetime.fromtimestamp(epoch, tz=_zone(context))
    return format_html(
        '<time class="tick" datetime="{}" title="{}" data-epoch="{}" data-suffix="{}">{}{}</time>',
        moment.isoformat(timespec="seconds"),
        moment.strftime("%Y-%m-%d %H:%M:%S %Z"),
        f"{epoch:.3f}",
        suffix,
        age_text(now - epoch),
        suffix,
    )


@register.simple_tag(takes_context=True)
def clock(context: template.Context, value: Any) -> str:
    """An absolute time of day in the viewer's time zone (``HH:MM:SS``)."""
    epoch = to_epoch(value)
    if epoch is None:
        return "—"
    return datetime.fromtimestamp(epoch, tz=_zone(context)).strftime("%H:%M:%S")


@register.filter
def duration_since(value: Any, now: float) -> str:
    """How long since ``value`` (an upstream ISO time or epoch), for "running for"."""
    epoch = to_epoch(value)
    return "—" if epoch is None else age_text(float(now) - epoch)


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON, clipped; the template autoescapes the result."""
    if value is None:
        return ""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > PAYLOAD_CLIP:
        return text[:PAYLOAD_CLIP] + f"\n… clipped ({len(text) - PAYLOAD_CLIP} more characters)"
    return text


@register.simple_tag
def freshness_badge(fresh: selectors.Freshness) -> SafeString:
    """How old a panel's data is; says STALE with the age, loudly, past the threshold.

    The page script advances the age each second (``data-fetched-at``) and turns
    the badge STALE itself if no fresh data arrives.
    """
    if fresh.fetched_at is None:
        return mark_safe('<span class="fresh tick is-stale" data-fetched-at="">STALE · never fetched</span>')
    if fresh.stale:
        return format_html(
            '<span class="fresh tick is-stale" data-fetched-at="{}">STALE · data {} old</span>',
            f"{fresh.fetched_at:.3f}",
            age_text(fresh.age),
        )
    return format_html(
        '<span class="fresh tick" data-fetched-at="{}">updated {} ago</span>',
        f"{fresh.fetched_at:.3f}",
        age_text(fresh.age),
    )


@register.filter
def as_uuid(value: Any) -> str:
    """The canonical UUID text, or "" (so a hostile id never reaches ``{% url %}``)."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return ""
