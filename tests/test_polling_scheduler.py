"""The scheduler's decisions: what is due, in which order, at which paced slot."""

from __future__ import annotations

import pytest

from dashboard.polling.scheduler import (
    Policy,
    RunState,
    SourceState,
    automations_interval,
    due_automations,
    due_fetches,
    effective_run_interval,
    lookup_sources,
    plan_source,
)

POLICY = Policy(
    budget=50,
    window=60.0,
    run_refresh=10.0,
    sandboxes_refresh=30.0,
    repos_refresh=600.0,
    account_refresh=1800.0,
    tick=1.0,
)
NOW = 1_000_000.0


def _fresh_lists(**overrides: float) -> dict[str, float]:
    """Sandboxes, repos, account and automations fetched a moment ago: only runs are due."""
    times = {"sandboxes_at": NOW - 1, "repos_at": NOW - 1, "account_at": NOW - 1, "automations_at": NOW - 1}
    times.update(overrides)
    return times


def test_a_new_source_fetches_account_sandboxes_and_repos_first() -> None:
    due = due_fetches(SourceState("a", NOW, runs=[RunState("r1", "streaming")]), POLICY)
    assert [fetch.kind for fetch in due] == ["account", "sandboxes", "repos", "run_events"]


def test_streaming_runs_go_before_pending_and_the_least_recently_fetched_first() -> None:
    runs = [
        RunState("pending-old", "pending", NOW - 40),
        RunState("streaming-recent", "streaming", NOW - 12),
        RunState("streaming-old", "streaming", NOW - 40),
        RunState("fresh", "streaming", NOW - 3),
    ]
    due = due_fetches(SourceState("a", NOW, runs=runs, **_fresh_lists()), POLICY)
    assert [fetch.run_id for fetch in due] == ["streaming-old", "pending-old", "streaming-recent"]


def test_terminal_runs_get_one_final_fetch_then_none() -> None:
    owed = RunState("owed", "success", NOW - 11, final_fetch_done=False)
    done = RunState("done", "failed", NOW - 500, final_fetch_done=True)
    due = due_fetches(SourceState("a", NOW, runs=[owed, done], **_fresh_lists()), POLICY)
    assert [fetch.run_id for fetch in due] == ["owed"]


def test_sandboxes_are_due_every_interval_after_the_runs() -> None:
    runs = [RunState("r1", "streaming", NOW - 20)]
    due = due_fetches(SourceState("a", NOW, runs=runs, **_fresh_lists(sandboxes_at=NOW - 31)), POLICY)
    assert [fetch.kind for fetch in due] == ["run_events", "sandboxes"]


def test_overdue_sandboxes_jump_ahead_of_a_crowd_of_runs() -> None:
    runs = [RunState(f"r{i}", "streaming", NOW - 100) for i in range(100)]
    due = due_fetches(SourceState("a", NOW, runs=runs, **_fresh_lists(sandboxes_at=NOW - 61)), POLICY)
    assert due[0].kind == "sandboxes"


def test_requests_are_paced_evenly_not_burst() -> None:
    fast = Policy(**{**POLICY.__dict__, "window": 6.0, "budget": 50})
    runs = [RunState(f"r{i}", "streaming") for i in range(30)]
    plan = plan_source(SourceState("a", NOW, runs=runs, **_fresh_lists()), fast)
    times = [fetch.at for fetch in plan.fetches]
    # One tick of 1 s at 50 per 6 s holds ceil(1 / 0.12) = 9 slots, 0.12 s apart.
    assert len(times) == 9
    gaps = {round(b - a, 6) for a, b in zip(times, times[1:], strict=False)}
    assert gaps == {0.12}
    assert plan.next_slot_at == pytest.approx(NOW + 9 * 0.12)


def test_the_next_tick_continues_from_the_next_slot_without_bursting_to_catch_up() -> None:
    runs = [RunState(f"r{i}", "streaming") for i in range(10)]
    # A plan reaches four slots ahead (4.8 s at 50 per 60 s), continuing from the next slot.
    plan = plan_source(SourceState("a", NOW, runs=runs, next_slot_at=NOW + 0.9, **_fresh_lists()), POLICY)
    assert [fetch.at for fetch in plan.fetches] == pytest.approx([NOW + 0.9 + 1.2 * i for i in range(4)])
    assert plan.replan_at == pytest.approx(NOW + 0.9 + 4 * 1.2)
    idle = plan_source(SourceState("a", NOW, runs=runs, next_slot_at=NOW - 30, **_fresh_lists()), POLICY)
    assert [fetch.at for fetch in idle.fetches] == pytest.approx([NOW + 1.2 * i for i in range(4)])


def test_nothing_is_planned_while_the_source_is_paused() -> None:
    runs = [RunState("r1", "streaming")]
    plan = plan_source(SourceState("a", NOW, runs=runs, blocked_until=NOW + 30), POLICY)
    assert plan.fetches == []
    resumed = plan_source(SourceState("a", NOW + 30, runs=runs, blocked_until=NOW + 30), POLICY)
    assert resumed.fetches


