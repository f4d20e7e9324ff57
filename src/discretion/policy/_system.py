"""The rule ids discretion itself fires (beside a pack's own), with what each means."""

from __future__ import annotations

__all__ = ["SYSTEM_RULES", "TWO_APPROVALS"]

SYSTEM_RULES = {
    "discretion.unknown-action": "the tool or action is not governed by the pack",
    "discretion.ungoverned-tool": "the pack lists the tool as read-only (`ungoverned_tools`): it"
    " runs without a decision",
    "discretion.context-unavailable": "a fact the policy needs could not be assembled",
    "discretion.entity.unknown": "the proposal names a customer, order or case not on record",
    "discretion.entity.mismatch": "the ids the proposal names disagree with their records",
    "discretion.entity.unlinked": "no record ties together the customer, order or case named",
    "discretion.evaluation-error": "a policy expression could not be evaluated",
    "discretion.currency-rate": "the rate to the pack's base currency is not one that can be used",
    "discretion.currency-mismatch": "a total or the cumulative authority it reads holds amounts"
    " in another currency on the same record",
    "discretion.standard-authority": "inside standard policy but above the actor's standard limit",
    "discretion.standard-role": "inside standard policy under a rule only other roles may use",
    "discretion.cumulative-authority": "with what was already allowed on the same record, it is"
    " above the actor's limit",
    "discretion.ledger-moved": "what was allowed on the same record changed while it was decided",
    "discretion.cumulative-unkeyed": "authority is measured per record, but the proposal names"
    " none",
    "discretion.two-approvals": "above the action's two-approval amount: two people must approve",
    "discretion.not-standard": "outside standard policy: an exception is needed",
    "discretion.no-exceptions": "outside standard policy, and the action permits no exceptions",
    "discretion.reason-unknown": "the rationale cites a reason this action does not define",
    "discretion.reason-not-applicable": "the cited reason's preconditions do not hold",
    "discretion.reason-not-cited": "an exception needs the rationale to cite a reason",
    "discretion.exception-authority": "the actor's exception authority does not cover it",
    "discretion.exception-role": "the cited reason is one only other roles may grant, whatever"
    " the amount",
    "discretion.no-permitted-reason": "no permitted exception reason applies",
    "discretion.no-role-can-grant": "no role on the ladder has enough authority",
    "discretion.claim.grounded": "a claim in the rationale agrees with the case facts",
    "discretion.claim.contradicts-fact": "a claim in the rationale contradicts the case facts",
    "discretion.claim.unknown-fact": "a claim in the rationale names a fact the case does not hold",
    "discretion.claim.deny-on-contradiction": "the pack denies a proposal whose claim the facts"
    " contradict",
    "discretion.claim.nobody-above": "a claim failed its check and no one ranks above the actor"
    " to decide it",
    "discretion.claim.evidence-missing": "the rationale lacks a claim the reason requires",
    "discretion.judge.text-too-short": "the rationale text is shorter than the reason requires",
    "discretion.judge.text-missing-detail": "the rationale text lacks a detail the reason requires",
    "discretion.asserted.unlock-exceeded": "the rule that allows it rests on a fact the agent"
    " asserted, and the amount is above what the pack lets an assertion unlock without a person",
    "discretion.judge.not-justified": "the rationale judge found it does not support the exception",
    "discretion.judge.failed": "the rationale judge could not give a verdict",
    "discretion.judge.timeout": "the rationale judge did not answer in time",
    "discretion.judge.budget-spent": "the rationale judge's daily call budget is spent",
    "discretion.judge.unavailable": "the pack asks for a rationale judge but none is configured",
}
"""The rule ids discretion itself fires, with what each means."""

TWO_APPROVALS = "discretion.two-approvals"
"""The rule a case needing two approvers carries: its approval is granted by two people."""
