"""The pipeline's running state: what the steps after evaluation read and lower."""

from __future__ import annotations

from dataclasses import dataclass, field

from discretion.decision import JudgeRecord, Outcome, PrecedentUse
from discretion.pipeline._assemble import Resolved
from discretion.pipeline._ledger import LedgerFacts
from discretion.policy import Role, Rule

__all__ = ["Evaluation"]


@dataclass(slots=True, kw_only=True)
class Evaluation:
    """The deterministic verdict before budgets and the judge."""

    outcome: Outcome
    rules: list[str]
    reason: Rule | None = None
    required_role: Role | None = None
    deciding: list[Rule] = field(default_factory=list)
    """The pack rules whose messages explain the outcome."""
    causes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Extra sentences for the explanation, such as a spent budget."""
    grounds: list[str] = field(default_factory=list)
    """For each reason that does not apply, the ground that failed and the facts it read: they
    explain the decision instead of the generic "no permitted reason"."""
    precedents: PrecedentUse | None = None
    """The precedents cited, considered and applied."""
    fallback: Evaluation | None = None
    """What stands if the applied precedent's last citation is taken first by another decision."""
    judge: JudgeRecord | None = None
    """What the rationale judges found when they reviewed an allowed exception."""
    resolved: Resolved | None = None
    """The customer, order and case the decision is about, as their records say; None when the
    facts could not be assembled (the ids as named then stand)."""
    ledger: LedgerFacts | None = None
    """The totals it read from the ledger (and its cumulative authority), when it read any."""
    person: str | None = None
    """The one person a review that holds leaves the case to (its `person`): only they, of
    its role, may approve it."""

    @property
    def under_only_review(self) -> bool:
        """Whether a review only its role decides holds: that role alone may decide it."""
        return any(rule.kind == "review" and rule.only for rule in self.deciding)

    def unapplied(self) -> PrecedentUse | None:
        """Its precedents with none applied: for an outcome that no longer allows.

        A precedent only counts as used when the exception it justified stands.
        """
        precedents = self.precedents
        return precedents.model_copy(update={"applied": None}) if precedents is not None else None
