"""What a pack says about judging: evidence per reason, judge bands, and the judge's settings."""

from __future__ import annotations

import pytest

from discretion import Outcome, PolicyError, load_pack

from .helpers import JUDGED_PACK, lost_facts, lost_refund


def variant(folder, old, new):
    source = JUDGED_PACK.read_text(encoding="utf-8")
    assert source.count(old) == 1, old
    path = folder / "judged-variant.yaml"
    path.write_text(source.replace(old, new), encoding="utf-8")
    return path


def line_of(path, text):
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_bands_evidence_and_inheritance_compile(pack):
    refund = pack.actions["refund"]
    lost = refund.reason("carrier-lost")
    goodwill = refund.reason("outage-goodwill")
    assert lost is not None
    assert goodwill is not None
    assert lost.evidence is not None
    assert lost.evidence.claims == ("shipment.status",)
    assert lost.evidence.min_text == 30
    assert [name for name, _ in lost.evidence.text_patterns] == ["tracking number"]
    assert lost.judge is not None
    assert (lost.judge.min_minor, lost.judge.max_minor) == (1000, None)
    assert lost.judge.clause.startswith("A refund of the goods and the shipping fee")
    # `judge: false` opts a reason out of the action's band.
    assert goodwill.judge is None
    assert pack.judge.daily_calls is None
    assert pack.judge.without_model == "route"


def test_a_reason_without_a_band_inherits_the_actions(tmp_path):
    path = variant(tmp_path, "        judge: false\n", "")
    goodwill = load_pack(path).actions["refund"].reason("outage-goodwill")
    assert goodwill is not None
    assert goodwill.judge is not None
    assert goodwill.judge.min_minor == 1000
    # Its clause is the reason's own description.
    assert goodwill.judge.clause == "Goodwill for an outage in the customer's region."


def test_judge_true_reviews_every_amount_up_to_a_max(tmp_path):
    path = variant(tmp_path, "        judge: false\n", '        judge: {max_amount: "50.00"}\n')
    band = load_pack(path).actions["refund"].reason("outage-goodwill").judge
    assert band is not None
    assert (band.covers(0), band.covers(5000), band.covers(5001)) == (True, True, False)


def test_an_evidence_claim_the_action_does_not_read_names_file_line_and_rule(tmp_path):
    path = variant(
        tmp_path, "claims: [shipment.status]", "claims: [shipment.status, customer.tier]"
    )
    with pytest.raises(PolicyError) as caught:
        load_pack(path)
    err = caught.value
    assert err.rule_id == "carrier-lost"
    assert err.path == str(path)
    assert err.line == line_of(path, "claims: [shipment.status, customer.tier]")
    assert "evidence claim 'customer.tier' is not a field the action reads" in str(err)


def test_a_bad_text_pattern_names_its_line(tmp_path):
    path = variant(tmp_path, "'\\b1Z[0-9A-Z]{16}\\b'", "'1Z[0-9'")
    with pytest.raises(PolicyError, match="'tracking number': '1Z\\[0-9' is not a valid") as caught:
        load_pack(path)
    assert caught.value.line == line_of(path, "tracking number:")
    assert caught.value.rule_id == "carrier-lost"


def test_a_band_that_holds_no_amount_is_an_error(tmp_path):
    path = variant(
        tmp_path,
        '          min_amount: "10.00"\n',
        '          min_amount: "10.00"\n          max_amount: "5.00"\n',
    )
    with pytest.raises(PolicyError, match=r"judge max_amount 5\.00 is below min_amount 10\.00"):
        load_pack(path)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "min_text: 30",
            "min_txt: 30",
            r"min_txt: unknown key 'min_txt' \(did you mean 'min_text'\?\)",
        ),
        (
            "pack: test-shop-judged\n",
            "pack: t\njudge: {daily_calls: 0}\n",
            "greater than or equal to 1",
        ),
        (
            "pack: test-shop-judged\n",
            "pack: t\njudge: {without_model: allow}\n",
            "judge.without_model: 'allow' is not one of route, skip",
        ),
    ],
)
def test_judging_settings_are_validated(tmp_path, old, new, message):
    with pytest.raises(PolicyError, match=message):
        load_pack(variant(tmp_path, old, new))


def test_without_a_judge_the_pack_routes_what_it_asks_to_be_judged(make_guard):
    decision = make_guard(lost_facts()).decide(lost_refund("15.00"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.required_role == "tier1"
    assert decision.rules[-1] == "discretion.judge.unavailable"
    assert "pass Guard(judge=OpenAIJudge(...))" in decision.causes[0]
    assert decision.judge is not None
    assert decision.judge.llm == "unconfigured"


def test_without_model_skip_lets_the_grounded_judge_serve_alone(make_guard, tmp_path):
    skip = load_pack(
        variant(tmp_path, "pack: test-shop-judged\n", "pack: t\njudge: {without_model: skip}\n")
    )
    decision = make_guard(lost_facts(), policy=skip).decide(lost_refund("15.00"))
    assert decision.outcome is Outcome.ALLOW_EXCEPTION
    assert decision.judge is not None
    assert decision.judge.llm == "unconfigured"
    assert decision.judge.claims[0].rule == "discretion.claim.grounded"
