"""The approver web UI under `/ui`: server-rendered with jinja2 and plain HTML forms.

Sign in with a person's bearer token; the queue shows what your role may decide, soonest due
first, filtered and searched as you ask; a case page shows the customer's ticket, why the case
reached you (said to you, apart from what the agent was told), like cases, and lets you approve
(possibly for less, and possibly setting precedent or marking a one-off), reject or escalate,
each with a required note. Every form carries the session's CSRF token. The same `Approvals`
rules apply as over the API. The one script, `static/local-time.js`, only shows the UTC times
the pages carry in the approver's own zone; everything works without it.
"""

# FastAPI reads the routes' annotations at runtime, including aliases local to a factory:
# they are not postponed here.

import difflib
import json
import secrets
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from discretion.api._limits import SignInThrottle
from discretion.api._params import NO_NUL, DecisionId
from discretion.api._problems import status_of
from discretion.api._sessions import Session, same_secret
from discretion.api._state import AppState, is_runnable, money_in
from discretion.approvals import Approval, ApprovalStatus
from discretion.authority import rungs_above
from discretion.errors import DiscretionError, ProposalError
from discretion.policy import SYSTEM_RULES
from discretion.precedent import PRECEDENT_RULES, PrecedentSpec

__all__ = ["SESSION_COOKIE", "FormRejected", "SignInRequired", "ui_router"]

SESSION_COOKIE = "discretion_session"
_SIGN_IN_COOKIE = "discretion_sign_in"

FormText = Annotated[str, Form(pattern=NO_NUL)]
"""A form's text: a NUL (which no store holds) is a 422, as over the JSON API."""


_DONE = frozenset({"approved", "rejected", "escalated"})
"""What the desk redirects to a case page with, after acting on it (`?done=`)."""


class SignInRequired(Exception):
    """The request has no live session: answered with a redirect to the sign-in page."""


class FormRejected(Exception):
    """A form came without this session's CSRF token: answered 403, and nothing is done."""


def _describe(state: AppState, rule_id: str) -> str:
    pack = state.guard.pack
    for action in pack.actions.values():
        for rule in action.rules:
            if rule.id == rule_id:
                return rule.description or rule.message or ""
    for budget in pack.budgets:
        if budget.id == rule_id:
            over = budget.calendar or budget.window
            return budget.message or f"budget: {budget.key} over {over}"
    return SYSTEM_RULES.get(rule_id) or PRECEDENT_RULES.get(rule_id, "")


