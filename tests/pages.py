"""Reading the board's pages in tests: markup to the words a person sees."""

from __future__ import annotations

import html
import re


def page_text(markup: str) -> str:
    """``markup`` without its tags, entities decoded, runs of white space as one space."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", markup))).strip()
