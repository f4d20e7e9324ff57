from __future__ import annotations

import json

import pytest

from approvals.helpers import count
from conftest import refund, shop_pack_with
from discretion.api import Tokens
from discretion.store._schema import ledger


def test_health_needs_no_token_and_names_the_pack(served):
    answer = served.client.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "pack": "test-shop",
        "policy_version": served.guard.pack.version,
        "ledger_records": len(served.tokens),  # each token issued is recorded
    }


def test_openapi_describes_the_api_and_its_bearer_tokens(served):
    spec = served.client.get("/openapi.json").json()
    for path in (
        "/v1/decisions",
        "/v1/approvals",
        "/v1/approvals/{approval_id}/approve",
        "/v1/approvals/{approval_id}/reject",
        "/v1/approvals/{approval_id}/escalate",
        "/v1/precedents",
        "/v1/ledger/verify",
        "/health",
    ):
        assert path in spec["paths"], path
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    decide = spec["paths"]["/v1/decisions"]["post"]
    assert decide["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Proposal"
    )
    assert decide["requestBody"]["required"] is True
    assert decide["security"] == [{"HTTPBearer": []}]
    assert decide["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Decision"
    )
    assert "409" in spec["paths"]["/v1/approvals/{approval_id}/approve"]["post"]["responses"]
    assert served.client.get("/docs").status_code == 200


