"""Step 3, continued: a pack in several currencies, decided in the proposal's.

A pack that states its amounts per currency is decided on its view in the proposal's currency
from the start (`normalise`). A pack with `rates` states them once, in its base: once the facts
are assembled, the rate they hold converts every limit to the proposal's currency, rounded
down (the same as rounding the converted amount up), and the rate stays in the snapshot, so
the lineage shows what the amount was measured at. Without a usable rate the case routes.

Running totals and budgets are kept per currency: minor units of two currencies are never
added. A record with amounts in another currency inside a total's window cannot be measured in
this one, so the case routes rather than leave the other amounts out.
"""

from __future__ import annotations

from decimal import Decimal

from discretion.context import Snapshot
from discretion.decision import Outcome
from discretion.pipeline._ledger import LedgerFacts
from discretion.pipeline._normalise import Normalised
from discretion.pipeline._state import Evaluation
from discretion.policy import PolicyPack

__all__ = ["CURRENCY_MISMATCH", "CURRENCY_RATE", "at_rate", "mixed_currencies"]

CURRENCY_RATE = "discretion.currency-rate"
"""The rule id of a case routed because the rate to the pack's base cannot be used."""

CURRENCY_MISMATCH = "discretion.currency-mismatch"
"""The rule id of a case routed because a total it reads holds amounts in another currency."""


def at_rate(pack: PolicyPack, item: Normalised, snapshot: Snapshot) -> Normalised | Evaluation:
    """`item` priced at the rate its facts hold; a route when the rate cannot be used.

    `pack` is the pipeline's own (amounts in the base currency of its `rates`).
    """
    rates = pack.rates
    if rates is None or item.amount is None or item.amount.currency in pack.units:
        # A unit is never converted: its view was chosen when the proposal was read.
        return item
    currency = item.amount.currency
    rate = snapshot.values.get(rates.fact)
    if currency == rates.base:
        if rate is None or rate == 1:
            return item
        cause = (
            f"{rates.fact} is {rate} for a proposal in {rates.base}, the pack's base; the rate"
            " of the base to itself is 1, so the facts are not to be trusted"
        )
    elif rates.currency is not None and (of := snapshot.values.get(rates.currency)) != currency:
        cause = (
            f"{rates.fact} is the rate of {of if of is not None else 'no currency'}"
            f" ({rates.currency}), not of {currency}, the proposal's currency: the amount"
            f" cannot be measured against limits stated in {rates.base}"
        )
    elif isinstance(rate, Decimal) and rate.is_finite() and rate > 0:
        return item.priced(pack.in_currency(currency, rate))
    else:
        shown = "missing" if rate is None else str(rate)
        cause = (
            f"no usable rate of {currency} to {rates.base}: {rates.fact} is {shown}, so the"
            f" amount cannot be measured against limits stated in {rates.base}"
        )
    return Evaluation(
        outcome=Outcome.ROUTE,
        rules=[CURRENCY_RATE],
        # No limit is known in this currency: the top human rung over the action decides.
        required_role=pack.top_for(item.action_name),
        causes=[cause],
    )


def mixed_currencies(item: Normalised, ledger: LedgerFacts) -> Evaluation:
    """A route: a total `action` reads holds amounts in a currency other than the proposal's."""
    currency = item.amount.currency if item.amount is not None else item.pack.currency
    return Evaluation(
        outcome=Outcome.ROUTE,
        rules=[CURRENCY_MISMATCH],
        # Nobody's limit can be measured against it, so an approver below the top human rung
        # (of those with authority over the action) would find the re-check routing it on: it
        # goes where it can be decided.
        required_role=item.pack.top_for(item.action_name),
        causes=[
            f"currency mismatch: {', '.join(ledger.mixed)} holds amounts in another currency"
            f" than {currency} within its window; amounts in different currencies are never"
            " added, so it cannot be measured"
        ],
        ledger=ledger,
    )
