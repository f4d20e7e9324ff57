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
| a claim or report of an execution that is not open to it | 409 | `conflict`, with `execution` |
| LedgerIntegrityError          | 409    | `ledger_integrity` |
| DependencyError (store, ...)  | 503    | `unavailable`    |
| any other DiscretionError     | 500    | `error`          |
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

from discretion.api._params import NO_NUL
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
from discretion.execution import Execution, ExecutionStatus
from discretion.proposal import NOT_PRINTABLE, PRINTABLE

__all__ = ["ExecutionView", "Problem", "ProblemError", "install", "status_of"]


class ExecutionView(BaseModel):
    """A governed tool call as the API shows it (`discretion.Execution`)."""

    model_config = ConfigDict(from_attributes=True)

    key: str
    """The idempotency key: the same key never runs the tool twice; give it to the tool."""
    decision_id: str
    """The decision that allowed it (for an approved call, the routed decision's id)."""
    tool: str
    """The tool's name."""
    arguments: dict[str, Any]
    """The arguments to run it with (as approved, possibly for a lower amount)."""
    status: ExecutionStatus
    """`pending`, `running`, `succeeded` or `failed`."""
    attempts: int
    """How many times it was claimed to run."""
    result: Any = None
    """The tool's result, once it succeeded."""
    error: str | None = None
    """What the tool raised, when the last attempt failed."""
    queued_at: datetime | None = None
    """When it was queued after the approval."""
    started_at: datetime | None = None
    """When the last attempt was claimed."""
    finished_at: datetime | None = None
    """When the last attempt was reported."""

    @classmethod
    def of(cls, execution: Execution) -> ExecutionView:
        """The view of an execution."""
        return cls.model_validate(execution)


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
    execution: ExecutionView | None = None
    """The execution as it stands now, when a claim or a report of it conflicts."""


class ProblemError(Exception):
    """Raised by routes to answer with a `Problem`."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        execution: Execution | None = None,
    ) -> None:
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers
        self.execution = execution
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
    # Absent top-level fields are left out; an execution is shown whole (its `result` may be
    # null).
    body = {k: v for k, v in problem.model_dump(mode="json").items() if v is not None}
    return JSONResponse(body, status_code=status, headers=headers)


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
    return _answer(
        exc.status,
        Problem(
            error=exc.error,
            message=exc.message,
            execution=ExecutionView.of(exc.execution) if exc.execution is not None else None,
        ),
        exc.headers,
    )


def _said(error: dict[str, Any]) -> Any:
    """A validation error's message, in words the caller can act on where pydantic's are not."""
    if error.get("type") == "string_pattern_mismatch":
        # Not the pattern, which reads as noise.
        pattern = (error.get("ctx") or {}).get("pattern")
        if pattern == PRINTABLE:
            return NOT_PRINTABLE
        if pattern == NO_NUL:
            return (
                "it holds a NUL character (U+0000), which no stored text may hold; send it without"
            )
    return error.get("msg")


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for it only
        raise exc
    errors: list[dict[str, Any]] = list(exc.errors())
    faults = [
        f"{'.'.join(str(p) for p in err.get('loc', ())) or '<body>'}: {_said(err)}"
        for err in errors
    ]
    first = errors[0].get("loc", ()) if errors else ()
    # A body that is not JSON at all is located by a character offset, not a field.
    unparsed = bool(errors) and errors[0].get("type") == "json_invalid"
    return _answer(
        422,
        Problem(
            error="invalid_input",
            message="the request is not valid: " + "; ".join(faults),
            field=None if unparsed else ".".join(str(p) for p in first[1:]) or None,
        ),
    )


_HTTP_CODES = {400: "invalid_input", 404: "not_found", 405: "method_not_allowed"}


async def _http(_: Request, exc: Exception) -> JSONResponse:
    """Starlette's own refusals, in the shape of every other error.

    No such route, a method it does not take, a body it cannot parse.
    """
    if not isinstance(exc, HTTPException):  # registered for it only
        raise exc
    status = exc.status_code
    message = {404: "no such resource", 405: "this method is not allowed here"}.get(
        status, str(exc.detail)
    )
    if status == 400:
        message = f"the request could not be read: {exc.detail}"
    return _answer(
        status,
        Problem(error=_HTTP_CODES.get(status, "error"), message=message),
        dict(exc.headers) if exc.headers else None,
    )


def install(app: FastAPI) -> None:
    """Answer every discretion error, problem and invalid request with a `Problem`."""
    app.add_exception_handler(DiscretionError, _discretion_error)
    app.add_exception_handler(ProblemError, _problem)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
