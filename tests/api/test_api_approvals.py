"""Every server-side rule of issue 6 point 2, over HTTP."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest

from approvals.helpers import LOST, count, records
from conftest import refund, shop_pack_with
from discretion import Actor, ApprovalError
from discretion.approvals import ApprovalStatus
from discretion.precedent import PrecedentSpec
from discretion.store._schema import executions


def route(served, amount: str = "80.00", **kwargs: Any) -> str:
    decision = served.post("/v1/decisions", "bot", refund(amount, **kwargs)).json()
    assert decision["outcome"] == "route", decision
    return decision["id"]


def act(served, approval_id: str, verb: str, who: str, **body: Any) -> Any:
    return served.post(f"/v1/approvals/{approval_id}/{verb}", who, {"note": "ok", **body})


def test_approving_over_http_records_the_approver_and_queues_the_call(served, clock):
    approval_id = route(served)
    clock.advance(minutes=10)
    answer = act(served, approval_id, "approve", "tina", note="customer is right")
    assert answer.status_code == 200
    approved = answer.json()
    assert approved["status"] == "approved"
    assert (approved["decided_by"], approved["decided_role"]) == ("tina", "tier1")
    body = json.loads(records(served.store, "approval.approved", approval_id)[0].body)
    assert body["by"] == {"id": "tina", "role": "tier1"}
    assert body["note"] == "customer is right"
    assert body["at"] == clock.now.isoformat()
    [queued] = served.guard.executions.pending()
    assert (queued.key, queued.tool, queued.arguments["amount"]) == (
        "bot-1:k-1",
        "issue_refund",
        "80.00",
    )


def test_authority_approver_whose_role_does_not_cover_gets_403_and_may_escalate(served):
    served.facts.facts.update(LOST)
    approval_id = route(served, "125.00", reason="carrier-lost")
    refused = act(served, approval_id, "approve", "tina")
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert "escalate it instead" in refused.json()["message"]
    assert act(served, approval_id, "reject", "tina").status_code == 403
    escalated = act(served, approval_id, "escalate", "tina", note="above my limit")
    assert escalated.status_code == 200
    assert escalated.json()["required_role"] == "manager"
    assert act(served, approval_id, "approve", "tom").status_code == 403
    assert act(served, approval_id, "approve", "maria").json()["status"] == "approved"


def test_authority_amount_above_the_approvers_limit_after_a_pack_change_is_403(
    served, make_guard, tmp_path
):
    approval_id = route(served)
    served.redeploy(
        make_guard(
            context=served.facts,
            policy=shop_pack_with(
                tmp_path,
                'refund: {standard: "200.00", exception: "100.00"}',
                'refund: {standard: "70.00", exception: "100.00"}',
            ),
        )
    )
    refused = act(served, approval_id, "approve", "tina")
    assert refused.status_code == 403
    assert "does not cover" in refused.json()["message"]
    assert act(served, approval_id, "approve", "tina", amount="70.00").status_code == 200


def test_separation_of_duties_nobody_approves_their_own_proposal(served):
    served.facts.facts.update(LOST)
    proposal = refund("125.00", role="tier1", actor="ann", reason="carrier-lost")
    routed = served.post("/v1/decisions", "ann1", proposal).json()
    assert routed["required_role"] == "tier2"
    refused = act(served, routed["id"], "approve", "ann2")
    assert refused.status_code == 403
    assert "proposed this case and cannot decide it" in refused.json()["message"]
    assert served.get(f"/v1/approvals/{routed['id']}", "tom").json()["status"] == "pending"


def test_ai_agents_never_approve_or_read_the_queue(served):
    approval_id = route(served)
    for verb in ("approve", "reject", "escalate"):
        answer = act(served, approval_id, verb, "bot2")
        assert answer.status_code == 403
        assert "only people decide routed cases" in answer.json()["message"]
    assert served.get("/v1/approvals", "bot").status_code == 403
    assert served.get("/v1/approvals", "tina").json()["approvals"][0]["id"] == approval_id


def test_double_click_race_one_approver_wins_the_other_gets_409(served):
    served.facts.facts.update(LOST)
    approval_id = route(served, "125.00", reason="carrier-lost")
    barrier = threading.Barrier(2)
    answers: dict[str, Any] = {}

    def click(who: str) -> None:
        barrier.wait()
        answers[who] = act(served, approval_id, "approve", who, note=f"{who} clicked")

    threads = [threading.Thread(target=click, args=(who,)) for who in ("tom", "tess")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(a.status_code for a in answers.values())
    assert statuses == [200, 409]
    [winner] = [who for who, a in answers.items() if a.status_code == 200]
    [loser] = [a for a in answers.values() if a.status_code == 409]
    assert loser.json()["error"] == "conflict"
    assert loser.json()["approval_id"] == approval_id
    assert f"already approved by {winner}" in loser.json()["message"]
    assert len(records(served.store, "approval.approved", approval_id)) == 1
    assert count(served.store, executions) == 1
    # The same approver clicking twice gets the same answer.
    assert act(served, approval_id, "approve", winner).status_code == 409


def test_stale_approval_under_the_current_pack_is_409_and_does_not_run(
    served, make_guard, tmp_path
):
    approval_id = route(served)
    served.redeploy(
        make_guard(
            context=served.facts,
            policy=shop_pack_with(
                tmp_path,
                "when: customer.fraud_flag\n",
                "when: customer.fraud_flag || amount > 7000\n",
            ),
        )
    )
    stale = act(served, approval_id, "approve", "tina")
    assert stale.status_code == 409
    assert stale.json()["error"] == "stale"
    assert "the current pack denies" in stale.json()["message"]
    assert served.guard.executions.pending() == []
    assert served.get(f"/v1/approvals/{approval_id}", "tina").json()["status"] == "pending"
    assert act(served, approval_id, "reject", "tina", note="policy changed").status_code == 200


def test_stale_approval_on_changed_facts_is_409(served):
    approval_id = route(served)
    served.facts.facts["customer.fraud_flag"] = True
    stale = act(served, approval_id, "approve", "tina")
    assert (stale.status_code, stale.json()["error"]) == (409, "stale")
    assert "fraud-flag" in stale.json()["message"]


def test_stale_approval_relying_on_a_revoked_precedent_is_409(serve, precedent_pack, clock):
    served = serve(precedent_pack)
    served.facts.facts.update(LOST)
    granted = served.post(
        "/v1/decisions",
        "maria",
        refund("100.00", role="manager", actor="maria", reason="carrier-lost", key="grant"),
    ).json()
    assert granted["outcome"] == "allow_exception"
    precedent = served.guard.precedents.set(
        granted["id"],
        PrecedentSpec(
            scope={"shipment.status": "lost"},
            max_amount={"amount": "60.00", "currency": "USD"},
            expires_at=clock.now + timedelta(days=30),
            citations=5,
            note="lost parcels this week",
        ),
        grantor=Actor(id="maria", role="manager", is_ai=False),
    )
    cited = refund("125.00", reason="carrier-lost", key="cites", customer="c-2")
    cited["rationale"]["precedents"] = [precedent.id]
    routed = served.post("/v1/decisions", "bot", cited).json()
    assert routed["outcome"] == "route"
    listed = served.get("/v1/precedents?active_only=true", "tom").json()["precedents"]
    assert [p["id"] for p in listed] == [precedent.id]
    assert served.get(f"/v1/precedents/{precedent.id}", "tom").json()["note"]
    assert (
        served.post(f"/v1/precedents/{precedent.id}/revoke", "bot", {"reason": "x"}).status_code
        == 403
    )
    revoked = served.post(
        f"/v1/precedents/{precedent.id}/revoke", "maria", {"reason": "carrier settled"}
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_reason"] == "carrier settled"
    stale = act(served, routed["id"], "approve", "tom")
    assert (stale.status_code, stale.json()["error"]) == (409, "stale")
    assert "was revoked" in stale.json()["message"]
    assert served.get("/v1/precedents/nope", "tom").status_code == 404


def test_stale_approval_when_a_budget_is_spent_is_409(served, make_guard, tmp_path):
    served.redeploy(
        make_guard(
            context=served.facts,
            policy=shop_pack_with(tmp_path, 'limit: "100000.00"', 'limit: "100.00"'),
        )
    )
    approval_id = route(served)
    for n, amount in enumerate(("40.00", "45.00")):
        assert (
            served.post("/v1/decisions", "bot", refund(amount, key=f"s{n}")).json()["outcome"]
            == "allow"
        )
    stale = act(served, approval_id, "approve", "tina")
    assert (stale.status_code, stale.json()["error"]) == (409, "stale")
    assert "org-daily-deny" in stale.json()["message"]


def test_a_lower_amount_is_accepted_a_higher_one_and_an_empty_note_are_422(served):
    approval_id = route(served)
    higher = act(served, approval_id, "approve", "tina", amount="80.01")
    assert (higher.status_code, higher.json()["field"]) == (422, "amount")
    empty = act(served, approval_id, "approve", "tina", note="  ")
    assert (empty.status_code, empty.json()["field"]) == (422, "note")
    bad = act(served, approval_id, "approve", "tina", amount="sixty")
    assert bad.status_code == 422
    lower = act(served, approval_id, "approve", "tina", amount={"amount": "60", "currency": "USD"})
    assert lower.status_code == 200
    assert lower.json()["amount"] == {"amount": "60.00", "currency": "USD"}
    assert lower.json()["requested_amount"] == {"amount": "80.00", "currency": "USD"}
    assert served.guard.executions.pending()[0].arguments["amount"] == "60.00"


def test_reject_cancel_and_history(served):
    first = route(served, key="a")
    second = route(served, "85.00", key="b")
    assert act(served, first, "reject", "tom", note="not ours").json()["status"] == "rejected"
    assert act(served, second, "cancel", "bot", note="customer withdrew").json()["status"] == (
        "cancelled"
    )
    assert act(served, first, "approve", "tina").status_code == 409
    history = served.get(f"/v1/approvals/{first}/history", "tina").json()
    assert [h["kind"] for h in history] == ["decision", "approval.rejected"]
    assert history[1]["body"]["by"] == {"id": "tom", "role": "tier2"}
    listed = served.get("/v1/approvals?status=rejected", "tina").json()["approvals"]
    assert [a["id"] for a in listed] == [first]


def test_overdue_approvals_expire_through_the_api(served, clock):
    approval_id = route(served)
    clock.advance(hours=25)
    expired = served.post("/v1/approvals/expire", "tina", {}).json()["approvals"]
    assert [a["id"] for a in expired] == [approval_id]
    late = act(served, approval_id, "approve", "tina")
    assert (late.status_code, late.json()["error"]) == (409, "conflict")


def test_an_approved_call_runs_once_after_the_answer_when_its_tool_is_registered(served):
    calls: list[tuple[dict[str, Any], str]] = []
    served.guard.approvals.register("issue_refund", lambda args, key: calls.append((args, key)))
    approval_id = route(served)
    assert act(served, approval_id, "approve", "tina", amount="50.00").status_code == 200
    assert [(args["amount"], key) for args, key in calls] == [("50.00", "bot-1:k-1")]
    execution = served.guard.executions.get("bot-1:k-1")
    assert execution is not None
    assert execution.status.value == "succeeded"


def test_ledger_verify_answers_ok_and_409_on_tampering(served):
    route(served)
    # The decision's record, and each token's.
    records = 1 + len(served.tokens)
    assert served.get("/v1/ledger/verify", "tina").json() == {"ok": True, "records": records}
    assert served.get("/v1/ledger/verify", "bot").status_code == 403
    with served.store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE ledger SET body = replace(body, '80.00', '8.00')")
    broken = served.get("/v1/ledger/verify", "tina")
    assert broken.status_code == 409
    assert broken.json()["error"] == "ledger_integrity"
    assert "record 1" in broken.json()["message"]


def test_approving_over_http_sets_precedent_within_the_packs_limits(serve, precedent_pack):
    served = serve(precedent_pack)
    served.facts.facts.update(LOST)
    decision = served.post("/v1/decisions", "bot", refund("125.00", reason="carrier-lost")).json()
    approval_id = decision["id"]
    precedent = {
        "scope": {"shipment.status": "lost"},
        "max_amount": {"amount": "130.00", "currency": "USD"},
        "expires_at": (served.guard.now() + timedelta(days=120)).isoformat(),
        "citations": 5,
        "note": "the carrier lost a whole trailer",
    }
    # Past the pack's max_expiry (90 days): refused, and the case still waits.
    refused = served.post(
        f"/v1/approvals/{approval_id}/approve", "tom", {"note": "ok", "precedent": precedent}
    )
    assert refused.status_code == 422, refused.text
    assert "past the longest expiry reason 'carrier-lost' allows" in refused.json()["message"]
    assert served.guard.approvals.get(approval_id).status is ApprovalStatus.PENDING
    assert served.guard.precedents.list() == []

    precedent["expires_at"] = (served.guard.now() + timedelta(days=30)).isoformat()
    approved = served.post(
        f"/v1/approvals/{approval_id}/approve", "tom", {"note": "ok", "precedent": precedent}
    )
    assert approved.status_code == 200, approved.text
    [made] = served.guard.precedents.list()
    assert made.source_decision_id == approval_id
    assert made.scope == {"shipment.status": "lost"}
    assert made.learnable is True
    [record] = records(served.store, "precedent.set", made.id)
    body = json.loads(record.body)
    assert body["note"] == "the carrier lost a whole trailer"
    assert (body["grantor_id"], body["grantor_role"]) == ("tom", "tier2")


def test_two_approvals_over_http_first_waits_then_the_second_grants(serve, tmp_path):
    pack = shop_pack_with(
        tmp_path, "actions:\n  refund:\n", 'actions:\n  refund:\n    two_approvals_above: "60.00"\n'
    )
    served = serve(pack)
    approval_id = route(served, "80.00")
    first = act(served, approval_id, "approve", "tina", note="receipt checked")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "pending"
    assert body["endorsement"]["by"] == "tina"
    assert body["endorsement"]["amount"] == {"amount": "80.00", "currency": "USD"}
    again = act(served, approval_id, "approve", "tina", note="me again")
    assert again.status_code == 403, again.text
    assert "a second person must approve it" in again.text
    second = act(served, approval_id, "approve", "tom", note="agreed")
    assert second.status_code == 200, second.text
    assert (second.json()["status"], second.json()["decided_by"]) == ("approved", "tom")


def test_another_agents_case_does_not_exist_for_cancel(served, clock):
    # Decided, pending or overdue, another agent's case answers as GET does: 404, nothing
    # about who decided it, and an overdue one is not expired by the stranger's call.
    decided = route(served, key="a")
    assert act(served, decided, "approve", "tina").status_code == 200
    pending = route(served, "85.00", key="b")
    for approval_id in (decided, pending):
        answer = act(served, approval_id, "cancel", "bot2")
        assert (answer.status_code, answer.json()["error"]) == (404, "not_found")
        assert "tina" not in answer.text
    clock.advance(hours=25)
    overdue = act(served, pending, "cancel", "bot2")
    assert overdue.status_code == 404
    assert served.get(f"/v1/approvals/{pending}", "tina").json()["status"] == "pending"
    assert [r.kind for r in records(served.store, "approval.expired", pending)] == []


def test_a_person_who_may_not_decide_a_case_cannot_cancel_or_expire_it(served, clock):
    pending = route(served)
    assert act(served, pending, "escalate", "tina").json()["required_role"] == "tier2"
    clock.advance(days=3)
    tina = Actor(id="tina", role="tier1", is_ai=False)
    with pytest.raises(ApprovalError, match="only its proposer or a person who may decide it"):
        served.guard.approvals.cancel(pending, by=tina, note="mine")
    assert records(served.store, "approval.expired", pending) == []
