"""Load-time errors of packs in several currencies, each naming the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from discretion import PolicyError, load_pack

HERE = Path(__file__).resolve().parent.parent
PER_CURRENCY = (HERE / "packs" / "currencies.yaml").read_text(encoding="utf-8")
RATED = (HERE / "packs" / "rated.yaml").read_text(encoding="utf-8")
AI_STANDARD = 'standard: {USD: "100.00", EUR: "90.00", JPY: "13000"}'


def load_error(tmp_path: Path, text: str) -> tuple[PolicyError, Path]:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_pack(path)
    return caught.value, path


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def mutate(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_a_map_missing_a_declared_currency_is_an_error(tmp_path):
    text = mutate(PER_CURRENCY, AI_STANDARD, 'standard: {USD: "100.00", EUR: "90.00"}')

    error, path = load_error(tmp_path, text)

    assert str(error) == (
        f"{path}:{line_of(text, 'standard: {USD')}: role 'ai_agent' standard: no amount for"
        " JPY; every amount covers each currency the pack declares (USD, EUR, JPY)"
    )


def test_one_amount_in_a_pack_of_several_currencies_names_them(tmp_path):
    text = mutate(PER_CURRENCY, AI_STANDARD, 'standard: "100.00"')

    error, _path = load_error(tmp_path, text)

    assert error.line == line_of(text, 'standard: "100.00"')
    assert "'100.00' is one amount, but the pack declares currencies USD, EUR, JPY" in str(error)


def test_an_amount_with_more_places_than_its_currency_is_an_error(tmp_path):
    text = mutate(
        PER_CURRENCY,
        'limit: {USD: "150.00", EUR: "140.00", JPY: "20000"}',
        'limit: {USD: "150.00", EUR: "140.00", JPY: "20000.5"}',
    )

    error, path = load_error(tmp_path, text)

    assert error.path == str(path)
    assert error.line == line_of(text, 'JPY: "20000.5"')
    assert "limit: amount: 20000.5 has more decimal places than JPY allows (0)" in str(error)


def test_a_map_naming_an_undeclared_currency_is_an_error(tmp_path):
    text = mutate(
        PER_CURRENCY,
        'unlocks: {max_amount: {USD: "30.00", EUR: "25.00", JPY: "4000"}}',
        'unlocks: {max_amount: {USD: "30.00", EUR: "25.00", JPY: "4000", GBP: "20.00"}}',
    )

    error, _ = load_error(tmp_path, text)

    assert error.line == line_of(text, "GBP")
    assert "'GBP' is not a currency the pack declares (USD, EUR, JPY)" in str(error)


def test_an_unknown_currency_code_is_an_error(tmp_path):
    text = mutate(PER_CURRENCY, "currencies: [USD, EUR, JPY]", "currencies: [USD, EUR, XYZ]")

    error, path = load_error(tmp_path, text)

    assert str(error) == (
        f"{path}:{line_of(text, 'currencies:')}: currency 'XYZ' is not a supported ISO 4217 code"
    )


def test_currency_and_currencies_together_is_an_error(tmp_path):
    text = mutate(PER_CURRENCY, "currencies: [USD, EUR, JPY]", "currency: USD\ncurrencies: [USD]")

    error, _ = load_error(tmp_path, text)

    assert error.line == line_of(text, "currencies:")
    assert "currency and currencies are both given" in str(error)


def test_a_tool_without_a_currency_argument_is_an_error(tmp_path):
    text = mutate(
        PER_CURRENCY,
        "      - name: issue_credit\n        amount: amount\n        currency: currency\n",
        "      - name: issue_credit\n        amount: amount\n",
    )

    error, _ = load_error(tmp_path, text)

    assert error.line == line_of(text, "- name: issue_credit")
    assert "tool 'issue_credit' maps an amount but no currency" in str(error)


def test_a_pack_with_rates_states_amounts_once(tmp_path):
    text = mutate(RATED, 'refund: {standard: "300.00"}', 'refund: {standard: {USD: "300.00"}}')

    error, _ = load_error(tmp_path, text)

    assert error.line == line_of(text, 'standard: {USD: "300.00"}')
    assert "converts at rates to USD, so its amounts are stated once" in str(error)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "fx.rate_to_usd: {type: decimal, places: 6}",
            "fx.rate_to_usd: int",
            "rates fact 'fx.rate_to_usd' must be a context field of type decimal",
        ),
        (
            "base: USD}",
            "base: GBP}",
            "rates base 'GBP' is not one of the pack's currencies (USD, EUR, JPY)",
        ),
    ],
)
def test_a_rate_fact_or_base_that_does_not_fit_is_an_error(tmp_path, old, new, message):
    text = mutate(RATED, old, new)

    error, _ = load_error(tmp_path, text)

    assert error.line == line_of(text, "rates:")
    assert message in str(error)


def test_a_single_currency_pack_keeps_one_amount_per_limit(tmp_path):
    text = mutate(
        RATED,
        "currencies: [USD, EUR, JPY]\nrates: {fact: fx.rate_to_usd, base: USD}",
        "currency: USD",
    )

    pack = load_pack_text(tmp_path, text)

    assert pack.accepts == ("USD",)
    assert pack.in_currency("USD") is pack
    assert pack.roles[0].authority["refund"].standard_minor == 10000


def load_pack_text(tmp_path: Path, text: str):
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    return load_pack(path)
