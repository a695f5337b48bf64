"""The per-source budget, against the real Valkey."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from django.test import override_settings

from dashboard.polling.budget import (
    budget_acquire,
    budget_pause,
    budget_paused_until,
    budget_used,
)
from tests.waiting import wait_for


@override_settings(MOGPLEX_BUDGET=5, MOGPLEX_BUDGET_WINDOW_SECONDS=60)
def test_a_source_gets_its_budget_and_no_more(redis_db: redis.Redis) -> None:
    assert [budget_acquire("alice") for _ in range(7)] == [True] * 5 + [False] * 2
    assert budget_used("alice") == 5


@override_settings(MOGPLEX_BUDGET=3, MOGPLEX_BUDGET_WINDOW_SECONDS=60)
def test_each_source_has_its_own_budget(redis_db: redis.Redis) -> None:
    for _ in range(3):
        assert budget_acquire("alice")
    assert not budget_acquire("alice")
    assert budget_acquire("bob")
    assert budget_used("bob") == 1


@override_settings(MOGPLEX_BUDGET=2, MOGPLEX_BUDGET_WINDOW_SECONDS=1)
def test_the_window_rolls(redis_db: redis.Redis) -> None:
    assert budget_acquire("alice") and budget_acquire("alice")
    assert not budget_acquire("alice")
    wait_for(lambda: budget_acquire("alice"), timeout=5, what="the rolling window to free a slot")


@override_settings(MOGPLEX_BUDGET=50, MOGPLEX_BUDGET_WINDOW_SECONDS=60)
def test_a_paused_source_sends_nothing_until_the_pause_ends(redis_db: redis.Redis) -> None:
    until = budget_pause("alice", 60)
    assert until == pytest.approx(time.time() + 60, abs=2)
    assert budget_paused_until("alice") == until
    assert not budget_acquire("alice")
    assert budget_used("alice") == 0
    assert budget_acquire("bob")


@override_settings(MOGPLEX_BUDGET=50, MOGPLEX_BUDGET_WINDOW_SECONDS=60)
def test_a_shorter_pause_never_shortens_a_longer_one(redis_db: redis.Redis) -> None:
    long = budget_pause("alice", 60)
    assert budget_pause("alice", 1) == long
    assert budget_paused_until("alice") == long


@override_settings(MOGPLEX_BUDGET=50, MOGPLEX_BUDGET_WINDOW_SECONDS=60)
def test_a_pause_ends(redis_db: redis.Redis) -> None:
    budget_pause("alice", 0.3)
    assert not budget_acquire("alice")
    wait_for(lambda: budget_acquire("alice"), timeout=3, what="the pause to end")
    assert budget_paused_until("alice") is None


@override_settings(MOGPLEX_BUDGET=10, MOGPLEX_BUDGET_WINDOW_SECONDS=60)
def test_the_budget_holds_across_many_threads(redis_db: redis.Redis) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        granted = list(pool.map(lambda _: budget_acquire("alice"), range(40)))
    assert sum(granted) == 10
