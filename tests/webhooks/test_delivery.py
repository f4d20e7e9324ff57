from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from conftest import NOW, good_facts, refund, shop_pack_with
from discretion import Actor, ConfigurationError, Money, Outcome
from discretion.store._schema import ledger, webhook_cursors
from discretion.webhooks import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    Deliverer,
    Delivery,
    WebhookEndpoint,
    deliver_once,
    verify_signature,
)

from .conftest import ENV, SECRET

TOM = Actor(id="tom", role="tier2", is_ai=False)
TINA = Actor(id="tina", role="tier1", is_ai=False)
A = "https://hooks.test/a"
B = "https://hooks.test/b"


class Crash(BaseException):
    """The process dies: nothing catches it."""


def test_a_routed_case_reaches_a_real_receiver_signed_with_its_events(
    store, guard, clock, real_receiver
):
    deliverer = Deliverer(
        store,
        [WebhookEndpoint(url=real_receiver.url)],
        environ=ENV,
        clock=clock,
        public_url="https://discretion.acme.test/",
    )
    try:
        deliverer.enroll()
        decision = guard.decide(refund("80.00"))
        assert decision.outcome is Outcome.ROUTE
        [delivery] = deliverer.deliver()
    finally:
        deliverer.close()
    assert (delivery.claimed, delivery.sent, delivery.error) == (True, 2, None)
    got = real_receiver.inbox.got
    assert [r.event["type"] for r in got] == ["decision.recorded", "approval.opened"]
    for request in got:
        verify_signature(SECRET, request.headers, request.body, now=clock.now)
        assert request.headers[EVENT_ID_HEADER] == request.event["id"]
        assert request.headers[EVENT_TYPE_HEADER] == request.event["type"]
    recorded, opened = (r.event for r in got)
    assert recorded["data"]["decision_id"] == decision.id
    assert recorded["data"]["outcome"] == "route"
    assert recorded["data"]["required_role"] == "tier1"
    assert recorded["data"]["amount"] == {"amount": "80.00", "currency": "USD"}
    assert opened["data"] == {
        "approval_id": decision.id,
        "role": "tier1",
        "action": "refund",
        "amount": {"amount": "80.00", "currency": "USD"},
        "reason": None,
        "actor": {"id": "bot-1", "role": "ai_agent"},
        "customer_id": "c-1",
        "case_id": "case-1",
        "order_id": "o-1",
        "opened_at": NOW.isoformat().replace("+00:00", "Z"),
        # The shop pack's 24 h approval SLA, from the decision's own record.
        "due_at": (NOW + timedelta(hours=24)).isoformat().replace("+00:00", "Z"),
        "link": f"https://discretion.acme.test/ui/approvals/{decision.id}",
    }
    assert opened["ledger"]["hash"] == decision.lineage_hash
    assert opened["created_at"] == recorded["created_at"]
    # A body changed on the way fails the receiver's check.
    tampered = got[1].body.replace(b'"80.00"', b'"8000.00"')
    with pytest.raises(Exception, match="no v1 signature matches"):
        verify_signature(SECRET, got[1].headers, tampered, now=clock.now)


def test_a_500_then_a_200_is_retried_within_the_pass_without_sleeping(
    make_deliverer, guard, inbox, waits, store
):
    deliverer = make_deliverer(f"{A} events=decision.recorded")
    deliverer.enroll()
    guard.decide(refund("10.00"))
    inbox.statuses = [500, 503]
    [delivery] = deliverer.deliver()
    assert (delivery.sent, delivery.error) == (1, None)
    ids = [r.headers[EVENT_ID_HEADER.lower()] for r in inbox.got]
    assert len(ids) == 3
    assert len(set(ids)) == 1
    assert waits.seconds == [0.5, 1.0]  # exponential, injected: nothing slept
    assert deliverer.deliver()[0].sent == 0  # delivered once: nothing left
    assert len(inbox.got) == 3
    assert store.webhooks.get(deliverer.endpoints[0].id).delivered == 1


