"""A zero amount is sent back as a negative one is: some payment APIs read 0 as "in full", and
no written policy grants nothing."""

from __future__ import annotations

import pytest

from discretion import SqlStore
from discretion.errors import ProposalError

from .acme_attacks import ALLOWED, TOM, acme_guard, refund

A_50003 = {"order": "A-50003", "customer": "C-1003", "case": "K-70003"}
A_50031 = {"order": "A-50031", "customer": "C-1031", "case": "K-70031"}


@pytest.mark.parametrize("amount", ["0.00", "0", 0, 0.0, "0.000"])
def test_a_zero_refund_is_refused_naming_the_amount_and_nothing_is_recorded(
    store: SqlStore, amount: object
) -> None:
    guard = acme_guard(store)
    # 0.01 on the same order is allowed: only the zero is sent back.
    assert guard.decide(refund(**A_50003, amount="0.01", key="cent")).outcome in ALLOWED
    with pytest.raises(ProposalError, match="is zero, and action 'refund' moves money") as e:
        guard.decide(refund(**A_50003, amount=amount, key="zero"))
    assert e.value.field == "amount"
    assert store.count() == 1


@pytest.mark.parametrize(
    ("ids", "actor"), [(A_50031, None), (A_50003, TOM)], ids=["fraud-hold", "a-person"]
)
def test_a_zero_is_refused_whoever_proposes_it_and_whatever_the_rules(
    store: SqlStore, ids: dict[str, str], actor: dict[str, object] | None
) -> None:
    extra = {"actor": actor} if actor is not None else {}
    with pytest.raises(ProposalError, match="is zero"):
        acme_guard(store).decide(refund(**ids, amount="0.00", key="zero", **extra))
    assert store.count() == 0
