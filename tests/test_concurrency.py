from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from sqlalchemy import func, select

from _workers import decide_many
from conftest import NOW, SHOP_PACK, FakeClock, good_facts, refund
from discretion import Guard, SqlStore, load_pack
from discretion.context import StaticContextProvider
from discretion.store._schema import decisions, reservations


def test_two_processes_never_exceed_a_customer_budget(store):
    facts = good_facts(**{"shipment.status": "lost", "customer.fraud_flag": False})
    url = store.engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        runs = [pool.submit(decide_many, str(SHOP_PACK), url, w, 24, facts) for w in (1, 2)]
        outcomes = [o for run in runs for o in run.result(timeout=120)]
    assert len(outcomes) == 48
    with store.engine.connect() as connection:
        reserved = connection.execute(
            select(func.coalesce(func.sum(reservations.c.amount_minor), 0)).where(
                reservations.c.budget_id == "customer-exceptions-30d",
                reservations.c.budget_key == "c-1",
            )
        ).scalar_one()
        granted = connection.execute(
            select(func.count()).where(decisions.c.outcome == "allow_exception")
        ).scalar_one()
        recorded = connection.execute(select(func.count()).select_from(decisions)).scalar_one()
    # 150.00 per customer: seven 20.00 exceptions fit, the eighth would not.
    assert reserved == 14000
    assert granted == 7
    # 24 keys per worker, 12 of them shared: 36 distinct decisions.
    assert recorded == 36
    assert store.verify() == 36


def test_threads_sharing_an_in_memory_store_never_exceed_a_customer_budget():
    # The in-memory database is one connection every thread shares: each takes its turn, so no
    # read sees another's decision before its commit and no two transactions interleave.
    facts = good_facts(**{"shipment.status": "lost", "customer.fraud_flag": False})
    store = SqlStore("sqlite://")
    guard = Guard(
        load_pack(SHOP_PACK),
        store=store,
        context=StaticContextProvider(facts),
        clock=FakeClock(NOW),
    )
    start = threading.Barrier(12)

    def decide(n: int) -> str:
        start.wait()
        return guard.decide(refund("20.00", reason="carrier-lost", key=f"k-{n}")).outcome.value

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(decide, range(12)))

    # 150.00 per customer: seven 20.00 exceptions fit, the eighth would not.
    assert outcomes.count("allow_exception") == 7
    assert store.verify() == 12
    with store.engine.connect() as connection:
        reserved = connection.execute(
            select(func.coalesce(func.sum(reservations.c.amount_minor), 0)).where(
                reservations.c.budget_id == "customer-exceptions-30d"
            )
        ).scalar_one()
    assert reserved == 14000
