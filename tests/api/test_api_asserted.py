"""An assertion the pack does not declare is bad input over HTTP: a 422 naming it."""

from __future__ import annotations

from approvals.helpers import count
from conftest import refund
from discretion.store._schema import ledger


def test_an_undeclared_assertion_is_a_422_naming_it_and_nothing_is_recorded(served):
    proposal = refund()
    proposal["rationale"]["asserted"] = {"customer.mood": "angry"}

    before = count(served.store, ledger)  # the served app's tokens are on record
    answer = served.post("/v1/decisions", "bot", proposal)

    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["error"] == "invalid_input"
    assert problem["field"] == "rationale.asserted.customer.mood"
    assert "declares no asserted fact 'customer.mood'" in problem["message"]
    assert count(served.store, ledger) == before
