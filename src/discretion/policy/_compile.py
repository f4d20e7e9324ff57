"""Compile a validated pack spec into the model: CEL type-checked, limits in minor units.

Each error is a `PolicyError` naming the file, line, rule id and expression (see `LineMap`).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, timedelta, tzinfo
from decimal import Decimal
from types import MappingProxyType
from typing import Any, NoReturn

from discretion.errors import PolicyError, ProposalError
from discretion.money import CURRENCY_EXPONENTS, Money, register_unit
from discretion.policy._business import WEEKDAYS, BusinessDays
from discretion.policy._cel import (
    FIELD_TYPES,
    PRESENCE_PREFIX,
    CelProgram,
    blank_literals,
    new_env,
    one_line,
    rewrite_presence,
    without_comments,
)
from discretion.policy._model import (
    AMOUNTS_PREFIX,
    ARGS_PREFIX,
    ASSERTED,
    BUILTIN_VARIABLES,
    NEXT_ABOVE,
    ActionPolicy,
    Asserted,
    Authority,
    Budget,
    Calendar,
    ClaimsPolicy,
    Cumulative,
    Entity,
    Evidence,
    Ground,
    JudgeBand,
    JudgeSettings,
    Months,
    PolicyPack,
    PrecedentPolicy,
    Rates,
    Role,
    Rule,
    Total,
    zone_named,
)
from discretion.policy._records import (
    MEMBER_TYPES,
    RecordArgSpec,
    RecordFieldSpec,
    RecordMember,
    RecordType,
    build_records,
    record_name,
)
from discretion.policy._schema import (
    ActionSpec,
    ArgSpec,
    BudgetSpec,
    ClaimsSpec,
    EveryActionSpec,
    EvidenceSpec,
    FieldSpec,
    JudgeBandSpec,
    MemberSpec,
    PackSpec,
    PrecedentPolicySpec,
    RoleSpec,
    ToolSpec,
)
from discretion.policy._screen import Screens
from discretion.policy._yaml import LineMap

__all__ = ["compile_pack"]

_WINDOW_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _minor(text: str, currency: str, *, where: tuple[str | None, int | None], what: str) -> int:
    try:
        return Money(amount=Decimal(text), currency=currency).minor
    except ProposalError as exc:
        raise PolicyError(f"{what}: {exc}", path=where[0], line=where[1]) from None


def _declared(spec: PackSpec, lines: LineMap, sources: tuple[str, ...]) -> tuple[str, ...]:
    """The currencies a pack's proposals may be in, checked: `currency` or `currencies`."""
    if spec.currency is not None and spec.currencies is not None:
        source, line = lines.find(("currencies",))
        raise PolicyError(
            "currency and currencies are both given; a pack in one currency says `currency:`,"
            " one in several `currencies: [...]`",
            path=source,
            line=line,
        )
    if spec.currency is None and spec.currencies is None:
        raise PolicyError("currency: required here, and missing", path=sources[0])
    codes = spec.declared_currencies
    key: tuple[Any, ...] = ("currency",) if spec.currency is not None else ("currencies",)
    for index, code in enumerate(codes):
        source, line = lines.find(key if spec.currency is not None else (*key, index))
        if code not in CURRENCY_EXPONENTS:
            raise PolicyError(
                f"currency {code!r} is not a supported ISO 4217 code", path=source, line=line
            )
        if codes.index(code) != index:
            raise PolicyError(f"currency {code!r} is listed twice", path=source, line=line)
    if spec.rates is not None:
        source, line = lines.find(("rates", "base"))
        if spec.currencies is None:
            raise PolicyError(
                "rates convert between the currencies a pack declares: give `currencies:`"
                " (with the base among them) instead of `currency:`",
                path=source,
                line=line,
            )
        if spec.rates.base not in codes:
            raise PolicyError(
                f"rates base {spec.rates.base!r} is not one of the pack's currencies"
                f" ({', '.join(codes)})",
                path=source,
                line=line,
            )
    return tuple(codes)


def _amount(
    value: str | Mapping[str, str],
    currency: str,
    spec: PackSpec,
    lines: LineMap,
    loc: tuple[Any, ...],
    *,
    what: str,
    where: tuple[str | None, int | None] | None = None,
) -> int:
    """An amount of the pack, in minor units of `currency`: one amount, or one per currency.

    `currency` may be a unit the pack declares (what a unit action's amounts are in): then the
    amount is one amount in it. `where` is the place a single amount's error names (`loc`'s
    line when None).
    """
    if currency in spec.units:
        if not isinstance(value, str):
            at = lines.find(loc)
            raise PolicyError(
                f"{what}: counts {currency}, which no currency converts into; give one amount"
                f' in {currency}, such as "5000"',
                path=at[0],
                line=at[1],
            )
        return _minor(value, currency, where=where or lines.find(loc), what=what)
    declared = spec.declared_currencies or [currency]
    if isinstance(value, str):
        # Nothing is nothing in every currency: "0" needs no map.
        if len(declared) > 1 and spec.rates is None and Decimal(value) != 0:
            at = where or lines.find(loc)
            raise PolicyError(
                f"{what}: {value!r} is one amount, but the pack declares currencies"
                f" {', '.join(declared)}; give one amount per currency, such as"
                f" {{{declared[0]}: {value!r}, {declared[1]}: ...}}, or declare `rates`",
                path=at[0],
                line=at[1],
            )
        return _minor(value, currency, where=where or lines.find(loc), what=what)
    at = lines.find(loc)
    if spec.rates is not None:
        raise PolicyError(
            f"{what}: the pack converts at rates to {spec.rates.base}, so its amounts are stated"
            f" once, in {spec.rates.base}; write one amount",
            path=at[0],
            line=at[1],
        )
    for code in value:
        if code not in declared:
            place = lines.find((*loc, code))
            raise PolicyError(
                f"{what}: {code!r} is not a currency the pack declares ({', '.join(declared)})",
                path=place[0],
                line=place[1],
            )
    missing = [code for code in declared if code not in value]
    if missing:
        raise PolicyError(
            f"{what}: no amount for {', '.join(missing)}; every amount covers each currency"
            f" the pack declares ({', '.join(declared)})",
            path=at[0],
            line=at[1],
        )
    return _minor(value[currency], currency, where=lines.find((*loc, currency)), what=what)


