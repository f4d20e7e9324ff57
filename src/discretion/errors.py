"""Errors raised by discretion.

`deny` and `route` are outcomes, not exceptions: an exception means discretion could not
decide, or was used wrongly.

```
DiscretionError
├── ConfigurationError      a set-up mistake found at load time, never mid-decision
│   └── PolicyError         a policy pack that does not load (.path, .line, .rule_id, .expression)
├── ProposalError           malformed input: a missing field, a NaN amount, a currency mismatch
├── ApprovalError           an approver lacks authority, or approves their own proposal
│   ├── ApprovalNotFound    no approval has this id (.approval_id)
│   └── ApprovalConflict    it is no longer pending: decided, taken, expired (.approval_id)
│       └── StaleApproval   the current pack, budgets or precedents no longer let it run
├── CallNotAllowed          a governed call did not run: its decision does not allow it (.decision)
│   ├── CallDenied          the decision is deny
│   └── CallRouted          the decision is route; a person decides (.approval_id)
├── ExecutionError          a tool call cannot run exactly once: claimed and unfinished (.key)
├── LedgerIntegrityError    the hash chain does not verify (.seq)
├── WebhookSignatureError   a webhook's signature is missing, wrong or too old
└── DependencyError         something discretion depends on failed
    ├── ContextError        a context provider failed, or a fact is missing or ill-typed (.field)
    │   └── CurrencyMismatch  a money fact is in another currency than the proposal (.currency)
    ├── JudgeError          the rationale judge failed
    │   └── JudgeTimeout
    └── StoreError          the store failed; nothing was answered
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from discretion.decision import Decision

__all__ = [
    "ApprovalConflict",
    "ApprovalError",
    "ApprovalNotFound",
    "CallDenied",
    "CallNotAllowed",
    "CallRouted",
    "ConfigurationError",
    "ContextError",
    "CurrencyMismatch",
    "DependencyError",
    "DiscretionError",
    "ExecutionError",
    "JudgeError",
    "JudgeTimeout",
    "LedgerIntegrityError",
    "PolicyError",
    "ProposalError",
    "StaleApproval",
    "StoreError",
    "WebhookSignatureError",
]


class DiscretionError(Exception):
    """The root of every error discretion raises."""


class ConfigurationError(DiscretionError):
    """A set-up mistake: a bad pack, an unknown database URL, a missing extra."""


class PolicyError(ConfigurationError):
    """A policy pack failed to load.

    The message names the file, the line when known, the rule id and the expression, and the
    parts are kept as attributes.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        rule_id: str | None = None,
        expression: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.rule_id = rule_id
        self.expression = expression
        where = path or "<pack>"
        if line is not None:
            where = f"{where}:{line}"
        if rule_id is not None:
            where = f"{where}, rule {rule_id!r}"
        super().__init__(f"{where}: {message}")


class ProposalError(DiscretionError):
    """A proposal is malformed. Nothing is recorded for it.

    `field` names the part of the proposal at fault when it is known.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class ApprovalError(DiscretionError):
    """An approval is not allowed: authority, separation of duties, or state."""


class ApprovalNotFound(ApprovalError):
    """No approval has this id; `approval_id` is the id asked for."""

    def __init__(self, message: str, *, approval_id: str) -> None:
        self.approval_id = approval_id
        super().__init__(message)


class ApprovalConflict(ApprovalError):
    """The approval cannot move: another approver took it first, or it is no longer pending."""

    def __init__(self, message: str, *, approval_id: str) -> None:
        self.approval_id = approval_id
        super().__init__(message)


class StaleApproval(ApprovalConflict):
    """Re-checked before execution, the case no longer holds.

    The current pack denies it, a budget it needs is spent, or a precedent it relies on was
    revoked. It stays pending: reject it, or let it expire.
    """


class CallNotAllowed(DiscretionError):
    """A governed call did not run because its decision does not allow it.

    Raised by `Guard.governed` functions; `decision` is the recorded decision, whose
    `explanation` says what to tell the customer.
    """

    def __init__(self, message: str, *, decision: Decision) -> None:
        self.decision = decision
        super().__init__(message)


class CallDenied(CallNotAllowed):
    """The call is forbidden for everyone: the decision is `deny`."""


class CallRouted(CallNotAllowed):
    """A person with enough authority must decide: the decision is `route`.

    `approval_id` is the id of the approval opened for it (the routed decision's id).
    """

    @property
    def approval_id(self) -> str:
        """The approval opened for the routed call."""
        return self.decision.id


class ExecutionError(DiscretionError):
    """A tool call cannot run now without risking a second run.

    An earlier attempt with the same key claimed it and has not recorded how it ended: it is
    running elsewhere, or its process stopped mid-call. Running it again could move money
    twice, so it is not run; `key` names the execution.
    """

    def __init__(self, message: str, *, key: str) -> None:
        self.key = key
        super().__init__(message)


class LedgerIntegrityError(DiscretionError):
    """The lineage does not verify; `seq` is the first record that fails."""

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        self.seq = seq
        super().__init__(message)


class WebhookSignatureError(DiscretionError):
    """A webhook's `X-Discretion-Signature` is missing, malformed, wrong, or outside tolerance.

    Raised by `discretion.webhooks.verify_signature` in the receiver: drop the request.
    """


class DependencyError(DiscretionError):
    """A part discretion depends on (context, judge, store) failed."""


class ContextError(DependencyError):
    """Context could not be assembled; `field` names the fact at fault when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class CurrencyMismatch(ContextError):
    """A money fact is in another currency than the proposal: never compared, never converted.

    Unlike a fact the case system has not answered yet, it does not come right by waiting:
    the record's money stays in `currency`, and a proposal in that currency can be decided.
    """

    def __init__(self, message: str, *, field: str | None = None, currency: str) -> None:
        self.currency = currency
        super().__init__(message, field=field)


class JudgeError(DependencyError):
    """The rationale judge failed to give a verdict."""


class JudgeTimeout(JudgeError):
    """The rationale judge did not answer in time."""


class StoreError(DependencyError):
    """The store failed. The decision was not recorded and is not answered."""
