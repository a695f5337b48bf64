"""Hostile strings: what an agent (upstream) or a person (our inputs) might send the board.

One corpus shared by every hostile-input test. Markup entries set
``window.__xss`` if they ever run, so a browser test can check one tripwire; the
rest are the shapes that break things other than script: template syntax,
bidi overrides, control characters, 100 kB strings, SQL and header injection.

Also the checks those tests share: :func:`injected_markup` (an HTML page holds no
element or attribute its markup would not hold anyway) and
:func:`assert_one_sentence` (a message a person can act on).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from html.parser import HTMLParser
from typing import Any

from dashboard import snapshots
from dashboard.polling.records import clip_payload
from dashboard.polling.tasks import SANDBOX_LOG_TAIL_CHARS
from tests import board_data

TRIPWIRE = "window.__xss=1"
HUGE = 100_000

CORPUS: tuple[str, ...] = (
    # Script and event handlers.
    f"<script>{TRIPWIRE}</script>",
    f'<img src=x onerror="{TRIPWIRE}">',
    f'"><svg onload={TRIPWIRE}>',
    f"'><svg/onload={TRIPWIRE}>",
    f"<svg><script>{TRIPWIRE}</script></svg>",
    f"<body onload={TRIPWIRE}>",
    f'<iframe srcdoc="<script>parent.{TRIPWIRE}</script>"></iframe>',
    f"<math><mtext><table><mglyph><style><img src=x onerror={TRIPWIRE}>",
    f"</textarea></title></script><script>{TRIPWIRE}</script>",
    f'" autofocus onfocus="{TRIPWIRE}" x="',
    f"<details open ontoggle={TRIPWIRE}>",
    # URLs that are code.
    f"javascript:{TRIPWIRE}",
    f"JaVaScRiPt:{TRIPWIRE}",
    f" \tjavascript:{TRIPWIRE}",
    f"data:text/html,<script>{TRIPWIRE}</script>",
    "data:text/html;base64,PHNjcmlwdD53aW5kb3cuX194c3M9MTwvc2NyaXB0Pg==",
    f'https://example.com/"onmouseover="{TRIPWIRE}',
    f'<a href="javascript:{TRIPWIRE}">click</a>',
    f'<meta http-equiv=refresh content="0;url=javascript:{TRIPWIRE}">',
    "<base href='https://evil.example/'>",
    # Markup that moves or hides the page, htmx attributes that would act on it.
    "<style>*{display:none!important}</style>",
    '<div style="position:fixed;inset:0;background:red;z-index:99">covered</div>',
    '<div hx-get="/accounts/logout/" hx-trigger="load">',
    "<!--",
    # Template syntax (ours and others').
    "{{ 7*7 }}{{ settings.SECRET_KEY }}",
    "{% debug %}{% csrf_token %}",
    "${7*7}#{7*7}<%= 7*7 %>",
    # Text that is not what it seems.
    "\u202egnp.exe acme/web",
    "run\x00<script>window.__xss=1</script>",
    "\x1b[31mred\x1b[0m \x1b]8;;https://evil.example\x07link\x1b]8;;\x07",
    "line\u2028separator\u2029paragraph",
    "Z\u0335\u0322\u031b\u0316a\u0337l\u0338g\u0336o\u0335",
    "²³",
    "../../../../etc/passwd",
    "   ",
    # SQL and header injection.
    "' OR '1'='1' --",
    "'; DROP TABLE dashboard_trackedrun; --",
    "x\r\nSet-Cookie: pwned=1\r\n\r\n<script>window.__xss=1</script>",
    "%0d%0aSet-Cookie:%20pwned=1",
    # Size: one unbroken 100 kB word, and 100 kB of markup.
    "W" * HUGE,
    ("<b>" * (HUGE // 3))[:HUGE],
)

# What an agent could write to ping people or spoof links in chat (Slack, Teams, Discord,
# Mattermost): mentions, Slack control sequences (also pre-escaped), Markdown and mrkdwn.
CHAT: tuple[str, ...] = (
    "<!channel> <!here> <!everyone> <!subteam^S123|@oncall>",
    "&lt;!channel&gt; !here> @here>",
    "@here @everyone @channel @oncall",
    "<@U024BE7LH> <#C024BE7LH|general>",
    "<https://evil.example|click here>",
    "<https://evil.example>",
    "[click here](https://evil.example) [x](javascript:alert(1))",
    "![img](https://evil.example/pixel.png)",
    "[ref]: https://evil.example\n[click][ref]",
    "*bold* _italic_ ~strike~ `code` ```block``` **strong** __u__",
    "> quoted\n# Heading\n- list",
    "<b>bold</b> <a href='https://evil.example'>click</a>",
    "||spoiler|| <t:0:R> :rotating_light:",
)

# Entries short enough to travel in a URL (servers refuse request lines of 64 kB and more).
SHORT: tuple[str, ...] = tuple(s for s in CORPUS if len(s) < 1000)

# Elements and attributes that must never come from data. Our own pages have
# <script src> elements, but no inline script, inline style or handler attributes.
_DANGEROUS_TAGS = {"script", "svg", "math", "iframe", "img", "style", "base", "body", "b"}


_BOARD_BOOKMARKLET = re.compile(
    r'javascript:void\(open\("https?://[A-Za-z0-9.:\[\]-]+/\?run="\+encodeURIComponent\(location\.href\)\)\)'
)


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            if self._body:
                self.found.append("a second <body>")
            self._body = True
            return
        if tag == "a" and _BOARD_BOOKMARKLET.fullmatch(dict(attrs).get("href") or ""):
            return  # the board's own "Track on the board" bookmarklet, made by the view, not from data
        if tag == "svg" and attrs == [("class", "icon"), ("aria-hidden", "true"), ("focusable", "false")]:
            return  # a status icon, made by the board's icon filter, never from data
        if tag == "use" and re.fullmatch(
            r"/static/board/icons\.svg#i-[a-z_]+", dict(attrs).get("href") or ""
        ):
            return
        for name, value in attrs:
            if name.startswith("on") or name in ("srcdoc", "autofocus", "style"):
                self.found.append(f"<{tag} {name}>")
            if name in ("href", "src", "action", "hx-get") and value is not None:
                scheme = value.strip().split(":", 1)[0].lower() if ":" in value else ""
                if scheme in ("javascript", "data", "vbscript") or (
                    name == "hx-get" and "logout" in value.split("?")[0]
                ):
                    self.found.append(f"<{tag} {name}={value[:40]!r}>")
        if tag == "meta" and "http-equiv" in dict(attrs):
            self.found.append("<meta http-equiv>")
        if tag == "script" and not dict(attrs).get("src"):
            self.found.append("<script> without src")
        elif tag in _DANGEROUS_TAGS - {"script"}:
            self.found.append(f"<{tag}>")

    def handle_comment(self, data: str) -> None:
        self.found.append("<!-- comment -->")


def injected_markup(html: str) -> list[str]:
    """Elements and attributes in ``html`` that only injected data could have put there."""
    parser = _Markup()
    parser.feed(html)
    parser.close()
    # An unclosed comment swallows the rest of the page without a comment event.
    return parser.found + (["an opened comment"] if "<!--" in html else [])


# A message a person can act on: one line, ending in a full stop, short enough to
# read, with no raw control characters (a repr shows them escaped).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def assert_one_sentence(message: str, *, longest: int = 400) -> None:
    text = message.strip()
    assert text, "a message is given"
    assert "\n" not in text and "\r" not in text, f"one line: {text[:200]!r}"
    assert text.endswith("."), f"a sentence: {text[:200]!r}"
    assert len(text) <= longest, f"short enough to read ({len(text)} characters): {text[:200]!r}"
    assert not _CONTROL.search(text), f"no raw control characters: {text[:200]!r}"


# --- the corpus in every upstream string field the board shows ------------------------


def entry_id(index: int, kind: int = 0) -> str:
    """A valid UUID for the ``index``-th corpus entry (``kind`` tells runs and sandboxes apart)."""
    return str(uuid.UUID(f"{kind:04x}{index:04x}-0000-4000-8000-000000000000"))


def upstream_board(now: float, entries: Sequence[str] = CORPUS) -> dict[str, Any]:
    """A composed board with every entry in every upstream string field.

    Per entry: an active run whose status is the entry, a failed run whose error
    is the entry, a sandbox whose upstream id and status are the entry, a
    sandbox in error (with a UUID, so it links to its page), and a source in
    trouble named by the entry.
    """
    run_fields = (
        "repo_id", "repo_name", "harness", "branch_base", "branch_working", "created_at",
        "updated_at", "sandbox_record_id", "sandbox_id", "pr_url", "source",
    )  # fmt: skip
    box_fields = (
        "source", "repo_id", "repo_name", "base_branch", "working_branch",
        "preview_url", "last_active_at", "created_at", "error",
    )  # fmt: skip
    runs, boxes, sources = [], [], []
    for i, text in enumerate(entries):
        fields = dict.fromkeys(run_fields, text)
        event = {"type": text, "tool_name": text, "message": text, "created_at": text}
        runs.append(board_data.run_row(entry_id(i, 1), text, now=now, latest_event=event, **fields))
        runs.append(
            board_data.run_row(
                entry_id(i, 2),
                "failed",
                now=now,
                error=text,
                failure_code=text,
                failure_reason=text,
                delivery=text,
                latest_event=event,
                finished_at=now - i,
                **fields,
            )
        )
        for box_id, status in ((text, text), (entry_id(i, 3), "error")):
            box = board_data.sandbox_row(box_id, status, now=now, **dict.fromkeys(box_fields, text))
            box["sandbox_id"] = text
            boxes.append(box)
        account: dict[str, Any] = dict.fromkeys(
            ("github_state", "github_label", "github_detail", "action_label", "action_url"), text
        )
        account.update(compute_state=text, compute_label=text, advice=[text], checked_at=now, known_at=now)
        account.update(unknown=bool(i % 2), models=i, repos=0, platform_ai=True, platform_sandbox=None)
        sources.append(
            board_data.source_row(text, now=now, state="unauthorized", message=text, account=account)
        )
    board = board_data.board(now, runs=runs, sandboxes=boxes, sources=sources)
    board["automations"], board["job_runs"] = hostile_automations(entries)
    board["automations_fetched_at"] = {"demo": now}
    board["automations_complete"] = {"demo": False}
    return board


def hostile_automations(entries: Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per entry, an automation of source ``demo`` named and described by it, and a failed job run of it
    whose repo and error are the entry (in the lane as well as on the automations page)."""
    automations, job_runs = [], []
    for i, text in enumerate(entries):
        job_run = {
            "id": entry_id(i, 6),
            "source": "demo",
            "automation_id": entry_id(i, 5),
            "automation_name": text,
            "status": "failed",
            "repo_id": text,
            "repo_name": text,
            "source_type": text,
            "created_at": text,
            "started_at": text,
            "completed_at": text,
            "duration_ms": 1200,
            "error": text,
            "fetched_at": 1.0,
            "pending_too_long": False,
            "acknowledged": [],
            "fixed_by": None,
        }
        job_runs.append(job_run)
        automations.append(
            {
                "source": "demo",
                "id": entry_id(i, 5),
                "name": text,
                "description": text,
                "status": text,
                "fetched_at": 1.0,
                "health": "needs_attention",
                "failed_24h": 1,
                "stale_pending": 0,
                "success_rate": 0.0,
                "concluded_24h": 1,
                "running": 0,
                "pending": 0,
                "last_run_status": text,
                "job_runs": [job_run],
            }
        )
    return automations, job_runs