def test_a_refusal_is_kept_backs_off_and_is_sent_again_once_fixed(
    make_deliverer, guard, inbox, clock, store
):
    deliverer = make_deliverer(f"{A} events=decision.recorded")
    deliverer.enroll()
    decision = guard.decide(refund("10.00"))
    inbox.statuses = [401]
    [first] = deliverer.deliver()
    assert len(inbox.got) == 1  # a 4xx is not retried within the pass
    assert first.sent == 0
    assert "HTTP 401" in (first.error or "")
    assert first.next_attempt_at == NOW + timedelta(seconds=10)
    row = store.webhooks.get(deliverer.endpoints[0].id)
    assert (row.attempts, row.lease_owner) == (1, None)
    assert "HTTP 401" in (row.last_error or "")
    # Not due yet: the pass leaves it.
    assert deliverer.deliver()[0].claimed is False
    clock.advance(seconds=10)
    inbox.statuses = [500, 500, 500]
    [second] = deliverer.deliver()
    assert second.next_attempt_at == clock.now + timedelta(seconds=20)  # doubled
    clock.advance(seconds=20)
    [third] = deliverer.deliver()
    assert (third.sent, third.error) == (1, None)
    events = inbox.events()
    assert {e["data"]["decision_id"] for e in events} == {decision.id}
    assert len({e["id"] for e in events}) == 1
    row = store.webhooks.get(deliverer.endpoints[0].id)
    assert (row.attempts, row.last_error, row.next_attempt_at) == (0, None, None)


def test_a_crash_before_the_cursor_moves_sends_the_same_events_again(
    make_deliverer, guard, inbox, clock, store, monkeypatch
):
    first = make_deliverer(A, owner="worker-a")
    first.enroll()
    guard.decide(refund("80.00"))

    def crash(*args, **kwargs):
        raise Crash

    with monkeypatch.context() as patched:
        patched.setattr(store.webhooks, "advance", crash)
        with pytest.raises(Crash):
            first.deliver()
    before = [(e["id"], e["type"]) for e in inbox.events()]
    assert [t for _, t in before] == ["decision.recorded", "approval.opened"]
    second = make_deliverer(A, owner="worker-b")
    # The crashed worker's lease still holds: nobody else delivers yet.
    assert second.deliver()[0].claimed is False
    clock.advance(seconds=61)
    [delivery] = second.deliver()
    assert delivery.sent == 2
    after = [(e["id"], e["type"]) for e in inbox.events()[2:]]
    assert after == before  # the same ids: receivers deduplicate on them
    assert second.deliver()[0].sent == 0


def test_two_workers_never_deliver_to_one_endpoint_at_once(make_deliverer, guard, inbox, store):
    first = make_deliverer(A, owner="worker-a")
    second = make_deliverer(A, owner="worker-b")
    first.enroll()
    guard.decide(refund("80.00"))
    guard.decide(refund("10.00", key="k-2"))
    during: list[list[Delivery]] = []

    def meanwhile(_request):
        if not during:
            during.append(second.deliver())

    inbox.on_request = meanwhile
    [delivery] = first.deliver()
    [[meanwhile_delivery]] = during
    assert meanwhile_delivery.claimed is False
    assert meanwhile_delivery.sent == 0
    assert delivery.sent == 3
    ids = [e["id"] for e in inbox.events()]
    assert len(ids) == len(set(ids)) == 3
    # Released at the end of the pass: the other worker may take it now, and finds nothing.
    inbox.on_request = None
    assert second.deliver()[0].claimed is True
    assert len(inbox.got) == 3


def test_approval_opened_goes_only_to_the_endpoint_of_its_role(make_deliverer, make_guard, inbox):
    guard = make_guard(good_facts(**{"shipment.status": "lost"}))
    deliverer = make_deliverer(
        f"{A} events=approval.opened,approval.escalated roles=tier1 name=tier1-desk",
        f"{B} events=approval.opened,approval.escalated roles=tier2 name=tier2-desk",
    )
    deliverer.enroll()
    small = guard.decide(refund("80.00", reason="carrier-lost"))
    large = guard.decide(refund("125.00", key="k-2", reason="carrier-lost"))
    assert (small.required_role, large.required_role) == ("tier1", "tier2")
    deliverer.deliver()
    assert [e["data"]["approval_id"] for e in inbox.events(A)] == [small.id]
    assert [e["data"]["approval_id"] for e in inbox.events(B)] == [large.id]
    assert {e["data"]["role"] for e in inbox.events(B)} == {"tier2"}
    # An escalation brings the small case to tier2: now tier2's endpoint hears of it.
    guard.approvals.escalate(small.id, approver=TINA, note="needs a second look")
    deliverer.deliver()
    escalated = inbox.events(B)[-1]
    assert (escalated["type"], escalated["data"]["approval_id"]) == ("approval.escalated", small.id)
    assert escalated["data"]["role"] == "tier2"
    assert len(inbox.events(A)) == 1


