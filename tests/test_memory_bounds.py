"""What a process keeps per row it has seen stays bounded, however many rows a wall sees in weeks."""

from __future__ import annotations

import uuid
from typing import Any

import redis
from django.template import Context, Template

from dashboard import snapshots
from dashboard.board import templatetags, unreadable

DISTINCT_ROWS = 10_000


def test_the_row_cache_holds_at_most_its_bound_after_ten_thousand_distinct_rows() -> None:
    template = Template(
        "{% load board %}{% for row in rows %}{% cached_row row.sig %}<p>{{ row.sig }}</p>{% endcached_row %}{% endfor %}"
    )
    nodes = template.nodelist.get_nodes_by_type(templatetags.CachedRowNode)
    node = next(n for n in nodes if isinstance(n, templatetags.CachedRowNode))
    for start in range(0, DISTINCT_ROWS, 500):
        rows = [{"sig": f"row-{n}"} for n in range(start, start + 500)]
        html = template.render(Context({"rows": rows, "now": 0.0}))
        # Still right after the cache was emptied and refilled.
        assert f"<p>row-{start + 499}</p>" in html
        assert len(node.rows) + len(node.older) <= 2 * templatetags.ROW_CACHE_SIZE
    assert len(node.rows) > 0


def test_the_rows_a_board_still_shows_outlive_the_row_cache_filling_up() -> None:
    template = Template(
        "{% load board %}{% for row in rows %}{% cached_row row.sig %}<p>{{ row.sig }} {{ row.n }}</p>"
        "{% endcached_row %}{% endfor %}"
    )
    node = next(iter(template.nodelist.get_nodes_by_type(templatetags.CachedRowNode)))
    for render, start in enumerate(range(0, DISTINCT_ROWS, 300)):
        # A wall of 100 rows that stay, beside 300 that come and go. What a row holds
        # beyond its signature (``n``) shows when it is rendered anew, not from the cache.
        wall = [{"sig": f"wall-{n}", "n": render} for n in range(100)]
        churn = [{"sig": f"churn-{n}", "n": render} for n in range(start, start + 300)]
        template.render(Context({"rows": wall + churn, "now": 0.0}))
        assert len(node.rows) + len(node.older) <= 2 * templatetags.ROW_CACHE_SIZE
    html = template.render(Context({"rows": [{"sig": "wall-7", "n": -1}], "now": 0.0}))
    assert html == "<p>wall-7 0</p>", "the wall's rows were never rendered again"


def test_row_checks_and_unreadable_log_lines_are_remembered_within_their_bounds() -> None:
    for n in range(DISTINCT_ROWS):
        row = {"sig": f"sig-{n}", "run_id": "not a uuid", "fetched_at": 1.0}
        assert unreadable.run_row_problem(row) == "its 'run_id' is not a run id"
        unreadable.unreadable_log("run", str(uuid.uuid4()), "its 'run_id' is not a run id")
        assert len(unreadable._seen) <= unreadable._SEEN_LIMIT
        assert len(unreadable._logged) <= unreadable._LOGGED_LIMIT
    assert unreadable._seen and unreadable._logged


def test_a_sandbox_history_lasts_as_long_as_the_board_can_show_the_sandbox(
    settings: Any, valkey_server: str, redis_db: redis.Redis
) -> None:
    settings.REDIS_URL = valkey_server
    settings.BOARD_RETENTION_HOURS = 2
    box = str(uuid.uuid4())
    key = f"board:sandbox-history:{box}"
    kept = snapshots.finished_run_ttl()
    assert kept == 3 * 3600, "the retention window and an hour's grace"

    snapshots.sandbox_history_append(box, "creating", seen_at=1.0)
    assert kept - 5 <= redis_db.ttl(key) <= kept
    # Seen again, unchanged, an hour before it would have expired: it is kept from then on.
    redis_db.expire(key, 3600)
    snapshots.sandbox_history_append(box, "creating", seen_at=2.0)
    assert kept - 5 <= redis_db.ttl(key) <= kept
    snapshots.sandbox_history_append(box, "running", seen_at=3.0)
    assert [entry["status"] for entry in snapshots.sandbox_history_read(box)] == ["creating", "running"]
    assert kept - 5 <= redis_db.ttl(key) <= kept
