"""Agents over HTTP: an approved call is claimed, run and reported exactly once (issue 18)."""

from __future__ import annotations

import json

from approvals.helpers import count, records
from conftest import refund
from discretion.store._schema import executions


def route_and_approve(served, amount: str = "80.00", key: str = "k-1") -> str:
    decision = served.post("/v1/decisions", "bot", refund(amount, key=key)).json()
    assert decision["outcome"] == "route", decision
    approved = served.post(f"/v1/approvals/{decision['id']}/approve", "tina", {"note": "ok"})
    assert approved.json()["status"] == "approved", approved.json()
    return decision["id"]


def test_an_allowed_call_is_the_agents_to_run_and_is_never_queued(served):
    decision = served.post("/v1/decisions", "bot", refund("40.00")).json()
    assert decision["outcome"] == "allow"
    assert served.get("/v1/executions", "bot").json() == {"executions": []}
    assert served.post("/v1/executions/bot-1:k-1/claim", "bot", None).status_code == 404
    assert count(served.store, executions) == 0


def test_an_approved_call_is_listed_claimed_once_run_and_reported_once(served):
    decision_id = route_and_approve(served)
    listed = served.get("/v1/executions", "bot").json()["executions"]
    assert [(e["key"], e["tool"], e["status"]) for e in listed] == [
        ("bot-1:k-1", "issue_refund", "pending")
    ]
    assert listed[0]["arguments"]["amount"] == "80.00"
    assert listed[0]["decision_id"] == decision_id

    claimed = served.post("/v1/executions/bot-1:k-1/claim", "bot", None)
    assert claimed.status_code == 200
    assert (claimed.json()["status"], claimed.json()["attempts"]) == ("running", 1)
    again = served.post("/v1/executions/bot-1:k-1/claim", "bot", None)
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"
    assert again.json()["execution"]["status"] == "running"
    assert "not run again" in again.json()["message"]
    assert served.get("/v1/executions", "bot").json() == {"executions": []}

    reported = served.post("/v1/executions/bot-1:k-1/result", "bot", {"result": {"id": "re_1"}})
    assert reported.status_code == 200
    assert (reported.json()["status"], reported.json()["result"]) == ("succeeded", {"id": "re_1"})
    twice = served.post("/v1/executions/bot-1:k-1/result", "bot", {"result": {"id": "re_2"}})
    assert twice.status_code == 409
    assert twice.json()["execution"]["result"] == {"id": "re_1"}
    after = served.post("/v1/executions/bot-1:k-1/claim", "bot", None)
    assert after.status_code == 409
    assert "already succeeded" in after.json()["message"]
    assert served.get("/v1/executions/bot-1:k-1", "bot").json()["status"] == "succeeded"

    [started] = records(served.store, "execution.started", decision_id)
    [succeeded] = records(served.store, "execution.succeeded", decision_id)
    assert json.loads(started.body)["attempt"] == 1
    assert json.loads(succeeded.body)["result"] == {"id": "re_1"}
    assert served.get("/v1/ledger/verify", "tina").json()["ok"] is True


def test_a_reported_error_fails_the_call_and_it_may_be_claimed_again(served):
    decision_id = route_and_approve(served)
    assert served.post("/v1/executions/bot-1:k-1/result", "bot", {"error": "x"}).status_code == 409
    served.post("/v1/executions/bot-1:k-1/claim", "bot", None)
    failed = served.post("/v1/executions/bot-1:k-1/result", "bot", {"error": "card declined"})
    assert (failed.json()["status"], failed.json()["error"]) == ("failed", "card declined")
    retried = served.post("/v1/executions/bot-1:k-1/claim", "bot", None)
    assert (retried.json()["status"], retried.json()["attempts"]) == ("running", 2)
    assert len(records(served.store, "execution.failed", decision_id)) == 1
    assert len(records(served.store, "execution.started", decision_id)) == 2


