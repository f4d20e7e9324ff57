"""Authority: who may do what, and the lowest role a case must climb to.

Decided by code, never by the judge (invariant 2). Limits are compared in integer minor units.
"""

from __future__ import annotations

from collections.abc import Iterable

from discretion.policy import PolicyPack, Role, Rule

__all__ = [
    "covers_exception",
    "covers_standard",
    "humans",
    "lowest_above",
    "lowest_covering",
    "lowest_exception_role",
    "lowest_standard_role",
    "one_to_decide",
    "rungs_above",
]


def covers_standard(role: Role, action: str, amount_minor: int, rule: Rule | None = None) -> bool:
    """Whether `role` may approve `amount_minor` of `action` inside standard policy.

    Under `rule` when given: a standard rule with `granted_by` admits only the roles it names.
    """
    if rule is not None and rule.granted_by is not None and role.id not in rule.granted_by:
        return False
    auth = role.authority.get(action)
    return auth is not None and amount_minor <= auth.standard_minor


def covers_exception(role: Role, action: str, reason: Rule, amount_minor: int) -> bool:
    """Whether `role` may grant `reason` for `amount_minor` of `action`."""
    auth = role.authority.get(action)
    return (
        auth is not None and role.can_grant(action, reason) and amount_minor <= auth.exception_minor
    )


def humans(pack: PolicyPack) -> Iterable[Role]:
    """The rungs people hold, lowest first: cases climb to them by authority and rank.

    An AI role never approves a routed case, so it is never a case's required role; a team
    beside the ladder is one only where a review or a budget names it.
    """
    return (role for role in pack.roles if role.on_ladder)


def _granting(pack: PolicyPack, rules: tuple[Rule, ...]) -> Iterable[tuple[Role, Rule]]:
    """Who may be found to grant under `rules`, in the order they are tried.

    Each rung, lowest first; then each team beside the ladder, as listed. A team beside the
    ladder is never a rung a case climbs to while a rung may grant it; what no rung may grant
    and a team may (a relationship manager's goodwill beyond every rung's authority) goes to
    that team rather than being denied.
    """
    for role in (*humans(pack), *(role for role in pack.roles if role.beside)):
        for rule in rules:
            yield role, rule


def rungs_above(pack: PolicyPack, role: Role) -> Iterable[Role]:
    """The rungs above `role`, lowest first.

    Every rung for a team beside the ladder, which ranks above or below none.
    """
    return (rung for rung in humans(pack) if role.beside or rung.rank > role.rank)


def one_to_decide(roles: Iterable[Role]) -> tuple[Role, list[Role]]:
    """The one role a case several roles are needed for goes to, and those it cannot stand for.

    A team beside the ladder when one is among them (no rank stands in for it); otherwise the
    highest rung, which stands for every rung below it. `roles` holds one role or more.
    """
    needed = list({role.id: role for role in roles}.values())
    teams = sorted((role for role in needed if role.beside), key=lambda r: r.id)
    chosen = teams[0] if teams else max(needed, key=lambda r: r.rank)
    return chosen, [role for role in needed if not chosen.decides_for(role)]


def lowest_standard_role(
    pack: PolicyPack, action: str, rules: Iterable[Rule], amount_minor: int
) -> tuple[Role, Rule] | None:
    """The lowest human role that may allow the amount under one of `rules`, and that rule."""
    return next(
        (
            (role, rule)
            for role, rule in _granting(pack, tuple(rules))
            if covers_standard(role, action, amount_minor, rule)
        ),
        None,
    )


def lowest_exception_role(
    pack: PolicyPack, action: str, reasons: Iterable[Rule], amount_minor: int
) -> tuple[Role, Rule] | None:
    """The lowest human role that may grant one of `reasons` for the amount, and that reason."""
    return next(
        (
            (role, reason)
            for role, reason in _granting(pack, tuple(reasons))
            if covers_exception(role, action, reason, amount_minor)
        ),
        None,
    )


def lowest_covering(pack: PolicyPack, action: str, amount_minor: int) -> Role:
    """The lowest human role with any authority (standard or exception) covering the amount.

    Used when a case fails closed and nobody can yet say which authority it needs; the top
    human rung with authority over the action when none covers it (`PolicyPack.top_for`).
    """
    return next((r for r in humans(pack) if r.covers(action, amount_minor)), pack.top_for(action))


def _top_above(pack: PolicyPack, action: str, actor: Role) -> Role:
    """The top rung with authority over `action` when it is above `actor`, else the top rung.

    Never the actor's own rank (a peer) when a rung above it exists.
    """
    top = pack.top_for(action)
    return top if actor.beside or top.rank > actor.rank else pack.highest_human


def lowest_above(
    pack: PolicyPack, action: str, actor: Role, reason: Rule | None, amount_minor: int
) -> Role:
    """The lowest person above `actor` whose authority covers the case.

    With `reason`, one who may grant that exception for the amount; without, any authority
    covering the amount. When nobody above the actor does: the top rung with authority over the
    action if it is above the actor, else the top human rung (never a peer). Used when a case
    the actor could otherwise decide must go to a person: a judge found the rationale
    unjustified, or a cited precedent does not apply. A team beside the ladder has no one
    above it: a colleague of the team decides what its authority covers (no rung stands in
    for it), the ladder from its foot what it does not.
    """
    if actor.beside and (
        covers_exception(actor, action, reason, amount_minor)
        if reason is not None
        else actor.covers(action, amount_minor)
    ):
        return actor
    above = rungs_above(pack, actor)
    if reason is not None:
        covering = (role for role in above if covers_exception(role, action, reason, amount_minor))
    else:
        floor = lowest_covering(pack, action, amount_minor).rank
        covering = (role for role in above if role.rank >= floor)
    return next(covering, _top_above(pack, action, actor))
