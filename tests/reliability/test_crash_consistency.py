"""Kill decision processes with SIGKILL at arbitrary points; the rows must still add up.

Each round starts workers that decide proposals from one deterministic list in different
orders (so keys race), kills one of them after a varying number of decisions (mid-transaction,
mid-commit or between decisions: wherever it happens to be), and starts again until every
proposal is decided. Then every invariant is checked from the rows alone.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import random
import signal
from collections import defaultdict

import pytest
from _crash_worker import proposal, run
from sqlalchemy import func, select

from conftest import SHOP_PACK, good_facts
from discretion import load_pack
from discretion.store._schema import decisions, ledger, reservations

TOTAL = 1200
ROUNDS = 12


def test_sigkill_at_random_points_loses_nothing_and_breaks_nothing(store):
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("SIGKILL is POSIX only")
    pack = load_pack(SHOP_PACK)
    facts = good_facts(**{"shipment.status": "lost"})
    url = store.engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    rng = random.Random(20261126)
    decided: set[int] = set()
    kills = 0
    # ROUNDS rounds end with every worker killed wherever it is; a last round finishes the rest.
    for round_no in range(ROUNDS + 1):
        remaining = [n for n in range(TOTAL) if n not in decided]
        if not remaining:
            break
        progress = context.Queue()
        orders = [remaining, list(reversed(remaining)), rng.sample(remaining, len(remaining))]
        workers = [
            context.Process(target=run, args=(str(SHOP_PACK), url, facts, order, progress))
            for order in orders
        ]
        for worker in workers:
            worker.start()
        kill_after = rng.randrange(10, 150) if round_no < ROUNDS else None
        seen = finished = 0
        while finished < len(workers):
            try:
                item = progress.get(timeout=120)
            except queue.Empty:
                pytest.fail("a worker stopped reporting for two minutes")
            if item is None:
                finished += 1
                continue
            decided.add(item)
            seen += 1
            if seen == kill_after:
                for worker in workers:
                    if worker.is_alive():
                        os.kill(worker.pid, signal.SIGKILL)
                        kills += 1
                break
        for worker in workers:
            worker.join(timeout=60)
        progress.close()
    assert kills >= ROUNDS
    assert decided == set(range(TOTAL))

    with store.engine.connect() as connection:
        rows = connection.execute(select(decisions)).all()
        held = connection.execute(select(reservations)).all()
        ledger_subjects = connection.execute(
            select(ledger.c.subject_id).where(ledger.c.kind == "decision")
        ).scalars()
        ledger_ids = list(ledger_subjects)
        dangling = connection.execute(
            select(func.count())
            .select_from(reservations)
            .outerjoin(decisions, decisions.c.id == reservations.c.decision_id)
            .where(decisions.c.id.is_(None))
        ).scalar_one()

    by_id = {row.id: row for row in rows}
    # Every decision reported as decided is on record, under its own key and proposal.
    assert {f"crash-{n}" for n in decided} <= {row.idempotency_key for row in rows}
    # Exactly once: one decision per key, one lineage record per decision.
    assert len(rows) == len({row.idempotency_key for row in rows})
    assert sorted(ledger_ids) == sorted(by_id)
    # Every reservation belongs to a recorded decision, and each decision holds exactly the
    # reservations it records.
    assert dangling == 0
    held_by: dict[str, set[tuple[str, str, int]]] = defaultdict(set)
    for row in held:
        held_by[row.decision_id].add((row.budget_id, row.budget_key, row.amount_minor))
    for row in rows:
        body = json.loads(row.body)
        expected = {
            (r["budget"], r["key"], round(float(r["amount"]["amount"]) * 100))
            for r in body["reservations"]
        }
        assert held_by.get(row.id, set()) == expected, row.id
        # The recorded proposal is the one the key stands for.
        n = int(row.idempotency_key.removeprefix("crash-"))
        assert row.amount_minor == round(float(proposal(n)["tool"]["arguments"]["amount"]) * 100)
    # Budgets held: no customer's exceptions exceed its 30-day limit.
    limit = next(b for b in pack.budgets if b.id == "customer-exceptions-30d").limit_minor
    used: dict[str, int] = defaultdict(int)
    for row in held:
        if row.budget_id == "customer-exceptions-30d":
            used[row.budget_key] += row.amount_minor
    assert used
    assert max(used.values()) <= limit
    # And the chain verifies end to end.
    assert store.verify() == len(ledger_ids) + _other_records(store)


def _other_records(store) -> int:
    with store.engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(ledger).where(ledger.c.kind != "decision")
        ).scalar_one()
