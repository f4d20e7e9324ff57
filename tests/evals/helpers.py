"""Shared set-up for the eval tests: paths, suite files written under tmp_path, the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner, Result

from discretion.cli import app

ROOT = Path(__file__).resolve().parents[2]
EVALS = ROOT / "evals"
ACME = ROOT / "examples" / "acme"
ACME_PACK = ACME / "pack"
ACME_CASES = ACME / "cases.sql"
NOW = "2026-11-26T12:00:00+00:00"

REFUND_64 = {
    "tool": {
        "name": "issue_refund",
        "arguments": {
            "order_id": "A-50003",
            "customer_id": "C-1003",
            "case_id": "K-70003",
            "amount": "64.99",
            "currency": "USD",
        },
    },
    "rationale": {"text": "Earbuds stopped charging ten days after delivery."},
}
"""A refund inside standard policy and the AI's authority: the acme pack allows it."""


def refund(amount: str, **rationale: Any) -> dict[str, Any]:
    """A refund on the acme espresso machine (649.00, delivered 14 days ago)."""
    return {
        "tool": {
            "name": "issue_refund",
            "arguments": {
                "order_id": "A-50007",
                "customer_id": "C-1007",
                "case_id": "K-70007",
                "amount": amount,
                "currency": "USD",
            },
        },
        "rationale": {"text": "Partial refund agreed.", **rationale},
    }


def write_suite(folder: Path, cases: list[dict[str, Any]], **settings: Any) -> Path:
    """An acme suite file of `cases` in `folder`."""
    data: dict[str, Any] = {
        "suite": settings.pop("suite", "tmp-suite"),
        "pack": str(ACME_PACK),
        "context": str(ACME_CASES),
        "now": NOW,
        **settings,
        "cases": cases,
    }
    path = folder / f"{data['suite']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def copy_acme_pack(
    folder: Path, *, old: str, new: str, file: str = "roles.yaml", base: Path = ACME_PACK
) -> Path:
    """The acme pack (or `base`) copied into `folder` with one exact piece of one file replaced."""
    target = folder / "pack"
    shutil.copytree(base, target)
    path = target / file
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return target


CUMULATIVE_REFUNDS = "    cumulative: {per: order, window: 365d}\n"
"""The acme refund's authority measured on the whole order; replay tests judge calls alone."""


def invoke(*args: str) -> Result:
    """Run the CLI in-process."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


AGENT = {"id": "bot", "role": "ai_agent", "is_ai": True}

DESK = """
pack: desk
currency: USD
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {standard: "50.00"}
  - id: tier1
    authority:
      refund: {standard: "500.00"}
  - id: tier2
    authority:
      refund: {standard: "800.00"}
actions:
  refund:
    tools:
      - name: issue_refund
        amount: amount
        customer: customer_id
    standard:
      - id: any-refund
        when: "true"
budgets:
  # What the agent's cases move in a day, approved by a person or not.
  - id: ai-daily
    key: actor
    roles: [ai_agent]
    window: 1d
    limit: "100.00"
    route_to: tier1
"""
"""A small pack whose agent's routed cases, once people approve them, fill its day."""


def agent_refund(amount: str, key: str | None = None) -> dict[str, Any]:
    """The agent's refund of `amount` to customer `c` on the desk pack."""
    proposal: dict[str, Any] = {
        "actor": AGENT,
        "tool": {"name": "issue_refund", "arguments": {"amount": amount, "customer_id": "c"}},
    }
    if key is not None:
        proposal["idempotency_key"] = key
    return proposal
