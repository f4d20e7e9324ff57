"""discretion: governs the exceptions AI customer-support agents make."""

from discretion.decision import Decision, Outcome, Reservation
from discretion.errors import (
    ApprovalError,
    ConfigurationError,
    ContextError,
    DependencyError,
    DiscretionError,
    JudgeError,
    JudgeTimeout,
    LedgerIntegrityError,
    PolicyError,
    ProposalError,
    StoreError,
)
from discretion.guard import Guard
from discretion.money import Money
from discretion.policy import PolicyPack, load_pack
from discretion.proposal import Actor, Claim, Proposal, Rationale, ToolCall
from discretion.store import SqlStore

__all__ = [
    "Actor",
    "ApprovalError",
    "Claim",
    "ConfigurationError",
    "ContextError",
    "Decision",
    "DependencyError",
    "DiscretionError",
    "Guard",
    "JudgeError",
    "JudgeTimeout",
    "LedgerIntegrityError",
    "Money",
    "Outcome",
    "PolicyError",
    "PolicyPack",
    "Proposal",
    "ProposalError",
    "Rationale",
    "Reservation",
    "SqlStore",
    "StoreError",
    "ToolCall",
    "__version__",
    "load_pack",
]

__version__ = "0.1.0"

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and isinstance(_obj, type):
        _obj.__module__ = "discretion"
