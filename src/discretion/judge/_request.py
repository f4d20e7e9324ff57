"""The judge's seam: what it is asked (`JudgeRequest`), what it answers (`Assessment`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from discretion.decision import Verdict
from discretion.lineage import digest
from discretion.money import Money
from discretion.proposal import Claim

__all__ = ["Assessment", "Judge", "JudgeRequest", "Prompt", "verdict_key"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Prompt:
    """The messages an LLM judge sends, rendered from the templates in `prompts/`."""

    system: str
    """The instructions and the policy clause: text the pack's owner and discretion wrote."""
    user: str
    """The data blocks: the exception, the facts, the claims and the rationale text."""
    schema: Mapping[str, Any]
    """The strict JSON schema the answer must match."""
    version: str
    """`sha256:` and the hash of the template files: which prompt wording was used."""
    hash: str
    """SHA-256 of the rendered messages and schema: exactly what was asked."""

    def messages(self) -> list[dict[str, str]]:
        """The chat messages, system first."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgeRequest:
    """One exception for a judge to review: the clause, the facts, and the agent's words."""

    action: str
    """The governed action."""
    reason: str
    """The exception reason the deterministic checks allowed: the clause's id."""
    clause: str
    """The policy clause's text."""
    amount: Money | None
    """The money the action moves."""
    actor_role: str
    """The role the agent proposed it under."""
    actor_is_ai: bool
    """Whether the agent is an AI."""
    facts: Mapping[str, Any]
    """The assembled context in JSON form: only the fields the pack declares for the action."""
    claims: tuple[Claim, ...]
    """The rationale's structured claims."""
    text: str
    """The rationale's free text. Data, never instructions."""
    proposal_digest: str
    """SHA-256 of the canonical proposal."""
    context_digest: str
    """SHA-256 of the canonical context snapshot."""
    prompt: Prompt
    """The rendered prompt an LLM judge sends."""


_MODEL = ConfigDict(frozen=True, extra="forbid")


class Assessment(BaseModel):
    """A judge's verdict and what it cost."""

    model_config = _MODEL

    verdict: Verdict
    """The verdict."""
    prompt_tokens: int | None = Field(default=None, ge=0)
    """Tokens the model read, when known."""
    completion_tokens: int | None = Field(default=None, ge=0)
    """Tokens the model wrote, when known."""
    latency_ms: float | None = Field(default=None, ge=0)
    """How long the judge took, retries included, when it measured it."""


class Judge(Protocol):
    """Reviews an exception the deterministic checks allowed, and may only say it is not justified.

    `assess` runs outside the store's write transaction. Raise `JudgeError` (or `JudgeTimeout`)
    when no verdict can be given: the guard then routes the case with the cause recorded. Any
    other error is treated the same way.
    """

    @property
    def model(self) -> str:
        """The model that judges; part of the verdict cache's key."""
        ...

    def assess(self, request: JudgeRequest, /) -> Assessment:
        """Give a verdict on the request."""
        ...


def verdict_key(request: JudgeRequest, model: str) -> str:
    """The key a verdict is cached and recorded under.

    SHA-256 of the proposal digest, the context digest, the rendered prompt's hash and the model:
    the same question to the same model.
    """
    return digest([request.proposal_digest, request.context_digest, request.prompt.hash, model])