def compile_pack(
    spec: PackSpec, *, version: str, lines: LineMap, sources: tuple[str, ...]
) -> PolicyPack:
    spec, shared = _with_every_action(spec, lines)
    currencies = _declared(spec, lines, sources)
    base = spec.rates.base if spec.rates is not None else currencies[0]
    units = _compile_units(spec, lines)
    records = _compile_records(spec, lines)
    fields = _compile_fields(spec, lines, records)
    rates = _compile_rates(spec, fields, lines) if spec.rates is not None else None
    for name in fields:
        if name in BUILTIN_VARIABLES:
            source, line = lines.find(("context", name))
            raise PolicyError(f"context field {name!r} shadows a built-in", path=source, line=line)
        if name.removeprefix(AMOUNTS_PREFIX) in spec.amounts:
            source, line = lines.find(("context", name))
            raise PolicyError(
                f"context field {name!r} shadows the pack's amount"
                f" {name.removeprefix(AMOUNTS_PREFIX)!r}; rename one",
                path=source,
                line=line,
            )
    entities = _compile_entities(spec, lines)
    zone = _zone(spec, lines)
    business = BusinessDays.of(
        zone=zone,
        weekend=frozenset(WEEKDAYS.index(day) for day in spec.business_days.weekend),
        holidays=tuple(spec.business_days.holidays),
    )
    totals = _compile_totals(spec, entities, fields, lines, zone)
    # A total is read in CEL like a fact; the ledger, not a provider, answers it.
    fields.update({name: FieldSpec(type=total.type) for name, total in totals.items()})
    asserted = _compile_asserted(spec, fields, lines, base)
    # An assertion is read in CEL like a fact; the proposal, not a provider, carries it, and the
    # agent may leave it out (null: unbound in CEL).
    fields.update({name: FieldSpec(type=a.type, nullable=True) for name, a in asserted.items()})

    seen_rules: dict[str, tuple[str | None, int | None]] = {}

    def claim(rule_id: str, loc: tuple[Any, ...]) -> tuple[str | None, int | None]:
        where = lines.find(loc)
        if rule_id.startswith("discretion."):
            raise PolicyError(
                "rule ids starting with 'discretion.' are reserved",
                path=where[0],
                line=where[1],
                rule_id=rule_id,
            )
        if rule_id in seen_rules and not (rule_id in shared and seen_rules[rule_id] == where):
            # A rule of `every_action` is each action's, under its one id and line.
            first = seen_rules[rule_id]
            raise PolicyError(
                f"rule id is used twice; first at {first[0]}:{first[1]}",
                path=where[0],
                line=where[1],
                rule_id=rule_id,
            )
        seen_rules[rule_id] = where
        return where

    role_ids = [r.id for r in spec.roles]
    for index, role_id in enumerate(role_ids):
        if role_ids.index(role_id) != index:
            source, line = lines.find(("roles", index))
            raise PolicyError(f"role {role_id!r} is listed twice", path=source, line=line)

    actions: dict[str, ActionPolicy] = {}
    tools: dict[str, tuple[str, ToolSpec]] = {}
    for action_id, action in spec.actions.items():
        unit = _action_unit(action_id, action, spec, lines)
        compiled = _compile_judging(
            replace(
                _compile_action(
                    action_id,
                    action,
                    fields,
                    role_ids,
                    lines,
                    claim,
                    beside=frozenset(r.id for r in spec.roles if r.beside),
                    records=records,
                    # Named amounts are money: a unit action's rules state their numbers.
                    amounts=spec.amounts if unit is None else (),
                    business=business,
                ),
                unit=unit,
            ),
            action,
            spec,
            lines,
            base,
        )
        if rates is not None and unit is None:
            # Every decision reads the rate (and what it is the rate of), and records them.
            wanted = (rates.fact, *((rates.currency,) if rates.currency is not None else ()))
            missing = tuple(name for name in wanted if name not in compiled.reads)
            if missing:
                compiled = replace(compiled, reads=(*compiled.reads, *missing))
        compiled = replace(
            compiled,
            provided=tuple(
                name for name in compiled.reads if name not in totals and name not in asserted
            ),
            claims=_compile_claims(spec.claims, action.claims),
            standard=tuple(_with_grounds(rule, compiled) for rule in compiled.standard),
            exceptions=tuple(_with_grounds(rule, compiled) for rule in compiled.exceptions),
        )
        if asserted:
            compiled = _rest_on_assertions(action_id, action, compiled, lines)
        if action.cumulative is not None:
            loc = ("actions", action_id, "cumulative")
            _need_entity(entities, action.cumulative.per, "cumulative authority", lines, loc)
            window, calendar = _counting_window(
                action.cumulative.window, zone, lines, (*loc, "window")
            )
            for index, other in enumerate(action.cumulative.actions):
                if other not in spec.actions:
                    source, line = lines.find((*loc, "actions", index))
                    raise PolicyError(
                        f"cumulative authority counts action {other!r}, which is not an action;"
                        f" actions: {', '.join(spec.actions)}",
                        path=source,
                        line=line,
                    )
                if spec.actions[other].unit != action.unit:
                    source, line = lines.find((*loc, "actions", index))
                    raise PolicyError(
                        f"cumulative authority of {action_id!r} counts action {other!r}, which"
                        f" counts {_kind(spec.actions[other].unit)}, not"
                        f" {_kind(action.unit)}; amounts of two kinds are never added",
                        path=source,
                        line=line,
                    )
            compiled = replace(
                compiled,
                cumulative=Cumulative(
                    per=action.cumulative.per,
                    window=window,
                    among=action.cumulative.among,
                    calendar=calendar,
                    actions=tuple(dict.fromkeys([action_id, *action.cumulative.actions])),
                ),
            )
        actions[action_id] = replace(
            compiled,
            screens=Screens.build(
                compiled.env,
                hard_limits=compiled.hard_limits,
                standard=compiled.standard,
                exceptions=compiled.exceptions,
            ),
        )
        for index, tool in enumerate(action.tools):
            if tool.name in tools:
                source, line = lines.find(("actions", action_id, "tools", index))
                raise PolicyError(
                    f"tool {tool.name!r} is mapped to both {tools[tool.name][0]!r} and"
                    f" {action_id!r}",
                    path=source,
                    line=line,
                )
            if (
                len(currencies) > 1
                and unit is None
                and tool.amount is not None
                and tool.currency is None
            ):
                source, line = lines.find(("actions", action_id, "tools", index))
                raise PolicyError(
                    f"tool {tool.name!r} maps an amount but no currency, and the pack declares"
                    f" currencies {', '.join(currencies)}: name the argument holding the"
                    " currency (`currency: currency`), so no amount is read in a currency"
                    " it was not written in",
                    path=source,
                    line=line,
                )
            tools[tool.name] = (action_id, tool)

    roles = tuple(
        _compile_role(index, role, spec, actions, lines, base)
        for index, role in enumerate(spec.roles)
    )
    if not any(role.on_ladder for role in roles):
        raise PolicyError(
            "the pack needs at least one human role on the ladder (not ai, not beside) to route"
            " cases to",
            path=sources[0],
        )
    _check_reviewers(spec, roles, lines)
    budgets = tuple(
        _compile_budget(index, budget, spec, actions, roles, entities, lines, claim, base, zone)
        for index, budget in enumerate(spec.budgets)
    )
    for name, total in totals.items():
        empty = [
            key
            for key, value in (
                ("actions", total.actions),
                ("outcomes", total.outcomes),
                ("reasons", total.reasons),
            )
            if value is not None and not value
        ]
        if empty:
            source, line = lines.find(("totals", name, empty[0]))
            raise PolicyError(
                f"total {name!r} counts no {empty[0]} (`{empty[0]}: []`): it would always be"
                f" zero; name them, or leave `{empty[0]}` out",
                path=source,
                line=line,
            )
        for action_id in total.actions or ():
            if action_id not in actions:
                source, line = lines.find(("totals", name, "actions"))
                raise PolicyError(
                    f"total {name!r} counts action {action_id!r}, which is not an action;"
                    f" actions: {', '.join(actions)}",
                    path=source,
                    line=line,
                )
        counted = [actions[a] for a in sorted(total.actions)] if total.actions else actions.values()
        if total.type == "money" and units:
            totals[name] = total = _of_one_kind(name, total, actions, lines)
            counted = [actions[a] for a in sorted(total.actions or ())]
        for arg_name in total.args:
            lacking = _lacking_key_argument(counted, arg_name)
            if lacking is not None:
                source, line = lines.find(("totals", name, "args"))
                raise PolicyError(
                    f"total {name!r} is kept per argument {arg_name!r}, which action"
                    f" {lacking!r} does not declare as a string or int argument;"
                    " declare it in the action's args, or name the actions the total counts",
                    path=source,
                    line=line,
                )
        if total.zone_fact is not None:
            for action_id, reader in actions.items():
                if name in reader.reads and total.zone_fact not in reader.reads:
                    source, line = lines.find(("actions", action_id, "reads"))
                    raise PolicyError(
                        f"action {action_id!r} reads total {name!r}, whose calendar begins in"
                        f" the time zone {total.zone_fact!r} names: add {total.zone_fact!r} to"
                        " its reads",
                        path=source,
                        line=line,
                    )
        known = sorted({r.id for action in counted for r in action.exceptions})
        for reason_id in sorted(total.reasons or ()):
            if reason_id not in known:
                source, line = lines.find(("totals", name, "reasons"))
                raise PolicyError(
                    f"total {name!r} counts exceptions for reason {reason_id!r}, which is not an"
                    " exception reason of the actions it counts; reasons:"
                    f" {', '.join(known) or '(none)'}",
                    path=source,
                    line=line,
                )
    if units:
        for action_id in actions:
            _check_kind_of_reads(action_id, actions, totals, asserted, lines)
    for action_id, compiled in actions.items():
        _check_counted(action_id, compiled, asserted, totals, lines)
    _check_ungoverned(spec, tools, lines)
    route_to = spec.unknown_tools_route_to
    if route_to is not None and not any(r.id == route_to and not r.is_ai for r in roles):
        source, line = lines.find(("unknown_tools_route_to",))
        raise PolicyError(
            f"unknown_tools_route_to {route_to!r} is not a human role of the pack;"
            f" human roles: {', '.join(r.id for r in roles if not r.is_ai)}",
            path=source,
            line=line,
        )
    pack = PolicyPack(
        name=spec.pack,
        version=version,
        currency=base,
        currencies=currencies,
        rates=rates,
        private_limits=spec.private_limits,
        unknown_tools=spec.unknown_tools,
        unknown_route_to=route_to,
        fields=MappingProxyType(fields),
        roles=roles,
        actions=MappingProxyType(actions),
        tools=MappingProxyType(tools),
        budgets=budgets,
        sources=sources,
        approval_sla=_sla(spec.approval_sla, lines, ("approval_sla",)),
        judge=JudgeSettings(
            daily_calls=spec.judge.daily_calls, without_model=spec.judge.without_model
        ),
        ungoverned_tools=tuple(spec.ungoverned_tools),
        entities=MappingProxyType(entities),
        totals=MappingProxyType(totals),
        asserted=MappingProxyType(asserted),
        amounts=_named_amounts(spec, lines, base),
        units=MappingProxyType(units),
    )
    if units:
        # Each unit's view is the pack relabelled: a unit action's amounts are the same in
        # every view, and nothing converts into or out of a unit.
        unit_views = MappingProxyType(
            {code: replace(pack, currency=code, rates=None, money_view=pack) for code in units}
        )
        for view in (pack, *unit_views.values()):
            object.__setattr__(view, "unit_views", unit_views)
    if len(currencies) == 1 or rates is not None:
        return pack
    views = {base: pack}
    views.update((code, _in_currency(pack, spec, code, entities, lines)) for code in currencies[1:])
    frozen = MappingProxyType(views)
    for view in (*views.values(), *pack.unit_views.values()):
        object.__setattr__(view, "views", frozen)
    return pack


def _kind(unit: str | None) -> str:
    """What an action's amounts are in, for messages: a unit, or money."""
    return unit if unit is not None else "money"


def _compile_units(spec: PackSpec, lines: LineMap) -> dict[str, int]:
    """The units the pack's actions count instead of money, each known to `Money` from here on."""
    units: dict[str, int] = {}
    for code, unit in spec.units.items():
        try:
            register_unit(code, unit.places)
        except ValueError as exc:
            source, line = lines.find(("units", code))
            raise PolicyError(f"units: {exc}", path=source, line=line) from None
        units[code] = unit.places
    return units


def _action_unit(action_id: str, action: ActionSpec, spec: PackSpec, lines: LineMap) -> str | None:
    """The unit `action` counts, checked against the pack's units and its tools' mappings."""
    if action.unit is None:
        return None
    if action.unit not in spec.units:
        source, line = lines.find(("actions", action_id, "unit"))
        raise PolicyError(
            f"action {action_id!r} counts {action.unit!r}, which the pack does not declare under"
            f" `units`; declared: {', '.join(spec.units) or '(none)'}",
            path=source,
            line=line,
        )
    for index, reason in enumerate(action.exceptions):
        if reason.precedent is not None and reason.precedent.ratio_of is not None:
            source, line = lines.find(("actions", action_id, "exceptions", index, "precedent"))
            raise PolicyError(
                f"reason {reason.id!r} bounds precedents by a ratio of"
                f" {reason.precedent.ratio_of!r}, money, but action {action_id!r} counts"
                f" {action.unit}: amounts of two kinds are never compared; drop ratio_of",
                path=source,
                line=line,
            )
    for index, tool in enumerate(action.tools):
        source, line = lines.find(("actions", action_id, "tools", index))
        if tool.currency is not None:
            raise PolicyError(
                f"tool {tool.name!r} maps a currency, but action {action_id!r} counts"
                f" {action.unit}: its amount is always in {action.unit}; drop `currency:`",
                path=source,
                line=line,
            )
        if tool.amount is None:
            raise PolicyError(
                f"tool {tool.name!r} maps no amount, and action {action_id!r} counts"
                f" {action.unit}: name the argument holding how many (`amount: miles`)",
                path=source,
                line=line,
            )
    return action.unit


