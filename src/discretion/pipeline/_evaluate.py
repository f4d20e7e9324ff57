"""Step 4-5 of the pipeline: evaluate the pack and the actor's authority over the facts.

Standard policy, hard limits, exception reasons and authority. Pure: no I/O, no clock of its own.
It lives in the pipeline, not in `policy`, because it is where the pack meets the authority
ladder (`discretion.authority`), which itself reads the compiled pack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from discretion.authority import (
    covers_exception,
    covers_standard,
    humans,
    lowest_covering,
    lowest_exception_role,
    lowest_standard_role,
    one_to_decide,
)
from discretion.decision import Outcome
from discretion.pipeline._assemble import Resolved
from discretion.pipeline._grounds import GROUND_RULES, NOT_STANDARD, failed_grounds
from discretion.pipeline._state import Evaluation
from discretion.policy import (
    TWO_APPROVALS,
    ActionPolicy,
    CelProgram,
    EvaluationError,
    PolicyPack,
    Role,
    Rule,
    Screen,
)

__all__ = [
    "decided_without",
    "entity_faults",
    "evaluate",
    "lowest_to_allow",
    "needs_two",
    "past_pending",
    "two_approvals",
]


def _check(program: CelProgram, activation: Any) -> Any:
    return program.evaluate(activation)


def _holding(rules: tuple[Rule, ...], screen: Screen | None, activation: Any) -> Iterator[Rule]:
    """The rules whose `when` holds, in order, lazily; an evaluation error where it arises.

    Through the action's screen when it has one for exactly these rules (the same rules, the
    same errors, far fewer CEL evaluations when few rules hold), otherwise rule by rule.
    """
    if screen is not None and screen.rules is rules:
        return screen.holding(activation)
    return (rule for rule in rules if _check(rule.when, activation))


def _hard_limits(action: ActionPolicy, activation: Any) -> list[Rule]:
    """The hard limits that hold; an evaluation error only when none that can be read holds.

    A hard limit is a "never": one that holds denies whatever another one, on a fact without a
    value, would have said. A limit that cannot be read still routes the case (invariant 1)
    when no other one denies it.
    """
    screens = action.screens
    try:
        return list(
            _holding(action.hard_limits, screens.hard_limits if screens else None, activation)
        )
    except EvaluationError as exc:
        first = exc
    fired = []
    for rule in action.hard_limits:
        try:
            if _check(rule.when, activation):
                fired.append(rule)
        except EvaluationError:
            continue
    if not fired:
        raise first
    return fired


def _covers(rule: Rule, activation: Any, amount_minor: int) -> bool:
    """Whether the amount is within the `max_amount` of a rule whose `when` holds."""
    return rule.max_amount is None or amount_minor <= _check(rule.max_amount, activation)


def _activation(
    pack: PolicyPack,
    action: ActionPolicy,
    role: Role,
    actor_is_ai: bool,
    actor_id: str,
    amount_minor: int,
    facts: dict[str, Any],
    now: datetime,
    args: dict[str, Any] | None,
    unreadable: tuple[str, ...] = (),
    cited_reason: str | None = None,
    asked_at: datetime | None = None,
) -> Any:
    """What the action's expressions read: the facts, the proposal's amount, actor and args.

    `unreadable`: facts on record whose value could not be read; `has()` finds them present,
    though no expression can read their value. `cited_reason`: the reason id the rationale
    cites (`rationale.reason`, `""` when none). `asked_at`: when the case was first decided
    (an approval's re-check reads its route's time); `now` when None.
    """
    data = {
        **facts,
        "amount": amount_minor,
        "now": now,
        "asked_at": asked_at or now,
        "actor.id": actor_id,
        "actor.role": role.id,
        "actor.is_ai": actor_is_ai,
        "rationale.reason": cited_reason or "",
        # The proposal's: the pack a decision is made on is its view in that currency.
        "currency": pack.currency,
    }
    if args:
        data.update(args)
    if pack.amounts:
        data.update(pack.amounts)
    for variable, name in action.presence:
        # An absent fact or argument is left unbound.
        data[variable] = name in data or name in unreadable
    return action.env.Activation(data)


def decided_without(
    pack: PolicyPack,
    action: ActionPolicy,
    *,
    role: Role,
    actor_is_ai: bool,
    actor_id: str,
    amount_minor: int,
    facts: dict[str, Any],
    unreadable: tuple[str, ...],
    now: datetime,
    args: dict[str, Any] | None = None,
    cited_reason: str | None = None,
    unnamed: tuple[str, ...] = (),
) -> Evaluation | Role | None:
    """What the facts that could be read decide of a case whose facts were not all read.

    A deny, by the hard limits that hold on them: the case would route, but a hard limit that
    holds without the missing fact (a fraud hold, whatever the order's total says) forbids the
    action for everyone, and a person it routes to could only refuse it. Otherwise the one role
    a review `only` it decides names, when one holds or reads a fact that could not be: the
    case goes there rather than to a rung its re-check would refuse (as an evaluation error
    does). None when neither.

    `unnamed`: facts of records the proposal does not name, which may or may not be on record:
    a hard limit denies only when it holds either way (`has()` false, then true).
    """

    def activation_with(present: tuple[str, ...]) -> Any:
        return _activation(
            pack,
            action,
            role,
            actor_is_ai,
            actor_id,
            amount_minor,
            facts,
            now,
            args,
            present,
            cited_reason,
        )

    activation = activation_with(unreadable)
    if action.hard_limits:
        try:
            fired = _hard_limits(action, activation)
            if fired and any(name in unnamed for _, name in action.presence):
                held = {
                    rule.id
                    for rule in _hard_limits(action, activation_with((*unreadable, *unnamed)))
                }
                fired = [rule for rule in fired if rule.id in held]
        except EvaluationError:
            fired = []
        if fired:
            return Evaluation(outcome=Outcome.DENY, rules=[r.id for r in fired], deciding=fired)
    if any(review.only for review in action.reviews):
        return _only_reviewer(pack, action, activation, amount_minor)
    return None


def evaluate(
    pack: PolicyPack,
    action: ActionPolicy,
    *,
    role: Role,
    actor_is_ai: bool,
    actor_id: str,
    amount_minor: int,
    cited_reason: str | None,
    facts: dict[str, Any],
    now: datetime,
    prior_minor: int = 0,
    shown: Mapping[str, Any] | None = None,
    args: dict[str, Any] | None = None,
    asked_at: datetime | None = None,
    held: frozenset[str] = frozenset(),
    asked_by: tuple[Role, bool, str] | None = None,
) -> Evaluation:
    """Decide allow, allow_exception, route or deny from code alone.

    A fact an expression needs but the context lacks, or any other evaluation error, routes
    (invariant 1): it never allows and never silently skips a hard limit. A rule that tests a
    fact's presence first (`has(reservation.id) && ...`) decides without it.

    `shown`: the facts as an explanation quotes them (typed: money as money); `facts` when
    absent. A reason that does not apply is explained by the ground that failed.
    `args`: the tool arguments the action declares, as CEL reads them (`args.<name>`).
    `asked_at`: when the case was asked (an approval's re-check: its route's time).
    `held`: the ids of reviews that held when the case was routed (an approval's re-check):
    they hold still, whatever their `when` reads now (the approver, not the agent, is the
    actor there), so only a person who is each of them may approve it. `asked_by`: who
    proposed it (role, whether an AI, id), when another person decides it now: reviews read
    the case as asked (`actor.is_ai`: the agent that asked), the rest reads the approver.
    """

    def activation_as(who: Role, is_ai: bool, who_id: str = actor_id) -> Any:
        # A person of another role is not known by id: the proposer's stands (only hard limits
        # and reviews read it; the approval's re-check reads the approver's).
        return _activation(
            pack,
            action,
            who,
            is_ai,
            who_id,
            amount_minor,
            facts,
            now,
            args,
            (),
            cited_reason,
            asked_at,
        )

    activation = activation_as(role, actor_is_ai)
    try:
        evaluation = _evaluate(
            pack, action, role, amount_minor, cited_reason, activation, prior_minor
        )
        if action.reads_actor and _nobody_for_the_actor(evaluation):

            def decide_as(person: Role) -> Evaluation:
                seen = activation_as(person, False)
                return _evaluate(
                    pack, action, person, amount_minor, cited_reason, seen, prior_minor
                )

            evaluation = _by_a_person(pack, role, evaluation, decide_as)
        if action.reviews and evaluation.outcome is not Outcome.DENY:
            asked = activation if asked_by is None else activation_as(*asked_by)
            evaluation = _reviewed(
                pack,
                action,
                role,
                (actor_is_ai, actor_id),
                asked,
                evaluation,
                amount_minor + prior_minor,
                held,
            )
    except EvaluationError as exc:
        return Evaluation(
            outcome=Outcome.ROUTE,
            rules=["discretion.evaluation-error"],
            required_role=_only_reviewer(pack, action, activation, amount_minor)
            or lowest_covering(pack, action.name, amount_minor),
            causes=[f"evaluation error: {exc}"],
        )
    if any(rule in evaluation.rules for rule in GROUND_RULES) or (
        NOT_STANDARD in evaluation.rules and evaluation.outcome is not Outcome.ALLOW_EXCEPTION
    ):
        evaluation.grounds = failed_grounds(
            pack,
            action,
            evaluation.rules,
            cited=action.reason(cited_reason) if cited_reason is not None else None,
            activation=activation,
            amount_minor=amount_minor,
            shown=shown if shown is not None else facts,
        )
    return evaluation


def _evaluate(
    pack: PolicyPack,
    action: ActionPolicy,
    role: Role,
    amount_minor: int,
    cited_reason: str | None,
    activation: Any,
    prior_minor: int,
) -> Evaluation:
    name = action.name
    # Authority is measured on the whole when the action says so: what the actor (or its role)
    # was already allowed on the same record, plus this amount. Rules' own maxima read the call.
    whole = amount_minor + prior_minor
    over_whole = ["discretion.cumulative-authority"] if prior_minor else []
    screens = action.screens
    fired = _hard_limits(action, activation)
    if fired:
        return Evaluation(outcome=Outcome.DENY, rules=[r.id for r in fired], deciding=fired)

    # Standard rules are read up to the first that holds, covers the amount and admits the
    # actor's role; those before it that admit only other roles are where it may route.
    held: list[Rule] = []
    for rule in _holding(action.standard, screens.standard if screens else None, activation):
        if _covers(rule, activation, amount_minor):
            held.append(rule)
            if rule.granted_by is None or role.id in rule.granted_by:
                break
    cited = action.reason(cited_reason) if cited_reason is not None else None
    if held:
        standard = held[-1]
        if covers_standard(role, name, whole, standard):
            return Evaluation(outcome=Outcome.ALLOW, rules=[standard.id], deciding=[standard])
        if cited is not None and _grants(role, name, cited, activation, amount_minor, whole):
            # A rule only other roles may use, or one above the actor's standard limit, does
            # not stand in the way of the exception the actor cites and may grant.
            return _excepted(cited)
        # The actor may use the last rule read only when some rule admits its role.
        admitted = standard.granted_by is None or role.id in standard.granted_by
        found = lowest_standard_role(pack, name, held, whole)
        if found is not None:
            standard = found[1]
        rules = [
            standard.id,
            "discretion.standard-authority" if admitted else "discretion.standard-role",
            *over_whole,
        ]
        if found is None:
            return Evaluation(
                outcome=Outcome.DENY,
                rules=[*rules, "discretion.no-role-can-grant"],
                deciding=[standard],
            )
        return Evaluation(
            outcome=Outcome.ROUTE, rules=rules, required_role=found[0], deciding=[standard]
        )

    rules = ["discretion.not-standard"]
    if not action.exceptions and cited_reason is None:
        # Nothing to cite: the agent is told the action has no exceptions, not to cite one.
        return Evaluation(outcome=Outcome.DENY, rules=[*rules, "discretion.no-exceptions"])
    if cited is not None and _grants(role, name, cited, activation, amount_minor, whole):
        # The reason the actor cites holds and its authority covers it: the other reasons are
        # not read (as standard rules after the one that matches are not), so a fact only they
        # need, without a value, does not stand in the way. They could only permit more.
        return _excepted(cited)
    applicable = [
        r
        for r in _holding(action.exceptions, screens.exceptions if screens else None, activation)
        if _covers(r, activation, amount_minor)
    ]
    if cited_reason is None:
        rules.append("discretion.reason-not-cited")
    elif cited is None:
        rules.append("discretion.reason-unknown")
    elif cited not in applicable:
        rules += ["discretion.reason-not-applicable", cited.id]
    else:
        # It applies, so the actor's authority does not cover it: it would have decided above.
        rules += [cited.id, "discretion.exception-authority", *over_whole]
        if not role.admitted(name, cited):
            # Not the amount: the reason is not one its role may grant at all. The agent is
            # told so, and does not split what no amount unlocks; no precedent extends it.
            rules.append("discretion.exception-role")

    if not applicable:
        return Evaluation(outcome=Outcome.DENY, rules=[*rules, "discretion.no-permitted-reason"])
    # Prefer the reason the actor cited when it applies; otherwise any applicable reason.
    ordered = sorted(applicable, key=lambda r: r is not cited)
    found = lowest_exception_role(pack, name, ordered, whole)
    if found is None:
        return Evaluation(outcome=Outcome.DENY, rules=[*rules, "discretion.no-role-can-grant"])
    target, reason = found
    if reason.id not in rules:
        rules.append(reason.id)
    return Evaluation(
        outcome=Outcome.ROUTE, rules=rules, reason=reason, required_role=target, deciding=[reason]
    )


def _nobody_for_the_actor(evaluation: Evaluation) -> bool:
    """Whether `evaluation` denies for want of a rule that holds, and not by a hard limit."""
    return evaluation.outcome is Outcome.DENY and not any(
        rule.kind == "hard_limit" for rule in evaluation.deciding
    )


def _by_a_person(
    pack: PolicyPack,
    role: Role,
    denied: Evaluation,
    decide_as: Callable[[Role], Evaluation],
) -> Evaluation:
    """`denied`, or a route to the lowest person a rule reading the actor lets decide it.

    A rule may read who proposes it (`max_amount: actor.is_ai ? 0 : order.total`, `when:
    !actor.is_ai && ...`): what no rule lets the actor do, one may let a person do, and an
    approval's re-check reads the rules as that person. So the case goes, as `granted_by`
    sends it, to the lowest person for whom they allow it, or route it on.
    """
    for person in humans(pack):
        if person.rank < role.rank and not role.beside:
            continue
        found = decide_as(person)
        if found.outcome is Outcome.DENY:
            continue
        if found.outcome is Outcome.ROUTE:
            return found
        deciding = found.deciding
        if found.outcome is Outcome.ALLOW:
            rules = [*found.rules, "discretion.standard-role"]
            reason = None
        else:
            rules = [*found.rules, "discretion.exception-role"]
            reason = found.reason
        return Evaluation(
            outcome=Outcome.ROUTE,
            rules=rules,
            reason=reason,
            required_role=person,
            deciding=deciding,
        )
    return denied


def _grants(
    role: Role, action: str, reason: Rule, activation: Any, amount_minor: int, whole: int
) -> bool:
    """Whether `role` may grant `reason`: it holds and covers the amount, as does the authority."""
    return (
        covers_exception(role, action, reason, whole)
        and _check(reason.when, activation)
        and _covers(reason, activation, amount_minor)
    )


def _excepted(reason: Rule) -> Evaluation:
    """An exception the actor cites and may grant: allowed as one."""
    return Evaluation(
        outcome=Outcome.ALLOW_EXCEPTION,
        rules=["discretion.not-standard", reason.id],
        reason=reason,
        deciding=[reason],
    )


def _only_reviewer(
    pack: PolicyPack, action: ActionPolicy, activation: Any, amount_minor: int
) -> Role | None:
    """The one role a review `only` it decides leaves to decide a case that may hold it.

    A case that cannot be evaluated goes there rather than to a rung the re-check would refuse
    (a review that holds, or cannot be read, waits for its role and no other).
    """
    roles = set()
    for review in action.reviews:
        if not review.only:
            continue
        try:
            holds = bool(_check(review.when, activation))
        except EvaluationError:
            holds = True
        if holds:
            roles.add(review.by)
    if len(roles) != 1:
        return None
    role = pack.role(roles.pop() or "")
    # One that could not approve the amount: the rung that covers it decides first.
    return role if role is not None and role.covers(action.name, amount_minor) else None


def _reviewed(
    pack: PolicyPack,
    action: ActionPolicy,
    role: Role,
    actor: tuple[bool, str],
    activation: Any,
    evaluation: Evaluation,
    whole_minor: int,
    held: frozenset[str] = frozenset(),
) -> Evaluation:
    """The outcome once the action's reviews are read: a person must decide where one holds.

    A review that holds turns an allowed case into a route, to its `by` role (or the role the
    case already needed, when higher). A person of that role or above (the proposer, or an
    approver re-checking it) is that review: for them it changes nothing, as a review without
    `by` changes nothing for any person. A review `only` its role decides goes to that role
    whatever the amount, and no other rank stands in for it. A review naming a `person` is,
    at its role, that person alone: another of the role is not it.

    `actor`: whether the proposer is an AI, and its id; `held`: reviews that hold whatever
    their `when` says now (those that held when an approval's case was routed).
    """
    holding: list[Rule] = []
    named: list[tuple[Rule, str]] = []
    for review in action.reviews:
        if review.id not in held and not _check(review.when, activation):
            continue
        person = _person(review, activation)
        if _needs(pack, review, role, actor, person):
            holding.append(review)
            if person is not None:
                named.append((review, person))
    if not holding:
        return evaluation
    only = [review for review in holding if review.only]
    causes = evaluation.causes
    if only:
        # Its role, and no other: a higher rank would not be the review.
        roles = [pack.role(review.by or "") or pack.highest_human for review in only]
        required = max(roles, key=lambda r: r.rank)
        ids = sorted({r.id for r in roles})
        if len(ids) > 1:
            # No one person is every review: none can approve it here; it can be rejected.
            causes = [
                *causes,
                f"reviews only {' and '.join(ids)} may each decide hold at once: no one person"
                " can approve it",
            ]
        # A review of the ladder the one role does not reach holds too: no one person either.
        beyond = sorted(
            {
                review.by
                for review in holding
                if not review.only
                and review.by is not None
                and (reviewer := pack.role(review.by)) is not None
                and not required.decides_for(reviewer)
            }
        )
        if beyond:
            causes = [
                *causes,
                f"only {required.id!r} decides it, and a review needs {' and '.join(beyond)} or"
                " above: no one person can approve it",
            ]
    else:
        targets = [pack.role(review.by) or pack.highest_human for review in holding if review.by]
        # Allowed until now: a person who could have allowed it, too.
        targets.append(
            evaluation.required_role or lowest_to_allow(pack, action, evaluation, whole_minor)
        )
        required, unmet = one_to_decide(targets)
        if unmet:
            # A team beside the ladder (the only one who may grant it) and a review's rung.
            causes = [
                *causes,
                f"{required.id!r} decides it, and a review needs"
                f" {' and '.join(sorted(r.id for r in unmet))}: no one person can approve it",
            ]
    # At the role the case goes to, the person a review names is that review: none other of
    # the role may decide it. A higher rank (the amount needs it) stands in, but for `only`.
    persons = set()
    for review, person in named:
        if review.by == required.id and review.person is not None:
            persons.add(person)
            causes = [
                *causes,
                f"{review.id}: only {person!r} ({review.person.source}) of role"
                f" {required.id!r} may decide it",
            ]
    if len(persons) > 1:
        causes = [
            *causes,
            f"reviews naming {' and '.join(sorted(persons))} hold at once: no one person can"
            " approve it",
        ]
    return replace(
        evaluation,
        outcome=Outcome.ROUTE,
        rules=[*evaluation.rules, *(review.id for review in holding)],
        required_role=required,
        causes=causes,
        deciding=[*evaluation.deciding, *holding],
        precedents=evaluation.unapplied(),
        person=min(persons) if persons else None,
    )


def _person(review: Rule, activation: Any) -> str | None:
    """The id of the one person a review that holds names, or None when it names no one.

    A value that cannot be read, or is blank, is an evaluation error: the case waits for a
    person to be named on record, never for anyone of the role.
    """
    if review.person is None:
        return None
    person = str(_check(review.person, activation)).strip()
    if not person:
        raise EvaluationError(
            f"review {review.id!r}: {review.person.source!r} names no one, and only the person"
            " it names may decide the case"
        )
    return person


def lowest_to_allow(
    pack: PolicyPack, action: ActionPolicy, evaluation: Evaluation, whole_minor: int
) -> Role:
    """The lowest human role that may allow what the rules allowed; the top rung when none may.

    Under the same standard rule, or granting the same exception reason.
    """
    found = _lowest_allowing(pack, action, evaluation, whole_minor)
    return found if found is not None else pack.top_for(action.name)


def _lowest_allowing(
    pack: PolicyPack, action: ActionPolicy, evaluation: Evaluation, whole_minor: int
) -> Role | None:
    """The lowest human role that may allow `whole_minor` as the evaluation was decided.

    Under its standard rule, or granting its reason; None when none may.
    """
    found: tuple[Role, Rule] | None
    if evaluation.reason is not None:
        found = lowest_exception_role(pack, action.name, [evaluation.reason], whole_minor)
    else:
        standard = [rule for rule in evaluation.deciding if rule.kind == "standard"]
        found = lowest_standard_role(pack, action.name, standard, whole_minor)
    return found[0] if found is not None else None


def _needs(
    pack: PolicyPack, review: Rule, role: Role, actor: tuple[bool, str], person: str | None
) -> bool:
    """Whether a review that holds needs someone other than this actor to decide the case.

    `actor`: whether it is an AI, and its id; `person`: the one the review names, if any.
    """
    actor_is_ai, actor_id = actor
    if actor_is_ai or role.is_ai:
        return True
    if review.by is None:
        return False
    if person is not None and role.id == review.by and actor_id != person:
        # Another person of the role is not the one the review names.
        return True
    if review.only or role.beside:
        # A team beside the ladder is no rung's review, whatever its place in the list.
        return role.id != review.by
    reviewer = pack.role(review.by)
    return reviewer is None or role.rank < reviewer.rank


def entity_faults(
    pack: PolicyPack, action: str, amount_minor: int, resolved: Resolved
) -> Evaluation:
    """The outcome of a proposal whose records do not check out: never allowed.

    It is denied where the pack says so for a fault found, and routed to a person otherwise
    (the agent may have the wrong case open); no rule reads facts of records that do not match.
    """
    rules = list(dict.fromkeys(fault.rule for fault in resolved.faults))
    causes = [fault.cause for fault in resolved.faults]
    if any(fault.deny for fault in resolved.faults):
        return Evaluation(outcome=Outcome.DENY, rules=rules, causes=causes, resolved=resolved)
    return Evaluation(
        outcome=Outcome.ROUTE,
        rules=rules,
        required_role=lowest_covering(pack, action, amount_minor),
        causes=causes,
        resolved=resolved,
    )


def needs_two(action: ActionPolicy, whole_minor: int) -> bool:
    """Whether `whole_minor` is above the action's `two_approvals_above`: two people approve."""
    above = action.two_approvals_minor
    return above is not None and whole_minor > above


def two_approvals(
    pack: PolicyPack,
    action: ActionPolicy,
    evaluation: Evaluation,
    whole_minor: int,
    *,
    authority_minor: int | None = None,
    actor: Role | None = None,
) -> Evaluation:
    """A case above the action's `two_approvals_above`: never allowed from code alone.

    An allowed one routes to the lowest human role that could have allowed it; a routed one
    carries the rule, so its approval waits for a second approver. `whole_minor` is the amount
    two approvals are measured on (the call's, plus what anyone was allowed on the record when
    cumulative); `authority_minor` the one authority is (what `among` counts), when it differs.
    One a team beside the ladder allowed (`actor`) goes to the team: it decides its own cases,
    and no rung stands in for it.
    """
    if not needs_two(action, whole_minor) or evaluation.outcome is Outcome.DENY:
        return evaluation
    rules = [*evaluation.rules, TWO_APPROVALS]
    if evaluation.outcome is Outcome.ROUTE:
        return replace(evaluation, rules=rules)
    return replace(
        evaluation,
        outcome=Outcome.ROUTE,
        rules=rules,
        required_role=actor
        if actor is not None and actor.beside
        else lowest_to_allow(
            pack,
            action,
            evaluation,
            authority_minor if authority_minor is not None else whole_minor,
        ),
        causes=[*evaluation.causes, "above this amount, two people must approve"],
        precedents=evaluation.unapplied(),
    )


def past_pending(
    pack: PolicyPack,
    action: ActionPolicy,
    evaluation: Evaluation,
    whole_minor: int,
    pending_minor: int,
) -> Evaluation:
    """A routed piece, sent where its approval stands once the pieces pending before it are.

    Cumulative authority measures an approval on what was approved on the record before it, so
    the second piece of a split, routed while the first waits, would need a higher rank once
    the first is approved: it goes to the lowest role that may grant the whole with the pending
    pieces (`pending_minor`) now. `whole_minor` is the call's amount plus what was granted. A
    review only its role decides stays with it; when no role covers that whole, the route stands
    (the pending pieces may yet be rejected).
    """
    required = evaluation.required_role
    if (
        evaluation.outcome is not Outcome.ROUTE
        or required is None
        or pending_minor <= 0
        or evaluation.under_only_review
    ):
        return evaluation
    found = _lowest_allowing(pack, action, evaluation, whole_minor + pending_minor)
    if found is None or required.beside or found.rank <= required.rank:
        return evaluation
    return replace(
        evaluation,
        required_role=found,
        causes=[
            *evaluation.causes,
            f"pieces routed on the same {action.cumulative.per if action.cumulative else 'record'}"
            " and still pending count toward the whole its approver is measured on",
        ],
    )
