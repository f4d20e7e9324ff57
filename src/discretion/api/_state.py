"""What every route of the app shares: the guard, tokens, sessions, templates, and who calls."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from anyio import CapacityLimiter
from fastapi.templating import Jinja2Templates

from discretion.api._auth import Tokens
from discretion.api._sessions import Sessions
from discretion.approvals import Approval, ApprovalStatus
from discretion.errors import ProposalError
from discretion.guard import Guard
from discretion.money import Money
from discretion.store import SqlStore

__all__ = ["AppState", "is_runnable", "money_in"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AppState:
    """The parts the routes use."""

    guard: Guard
    store: SqlStore
    tokens: Tokens
    sessions: Sessions
    templates: Jinja2Templates
    secure_cookies: bool
    deciding: CapacityLimiter | None
    """How many decisions this process works on at once in worker threads; the rest wait
    their turn. None: each is decided on the event loop itself, one at a time."""


def money_in(value: Money | str | Decimal | None, currency: str | None) -> Money | None:
    """An amount from a request: Money, or a decimal string in the approval's currency."""
    if value is None or isinstance(value, Money):
        return value
    text = str(value).strip()
    if not text:
        return None
    if currency is None:
        raise ProposalError("amount: this case moves no money", field="amount")
    return Money.of(text, currency)


def is_runnable(guard: Guard, approval: Approval) -> bool:
    """Whether an approval was granted and its tool is registered to run in this process."""
    tool = approval.tool or {}
    return (
        approval.status is ApprovalStatus.APPROVED and tool.get("name") in guard.approvals.executors
    )
