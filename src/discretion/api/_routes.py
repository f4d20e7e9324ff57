"""The HTTP decision API under `/v1`: decisions, approvals, executions, precedents, the ledger.

Every route needs a bearer token (`Authorization: Bearer dsc_...`, made with
`discretion token create`). A token stands for one subject and role: an agent proposes only as
itself, and only people decide routed cases, list the queue, revoke precedent or verify the
ledger. Bodies are JSON; errors are `Problem`s (see `_problems`).

An agent over HTTP runs its allowed calls itself (the decision says `allow`; its
idempotency key is the one to give the tool). A routed call that a person approves is queued
in the outbox: the agent lists its own under `/v1/executions`, claims one (once: a second claim
answers 409 with the execution as it stands), runs the tool with the key, and reports the
result or the error (once). Claims and reports are lineage records (`execution.started`,
`execution.succeeded`, `execution.failed`).
"""

# FastAPI reads the routes' annotations at runtime, including aliases local to a factory:
# they are not postponed here.

import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

from anyio.to_thread import run_sync
from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from discretion.api._auth import Identity, Tokens
from discretion.api._params import NO_NUL, DecisionId, ExecutionKey, NameQuery, PrecedentId
from discretion.api._problems import ExecutionView, Problem, ProblemError
from discretion.api._state import AppState, is_runnable, money_in
from discretion.approvals import Approval, ApprovalStatus
from discretion.decision import Decision
from discretion.errors import ApprovalNotFound, ExecutionError
from discretion.execution import Execution
from discretion.lineage import is_text
from discretion.money import Money
from discretion.precedent import Precedent, PrecedentSpec
from discretion.proposal import MAX_NAME, PRINTABLE, Proposal

__all__ = [
    "ApproveIn",
    "NoteIn",
    "ReportIn",
    "RevokeIn",
    "a_person",
    "api_router",
    "authenticated",
]

Note = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, pattern=NO_NUL)
]


class NoteIn(BaseModel):
    """A decision on an approval, with the note it requires."""

    model_config = ConfigDict(extra="forbid")

    note: Note
    """Why: recorded in the lineage with the approver's id and role."""


class ApproveIn(NoteIn):
    """Approving, possibly for a lower amount, possibly setting precedent."""

    amount: Money | Annotated[str, StringConstraints(max_length=40)] | None = None
    """A lower amount to grant: Money, or a decimal string in the case's currency."""
    precedent: PrecedentSpec | None = None
    """Make this grant citable within a scope and bounds, or a one-off (`learnable: false`)."""


class RevokeIn(BaseModel):
    """Revoking a precedent."""

    model_config = ConfigDict(extra="forbid")

    reason: Note
    """Why it may no longer be cited."""


class ReportIn(BaseModel):
    """How a claimed call ended: exactly one of `result` or `error`."""

    model_config = ConfigDict(extra="forbid")

    result: Any = None
    """What the tool returned, as JSON (null is a result too)."""
    error: (
        Annotated[
            str,
            StringConstraints(strip_whitespace=True, min_length=1, max_length=4000, pattern=NO_NUL),
        ]
        | None
    ) = None
    """What the tool raised; a failed call may be claimed again."""

    @model_validator(mode="after")
    def _one(self) -> "ReportIn":
        if len(self.model_fields_set & {"result", "error"}) != 1:
            raise ValueError(
                "give exactly one of `result` (what the tool returned) or `error` (what it raised)"
            )
        fault = _unrecordable(self.result)
        if fault is not None:
            raise ValueError(f"`result` holds {fault}")
        return self


def _unrecordable(value: Any) -> str | None:
    """What in `value`, however deep, the ledger cannot record as sent; None when nothing.

    JSON has no NaN or infinity (kept, the ledger would hold a string nobody sent), and a lone
    surrogate is no text.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN or an infinity, which JSON has not; send a number"
    if isinstance(value, str) and not is_text(value):
        return (
            "a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape), which is not text;"
            " send valid Unicode"
        )
    children: list[Any] = []
    if isinstance(value, dict):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        children = value
    return next((fault for child in children if (fault := _unrecordable(child))), None)


class ExecutionList(BaseModel):
    """The caller's queued calls, oldest first."""

    executions: list[ExecutionView]


class ApprovalList(BaseModel):
    """A page of approvals, soonest due first."""

    approvals: list[Approval]


class PrecedentList(BaseModel):
    """Precedents, newest first."""

    precedents: list[Precedent]


