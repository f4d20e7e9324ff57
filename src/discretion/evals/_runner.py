"""Run eval suites: decide every case in a fresh ledger, twice and with paraphrases.

Each run of a case gets its own in-memory ledger, so cases never see each other's budgets or
precedents; the history a case needs is decided first in that ledger, at its own times.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from discretion.context import (
    ContextProvider,
    ContextRequest,
    JsonContextProvider,
    SqliteCaseStore,
    StaticContextProvider,
    records_of,
)
from discretion.decision import Outcome
from discretion.errors import (
    ApprovalError,
    ConfigurationError,
    DiscretionError,
    ProposalError,
)
from discretion.evals._judging import JudgeMode, JudgeSession, judge_usage
from discretion.evals._precedents import set_precedent
from discretion.evals._results import CaseResult, EvalRun, Run, SuiteRun
from discretion.evals._suite import (
    Case,
    Expectation,
    HistoryItem,
    PrecedentSetup,
    Suite,
    is_offset,
    resolve_time,
)
from discretion.guard import Guard
from discretion.judge import Judge
from discretion.money import Money
from discretion.policy import SYSTEM_RULES, PolicyPack, load_pack
from discretion.precedent import PRECEDENT_RULES
from discretion.proposal import Actor
from discretion.store import SqlStore

__all__ = ["run_suites"]


class _Clock:
    """The time a run decides at; moved by the runner for history items."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class _Ids:
    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._count = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}_{next(self._count):05d}"


@dataclass(slots=True)
class _Fixtures:
    """Packs and case databases, loaded once per path for all suites."""

    packs: dict[Path, PolicyPack] = field(default_factory=dict)
    contexts: dict[Path, ContextProvider] = field(default_factory=dict)

    def pack(self, path: Path) -> PolicyPack:
        if path not in self.packs:
            self.packs[path] = load_pack(path)
        return self.packs[path]

    def context(self, path: Path) -> ContextProvider:
        if path not in self.contexts:
            if path.suffix == ".json":
                self.contexts[path] = JsonContextProvider(path)
            elif path.suffix == ".sql":
                self.contexts[path] = SqliteCaseStore.from_sql(path)
            else:
                self.contexts[path] = SqliteCaseStore.open(path)
        return self.contexts[path]

    def close(self) -> None:
        for provider in self.contexts.values():
            if isinstance(provider, SqliteCaseStore):
                provider.close()


def _check_expectations(suite: Suite, pack: PolicyPack) -> None:
    """Catch a typo in an expectation at load, not as a mysterious failing case."""
    known = set(pack.rule_ids()) | set(SYSTEM_RULES) | set(PRECEDENT_RULES)
    roles = {role.id for role in pack.roles}
    for case in suite.cases:
        expectations = [case.expect] + [item.expect for item in case.history if item.expect]
        for expect in expectations:
            where = f"{suite.source}: case {case.id!r}"
            if expect.role is not None and expect.role not in roles:
                raise ConfigurationError(
                    f"{where}: expects role {expect.role!r}, which pack {pack.name!r} does not"
                    f" define; roles: {', '.join(sorted(roles))}"
                )
            for rule in expect.rules:
                if not _is_known(rule, known, pack):
                    raise ConfigurationError(
                        f"{where}: expects rule {rule!r}, which pack {pack.name!r} does not"
                        " define and discretion does not fire"
                    )