def test_round_robin_shares_an_overloaded_budget_evenly() -> None:
    """Simulated over many ticks: each of k runs is fetched about every k * window / budget."""
    k = 60
    last = {f"r{i}": 0.0 for i in range(k)}
    fetched: dict[str, list[float]] = {run_id: [] for run_id in last}
    next_slot = 0.0
    lists = {"sandboxes_at": NOW, "repos_at": NOW, "account_at": NOW}
    for second in range(600):
        now = NOW + second
        state = SourceState(
            "a",
            now,
            runs=[RunState(run_id, "streaming", at) for run_id, at in last.items()],
            next_slot_at=next_slot,
            **lists,
        )
        plan = plan_source(state, POLICY)
        next_slot = plan.next_slot_at
        for fetch in plan.fetches:
            if fetch.kind == "run_events":
                assert fetch.run_id is not None
                last[fetch.run_id] = fetch.at
                fetched[fetch.run_id].append(fetch.at)
            else:
                lists[f"{fetch.kind}_at"] = fetch.at
    intervals = [b - a for times in fetched.values() for a, b in zip(times, times[1:], strict=False)]
    mean = sum(intervals) / len(intervals)
    assert mean == pytest.approx(k * POLICY.window / POLICY.budget, rel=0.1)
    # Evenly: no run waits much longer than the others.
    assert max(intervals) < 1.3 * mean


def test_the_effective_interval_is_the_refresh_until_the_budget_runs_out() -> None:
    assert effective_run_interval(0, POLICY) == 10.0
    assert effective_run_interval(5, POLICY) == 10.0
    # Less the lists' and the automation list's requests (one every 300 s with no automations).
    assert effective_run_interval(60, POLICY) == pytest.approx(
        60 * 60 / (50 - 2 - 0.1 - 2 * 60 / 1800 - 60 / 300)
    )


def test_a_source_with_nothing_due_is_planned_again_when_something_falls_due() -> None:
    runs = [RunState("r1", "streaming", NOW - 8)]
    plan = plan_source(SourceState("a", NOW, runs=runs, **_fresh_lists()), POLICY)
    assert plan.fetches == []
    assert plan.replan_at == pytest.approx(NOW + 2)
    quiet = plan_source(
        SourceState("a", NOW, runs=[RunState("r1", "success", NOW - 8, True)], **_fresh_lists()), POLICY
    )
    # Nothing will fall due for minutes: planned again within a few seconds anyway, for its health.
    assert quiet.replan_at == NOW + 5


def _simulate(
    runs: int, lookups: int, seconds: int, policy: Policy = POLICY
) -> tuple[dict[str, list[float]], list[float]]:
    """Plan a source once a second: each run's fetch times, and the lookups' times."""
    last = {f"r{i}": 0.0 for i in range(runs)}
    waiting = [f"new{i}" for i in range(lookups)]
    fetched: dict[str, list[float]] = {run_id: [] for run_id in last}
    looked: list[float] = []
    next_slot = 0.0
    lists = {"sandboxes_at": NOW, "repos_at": NOW, "account_at": NOW}
    for second in range(seconds):
        state = SourceState(
            "a",
            NOW + second,
            runs=[RunState(run_id, "streaming", at) for run_id, at in last.items()],
            next_slot_at=next_slot,
            lookups=tuple(waiting),
            **lists,
        )
        plan = plan_source(state, policy)
        next_slot = plan.next_slot_at
        for fetch in plan.fetches:
            if fetch.kind == "run_events":
                assert fetch.run_id is not None
                last[fetch.run_id] = fetch.at
                fetched[fetch.run_id].append(fetch.at)
            elif fetch.kind == "lookup":
                waiting.remove(str(fetch.run_id))
                looked.append(fetch.at)
            else:
                lists[f"{fetch.kind}_at"] = fetch.at
    return fetched, looked


def _mean_interval(fetched: dict[str, list[float]]) -> float:
    intervals = [b - a for times in fetched.values() for a, b in zip(times, times[1:], strict=False)]
    return sum(intervals) / len(intervals)


def test_a_burst_of_lookups_leaves_known_runs_their_refresh() -> None:
    quiet, _ = _simulate(runs=5, lookups=0, seconds=300)
    burst, looked = _simulate(runs=5, lookups=300, seconds=300)
    # At most a slot later now and then (a slot kept for lookups, or one a lookup took just before).
    assert _mean_interval(burst) <= 1.25 * _mean_interval(quiet)
    # Lookups took the requests the runs left: 50 per minute less the runs' 30 and the lists'.
    assert 60 <= len(looked) <= 100


def test_lookups_keep_their_share_when_the_runs_want_the_whole_budget() -> None:
    crowded, looked = _simulate(runs=100, lookups=300, seconds=300)
    share = len(looked) / (len(looked) + sum(len(times) for times in crowded.values()))
    assert share == pytest.approx(POLICY.lookup_share, abs=0.02)
    assert effective_run_interval(100, POLICY, lookups_waiting=True) == pytest.approx(
        effective_run_interval(100, POLICY) / (1 - POLICY.lookup_share)
    )


