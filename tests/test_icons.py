"""The status icons: one distinct drawn symbol per status, beside its word, no font glyph."""

from __future__ import annotations

import re
from pathlib import Path

from django.template import Context, Template

from dashboard.board import selectors

SPRITE = Path(__file__).resolve().parent.parent / "static" / "board" / "icons.svg"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def test_every_status_has_its_own_symbol_in_the_sprite() -> None:
    symbols = set(re.findall(r'<symbol id="i-([a-z_]+)"', SPRITE.read_text()))
    icons = [selectors.status_icon(status) for status in selectors.STATUS_ICONS]
    assert len(set(icons)) == len(icons), "no two statuses share an icon"
    assert set(icons) | {"stalled", "resolved"} <= symbols


def test_a_status_renders_as_a_hidden_svg_beside_its_word() -> None:
    html = Template(
        '{% load board %}{{ "rate_limited"|status_icon }} {{ "rate_limited"|status_word }}'
    ).render(Context())
    assert re.fullmatch(
        r'<svg class="icon" aria-hidden="true" focusable="false"><use href="/static/board/icons.svg#i-rate_limited">'
        r"</use></svg> rate limited",
        html,
    ), html
    unknown = Template('{% load board %}{{ "no-such-status"|status_icon }}').render(Context())
    assert "#i-unknown" in unknown


def test_no_template_uses_the_glyph_that_debian_chromium_cannot_draw() -> None:
    assert [str(p) for p in TEMPLATES.rglob("*.html") if "⧗" in p.read_text()] == []