def upstream_records_write(now: float, entries: Sequence[str] = CORPUS) -> None:
    """Per entry, the run record and sandbox snapshots the detail pages read, as the poller writes them.

    Every run's timeline holds one event per entry; every sandbox's history one
    status per entry and its logs every short entry.
    """
    events = [
        {
            "id": text,
            "type": text,
            "tool_name": text,
            "message": text,
            "payload": clip_payload({"command": text, text[:100]: [text]}),
            "created_at": text,
        }
        for text in entries
    ]
    short = [t for t in entries if len(t) < 1000]
    snapshots.repos_write(
        "demo",
        [
            {
                "id": entry_id(i, 4),
                "full_name": text,
                "default_branch": text,
                "root_directory": text,
                "installation_id": None if i % 2 else 1,
            }
            for i, text in enumerate(entries)
        ],
        fetched_at=now,
    )
    for i, text in enumerate(entries):
        run = {
            "run_id": entry_id(i, 2),
            "status": text,
            "repo_id": text,
            "sandbox_record_id": text,
            "sandbox_id": text,
            "harness": text,
            "branch": {"base": text, "working": text, "create_branch": text},
            "created_at": text,
            "updated_at": text,
            "error": text,
        }
        snapshots.run_write(
            board_data.run_record(
                entry_id(i, 2),
                now=now,
                run=run,
                events=events,
                pr_url=text,
                outcome={"terminal_event": text, "failure_code": text, "exit_code": None, "delivery": text},
            )
        )
        box = entry_id(i, 3)
        for j, status in enumerate(short):
            snapshots.sandbox_history_append(box, status, seen_at=now - 100 + j)
        snapshots.sandbox_logs_write(
            box,
            {
                "sandbox_id": box,
                "source": "demo",
                "fetched_at": time.time(),
                "error_kind": None,
                "install_log": "\n".join(short)[-SANDBOX_LOG_TAIL_CHARS:],
                "dev_log": text[-SANDBOX_LOG_TAIL_CHARS:],
                "lifecycle_events": [{"event_type": t, "decision_code": t, "created_at": t} for t in entries],
            },
        )