def _check_kind_of_reads(
    action_id: str,
    actions: Mapping[str, ActionPolicy],
    totals: Mapping[str, Total],
    asserted: Mapping[str, Asserted],
    lines: LineMap,
) -> None:
    """An action reads no money total of another kind, nor an assertion capped in another.

    An assertion's `unlocks` caps what a rule resting on it may allow: in money
    (`max_amount`), in each unit it names (`units`).
    """
    compiled = actions[action_id]
    for index, name in enumerate(compiled.reads):
        where = lines.find(("actions", action_id, "reads", index))
        item = asserted.get(name)
        if item is not None and item.capped:
            if compiled.unit is not None and compiled.unit not in item.unit_unlocks:
                raise PolicyError(
                    f"action {action_id!r} counts {compiled.unit} and reads {name!r}, whose"
                    f" `unlocks` says nothing in {compiled.unit}: give its cap there too"
                    f" (`units: {{{compiled.unit}: ...}}` under its unlocks)",
                    path=where[0],
                    line=where[1],
                )
            if compiled.unit is None and item.unlocks_minor is None:
                raise PolicyError(
                    f"action {action_id!r} moves money and reads {name!r}, whose `unlocks`"
                    " caps only units: give its `max_amount` too",
                    path=where[0],
                    line=where[1],
                )
        total = totals.get(name)
        if total is None or total.type != "money" or not total.actions:
            continue
        summed = actions[next(iter(total.actions))].unit  # one kind (`_of_one_kind`)
        if summed != compiled.unit:
            raise PolicyError(
                f"action {action_id!r} counts {_kind(compiled.unit)} and reads total {name!r},"
                f" which sums {_kind(summed)}; amounts of two kinds are never compared",
                path=where[0],
                line=where[1],
            )


def _check_counted(
    action_id: str,
    action: ActionPolicy,
    asserted: Mapping[str, Asserted],
    totals: Mapping[str, Total],
    lines: LineMap,
) -> None:
    """An action resting on an assertion whose cap counts a total reads it, and is counted.

    The total counts what every rule resting on the assertion lets through: the action, the
    outcome the rule gives (`allow` for a standard rule, `allow_exception` for a reason), and
    the reason; a total that leaves one out would let its calls through each under the cap.
    """
    for rule in (*action.standard, *action.exceptions):
        for name in rule.rests_on:
            counting = asserted[name].counting
            if counting is None:
                continue
            total = totals[counting]
            outcome = "allow" if rule.kind == "standard" else "allow_exception"
            if counting not in action.reads:
                problem = f"add {counting!r} to the reads of action {action_id!r}"
            elif total.actions is not None and action_id not in total.actions:
                problem = f"the total counts no {action_id!r} calls; add it to its actions"
            elif outcome not in total.outcomes:
                problem = f"the total counts no {outcome} decisions; add it to its outcomes"
            elif total.reasons is not None and rule.id not in total.reasons:
                problem = (
                    f"the total counts only exceptions for {', '.join(sorted(total.reasons))};"
                    " drop its reasons or name this rule there"
                    if rule.kind != "standard"
                    else "the total counts only exceptions (reasons), and this is a standard"
                    " rule; drop its reasons"
                )
            else:
                continue
            source, line = lines.find(("actions", action_id, "reads"))
            raise PolicyError(
                f"rule {rule.id!r} rests on {name!r}, whose cap counts total {counting!r}:"
                f" {problem}",
                path=source,
                line=line,
                rule_id=rule.id,
            )


def _of_one_kind(
    name: str, total: Total, actions: Mapping[str, ActionPolicy], lines: LineMap
) -> Total:
    """A money total in a pack with units: it sums the actions of one kind, money or a unit.

    Without `actions` it sums the actions that move money.
    """
    if total.actions is None:
        money = frozenset(a for a, action in actions.items() if action.unit is None)
        if not money:
            source, line = lines.find(("totals", name))
            raise PolicyError(
                f"total {name!r} names no actions, so it sums the actions that move money, and"
                " every action of the pack counts a unit: it would sum nothing. Name the actions"
                " it sums (`actions: [...]`)",
                path=source,
                line=line,
            )
        return replace(total, actions=money)
    kinds = {actions[a].unit for a in total.actions}
    if len(kinds) > 1:
        source, line = lines.find(("totals", name, "actions"))
        raise PolicyError(
            f"total {name!r} sums actions of different kinds"
            f" ({', '.join(sorted(_kind(k) for k in kinds))}); amounts of two kinds are never"
            " added: keep one total per kind, or make it `type: int` to count decisions",
            path=source,
            line=line,
        )
    return total


def _in_currency(
    pack: PolicyPack,
    spec: PackSpec,
    currency: str,
    entities: Mapping[str, Entity],
    lines: LineMap,
) -> PolicyPack:
    """The pack with every amount in `currency`, from the amounts it states per currency."""
    actions = {
        action_id: _compile_judging(compiled, spec.actions[action_id], spec, lines, currency)
        for action_id, compiled in pack.actions.items()
    }
    asserted = {
        key: replace(
            item, unlocks_minor=_unlocks(spec, key.removeprefix(ASSERTED), lines, currency)
        )
        for key, item in pack.asserted.items()
    }
    roles = tuple(
        _compile_role(index, role, spec, actions, lines, currency)
        for index, role in enumerate(spec.roles)
    )

    def placed(rule_id: str, loc: tuple[Any, ...]) -> tuple[str | None, int | None]:
        return lines.find(loc)

    zone = _zone(spec, lines)
    budgets = tuple(
        _compile_budget(
            index, budget, spec, actions, roles, entities, lines, placed, currency, zone
        )
        for index, budget in enumerate(spec.budgets)
    )
    return replace(
        pack,
        currency=currency,
        actions=MappingProxyType(actions),
        asserted=MappingProxyType(asserted),
        roles=roles,
        budgets=budgets,
        amounts=_named_amounts(spec, lines, currency),
    )


def _named_amounts(spec: PackSpec, lines: LineMap, currency: str) -> Mapping[str, int]:
    """The pack's `amounts` as CEL reads them, in minor units of `currency`."""
    return MappingProxyType(
        {
            AMOUNTS_PREFIX + name: _amount(
                value, currency, spec, lines, ("amounts", name), what=f"amounts {name!r}"
            )
            for name, value in spec.amounts.items()
        }
    )


def _compile_rates(spec: PackSpec, fields: Mapping[str, FieldSpec], lines: LineMap) -> Rates:
    assert spec.rates is not None
    fact, named = spec.rates.fact, spec.rates.currency
    example = f"such as `{fact}: {{type: decimal, places: 6}}`"
    _rates_field(fields, lines, "fact", fact, "decimal", example)
    if named is not None:
        what = f"the currency {fact!r} is the rate of, such as `{named}: string`"
        _rates_field(fields, lines, "currency", named, "string", what)
    return Rates(fact=fact, base=spec.rates.base, currency=named)


def _rates_field(
    fields: Mapping[str, FieldSpec], lines: LineMap, key: str, name: str, kind: str, what: str
) -> None:
    """Refuse a `rates` key naming no context field of `kind`."""
    declared = fields.get(name)
    if declared is None or declared.type != kind:
        source, line = lines.find(("rates", key))
        raise PolicyError(
            f"rates {key} {name!r} must be a context field of type {kind} ({what})"
            + ("" if declared is None else f", not {declared.type}"),
            path=source,
            line=line,
        )


def _check_ungoverned(
    spec: PackSpec, tools: Mapping[str, tuple[str, ToolSpec]], lines: LineMap
) -> None:
    for index, pattern in enumerate(spec.ungoverned_tools):
        mapped = sorted(
            name for name in tools if name == pattern or fnmatch.fnmatchcase(name, pattern)
        )
        if mapped:
            source, line = lines.find(("ungoverned_tools", index))
            raise PolicyError(
                f"ungoverned_tools {pattern!r} names {', '.join(mapped)}, which"
                f" {tools[mapped[0]][0]!r} maps: a tool is governed or not; list only read-only"
                " tools the pack does not map",
                path=source,
                line=line,
            )


_ENTITY_ORDER = ("customer", "order", "case")
"""A record belongs only to records before it: a case to an order or a customer, an order to a
customer. So resolution never loops."""


def _compile_entities(spec: PackSpec, lines: LineMap) -> dict[str, Entity]:
    entities: dict[str, Entity] = {}
    for kind, entity in spec.entities.items():
        for index, parent in enumerate(entity.belongs_to):
            source, line = lines.find(("entities", kind, "belongs_to", index))
            if _ENTITY_ORDER.index(parent) >= _ENTITY_ORDER.index(kind):
                raise PolicyError(
                    f"entities.{kind} cannot belong to {parent!r}: a case may belong to an order"
                    " and a customer, an order to a customer",
                    path=source,
                    line=line,
                )
            if parent not in spec.entities:
                raise PolicyError(
                    f"entities.{kind} belongs to {parent!r}, which entities does not declare;"
                    f" add `{parent}: {{}}` under entities",
                    path=source,
                    line=line,
                )
        entities[kind] = Entity(
            kind=kind,
            belongs_to=tuple(dict.fromkeys(entity.belongs_to)),
            on_unknown=entity.on_unknown,
            on_mismatch=entity.on_mismatch,
            required=entity.required,
        )
    return entities


def _need_entity(
    entities: Mapping[str, Entity], kind: str, what: str, lines: LineMap, loc: tuple[Any, ...]
) -> None:
    if kind in ("customer", "order", "case") and kind not in entities:
        source, line = lines.find(loc)
        raise PolicyError(
            f"{what} is kept per {kind}, so the pack must declare how {kind}s are checked: add"
            f" `{kind}: {{}}` (with belongs_to) under entities; ids the agent types are never"
            " keys on their own",
            path=source,
            line=line,
        )


def _positive_window(text: str, lines: LineMap, loc: tuple[Any, ...]) -> timedelta:
    window = _window(text)
    if window <= timedelta(0):
        source, line = lines.find(loc)
        raise PolicyError("the window must be longer than zero", path=source, line=line)
    return window


