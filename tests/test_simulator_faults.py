"""Faults switched on at run time: what a client sees, for whom, and for how long."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dashboard.demo import new_pat
from dashboard.simulator.control import SimulatorControl
from tests.waiting import wait_for


@pytest.fixture
def pats(sim: SimulatorControl) -> dict[str, str]:
    """Two read tokens, ``one`` and ``two``, both of user alice."""
    made = {"one": new_pat(), "two": new_pat()}
    for name, token in made.items():
        sim.register_token(name, token, ["read"], user="alice")
    return made


@pytest.fixture
def api(simulator_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{simulator_server}/api/v1/mogplex", timeout=10) as client:
        yield client


def get_repos(api: httpx.Client, token: str, **kwargs: Any) -> httpx.Response:
    return api.get("/repos", headers={"Authorization": f"Bearer {token}"}, **kwargs)


def error_of(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert body["ok"] is False
    return dict(body["error"])


def test_429_fault_says_when_to_retry(api: httpx.Client, pats: dict[str, str], sim: SimulatorControl) -> None:
    sim.configure(window_seconds=30)
    sim.inject_fault("429", token="one")

    response = get_repos(api, pats["one"])

    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    assert error_of(response) == {"code": "RATE_LIMITED", "message": "Rate limit exceeded. Retry after 30s."}


def test_401_fault_carries_www_authenticate(
    api: httpx.Client, pats: dict[str, str], sim: SimulatorControl
) -> None:
    sim.inject_fault("401")

    response = get_repos(api, pats["one"])

    assert response.status_code == 401
    assert error_of(response)["code"] == "UNAUTHORIZED"
    assert "resource_metadata=" in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("kind", "status", "code"), [("403", 403, "FORBIDDEN"), ("500", 500, "INTERNAL_ERROR")]
)
def test_error_faults_answer_envelopes(
    api: httpx.Client, pats: dict[str, str], sim: SimulatorControl, kind: str, status: int, code: str
) -> None:
    sim.inject_fault(kind)

    response = get_repos(api, pats["one"])

    assert response.status_code == status
    assert error_of(response)["code"] == code


def test_502_fault_is_an_html_page(api: httpx.Client, pats: dict[str, str], sim: SimulatorControl) -> None:
    sim.inject_fault("502_html")

    response = get_repos(api, pats["one"])

    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_malformed_json_fault_is_a_200_that_does_not_parse(
    api: httpx.Client, pats: dict[str, str], sim: SimulatorControl
) -> None:
    sim.inject_fault("malformed_json")

    response = get_repos(api, pats["one"])

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.text.startswith('{"ok":true')
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_ok_false_fault_is_a_200_error_envelope(
    api: httpx.Client, pats: dict[str, str], sim: SimulatorControl
) -> None:
    sim.inject_fault("ok_false_200")

    response = get_repos(api, pats["one"])

    assert response.status_code == 200
    assert response.json()["ok"] is False


def test_redirect_fault_points_at_the_www_host_by_default(
    api: httpx.Client, pats: dict[str, str], sim: SimulatorControl, simulator_server: str
) -> None:
    sim.inject_fault("redirect", count=1)
    sim.inject_fault("redirect", location="https://mogplex.example/elsewhere", status=307, count=1)

    default = get_repos(api, pats["one"], params={"q": "web"})
    custom = get_repos(api, pats["one"])

    assert default.status_code == 308
    www = simulator_server.replace("http://", "http://www.")
    assert default.headers["location"] == f"{www}/api/v1/mogplex/repos?q=web"
    assert custom.status_code == 307
    assert custom.headers["location"] == "https://mogplex.example/elsewhere"


def test_slow_fault_answers_normally_after_its_delay(
    api: httpx.Client, pats: dict[str, str], sim: SimulatorControl
) -> None:
    sim.inject_fault("slow", delay_seconds=0.2, count=1)

    response = get_repos(api, pats["one"])

    assert response.status_code == 200
    assert response.json()["data"]["repos"]


def test_timeout_fault_holds_the_response_past_a_client_timeout(
    api: httpx.Client, pats: dict[str, str], sim: SimulatorControl
) -> None:
    sim.inject_fault("timeout", delay_seconds=2, count=1)

    with pytest.raises(httpx.ReadTimeout):
        get_repos(api, pats["one"], timeout=0.3)

    # The held request is still answered (and recorded) once the delay is over.
    wait_for(lambda: sim.requests(), timeout=5, what="the held request to be answered")
    assert sim.requests()[0]["status"] == 200


def test_faults_hit_only_their_token_and_only_count_times(
    api: httpx.Client, pats: dict[str, str], sim: SimulatorControl
) -> None:
    sim.inject_fault("500", token="one", count=2)

    statuses = [get_repos(api, pats["one"]).status_code for _ in range(3)]

    assert statuses == [500, 500, 200]
    assert get_repos(api, pats["two"]).status_code == 200
    assert sim.faults() == []


def test_global_faults_hit_everyone_until_cleared(
    api: httpx.Client, pats: dict[str, str], sim: SimulatorControl
) -> None:
    sim.inject_fault("502_html")

    hit = [
        get_repos(api, pats["one"]).status_code,
        get_repos(api, pats["two"]).status_code,
        api.get("/repos").status_code,
    ]
    sim.clear_faults()

    assert hit == [502, 502, 502]
    assert get_repos(api, pats["one"]).status_code == 200
    assert [r["status"] for r in sim.requests()] == [502, 502, 502, 200]


def test_clearing_one_tokens_faults_leaves_the_others(
    api: httpx.Client, pats: dict[str, str], sim: SimulatorControl
) -> None:
    sim.inject_fault("500", token="one")
    sim.inject_fault("502_html", token="two")

    sim.clear_faults(token="one")

    assert get_repos(api, pats["one"]).status_code == 200
    assert get_repos(api, pats["two"]).status_code == 502
    assert [fault["token"] for fault in sim.faults()] == ["two"]


def test_fault_requests_cost_no_budget(
    api: httpx.Client, pats: dict[str, str], sim: SimulatorControl
) -> None:
    sim.configure(limit=1)
    sim.inject_fault("500", token="one", count=3)

    statuses = [get_repos(api, pats["one"]).status_code for _ in range(5)]

    assert statuses == [500, 500, 500, 200, 429]


def test_unknown_fault_kind_is_refused(sim: SimulatorControl) -> None:
    with pytest.raises(httpx.HTTPStatusError) as refused:
        sim.inject_fault("meteor")

    assert refused.value.response.status_code == 400
