"""What discretion answers: a `Decision`, with everything needed to explain it later."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from discretion.money import Money

__all__ = [
    "ClaimCheck",
    "Decision",
    "JudgeRecord",
    "Outcome",
    "PrecedentUse",
    "Reservation",
    "Verdict",
]


class Outcome(StrEnum):
    """The four things discretion can decide."""

    ALLOW = "allow"
    """Inside standard policy and the actor's standard authority."""
    ALLOW_EXCEPTION = "allow_exception"
    """A justified exception inside the actor's exception authority."""
    ROUTE = "route"
    """A human with enough authority must decide; `required_role` names the lowest such role."""
    DENY = "deny"
    """Forbidden for everyone: a hard limit fired, or no role can grant it."""

    @property
    def is_allowed(self) -> bool:
        """Whether the action may run now."""
        return self in (Outcome.ALLOW, Outcome.ALLOW_EXCEPTION)


_MODEL = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
"""Frozen, no unknown fields, and no NaN or infinity in a float (`JudgeRecord.latency_ms`, a
claim's value): a decision's JSON is then finite, as its canonical JSON may assume."""


class Reservation(BaseModel):
    """Exposure reserved against a budget, committed with the decision."""

    model_config = _MODEL

    budget: str
    """The budget's id in the pack."""
    key: str
    """The budget key this reservation counts against (a customer id, an actor id, ...)."""
    amount: Money
    """The exposure reserved."""


class PrecedentUse(BaseModel):
    """Which precedents a decision looked at, and what came of each."""

    model_config = _MODEL

    cited: list[str] = []
    """The ids the actor's rationale cited."""
    considered: list[str] = []
    """Every precedent checked: the cited ones and those found by scope."""
    applicable: list[str] = []
    """Those whose every condition held."""
    applied: str | None = None
    """The precedent whose citation this decision consumed to extend the actor's authority."""
    failed: dict[str, list[str]] = {}
    """For each considered precedent that did not apply: the rule ids of the conditions failed."""


class Verdict(BaseModel):
    """A rationale judge's answer: does the rationale support the exception under one clause?

    It is also the strict output schema the LLM judge must answer in. A judge can only lower an
    outcome: `justified` keeps an exception the deterministic checks allowed, and anything else
    routes it to a person.
    """

    model_config = _MODEL

    justified: bool
    """Whether the rationale, read against the facts, supports the exception under the clause."""
    clause: Annotated[str, StringConstraints(max_length=200)]
    """The id of the policy clause the judge relied on: the exception reason it was given."""
    unsupported_claims: Annotated[
        list[Annotated[str, StringConstraints(max_length=500)]], Field(max_length=20)
    ]
    """Statements in the rationale that the facts do not support; empty when there are none."""
    reason: Annotated[str, StringConstraints(max_length=1000)]
    """A short reason for the verdict, written for the person who reviews the case."""


class ClaimCheck(BaseModel):
    """One structured claim of a rationale, checked against the assembled context."""

    model_config = _MODEL

    field: str
    """The context field the claim names."""
    value: str | int | float | bool | None
    """The value the actor claimed."""
    rule: str
    """`discretion.claim.grounded` when the fact agrees; otherwise the rule id of the fault."""


class JudgeRecord(BaseModel):
    """What the rationale judges found, recorded with the decision they reviewed."""

    model_config = _MODEL

    claims: list[ClaimCheck] = []
    """Each structured claim of the rationale and the rule id its check produced."""
    llm: Literal[
        "not_asked", "justified", "not_justified", "failed", "budget_spent", "unconfigured"
    ] = "not_asked"
    """What came of the LLM judge: not asked (the pack did not ask, or the claims already
    failed), its verdict, a failure, its daily call budget spent, or no judge configured."""
    verdict: Verdict | None = None
    """The LLM judge's verdict, when it gave one."""
    model: str | None = None
    """The model that judged."""
    prompt_version: str | None = None
    """The hash of the prompt templates and output schema in `prompts/`, shipped in the package."""
    prompt_hash: str | None = None
    """The hash of the rendered prompt and output schema sent to the model."""
    prompt_tokens: int | None = None
    """Tokens the model read, when it reported them."""
    completion_tokens: int | None = None
    """Tokens the model wrote, when it reported them."""
    latency_ms: float | None = None
    """How long the judge took, retries included; None for a cached verdict."""
    cached: bool = False
    """Whether the verdict came from the verdict cache instead of a call."""