class LedgerStatus(BaseModel):
    """The ledger verified."""

    ok: bool
    records: int = Field(description="How many lineage records verified.")


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem} for status in (401, 403, 404, 409, 422, 503)
}


def _json(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _proposal(request: Request) -> Proposal:
    """The request's body as a proposal; a `RequestValidationError` (422) located under `body`."""
    body = await request.body()
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    if not _is_json(request.headers.get("content-type")):
        raise RequestValidationError(
            [
                {
                    "type": "json_type",
                    "loc": ("body",),
                    "msg": "send the proposal as JSON, with `Content-Type: application/json`",
                    "input": None,
                }
            ]
        )
    try:
        return Proposal.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in errors]
        ) from None


def _decide_route(
    identify: Callable[[Request], Awaitable[Identity]],
) -> type[APIRoute]:
    """The route class of `POST /decisions`, whose endpoint takes `(proposal, identity)`.

    Its signature documents the route in OpenAPI as any other; serving it skips FastAPI's
    dependency solving, which took a tenth of the server's time a decision (one worker, acme:
    1.33 -> 1.21 ms of CPU a decision). The order and the answers are those of the dependencies:
    the token first (401), then the body (422, located under `body`).
    """

    class DecideRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            endpoint = self.endpoint

            async def handler(request: Request) -> Response:
                identity = await identify(request)
                response: Response = await endpoint(await _proposal(request), identity)
                return response

            return handler

    return DecideRoute


def authenticated(tokens: Tokens, credentials: HTTPAuthorizationCredentials | None) -> Identity:
    """Who a request's bearer token stands for; 401 `unauthenticated` without a live one."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ProblemError(
            401,
            "unauthenticated",
            "send `Authorization: Bearer <token>`; make a token with `discretion token create`",
            headers=challenge,
        )
    identity = tokens.authenticate(credentials.credentials)
    if identity is None:
        raise ProblemError(
            401,
            "unauthenticated",
            "the bearer token is unknown or revoked; make a new one with `discretion token create`",
            headers=challenge,
        )
    return identity


def a_person(identity: Identity, only: str) -> Identity:
    """`identity` when it is a person's; 403 `forbidden` for an AI agent, saying `only` what."""
    if identity.is_ai:
        raise ProblemError(
            403,
            "forbidden",
            f"{identity.subject_id!r} is an AI agent: agents propose, {only}",
        )
    return identity


