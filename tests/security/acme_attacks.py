"""The acme example as the security review attacked it: its pack, its case data, its actors.

Every attack in `test_attacks.py` runs against the shipped pack (`examples/acme/pack`) and case
database (`examples/acme/cases.sql`), on the example's fixed clock. Facts worth knowing:

- A-50003: C-1003's earbuds, 64.99 paid (no shipping), delivered Nov 16, case K-70003.
- A-50007: C-1007's espresso machine, 649.00, delivered Nov 12, case K-70007.
- A-50018: C-1018's TV, 899.00 + 49.00 shipping, lost by the carrier, case K-70018.
- A-50025: C-1025's speaker (a standard-tier customer), delivered Sep 20, case K-70025.
- A-50031: C-1031's smartwatch; C-1031 is on a fraud hold; case K-70031.
- C-1001 and C-1002 are platinum customers of many years.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from conftest import FakeClock
from discretion import Decision, Guard, Outcome, SqlStore, load_pack
from discretion.context import SqliteCaseStore
from discretion.policy import PolicyPack

ACME = Path(__file__).resolve().parents[2] / "examples" / "acme"
ACME_PACK = ACME / "pack"
ACME_CASES = ACME / "cases.sql"

BOT = {"id": "acme-assist", "role": "ai_agent", "is_ai": True}
OTHER_BOT = {"id": "acme-assist-2", "role": "ai_agent", "is_ai": True}
TOM = {"id": "tom", "role": "tier2", "is_ai": False}

ALLOWED = (Outcome.ALLOW, Outcome.ALLOW_EXCEPTION)
T = TypeVar("T")


def acme_guard(store: SqlStore, *, pack: PolicyPack | None = None, **kwargs: Any) -> Guard:
    """A guard on the acme pack and case data, at the example's clock (2026-11-26T12:00Z)."""
    kwargs.setdefault("clock", FakeClock())
    return Guard(
        pack or load_pack(ACME_PACK),
        store=store,
        context=SqliteCaseStore.from_sql(ACME_CASES),
        **kwargs,
    )


def acme_pack_with(folder: Path, file: str, old: str, new: str) -> PolicyPack:
    """A copy of the acme pack with one exact piece of one of its files replaced."""
    copy = folder / "acme-pack"
    shutil.copytree(ACME_PACK, copy)
    path = copy / file
    source = path.read_text(encoding="utf-8")
    assert source.count(old) == 1, old
    path.write_text(source.replace(old, new), encoding="utf-8")
    return load_pack(copy)


def refund(
    *,
    order: Any,
    customer: Any,
    case: Any,
    amount: Any,
    key: str,
    actor: dict[str, Any] = BOT,
    reason: str | None = None,
    claims: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An `issue_refund` tool call as the acme agent proposes it (proposals/01-*.json)."""
    return {
        "actor": actor,
        "tool": {
            "name": "issue_refund",
            "arguments": {
                "order_id": order,
                "customer_id": customer,
                "case_id": case,
                "amount": amount,
                "currency": "USD",
                **extra,
            },
        },
        "rationale": {"reason": reason, "text": "customer asked", "claims": claims or []},
        "idempotency_key": key,
    }


def allowed_total(decisions: Iterable[Decision]) -> Decimal:
    """The money the decisions let move without a person."""
    return sum(
        (d.amount.amount for d in decisions if d.outcome in ALLOWED and d.amount is not None),
        Decimal(0),
    )


def outcomes(decisions: Iterable[Decision]) -> list[str]:
    return [f"{d.outcome.value} {d.amount.amount if d.amount else ''}" for d in decisions]


def all_at_once(calls: list[Callable[[], T]]) -> list[T]:
    """Run the calls on their own threads, released together by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))