def test_a_report_gives_exactly_one_of_result_or_error(served):
    route_and_approve(served)
    served.post("/v1/executions/bot-1:k-1/claim", "bot", None)
    for body in ({}, {"result": 1, "error": "x"}, {"error": ""}):
        answer = served.post("/v1/executions/bot-1:k-1/result", "bot", body)
        assert answer.status_code == 422, body
        assert answer.json()["error"] == "invalid_input"
    for text in ('{"result": NaN}', '{"result": {"a": [1e999]}}', '{"result": -Infinity}'):
        # JSON has none of these: kept, the ledger would hold a string nobody sent.
        answer = served.client.post(
            "/v1/executions/bot-1:k-1/result",
            content=text,
            headers={**served.auth("bot"), "Content-Type": "application/json"},
        )
        assert answer.status_code == 422, text
        assert "NaN or an infinity" in answer.json()["message"]
    for text in ('{"result": "\\ud800"}', '{"result": {"\\udfff": 1}}', '{"result": ["a\\ud83d"]}'):
        # A lone surrogate is valid JSON and no text: no digest or database can hold it.
        answer = served.client.post(
            "/v1/executions/bot-1:k-1/result",
            content=text,
            headers={**served.auth("bot"), "Content-Type": "application/json"},
        )
        assert answer.status_code == 422, text
        assert "lone UTF-16 surrogate" in answer.json()["message"]
    done = served.post("/v1/executions/bot-1:k-1/result", "bot", {"result": None})
    assert (done.json()["status"], done.json()["result"]) == ("succeeded", None)


def test_an_agent_sees_and_claims_only_its_own_calls(served):
    route_and_approve(served)
    assert served.get("/v1/executions", "bot2").json() == {"executions": []}
    for who in ("bot2", "tina"):
        assert served.get("/v1/executions/bot-1:k-1", who).status_code == 404
        stolen = served.post("/v1/executions/bot-1:k-1/claim", who, None)
        assert stolen.status_code == 404
        assert stolen.json()["error"] == "not_found"
    assert served.get("/v1/executions/bot-1:k-1", "bot").json()["status"] == "pending"
    assert served.client.get("/v1/executions").status_code == 401


def test_a_denied_call_never_appears_in_executions(served):
    served.facts.facts.update({"customer.fraud_flag": True})
    denied = served.post("/v1/decisions", "bot", refund("40.00", key="k-d")).json()
    assert denied["outcome"] == "deny"
    assert served.get("/v1/executions", "bot").json() == {"executions": []}
    assert served.post("/v1/executions/bot-1:k-d/claim", "bot", None).status_code == 404
    assert count(served.store, executions) == 0


def test_openapi_describes_the_executions_api(served):
    spec = served.client.get("/openapi.json").json()
    claim = spec["paths"]["/v1/executions/{key}/claim"]["post"]
    assert claim["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ExecutionView"
    )
    assert "409" in claim["responses"]
    report = spec["paths"]["/v1/executions/{key}/result"]["post"]
    assert report["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ReportIn"
    )
    assert "/v1/executions" in spec["paths"]
    assert "execution" in spec["components"]["schemas"]["Problem"]["properties"]


def test_a_call_running_in_process_cannot_be_reported_over_http(served):
    # A governed function runs an allowed call in its own process, which records how it ends.
    # While it runs, its proposer's token reports it failed: were that taken, the call would
    # be free to run again while the first payment may still be going out.
    guard = served.guard
    key = "bot-1:issue_refund:pay-1"
    paid: list[str] = []
    answers: list[tuple[int, str]] = []

    @guard.governed(actor={"id": "bot-1", "role": "ai_agent", "is_ai": True})
    def issue_refund(
        amount: str, currency: str, customer_id: str, case_id: str, order_id: str
    ) -> str:
        paid.append(amount)
        reported = served.post(f"/v1/executions/{key}/result", "bot", {"error": "timeout"})
        answers.append((reported.status_code, reported.json()["message"]))
        return f"refunded {amount}"

    result = issue_refund.keyed("pay-1").call("40.00", "USD", "c-1", "case-1", "o-1")
    assert result.decision.execution_key == key
    assert paid == ["40.00"]
    [(status, message)] = answers
    assert status == 409
    assert "running in the process that claimed it" in message
    execution = guard.executions.get(key)
    assert (execution.status.value, execution.attempts) == ("succeeded", 1)
    assert records(served.store, "execution.failed", result.decision.id) == []
    [started] = records(served.store, "execution.started", result.decision.id)
    assert json.loads(started.body)["by"] == "run"