def _timed(pack: PolicyPack, facts: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """`facts` with each timestamp the pack declares, written as an offset (`-41d`), at `now`."""
    timed = dict(facts)
    for name, value in facts.items():
        spec = pack.fields.get(name)
        if (
            spec is not None
            and spec.type == "timestamp"
            and isinstance(value, str)
            and is_offset(value)
        ):
            timed[name] = resolve_time(value, now).isoformat()
    return timed


# Rules a decision carries once more with the fact they are about: `<rule>:<fact>`.
_PER_FACT = ("discretion.claim.contradicts-fact", "discretion.claim.unknown-fact")
_PER_ASSERTION = "discretion.asserted.unlock-exceeded"


def _is_known(rule: str, known: set[str], pack: PolicyPack) -> bool:
    """Whether a decision could carry `rule`.

    A rule of the pack or of discretion, or one of discretion's naming a fact
    (`discretion.claim.contradicts-fact:shipment.status`) or one of the pack's assertions
    (`discretion.asserted.unlock-exceeded:asserted.customer.reason`).
    """
    base, colon, name = rule.partition(":")
    if not colon:
        return rule in known
    if base == _PER_ASSERTION:
        return name in pack.asserted
    return base in _PER_FACT and bool(name)


def run_suites(
    suites: Iterable[Suite],
    *,
    judge: JudgeMode | str | None = None,
    live_judge: Judge | None = None,
    on_case: Callable[[CaseResult], None] | None = None,
) -> EvalRun:
    """Decide every case of every suite and compare with what each expects.

    Args:
        suites: loaded suites (`load_suites`).
        judge: `off` (no LLM judge), `recorded` (each case's recorded verdict) or `live` (the
            configured LLM judge) for every suite; each suite's own `judge` when None. A suite
            written for a judge is skipped, saying why, when run with `off`.
        live_judge: the judge `live` asks; an `OpenAIJudge` configured from the environment
            when absent.
        on_case: called after each case, for progress.

    Raises:
        ConfigurationError: a suite names a pack or context that does not load, or expects a
            role or rule its pack does not have.
    """
    forced = JudgeMode(judge) if judge is not None else None
    fixtures = _Fixtures()
    sessions: dict[JudgeMode, JudgeSession] = {}
    runs: list[SuiteRun] = []
    try:
        for suite in suites:
            pack = fixtures.pack(suite.path_of(suite.pack))
            _check_expectations(suite, pack)
            base: ContextProvider = (
                fixtures.context(suite.path_of(suite.context))
                if suite.context is not None
                else StaticContextProvider()
            )
            mode = forced or JudgeMode(suite.judge)
            if mode not in sessions:
                sessions[mode] = JudgeSession(mode, live=live_judge)
            skip = None
            if mode is JudgeMode.OFF and suite.judge != JudgeMode.OFF.value:
                skip = f"written for a judge ({suite.judge}); run with --judge {suite.judge}"
            results = []
            for case in suite.cases:
                result = (
                    _run_case(suite, case, pack, base, sessions[mode])
                    if skip is None
                    else CaseResult(suite=suite.suite, case=case, first=None, skipped=skip)
                )
                results.append(result)
                if on_case is not None:
                    on_case(result)
            runs.append(SuiteRun(suite=suite, pack=pack, results=tuple(results), judge=mode))
    finally:
        fixtures.close()
    return EvalRun(suites=tuple(runs), judge=forced)


def _run_case(
    suite: Suite, case: Case, pack: PolicyPack, base: ContextProvider, session: JudgeSession
) -> CaseResult:
    failures: list[str] = []
    rules_seen: set[str] = set()
    texts: list[tuple[str, str | None]] = [("first", None), ("repeat", None)]
    texts += [(f"paraphrase {i}", text) for i, text in enumerate(case.paraphrases, start=1)]
    runs: list[Run] = []
    for label, text in texts:
        new_runs, history_failures, seen = _run_once(
            suite, case, pack, base, session, label=label, text=text
        )
        runs.extend(new_runs)
        rules_seen |= seen
        if label == "first":
            failures.extend(history_failures)
    first = runs[0]
    failures.extend(_compare(case.expect, first))
    retry = next((run for run in runs if run.label == "retry"), None)
    if retry is not None and retry.decision_id != first.decision_id:
        failures.append(
            f"a retry with the same idempotency key got decision {retry.decision_id},"
            f" not {first.decision_id}"
        )
    for run in runs[1:]:
        if run.key() != first.key():
            failures.append(
                f"{run.label} got {_describe(run)} but the first run got {_describe(first)}"
            )
    return CaseResult(
        suite=suite.suite,
        case=case,
        first=first,
        runs=tuple(runs),
        failures=tuple(failures),
        rules_seen=frozenset(rules_seen),
        escalation=_escalation(case.expect, first, pack),
    )


def _describe(run: Run) -> str:
    if run.outcome == "route":
        return f"route to {run.required_role}"
    if run.outcome == "error":
        field = f" at {run.error_field!r}" if run.error_field else ""
        return f"error ({run.error_type}{field}: {run.error})"
    return run.outcome


def _compare(expect: Expectation, run: Run, *, what: str = "") -> list[str]:
    failures: list[str] = []
    # A history item may expect a route without naming the role: any role will do.
    wanted = (
        f"route to {expect.role}"
        if expect.outcome == "route" and expect.role is not None
        else expect.outcome
    )
    if run.outcome != expect.outcome or (
        expect.outcome == "route" and expect.role is not None and run.required_role != expect.role
    ):
        failures.append(f"{what}expected {wanted}, got {_describe(run)}")
    missing = [rule for rule in expect.rules if rule not in run.rules]
    if missing:
        failures.append(
            f"{what}expected rules {', '.join(missing)} among {', '.join(run.rules) or 'none'}"
        )
    if expect.error is not None and run.error_type != expect.error:
        failures.append(f"{what}expected a {expect.error}, got {run.error_type or run.outcome}")
    if expect.field is not None and run.error_field != expect.field:
        failures.append(
            f"{what}expected the error to name {expect.field!r}, got {run.error_field!r}"
        )
    return failures


def _escalation(expect: Expectation, run: Run, pack: PolicyPack) -> str | None:
    if expect.outcome != "route" or run.outcome != "route" or expect.role == run.required_role:
        return None
    wanted = pack.role(expect.role or "")
    got = pack.role(run.required_role or "")
    if wanted is None or got is None:
        return None
    return "over" if got.rank > wanted.rank else "under"


def _proposal(
    suite: Suite,
    data: Mapping[str, Any],
    *,
    key: str,
    text: str | None = None,
    precedents: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    proposal: dict[str, Any] = {"actor": suite.actor, **data, "idempotency_key": key}
    given = proposal.get("rationale")
    if given is not None and not isinstance(given, Mapping):
        return proposal  # not a rationale: the proposal is refused as it is
    rationale = dict(given or {})
    if text is not None:
        rationale["text"] = text
    if isinstance(rationale.get("precedents"), list):
        names = precedents or {}
        rationale["precedents"] = [
            names.get(str(ref)[1:], str(ref)) if str(ref).startswith("@") else ref
            for ref in rationale["precedents"]
        ]
    if rationale:
        proposal["rationale"] = rationale
    return proposal


_RECORDS = ("customer", "order", "case")


class _Overlay:
    """The suite's context, with the case's facts and then a history item's laid over it.

    Facts laid over the context stand for the records the proposal names: a customer, an order
    or a case the case data does not hold is taken to be on record, with the ids the proposal
    names (`order.id`, `order.customer_id`, ... for a pack's `entities`), when the suite, the
    case or the history item lays facts over the context. Records the case data holds are
    checked as they are; with no facts laid over, an unknown record stays unknown.
    """

    def __init__(self, base: ContextProvider, facts: Mapping[str, Any]) -> None:
        self._base = base
        self._facts = dict(facts)
        self.item: Mapping[str, Any] = {}

    def records_of(self, name: str) -> frozenset[str]:
        return records_of(self._base, name)

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        answer = dict(self._base.fetch(request))
        layers = (self._facts, self.item)
        for layer in layers:
            answer.update((name, layer[name]) for name in request.fields if name in layer)
        named = {
            "customer": request.customer_id,
            "order": request.order_id,
            "case": request.case_id,
        }
        described = any(layers)
        for kind in _RECORDS:
            if named[kind] is None or not described or answer.get(f"{kind}.id") is not None:
                continue
            for name in request.fields:
                if name == f"{kind}.id":
                    answer[name] = named[kind]
                elif name.startswith(f"{kind}.") and name.endswith("_id"):
                    parent = name[len(kind) + 1 : -3]
                    answer.setdefault(name, named.get(parent))
        return answer


def _run_once(
    suite: Suite,
    case: Case,
    pack: PolicyPack,
    base: ContextProvider,
    session: JudgeSession,
    *,
    label: str,
    text: str | None,
) -> tuple[list[Run], list[str], set[str]]:
    now = case.now or suite.now
    clock = _Clock(now)
    # A timestamp may be written as an offset from the case's clock, for its history too.
    context = _Overlay(base, _timed(pack, {**suite.facts, **case.facts}, now))
    store = SqlStore("sqlite://")
    try:
        guard = Guard(
            pack,
            store=store,
            context=context,
            clock=clock,
            ids=_Ids(f"{case.id}.{label.replace(' ', '')}"),
            **session.guard_options(case),
        )
        failures: list[str] = []
        seen: set[str] = set()
        names: dict[str, str] = {}
        for index, repeated in enumerate(case.history):
            last: Run | None = None
            for n in range(1, repeated.repeat + 1):
                item = repeated.nth(n)
                clock.now = resolve_time(item.at, now)
                context.item = _timed(pack, item.facts, now)
                proposal = _proposal(
                    suite,
                    item.proposal,
                    key=f"eval:{case.id}:h{index}.{n}",
                    precedents=names,
                )
                last = _decide(guard, proposal, label=f"history[{index}]")
                seen.update(last.rules)
                what = f"history[{index}]" + (f" #{n}" if item.repeat > 1 else "") + ": "
                if item.expect is not None:
                    failures.extend(_compare(item.expect, last, what=what))
                elif last.outcome == "error":
                    failures.append(f"{what}expected a decision, got {_describe(last)}")
                if item.people():
                    failures.extend(_desk(guard, item, last, clock, now, what=what))
                    clock.now = resolve_time(item.at, now)
            if repeated.precedent is not None and last is not None:
                failures.extend(_set_precedent(guard, repeated.precedent, last, names, now=now))
        clock.now = now
        context.item = {}
        proposal = _proposal(
            suite, case.proposal, key=f"eval:{case.id}", text=text, precedents=names
        )
        runs = [_decide(guard, proposal, label=label)]
        if label == "first":
            # Invariant 5: the same key, retried, gets the same decision.
            runs.append(_decide(guard, proposal, label="retry"))
        for run in runs:
            seen.update(run.rules)
        return runs, failures, seen
    finally:
        store.close()


def _decide(guard: Guard, proposal: dict[str, Any], *, label: str) -> Run:
    try:
        decision = guard.decide(proposal)
    except DiscretionError as exc:
        return Run(
            label=label,
            outcome="error",
            error=str(exc),
            error_type=type(exc).__name__,
            error_field=exc.field if isinstance(exc, ProposalError) else None,
            explanation=str(exc),
        )
    # A retry returns the recorded decision: it cost no judge call of its own.
    calls, tokens = judge_usage(decision) if label != "retry" else (0, 0)
    amount = decision.amount
    return Run(
        label=label,
        outcome=decision.outcome.value,
        required_role=decision.required_role if decision.outcome is Outcome.ROUTE else None,
        rules=tuple(decision.rules),
        reason=decision.reason,
        amount=amount.amount if amount is not None else None,
        currency=amount.currency if amount is not None else None,
        explanation=decision.explanation,
        causes=tuple(decision.causes),
        decision_id=decision.id,
        judge_calls=calls,
        judge_tokens=tokens,
    )


def _desk(
    guard: Guard, item: HistoryItem, run: Run, clock: _Clock, now: datetime, *, what: str
) -> list[str]:
    """The people of `item` approving (or rejecting) its routed case, as the desk does."""
    if run.outcome != "route" or run.decision_id is None:
        return [f"{what}a person can decide only a routed case; it was {run.outcome}"]
    decided = clock.now
    for step in item.people():
        clock.now = resolve_time(step.at, now) if step.at is not None else decided
        if clock.now < decided:
            return [
                f"{what}{step.by.get('id')!r} would decide it at {clock.now.isoformat()}, before"
                f" it was asked at {decided.isoformat()}"
            ]
        # The step as written is the suite's: a person or amount that is no person or amount
        # fails the case, whatever `refused` says.
        try:
            person = Actor.model_validate({"is_ai": False, **step.by})
            current = guard.approvals.get(run.decision_id)
            asked = current.requested_amount
            amount = (
                Money.of(step.amount, asked.currency)
                if step.amount is not None and asked is not None
                else None
            )
        except (DiscretionError, ValidationError) as exc:
            return [f"{what}step of {step.by.get('id')!r} is not one the desk takes: {exc}"]
        try:
            if item.verb == "reject":
                guard.approvals.reject(run.decision_id, approver=person, note=step.note)
            else:
                guard.approvals.approve(
                    run.decision_id, approver=person, note=step.note, amount=amount
                )
        except DiscretionError as exc:
            # `true`: refused as a person may be (their role, their own case, a spent budget,
            # a stale case); a name: refused with that error (`ProposalError`: too much).
            kinds = {kind.__name__ for kind in type(exc).__mro__}
            if (step.refused is True and isinstance(exc, ApprovalError)) or (
                isinstance(step.refused, str) and step.refused in kinds
            ):
                continue
            if step.refused:
                return [
                    f"{what}{step.by.get('id')!r} was to be refused with"
                    f" {'ApprovalError' if step.refused is True else step.refused}, and was"
                    f" refused with {type(exc).__name__}: {exc}"
                ]
            return [f"{what}{step.by.get('id')!r} could not {item.verb} it: {exc}"]
        if step.refused:
            return [f"{what}{step.by.get('id')!r} was to be refused, and could {item.verb} it"]
    return []


def _set_precedent(
    guard: Guard, setup: PrecedentSetup, source: Run, names: dict[str, str], *, now: datetime
) -> list[str]:
    """Set a precedent from a history decision through `guard.precedents`."""
    if source.decision_id is None:
        return [f"precedent {setup.name!r}: its history decision was refused ({source.error})"]
    try:
        names[setup.name] = set_precedent(guard, setup, source.decision_id, now=now)
    except DiscretionError as exc:
        return [f"precedent {setup.name!r} could not be set: {exc}"]
    return []