def _zone_fact(
    name: str | None,
    calendar: Calendar | Months | None,
    spec: PackSpec,
    lines: LineMap,
    loc: tuple[Any, ...],
    kept: tuple[str, ...],
) -> str | None:
    """A window's `timezone`: a string context field, on a window of the calendar's.

    The fact is one of the record it is kept for (`kept`: its key's parts, or a total's
    `per`), named after it: one budget read in several zones would let a case choose where its
    day began (a customer's two orders in two zones, the later one's day begun after the spend).
    """
    if name is None:
        return None
    source, line = lines.find((*loc, "timezone"))
    record = name.partition(".")[0]
    if not any(part == record or part.partition(".")[0] == record for part in kept):
        raise PolicyError(
            f"timezone {name!r} is not a fact of what it is kept for ({', '.join(kept)}):"
            " each case could name a record of another zone and choose where its period"
            " began; name the zone by a fact of the record it is kept for (`order.timezone`"
            " for one kept per order, `stay.timezone` beside `stay.property_id`)",
            path=source,
            line=line,
        )
    if calendar is None:
        raise PolicyError(
            f"timezone {name!r} is for a calendar window (`calendar month`, `12 months`): a"
            " rolling one counts the same hours wherever the case is; drop it",
            path=source,
            line=line,
        )
    field = spec.context.get(name)
    kind = field.type if isinstance(field, FieldSpec) else field
    if kind != "string":
        raise PolicyError(
            f"timezone {name!r} is not a string context field; declare the fact naming the"
            " case's IANA time zone (`property.timezone: string`, valued `Asia/Tokyo`)",
            path=source,
            line=line,
        )
    return name


def _counting_window(
    text: str, zone: tzinfo, lines: LineMap, loc: tuple[Any, ...]
) -> tuple[timedelta, Calendar | Months | None]:
    """A total's, a budget's or cumulative authority's window: rolling, or a calendar period.

    For a calendar period, the span is the longest such a period runs (what a caller that
    needs an upper bound reads).
    """
    if text.startswith("calendar "):
        calendar = Calendar(unit=text.removeprefix("calendar "), zone=zone)
        return calendar.longest, calendar
    if text == EVER:
        return _EVER, None
    if " " in text:
        count, unit = text.split(" ")
        months = Months(count=int(count) * (12 if unit.startswith("year") else 1), zone=zone)
        if months.count <= 0:
            source, line = lines.find(loc)
            raise PolicyError("the window must be longer than zero", path=source, line=line)
        return months.longest, months
    return _positive_window(text, lines, loc), None


EVER = "ever"
"""A window over everything on record: "once per account, ever"."""
_EVER = timedelta(days=366 * 200)
"""What `ever` spans: longer than any ledger, short enough that its start is a valid time."""


def _zone(spec: PackSpec, lines: LineMap) -> tzinfo:
    """The pack's `timezone`, where its calendar windows begin."""
    if spec.timezone == "UTC":
        return UTC
    zone = zone_named(spec.timezone)
    if zone is None:
        source, line = lines.find(("timezone",))
        raise PolicyError(
            f"timezone {spec.timezone!r} is not a time zone this machine knows; give an IANA"
            " name such as 'Europe/Berlin' or 'America/New_York' (where the system has no"
            " time zone data, install the tzdata package)",
            path=source,
            line=line,
        )
    return zone


def _compile_totals(
    spec: PackSpec,
    entities: Mapping[str, Entity],
    fields: Mapping[str, FieldSpec],
    lines: LineMap,
    zone: tzinfo,
) -> dict[str, Total]:
    totals: dict[str, Total] = {}
    for name, total in spec.totals.items():
        loc = ("totals", name)
        if name in fields or name in BUILTIN_VARIABLES:
            source, line = lines.find(loc)
            raise PolicyError(
                f"total {name!r} has the name of a"
                f" {'built-in variable' if name in BUILTIN_VARIABLES else 'context field'};"
                " give it a name of its own",
                path=source,
                line=line,
            )
        _need_entity(entities, total.per, f"total {name!r}", lines, (*loc, "per"))
        window, calendar = _counting_window(total.window, zone, lines, (*loc, "window"))
        totals[name] = Total(
            name=name,
            type=total.type,
            actions=frozenset(total.actions) if total.actions is not None else None,
            per=total.per,
            window=window,
            calendar=calendar,
            zone_fact=_zone_fact(total.timezone, calendar, spec, lines, loc, (total.per,)),
            outcomes=frozenset(total.outcomes),
            reasons=frozenset(total.reasons) if total.reasons is not None else None,
            args=tuple(dict.fromkeys(total.args)),
        )
    return totals


def _compile_judging(
    compiled: ActionPolicy, action: ActionSpec, spec: PackSpec, lines: LineMap, currency: str
) -> ActionPolicy:
    """Attach each reason's evidence and LLM judge band, and the action's amounts in `currency`.

    A unit action's amounts are in its unit, whatever `currency` is.
    """
    currency = compiled.unit or currency
    reasons = []
    pairs = zip(compiled.exceptions, action.exceptions, strict=True)
    for index, (rule, reason) in enumerate(pairs):
        loc = ("actions", compiled.name, "exceptions", index)
        evidence = (
            _compile_evidence(rule.id, reason.evidence, compiled, lines, loc)
            if reason.evidence is not None
            else None
        )
        band_spec = reason.judge
        band_loc: tuple[Any, ...] = (*loc, "judge")
        if band_spec is None:
            band_spec, band_loc = action.judge, ("actions", compiled.name, "judge")
        band = _compile_band(rule, band_spec, spec, currency, lines, band_loc)
        reasons.append(replace(rule, evidence=evidence, judge=band))
    compiled = compiled.with_exceptions(tuple(reasons))
    if action.two_approvals_above is None:
        return compiled
    above = _amount(
        action.two_approvals_above,
        currency,
        spec,
        lines,
        ("actions", compiled.name, "two_approvals_above"),
        what="two_approvals_above",
    )
    return replace(compiled, two_approvals_minor=above)


def _compile_claims(pack: ClaimsSpec | None, action: ClaimsSpec | None) -> ClaimsPolicy | None:
    """The action's claims policy: the keys it sets over the pack's; None when neither says."""
    if pack is None and action is None:
        return None
    merged: dict[str, Any] = {}
    for spec in (pack, action):
        if spec is not None:
            merged.update({key: getattr(spec, key) for key in spec.model_fields_set})
    claims = ClaimsSpec(**merged)
    return ClaimsPolicy(
        every_decision=claims.check == "every_decision",
        on_contradiction=claims.on_contradiction,
    )


# CEL allows space around a selection's dot (`asserted . customer.reason`): so does this.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\s*\.\s*[A-Za-z_][A-Za-z0-9_]*)*")
_SPACE = re.compile(r"\s+")


_ACTOR = re.compile(r"\bactor\s*\.\s*(?:role|is_ai)\b")
_ACTOR_ID = re.compile(r"\bactor\s*\.\s*id\b")
_PROPOSED = re.compile(r"\b(?:asserted|args|actor|rationale)\s*\.")
"""What the proposer supplies: never who decides a case."""


def split_conjuncts(text: str) -> list[str]:
    """The parts a CEL expression's top-level `&&` joins (one part when there is none).

    Comments are dropped; parentheses, brackets, braces and string literals are skipped over; a
    pair of parentheses around the whole expression is taken off first. An expression whose top
    level holds `||` or `?:` is one part: they bind looser than `&&`.
    """
    text = without_comments(text).strip()
    while text.startswith("(") and _closing(text, 0) == len(text) - 1:
        text = text[1:-1].strip()
    parts: list[str] = []
    depth, start, index, quote = 0, 0, 0, ""
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and (text.startswith("||", index) or char == "?"):
            # `a && b || c` is `(a && b) || c`, and `a && b ? c : d` is `(a && b) ? c : d`:
            # an `||` or a `?:` binds looser than `&&`, so the whole is one part.
            return [text]
        elif depth == 0 and text.startswith("&&", index):
            parts.append(text[start:index].strip())
            start = index + 2
            index += 1
        index += 1
    parts.append(text[start:].strip())
    return [part for part in parts if part]


def _closing(text: str, opening: int) -> int:
    """The index of the bracket closing the one at `opening`; -1 when it is not closed."""
    depth, quote, index = 0, "", opening
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return -1


def _with_grounds(rule: Rule, action: ActionPolicy) -> Rule:
    """A standard rule or reason with its `when` split into grounds an explanation can name."""
    parts = split_conjuncts(rule.when.source)
    # `has(name)` is read as the bool bound to the name's presence, in a part as in the whole.
    tested = {name: True for _, name in action.presence}
    grounds = []
    for part in parts:
        try:
            program = (
                rule.when
                if len(parts) == 1
                else CelProgram.compile(
                    action.env,
                    part,
                    result="bool",
                    declared=[],
                    path=None,
                    line=None,
                    rule_id=rule.id,
                    text=rewrite_presence(part, tested)[0],
                )
            )
        except PolicyError:
            # The whole expression type-checked, so each part does; should a part not, the
            # whole expression stands as the one ground rather than a valid pack failing.
            return replace(rule, grounds=(_ground(rule.when.source, rule.when, action),))
        grounds.append(_ground(part, program, action))
    return replace(rule, grounds=tuple(grounds))


