"""Attacks from the second security review, against the shipped acme pack and case data.

Each test states the behaviour wanted, through outcomes, rule ids, ledger rows and HTTP
answers: it fails while the attack still works.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from conftest import FakeClock
from discretion import Guard, Outcome, SqlStore, load_pack
from discretion.api import Tokens, create_app
from discretion.context import SqliteCaseStore
from discretion.decision import Verdict
from discretion.errors import ContextError, PolicyError, ProposalError
from discretion.judge import StaticJudge
from discretion.money import Money
from discretion.precedent import PrecedentSpec
from discretion.proposal import Actor
from discretion.store._schema import approvals

from .acme_attacks import ACME_CASES, ACME_PACK, ALLOWED, BOT, acme_guard, acme_pack_with, refund

ANN = Actor(id="ann", role="manager", is_ai=False)

A_50003 = {"customer_id": "C-1003", "case_id": "K-70003", "order_id": "A-50003"}


def unmapped(tool: str, arguments: dict[str, Any], *, key: str, **fields: Any) -> dict[str, Any]:
    """A proposal of a 20.00 refund on A-50003 carried by a call to a tool the pack does not map."""
    return {
        "actor": BOT,
        "amount": {"amount": "20.00", "currency": "USD"},
        **A_50003,
        "tool": {"name": tool, "arguments": arguments},
        "idempotency_key": key,
        **fields,
    }


# A tool the pack does not map is never decided as an action ------------------------------------


@pytest.mark.parametrize(
    ("tool", "fields"),
    [
        ("wire_transfer", {"action": "refund"}),  # a tool of its own, the action named
        ("lookup_order", {"action": "refund"}),  # a read-only tool, the action named
        ("refund", {}),  # a tool named like the action
    ],
)
def test_an_unmapped_tool_is_never_decided_on_the_proposals_own_fields(
    store: SqlStore, tool: str, fields: dict[str, Any]
) -> None:
    # Its arguments say 5,000.00 to another order; the proposal's fields say 20.00 on
    # A-50003. Nothing reads the arguments, so the call must not be allowed as that refund.
    guard = acme_guard(store)
    arguments = {"amount": "5000.00", "currency": "USD", "order_id": "A-50001", "to": "x"}
    governed = guard.pipeline.govern(unmapped(tool, arguments, key=f"k-{tool}", **fields))
    decision = governed.decision
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.unknown-action"]
    assert decision.required_role == guard.pack.highest_human.id
    assert governed.arguments == arguments  # what a person approves is what would run
    # The proposal's 20.00 is the agent's word about a call whose arguments say 5,000.00: it
    # is not what a person is shown or approves.
    assert decision.amount is None
    assert guard.approvals.get(decision.id).requested_amount is None
    if fields:
        assert decision.causes == [
            f"tool {tool!r} is not mapped by pack 'acme-support', so its arguments cannot be"
            " read and it is not decided as 'refund'; map it under the action's tools"
        ]
    [row] = store.export()
    assert row["body"]["decision"]["outcome"] == "route"
    assert row["body"]["proposal"]["tool"] == {"name": tool, "arguments": arguments}
    assert row["body"]["proposal"]["amount"] is None


def test_an_approval_of_an_unmapped_tool_grants_no_amount_the_agent_named(
    store: SqlStore,
) -> None:
    guard = acme_guard(store)
    arguments = {"customer": "C-1003", "usd": "50000.00"}
    decision = guard.decide(unmapped("wire_transfer", arguments, key="k-wire"))
    approver = Actor(id="fred", role=guard.pack.highest_human.id, is_ai=False)
    approved = guard.approvals.approve(decision.id, approver=approver, note="read the call")

    assert approved.amount is None
    [queued] = guard.executions.pending()
    assert (queued.tool, queued.arguments) == ("wire_transfer", arguments)
    assert guard.approvals.exposure(customer_id="C-1003").granted_total == Money.of("0", "USD")


def test_an_unmapped_tool_is_denied_where_the_pack_denies_unknown_tools(
    store: SqlStore, tmp_path: Path
) -> None:
    pack = acme_pack_with(tmp_path, "pack.yaml", "unknown_tools: route", "unknown_tools: deny")
    guard = acme_guard(store, pack=pack)
    decision = guard.decide(
        unmapped("wire_transfer", {"amount": "5000.00"}, key="k-deny", action="refund")
    )
    assert decision.outcome is Outcome.DENY
    assert decision.rules == ["discretion.unknown-action"]


def test_an_unmapped_tool_routes_to_the_role_the_pack_names(
    store: SqlStore, tmp_path: Path
) -> None:
    pack = acme_pack_with(
        tmp_path, "pack.yaml", "unknown_tools: route", "unknown_tools_route_to: tier1"
    )
    guard = acme_guard(store, pack=pack)
    decision = guard.decide(unmapped("wire_transfer", {"amount": "5000.00"}, key="k-tier1"))
    assert (decision.outcome, decision.required_role) == (Outcome.ROUTE, "tier1")
    assert decision.rules == ["discretion.unknown-action"]


def test_unknown_tools_route_only_to_a_human_role_of_the_pack(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="unknown_tools_route_to 'ai_agent' is not a human role"):
        acme_pack_with(
            tmp_path, "pack.yaml", "unknown_tools: route", "unknown_tools_route_to: ai_agent"
        )


def test_an_unmapped_tool_with_an_action_is_routed_over_http(store: SqlStore) -> None:
    guard = acme_guard(store)
    token, _ = Tokens(store, clock=guard.now).create(
        subject_id=BOT["id"], role=BOT["role"], is_ai=True
    )
    with TestClient(create_app(guard)) as client:
        answer = client.post(
            "/v1/decisions",
            json=unmapped("wire_transfer", {"amount": "5000.00"}, key="k-http", action="refund"),
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["outcome"] == "route"
    assert body["outcome"] not in {o.value for o in ALLOWED}
    assert body["rules"] == ["discretion.unknown-action"]


# A grant is totalled under the records it is about, not the ids the agent typed -----------------


class TimesOutOnce:
    """The acme case system, which times out on its first read."""

    in_process = True

    def __init__(self) -> None:
        self.cases = SqliteCaseStore.from_sql(ACME_CASES)
        self.failed = False

    def fetch(self, request: Any, /) -> Any:
        if not self.failed:
            self.failed = True
            raise ContextError("the case system timed out")
        return self.cases.fetch(request)


def test_a_case_routed_before_its_records_were_read_is_totalled_under_its_order(
    store: SqlStore,
) -> None:
    # A-50007 (649.00 paid) named only through its case K-70007: the first read fails, so
    # the refund routes with no order resolved. Once approved in full, the order is refunded
    # in full, and a further refund on it must be denied, not allowed as if nothing was.
    guard = Guard(load_pack(ACME_PACK), store=store, context=TimesOutOnce(), clock=FakeClock())
    ids = {"customer": "C-1007", "case": "K-70007"}
    first = guard.decide(refund(order=None, amount="649.00", key="r-1", **ids))
    assert first.outcome is Outcome.ROUTE
    assert first.rules == ["discretion.context-unavailable"]
    assert "order" not in first.entities
    guard.approvals.approve(first.id, approver=ANN, note="leak on video; full refund")

    with store.engine.connect() as connection:
        row = connection.execute(
            select(approvals.c.status, approvals.c.order_id, approvals.c.case_id).where(
                approvals.c.id == first.id
            )
        ).one()
    assert tuple(row) == ("approved", "A-50007", "K-70007")
    [approved] = [r for r in store.export() if r["kind"] == "approval.approved"]
    assert approved["body"]["recheck"]["entities"] == {
        "customer": "C-1007",
        "order": "A-50007",
        "case": "K-70007",
    }
    assert store.verify() == 3  # the decision, its approval, the call queued: the chain holds

    again = guard.decide(refund(order="A-50007", amount="199.00", key="r-2", **ids))
    assert again.outcome is Outcome.DENY
    # Measured on the order's own records: what was paid, and what was refunded on it.
    assert again.rules == ["refund.above-amount-paid", "refund.above-order-made-good"]


# The judge's band is measured on the whole, as cumulative authority is --------------------------


def test_a_split_exception_does_not_slip_under_the_judges_band(store: SqlStore, tmp_path: Path):
    # refund.carrier-lost asks the judge from 50.00; refunds are measured on the order's whole.
    # 49.99 alone is under the band; 40.00 more makes 89.99, which the judge must review.
    pack = acme_pack_with(
        tmp_path,
        "refund.yaml",
        "        message: the carrier has confirmed the parcel lost\n",
        "        message: the carrier has confirmed the parcel lost\n"
        '        judge: {min_amount: "50.00"}\n',
    )
    judge = StaticJudge(
        Verdict(justified=False, clause="refund.carrier-lost", unsupported_claims=[], reason="no")
    )
    guard = acme_guard(store, pack=pack, judge=judge)
    lost = {"customer": "C-1012", "case": "K-70012", "order": "A-50012"}

    def lost_refund(amount: str, key: str) -> dict[str, Any]:
        return refund(
            amount=amount,
            key=key,
            reason="refund.carrier-lost",
            claims=[{"field": "shipment.status", "value": "lost"}],
            **lost,
        )

    first = guard.decide(lost_refund("49.99", "lost-1"))
    assert first.outcome is Outcome.ALLOW_EXCEPTION
    assert judge.requests == []
    second = guard.decide(lost_refund("40.00", "lost-2"))
    assert second.outcome is Outcome.ROUTE
    assert second.rules == [
        "discretion.not-standard",
        "refund.carrier-lost",
        "discretion.judge.not-justified",
    ]
    assert [r.amount for r in judge.requests] == [Money.of("40.00", "USD")]


# A provider's odd answer routes, with its cause on record ---------------------------------------


class Answers:
    """A context provider that answers `answer`, or raises it."""

    in_process = True

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def fetch(self, request: Any, /) -> Any:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.mark.parametrize(
    ("answer", "cause"),
    [
        (None, "context provider answered NoneType, not a mapping of field names to values"),
        (["customer.tier"], "context provider answered list, not a mapping of field names"),
        (ProposalError("bad id"), "context provider failed: ProposalError: bad id"),
        (KeyError("order.total"), "context provider failed: KeyError: 'order.total'"),
    ],
)
def test_a_provider_answering_no_mapping_or_raising_routes_with_the_cause(
    store: SqlStore, answer: Any, cause: str
) -> None:
    guard = Guard(load_pack(ACME_PACK), store=store, context=Answers(answer), clock=FakeClock())
    ids = {"customer": "C-1003", "case": "K-70003", "order": "A-50003"}
    decision = guard.decide(refund(amount="20.00", key="odd", **ids))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.context-unavailable"]
    assert decision.causes[0].startswith(cause)
    [row] = store.export()
    assert row["body"]["decision"]["causes"] == decision.causes


# Records named must be tied to each other by their links ------------------------------------------


class NullLinks:
    """The acme case system, answering some records' owner links as null."""

    in_process = True

    def __init__(self, *nulled: str) -> None:
        self.cases = SqliteCaseStore.from_sql(ACME_CASES)
        self.nulled = nulled

    def fetch(self, request: Any, /) -> Any:
        facts = dict(self.cases.fetch(request))
        facts.update(dict.fromkeys(self.nulled))
        return facts


