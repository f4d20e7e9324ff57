"""Errors as HTTP answers: one JSON shape, one status per branch of the error tree.

| error                         | status | `error`          |
|-------------------------------|--------|------------------|
| ProposalError, a bad body     | 422    | `invalid_input`  |
| no or unknown bearer token    | 401    | `unauthenticated`|
| ApprovalError (authority, SoD)| 403    | `forbidden`      |
| ApprovalNotFound              | 404    | `not_found`      |
| ApprovalConflict              | 409    | `conflict`       |
| StaleApproval                 | 409    | `stale`          |
| ExecutionError                | 409    | `execution_unfinished` |
| LedgerIntegrityError          | 409    | `ledger_integrity` |
| DependencyError (store, ...)  | 503    | `unavailable`    |
| any other DiscretionError     | 500    | `error`          |
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from discretion.errors import (
    ApprovalConflict,
    ApprovalError,
    ApprovalNotFound,
    DependencyError,
    DiscretionError,
    ExecutionError,
    LedgerIntegrityError,
    ProposalError,
    StaleApproval,
)

__all__ = ["Problem", "ProblemError", "install", "status_of"]


class Problem(BaseModel):
    """What went wrong, for the caller to act on."""

    error: str
    """A stable code: `invalid_input`, `unauthenticated`, `forbidden`, `not_found`, `conflict`,
    `stale`, `execution_unfinished`, `ledger_integrity`, `unavailable` or `error`."""
    message: str
    """What happened, where, and what to do."""
    field: str | None = None
    """The input field at fault, when one is."""
    approval_id: str | None = None
    """The approval concerned, when one is."""


class ProblemError(Exception):
    """Raised by routes to answer with a `Problem`."""

    def __init__(
        self, status: int, error: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers
        super().__init__(message)


# Most specific first: StaleApproval before ApprovalConflict before ApprovalError.
_STATUS: tuple[tuple[type[DiscretionError], int, str], ...] = (
    (ProposalError, 422, "invalid_input"),
    (ApprovalNotFound, 404, "not_found"),
    (StaleApproval, 409, "stale"),
    (ApprovalConflict, 409, "conflict"),
    (ApprovalError, 403, "forbidden"),
    (ExecutionError, 409, "execution_unfinished"),
    (LedgerIntegrityError, 409, "ledger_integrity"),
    (DependencyError, 503, "unavailable"),
)


def status_of(exc: DiscretionError) -> tuple[int, str]:
    """The HTTP status and `error` code of a discretion error."""
    for kind, status, code in _STATUS:
        if isinstance(exc, kind):
            return status, code
    return 500, "error"


def _answer(status: int, problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers
    )


_UNAVAILABLE = (
    "discretion cannot reach what it depends on right now; nothing was recorded or changed."
    " Retry later; the operator's log has the cause"
)
"""What a 503 says: never the cause, which names database URLs, paths and hosts."""

_log = logging.getLogger("discretion.api")


async def _discretion_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, DiscretionError):  # registered for DiscretionError only
        raise exc
    status, code = status_of(exc)
    message = str(exc)
    if isinstance(exc, DependencyError):
        _log.error("answered 503: %s: %s", type(exc).__name__, exc)
        message = _UNAVAILABLE
    return _answer(
        status,
        Problem(
            error=code,
            message=message,
            field=getattr(exc, "field", None),
            approval_id=getattr(exc, "approval_id", None),
        ),
    )


async def _problem(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ProblemError):  # registered for ProblemError only
        raise exc
    return _answer(exc.status, Problem(error=exc.error, message=exc.message), exc.headers)


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for it only
        raise exc
    errors: list[dict[str, Any]] = list(exc.errors())
    faults = [
        f"{'.'.join(str(p) for p in err.get('loc', ())) or '<body>'}: {err.get('msg')}"
        for err in errors
    ]
    first = errors[0].get("loc", ()) if errors else ()
    return _answer(
        422,
        Problem(
            error="invalid_input",
            message="the request is not valid: " + "; ".join(faults),
            field=".".join(str(p) for p in first[1:]) or None,
        ),
    )


def install(app: FastAPI) -> None:
    """Answer every discretion error, problem and invalid request with a `Problem`."""
    app.add_exception_handler(DiscretionError, _discretion_error)
    app.add_exception_handler(ProblemError, _problem)
    app.add_exception_handler(RequestValidationError, _invalid)
