"""The decisions an AI may learn from, and what is left out of them and why.

Read from the lineage alone, so the export agrees with what `ledger verify` checks.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from discretion.lineage import LedgerRecord

__all__ = ["LEFT_OUT", "LearningExport", "learning_export"]

LEFT_OUT = {
    "denied": "denied: the proposal was forbidden",
    "rejected": "routed, then rejected by a person",
    "unresolved": "routed and not (yet) approved by a person",
    "one-off": "a one-off exception (learnable: false)",
    "revoked-precedent": "set or relied on a precedent that was later revoked",
}
"""Why a decision is left out of a learning export."""


@dataclass(slots=True)
class LearningExport:
    """The learnable decisions, streamed, and the counts of those left out by why."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)


def _governing_rule(decision: dict[str, Any]) -> str | None:
    """The pack rule that decided: the last rule fired that is not one of discretion's own."""
    own = [rule for rule in decision.get("rules", []) if not rule.startswith("discretion.")]
    return own[-1] if own else None


def learning_export(records: Iterable[LedgerRecord]) -> LearningExport:
    """Select the decisions an AI may learn from.

    Left out: denied proposals; routed cases a person rejected, or that no person approved;
    exceptions set as one-offs (`learnable: false`); and every decision that set or relied on
    a precedent later revoked.
    """
    decisions: dict[str, dict[str, Any]] = {}
    approvals: dict[str, str] = {}
    granted: dict[str, Any] = {}
    one_offs: set[str] = set()
    precedent_source: dict[str, str] = {}
    revoked: set[str] = set()
    for record in records:
        body = json.loads(record.body)
        if record.kind == "decision":
            decisions[record.subject_id] = body
        elif record.kind.startswith("approval."):
            approvals[record.subject_id] = record.kind.removeprefix("approval.")
            if record.kind == "approval.approved" and "amount" in body:
                # What the person granted, which may be less than what was asked.
                granted[record.subject_id] = body["amount"]
        elif record.kind == "precedent.set":
            precedent_source[record.subject_id] = body["source_decision_id"]
            if not body.get("learnable", True):
                one_offs.add(body["source_decision_id"])
        elif record.kind == "precedent.revoked":
            revoked.add(record.subject_id)
    revoked_sources = {precedent_source[p] for p in revoked if p in precedent_source}
    export = LearningExport()
    for decision_id, body in decisions.items():
        decision = body["decision"]
        outcome = decision["outcome"]
        used = (decision.get("precedents") or {}).get("applied")
        why: str | None = None
        if outcome == "deny":
            why = "denied"
        elif outcome == "route" and approvals.get(decision_id) != "approved":
            why = "rejected" if approvals.get(decision_id) == "rejected" else "unresolved"
        if why is None and decision_id in one_offs:
            why = "one-off"
        if why is None and (decision_id in revoked_sources or (used and used in revoked)):
            why = "revoked-precedent"
        if why is not None:
            export.left_out[why] += 1
            continue
        proposal = body.get("proposal", {})
        export.rows.append(
            {
                "decision_id": decision_id,
                "action": decision["action"],
                "outcome": "approved" if outcome == "route" else outcome,
                "rule": _governing_rule(decision),
                "rules": decision.get("rules", []),
                "reason": decision.get("reason"),
                "amount": granted.get(decision_id, decision.get("amount")),
                "requested_amount": decision.get("amount"),
                "actor_role": decision.get("actor_role"),
                "rationale": proposal.get("rationale"),
                "context": body.get("context", {}),
                "precedent": used,
                "policy_version": decision.get("policy_version"),
                "decided_at": decision.get("decided_at"),
            }
        )
    return export