def test_a_customer_named_beside_records_with_no_owner_links_is_not_taken_on_trust(
    store: SqlStore,
) -> None:
    # A-50003 and K-70003 are C-1003's; with their owner links null, nothing ties them to the
    # platinum C-1001 the agent names, whose tier would otherwise decide.
    links = NullLinks("order.customer_id", "case.customer_id", "case.order_id")
    guard = Guard(load_pack(ACME_PACK), store=store, context=links, clock=FakeClock())
    named = {"customer": "C-1001", "case": "K-70003", "order": "A-50003"}
    decision = guard.decide(refund(amount="20.00", key="nulls", **named))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.entity.unlinked"]
    assert decision.causes == [
        "no record ties case 'K-70003' to customer 'C-1001' (their links are null), so the"
        " customer named stands on the proposal's word alone"
    ]


def test_a_case_about_no_order_is_tied_to_its_customers_order_through_the_customer(
    store: SqlStore,
) -> None:
    # Only the case's order link is null: the case and the order are both C-1003's.
    links = NullLinks("case.order_id")
    guard = Guard(load_pack(ACME_PACK), store=store, context=links, clock=FakeClock())
    named = {"customer": "C-1003", "case": "K-70003", "order": "A-50003"}
    decision = guard.decide(refund(amount="20.00", key="tied", **named))
    assert decision.outcome is Outcome.ALLOW
    assert decision.entities == {"customer": "C-1003", "order": "A-50003", "case": "K-70003"}