def api_router(state: AppState) -> APIRouter:
    """The `/v1` routes over one guard."""
    router = APIRouter(prefix="/v1", responses=_ERRORS)
    bearer = HTTPBearer(
        auto_error=False, description="A token made with `discretion token create`."
    )
    guard = state.guard
    # Decisions run on the event loop one at a time, or side by side in worker threads up to
    # `state.deciding`; on SQLite the store makes their writes take turns, across this
    # process's threads and the other workers alike (`WriterTurns`).

    # Dependencies are coroutines: a token look-up is one indexed read (~0.15 ms on SQLite),
    # cheaper than the hop to a worker thread a plain function would cost per dependency.
    async def caller(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Identity:
        return authenticated(state.tokens, credentials)

    async def identify(request: Request) -> Identity:
        return authenticated(state.tokens, await bearer(request))

    Caller = Annotated[Identity, Depends(caller)]

    async def person(identity: Caller) -> Identity:
        return a_person(
            identity, "only people decide routed cases, read the queue or manage precedent"
        )

    Person = Annotated[Identity, Depends(person)]

    async def decide(proposal: Proposal, identity: Caller) -> Response:
        """Decide a proposal as the token's subject, and record the decision.

        The proposal's actor must be the token's subject, role and kind. A retry with the same
        `idempotency_key` gets the same decision. A routed decision opens an approval under the
        decision's id.
        """
        expected = identity.actor()
        if proposal.actor != expected:
            raise ProblemError(
                403,
                "forbidden",
                f"actor {proposal.actor.model_dump()} does not match the token's subject"
                f" {expected.model_dump()}; propose as yourself",
            )
        if state.deciding is None:
            # Nothing it waits on is slower than the hop to a worker thread (`create_app`).
            return _json(guard.decide(proposal))
        # One hop to a worker thread: the store or the context providers wait on the network.
        # Only a few decisions run at once (`create_app(concurrency=)`); the others wait here.
        return _json(await run_sync(guard.decide, proposal, limiter=state.deciding))

    router.add_api_route(
        "/decisions",
        decide,
        methods=["POST"],
        summary="Decide a proposal",
        response_model=Decision,
        response_description="The decision, recorded in the lineage before it is answered.",
        route_class_override=_decide_route(identify),
    )

    @router.get("/decisions/{decision_id}", summary="Read a decision", response_model=Decision)
    def get_decision(decision_id: DecisionId, identity: Caller) -> Response:
        """A decision by id: people read any; an agent reads its own."""
        found = state.store.decision(decision_id)
        if found is None or (identity.is_ai and found.actor_id != identity.subject_id):
            raise ApprovalNotFound(f"no decision {decision_id!r}", approval_id=decision_id)
        return _json(found)

    @router.get("/approvals", summary="List approvals", response_model=ApprovalList)
    def list_approvals(
        identity: Person,
        status: ApprovalStatus | None = None,
        role: Annotated[
            str | None,
            Query(
                max_length=MAX_NAME,
                pattern=PRINTABLE,
                description="Only those a holder of this role may decide.",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> Response:
        """Approvals, soonest due first."""
        found = guard.approvals.list(status=status, role=role, limit=limit)
        return _json(ApprovalList(approvals=found))

    @router.post("/approvals/expire", summary="Expire overdue approvals")
    def expire(identity: Person) -> Response:
        """Expire every pending approval past its due time (run it from a scheduler)."""
        return _json(ApprovalList(approvals=guard.approvals.expire_due()))

    @router.get("/approvals/{approval_id}", summary="Read an approval", response_model=Approval)
    def get_approval(approval_id: DecisionId, identity: Caller) -> Response:
        """An approval: people read any; an agent reads those it proposed."""
        found = guard.approvals.get(approval_id)
        if identity.is_ai and found.actor_id != identity.subject_id:
            raise ApprovalNotFound(f"no approval {approval_id!r}", approval_id=approval_id)
        return _json(found)

    @router.get("/approvals/{approval_id}/history", summary="An approval's lineage")
    def history(approval_id: DecisionId, identity: Person) -> list[dict[str, Any]]:
        """The lineage records about an approval: its decision, transitions and execution."""
        guard.approvals.get(approval_id)
        return [
            {**record, "at": record["at"].isoformat() if record["at"] else None}
            for record in guard.approvals.history(approval_id)
        ]

    def run_later(background: BackgroundTasks, approval: Approval) -> None:
        # Approved calls whose tool is registered run after the answer is sent, once.
        if is_runnable(guard, approval):
            background.add_task(guard.approvals.run_approved)

    @router.post("/approvals/{approval_id}/approve", summary="Approve", response_model=Approval)
    def approve(
        approval_id: DecisionId, body: ApproveIn, identity: Person, background: BackgroundTasks
    ) -> Response:
        """Grant a routed case (possibly for less) and queue its tool call to run once.

        409 `conflict` when someone else decided it first; 409 `stale` when the re-check under
        the current pack, budgets and precedents fails; 403 when your role does not cover it
        (escalate instead), you proposed it, or you are an AI agent.
        """
        current = guard.approvals.get(approval_id)
        amount = money_in(
            body.amount,
            current.requested_amount.currency if current.requested_amount else None,
        )
        approved = guard.approvals.approve(
            approval_id,
            approver=identity.actor(),
            note=body.note,
            amount=amount,
            precedent=body.precedent,
        )
        run_later(background, approved)
        return _json(approved)

    @router.post("/approvals/{approval_id}/reject", summary="Reject", response_model=Approval)
    def reject(approval_id: DecisionId, body: NoteIn, identity: Person) -> Response:
        """Refuse a routed case."""
        return _json(guard.approvals.reject(approval_id, approver=identity.actor(), note=body.note))

    @router.post("/approvals/{approval_id}/escalate", summary="Escalate", response_model=Approval)
    def escalate(approval_id: DecisionId, body: NoteIn, identity: Person) -> Response:
        """Send a case one rung up the ladder."""
        return _json(
            guard.approvals.escalate(approval_id, approver=identity.actor(), note=body.note)
        )

    @router.post("/approvals/{approval_id}/cancel", summary="Cancel", response_model=Approval)
    def cancel(approval_id: DecisionId, body: NoteIn, identity: Caller) -> Response:
        """Withdraw a routed case: its proposer (an agent too) or a person who may decide it."""
        if identity.is_ai and guard.approvals.get(approval_id).actor_id != identity.subject_id:
            # Another agent's case does not exist for this one, as on GET.
            raise ApprovalNotFound(f"no approval {approval_id!r}", approval_id=approval_id)
        return _json(guard.approvals.cancel(approval_id, by=identity.actor(), note=body.note))

    def own_execution(key: str, identity: Identity) -> Execution:
        # A call is its proposer's alone: anyone else is told it does not exist.
        found = guard.executions.get(key)
        decision = state.store.decision(found.decision_id) if found is not None else None
        if found is None or decision is None or decision.actor_id != identity.subject_id:
            raise ProblemError(
                404,
                "not_found",
                f"no execution {key!r} of yours; GET /v1/executions lists your queued calls",
            )
        return found

    def execution_json(execution: Execution) -> Response:
        return _json(ExecutionView.of(execution))

    def conflict(exc: ExecutionError, key: str) -> ProblemError:
        return ProblemError(409, "conflict", str(exc), execution=guard.executions.get(key))

    @router.get("/executions", summary="List your queued calls", response_model=ExecutionList)
    def list_executions(
        identity: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> Response:
        """The approved calls of your own decisions that wait to run (`pending`), oldest first.

        Allowed calls are not queued: you run them yourself when the decision says so.
        """
        found = guard.executions.pending(limit, actor_id=identity.subject_id)
        return _json(ExecutionList(executions=[ExecutionView.of(e) for e in found]))

    @router.get("/executions/{key:path}", summary="Read an execution", response_model=ExecutionView)
    def get_execution(key: ExecutionKey, identity: Caller) -> Response:
        """One of your calls as it stands.

        `pending`, `running`, `succeeded` (with its result) or `failed` (with its error).
        """
        return execution_json(own_execution(key, identity))

    @router.post(
        "/executions/{key:path}/claim",
        summary="Claim a queued call",
        response_model=ExecutionView,
    )
    def claim_execution(key: ExecutionKey, identity: Caller) -> Response:
        """Claim one of your queued (or failed) calls to run it now, exactly once.

        Recorded as `execution.started`. 409 `conflict`, with the execution as it stands, when
        it was already claimed (running) or succeeded: do not run the tool.
        """
        own_execution(key, identity)
        try:
            return execution_json(guard.executions.claim(key))
        except ExecutionError as exc:
            raise conflict(exc, key) from exc

    @router.post(
        "/executions/{key:path}/result",
        summary="Report how a claimed call ended",
        response_model=ExecutionView,
    )
    def report_execution(key: ExecutionKey, body: ReportIn, identity: Caller) -> Response:
        """Record the tool's `result`, or the `error` it raised, for the call you claimed.

        Recorded once, as `execution.succeeded` or `execution.failed`; 409 `conflict`, with the
        execution as it stands, when it is not running (not claimed, or already reported) or an
        integration's process claimed it (that process records how it ends).
        """
        own_execution(key, identity)
        try:
            if "error" in body.model_fields_set:
                return execution_json(guard.executions.report(key, error=body.error))
            return execution_json(guard.executions.report(key, result=body.result))
        except ExecutionError as exc:
            raise conflict(exc, key) from exc

    @router.get("/precedents", summary="List precedents", response_model=PrecedentList)
    def list_precedents(
        identity: Person,
        action: NameQuery = None,
        reason: NameQuery = None,
        active_only: bool = False,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        """Precedents, newest first; `active_only` leaves out revoked, expired, used-up ones."""
        found = guard.precedents.list(
            action=action, reason=reason, active_only=active_only, limit=limit
        )
        return _json(PrecedentList(precedents=found))

    @router.get("/precedents/{precedent_id}", summary="Read a precedent", response_model=Precedent)
    def get_precedent(precedent_id: PrecedentId, identity: Person) -> Response:
        """A precedent by id."""
        found = guard.precedents.get(precedent_id)
        if found is None:
            raise ProblemError(404, "not_found", f"no precedent {precedent_id!r}")
        return _json(found)

    @router.post(
        "/precedents/{precedent_id}/revoke", summary="Revoke a precedent", response_model=Precedent
    )
    def revoke_precedent(precedent_id: PrecedentId, body: RevokeIn, identity: Person) -> Response:
        """Stop a precedent being cited; approvals that rely on it will not run."""
        return _json(guard.precedents.revoke(precedent_id, by=identity.actor(), reason=body.reason))

    @router.get("/ledger/verify", summary="Verify the lineage", response_model=LedgerStatus)
    def verify(identity: Person) -> Response:
        """Check the whole hash chain; 409 `ledger_integrity` names the first bad record."""
        return _json(LedgerStatus(ok=True, records=state.store.verify()))

    return router
