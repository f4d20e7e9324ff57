"""Hostile HTTP input: schemathesis over the OpenAPI schema, and limits on what a body may cost.

Schemathesis runs in-process through the ASGI app (no network), with a bounded number of
examples per operation, as a person, as an agent and with a forged token. No answer may be a
5xx.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from api.helpers import Served
from conftest import good_facts, refund
from discretion import Guard, SqlStore
from discretion.api import Tokens, create_app
from discretion.context import StaticContextProvider
from discretion.store._schema import decisions

EXAMPLES = 12


@pytest.fixture
def app_and_tokens(pack, clock, sqlite_store: SqlStore) -> Iterator[tuple[Any, dict[str, str]]]:
    guard = Guard(
        pack, store=sqlite_store, context=StaticContextProvider(good_facts()), clock=clock
    )
    app = create_app(guard)
    tokens = Tokens(sqlite_store, clock=guard.now)
    person, _ = tokens.create(subject_id="maria", role="manager")
    agent, _ = tokens.create(subject_id="bot-1", role="ai_agent", is_ai=True)
    # Something to find: a routed case, so ids in paths sometimes exist.
    with TestClient(app) as client:
        routed = client.post(
            "/v1/decisions",
            json=refund("80.00"),
            headers={"Authorization": f"Bearer {agent}"},
        )
        assert routed.json()["outcome"] == "route"
        yield app, {"person": person, "agent": agent, "forged": "dsc_" + "x" * 43}


def fuzz(operation: Any, mode: Any, tokens: dict[str, str], seen: dict[str, set[int]]) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: Any) -> None:
        for who in ("person", "agent", "forged"):
            response = case.call(headers={"Authorization": f"Bearer {tokens[who]}"})
            seen.setdefault(label, set()).add(response.status_code)
            assert response.status_code < 500, (
                f"{label} as {who}: {response.status_code} {response.text[:300]}"
            )

    try:
        call()
    except Unsatisfiable:
        # An operation with nothing to get wrong (no parameters, no body) has no negative case.
        if mode is not schemathesis.GenerationMode.NEGATIVE:
            raise


def test_no_generated_request_gets_a_5xx(app_and_tokens):
    app, tokens = app_and_tokens
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    seen: dict[str, set[int]] = {}
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            fuzz(operation, mode, tokens, seen)
    assert len(seen) == len(operations)
    # The fuzzer got past authentication: some requests were answered 2xx.
    assert any(code < 300 for codes in seen.values() for code in codes)


@pytest.fixture
def small(make_guard, store: SqlStore) -> Iterator[Served]:
    guard = make_guard()
    with TestClient(create_app(guard, max_body_bytes=20_000, max_json_depth=20)) as client:
        served = Served(guard=guard, store=store, facts=None, client=client)  # type: ignore[arg-type]
        served.issue(Tokens(store, clock=guard.now))
        yield served


def decided(served: Served) -> int:
    from sqlalchemy import func, select

    with served.store.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(decisions)).scalar_one())


def test_a_body_over_the_size_limit_is_413_and_nothing_is_recorded(small):
    proposal = refund("10.00")
    proposal["tool"]["arguments"]["note"] = "x" * 30_000
    answer = small.post("/v1/decisions", "bot", proposal)
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"
    assert "larger than 20000 bytes" in answer.json()["message"]
    assert decided(small) == 0


def test_a_streamed_body_without_a_length_is_cut_off_at_the_limit(small):
    def chunks() -> Iterator[bytes]:
        yield b'{"actor": {"id": "bot-1", "role": "ai_agent"}, "rationale": {"text": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}}'

    answer = small.client.post(
        "/v1/decisions",
        content=chunks(),
        headers={**small.auth("bot"), "Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert decided(small) == 0


@pytest.mark.parametrize("depth", [21, 1000, 9000])
@pytest.mark.parametrize("media", ["application/json", "Application/JSON; charset=UTF-8"])
def test_json_nested_deeper_than_the_limit_is_a_clear_422(small, depth, media):
    body = '{"actor": ' + "[" * depth + "]" * depth + "}"
    answer = small.client.post(
        "/v1/decisions",
        content=body,
        headers={**small.auth("bot"), "Content-Type": media},
    )
    assert answer.status_code == 422
    assert "nests deeper than 20 levels" in answer.json()["message"]
    assert decided(small) == 0


def test_the_default_app_refuses_a_deeply_nested_body_instead_of_crashing(served):
    body = "[" * 100_000 + "]" * 100_000
    answer = served.client.post(
        "/v1/decisions",
        content=body,
        headers={**served.auth("bot"), "Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_input"


def test_brackets_inside_strings_do_not_count_as_nesting(small):
    proposal = refund("10.00")
    proposal["rationale"]["text"] = '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ \\" {{{{{{{{{{{{{{{{{{{{{{{{'
    answer = small.post("/v1/decisions", "bot", proposal)
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "allow"


def test_tool_arguments_nested_past_the_guards_limit_are_a_422_naming_the_field(served):
    nested: Any = "leaf"
    for _ in range(40):
        nested = {"a": nested}
    proposal = refund("10.00")
    proposal["tool"]["arguments"]["metadata"] = nested
    answer = served.post("/v1/decisions", "bot", proposal)
    assert answer.status_code == 422
    assert answer.json()["field"] == "tool.arguments"
    assert decided(served) == 0


@pytest.mark.parametrize(
    ("where", "value", "field"),
    [
        ("text", "z" * 8001, "rationale.text"),
        ("claims", [{"field": "shipment.status", "value": "lost"}] * 51, "rationale.claims"),
        ("precedents", [f"prec_{i}" for i in range(21)], "rationale.precedents"),
    ],
)
def test_rationale_over_its_limits_is_a_clear_422(served, where, value, field):
    proposal = refund("10.00")
    proposal["rationale"][where] = value
    answer = served.post("/v1/decisions", "bot", proposal)
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["error"] == "invalid_input"
    assert field in problem["message"]
    assert decided(served) == 0


def test_a_note_over_its_limit_is_a_clear_422(served):
    routed = served.post("/v1/decisions", "bot", refund("80.00")).json()
    answer = served.post(f"/v1/approvals/{routed['id']}/approve", "tina", {"note": "n" * 2001})
    assert answer.status_code == 422
    assert "note" in json.dumps(answer.json())


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/v1/nope", 404, "not_found"),
        ("PUT", "/v1/decisions", 405, "method_not_allowed"),
    ],
)
def test_starlettes_own_refusals_are_problem_bodies(served, method, path, status, error):
    answer = served.client.request(method, path, headers=served.auth("bot"))
    assert answer.status_code == status
    assert answer.json()["error"] == error
    assert "detail" not in answer.json()


# Input that no stored row could hold is refused as input on every database: on PostgreSQL
# the store refused it mid-read or mid-write, which was answered 503 as an outage.


@pytest.mark.parametrize(
    ("method", "path", "who", "field"),
    [
        ("GET", "/v1/decisions/a%00b", "bot", "decision_id"),
        ("GET", "/v1/approvals/a%00b", "tom", "approval_id"),
        ("GET", "/v1/approvals/a%00b/history", "tom", "approval_id"),
        ("POST", "/v1/approvals/a%00b/reject", "tom", "approval_id"),
        ("GET", "/v1/executions/a%00b", "bot", "key"),
        ("POST", "/v1/executions/a%00b/claim", "bot", "key"),
        ("POST", "/v1/executions/a%00b/result", "bot", "key"),
        ("GET", "/v1/precedents/a%00b", "tom", "precedent_id"),
        ("GET", "/v1/precedents?action=%00", "tom", "action"),
        ("GET", "/v1/precedents?reason=a%00", "tom", "reason"),
        ("GET", "/v1/approvals?role=%00", "tom", "role"),
        ("GET", "/v1/decisions/" + "d" * 65, "bot", "decision_id"),
        ("GET", "/v1/executions/" + "k" * 201, "bot", "key"),
    ],
)
def test_a_nul_or_an_overlong_id_in_a_path_or_query_is_a_422_naming_it(
    served, method, path, who, field
):
    body = {"result": 1} if path.endswith("/result") else {"note": "no"}
    answer = served.client.request(
        method, path, headers=served.auth(who), json=body if method == "POST" else None
    )
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert (problem["error"], problem["field"]) == ("invalid_input", field)
    if "%00" in path:
        assert "no control characters" in problem["message"]
    else:
        assert "at most" in problem["message"]


@pytest.mark.parametrize(
    ("arguments", "field", "named"),
    [
        ({"note": "lamp-oak\x00"}, "tool.arguments.note", "'note'"),
        (
            {"lines": [{"sku": "a", "note": "\x00"}]},
            "tool.arguments.lines.0.note",
            "'lines.0.note'",
        ),
        ({"k\x00": 1}, "tool.arguments", "the name of argument"),
    ],
)
def test_a_tool_argument_holding_nul_is_a_422_and_the_order_stays_decidable(
    served, arguments, field, named
):
    poisoned = refund("10.00", key="nul")
    poisoned["tool"]["arguments"].update(arguments)
    answer = served.post("/v1/decisions", "bot", poisoned)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert (problem["error"], problem["field"]) == ("invalid_input", field)
    assert named in problem["message"]
    assert "NUL" in problem["message"]
    assert decided(served) == 0
    assert served.post("/v1/decisions", "bot", refund("10.00")).status_code == 200


def test_an_id_longer_than_the_store_holds_in_a_tool_argument_is_a_422_naming_it(served):
    answer = served.post("/v1/decisions", "bot", refund("10.00", case="K" * 201))
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert (problem["error"], problem["field"]) == ("invalid_input", "tool.arguments.case_id")
    assert "201 characters" in problem["message"]
    assert decided(served) == 0
    assert served.post("/v1/decisions", "bot", refund("10.00", case="K" * 200)).status_code == 200


@pytest.mark.parametrize(
    ("where", "field"),
    [(("tool", "name"), "tool.name"), (("action",), "action")],
)
def test_a_name_longer_than_the_store_holds_is_a_422_naming_it(served, where, field):
    proposal = refund("10.00")
    target = proposal
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = "n" * 101
    answer = served.post("/v1/decisions", "bot", proposal)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert decided(served) == 0


@pytest.mark.parametrize("path", ["reject", "escalate", "approve"])
def test_a_nul_in_an_approvers_note_is_a_422_naming_it(served, path):
    routed = served.post("/v1/decisions", "bot", refund("110.00")).json()
    assert routed["outcome"] == "route"
    answer = served.post(f"/v1/approvals/{routed['id']}/{path}", "tina", {"note": "ok\x00then"})
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert (problem["error"], problem["field"]) == ("invalid_input", "note")
    assert "NUL character (U+0000)" in problem["message"]
