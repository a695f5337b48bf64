"""The hostile corpus in every upstream field of a notification, for each format, as the receiver got it.

Slack is Apprise's own Slack service with its webhook address pointed at the
local receiver; Mattermost is Slack-shaped and renders Markdown; Discord renders
Markdown; JSON webhooks and mail are plain text. Markdown is checked by
rendering what arrived with a CommonMark renderer: the only links are the
board's, the only markup ours.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
import redis
from apprise.plugins.discord import NotifyDiscord
from apprise.plugins.slack import NotifySlack
from django.conf import settings
from markdown_it import MarkdownIt

from dashboard import snapshots
from dashboard.notify.delivery import destination_send
from dashboard.notify.destinations import dialect_for
from dashboard.notify.watch import job_run_facts, run_facts
from tests import board_data
from tests.hostile import CHAT, CORPUS
from tests.receivers import MailReceiver, WebhookReceiver

ENTRIES = CORPUS + CHAT
RUN = board_data.RUN_FAILED
# "@" straight before a word is a mention in every chat; a zero-width space after it is not.
MENTION = re.compile(r"@(?=\w)")


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    # Apprise's Slack and Discord services post to fixed hosts; point them at the receiver.
    monkeypatch.setattr(NotifySlack, "webhook_url", f"http://{receiver.base}/slack")
    monkeypatch.setattr(NotifyDiscord, "notify_url", f"http://{receiver.base}/discord")
    yield receiver
    receiver.close()


@pytest.fixture
def mail() -> Iterator[MailReceiver]:
    receiver = MailReceiver()
    yield receiver
    receiver.close()


def facts_for(entry: str) -> dict[str, Any]:
    now = time.time()
    snapshots.run_write(
        board_data.run_record(
            RUN, now=now, outcome={"terminal_event": "failed", "failure_code": entry, "exit_code": None}
        )
    )
    row = board_data.run_row(
        RUN,
        "failed",
        now=now,
        repo_name=entry,
        branch_base=entry,
        branch_working=entry,
        source=entry,
        error=entry,
        pr_url=entry,
        stall_reason=entry,
    )
    return run_facts(row, RUN)


JOB_RUN = "7a1b2c3d-0000-4000-8000-00000000a001"


def job_run_facts_for(entry: str) -> dict[str, Any]:
    """An automation's failed job run with ``entry`` in every upstream field."""
    row = {
        "id": JOB_RUN,
        "source": entry,
        "automation_id": entry,
        "automation_name": entry,
        "status": "failed",
        "repo_name": entry,
        "error": entry,
    }
    return job_run_facts(row, JOB_RUN)


def secrets() -> list[str]:
    found = [settings.SECRET_KEY, settings.BOARD_INGEST_TOKEN, "/kiosk/"]
    found += [source.token.reveal() for source in settings.MOGPLEX_TOKENS]
    return [s for s in found if s]


def own_links() -> set[str]:
    return {
        settings.BOARD_PUBLIC_URL.rstrip("/") + f"/runs/{RUN}/",
        settings.MOGPLEX_APP_URL.rstrip("/") + f"/runs/{RUN}",
    }


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.hrefs += [v or "" for k, v in attrs if k in ("href", "src")]
        assert not [k for k, _ in attrs if k not in ("href",)], f"<{tag}> with attributes {attrs}"


def check_text(text: str, entry: str) -> None:
    assert not MENTION.search(text), f"a mention survived {entry[:60]!r}: {text[:300]!r}"
    assert "<!" not in text and "<@" not in text and "<#" not in text and "<http" not in text, (
        f"a Slack control sequence survived {entry[:60]!r}"
    )
    for secret in secrets():
        assert secret not in text


def check_markdown(text: str, entry: str, links: set[str] | None = None) -> None:
    html = MarkdownIt("commonmark").render(text)
    parser = _Tags()
    parser.feed(html)
    assert parser.tags <= {"p", "strong", "a", "ul", "li"}, f"markup from {entry[:60]!r}: {parser.tags}"
    assert set(parser.hrefs) <= (links or own_links()), f"a link from {entry[:60]!r}: {parser.hrefs}"
    visible = re.sub(r"<[^>]+>", "", html)
    assert not MENTION.search(visible), f"a mention survived {entry[:60]!r}"
    for secret in secrets():
        assert secret not in text


FORMATS = {
    "slack": "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7",
    "mmost": "mmost://{base}/hooktoken",
    "discord": "discord://1234567890/webhooktoken",
    "json": "json://{base}/json",
}


@pytest.mark.parametrize("kind", list(FORMATS))
@pytest.mark.parametrize("event", ["run_failed", "run_stalled", "job_run_failed", "digest"])
def test_hostile_text_cannot_ping_link_or_format(
    kind: str, event: str, receiver: WebhookReceiver, redis_db: redis.Redis
) -> None:
    url = FORMATS[kind].format(base=receiver.base)
    dialect = dialect_for(kind)
    for entry in ENTRIES:
        facts = job_run_facts_for(entry) if event == "job_run_failed" else facts_for(entry)
        events = [(event, facts)] if event != "digest" else [("run_failed", facts), ("source_problem", facts)]
        receiver.clear()
        assert destination_send(url, kind, events) is None
        [received] = receiver.received
        payload = received.json()
        if kind == "slack":
            [attachment] = payload["attachments"]
            assert payload["mrkdwn"] is False
            text = attachment["title"] + "\n" + attachment["text"]
            assert "<" not in text, f"Slack would parse <…> from {entry[:60]!r}"
            check_text(text, entry)
        elif kind == "json":
            check_text(payload["title"] + "\n" + payload["message"], entry)
        else:
            text = payload["text"] if kind == "mmost" else payload["content"]
            assert dialect == "markdown"
            # A job run's only link is the board's automations page (its anchor is a slug).
            check_markdown(text, entry, own_links() | {str(facts.get("board_url"))})
        if event == "run_failed":
            assert "Board run page" in str(payload)
        assert "apprise" not in received.body.lower(), "no Apprise icon or name, only the board's addresses"


def test_hostile_text_in_mail(mail: MailReceiver, redis_db: redis.Redis) -> None:
    for entry in ENTRIES:
        mail.messages.clear()
        assert destination_send(mail.url(), "mailto", [("run_failed", facts_for(entry))]) is None
        [message] = mail.messages
        check_text(str(message["Subject"]) + "\n" + message.get_content(), entry)
