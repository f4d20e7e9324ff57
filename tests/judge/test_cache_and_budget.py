"""Economy: verdicts are cached by question, and the judge's calls per day are capped."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import select, update

from conftest import Counter, shop_pack_with
from discretion import Outcome, load_pack
from discretion.errors import LedgerIntegrityError
from discretion.store._schema import judge_calls, judge_verdicts

from .helpers import COMPLETIONS, JUDGED_PACK, completion, lost_facts, lost_refund, verdict


def judged_pack_with(folder, old, new):
    source = JUDGED_PACK.read_text(encoding="utf-8")
    assert source.count(old) == 1, old
    path = folder / "judged-variant.yaml"
    path.write_text(source.replace(old, new), encoding="utf-8")
    return load_pack(path)


def test_second_identical_proposal_uses_the_cache_and_makes_no_call(
    make_guard, make_judge, judge_http, store
):
    route = judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(200, json=completion(verdict(True)))
    )
    guard = make_guard(lost_facts(), judge=make_judge())
    first = guard.decide(lost_refund("15.00", key="k-1"))
    second = guard.decide(lost_refund("15.00", key="k-2"))

    assert route.call_count == 1
    assert first.outcome is second.outcome is Outcome.ALLOW_EXCEPTION
    assert first.id != second.id
    assert first.judge is not None
    assert second.judge is not None
    assert first.judge.cached is False
    assert second.judge.cached is True
    assert second.judge.verdict == first.judge.verdict
    assert second.judge.prompt_hash == first.judge.prompt_hash
    # A cached verdict cost nothing this time.
    assert (second.judge.prompt_tokens, second.judge.latency_ms) == (None, None)
    with store.engine.connect() as connection:
        rows = connection.execute(select(judge_verdicts.c.model)).all()
    assert [row.model for row in rows] == ["judge-model-1"]
    # Two decisions and the `judge.verdict` record binding the cached verdict.
    assert store.verify() == 3
    assert [entry.kind for entry in store.history(verdict_key_of(store))] == ["judge.verdict"]


def verdict_key_of(store) -> str:
    with store.engine.connect() as connection:
        return str(connection.execute(select(judge_verdicts.c.key)).scalar_one())


def test_a_cached_verdict_edited_behind_discretions_back_is_never_used(
    make_guard, make_judge, judge_http, store
):
    judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(200, json=completion(verdict(False)))
    )
    guard = make_guard(lost_facts(), judge=make_judge())
    first = guard.decide(lost_refund("15.00", key="k-1"))
    assert first.outcome is Outcome.ROUTE
    # A database writer turns the cached "unjustified" into "justified".
    with store.engine.begin() as connection:
        text = connection.execute(select(judge_verdicts.c.assessment)).scalar_one()
        forged = text.replace('"justified":false', '"justified":true')
        assert forged != text
        connection.execute(update(judge_verdicts).values(assessment=forged))
    with pytest.raises(LedgerIntegrityError, match="judge_verdicts row"):
        guard.decide(lost_refund("15.00", key="k-2"))
    with pytest.raises(LedgerIntegrityError, match="judge_verdicts"):
        store.verify()


def test_an_unjustified_verdict_is_cached_too(make_guard, make_judge, judge_http):
    route = judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(200, json=completion(verdict(False)))
    )
    guard = make_guard(lost_facts(), judge=make_judge())
    decisions = [guard.decide(lost_refund("15.00", key=f"k-{n}")) for n in range(3)]
    assert [d.outcome for d in decisions] == [Outcome.ROUTE] * 3
    assert route.call_count == 1


def test_the_cache_misses_when_the_facts_or_proposal_change(make_guard, make_judge, judge_http):
    route = judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(200, json=completion(verdict(True)))
    )
    judge = make_judge()
    make_guard(lost_facts(), judge=judge).decide(lost_refund("15.00", key="k-1"))
    make_guard(lost_facts(**{"customer.orders": 8}), judge=judge, ids=Counter("b")).decide(
        lost_refund("15.00", key="k-2")
    )
    make_guard(lost_facts(), judge=judge, ids=Counter("c")).decide(lost_refund("16.00", key="k-3"))
    assert route.call_count == 3


def test_the_cache_is_shared_by_guards_on_the_same_store(make_guard, make_judge, judge_http):
    route = judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(200, json=completion(verdict(True)))
    )
    make_guard(lost_facts(), judge=make_judge()).decide(lost_refund("15.00", key="k-1"))
    other = make_guard(lost_facts(), judge=make_judge(), ids=Counter("b")).decide(
        lost_refund("15.00", key="k-2")
    )
    assert route.call_count == 1
    assert other.judge is not None
    assert other.judge.cached


def test_failed_calls_are_not_cached(make_guard, make_judge, judge_http):
    route = judge_http.post(COMPLETIONS).mock(
        side_effect=[
            httpx.Response(503, json={"error": {"message": "busy"}}),
            httpx.Response(200, json=completion(verdict(True))),
        ]
    )
    guard = make_guard(lost_facts(), judge=make_judge(max_attempts=1))
    first = guard.decide(lost_refund("15.00", key="k-1"))
    second = guard.decide(lost_refund("15.00", key="k-2"))
    assert (first.outcome, second.outcome) == (Outcome.ROUTE, Outcome.ALLOW_EXCEPTION)
    assert route.call_count == 2


def test_the_daily_call_budget_routes_when_spent_and_renews_the_next_day(
    make_guard, make_judge, judge_http, clock, tmp_path, store
):
    budgeted = judged_pack_with(
        tmp_path, "pack: test-shop-judged\n", "pack: t\njudge: {daily_calls: 2}\n"
    )
    route = judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(200, json=completion(verdict(True)))
    )
    guard = make_guard(lost_facts(), judge=make_judge(), policy=budgeted)
    spent = [guard.decide(lost_refund(f"1{n}.00", key=f"k-{n}")) for n in range(3)]

    assert [d.outcome for d in spent] == [
        Outcome.ALLOW_EXCEPTION,
        Outcome.ALLOW_EXCEPTION,
        Outcome.ROUTE,
    ]
    assert route.call_count == 2
    assert spent[2].rules[-1] == "discretion.judge.budget-spent"
    assert spent[2].required_role == "tier1"
    assert spent[2].judge is not None
    assert spent[2].judge.llm == "budget_spent"
    assert "calls for 2026-11-26 (UTC) are used up" in spent[2].causes[0]
    # A cached question needs no call, so the spent budget does not stop it.
    again = guard.decide(lost_refund("10.00", key="k-again"))
    assert again.outcome is Outcome.ALLOW_EXCEPTION
    assert again.judge is not None
    assert again.judge.cached

    clock.advance(days=1)
    renewed = guard.decide(lost_refund("13.00", key="k-next-day"))
    assert renewed.outcome is Outcome.ALLOW_EXCEPTION
    assert route.call_count == 3
    with store.engine.connect() as connection:
        days = dict(connection.execute(select(judge_calls.c.day, judge_calls.c.calls)).all())
    assert days == {"2026-11-26": 2, "2026-11-27": 1}


def test_the_daily_call_budget_is_shared_by_guards_on_the_same_store(
    make_guard, make_judge, judge_http, tmp_path
):
    budgeted = judged_pack_with(
        tmp_path, "pack: test-shop-judged\n", "pack: t\njudge: {daily_calls: 1}\n"
    )
    judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(200, json=completion(verdict(True)))
    )
    first = make_guard(lost_facts(), judge=make_judge(), policy=budgeted)
    second = make_guard(lost_facts(), judge=make_judge(), policy=budgeted, ids=Counter("b"))
    assert first.decide(lost_refund("11.00", key="k-1")).outcome is Outcome.ALLOW_EXCEPTION
    other = second.decide(lost_refund("12.00", key="k-2"))
    assert other.outcome is Outcome.ROUTE
    assert other.rules[-1] == "discretion.judge.budget-spent"


def test_the_shop_pack_without_judge_settings_still_loads(tmp_path):
    # The judge settings are optional: a pack that never mentions them has no judge bands.
    pack = shop_pack_with(tmp_path, "pack: test-shop\n", "pack: test-shop-plain\n")
    assert pack.judge.daily_calls is None
    assert all(r.judge is None and r.evidence is None for r in pack.actions["refund"].exceptions)


def test_concurrent_callers_never_take_more_than_the_daily_calls(store):
    # Many guards (threads here, processes in production) share one counter row per day.
    with ThreadPoolExecutor(max_workers=6) as pool:
        taken = list(pool.map(lambda _: store.verdicts.take_call("2026-11-26", 7), range(24)))
    assert taken.count(True) == 7
    with store.engine.connect() as connection:
        used = connection.execute(select(judge_calls.c.calls)).scalar_one()
    assert used == 7