class Decision(BaseModel):
    """The answer to a proposal. Recorded in the lineage before it is returned."""

    model_config = _MODEL

    id: str
    """Unique id of this decision."""
    idempotency_key: str
    """The key it was decided under; retries with it get this decision back."""
    outcome: Outcome
    """What was decided."""
    action: str
    """The governed action."""
    actor_id: str
    """Who proposed it."""
    actor_role: str
    """The role the actor proposed it under."""
    amount: Money | None
    """The money the action moves."""
    entities: dict[str, str] = {}
    """The customer, order and case it is about, as their records say (the pack's `entities`);
    the ids as the proposal named them when the pack declares no entities."""
    rules: list[str]
    """Ids of the rules that produced this outcome, in the order they were applied."""
    reason: str | None = None
    """The exception reason that justified an exception, or that a routed case relies on."""
    required_role: str | None = None
    """When routed: the lowest role whose authority covers the case."""
    explanation: str
    """Written for the agent: what happened and what to tell the customer."""
    causes: list[str] = []
    """Why a decision failed closed: the errors met, each naming the part at fault."""
    reservations: list[Reservation] = []
    """Exposure reserved against budgets with this decision."""
    precedents: PrecedentUse | None = None
    """The precedents cited, considered and applied; None when none was cited or considered."""
    judge: JudgeRecord | None = None
    """What the rationale judges found; None when no exception was allowed for them to review
    and the pack does not check claims on every decision."""
    context_digest: str
    """SHA-256 of the canonical context snapshot the decision was made on."""
    proposal_digest: str
    """SHA-256 of the canonical proposal."""
    policy_version: str
    """The content hash of the pack that decided it."""
    decided_at: AwareDatetime
    """When it was decided, by the guard's clock."""
    lineage_hash: str = ""
    """The hash of its lineage record; empty only before it is recorded."""

    @property
    def is_allowed(self) -> bool:
        """Whether the tool may run now."""
        return self.outcome.is_allowed

    @property
    def execution_key(self) -> str:
        """The key its tool call runs once under, and that the tool is given to deduplicate on.

        The actor's id and the idempotency key together: keys are each actor's own, so two
        agents' `call_0` never share a run (nor a payment API's deduplication). Where two
        actors' keys meet all the same (`bot` with `x:1`, `bot:x` with `1`), the second call is
        refused rather than given the first one's run (`Executions.run`).
        """
        key = f"{self.actor_id}:{self.idempotency_key}"
        if len(key) <= 200:
            return key
        return "key:" + hashlib.sha256(key.encode()).hexdigest()

    def relied_on(self, proposal: Mapping[str, Any] | None) -> list[str]:
        """The precedents it relies on: those its rationale cited and the one it applied.

        `proposal`: the one it decided, as stored (an approval's), whose rationale's citations
        count too when the case was decided before its precedents were read.
        """
        rationale = (proposal or {}).get("rationale") or {}
        relied = [str(cited) for cited in rationale.get("precedents") or []]
        if self.precedents is not None:
            relied += self.precedents.cited
            if self.precedents.applied is not None:
                relied.append(self.precedents.applied)
        return list(dict.fromkeys(relied))

    def with_hash(self, lineage_hash: str) -> Decision:
        """A copy carrying its lineage hash."""
        return self.model_copy(update={"lineage_hash": lineage_hash})