def test_an_agent_decides_over_http_and_the_decision_is_recorded_first(served):
    answer = served.post("/v1/decisions", "bot", refund("40.00"))
    assert answer.status_code == 200
    decision = answer.json()
    assert decision["outcome"] == "allow"
    assert decision["rules"] == ["refund-within-30-days"]
    assert decision["lineage_hash"]
    assert count(served.store, ledger, ledger.c.subject_id == decision["id"]) == 1
    again = served.post("/v1/decisions", "bot", refund("40.00"))
    assert again.json()["id"] == decision["id"]
    reused = served.post("/v1/decisions", "bot", refund("45.00"))
    assert reused.status_code == 422
    assert reused.json()["error"] == "invalid_input"
    assert reused.json()["field"] == "idempotency_key"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "send `Authorization: Bearer <token>`"),
        ({"Authorization": "Bearer dsc_not-a-token"}, "unknown or revoked"),
        ({"Authorization": "Basic dG9tOnRvbQ=="}, "send `Authorization: Bearer <token>`"),
    ],
)
def test_no_or_an_unknown_token_is_401(served, headers, message):
    answer = served.client.post("/v1/decisions", json=refund(), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["error"] == "unauthenticated"
    assert message in answer.json()["message"]
    assert count(served.store, ledger, ledger.c.kind != "token.issued") == 0


@pytest.mark.parametrize(
    ("headers", "content"),
    [
        ({}, b"{not json"),
        ({"Authorization": "Bearer dsc_not-a-token"}, b'{"surprise": 1}'),
        ({"Authorization": "Bearer dsc_not-a-token", "Content-Type": "text/plain"}, b""),
    ],
)
def test_the_token_is_checked_before_the_body(served, headers, content):
    answer = served.client.post(
        "/v1/decisions", content=content, headers={"Content-Type": "application/json", **headers}
    )
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "unauthenticated"
    assert count(served.store, ledger, ledger.c.kind != "token.issued") == 0


@pytest.mark.parametrize(
    ("content_type", "content", "message"),
    [
        ("text/plain", json.dumps(refund()).encode(), "body: send the proposal as JSON"),
        (None, json.dumps(refund()).encode(), "body: send the proposal as JSON"),
        ("application/json", b"", "body: Field required"),
        ("application/json", b"[1, 2]", "body: Input should be an object"),
        ("application/json", b'{"actor": ', "body: Invalid JSON"),
    ],
)
def test_a_body_that_is_not_a_json_proposal_is_422(served, content_type, content, message):
    headers = served.auth("bot")
    if content_type is not None:
        headers["Content-Type"] = content_type
    answer = served.client.post("/v1/decisions", content=content, headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_input"
    assert message in answer.json()["message"]
    assert count(served.store, ledger, ledger.c.kind != "token.issued") == 0


def test_a_proposal_in_a_json_media_type_of_its_own_is_decided(served):
    headers = {**served.auth("bot"), "Content-Type": "application/vnd.acme+json; charset=utf-8"}
    answer = served.client.post("/v1/decisions", content=json.dumps(refund()), headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "allow"


def test_a_revoked_token_is_401(served):
    Tokens(served.store, clock=served.guard.now).revoke(served.token_ids["bot"])
    assert served.post("/v1/decisions", "bot", refund()).status_code == 401


def test_an_agent_may_only_propose_as_itself(served):
    for proposal in (
        refund(actor="bot-2"),
        refund(role="tier2", actor="bot-1"),
        {**refund(), "actor": {"id": "bot-1", "role": "ai_agent", "is_ai": False}},
    ):
        answer = served.post("/v1/decisions", "bot", proposal)
        assert answer.status_code == 403
        assert "does not match the token's subject" in answer.json()["message"]
    assert count(served.store, ledger, ledger.c.kind != "token.issued") == 0


@pytest.mark.parametrize(
    ("proposal", "field", "message"),
    [
        (refund("NaN"), "amount", "not a finite amount"),
        (refund("-5.00"), "amount", "negative"),
        (refund("10.001"), "amount", "more decimal places"),
        (refund(currency="EUR"), "currency", "does not match the pack's currency"),
        ({"actor": {"id": "bot-1", "role": "ai_agent"}}, "action", "needs an action or a tool"),
        ({**refund(), "surprise": 1}, "surprise", "Extra inputs are not permitted"),
        ({"tool": {"name": "issue_refund"}}, "actor", "Field required"),
    ],
)
def test_bad_input_is_a_clear_422_and_nothing_is_recorded(served, proposal, field, message):
    answer = served.post("/v1/decisions", "bot", proposal)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["error"] == "invalid_input"
    assert problem["field"] == field
    assert message in problem["message"]
    assert count(served.store, ledger, ledger.c.kind != "token.issued") == 0


def test_a_tool_argument_of_another_type_than_the_pack_declares_is_422(serve, tmp_path):
    policy = shop_pack_with(
        tmp_path,
        "    reads: [customer.fraud_flag,",
        "    args:\n      channel: string\n    reads: [customer.fraud_flag,",
    )
    served = serve(policy)
    proposal = refund()
    proposal["tool"]["arguments"]["channel"] = ["chat", "email"]
    answer = served.post("/v1/decisions", "bot", proposal)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["field"] == "tool.arguments.channel"
    assert problem["message"] == (
        "tool 'issue_refund' argument 'channel': a list where a string belongs"
    )
    proposal["tool"]["arguments"]["channel"] = "chat"
    assert served.post("/v1/decisions", "bot", proposal).status_code == 200
    assert count(served.store, ledger, ledger.c.kind != "token.issued") == 1


def test_a_body_that_is_not_json_is_422(served):
    answer = served.client.post(
        "/v1/decisions",
        content=b"{not json",
        headers={**served.auth("bot"), "Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_input"


def test_a_routed_agent_polls_its_approval_and_nobody_elses(served):
    routed = served.post("/v1/decisions", "bot", refund("80.00")).json()
    assert routed["outcome"] == "route"
    mine = served.get(f"/v1/approvals/{routed['id']}", "bot")
    assert mine.status_code == 200
    assert mine.json()["status"] == "pending"
    assert mine.json()["required_role"] == "tier1"
    assert served.get(f"/v1/approvals/{routed['id']}", "bot2").status_code == 404
    assert served.get(f"/v1/decisions/{routed['id']}", "bot").json()["id"] == routed["id"]
    assert served.get(f"/v1/decisions/{routed['id']}", "bot2").status_code == 404
    assert served.get(f"/v1/decisions/{routed['id']}", "tina").status_code == 200
    assert served.get("/v1/approvals/nope", "tina").json()["error"] == "not_found"


def test_decision_json_round_trips_the_recorded_body(served):
    decision = served.post("/v1/decisions", "bot", refund("80.00")).json()
    with served.store.engine.connect() as connection:
        body = (
            connection.execute(ledger.select().where(ledger.c.subject_id == decision["id"]))
            .one()
            .body
        )
    recorded = json.loads(body)["decision"]
    assert recorded == {k: v for k, v in decision.items() if k != "lineage_hash"}