QUEUE_AGES = {
    "": "any age",
    "1h": "waiting 1 hour or more",
    "4h": "waiting 4 hours or more",
    "24h": "waiting a day or more",
    "overdue": "overdue",
}
"""The queue's age filter: its values and how the form names them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueFilter:
    """What the approver asked the queue to show; empty fields ask for everything."""

    action: str = ""
    reason: str = ""
    """An exception reason, or `standard` for cases inside standard policy."""
    role: str = ""
    """The role a case is routed to."""
    min_amount: str = ""
    max_amount: str = ""
    age: str = ""
    """A key of `QUEUE_AGES`."""
    search: str = ""
    """Part of a case, order, customer or approval id, any case."""

    @property
    def is_empty(self) -> bool:
        """Whether it shows every waiting case."""
        return not any(getattr(self, name) for name in self.__dataclass_fields__)

    @staticmethod
    def _amount(text: str, which: str) -> Decimal | None:
        if not text:
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite():
            raise ValueError(f"the {which} amount {text!r} is not a number such as 49.99")
        return value

    def admits(self, approval: Approval, now: datetime) -> bool:
        """Whether `approval` is one to show.

        Raises:
            ValueError: an amount or age the filter cannot read, named for the approver.
        """
        low = self._amount(self.min_amount, "smallest")
        high = self._amount(self.max_amount, "largest")
        if self.age not in QUEUE_AGES:
            raise ValueError(f"the age {self.age!r} is not one of {', '.join(QUEUE_AGES)}")
        amount = approval.requested_amount.amount if approval.requested_amount else None
        waited = now - approval.opened_at
        is_old = (
            not self.age
            or (self.age == "overdue" and approval.is_overdue(now))
            or (self.age in _AGES and waited >= _AGES[self.age])
        )
        needle = self.search.casefold()
        ids = (
            approval.id,
            approval.case_id,
            approval.customer_id,
            approval.proposal.get("order_id"),
        )
        return (
            (not self.action or approval.action == self.action)
            and (not self.reason or (approval.reason or "standard") == self.reason)
            and (not self.role or approval.required_role == self.role)
            and (low is None or (amount is not None and amount >= low))
            and (high is None or (amount is not None and amount <= high))
            and is_old
            and (not needle or any(needle in str(i).casefold() for i in ids if i))
        )


_MAX_DAYS = 3650
"""The longest a precedent set on the desk may stand: ten years."""
_AGES = {"1h": timedelta(hours=1), "4h": timedelta(hours=4), "24h": timedelta(hours=24)}


def role_warning(state: AppState, role_id: str) -> str | None:
    """Why a signed-in role will see no cases in the pack served, or None when it will."""
    pack = state.guard.pack
    role = pack.role(role_id)
    if role is None:
        roles = [r.id for r in pack.roles if not r.is_ai]
        close = difflib.get_close_matches(role_id, roles, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (
            f"Your role {role_id!r} is not a role of the pack this desk serves ({pack.name!r})"
            f"{hint}, so no case will reach you. Its roles: {', '.join(roles)}. Ask for a token"
            " made with `discretion token create --pack` for this pack."
        )
    if not any(role.holds(action) for action in role.authority):
        return (
            f"Your role {role_id!r} has no authority in pack {pack.name!r}: it may not approve"
            " any action, so no case will reach you."
        )
    return None


def _limit(
    state: AppState, role_id: str, action: str, *, exception: bool, currency: str | None = None
) -> str | None:
    pack = state.guard.pack
    if currency is not None and (
        currency in pack.units or (currency in pack.accepts and pack.rates is None)
    ):
        # The limit in the case's own currency (or unit); with rates, the base's (the rate is
        # the case's).
        pack = pack.in_currency(currency)
    role = pack.role(role_id)
    authority = role.authority.get(action) if role is not None else None
    if authority is None:
        return None
    minor = authority.exception_minor if exception else authority.standard_minor
    return str(pack.money(minor))


def for_approver(state: AppState, approval: Approval, decision: Any) -> list[str]:
    """Why the case is on the desk, said to the approver (the agent was told something else).

    The agent's explanation keeps limits private and tells it what to say to the customer; the
    approver sees whose limit the case passed, what the rules found, and what they may grant.
    """
    amount = approval.requested_amount
    asked = f"{approval.action} of {amount}" if amount is not None else approval.action
    reason = approval.reason
    exception = reason is not None
    kind = f"as an exception under {reason!r}" if exception else "inside standard policy"
    said = [f"{approval.actor_id} ({approval.actor_role}) proposed a {asked}, {kind}."]
    theirs = _limit(
        state,
        approval.actor_role,
        approval.action,
        exception=exception,
        currency=amount.currency if amount is not None else None,
    )
    if theirs is not None:
        said.append(
            f"The {approval.actor_role} role may grant up to {theirs} {kind} for"
            f" {approval.action}; above it, or where a rule asks, a person decides."
        )
    found = [
        f"{_describe(state, rule_id) or rule_id} ({rule_id})"
        for rule_id in decision.rules
        if rule_id != "discretion.claim.grounded"
    ]
    if found:
        said.append("What the rules found: " + "; ".join(found) + ".")
    cap = _limit(
        state,
        approval.required_role,
        approval.action,
        exception=exception,
        currency=amount.currency if amount is not None else None,
    )
    if cap is not None:
        said.append(f"It is routed to {approval.required_role}, who may grant up to {cap} {kind}.")
    return said


def _scope_lines(scope: dict[str, Any]) -> str:
    return "\n".join(f"{key} = {json.dumps(value)}" for key, value in scope.items())


def _precedent(
    *,
    mode: str,
    scope_text: str,
    max_amount: str,
    expires_days: str,
    citations: str,
    note: str,
    currency: str | None,
    state: AppState,
) -> PrecedentSpec | None:
    if mode not in ("precedent", "one_off"):
        return None
    scope: dict[str, Any] = {}
    for line in scope_text.splitlines():
        if not line.strip():
            continue
        key, sep, raw = line.partition("=")
        if not sep:
            raise ProposalError(
                f"precedent scope: write one `field = value` per line; {line.strip()!r} has no '='",
                field="precedent.scope",
            )
        try:
            value = json.loads(raw.strip())
        except ValueError:
            value = raw.strip()
        except RecursionError:
            raise ProposalError(
                f"precedent scope: the value of {key.strip()!r} is nested too deeply; give a"
                " value, a list of values or a range",
                field="precedent.scope",
            ) from None
        scope[key.strip()] = value
    try:
        days = int(expires_days or "30")
        cap = int(citations or "1")
    except ValueError:
        raise ProposalError(
            "precedent: expiry days and citations must be whole numbers", field="precedent"
        ) from None
    if not 1 <= days <= _MAX_DAYS:
        raise ProposalError(
            f"precedent: it expires in 1 to {_MAX_DAYS} days, not {days}", field="precedent"
        )
    data: dict[str, Any] = {
        "scope": scope,
        "learnable": mode == "precedent",
        "note": note,
        "citations": cap,
        "expires_at": state.guard.now() + timedelta(days=days),
    }
    if max_amount.strip():
        data["max_amount"] = {"amount": max_amount.strip(), "currency": currency or ""}
    try:
        return PrecedentSpec.model_validate(data)
    except ValidationError as exc:
        faults = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'precedent'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise ProposalError(f"precedent: {faults}", field="precedent") from None


def ui_router(state: AppState) -> APIRouter:
    """The `/ui` routes over one guard."""
    router = APIRouter(prefix="/ui", include_in_schema=False)
    guard = state.guard
    ttl_s = int(state.sessions.ttl.total_seconds())
    throttle = SignInThrottle(guard.now, max_failures=5, window=timedelta(minutes=15))

    def render(
        request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        session = context.get("session")
        if isinstance(session, Session):
            context = {**context, "role_warning": role_warning(state, session.identity.role)}
        response = state.templates.TemplateResponse(request, name, context, status_code=status)
        # Case pages show money and facts: keep them out of shared caches and the history.
        response.headers["Cache-Control"] = "no-store"
        return response

    def signed_in(request: Request) -> Session:
        session = state.sessions.find(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise SignInRequired()
        return session

    def checked(request: Request, csrf_token: str) -> Session:
        session = signed_in(request)
        if not same_secret(csrf_token, session.csrf):
            raise FormRejected(
                "the form's CSRF token is missing or wrong, so nothing was done; reload the"
                " page and try again"
            )
        return session

    # Signing in --------------------------------------------------------------------------------

    @router.get("/sign-in")
    def sign_in_page(request: Request) -> HTMLResponse:
        nonce = secrets.token_urlsafe(32)
        response = render(request, "sign_in.html", {"csrf": nonce, "session": None})
        response.set_cookie(
            _SIGN_IN_COOKIE,
            nonce,
            httponly=True,
            samesite="strict",
            secure=state.secure_cookies,
            max_age=600,
        )
        return response

    @router.post("/sign-in")
    def sign_in(request: Request, token: FormText = "", csrf_token: FormText = "") -> Response:
        expected = request.cookies.get(_SIGN_IN_COOKIE)
        client = request.client.host if request.client is not None else "unknown"
        wait = throttle.retry_after(client)
        if wait is not None:
            minutes = max(1, -(-int(wait.total_seconds()) // 60))
            refused = render(
                request,
                "sign_in.html",
                {
                    "csrf": expected or "",
                    "session": None,
                    "error": f"too many failed sign-ins from your address; try again in"
                    f" {minutes} minute(s)",
                },
                status=429,
            )
            refused.headers["Retry-After"] = str(max(1, int(wait.total_seconds())))
            return refused
        if expected is None or not same_secret(csrf_token, expected):
            return render(
                request,
                "sign_in.html",
                {
                    "csrf": expected or "",
                    "session": None,
                    "error": "the sign-in form expired or was not sent by this page; reload it",
                },
                status=403,
            )
        identity = state.tokens.authenticate(token.strip())
        if identity is None or identity.is_ai:
            throttle.failed(client)
            message = (
                "that token belongs to an AI agent: only people sign in to decide cases"
                if identity is not None
                else "that token is unknown or revoked; ask for one made with `discretion token"
                " create`"
            )
            return render(
                request,
                "sign_in.html",
                {"csrf": expected, "session": None, "error": message},
                status=403 if identity is not None else 401,
            )
        throttle.succeeded(client)
        cookie, _ = state.sessions.open(identity)
        response = RedirectResponse("/ui", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            httponly=True,
            samesite="strict",
            secure=state.secure_cookies,
            max_age=ttl_s,
        )
        response.delete_cookie(_SIGN_IN_COOKIE)
        return response

    @router.post("/sign-out")
    def sign_out(request: Request, csrf_token: FormText = "") -> Response:
        checked(request, csrf_token)
        state.sessions.close(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/ui/sign-in", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # The queue ---------------------------------------------------------------------------------

    @router.get("")
    def queue(
        request: Request,
        action: str = "",
        reason: str = "",
        role: str = "",
        min_amount: str = "",
        max_amount: str = "",
        age: str = "",
        q: str = "",
    ) -> HTMLResponse:
        session = signed_in(request)
        me = session.identity
        mine = [
            a
            for a in guard.approvals.list(status=ApprovalStatus.PENDING, role=me.role)
            if a.actor_id != me.subject_id
        ]
        now = guard.now()
        wanted = QueueFilter(
            action=action.strip(),
            reason=reason.strip(),
            role=role.strip(),
            min_amount=min_amount.strip(),
            max_amount=max_amount.strip(),
            age=age.strip(),
            search=q.strip(),
        )
        try:
            items = [a for a in mine if wanted.admits(a, now)]
            error = None
        except ValueError as exc:
            items, error = mine, str(exc)
        return render(
            request,
            "queue.html",
            {
                "session": session,
                "approvals": items,
                "waiting": len(mine),
                "now": now,
                "filter": wanted,
                "actions": sorted({a.action for a in mine} | ({action} - {""})),
                "reasons": sorted({a.reason or "standard" for a in mine} | ({reason} - {""})),
                "roles": sorted({a.required_role for a in mine} | ({role} - {""})),
                "ages": QUEUE_AGES,
                "error": error,
            },
        )

    # A case ------------------------------------------------------------------------------------

    def case_context(session: Session, approval: Approval) -> dict[str, Any]:
        pack = guard.pack
        me = session.identity
        decision = guard.approvals.decision(approval.id)
        body = state.store.decision_body(approval.id) or {}
        context = body.get("context", {})
        role = pack.role(me.role)
        required = pack.role(approval.required_role) or pack.highest_human
        is_pending = approval.status is ApprovalStatus.PENDING
        may_act = (
            is_pending
            and role is not None
            and not role.is_ai
            and me.subject_id != approval.actor_id
        )
        can_decide = may_act and role is not None and role.decides_for(required)
        above = list(rungs_above(pack, required)) if required.on_ladder else []
        action = pack.actions.get(approval.action)
        reason = action.reason(approval.reason) if action and approval.reason else None
        policy = reason.precedent if reason is not None else None
        try:
            similar = guard.similar(decision, limit=5)
        except DiscretionError:
            similar = []
        active = (
            guard.precedents.list(
                action=approval.action, reason=approval.reason, active_only=True, limit=10
            )
            if approval.reason
            else []
        )
        amount = approval.amount
        in_currency = approval.requested_amount.currency if approval.requested_amount else None
        default_days = 30
        if policy is not None:
            default_days = max(1, min(30, policy.max_expiry.days or 1))
        return {
            "session": session,
            "approval": approval,
            "decision": decision,
            "context": context,
            "ticket": approval.proposal.get("ticket"),
            "for_approver": for_approver(state, approval, decision),
            "rules": [(rule_id, _describe(state, rule_id)) for rule_id in decision.rules],
            "similar": similar,
            "active_precedents": active,
            "precedent_use": decision.precedents,
            "precedent_policy": policy,
            "precedent_scope": _scope_lines({k: context.get(k) for k in policy.scope})
            if policy is not None
            else "",
            "precedent_days": default_days,
            "precedent_keys": action.reads if action is not None else (),
            "precedent_citations": min(10, policy.max_citations or 10) if policy else 1,
            "customer_exposure": guard.approvals.exposure(
                customer_id=approval.customer_id, currency=in_currency
            )
            if approval.customer_id
            else None,
            "agent_exposure": guard.approvals.exposure(
                actor_id=approval.actor_id, currency=in_currency
            ),
            "history": guard.approvals.history(approval.id),
            "can_decide": can_decide,
            "can_escalate": may_act and bool(above),
            "escalate_to": above[0].id if above else None,
            "is_own": me.subject_id == approval.actor_id,
            "required": required,
            "now": guard.now(),
            "tool_json": json.dumps(approval.tool, indent=2, sort_keys=True)
            if approval.tool
            else None,
            "default_amount": str(amount.amount) if amount is not None else "",
            "form": {},
        }

    @router.get("/approvals/{approval_id}")
    def case(request: Request, approval_id: DecisionId) -> HTMLResponse:
        session = signed_in(request)
        try:
            approval = guard.approvals.get(approval_id)
        except DiscretionError as exc:
            status, _ = status_of(exc)
            return render(
                request, "error.html", {"session": session, "error": str(exc)}, status=status
            )
        notice = request.query_params.get("done")
        context = case_context(session, approval)
        if notice == "endorsed":
            context["notice"] = "Your approval is recorded; a second person must approve it."
        elif notice in _DONE:
            # Only what the desk itself redirects with: a crafted link shows no text of its own.
            context["notice"] = f"The case was {notice}."
        return render(request, "case.html", context)

    def act(
        request: Request,
        approval_id: str,
        csrf_token: str,
        form: dict[str, str],
        do: Callable[[Session], Approval],
        done: str,
    ) -> Response:
        session = checked(request, csrf_token)
        try:
            result = do(session)
        except DiscretionError as exc:
            status, _ = status_of(exc)
            try:
                approval = guard.approvals.get(approval_id)
            except DiscretionError:
                return render(
                    request, "error.html", {"session": session, "error": str(exc)}, status=status
                )
            context = case_context(session, approval)
            context.update(error=str(exc), form=form)
            return render(request, "case.html", context, status=status)
        if is_runnable(guard, result):
            guard.approvals.run_approved()
        if done == "approved" and result.status is ApprovalStatus.PENDING:
            done = "endorsed"  # the first of two approvals
        return RedirectResponse(f"/ui/approvals/{approval_id}?done={done}", status_code=303)

    @router.post("/approvals/{approval_id}/approve")
    def approve(
        request: Request,
        approval_id: DecisionId,
        note: FormText = "",
        amount: FormText = "",
        csrf_token: FormText = "",
        precedent_mode: FormText = "none",
        precedent_scope: FormText = "",
        precedent_max_amount: FormText = "",
        precedent_days: FormText = "",
        precedent_citations: FormText = "",
        precedent_note: FormText = "",
    ) -> Response:
        form = {
            "note": note,
            "amount": amount,
            "precedent_mode": precedent_mode,
            "precedent_scope": precedent_scope,
            "precedent_max_amount": precedent_max_amount,
            "precedent_days": precedent_days,
            "precedent_citations": precedent_citations,
            "precedent_note": precedent_note,
        }

        def do(session: Session) -> Approval:
            current = guard.approvals.get(approval_id)
            currency = current.requested_amount.currency if current.requested_amount else None
            granted = money_in(amount, currency)
            if granted is not None and granted == current.requested_amount:
                granted = None
            spec = _precedent(
                mode=precedent_mode,
                scope_text=precedent_scope,
                max_amount=precedent_max_amount,
                expires_days=precedent_days,
                citations=precedent_citations,
                note=precedent_note.strip() or note,
                currency=currency,
                state=state,
            )
            return guard.approvals.approve(
                approval_id,
                approver=session.identity.actor(),
                note=note,
                amount=granted,
                precedent=spec,
            )

        return act(request, approval_id, csrf_token, form, do, "approved")

    @router.post("/approvals/{approval_id}/reject")
    def reject(
        request: Request, approval_id: DecisionId, note: FormText = "", csrf_token: FormText = ""
    ) -> Response:
        def do(session: Session) -> Approval:
            return guard.approvals.reject(approval_id, approver=session.identity.actor(), note=note)

        return act(request, approval_id, csrf_token, {"reject_note": note}, do, "rejected")

    @router.post("/approvals/{approval_id}/escalate")
    def escalate(
        request: Request, approval_id: DecisionId, note: FormText = "", csrf_token: FormText = ""
    ) -> Response:
        def do(session: Session) -> Approval:
            return guard.approvals.escalate(
                approval_id, approver=session.identity.actor(), note=note
            )

        return act(request, approval_id, csrf_token, {"escalate_note": note}, do, "escalated")

    # Exposure over time ------------------------------------------------------------------------

    @router.get("/exposure")
    def exposure(request: Request, days: Annotated[int, Query(ge=1, le=366)] = 30) -> HTMLResponse:
        session = signed_in(request)
        rows = guard.approvals.exposure_report(days=days)
        by_day: dict[Any, list[int]] = defaultdict(lambda: [0, 0, 0])
        by_reason: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        by_role: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for row in rows:
            minor = row.total.minor
            day = by_day[row.day]
            day[0] += row.count
            day[1] += minor
            if row.reason is not None:
                day[2] += minor
                by_reason[row.reason][0] += row.count
                by_reason[row.reason][1] += minor
            by_role[row.role][0] += row.count
            by_role[row.role][1] += minor
        peak = max((v[1] for v in by_day.values()), default=0) or 1
        money = guard.pack.money
        return render(
            request,
            "exposure.html",
            {
                "session": session,
                "days": days,
                "rows": rows,
                "by_day": [
                    {
                        "day": day,
                        "count": v[0],
                        "total": money(v[1]),
                        "exceptions": money(v[2]),
                        "width": round(100 * v[1] / peak),
                        "exception_width": round(100 * v[2] / peak),
                    }
                    for day, v in sorted(by_day.items(), reverse=True)
                ],
                "by_reason": sorted(
                    ((k, v[0], money(v[1])) for k, v in by_reason.items()),
                    key=lambda item: -item[2].minor,
                ),
                "by_role": sorted(
                    ((k, v[0], money(v[1])) for k, v in by_role.items()),
                    key=lambda item: -item[2].minor,
                ),
            },
        )

    return router