def test_the_first_of_two_approvals_reaches_the_role_it_waits_on(
    make_deliverer, make_guard, inbox, tmp_path
):
    pack = shop_pack_with(
        tmp_path, "actions:\n  refund:\n", 'actions:\n  refund:\n    two_approvals_above: "60.00"\n'
    )
    guard = make_guard(policy=pack)
    deliverer = make_deliverer(f"{A} events=approval.endorsed roles=tier1 name=tier1-desk")
    deliverer.enroll()
    decision = guard.decide(refund("80.00"))
    guard.approvals.approve(decision.id, approver=TINA, note="receipt checked")
    deliverer.deliver()
    [endorsed] = inbox.events(A)
    assert endorsed["type"] == "approval.endorsed"
    data = endorsed["data"]
    assert (data["approval_id"], data["status"], data["role"]) == (decision.id, "pending", "tier1")
    assert data["by"] == {"id": "tina", "role": "tier1"}
    assert data["amount"] == {"amount": "80.00", "currency": "USD"}


def test_an_expiry_is_sent_as_approval_expired(make_deliverer, guard, inbox, clock, store):
    deliverer = make_deliverer(f"{A} events=approval.expired")
    deliverer.enroll()
    decision = guard.decide(refund("80.00"))
    deliverer.deliver()
    assert inbox.got == []
    clock.advance(hours=25)  # past the pack's 24 h approval SLA
    deliver_once(guard, deliverer)  # expires what is due, then delivers
    [expired] = inbox.events()
    assert expired["type"] == "approval.expired"
    data = expired["data"]
    assert (data["approval_id"], data["status"], data["by"]) == (
        decision.id,
        "expired",
        {"id": "system", "role": None},
    )
    assert data["role"] == "tier1"
    assert data["amount"] == {"amount": "80.00", "currency": "USD"}
    assert "due time" in data["note"]
    assert store.verify() > 0


def test_approving_and_running_the_call_are_sent_in_order(make_deliverer, guard, inbox):
    deliverer = make_deliverer(A)
    deliverer.enroll()
    decision = guard.decide(refund("80.00"))
    guard.approvals.approve(decision.id, approver=TOM, note="carrier confirmed")
    guard.approvals.register("issue_refund", lambda arguments, key: {"refund": "r-1"})
    guard.approvals.run_approved()
    deliverer.deliver()
    assert inbox.types() == [
        "decision.recorded",
        "approval.opened",
        "approval.approved",
        "execution.succeeded",
    ]
    approved, executed = inbox.events()[2:]
    assert approved["data"]["by"] == {"id": "tom", "role": "tier2"}
    assert approved["data"]["note"] == "carrier confirmed"
    assert executed["data"] == {
        "decision_id": decision.id,
        "key": decision.execution_key,
        "tool": "issue_refund",
        "status": "succeeded",
    }


def test_a_new_endpoint_starts_at_the_ledger_as_it_is(make_deliverer, guard, inbox):
    guard.decide(refund("80.00"))
    deliverer = make_deliverer(A)
    deliverer.deliver()  # enrolls: the decision before it is history, not news
    assert inbox.got == []
    later = guard.decide(refund("10.00", key="k-2"))
    deliverer.deliver()
    assert [e["data"]["decision_id"] for e in inbox.events()] == [later.id]


def test_records_without_events_move_the_cursor_in_one_write(make_deliverer, guard, inbox, store):
    deliverer = make_deliverer(f"{A} events=approval.rejected")
    deliverer.enroll()
    for n in range(3):
        guard.decide(refund("10.00", key=f"k-{n}"))
    deliverer.deliver()
    assert inbox.got == []
    with store.engine.connect() as connection:
        row = connection.execute(select(webhook_cursors)).one()
    assert sum(json.loads(row.positions)) == 3
    assert row.delivered == 0


def test_an_endpoint_without_its_secret_is_refused_before_anything_is_sent(store):
    endpoint = WebhookEndpoint.parse(f"{A} secret-env=ACME_HOOK_SECRET")
    with pytest.raises(ConfigurationError, match="ACME_HOOK_SECRET is not set"):
        Deliverer(store, [endpoint], environ={})
    with pytest.raises(ConfigurationError, match="shorter than 16"):
        Deliverer(store, [endpoint], environ={"ACME_HOOK_SECRET": "short"})


def test_an_edited_ledger_record_sends_nothing_and_stops_the_endpoint(
    make_deliverer, guard, inbox, store
):
    deliverer = make_deliverer(A)
    deliverer.enroll()
    decision = guard.decide(refund("80.00"))
    with store.engine.begin() as connection:
        body = connection.execute(
            select(ledger.c.body).where(ledger.c.subject_id == decision.id)
        ).scalar_one()
        connection.execute(
            update(ledger)
            .where(ledger.c.subject_id == decision.id)
            .values(body=body.replace('"tier1"', '"manager"'))
        )
    [delivery] = deliverer.deliver()
    assert inbox.got == []
    assert "was edited (its hash does not recompute)" in (delivery.error or "")
    assert store.webhooks.get(deliverer.endpoints[0].id).delivered == 0


