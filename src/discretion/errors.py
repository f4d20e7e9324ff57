"""Errors raised by discretion.

`deny` and `route` are outcomes, not exceptions: an exception means discretion could not
decide, or was used wrongly.

```
DiscretionError
├── ConfigurationError      a set-up mistake found at load time, never mid-decision
│   └── PolicyError         a policy pack that does not load (.path, .line, .rule_id, .expression)
├── ProposalError           malformed input: a missing field, a NaN amount, a currency mismatch
├── ApprovalError           an approver lacks authority, or approves their own proposal
├── LedgerIntegrityError    the hash chain does not verify (.seq)
└── DependencyError         something discretion depends on failed
    ├── ContextError        a context provider failed, or a fact is missing or ill-typed (.field)
    ├── JudgeError          the rationale judge failed
    │   └── JudgeTimeout
    └── StoreError          the store failed; nothing was answered
```
"""

from __future__ import annotations

__all__ = [
    "ApprovalError",
    "ConfigurationError",
    "ContextError",
    "DependencyError",
    "DiscretionError",
    "JudgeError",
    "JudgeTimeout",
    "LedgerIntegrityError",
    "PolicyError",
    "ProposalError",
    "StoreError",
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


class LedgerIntegrityError(DiscretionError):
    """The lineage does not verify; `seq` is the first record that fails."""

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        self.seq = seq
        super().__init__(message)


class DependencyError(DiscretionError):
    """A part discretion depends on (context, judge, store) failed."""


class ContextError(DependencyError):
    """Context could not be assembled; `field` names the fact at fault when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class JudgeError(DependencyError):
    """The rationale judge failed to give a verdict."""


class JudgeTimeout(JudgeError):
    """The rationale judge did not answer in time."""


class StoreError(DependencyError):
    """The store failed. The decision was not recorded and is not answered."""
