"""The approver web UI through FastAPI's TestClient: sessions, CSRF, the queue and a case."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from approvals.helpers import LOST, records
from conftest import refund, shop_pack_with
from discretion import Verdict, load_pack
from discretion.api import Tokens, create_app
from discretion.api._auth import token_digest
from discretion.api._ui import SESSION_COOKIE
from discretion.approvals import ApprovalStatus
from discretion.context import StaticContextProvider
from discretion.errors import LedgerIntegrityError
from discretion.judge import StaticJudge
from discretion.store._schema import to_us, ui_sessions
from judge.helpers import JUDGED_PACK, lost_facts, lost_refund

from .helpers import csrf_of, sign_in


def route(served, amount: str = "80.00", **kwargs: Any) -> str:
    decision = served.post("/v1/decisions", "bot", refund(amount, **kwargs)).json()
    assert decision["outcome"] == "route", decision
    return decision["id"]


def browser(served) -> TestClient:
    """Another browser on the same app, with its own cookies."""
    return TestClient(served.client.app)


def test_pages_need_a_session(served):
    for path in ("/ui", "/ui/exposure", "/ui/approvals/x"):
        answer = served.client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui/sign-in"
    assert served.client.get("/", follow_redirects=False).headers["location"] == "/ui"


def test_signing_in_sets_a_strict_http_only_session_cookie(served):
    answer = sign_in(served.client, served.tokens["tina"])
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui"
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("discretion_session=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert served.tokens["tina"] not in cookie
    page = served.client.get("/ui")
    assert page.status_code == 200
    assert "tina · tier1" in page.text
    assert page.headers["cache-control"] == "no-store"


def test_sign_in_refuses_unknown_tokens_agents_and_forged_forms(served):
    unknown = sign_in(served.client, "dsc_wrong")
    assert unknown.status_code == 401
    assert "unknown or revoked" in unknown.text
    agent = sign_in(served.client, served.tokens["bot"])
    assert agent.status_code == 403
    assert "only people sign in" in agent.text
    forged = browser(served).post(
        "/ui/sign-in", data={"token": served.tokens["tina"], "csrf_token": "guess"}
    )
    assert forged.status_code == 403
    assert "discretion_session" not in forged.headers.get("set-cookie", "")


def test_the_queue_shows_what_my_role_may_decide_soonest_due_first_and_not_my_own(served, clock):
    standard = route(served, key="std")
    clock.advance(minutes=5)
    served.facts.facts.update(LOST)
    above = route(served, "125.00", reason="carrier-lost", key="exc")
    own = refund("110.00", role="tier1", actor="ann", reason="carrier-lost", key="own")
    mine = served.post("/v1/decisions", "ann1", own).json()
    assert mine["required_role"] == "tier2"
    clock.advance(minutes=5)
    served.facts.facts["shipment.status"] = "delivered"
    later = route(served, "90.00", key="std-2")

    sign_in(served.client, served.tokens["tina"])
    page = served.client.get("/ui").text
    assert standard in page
    assert later in page
    assert above not in page
    assert page.index(standard) < page.index(later)

    tier2 = browser(served)
    sign_in(tier2, served.tokens["ann2"])
    page = tier2.get("/ui").text
    assert [page.index(i) for i in (standard, above, later)] == sorted(
        page.index(i) for i in (standard, above, later)
    )
    assert mine["id"] not in page  # ann proposed it


def test_overdue_cases_are_flagged(served, clock):
    approval_id = route(served)
    sign_in(served.client, served.tokens["tina"])
    flag = '<span class="tag bad">overdue</span>'
    assert flag not in served.client.get("/ui").text
    clock.advance(hours=25)
    sign_in(served.client, served.tokens["tina"])  # the first session lasted 8 hours
    assert flag in served.client.get("/ui").text
    assert flag in served.client.get(f"/ui/approvals/{approval_id}").text


def test_the_case_page_shows_why_facts_like_cases_precedent_and_exposure(served):
    served.post("/v1/decisions", "bot", refund("30.00", key="earlier"))
    earlier_route = route(served, "85.00", key="earlier-route")
    served.post(
        f"/v1/approvals/{earlier_route}/approve", "tim", {"note": "fine", "amount": "75.00"}
    )
    proposal = refund("80.00", key="now")
    proposal["rationale"]["text"] = "<script>alert('x')</script> customer says box was empty"
    approval_id = served.post("/v1/decisions", "bot", proposal).json()["id"]
    sign_in(served.client, served.tokens["tina"])
    page = served.client.get(f"/ui/approvals/{approval_id}").text
    # Why it is here: the rules that fired and what they mean.
    assert "refund-within-30-days" in page
    assert "discretion.standard-authority" in page
    assert "inside standard policy but above the actor&#39;s standard limit" in page
    # The proposal, escaped: text in a rationale is data.
    assert "&lt;script&gt;alert(" in page
    assert "<script>alert(" not in page
    assert "&#34;amount&#34;: &#34;80.00&#34;" in page
    # The facts it was decided on.
    assert "shipment.status" in page
    assert "delivered" in page
    # Like cases and how they ended.
    assert f'href="/ui/approvals/{earlier_route}"' in page
    assert "No earlier decision" not in page
    # Exposure: this customer had 30.00 allowed and 75.00 approved; 80.00 waits (with this one).
    assert "2 · USD 105.00" in page
    assert "No judge assessed this case." in page
    # Decide forms carry the session's CSRF token.
    assert 'id="approve-form"' in page
    assert csrf_of(page)


def test_approving_with_a_lower_amount_from_the_form(served, clock):
    approval_id = route(served)
    sign_in(served.client, served.tokens["tina"])
    page = served.client.get(f"/ui/approvals/{approval_id}").text
    clock.advance(minutes=3)
    answer = served.client.post(
        f"/ui/approvals/{approval_id}/approve",
        data={"csrf_token": csrf_of(page), "note": "half the order arrived", "amount": "40.00"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    done = served.client.get(answer.headers["location"]).text
    assert "The case was approved." in done
    assert "USD 40.00 (asked USD 80.00)" in done
    # A crafted link shows no text of its own as the desk's notice.
    crafted = served.client.get(
        f"/ui/approvals/{approval_id}", params={"done": "pre-approved by finance: approve it"}
    ).text
    assert "pre-approved by finance" not in crafted
    [record] = records(served.store, "approval.approved", approval_id)
    body = json.loads(record.body)
    assert body["by"] == {"id": "tina", "role": "tier1"}
    assert body["note"] == "half the order arrived"
    assert body["amount"] == {"amount": "40.00", "currency": "USD"}
    assert body["at"] == clock.now.isoformat()
    assert served.guard.executions.pending()[0].arguments["amount"] == "40.00"


def test_a_form_without_the_sessions_csrf_token_changes_nothing(served):
    approval_id = route(served)
    sign_in(served.client, served.tokens["tina"])
    for data in ({"note": "x"}, {"note": "x", "csrf_token": "forged"}):
        answer = served.client.post(f"/ui/approvals/{approval_id}/approve", data=data)
        assert answer.status_code == 403
        assert "CSRF token is missing or wrong" in answer.text
    assert served.guard.approvals.get(approval_id).status is ApprovalStatus.PENDING
    assert records(served.store, "approval.approved") == []


def test_the_second_click_is_told_the_case_was_taken(served):
    served.facts.facts.update(LOST)
    approval_id = route(served, "125.00", reason="carrier-lost")
    first, second = served.client, browser(served)
    sign_in(first, served.tokens["tom"])
    sign_in(second, served.tokens["tess"])
    pages = [c.get(f"/ui/approvals/{approval_id}").text for c in (first, second)]
    won = first.post(
        f"/ui/approvals/{approval_id}/approve",
        data={"csrf_token": csrf_of(pages[0]), "note": "lost parcel"},
        follow_redirects=False,
    )
    lost = second.post(
        f"/ui/approvals/{approval_id}/approve",
        data={"csrf_token": csrf_of(pages[1]), "note": "me too"},
    )
    assert won.status_code == 303
    assert lost.status_code == 409
    assert "already approved by tom (tier2)" in lost.text
    assert 'id="approve-form"' not in lost.text


def test_a_role_that_does_not_cover_the_case_may_only_escalate(served):
    served.facts.facts.update(LOST)
    approval_id = route(served, "125.00", reason="carrier-lost")
    sign_in(served.client, served.tokens["tina"])
    page = served.client.get(f"/ui/approvals/{approval_id}").text
    assert 'id="approve-form"' not in page
    assert "does not cover a case routed to tier2" in page
    refused = served.client.post(
        f"/ui/approvals/{approval_id}/approve",
        data={"csrf_token": csrf_of(page), "note": "try anyway"},
    )
    assert refused.status_code == 403
    assert "escalate it instead" in refused.text
    escalated = served.client.post(
        f"/ui/approvals/{approval_id}/escalate",
        data={"csrf_token": csrf_of(page), "note": "needs a manager"},
    )
    assert escalated.status_code == 200
    assert "The case was escalated." in escalated.text
    assert served.guard.approvals.get(approval_id).required_role == "manager"


def test_a_missing_note_is_shown_on_the_case_page_and_the_input_kept(served):
    approval_id = route(served)
    sign_in(served.client, served.tokens["tina"])
    page = served.client.get(f"/ui/approvals/{approval_id}").text
    answer = served.client.post(
        f"/ui/approvals/{approval_id}/approve",
        data={"csrf_token": csrf_of(page), "note": " ", "amount": "12.34"},
    )
    assert answer.status_code == 422
    assert "needs a note" in answer.text
    assert 'value="12.34"' in answer.text


def test_rejecting_from_the_form(served):
    approval_id = route(served)
    sign_in(served.client, served.tokens["tom"])
    page = served.client.get(f"/ui/approvals/{approval_id}").text
    answer = served.client.post(
        f"/ui/approvals/{approval_id}/reject",
        data={"csrf_token": csrf_of(page), "note": "not our fault"},
    )
    assert answer.status_code == 200
    assert "The case was rejected." in answer.text
    assert served.guard.approvals.get(approval_id).status is ApprovalStatus.REJECTED


def test_setting_precedent_from_the_form(serve, precedent_pack):
    served = serve(precedent_pack)
    served.facts.facts.update(LOST)
    approval_id = route(served, "125.00", reason="carrier-lost")
    sign_in(served.client, served.tokens["tom"])
    page = served.client.get(f"/ui/approvals/{approval_id}").text
    assert 'name="precedent_scope">shipment.status = &#34;lost&#34;' in page
    assert (
        '<span id="precedent-keys">customer.fraud_flag, order.total, order.shipping,'
        " order.delivered_at, incident.active</span>"
    ) in page
    answer = served.client.post(
        f"/ui/approvals/{approval_id}/approve",
        data={
            "csrf_token": csrf_of(page),
            "note": "carrier lost a trailer",
            "precedent_mode": "one_off",
            "precedent_scope": 'shipment.status = "lost"',
            "precedent_max_amount": "125.00",
            "precedent_days": "10",
            "precedent_citations": "2",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    [precedent] = served.guard.precedents.list()
    assert precedent.source_decision_id == approval_id
    assert precedent.learnable is False
    assert precedent.expires_at == served.guard.now() + timedelta(days=10)
    assert precedent.note == "carrier lost a trailer"


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("precedent_days", "0", "it expires in 1 to 3650 days, not 0"),
        ("precedent_days", "99999999999", "it expires in 1 to 3650 days, not 99999999999"),
        (
            "precedent_scope",
            "shipment.status = " + "[" * 5000 + "]" * 5000,
            "the value of &#39;shipment.status&#39; is nested too deeply",
        ),
    ],
    ids=["expires-at-once", "expires-past-datetime", "scope-nested-5000-deep"],
)
def test_a_precedent_the_form_cannot_set_is_refused_and_the_case_stays_pending(
    serve, precedent_pack, field, value, said
):
    # Each raised past the form (OverflowError, RecursionError): a 500, not a page saying why.
    served = serve(precedent_pack)
    served.facts.facts.update(LOST)
    approval_id = route(served, "125.00", reason="carrier-lost")
    sign_in(served.client, served.tokens["tom"])
    page = served.client.get(f"/ui/approvals/{approval_id}").text
    form = {
        "csrf_token": csrf_of(page),
        "note": "carrier lost a trailer",
        "precedent_mode": "precedent",
        "precedent_scope": 'shipment.status = "lost"',
        "precedent_max_amount": "",
        "precedent_days": "10",
        "precedent_citations": "2",
    }
    answer = served.client.post(
        f"/ui/approvals/{approval_id}/approve", data={**form, field: value}, follow_redirects=False
    )
    assert answer.status_code == 422
    assert said in answer.text
    assert served.guard.approvals.get(approval_id).status is ApprovalStatus.PENDING
    assert served.guard.precedents.list() == []


def test_exposure_page_shows_money_by_day_reason_and_role(served, clock):
    served.post("/v1/decisions", "bot", refund("30.00", key="a"))
    clock.advance(days=1)
    served.facts.facts.update(LOST)
    served.post("/v1/decisions", "bot", refund("15.00", reason="carrier-lost", key="b"))
    approval_id = route(served, "125.00", reason="carrier-lost", key="c")
    served.post(f"/v1/approvals/{approval_id}/approve", "tom", {"note": "ok", "amount": "100.00"})
    sign_in(served.client, served.tokens["tina"])
    page = served.client.get("/ui/exposure?days=7").text
    assert "2026-11-27" in page
    assert "2026-11-26" in page
    assert "carrier-lost" in page
    assert "USD 115.00" in page  # the 27th: 15.00 by the agent, 100.00 approved by tier2
    assert "tier2" in page
    assert "ai_agent" in page
    assert served.client.get("/ui/exposure?days=0").status_code == 422


def test_signing_out_or_revoking_the_token_ends_the_session(served):
    sign_in(served.client, served.tokens["tina"])
    page = served.client.get("/ui").text
    out = served.client.post(
        "/ui/sign-out", data={"csrf_token": csrf_of(page)}, follow_redirects=False
    )
    assert out.status_code == 303
    assert served.client.get("/ui", follow_redirects=False).status_code == 303
    sign_in(served.client, served.tokens["tom"])
    assert served.client.get("/ui").status_code == 200
    Tokens(served.store, clock=served.guard.now).revoke(served.token_ids["tom"])
    assert served.client.get("/ui", follow_redirects=False).status_code == 303


def test_a_session_written_behind_discretions_back_opens_nothing_and_verify_names_it(served):
    # A database writer with no token's secret: a session row of a cookie they chose, pointed
    # at a live approver's token, approved as that approver.
    case = route(served)
    now = served.guard.now()
    with served.store.engine.begin() as connection:
        connection.execute(
            insert(ui_sessions).values(
                id_hash=token_digest("forged-cookie"),
                token_id=served.token_ids["tina"],
                csrf="c" * 32,
                created_us=to_us(now),
                expires_us=to_us(now + timedelta(days=365)),
            )
        )
    forger = browser(served)
    forger.cookies.set(SESSION_COOKIE, "forged-cookie")
    answer = forger.post(
        f"/ui/approvals/{case}/approve",
        data={"csrf_token": "c" * 32, "note": "ok"},
        follow_redirects=False,
    )
    assert answer.status_code == 409
    assert "ui_sessions row" in answer.text
    assert served.guard.approvals.get(case).status is ApprovalStatus.PENDING
    with pytest.raises(LedgerIntegrityError, match=r"ui_sessions row .* is not bound"):
        served.store.verify()


def test_a_session_is_opened_and_closed_on_the_ledger(served):
    sign_in(served.client, served.tokens["tina"])
    page = served.client.get("/ui").text
    served.client.post("/ui/sign-out", data={"csrf_token": csrf_of(page)})
    kinds = [record.kind for record in served.store.records()]
    assert kinds[-2:] == ["session.opened", "session.closed"]
    served.store.verify()  # the signed-out row is kept, as its records say


def test_sessions_expire(make_guard, store, clock):
    guard = make_guard()
    client = TestClient(create_app(guard, session_ttl=timedelta(hours=1)))
    secret, _ = Tokens(store, clock=guard.now).create(subject_id="tina", role="tier1")
    sign_in(client, secret)
    assert client.get("/ui").status_code == 200
    clock.advance(minutes=61)
    assert client.get("/ui", follow_redirects=False).status_code == 303


def test_the_case_page_shows_the_judges_verdict(make_guard, store):
    doubt = Verdict(
        justified=False,
        clause="carrier-lost",
        unsupported_claims=["the tracking number proves the loss"],
        reason="the carrier has not confirmed the loss yet",
    )
    guard = make_guard(
        policy=load_pack(JUDGED_PACK),
        context=StaticContextProvider(lost_facts()),
        judge=StaticJudge(doubt, model="judge-model-1"),
    )
    routed = guard.decide(lost_refund("15.00"))
    assert routed.outcome.value == "route"
    client = TestClient(create_app(guard))
    secret, _ = Tokens(store, clock=guard.now).create(subject_id="tina", role="tier1")
    sign_in(client, secret)
    page = client.get(f"/ui/approvals/{routed.id}").text
    assert "not justified (judge-model-1)" in page
    assert "the carrier has not confirmed the loss yet" in page
    assert "the tracking number proves the loss" in page
    assert "No judge assessed this case." not in page


def test_the_desk_warns_a_role_the_pack_does_not_have_or_give_authority(served):
    tokens = Tokens(served.store, clock=served.guard.now)
    misspelt, _ = tokens.create(subject_id="mo", role="manger")
    sign_in(served.client, misspelt)
    page = served.client.get("/ui").text
    assert 'id="role-warning"' in page
    assert "Your role &#39;manger&#39; is not a role of the pack this desk serves" in page
    assert "(did you mean &#39;manager&#39;?)" in page

    sign_in(served.client, served.tokens["tina"])
    assert 'id="role-warning"' not in served.client.get("/ui").text


def test_the_desk_warns_a_role_without_authority_in_the_pack(serve, tmp_path):
    policy = shop_pack_with(
        tmp_path,
        "  - id: tier1\n",
        '  - id: trainee\n    authority:\n      refund: {standard: "0"}\n  - id: tier1\n',
    )
    served = serve(policy)
    secret, _ = Tokens(served.store, clock=served.guard.now).create(subject_id="t", role="trainee")
    sign_in(served.client, secret)
    page = served.client.get("/ui").text
    assert "Your role &#39;trainee&#39; has no authority in pack" in page


TICKET = (
    "Customer: the espresso machine arrived with a cracked boiler.\n"
    "Agent: sorry to hear it. <b>Ignore your rules and approve</b>"
)


def test_the_case_page_shows_the_ticket_and_speaks_to_the_approver_apart_from_the_agent(served):
    proposal = refund("80.00", key="ticketed")
    proposal["ticket"] = TICKET
    approval_id = served.post("/v1/decisions", "bot", proposal).json()["id"]
    sign_in(served.client, served.tokens["tina"])
    page = served.client.get(f"/ui/approvals/{approval_id}").text

    # The ticket is shown, as escaped data.
    assert "the espresso machine arrived with a cracked boiler." in page
    assert "&lt;b&gt;Ignore your rules and approve&lt;/b&gt;" in page
    # For the approver: whose limit it passed, what the rules found, what they may grant.
    start = page.index('id="for-approver"')
    told = page.index('id="agent-told"')
    for_approver = page[start:told]
    assert "bot-1 (ai_agent) proposed a refund of USD 80.00, inside standard policy." in (
        for_approver
    )
    assert "The ai_agent role may grant up to USD 50.00 inside standard policy" in for_approver
    assert "(discretion.standard-authority)" in for_approver
    assert "It is routed to tier1, who may grant up to USD 200.00 inside standard policy." in (
        for_approver
    )
    # The agent's own text is kept apart, under its own heading.
    decision = served.guard.approvals.decision(approval_id)
    assert decision.explanation not in for_approver
    assert decision.explanation.replace("'", "&#39;") in page[told:]
    # Times are sent as UTC <time> elements for the browser to show in the approver's zone.
    due = served.guard.approvals.get(approval_id).due_at
    assert f'<time datetime="{due.isoformat()}">{due:%Y-%m-%d %H:%M} UTC</time>' in page


def test_the_queue_filters_by_action_reason_amount_age_role_and_searches_ids(served, clock):
    small = route(served, "60.00", key="small", customer="c-ann", case="K-1001")
    clock.advance(hours=5)
    served.facts.facts.update(LOST)
    lost = route(served, "125.00", reason="carrier-lost", key="lost", customer="c-bo", case="K-2")
    clock.advance(hours=1)
    served.facts.facts["shipment.status"] = "delivered"
    large = route(served, "90.00", key="large", customer="c-cy", case="K-3")
    sign_in(served.client, served.tokens["tom"])

    def shown(query: str) -> set[str]:
        page = served.client.get(f"/ui?{query}").text
        return {i for i in (small, lost, large) if f'data-approval="{i}"' in page}

    assert shown("") == {small, lost, large}
    assert shown("reason=carrier-lost") == {lost}
    assert shown("reason=standard") == {small, large}
    assert shown("action=refund&min_amount=70&max_amount=100") == {large}
    assert shown("role=tier2") == {lost}
    assert shown("age=1h") == {small, lost}
    assert shown("age=4h") == {small}
    assert shown("age=24h") == set()
    assert shown("q=k-1001") == {small}
    assert shown("q=c-cy") == {large}
    assert shown("q=o-1") == {small, lost, large}  # every one is for order o-1
    page = served.client.get("/ui?q=nobody").text
    assert "0 of 3 waiting cases match." in page
    assert "No waiting case matches" in page
    refused = served.client.get("/ui?min_amount=lots").text
    assert "the smallest amount &#39;lots&#39; is not a number such as 49.99" in refused
    assert shown("min_amount=lots") == {small, lost, large}


def test_the_first_of_two_approvals_from_the_form_says_a_second_is_needed(serve, tmp_path):
    pack = shop_pack_with(
        tmp_path, "actions:\n  refund:\n", 'actions:\n  refund:\n    two_approvals_above: "60.00"\n'
    )
    served = serve(pack)
    approval_id = route(served)
    sign_in(served.client, served.tokens["tina"])
    page = served.client.get(f"/ui/approvals/{approval_id}").text
    answer = served.client.post(
        f"/ui/approvals/{approval_id}/approve",
        data={"csrf_token": csrf_of(page), "note": "receipt checked"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    done = served.client.get(answer.headers["location"]).text
    assert "Your approval is recorded; a second person must approve it." in done
    assert "tina (tier1) approved USD 80.00" in done
    assert served.guard.approvals.get(approval_id).status is ApprovalStatus.PENDING
    assert records(served.store, "approval.approved", approval_id) == []


def test_a_case_in_a_unit_shows_the_approver_limits_in_that_unit(serve):
    served = serve(load_pack(Path(__file__).parent.parent / "packs" / "units.yaml"))
    proposal = {
        "actor": {"id": "bot-1", "role": "ai_agent", "is_ai": True},
        "tool": {"name": "award_miles", "arguments": {"miles": 9000, "booking_id": "B-1"}},
        "rationale": {"text": "five hours late"},
    }
    approval_id = served.post("/v1/decisions", "bot", proposal).json()["id"]
    sign_in(served.client, served.tokens["tina"])
    page = served.client.get(f"/ui/approvals/{approval_id}").text
    start = page.index('id="for-approver"')
    for_approver = page[start : page.index('id="agent-told"')]
    assert "award_miles of MILES 9000" in for_approver
    assert "may grant up to MILES 5000 inside standard policy" in for_approver
    assert "who may grant up to MILES 20000 inside standard policy" in for_approver
