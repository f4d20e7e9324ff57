"""An attacker at the approval desk: each test fails if the attack works.

The approvals and API suites already cover approving one's own proposal, the double-click race,
raising an amount, stale approvals and forms without a CSRF token. These add the attacks they
leave out: forged, hashed and replayed credentials, a signed-in browser's cookie against the
JSON API, a CSRF token from another session, raising a role or the required role through the
body, approving past the due time without a scheduler, reading other agents' cases, guessing
tokens at the sign-in form, and secrets kept in the clear.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select

from api.helpers import csrf_of, sign_in
from approvals.helpers import LOST, count, records
from conftest import refund
from discretion.api import Tokens
from discretion.api._auth import token_digest
from discretion.approvals import ApprovalStatus
from discretion.store._schema import approvals, executions


def route(served, amount: str = "80.00", who: str = "bot", **kwargs: Any) -> str:
    answer = served.post("/v1/decisions", who, refund(amount, **kwargs))
    decision = answer.json()
    assert decision["outcome"] == "route", decision
    return str(decision["id"])


def approve(served, approval_id: str, headers: dict[str, str], **body: Any) -> Any:
    return served.client.post(
        f"/v1/approvals/{approval_id}/approve", json={"note": "ok", **body}, headers=headers
    )


def still_pending(served, approval_id: str) -> None:
    assert served.guard.approvals.get(approval_id).status is ApprovalStatus.PENDING
    assert records(served.store, "approval.approved", approval_id) == []
    assert count(served.store, executions) == 0


def forgeries(served) -> list[str]:
    real = served.tokens["maria"]
    flipped = real[:-1] + ("A" if real[-1] != "A" else "B")
    return [
        flipped,  # one character changed
        real[:-4],  # cut short
        real + "x",  # extended
        token_digest(real),  # the digest the store keeps, as if read from a backup
        "dsc_" + "0" * 43,  # the right shape, a made-up secret
        real.upper(),
        f"{real} {real}",
    ]


def test_forged_tokens_and_the_stored_digest_authenticate_nobody(served):
    approval_id = route(served)
    for forged in forgeries(served):
        answer = approve(served, approval_id, {"Authorization": f"Bearer {forged}"})
        assert answer.status_code == 401, forged
        assert answer.json()["error"] == "unauthenticated"
    still_pending(served, approval_id)


def test_a_replayed_approval_is_refused_and_the_call_runs_once(served):
    approval_id = route(served)
    first = approve(served, approval_id, served.auth("tina"), note="fine")
    assert first.status_code == 200
    for who in ("tina", "tim", "maria"):
        again = approve(served, approval_id, served.auth(who), note="fine")
        assert again.status_code == 409
        assert again.json()["error"] == "conflict"
    assert len(records(served.store, "approval.approved", approval_id)) == 1
    assert count(served.store, executions) == 1


def test_a_revoked_token_replayed_is_refused(served):
    approval_id = route(served)

    Tokens(served.store, clock=served.guard.now).revoke(served.token_ids["tina"])
    assert approve(served, approval_id, served.auth("tina")).status_code == 401
    still_pending(served, approval_id)


def test_a_signed_in_browsers_cookie_does_not_authorise_the_json_api(served):
    # A cross-site page can make the browser send its cookies; the API only honours a bearer
    # token, which a page on another site cannot read.
    approval_id = route(served)
    assert sign_in(served.client, served.tokens["maria"]).status_code == 303
    answer = served.client.post(f"/v1/approvals/{approval_id}/approve", json={"note": "csrf"})
    assert answer.status_code == 401
    still_pending(served, approval_id)


def test_a_csrf_token_from_another_session_changes_nothing(served):
    approval_id = route(served)
    other = TestClient(served.client.app)
    sign_in(other, served.tokens["tim"])
    theirs = csrf_of(other.get(f"/ui/approvals/{approval_id}").text)
    sign_in(served.client, served.tokens["tina"])
    answer = served.client.post(
        f"/ui/approvals/{approval_id}/approve", data={"note": "x", "csrf_token": theirs}
    )
    assert answer.status_code == 403
    assert "CSRF token is missing or wrong" in answer.text
    still_pending(served, approval_id)


def test_the_session_cookie_is_not_readable_by_scripts_nor_sent_cross_site(served):
    answer = sign_in(served.client, served.tokens["tina"])
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie


@pytest.mark.parametrize(
    "extra",
    [
        {"role": "manager"},
        {"approver": {"id": "maria", "role": "manager", "is_ai": False}},
        {"required_role": "tier1"},
        {"decided_role": "manager"},
        {"status": "approved"},
    ],
    ids=["role", "approver", "required-role", "decided-role", "status"],
)
def test_a_body_cannot_raise_the_approvers_role_or_lower_the_required_one(served, extra):
    served.facts.facts.update(LOST)
    approval_id = route(served, "125.00", reason="carrier-lost")
    assert served.guard.approvals.get(approval_id).required_role == "tier2"
    answer = approve(served, approval_id, served.auth("tina"), **extra)
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_input"
    # Nor does a query string: the role is the token's.
    by_query = served.client.post(
        f"/v1/approvals/{approval_id}/approve?role=manager&required_role=tier1",
        json={"note": "ok"},
        headers=served.auth("tina"),
    )
    assert by_query.status_code == 403
    assert served.guard.approvals.get(approval_id).required_role == "tier2"
    still_pending(served, approval_id)


def test_a_person_cannot_propose_in_a_higher_role_than_their_token(served):
    proposal = refund("450.00", role="manager", actor="tina")
    answer = served.post("/v1/decisions", "tina", proposal)
    assert answer.status_code == 403
    assert "propose as yourself" in answer.json()["message"]
    assert served.store.count() == len(served.tokens)  # the tokens' own records only


def test_approving_past_the_due_time_is_refused_even_before_the_scheduler_runs(served, clock):
    approval_id = route(served)
    due = served.guard.approvals.get(approval_id).due_at
    assert due is not None
    clock.now = due + timedelta(seconds=1)
    answer = approve(served, approval_id, served.auth("tina"))
    assert answer.status_code == 409
    assert "passed its due time" in answer.json()["message"]
    assert served.guard.approvals.get(approval_id).status is ApprovalStatus.EXPIRED
    assert records(served.store, "approval.approved", approval_id) == []
    assert count(served.store, executions) == 0


@pytest.mark.parametrize(
    "amount",
    ["80.01", "800", {"amount": "80.00", "currency": "EUR"}, "-1.00", "NaN", "79.999", "1e3"],
)
def test_an_edited_amount_above_the_request_or_malformed_is_refused(served, amount):
    approval_id = route(served)
    answer = approve(served, approval_id, served.auth("tina"), amount=amount)
    assert answer.status_code == 422, answer.json()
    still_pending(served, approval_id)


def test_an_agent_cannot_read_another_agents_cases(served):
    approval_id = route(served)
    assert served.get(f"/v1/decisions/{approval_id}", "bot2").status_code == 404
    assert served.get(f"/v1/approvals/{approval_id}", "bot2").status_code == 404
    assert served.get(f"/v1/approvals/{approval_id}/history", "bot2").status_code == 403
    assert served.get("/v1/approvals", "bot2").status_code == 403
    # And cannot withdraw it.
    cancel = served.post(f"/v1/approvals/{approval_id}/cancel", "bot2", {"note": "mine now"})
    assert cancel.status_code in (403, 404)
    still_pending(served, approval_id)
    # Its own agent can.
    assert served.get(f"/v1/approvals/{approval_id}", "bot").status_code == 200


def test_sign_in_is_rate_limited_per_address_on_the_apps_clock(served, clock):
    def attempt(token: str) -> Any:
        return sign_in(served.client, token)

    for _ in range(5):
        assert attempt("dsc_guessed").status_code == 401
    blocked = attempt(served.tokens["tina"])
    assert blocked.status_code == 429
    assert "too many failed sign-ins" in blocked.text
    assert int(blocked.headers["retry-after"]) == 15 * 60
    assert "discretion_session" not in blocked.headers.get("set-cookie", "")
    clock.advance(minutes=14)
    assert attempt(served.tokens["tina"]).status_code == 429
    clock.advance(minutes=1, seconds=1)
    assert attempt(served.tokens["tina"]).status_code == 303
    # A success forgets the failures.
    for _ in range(4):
        assert attempt("dsc_guessed").status_code == 401
    assert attempt(served.tokens["tina"]).status_code == 303


def test_tokens_and_session_cookies_are_stored_only_as_digests(served):
    approval_id = route(served)
    signed_in = sign_in(served.client, served.tokens["tina"])
    session = signed_in.cookies.get("discretion_session") or served.client.cookies.get(
        "discretion_session"
    )
    assert session
    secrets = [*served.tokens.values(), session]
    tables = MetaData()
    tables.reflect(served.store.engine)
    with served.store.engine.connect() as connection:
        dump = json.dumps(
            [
                [list(map(str, row)) for row in connection.execute(select(table))]
                for table in tables.sorted_tables
            ]
        )
        assert connection.execute(select(approvals.c.id)).scalar_one() == approval_id
    for secret in secrets:
        assert secret not in dump
    assert token_digest(served.tokens["tina"]) in dump