def test_an_approval_carries_the_amount_granted_and_a_rejection_the_amount_asked(
    make_deliverer, guard, inbox
):
    deliverer = make_deliverer(f"{A} events=approval.approved,approval.rejected")
    deliverer.enroll()
    granted = guard.decide(refund("80.00"))
    refused = guard.decide(refund("90.00", key="k-2"))
    guard.approvals.approve(
        granted.id, approver=TOM, note="partial", amount=Money.of("60.00", "USD")
    )
    guard.approvals.reject(refused.id, approver=TOM, note="no")
    deliverer.deliver()
    amounts = {e["data"]["approval_id"]: e["data"]["amount"] for e in inbox.events()}
    assert amounts == {
        granted.id: {"amount": "60.00", "currency": "USD"},
        refused.id: {"amount": "90.00", "currency": "USD"},
    }


def test_a_body_is_compact_sorted_ascii_json_whatever_its_text(make_deliverer, guard, inbox):
    # The bytes signed and sent: keys sorted, no spaces, non-ASCII escaped. Unlike the ledger's
    # canonical JSON (UTF-8 kept), so a receiver comparing raw bodies sees them as they were.
    deliverer = make_deliverer(f"{A} events=approval.approved")
    deliverer.enroll()
    decision = guard.decide(refund("80.00"))
    guard.approvals.approve(decision.id, approver=TOM, note="approuvé — ok")
    deliverer.deliver()
    [received] = inbox.got
    assert received.event["data"]["note"] == "approuvé — ok"
    assert b'"note":"approuv\\u00e9 \\u2014 ok"' in received.body
    compact = json.dumps(received.event, sort_keys=True, separators=(",", ":"))
    assert received.body == compact.encode()


def test_each_record_is_checked_once_a_pass_for_all_its_endpoints(
    make_deliverer, guard, inbox, store, monkeypatch
):
    from discretion.lineage import LedgerRecord

    deliverer = make_deliverer(A, B, f"{A}/approvals events=approval.opened")
    deliverer.enroll()
    guard.decide(refund("80.00"))
    guard.decide(refund("10.00", key="k-2"))
    checked: list[int] = []
    real = LedgerRecord.intact

    def counted(record: LedgerRecord) -> bool:
        checked.append(record.seq)
        return real.fget(record)  # type: ignore[misc]

    monkeypatch.setattr(LedgerRecord, "intact", property(counted))
    deliveries = deliverer.deliver()
    assert [d.sent for d in deliveries] == [3, 3, 1]
    with store.engine.connect() as connection:
        records = connection.execute(select(func.count()).select_from(ledger)).scalar_one()
    assert len(checked) == records  # not once per endpoint


def test_a_record_edited_during_a_pass_is_caught_for_the_endpoints_after(
    make_deliverer, guard, inbox, store
):
    deliverer = make_deliverer(f"{A} events=decision.recorded", f"{B} events=decision.recorded")
    deliverer.enroll()
    decision = guard.decide(refund("80.00"))

    def edit(received):
        if received.url == A:
            with store.engine.begin() as connection:
                connection.execute(
                    update(ledger)
                    .where(ledger.c.subject_id == decision.id)
                    .values(body=ledger.c.body + " ")
                )

    inbox.on_request = edit
    first, second = deliverer.deliver()
    assert (first.sent, first.error) == (1, None)
    assert second.sent == 0
    assert "was edited (its hash does not recompute)" in (second.error or "")
    assert inbox.types(B) == []


def test_an_endpoint_whose_notice_cannot_be_built_does_not_stop_the_others(
    make_deliverer, guard, inbox, monkeypatch
):
    """One endpoint's unexpected fault (a mail notice that cannot be built) aborted the whole
    pass: no endpoint after it was served, on every pass after."""

    def unbuildable(*args, **kwargs):
        raise ValueError("Header values may not contain linefeed or carriage return characters")

    monkeypatch.setattr("discretion.webhooks._deliver.message_for", unbuildable)
    deliverer = make_deliverer(
        "smtp://127.0.0.1:1 to=desk@acme.test", f"{A} events=decision.recorded"
    )
    deliverer.enroll()
    decision = guard.decide(refund("80.00"))  # routed: the mail endpoint's event

    mail, hook = deliverer.deliver()

    assert (mail.sent, hook.sent) == (0, 1)
    assert "ValueError: Header values may not contain" in (mail.error or "")
    assert mail.next_attempt_at is not None
    assert [e["data"]["decision_id"] for e in inbox.events()] == [decision.id]