def _names_read(source: str, reads: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """The fields of `reads` a CEL expression names, and whether it names `amount`."""
    names = [_SPACE.sub("", name) for name in _NAME.findall(blank_literals(source))]
    # `order.items.size()` reads `order.items`: the longest declared prefix of each name.
    found = []
    for name in names:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            if prefix in reads:
                found.append(prefix)
                break
    return tuple(dict.fromkeys(found)), "amount" in names


def _ground(source: str, program: CelProgram, action: ActionPolicy) -> Ground:
    reads, reads_amount = _names_read(source, action.reads)
    return Ground(source=one_line(source), program=program, reads=reads, reads_amount=reads_amount)


def _unit_unlocks(spec: PackSpec, name: str, lines: LineMap) -> dict[str, int]:
    """What a rule resting on the assertion `name` may allow alone, in each unit it names."""
    unlocks = spec.asserted[name].unlocks
    caps: dict[str, int] = {}
    for code, text in (unlocks.units if unlocks is not None else {}).items():
        where = lines.find(("asserted", name, "unlocks", "units", code))
        if code not in spec.units:
            raise PolicyError(
                f"asserted {name!r} unlocks an amount of {code!r}, which the pack does not"
                f" declare under `units`; declared: {', '.join(spec.units) or '(none)'}",
                path=where[0],
                line=where[1],
            )
        caps[code] = _minor(text, code, where=where, what=f"asserted {name!r} unlocks {code}")
    return caps


def _unlocks(spec: PackSpec, name: str, lines: LineMap, currency: str) -> int | None:
    """What a rule resting on the assertion `name` may allow alone, in minor units."""
    unlocks = spec.asserted[name].unlocks
    if unlocks is None or unlocks.max_amount is None:
        return None
    return _amount(
        unlocks.max_amount,
        currency,
        spec,
        lines,
        ("asserted", name, "unlocks", "max_amount"),
        what=f"asserted {name!r} unlocks max_amount",
    )


def _compile_asserted(
    spec: PackSpec, fields: Mapping[str, FieldSpec], lines: LineMap, currency: str
) -> dict[str, Asserted]:
    """The facts the agent may assert, by the name rules read them under."""
    for name in fields:
        if name.startswith(ASSERTED):
            source, line = lines.find(("context", name))
            raise PolicyError(
                f"context field {name!r}: names starting with {ASSERTED!r} are the agent's"
                f" assertions; declare it under asserted as {name.removeprefix(ASSERTED)!r}",
                path=source,
                line=line,
            )
    asserted: dict[str, Asserted] = {}
    for name, item in spec.asserted.items():
        loc = ("asserted", name)
        for index, value in enumerate(item.values or []):
            fits = (
                isinstance(value, str) if item.type == "string" else isinstance(value, int)
            ) and item.type != "bool"
            if not fits:
                source, line = lines.find((*loc, "values", index))
                raise PolicyError(
                    f"asserted {name!r} is a {item.type}, but values lists {value!r};"
                    + (
                        " a bool takes no values list"
                        if item.type == "bool"
                        else f" list {item.type} values only"
                    ),
                    path=source,
                    line=line,
                )
        asserted[ASSERTED + name] = Asserted(
            name=ASSERTED + name,
            type=item.type,
            values=frozenset(item.values) if item.values is not None else None,
            unlocks_minor=_unlocks(spec, name, lines, currency),
            description=item.description,
            unit_unlocks=_unit_unlocks(spec, name, lines),
            counting=_counting(spec, name, fields, lines),
        )
    return asserted


def _counting(
    spec: PackSpec, name: str, fields: Mapping[str, FieldSpec], lines: LineMap
) -> str | None:
    """The money total an assertion's cap is measured with, checked to be one."""
    unlocks = spec.asserted[name].unlocks
    counting = unlocks.counting if unlocks is not None else None
    if counting is None:
        return None
    if counting not in spec.totals or fields[counting].type != "money":
        source, line = lines.find(("asserted", name, "unlocks", "counting"))
        money = sorted(n for n in spec.totals if fields[n].type == "money")
        raise PolicyError(
            f"asserted {name!r} unlocks counting {counting!r}, which is not a money total;"
            f" name one under totals: {', '.join(money) or '(none)'}",
            path=source,
            line=line,
        )
    return counting


def _rest_on_assertions(
    action_id: str, spec: ActionSpec, action: ActionPolicy, lines: LineMap
) -> ActionPolicy:
    """Mark the rules that read assertions; refuse an assertion where only a fact may stand."""
    for index, reason in enumerate(spec.exceptions):
        loc = ("actions", action_id, "exceptions", index)
        used = [
            ((*loc, "evidence", "claims", i), name)
            for i, name in enumerate(reason.evidence.claims if reason.evidence else [])
        ] + [
            ((*loc, "precedent", "scope", i), name)
            for i, name in enumerate(reason.precedent.scope if reason.precedent else [])
        ]
        for at, name in used:
            if name.startswith(ASSERTED):
                source, line = lines.find(at)
                what = "an evidence claim" if "evidence" in at else "a precedent scope key"
                raise PolicyError(
                    f"{name!r} is the agent's own assertion, so it cannot be {what}: those are"
                    " checked against grounded facts; name a context field instead",
                    path=source,
                    line=line,
                    rule_id=reason.id,
                )
    asserted_reads = tuple(name for name in action.reads if name.startswith(ASSERTED))
    if not asserted_reads:
        return action

    def marked(rule: Rule) -> Rule:
        # Each expression on its own: a `//` comment ending the `when` ends there.
        sources = [rule.when.source, *([rule.max_amount.source] if rule.max_amount else [])]
        names = [name for text in sources for name in _names_read(text, asserted_reads)[0]]
        return replace(rule, rests_on=tuple(dict.fromkeys(names)))

    return replace(
        action,
        standard=tuple(marked(rule) for rule in action.standard),
        exceptions=tuple(marked(rule) for rule in action.exceptions),
    )


def _compile_evidence(
    reason_id: str,
    spec: EvidenceSpec,
    action: ActionPolicy,
    lines: LineMap,
    loc: tuple[Any, ...],
) -> Evidence:
    def fail(message: str, at: tuple[Any, ...]) -> PolicyError:
        source, line = lines.find((*loc, "evidence", *at))
        return PolicyError(message, path=source, line=line, rule_id=reason_id)

    for index, name in enumerate(spec.claims):
        if name not in action.reads:
            raise fail(
                f"evidence claim {name!r} is not a field the action reads, so it could never be"
                f" checked against the facts; reads: {', '.join(action.reads) or '(none)'}",
                ("claims", index),
            )
    patterns = []
    for name, pattern in spec.text_must_match.items():
        try:
            patterns.append((name, re.compile(pattern)))
        except re.error as exc:
            raise fail(
                f"evidence text_must_match {name!r}: {pattern!r} is not a valid regular"
                f" expression ({exc}); write it as Python's re module reads it",
                ("text_must_match", name),
            ) from None
    return Evidence(
        claims=tuple(spec.claims), min_text=spec.min_text, text_patterns=tuple(patterns)
    )


def _compile_band(
    rule: Rule,
    spec: JudgeBandSpec | bool | None,
    pack: PackSpec,
    currency: str,
    lines: LineMap,
    loc: tuple[Any, ...],
) -> JudgeBand | None:
    if spec is None or spec is False:
        return None
    clause = rule.description or rule.message or rule.id
    if spec is True:
        return JudgeBand(min_minor=0, max_minor=None, clause=clause)
    where = lines.find(loc)
    low = _amount(
        spec.min_amount,
        currency,
        pack,
        lines,
        (*loc, "min_amount"),
        what="judge min_amount",
        where=where if isinstance(spec.min_amount, str) else None,
    )
    high = (
        _amount(
            spec.max_amount,
            currency,
            pack,
            lines,
            (*loc, "max_amount"),
            what="judge max_amount",
            where=where if isinstance(spec.max_amount, str) else None,
        )
        if spec.max_amount is not None
        else None
    )
    if high is not None and high < low:
        raise PolicyError(
            f"judge max_amount {Money.from_minor(high, currency).amount} is below min_amount"
            f" {Money.from_minor(low, currency).amount}: the band"
            " holds no amount",
            path=where[0],
            line=where[1],
            rule_id=rule.id,
        )
    return JudgeBand(min_minor=low, max_minor=high, clause=spec.clause or clause)


def _check_reviewers(spec: PackSpec, roles: tuple[Role, ...], lines: LineMap) -> None:
    """A review's `by` is a role of the pack that people hold: an AI never decides a case."""
    for action_id, action in spec.actions.items():
        for index, review in enumerate(action.reviews):
            if review.by is None:
                for key, said in (("only", "only: true"), ("person", "person")):
                    if getattr(review, key) in (None, False):
                        continue
                    source, line = lines.find(("actions", action_id, "reviews", index, key))
                    raise PolicyError(
                        f"{said} names no role: say which role decides the case (by)",
                        path=source,
                        line=line,
                        rule_id=review.id,
                    )
                continue
            role = next((r for r in roles if r.id == review.by), None)
            if role is None:
                problem = (
                    f"review names role {review.by!r}, which the pack does not define;"
                    f" roles: {', '.join(r.id for r in roles)}"
                )
            elif role.is_ai:
                problem = (
                    f"review names role {review.by!r}, which AI agents hold; a review is"
                    " decided by a person: name a human role"
                )
            elif (review.only or role.beside) and not role.holds(action_id):
                # Nobody else may decide what it holds, and it may grant none of it: every
                # such case would wait, its approval refused whoever gives it.
                problem = (
                    f"review is decided only by {review.by!r}, which holds no authority over"
                    f" {action_id!r}: no one could approve the cases it holds. Give"
                    f" {review.by!r} authority over {action_id!r} under roles"
                )
            else:
                continue
            source, line = lines.find(("actions", action_id, "reviews", index, "by"))
            raise PolicyError(problem, path=source, line=line, rule_id=review.id)


def _roles(granted_by: list[str] | None) -> frozenset[str] | None:
    """A rule's `granted_by` as the compiled rule holds it: every role when None."""
    return frozenset(granted_by) if granted_by is not None else None


def _check_granted_by(
    rule_id: str,
    granted_by: list[str] | None,
    role_ids: list[str],
    lines: LineMap,
    loc: tuple[Any, ...],
) -> None:
    """A rule's `granted_by` names roles the pack defines, and at least one."""
    if granted_by is None:
        return
    if not granted_by:
        source, line = lines.find((*loc, "granted_by"))
        raise PolicyError(
            "granted_by is empty, so no role could ever use the rule; name the roles that may,"
            " or leave granted_by out for every role",
            path=source,
            line=line,
            rule_id=rule_id,
        )
    for role_index, role_id in enumerate(granted_by):
        if role_id not in role_ids:
            source, line = lines.find((*loc, "granted_by", role_index))
            raise PolicyError(
                f"granted_by names role {role_id!r}, which the pack does not define;"
                f" roles: {', '.join(role_ids)}",
                path=source,
                line=line,
                rule_id=rule_id,
            )


def _compile_action(
    action_id: str,
    action: ActionSpec,
    fields: Mapping[str, FieldSpec],
    role_ids: list[str],
    lines: LineMap,
    claim: Any,
    *,
    beside: frozenset[str] = frozenset(),
    records: Mapping[str, RecordType] | None = None,
    amounts: Iterable[str] = (),
    business: BusinessDays | None = None,
) -> ActionPolicy:
    base = ("actions", action_id)
    for index, name in enumerate(action.reads):
        if name not in fields:
            source, line = lines.find((*base, "reads", index))
            raise PolicyError(
                f"action {action_id!r} reads {name!r}, which the pack's context does not declare;"
                f" declared: {', '.join(sorted(fields)) or '(none)'}",
                path=source,
                line=line,
            )
    args = _compile_args(action_id, action, lines, records or {})
    variables = {
        **BUILTIN_VARIABLES,
        **{name: fields[name].type for name in action.reads},
        **{ARGS_PREFIX + name: arg.type for name, arg in args.items()},
        **{AMOUNTS_PREFIX + name: "money" for name in amounts},
    }
    declared = list(variables)
    unread = frozenset(fields) - frozenset(variables)
    absent = _may_be_absent(action, fields, args)
    env = new_env(
        {**variables, **{PRESENCE_PREFIX + name: "bool" for name in absent}}, records, business
    )
    tested: list[str] = []

    def program(source_text: str, result: str, loc: tuple[Any, ...], rule_id: str) -> CelProgram:
        path, line = lines.find(loc)
        text, used, never_absent = rewrite_presence(source_text, absent)
        if never_absent:
            raise PolicyError(
                f"has({never_absent[0]}) in {source_text!r} is always true: {never_absent[0]!r}"
                " is never absent (a missing fact routes, a missing argument is refused);"
                " declare it `optional: true` to decide on its absence",
                path=path,
                line=line,
                rule_id=rule_id,
                expression=source_text,
            )
        tested.extend(used)
        return CelProgram.compile(
            env,
            source_text,
            result=result,
            declared=declared,
            path=path,
            line=line,
            rule_id=rule_id,
            text=text,
            unread=unread,
        )

    def _refuse_actor_id(
        kind: str, rule_id: str, texts: tuple[tuple[str, str | None], ...], loc: tuple[Any, ...]
    ) -> None:
        """No standard rule or reason reads `actor.id`: what they grant is a role's.

        A case the actor may not decide goes to a role, and the person of that role who decides
        it is not known until they do: a rule granting to one person by id could only deny the
        agent what it means to leave to that person. A hard limit or review may read it.
        """
        for key, text in texts:
            if text is None or not _ACTOR_ID.search(blank_literals(text)):
                continue
            source, line = lines.find((*loc, key))
            raise PolicyError(
                f"{kind} rule {rule_id!r} reads actor.id: what a standard rule or reason grants"
                " is a role's, and the person who decides a routed case is not known before"
                " they do. To leave a case to one named person, give the action a review with"
                " `by` their role and `person` the fact naming them; to forbid a person a case"
                " (their own account), write a hard limit",
                path=source,
                line=line,
                rule_id=rule_id,
                expression=text,
            )

    def rule(kind: str, key: str, index: int, spec: Any, **extra: Any) -> Rule:
        """One rule of the action: its id claimed, its `when` (and `max_amount`) compiled."""
        loc = (*base, key, index)
        claim(spec.id, loc)
        limit = getattr(spec, "max_amount", None)
        if kind in ("standard", "exception"):
            _refuse_actor_id(kind, spec.id, (("when", spec.when), ("max_amount", limit)), loc)
        return Rule(
            id=spec.id,
            kind=kind,
            when=program(spec.when, "bool", (*loc, "when"), spec.id),
            max_amount=program(limit, "int", (*loc, "max_amount"), spec.id)
            if limit is not None
            else None,
            message=spec.message,
            description=spec.description,
            **extra,
        )

    standard = []
    for index, spec in enumerate(action.standard):
        _check_granted_by(spec.id, spec.granted_by, role_ids, lines, (*base, "standard", index))
        standard.append(
            rule("standard", "standard", index, spec, granted_by=_roles(spec.granted_by))
        )
    hard_limits = [
        rule(
            "hard_limit",
            "hard_limits",
            index,
            spec,
            personal=bool(_ACTOR_ID.search(blank_literals(spec.when))),
        )
        for index, spec in enumerate(action.hard_limits)
    ]
    exceptions = []
    for index, reason in enumerate(action.exceptions):
        loc = (*base, "exceptions", index)
        _check_granted_by(reason.id, reason.granted_by, role_ids, lines, loc)
        precedent = (
            _compile_precedent(reason.id, reason.precedent, action, fields, role_ids, lines, loc)
            if reason.precedent is not None
            else None
        )
        exceptions.append(
            rule(
                "exception",
                "exceptions",
                index,
                reason,
                granted_by=_roles(reason.granted_by),
                precedent=precedent,
            )
        )
    reviews = [
        rule(
            "review",
            "reviews",
            index,
            spec,
            by=spec.by,
            # A team beside the ladder is its review alone: no rank stands in for it.
            only=spec.only or spec.by in beside,
            person=program(spec.person, "string", (*base, "reviews", index, "person"), spec.id)
            if spec.person is not None
            else None,
        )
        for index, spec in enumerate(action.reviews)
    ]
    granting = [*standard, *exceptions]
    for index, review in enumerate(reviews):
        if review.person is not None and _PROPOSED.search(blank_literals(review.person.source)):
            source, line = lines.find((*base, "reviews", index, "person"))
            raise PolicyError(
                f"review {review.id!r}: person {review.person.source!r} reads what the proposal"
                " supplies (its arguments, assertions, actor or rationale): the agent, or a"
                " person proposing, would name who decides the case. Read the person from the"
                " case's records, a context field",
                path=source,
                line=line,
                rule_id=review.id,
                expression=review.person.source,
            )
    return ActionPolicy(
        reads_actor=any(
            _ACTOR.search(
                blank_literals(f"{r.when.source} {r.max_amount.source if r.max_amount else ''}")
            )
            for r in granting
        ),
        name=action_id,
        reads=tuple(action.reads),
        standard=tuple(standard),
        hard_limits=tuple(hard_limits),
        exceptions=tuple(exceptions),
        reviews=tuple(reviews),
        env=env,
        approval_sla=_sla(action.approval_sla, lines, (*base, "approval_sla"))
        if action.approval_sla is not None
        else None,
        args=MappingProxyType(args),
        presence=tuple((PRESENCE_PREFIX + name, name) for name in dict.fromkeys(tested)),
    )


def _with_every_action(spec: PackSpec, lines: LineMap) -> tuple[PackSpec, frozenset[str]]:
    """`spec` with the hard limits, reviews and reads of `every_action` in each action it names.

    `every_action` is one block or a list of them, each for the actions it names. Their rules
    come first in each action's lists, in the order the blocks are written, and the line map
    finds each where it is written. Returns the pack and the ids of the rules so shared.
    """
    given = spec.every_action
    if given is None:
        return spec, frozenset()
    blocks: list[tuple[tuple[Any, ...], EveryActionSpec]] = (
        [(("every_action", index), block) for index, block in enumerate(given)]
        if isinstance(given, list)
        else [(("every_action",), given)]
    )
    ids: set[str] = set()
    for at, shared in blocks:
        names = shared.actions if shared.actions is not None else list(spec.actions)
        for index, name in enumerate(names):
            if name not in spec.actions:
                source, line = lines.find((*at, "actions", index))
                raise PolicyError(
                    f"every_action names action {name!r}, which is not an action;"
                    f" actions: {', '.join(spec.actions)}",
                    path=source,
                    line=line,
                )
        located = [("hard_limits", i, r.id) for i, r in enumerate(shared.hard_limits)]
        located += [("reviews", i, r.id) for i, r in enumerate(shared.reviews)]
        for key, index, rule_id in located:
            if rule_id in ids:
                source, line = lines.find((*at, key, index))
                raise PolicyError(
                    "rule id is used twice in every_action", path=source, line=line, rule_id=rule_id
                )
            ids.add(rule_id)
    actions = dict(spec.actions)
    for name, own in spec.actions.items():
        for key in ("standard", "hard_limits", "exceptions", "reviews"):
            for index, rule in enumerate(getattr(own, key)):
                if rule.id in ids:
                    source, line = lines.find(("actions", name, key, index))
                    raise PolicyError(
                        f"rule id is every_action's already; action {name!r} names its own"
                        " rules apart",
                        path=source,
                        line=line,
                        rule_id=rule.id,
                    )
    # The last block first: each is placed before what the action holds so far.
    for at, shared in reversed(blocks):
        names = shared.actions if shared.actions is not None else list(spec.actions)
        for name in dict.fromkeys(names):
            own = actions[name]
            reads = list(own.reads)
            for index, field in enumerate(shared.reads):
                if field not in reads:
                    found = lines.find((*at, "reads", index))
                    if found[0] is not None and found[1] is not None:
                        lines.where[("actions", name, "reads", len(reads))] = (found[0], found[1])
                    reads.append(field)
            for key in ("hard_limits", "reviews"):
                lines.graft(("actions", name, key), (*at, key), len(getattr(shared, key)))
            actions[name] = own.model_copy(
                update={
                    "reads": reads,
                    "hard_limits": [*shared.hard_limits, *own.hard_limits],
                    "reviews": [*shared.reviews, *own.reviews],
                }
            )
    return spec.model_copy(update={"actions": actions}), frozenset(ids)


def _compile_fields(
    spec: PackSpec, lines: LineMap, records: Mapping[str, RecordType]
) -> dict[str, FieldSpec]:
    """The pack's context fields, each checked for the keys its type takes.

    An `optional` field may be absent, as a `nullable` one may: both are assembled alike, and a
    rule may test either with `has()`. A field of a record type carries its compiled type.
    """
    fields: dict[str, FieldSpec] = {}
    for name, item in spec.context.items():
        field = item if isinstance(item, FieldSpec) else FieldSpec(type=item)
        loc = ("context", name)
        if name.startswith((ARGS_PREFIX, PRESENCE_PREFIX)):
            source, line = lines.find(loc)
            raise PolicyError(
                f"context field {name!r}: names under {ARGS_PREFIX!r} are the tool arguments an"
                " action declares (and `__present.` is discretion's own); name the fact otherwise",
                path=source,
                line=line,
            )
        _check_typed(field, f"context field {name!r}", lines, loc)
        if field.optional and not field.nullable:
            field = field.model_copy(update={"nullable": True})
        if field.type not in FIELD_TYPES:
            record, is_list = _record_of(field.type, f"context field {name!r}", records, lines, loc)
            field = RecordFieldSpec(**field.model_dump(), record=record, is_list=is_list)
        fields[name] = field
    return fields


_SCALARS = frozenset({*FIELD_TYPES, *MEMBER_TYPES})
# Words CEL reserves: a record field so named could never be read.
_CEL_RESERVED = frozenset(
    [
        "as",
        "break",
        "const",
        "continue",
        "else",
        "false",
        "for",
        "function",
        "if",
        "import",
        "in",
        "let",
        "loop",
        "package",
        "namespace",
        "null",
        "return",
        "true",
        "var",
        "void",
        "while",
    ]
)


def _likely(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest choice, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _record_of(
    kind: str, what: str, records: Mapping[str, RecordType], lines: LineMap, loc: tuple[Any, ...]
) -> tuple[RecordType, bool]:
    name, is_list = record_name(kind)
    if name not in records:
        source, line = lines.find(loc)
        raise PolicyError(
            f"{what} has type {kind!r}, which is neither a type ({', '.join(sorted(_SCALARS))})"
            f" nor a record the pack declares under records"
            f" ({', '.join(sorted(records)) or 'none'}){_likely(kind, [*_SCALARS, *records])}",
            path=source,
            line=line,
        )
    return records[name], is_list


def _compile_records(spec: PackSpec, lines: LineMap) -> dict[str, RecordType]:
    """The pack's record types, checked and compiled into messages CEL type-checks against."""
    declared: dict[str, tuple[RecordMember, ...]] = {}
    for name, record in spec.records.items():
        loc = ("records", name)
        if name in _SCALARS or name == "list":
            source, line = lines.find(loc)
            raise PolicyError(
                f"record {name!r} has the name of a type; give it a name of its own",
                path=source,
                line=line,
            )
        members = []
        for member_name, item in record.fields.items():
            member = item if isinstance(item, MemberSpec) else MemberSpec(type=item)
            at = (*loc, "fields", member_name)
            what = f"field {member_name!r} of record {name!r}"
            if member_name in _CEL_RESERVED:
                source, line = lines.find(at)
                raise PolicyError(
                    f"{what}: {member_name!r} is a word CEL reserves; name it otherwise",
                    path=source,
                    line=line,
                )
            _check_typed(member, what, lines, at)
            if member.type not in MEMBER_TYPES and record_name(member.type)[0] not in spec.records:
                source, line = lines.find(at)
                raise PolicyError(
                    f"{what} has type {member.type!r}, which is neither a type"
                    f" ({', '.join(MEMBER_TYPES)}) nor a record the pack declares"
                    f" ({', '.join(sorted(spec.records))})"
                    f"{_likely(member.type, [*MEMBER_TYPES, *spec.records])}",
                    path=source,
                    line=line,
                )
            if member.nullable and member.type.startswith("list["):
                source, line = lines.find(at)
                raise PolicyError(
                    f"{what} is a list and cannot be nullable: a record with none gives an"
                    " empty list; remove `nullable`",
                    path=source,
                    line=line,
                )
            members.append(
                RecordMember(
                    name=member_name,
                    type=member.type,
                    places=member.places,
                    signed=member.signed,
                    nullable=member.nullable,
                )
            )
        declared[name] = tuple(members)
    return build_records(declared) if declared else {}


def _check_typed(
    spec: FieldSpec | ArgSpec | MemberSpec, what: str, lines: LineMap, loc: tuple[Any, ...]
) -> None:
    """A decimal needs its places; places and signed belong to decimal and money alone."""
    problem = None
    if spec.type == "decimal" and spec.places is None:
        problem = (
            f"{what} is a decimal but says no places; write `{{type: decimal, places: 1}}`"
            " (CEL sees an int of that many places: 1.5 is 15)"
        )
    elif spec.type != "decimal" and spec.places is not None:
        problem = f"{what} is {spec.type}: `places` is for a decimal"
    elif spec.type != "money" and spec.signed:
        problem = f"{what} is {spec.type}: `signed` is for money (a decimal has a sign anyway)"
    if problem is not None:
        source, line = lines.find(loc)
        raise PolicyError(problem, path=source, line=line)


_VALUE_TYPES = {"string": str, "int": int}
"""The argument types that take a `values` list, and the Python type of each value."""


def _compile_args(
    action_id: str, action: ActionSpec, lines: LineMap, records: Mapping[str, RecordType]
) -> dict[str, ArgSpec]:
    """The tool arguments an action's rules read, checked against how its tools carry them."""
    base = ("actions", action_id)
    args: dict[str, ArgSpec] = {}
    for name, item in action.args.items():
        arg = item if isinstance(item, ArgSpec) else ArgSpec(type=item)
        loc = (*base, "args", name)
        _check_typed(arg, f"argument {name!r}", lines, loc)
        element = _VALUE_TYPES.get(arg.type)
        for index, value in enumerate(arg.values or []):
            if element is None or type(value) is not element:
                source, line = lines.find((*loc, "values", index))
                raise PolicyError(
                    f"argument {name!r} is a {arg.type}, but values lists {value!r};"
                    + (
                        f" list {arg.type} values only"
                        if element is not None
                        else " only a string or int argument takes a values list"
                    ),
                    path=source,
                    line=line,
                )
        if arg.type not in FIELD_TYPES:
            record, is_list = _record_of(arg.type, f"argument {name!r}", records, lines, loc)
            arg = RecordArgSpec(**arg.model_dump(), record=record, is_list=is_list)
        args[name] = arg
    if args and not action.tools:
        source, line = lines.find((*base, "args"))
        raise PolicyError(
            f"action {action_id!r} declares args but maps no tool to carry them; list its tools,"
            " with `args:` paths where a tool carries an argument under another name",
            path=source,
            line=line,
        )
    for index, tool in enumerate(action.tools):
        taken = {
            path: key
            for key in ("amount", "currency", "customer", "case", "order")
            if (path := getattr(tool, key)) is not None
        }
        for name in tool.args:
            source, line = lines.find((*base, "tools", index, "args", name))
            if name not in args:
                raise PolicyError(
                    f"tool {tool.name!r} maps argument {name!r}, which action {action_id!r} does"
                    f" not declare under args; declared: {', '.join(sorted(args)) or '(none)'}",
                    path=source,
                    line=line,
                )
        for name, arg in args.items():
            path = tool.args.get(name, name)
            # The amount is read as exact money in the pack's currency; an argument reading
            # the same value under another type would let two readings of one value disagree.
            if taken.get(path) == "amount" and arg.type != "money":
                source, line = lines.find((*base, "tools", index))
                raise PolicyError(
                    f"argument {name!r} ({arg.type}) reads {path!r}, which tool {tool.name!r}"
                    " maps as the amount; declare it money, or use `amount` in the rules",
                    path=source,
                    line=line,
                )
    return args


def _may_be_absent(
    action: ActionSpec, fields: Mapping[str, FieldSpec], args: Mapping[str, ArgSpec]
) -> dict[str, bool]:
    """Every name an action's rules may read, and whether it may be absent (`has()`-testable)."""
    absent = {name: fields[name].nullable for name in action.reads}
    absent.update({ARGS_PREFIX + name: arg.optional for name, arg in args.items()})
    return absent


def _window(text: str) -> timedelta:
    """A duration written as a count and a unit: `30d`, `24h`, `15m`, `90s`."""
    return timedelta(**{_WINDOW_UNITS[text[-1]]: int(text[:-1])})


def _sla(text: str, lines: LineMap, loc: tuple[Any, ...]) -> timedelta:
    sla = _window(text)
    if sla <= timedelta(0):
        source, line = lines.find(loc)
        raise PolicyError("approval_sla must be longer than zero", path=source, line=line)
    return sla


def _compile_precedent(
    reason_id: str,
    spec: PrecedentPolicySpec,
    action: ActionSpec,
    fields: Mapping[str, FieldSpec],
    role_ids: list[str],
    lines: LineMap,
    loc: tuple[Any, ...],
) -> PrecedentPolicy:
    def fail(message: str, at: tuple[Any, ...]) -> PolicyError:
        source, line = lines.find((*loc, "precedent", *at))
        return PolicyError(message, path=source, line=line, rule_id=reason_id)

    for index, name in enumerate(spec.scope):
        if name not in action.reads:
            record = next((r for r in action.reads if name.startswith(f"{r}.")), None)
            if record is not None:
                # A field inside a record fact: scope keys are whole facts.
                raise fail(
                    f"precedent scope names {name!r}, a field inside the record fact"
                    f" {record!r}; scope keys are whole facts: declare"
                    f" {name.removeprefix(record + '.')!r} as a fact of its own (such as"
                    f" {record + '_' + name.removeprefix(record + '.').replace('.', '_')!r})"
                    " that the action reads, and scope on it",
                    ("scope", index),
                )
            raise fail(
                f"precedent scope names {name!r}, which the action does not read;"
                f" reads: {', '.join(action.reads) or '(none)'}",
                ("scope", index),
            )
    if spec.ratio_of is not None and (
        spec.ratio_of not in action.reads or fields[spec.ratio_of].type != "money"
    ):
        raise fail(
            f"precedent ratio_of {spec.ratio_of!r} must be a money field the action reads",
            ("ratio_of",),
        )
    for index, role_id in enumerate(spec.set_by or []):
        if role_id not in role_ids:
            raise fail(
                f"precedent set_by names role {role_id!r}, which the pack does not define;"
                f" roles: {', '.join(role_ids)}",
                ("set_by", index),
            )
    if _window(spec.max_expiry) <= timedelta(0):
        raise fail("precedent max_expiry must be longer than zero", ("max_expiry",))
    if spec.bound == "granted_amount" and spec.grants_up_to == "grantor_exception_limit":
        raise fail(
            "precedent bound granted_amount would never bound anything: grants_up_to"
            " grantor_exception_limit sets a precedent's own bounds aside; choose one",
            ("bound",),
        )
    if spec.grants_up_to == "grantor_exception_limit" and spec.ratio_of is not None:
        raise fail(
            f"precedent ratio_of {spec.ratio_of!r} would never bound anything: grants_up_to"
            " grantor_exception_limit sets a precedent's own bounds aside; drop ratio_of or"
            " choose precedent_bound",
            ("ratio_of",),
        )
    return PrecedentPolicy(
        scope=tuple(spec.scope),
        max_expiry=_window(spec.max_expiry),
        max_citations=spec.max_citations,
        ratio_of=spec.ratio_of,
        set_by=frozenset(spec.set_by) if spec.set_by is not None else None,
        cited_only=spec.cited_only,
        grants_up_to=spec.grants_up_to,
        bound=spec.bound,
    )


def _compile_role(
    index: int,
    role: RoleSpec,
    spec: PackSpec,
    actions: Mapping[str, ActionPolicy],
    lines: LineMap,
    currency: str,
) -> Role:
    if role.ai and role.beside:
        source, line = lines.find(("roles", index, "beside"))
        raise PolicyError(
            f"role {role.id!r} is held by AI agents and beside the ladder: a team beside it"
            " decides the cases sent to it, which an AI never does; drop one of ai, beside",
            path=source,
            line=line,
        )
    authority: dict[str, Authority] = {}
    for action_id, limits in role.authority.items():
        loc = ("roles", index, "authority", action_id)
        where = lines.find(loc)
        if action_id not in actions:
            raise PolicyError(
                f"role {role.id!r} has authority over {action_id!r}, which is not an action;"
                f" actions: {', '.join(actions)}",
                path=where[0],
                line=where[1],
            )
        for reason_id in limits.reasons or []:
            reason = actions[action_id].reason(reason_id)
            if reason is None:
                raise PolicyError(
                    f"role {role.id!r} may grant reason {reason_id!r}, which {action_id!r} does"
                    " not define",
                    path=where[0],
                    line=where[1],
                )
            if reason.granted_by is not None and role.id not in reason.granted_by:
                # Both must admit the role; read either way, one of them would be wrong.
                raise PolicyError(
                    f"role {role.id!r} lists reason {reason_id!r} of {action_id!r}, whose"
                    f" granted_by ({', '.join(sorted(reason.granted_by))}) leaves it out; add"
                    f" {role.id!r} to the reason's granted_by or drop the reason from the"
                    " role's reasons",
                    path=where[0],
                    line=where[1],
                )
        # A unit action's authority is in its unit, in every view of the pack.
        in_unit = actions[action_id].unit or currency
        authority[action_id] = Authority(
            standard_minor=_amount(
                limits.standard,
                in_unit,
                spec,
                lines,
                (*loc, "standard"),
                what=f"role {role.id!r} standard",
                where=where,
            ),
            exception_minor=_amount(
                limits.exception,
                in_unit,
                spec,
                lines,
                (*loc, "exception"),
                what=f"role {role.id!r} exception",
                where=where,
            ),
            reasons=frozenset(limits.reasons) if limits.reasons is not None else None,
        )
    return Role(
        id=role.id,
        rank=index,
        is_ai=role.ai,
        authority=MappingProxyType(authority),
        approval_sla=_sla(role.approval_sla, lines, ("roles", index, "approval_sla"))
        if role.approval_sla is not None
        else None,
        beside=role.beside,
    )


def _lacking_key_argument(actions: Iterable[ActionPolicy], name: str) -> str | None:
    """The first of `actions` that does not declare `name` as a string or int argument.

    A budget or a total kept per an argument reads it from every action it counts.
    """
    for action in actions:
        arg = action.args.get(name)
        if arg is None or arg.type not in ("string", "int"):
            return action.name
    return None


def _key_parts(
    budget: BudgetSpec,
    spec: PackSpec,
    actions: Mapping[str, ActionPolicy],
    entities: Mapping[str, Entity],
    lines: LineMap,
    loc: tuple[Any, ...],
    where: tuple[str | None, int | None],
    counted: frozenset[str] | None = None,
) -> tuple[str, ...]:
    """What a budget is kept per, each part checked: one budget per combination of values."""
    parts = (budget.key,) if isinstance(budget.key, str) else tuple(budget.key)

    def fail(message: str) -> NoReturn:
        raise PolicyError(message, path=where[0], line=where[1], rule_id=budget.id)

    if len(set(parts)) != len(parts):
        fail(f"budget key {list(parts)} names a part twice; name each once")
    if len(parts) > 1 and "organisation" in parts:
        fail(
            "budget key combines organisation with other parts; organisation is everyone, so"
            " key the budget by the other parts alone"
        )
    names = sorted(counted) if counted is not None else list(actions)
    for part in parts:
        if part in ("customer", "order", "case"):
            _need_entity(entities, part, f"budget {budget.id!r}", lines, (*loc, "key"))
        if part.startswith(ARGS_PREFIX):
            lacking = _lacking_key_argument(
                (actions[a] for a in names), part.removeprefix(ARGS_PREFIX)
            )
            if lacking is not None:
                fail(
                    f"budget is kept per {part!r}, which action {lacking!r} does not"
                    " declare as a string or int argument; declare it in the action's args,"
                    " or name the actions the budget counts"
                )
        elif "." in part:
            field = spec.context.get(part)
            kind = field.type if isinstance(field, FieldSpec) else field
            if kind not in ("string", "int"):
                fail(
                    f"budget is kept per {part!r}, which is not a string or int context field;"
                    " key a budget by customer, order, case, actor, organisation, such a fact,"
                    " or a declared argument (args.<name>)"
                )
            for action_id in names:
                if part not in actions[action_id].reads:
                    fail(
                        f"budget is kept per {part!r}, which action {action_id!r} does not read;"
                        f" add it to the action's reads, or name the actions the budget counts"
                    )
    return parts


def _compile_budget(
    index: int,
    budget: BudgetSpec,
    spec: PackSpec,
    actions: Mapping[str, ActionPolicy],
    roles: tuple[Role, ...],
    entities: Mapping[str, Entity],
    lines: LineMap,
    claim: Any,
    currency: str,
    zone: tzinfo,
) -> Budget:
    loc = ("budgets", index)
    where = claim(budget.id, loc)

    def fail(message: str) -> NoReturn:
        raise PolicyError(message, path=where[0], line=where[1], rule_id=budget.id)

    if budget.actions is not None and not budget.actions:
        fail(
            "budget counts no actions (`actions: []`): it would cap nothing; name them, or"
            " leave `actions` out to count every action"
        )
    if not budget.outcomes:
        fail("budget counts no outcomes (`outcomes: []`): it would cap nothing; name them")
    for action_id in budget.actions or []:
        if action_id not in actions:
            fail(f"budget counts action {action_id!r}, which is not an action")
    counted = frozenset(budget.actions) if budget.actions is not None else None
    unit = None
    if spec.units:
        # A budget caps one kind: the unit its actions count, or money (every action that
        # moves money when it names none).
        if counted is None:
            counted = frozenset(a for a, action in actions.items() if action.unit is None)
        kinds = {actions[a].unit for a in counted}
        if len(kinds) > 1:
            fail(
                "budget counts actions of different kinds"
                f" ({', '.join(sorted(_kind(k) for k in kinds))}); amounts of two kinds are"
                " never added: keep one budget per kind"
            )
        unit = next(iter(kinds), None)
        currency = unit or currency
    if budget.actions is None and counted is not None and not counted:
        fail(
            "budget names no actions, so it counts the actions that move money, and every"
            " action of the pack counts a unit: it would cap nothing. Name the actions it counts"
            " (`actions: [...]`)"
        )
    parts = _key_parts(budget, spec, actions, entities, lines, loc, where, counted)
    known = [r.id for r in roles]
    for role_id in budget.roles or []:
        if role_id not in known:
            fail(
                f"budget counts role {role_id!r}, which the pack does not define;"
                f" roles: {', '.join(known)}"
            )
    for role_id in budget.exempt:
        if role_id not in known:
            fail(
                f"budget exempts role {role_id!r}, which the pack does not define;"
                f" roles: {', '.join(known)}"
            )
        if budget.roles is not None and role_id not in budget.roles:
            fail(
                f"budget exempts role {role_id!r}, whose proposals it does not count"
                f" (roles: {', '.join(budget.roles)}); add the role to its roles"
            )
        if role_id in budget.limits:
            fail(f"budget exempts role {role_id!r} and gives it a limit; drop one of them")
    limits: dict[str, int] = {}
    for role_id, text in budget.limits.items():
        if role_id not in known:
            fail(
                f"budget limits name role {role_id!r}, which the pack does not define;"
                f" roles: {', '.join(known)}"
            )
        if budget.roles is not None and role_id not in budget.roles:
            fail(
                f"budget limits name role {role_id!r}, whose proposals it does not count"
                f" (roles: {', '.join(budget.roles)}); add the role to its roles or drop the"
                " limit"
            )
        limits[role_id] = _amount(
            text,
            currency,
            spec,
            lines,
            (*loc, "limits", role_id),
            what=f"limit of {role_id!r}",
            where=where,
        )
    if budget.limit is None:
        uncapped = [r for r in budget.roles or known if r not in limits and r not in budget.exempt]
        if uncapped:
            fail(
                "limit: required unless `roles` and `limits` give every role the budget counts"
                f" a limit of its own (no limit for: {', '.join(uncapped)})"
            )
        # Never read: every role it counts has its own, or is exempt.
        limit_minor = max(limits.values(), default=0)
    else:
        limit_minor = _amount(
            budget.limit, currency, spec, lines, (*loc, "limit"), what="limit", where=where
        )
    route_to = budget.route_to
    target = next((r for r in roles if r.id == route_to), None)
    if route_to is not None and route_to != NEXT_ABOVE and (target is None or target.is_ai):
        fail(f"route_to {route_to!r} is not a human role of the pack (or `{NEXT_ABOVE}`)")
    if target is not None and target.beside:
        # Only that team decides what the budget sends it: it must be able to grant it.
        lacking = [
            a for a in (sorted(counted) if counted is not None else actions) if not target.holds(a)
        ]
        if lacking:
            fail(
                f"route_to {route_to!r} is beside the ladder and holds no authority over"
                f" {', '.join(lacking)}: only it may approve what the budget sends it, and it"
                f" could approve none of it. Give {route_to!r} authority over them, or name"
                " the actions the budget counts"
            )
    window, calendar = _counting_window(budget.window, zone, lines, (*loc, "window"))
    zone_fact = _zone_fact(budget.timezone, calendar, spec, lines, loc, parts)
    for action_id in sorted(counted) if counted is not None else list(actions):
        if zone_fact is not None and zone_fact not in actions[action_id].reads:
            fail(
                f"budget's calendar begins in the time zone {zone_fact!r} names, which action"
                f" {action_id!r} does not read; add it to the action's reads, or name the"
                " actions the budget counts"
            )
    return Budget(
        id=budget.id,
        parts=parts,
        window=window,
        calendar=calendar,
        zone_fact=zone_fact,
        limit_minor=limit_minor,
        actions=counted,
        roles=frozenset(budget.roles) if budget.roles is not None else None,
        outcomes=frozenset(budget.outcomes),
        on_exceed=budget.on_exceed,
        route_to=route_to,
        message=budget.message,
        description=budget.description,
        limits=MappingProxyType(limits),
        # A unit is one code: nothing to keep together.
        together=budget.currencies == "together" and unit is None,
        exempt=frozenset(budget.exempt),
        unit=unit,
    )
