"""discretion: governs the exceptions AI customer-support agents make.

The public names load when first used (PEP 562), so `import discretion` and the command line
start without SQLAlchemy, pydantic models or CEL; `from discretion import Guard` loads what a
guard needs. Type checkers and IDEs read the names from the `TYPE_CHECKING` block below.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from discretion.decision import Decision, Outcome, PrecedentUse, Reservation, Verdict
    from discretion.errors import (
        ApprovalConflict,
        ApprovalError,
        ApprovalNotFound,
        CallDenied,
        CallNotAllowed,
        CallRouted,
        ConfigurationError,
        ContextError,
        CurrencyMismatch,
        DependencyError,
        DiscretionError,
        ExecutionError,
        JudgeError,
        JudgeTimeout,
        LedgerIntegrityError,
        PolicyError,
        ProposalError,
        StaleApproval,
        StoreError,
        WebhookSignatureError,
    )
    from discretion.execution import Execution, Executions, ExecutionStatus
    from discretion.guard import Guard
    from discretion.money import Money
    from discretion.policy import PolicyPack, load_pack
    from discretion.proposal import Actor, Claim, Proposal, Rationale, ToolCall
    from discretion.store import SqlStore

__all__ = [
    "Actor",
    "ApprovalConflict",
    "ApprovalError",
    "ApprovalNotFound",
    "CallDenied",
    "CallNotAllowed",
    "CallRouted",
    "Claim",
    "ConfigurationError",
    "ContextError",
    "CurrencyMismatch",
    "Decision",
    "DependencyError",
    "DiscretionError",
    "Execution",
    "ExecutionError",
    "ExecutionStatus",
    "Executions",
    "Guard",
    "JudgeError",
    "JudgeTimeout",
    "LedgerIntegrityError",
    "Money",
    "Outcome",
    "PolicyError",
    "PolicyPack",
    "PrecedentUse",
    "Proposal",
    "ProposalError",
    "Rationale",
    "Reservation",
    "SqlStore",
    "StaleApproval",
    "StoreError",
    "ToolCall",
    "Verdict",
    "WebhookSignatureError",
    "__version__",
    "load_pack",
]

__version__ = "0.1.0"

_HOMES: dict[str, tuple[str, ...]] = {
    "discretion.decision": ("Decision", "Outcome", "PrecedentUse", "Reservation", "Verdict"),
    "discretion.errors": (
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
    ),
    "discretion.execution": ("Execution", "ExecutionStatus", "Executions"),
    "discretion.guard": ("Guard",),
    "discretion.money": ("Money",),
    "discretion.policy": ("PolicyPack", "load_pack"),
    "discretion.proposal": ("Actor", "Claim", "Proposal", "Rationale", "ToolCall"),
    "discretion.store": ("SqlStore",),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}
"""The module each public name is defined in (or exported from)."""


# Hidden from type checkers: they read the names above, and a module `__getattr__` would make
# them accept any misspelt name as well.
if not _typing.TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        module = _HOME.get(name)
        if module is None:
            raise AttributeError(f"module 'discretion' has no attribute {name!r}")
        loaded = _importlib.import_module(module)
        # Every public name of that module is bound at once, so the next lookup is a plain
        # attribute, and its classes report the public path (`discretion.Guard`) in reprs and docs.
        for public in _HOMES[module]:
            value = getattr(loaded, public)
            if isinstance(value, type):
                value.__module__ = "discretion"
            globals()[public] = value
        return globals()[name]

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
