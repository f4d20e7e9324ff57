"""discretion: governs the exceptions AI customer-support agents make."""

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

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and isinstance(_obj, type):
        _obj.__module__ = "discretion"
