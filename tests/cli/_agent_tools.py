"""Tools of an imaginary agent, for `discretion pack validate --tools`."""

from __future__ import annotations


def issue_refund(amount: str, currency: str, customer_id: str, case_id: str, order_id: str) -> str:
    return f"refunded {amount}"


def lookup_order(order_id: str) -> str:
    return f"order {order_id}"


def wire_money(amount: str, iban: str) -> str:
    return f"wired {amount}"


def refund_without_amount(currency: str, customer_id: str, case_id: str, order_id: str) -> str:
    return "refunded"


GOOD = [issue_refund, lookup_order]
"""Every tool mapped or listed as read-only."""

WITH_AN_UNMAPPED_TOOL = [issue_refund, lookup_order, wire_money]

BY_NAME = {"issue_refund": refund_without_amount}
"""The refund tool under its mapped name, but without the amount argument the pack reads."""
