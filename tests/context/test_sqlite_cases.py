"""The shipped SQLite case store: exposure sums stay within one currency."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from discretion.context import ContextRequest, SqliteCaseStore
from discretion.errors import ContextError
from discretion.money import Money

ACME_CASES = Path(__file__).resolve().parents[2] / "examples" / "acme" / "cases.sql"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def cases(tmp_path: Path, *extra: str) -> SqliteCaseStore:
    script = tmp_path / "cases.sql"
    script.write_text(ACME_CASES.read_text(encoding="utf-8") + "\n".join(extra), encoding="utf-8")
    return SqliteCaseStore.from_sql(script)


def exposure(store: SqliteCaseStore, *names: str) -> dict[str, object]:
    request = ContextRequest(
        fields=names,
        action="refund",
        customer_id="C-1036",
        case_id=None,
        order_id=None,
        now=NOW,
        currency="USD",
    )
    return dict(store.fetch(request))


def test_a_customers_payouts_in_one_currency_are_summed(tmp_path):
    facts = exposure(cases(tmp_path), "exposure.refund_90d", "exposure.refund_count_90d")
    assert facts["exposure.refund_90d"] == Money.of("35.70", "USD")
    assert facts["exposure.refund_count_90d"] == 1


def test_payouts_in_two_currencies_are_never_added(tmp_path):
    store = cases(
        tmp_path,
        "INSERT INTO payouts (id, customer_id, case_id, action, amount_minor, currency, at)"
        " VALUES ('P-EUR', 'C-1036', NULL, 'refund', 9000, 'EUR', '2026-11-20T10:00:00+00:00');",
    )
    # Counting them is still exact.
    assert exposure(store, "exposure.refund_count_90d") == {"exposure.refund_count_90d": 2}
    with pytest.raises(ContextError, match="in EUR and USD; amounts in different currencies") as e:
        exposure(store, "exposure.refund_90d")
    assert e.value.field == "exposure.refund_90d"