@pytest.mark.parametrize("since", ["last year", "2025-11-01"])
def test_a_precedent_scoped_on_a_time_that_is_not_one_is_refused(
    store: SqlStore, since: str
) -> None:
    """A time scope value that is no ISO 8601 time with its offset raised ValueError out of the
    approval (HTTP 500) instead of naming the scope key."""
    guard = acme_guard(store)
    routed = guard.decide(
        refund(
            order="A-50018",
            customer="C-1018",
            case="K-70018",
            amount="899.00",
            key="k-tv",
            reason="refund.carrier-lost",
            claims=[{"field": "shipment.status", "value": "lost"}],
        )
    )
    assert routed.outcome is Outcome.ROUTE
    approver = Actor(id="fred", role=guard.pack.highest_human.id, is_ai=False)
    spec = PrecedentSpec(
        scope={"customer.tier": "gold", "customer.since": since},
        max_ratio="1",
        expires_at=guard.now() + timedelta(days=20),
        citations=3,
        note="depot fire",
    )

    with pytest.raises(ProposalError, match="with its offset") as caught:
        guard.approvals.approve(routed.id, approver=approver, note="confirmed", precedent=spec)

    assert caught.value.field == "scope.customer.since"
    assert guard.approvals.get(routed.id).status.value == "pending"
    assert guard.precedents.list() == []
