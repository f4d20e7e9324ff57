"""Records checked against their own, totals from the ledger, authority on the whole."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from conftest import NOW, Counter, FakeClock, traced_sqlite
from discretion import Actor, Guard, Money, Outcome, PolicyError, SqlStore, load_pack
from discretion.context import ContextRequest, StaticContextProvider
from discretion.errors import ProposalError

HERE = Path(__file__).resolve().parent.parent
PACK = HERE / "packs" / "ledgered.yaml"
BOT = Actor(id="bot-1", role="ai_agent")
BOT2 = Actor(id="bot-2", role="ai_agent")
TINA = Actor(id="tina", role="tier1", is_ai=False)

CUSTOMERS = {"c-1": {"tier": "gold"}, "c-2": {"tier": "platinum"}}
ORDERS = {"o-1": ("c-1", "600.00"), "o-2": ("c-2", "800.00"), "o-3": ("c-1", "50.00")}
CASES = {"k-1": ("c-1", "o-1"), "k-2": ("c-2", None)}


class Records:
    """A case system: customers, orders and cases, answered by the ids a request names."""

    in_process = True

    def __init__(self) -> None:
        self.requests: list[ContextRequest] = []

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        self.requests.append(request)
        facts: dict[str, Any] = {}
        if request.customer_id in CUSTOMERS:
            facts["customer.id"] = request.customer_id
            facts["customer.tier"] = CUSTOMERS[request.customer_id]["tier"]
        if request.order_id in ORDERS:
            owner, total = ORDERS[request.order_id]
            facts |= {"order.id": request.order_id, "order.customer_id": owner}
            facts["order.total"] = {"amount": total, "currency": "USD"}
        if request.case_id in CASES:
            owner, order = CASES[request.case_id]
            facts |= {"case.id": request.case_id, "case.customer_id": owner, "case.order_id": order}
        return facts


@pytest.fixture
def records() -> Records:
    return Records()


@pytest.fixture
def guard(store, records) -> Guard:
    return Guard(load_pack(PACK), store=store, context=records, clock=FakeClock(NOW), ids=Counter())


def refund(
    amount: str,
    *,
    key: str,
    order: str | None = "o-1",
    customer: str | None = "c-1",
    case: str | None = "k-1",
    actor: Actor = BOT,
) -> dict[str, Any]:
    arguments: dict[str, Any] = {"amount": amount}
    for name, value in (("order_id", order), ("customer_id", customer), ("case_id", case)):
        if value is not None:
            arguments[name] = value
    return {
        "actor": actor.model_dump(),
        "tool": {"name": "issue_refund", "arguments": arguments},
        "idempotency_key": key,
    }


# Records checked against their own ------------------------------------------------------------


def test_a_customer_left_out_is_read_from_the_order_and_the_facts_are_theirs(guard, records):
    decision = guard.decide(refund("50.00", key="a", customer=None, case=None))
    assert decision.outcome is Outcome.ALLOW
    assert decision.entities == {"customer": "c-1", "order": "o-1"}
    # First asked with the ids as named, then for the customer the order names.
    assert [r.customer_id for r in records.requests] == [None, "c-1"]


def test_naming_another_customer_for_the_order_is_never_allowed(guard, store):
    decision = guard.decide(refund("50.00", key="a", customer="c-2", case=None))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.entity.mismatch"]
    assert decision.causes == [
        "the proposal names customer 'c-2', but order 'o-1' belongs to customer 'c-1'"
    ]
    assert decision.reservations == []


def test_an_order_not_on_record_routes_and_a_case_not_on_record_is_denied(guard):
    unknown_order = guard.decide(refund("20.00", key="a", order="o-9", case=None))
    unknown_case = guard.decide(refund("20.00", key="b", case="k-9"))
    assert (unknown_order.outcome, unknown_order.rules) == (
        Outcome.ROUTE,
        ["discretion.entity.unknown"],
    )
    assert unknown_order.causes == ["order 'o-9' is not on record"]
    # The pack says `case: {on_unknown: deny}`.
    assert (unknown_case.outcome, unknown_case.rules) == (
        Outcome.DENY,
        ["discretion.entity.unknown"],
    )


def test_a_mistyped_id_is_unknown_not_a_mismatch_with_its_records_link(store, tmp_path):
    """An order not on record named beside its case is what `on_unknown` says.

    `O-1` for the case's `o-1` was also a mismatch with the case's link, and the pack's
    `on_mismatch: deny` refused a call `on_unknown: route` sends to a person.
    """
    source = PACK.read_text(encoding="utf-8").replace(
        "case: {belongs_to: [customer, order], on_unknown: deny}",
        "case: {belongs_to: [customer, order], on_unknown: deny, on_mismatch: deny}",
    )
    assert "on_mismatch: deny" in source
    path = tmp_path / "pack.yaml"
    path.write_text(source, encoding="utf-8")
    guard = Guard(load_pack(path), store=store, context=Records(), clock=FakeClock(NOW))
    mistyped = guard.decide(refund("20.00", key="a", order="O-1"))
    other = guard.decide(refund("20.00", key="b", order="o-3"))
    assert (mistyped.outcome, mistyped.rules) == (Outcome.ROUTE, ["discretion.entity.unknown"])
    assert mistyped.causes == ["order 'O-1' is not on record"]
    # Another order on record, not the case's: a mismatch still, as the pack says.
    assert (other.outcome, other.rules) == (Outcome.DENY, ["discretion.entity.mismatch"])


def test_a_required_record_the_call_does_not_name_is_sent_back(store, tmp_path):
    """`on_unknown: deny` says what a case not on record gets; `required` that one is named.

    Without it, a call naming no case was decided without one, and allowed.
    """
    source = (
        PACK.read_text(encoding="utf-8")
        .replace(
            "case: {belongs_to: [customer, order], on_unknown: deny}",
            "case: {belongs_to: [customer, order], on_unknown: deny, required: true}\n"
            "  customer: {required: true}",
        )
        .replace("  customer: {}\n", "", 1)
    )
    path = tmp_path / "pack.yaml"
    path.write_text(source, encoding="utf-8")
    guard = Guard(load_pack(path), store=store, context=Records(), clock=FakeClock(NOW))

    with pytest.raises(ProposalError, match=r"entities\.case\.required") as refused:
        guard.decide(refund("20.00", key="a", case=None))
    assert refused.value.field == "tool.arguments.case_id"
    assert store.find_decision("bot-1", "a") is None
    # A customer is named through the order or case it belongs to.
    named = guard.decide(refund("20.00", key="b", customer=None))
    assert named.outcome is Outcome.ALLOW


def test_a_case_names_its_order_when_the_proposal_does_not(guard):
    decision = guard.decide(refund("20.00", key="a", order=None))
    assert decision.entities == {"customer": "c-1", "order": "o-1", "case": "k-1"}
    assert decision.outcome is Outcome.ALLOW


def test_a_provider_that_does_not_say_a_records_owner_fails_closed(store):
    class Forgetful(Records):
        def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
            facts = dict(super().fetch(request))
            facts.pop("order.customer_id", None)
            return facts

    guard = Guard(load_pack(PACK), store=store, context=Forgetful(), clock=FakeClock(NOW))
    decision = guard.decide(refund("20.00", key="a", case=None))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.context-unavailable"]
    assert "did not say its customer (order.customer_id)" in decision.causes[0]


def test_the_shipped_static_provider_holds_records_and_their_owners(store):
    context = StaticContextProvider(
        customers={"c-1": {"customer.tier": "gold"}, "c-2": {"customer.tier": "platinum"}},
        orders={
            "o-1": {
                "order.customer_id": "c-1",
                "order.total": {"amount": "600.00", "currency": "USD"},
            }
        },
        cases={"k-1": {"case.customer_id": "c-1", "case.order_id": "o-1"}},
    )
    guard = Guard(load_pack(PACK), store=store, context=context, clock=FakeClock(NOW))
    bound = guard.decide(refund("50.00", key="a", customer=None))
    spoofed = guard.decide(refund("50.00", key="b", customer="c-2", case=None))
    unknown = guard.decide(refund("50.00", key="c", order="o-9", case=None))
    assert (bound.outcome, bound.entities) == (
        Outcome.ALLOW,
        {"customer": "c-1", "order": "o-1", "case": "k-1"},
    )
    assert (spoofed.outcome, spoofed.rules) == (Outcome.ROUTE, ["discretion.entity.mismatch"])
    assert (unknown.outcome, unknown.rules) == (Outcome.ROUTE, ["discretion.entity.unknown"])


# Totals from the ledger, and authority on the whole -------------------------------------------


def test_a_split_is_judged_whole_and_a_second_agent_of_the_role_counts_too(guard):
    first = guard.decide(refund("60.00", key="a"))
    second = guard.decide(refund("40.00", key="b", actor=BOT2))
    third = guard.decide(refund("0.01", key="c"))
    assert (first.outcome, second.outcome) == (Outcome.ALLOW, Outcome.ALLOW)
    assert third.outcome is Outcome.ROUTE
    assert third.required_role == "tier1"
    assert "discretion.cumulative-authority" in third.rules
    # Another order starts afresh.
    assert guard.decide(refund("50.00", key="d", order="o-3", case=None)).is_allowed


def test_totals_are_recorded_with_the_facts_and_count_what_the_pack_says(guard, store):
    guard.decide(refund("60.00", key="a"))
    routed = guard.decide(refund("250.00", key="b", order="o-2", customer="c-2", case="k-2"))
    later = guard.decide(refund("10.00", key="c"))
    assert routed.outcome is Outcome.ROUTE
    body = store.decision_body(later.id)
    assert body is not None
    assert body["context"]["order.refunds_granted"] == {"amount": "60.00", "currency": "USD"}
    assert body["context"]["cumulative"] == {"amount": "60.00", "currency": "USD"}
    other = store.decision_body(
        guard.decide(refund("1.00", key="d", order="o-2", customer="c-2", case="k-2")).id
    )
    assert other is not None
    # customer.refunds_open counts routed refunds still pending for the customer.
    assert other["context"]["customer.refunds_open"] == 1


def test_an_approved_refund_counts_toward_what_was_paid(guard):
    routed = guard.decide(refund("500.00", key="a"))
    guard.approvals.approve(
        routed.id, approver=Actor(id="tom", role="tier2", is_ai=False), note="ok"
    )
    over = guard.decide(
        refund("100.01", key="b", actor=Actor(id="tess", role="tier2", is_ai=False))
    )
    assert over.outcome is Outcome.DENY
    assert over.rules == ["above-paid"]


def test_a_total_that_changed_while_deciding_is_decided_anew_in_the_transaction(store, records):
    one = Guard(load_pack(PACK), store=store, context=records, clock=FakeClock(NOW), ids=Counter())
    two = Guard(
        load_pack(PACK), store=store, context=records, clock=FakeClock(NOW), ids=Counter("other")
    )
    item = one.pipeline.normalise(refund("80.00", key="race-1"))
    assessed = one.pipeline.assess(item, NOW)
    assert assessed.evaluation.outcome is Outcome.ALLOW  # alone, 80.00 is within the AI's 100.00
    assert two.decide(refund("50.00", key="race-2", actor=BOT2)).outcome is Outcome.ALLOW
    recorded = one.pipeline._record(item, NOW, assessed)
    # Recorded on the totals as they stood in its transaction: 50.00 + 80.00 is over 100.00.
    assert recorded.outcome is Outcome.ROUTE
    assert "discretion.cumulative-authority" in recorded.rules
    body = store.decision_body(recorded.id)
    assert body is not None
    assert body["context"]["cumulative"] == {"amount": "50.00", "currency": "USD"}


def test_a_total_another_connection_changed_is_read_again_in_the_transaction(tmp_path, records):
    # SQLite: a decision's transaction skips reading its totals again only while no other
    # connection committed since they were read (`PRAGMA data_version`).
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    mine, theirs = SqlStore(url), SqlStore(url)
    try:
        one = Guard(load_pack(PACK), store=mine, context=records, clock=FakeClock(NOW))
        two = Guard(load_pack(PACK), store=theirs, context=records, clock=FakeClock(NOW))
        item = one.pipeline.normalise(refund("80.00", key="race-1"))
        assessed = one.pipeline.assess(item, NOW)
        assert assessed.evaluation.outcome is Outcome.ALLOW
        assert two.decide(refund("50.00", key="race-2", actor=BOT2)).outcome is Outcome.ALLOW
        recorded = one.pipeline._record(item, NOW, assessed)
        assert recorded.outcome is Outcome.ROUTE
        assert "discretion.cumulative-authority" in recorded.rules
    finally:
        mine.close()
        theirs.close()


def test_totals_nothing_changed_are_not_read_again_in_the_transaction(tmp_path, records):
    store, statements = traced_sqlite(tmp_path / "ledger.db")
    try:
        guard = Guard(load_pack(PACK), store=store, context=records, clock=FakeClock(NOW))
        assert guard.decide(refund("50.00", key="a")).outcome is Outcome.ALLOW
        statements.clear()
        second = guard.decide(refund("30.00", key="b"))
        # 50.00 + 30.00 is within the AI's 100.00 on the order: the first decision counted.
        assert second.outcome is Outcome.ALLOW
        body = store.decision_body(second.id)
        assert body is not None
        assert body["context"]["cumulative"] == {"amount": "50.00", "currency": "USD"}
        begin = statements.index("BEGIN IMMEDIATE")
        totals = [s for s in statements if "coalesce(sum(decisions.amount_minor)" in s]
        assert len(totals) == 1
        assert statements.index(totals[0]) < begin
        assert "PRAGMA data_version" in statements[begin:]
    finally:
        store.close()


class Unlocked:
    """Counts the totals read outside any transaction (`SqlStore.totals`), and reads them."""

    def __init__(self, store: SqlStore) -> None:
        self.calls = 0
        self._read = store.totals

    def __call__(self, queries: Any) -> list[int]:
        self.calls += 1
        return self._read(queries)


def test_an_in_process_decision_on_a_networked_database_reads_its_totals_once_under_the_locks(
    store, records
):
    # PostgreSQL: no judge and an in-process provider, so nothing waits on the network while
    # the decision's transaction is open; its totals are read there only. SQLite reads first,
    # before it takes the database's write lock.
    unlocked = Unlocked(store)
    store.totals = unlocked  # type: ignore[method-assign]
    guard = Guard(load_pack(PACK), store=store, context=records, clock=FakeClock(NOW))
    assert guard.decide(refund("60.00", key="a")).outcome is Outcome.ALLOW
    second = guard.decide(refund("50.00", key="b"))
    # 60.00 + 50.00 is over the AI's 100.00 on the order: the first decision counted.
    assert second.outcome is Outcome.ROUTE
    assert "discretion.cumulative-authority" in second.rules
    body = store.decision_body(second.id)
    assert body is not None
    assert body["context"]["cumulative"] == {"amount": "60.00", "currency": "USD"}
    assert unlocked.calls == (2 if store.embedded else 0)


def test_a_decision_whose_provider_waits_on_the_network_reads_its_totals_before_its_transaction(
    store,
):
    class Remote(Records):
        in_process = False

    unlocked = Unlocked(store)
    store.totals = unlocked  # type: ignore[method-assign]
    guard = Guard(load_pack(PACK), store=store, context=Remote(), clock=FakeClock(NOW))
    assert not guard.in_process
    assert guard.decide(refund("60.00", key="a")).outcome is Outcome.ALLOW
    assert guard.decide(refund("50.00", key="b")).outcome is Outcome.ROUTE
    assert unlocked.calls == 2


def test_cumulative_authority_needs_the_record_it_is_kept_for(store, records, tmp_path):
    # A refund action that reads nothing of the order: without an order named (and no case to
    # name one) the sum cannot be measured, so a person decides.
    source = PACK.read_text(encoding="utf-8")
    source = source.replace(
        "reads: [customer.tier, order.total, order.refunds_granted, customer.refunds_open]",
        "reads: [customer.tier]",
    )
    source = source.split("    hard_limits:")[0] + "    standard:\n      - id: any-refund\n"
    path = tmp_path / "variant.yaml"
    path.write_text(source, encoding="utf-8")
    guard = Guard(load_pack(path), store=store, context=records, clock=FakeClock(NOW))
    decision = guard.decide(refund("10.00", key="a", order=None, case=None))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.cumulative-unkeyed"]
    assert decision.causes == [
        "refund authority is measured per order and the proposal names none, so it cannot be"
        " measured"
    ]


# Budgets on resolved records, per role, to the next role up --------------------------------------


def test_a_budget_per_order_has_a_limit_per_role_and_routes_to_the_next_role_up(guard):
    bots = [Actor(id=f"bot-{n}", role="ai_agent") for n in range(3)]
    guard.decide(refund("90.00", key="a", actor=bots[0]))
    # The AI's cumulative authority would route anyway; the budget's limit is the AI's 250.00.
    tina = guard.decide(refund("200.00", key="b", actor=TINA))
    assert tina.outcome is Outcome.ALLOW
    over = guard.decide(refund("0.01", key="c", actor=bots[1]))
    assert over.outcome is Outcome.ROUTE
    assert "per-order-daily" in over.rules
    assert over.required_role == "tier1"  # next_above the AI
    assert guard.decide(refund("50.00", key="d", actor=TINA)).is_allowed


# What the pack language refuses at load -----------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "  order: {belongs_to: [customer]}\n",
            "  order: {belongs_to: [case]}\n",
            "entities.order cannot belong to 'case'",
        ),
        (
            "  customer: {}\n",
            "",
            "entities.order belongs to 'customer', which entities does not declare",
        ),
        (
            "    per: order\n    window: 30d\n    outcomes: [allow",
            "    per: order\n    window: 0d\n    outcomes: [allow",
            "the window must be longer than zero",
        ),
        (
            "ungoverned_tools: [lookup_order",
            "ungoverned_tools: [issue_*, lookup_order",
            "ungoverned_tools 'issue_*' names issue_refund, which 'refund' maps",
        ),
        (
            "    limits: {ai_agent:",
            "    limits: {robot:",
            "budget limits name role 'robot', which the pack does not define",
        ),
        (
            "  customer.refunds_open:\n",
            "  order.total:\n",
            "total 'order.total' has the name of a context field",
        ),
    ],
    ids=[
        "belongs-upward",
        "undeclared-parent",
        "zero-window",
        "ungoverned-mapped",
        "limit-role",
        "total-shadows-fact",
    ],
)
def test_pack_mistakes_in_entities_totals_and_budgets_name_the_line(tmp_path, old, new, message):
    source = PACK.read_text(encoding="utf-8")
    assert source.count(old) == 1, old
    path = tmp_path / "variant.yaml"
    path.write_text(source.replace(old, new), encoding="utf-8")
    with pytest.raises(PolicyError, match=re.escape(message)) as raised:
        load_pack(path)
    assert raised.value.path == str(path)
    assert raised.value.line is not None


def test_keying_by_an_order_needs_the_order_declared(tmp_path):
    entities = (
        "  order: {belongs_to: [customer]}\n"
        "  case: {belongs_to: [customer, order], on_unknown: deny}\n"
    )
    source = PACK.read_text(encoding="utf-8").replace(entities, "")
    path = tmp_path / "variant.yaml"
    path.write_text(source, encoding="utf-8")
    with pytest.raises(PolicyError, match=re.escape("add `order: {}`")):
        load_pack(path)


def test_read_only_tools_are_listed_by_name_or_glob():
    pack = load_pack(PACK)
    assert not pack.governs("lookup_order")
    assert not pack.governs("search_orders")
    assert pack.governs("issue_refund")
    assert pack.governs("wire_money")  # neither mapped nor listed: decided, and routed
    assert Money.of("1", "USD")


def test_a_read_only_tool_asked_about_is_allowed_and_one_naming_an_action_is_not(guard):
    actor = {"id": "bot-1", "role": "ai_agent", "is_ai": True}
    lookup = {"name": "lookup_order", "arguments": {"order_id": "o-1"}}
    allowed = guard.decide({"actor": actor, "tool": lookup})
    assert (allowed.outcome, allowed.rules) == (Outcome.ALLOW, ["discretion.ungoverned-tool"])
    assert "read-only" in allowed.explanation
    assert guard.approvals.list(status="pending") == []
    # Named as a refund, a look-up is not what the pack lists: it routes, as any unknown call.
    smuggled = guard.decide({"actor": actor, "action": "refund", "tool": lookup})
    assert (smuggled.outcome, smuggled.rules) == (Outcome.ROUTE, ["discretion.unknown-action"])


@pytest.mark.parametrize("key", ["customer", "case", "[customer, actor]"])
def test_a_budget_kept_per_a_record_needs_the_record_declared(tmp_path, key):
    # Without it the id the agent typed is the key: 'c-1' and 'C-1' would be two budgets.
    path = tmp_path / "pack.yaml"
    path.write_text(
        f"""\
pack: typed-keys
currency: USD
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {{standard: "100.00"}}
  - id: tier1
    authority:
      refund: {{standard: "500.00"}}
actions:
  refund:
    tools:
      - {{name: issue_refund, amount: amount, customer: customer_id, case: case_id}}
    standard:
      - id: any
budgets:
  - id: per-record
    key: {key}
    window: 30d
    limit: "50.00"
""",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match=re.escape("budget 'per-record' is kept per")) as raised:
        load_pack(path)
    assert "under entities; ids the agent types are never keys on their own" in str(raised.value)
    assert raised.value.line == 19  # the budget's


def test_an_id_a_provider_links_longer_than_a_decision_keeps_routes(store):
    """The case system's own id is recorded; one too long to keep is context it cannot give."""

    class LongLinks(Records):
        def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
            facts = dict(super().fetch(request))
            if "order.customer_id" in facts:
                facts["order.customer_id"] = "c" * 201
            return facts

    guard = Guard(load_pack(PACK), store=store, context=LongLinks(), clock=FakeClock(NOW))
    decision = guard.decide(refund("20.00", key="a", customer=None, case=None))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.context-unavailable"]
    assert "'order.customer_id' is an id of 201 characters" in decision.causes[0]