SOURCES = ["ada", "ben", "cleo", "dev"]


def test_a_named_source_is_asked_alone_first() -> None:
    assert lookup_sources(SOURCES, tried=(), named="cleo", repo_owners=["ben"]) == ["cleo"]
    # Once it answered 404, the repo's owners come next, and then everyone else.
    assert lookup_sources(SOURCES, tried=["cleo"], named="cleo", repo_owners=["ben"]) == ["ben"]
    assert lookup_sources(SOURCES, tried=["cleo", "ben"], named="cleo", repo_owners=["ben"]) == ["ada", "dev"]


def test_a_run_with_a_repo_goes_to_the_sources_that_hold_it() -> None:
    assert lookup_sources(
        SOURCES, tried=(), repo_owners=["dev"], repos_unknown=["ada"], wait_for_repos=True
    ) == ["dev"]
    # No known list holds the repo: wait while some lists are unknown, then ask everyone.
    assert lookup_sources(SOURCES, tried=(), repos_unknown=["ada"], wait_for_repos=True) == []
    assert lookup_sources(SOURCES, tried=(), repos_unknown=["ada"], wait_for_repos=False) == SOURCES
    assert lookup_sources(SOURCES, tried=SOURCES) == []


def test_a_run_nothing_points_anywhere_is_asked_two_sources_at_a_time_spread_over_all() -> None:
    sources = [f"t{n:02d}" for n in range(50)]
    firsts = set()
    for n in range(200):
        asked = lookup_sources(sources, tried=(), run_id=f"run-{n}")
        assert len(asked) == 2
        firsts.add(asked[0])
    # Spread over the tokens, not always the first ones configured.
    assert len(firsts) > 30
    # The last untried ones are asked all the same.
    assert lookup_sources(sources, tried=sources[:-1], run_id="run-1") == ["t49"]


def _simulate_automations(runs: int, automations: int, seconds: int) -> tuple[float, dict[str, list[float]]]:
    """Plan a source once a second with ``automations``: the runs' mean interval, each automation's fetch times."""
    last = {f"r{i}": 0.0 for i in range(runs)}
    marks = {f"a{i}": 0.0 for i in range(automations)}
    fetched: dict[str, list[float]] = {run_id: [] for run_id in last}
    automation_times: dict[str, list[float]] = {automation_id: [] for automation_id in marks}
    lists = {"sandboxes_at": NOW, "repos_at": NOW, "account_at": NOW, "automations_at": 0.0}
    next_slot = 0.0
    for second in range(seconds):
        state = SourceState(
            "a",
            NOW + second,
            runs=[RunState(run_id, "streaming", at) for run_id, at in last.items()],
            next_slot_at=next_slot,
            automations=dict(marks),
            **lists,
        )
        plan = plan_source(state, POLICY)
        next_slot = plan.next_slot_at
        for fetch in plan.fetches:
            if fetch.kind == "run_events":
                assert fetch.run_id is not None
                last[fetch.run_id] = fetch.at
                fetched[fetch.run_id].append(fetch.at)
            elif fetch.kind == "automation":
                assert fetch.automation_id is not None
                marks[fetch.automation_id] = fetch.at
                automation_times[fetch.automation_id].append(fetch.at)
            else:
                lists[f"{fetch.kind}_at"] = fetch.at
    return _mean_interval(fetched), automation_times


def test_automations_take_their_share_and_the_runs_keep_the_rest() -> None:
    without, _ = _simulate_automations(runs=20, automations=0, seconds=3600)
    with_them, times = _simulate_automations(runs=20, automations=20, seconds=3600)
    # Within the share (5 %): the runs' refresh moves by less than 10 %.
    assert with_them <= 1.1 * without
    every = automations_interval(20, POLICY)
    # 41 requests a round at 2.5 a minute: slower than the configured 300 s.
    assert every == pytest.approx(41 * 60 / 2.5)
    intervals = [b - a for fetched in times.values() for a, b in zip(fetched, fetched[1:], strict=False)]
    assert all(len(fetched) >= 3 for fetched in times.values())
    assert sum(intervals) / len(intervals) == pytest.approx(every, rel=0.1)


def test_a_quiet_source_fetches_its_automations_at_the_configured_interval() -> None:
    assert automations_interval(3, POLICY) == 300.0
    state = SourceState(
        "a",
        NOW,
        automations={"a1": NOW - 301, "a2": NOW - 10, "a3": 0.0},
        **_fresh_lists(automations_at=0.0),
    )
    due = due_automations(state, POLICY)
    # The list (never fetched) first, then the never fetched automation, then the overdue one.
    assert [(f.kind, f.automation_id) for f in due] == [
        ("automations", None),
        ("automation", "a3"),
        ("automation", "a1"),
    ]
    plan = plan_source(state, POLICY)
    assert [f.kind for f in plan.fetches] == ["automations"]
    assert plan.automations_interval == 300.0
