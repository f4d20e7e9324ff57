"""The compiled policy pack: what `load_pack` builds and every later step reads.

Plain frozen dataclasses, built once at load; CEL programs are compiled and type-checked by then.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from discretion.errors import ProposalError
from discretion.money import CURRENCY_EXPONENTS, Money
from discretion.policy._business import shift_months
from discretion.policy._cel import CelProgram
from discretion.policy._schema import ArgSpec, FieldSpec, ToolSpec
from discretion.policy._screen import Screens

_T = TypeVar("_T")

__all__ = [
    "AMOUNTS_PREFIX",
    "ARGS_PREFIX",
    "ASSERTED",
    "BUILTIN_VARIABLES",
    "NEXT_ABOVE",
    "ActionPolicy",
    "Asserted",
    "Authority",
    "Budget",
    "ClaimsPolicy",
    "Cumulative",
    "Entity",
    "Evidence",
    "Ground",
    "JudgeBand",
    "JudgeSettings",
    "PolicyPack",
    "PrecedentPolicy",
    "Rates",
    "Role",
    "Rule",
    "Total",
    "highest_human",
]

BUILTIN_VARIABLES: Mapping[str, str] = MappingProxyType(
    {
        "amount": "money",
        "now": "timestamp",
        "asked_at": "timestamp",
        "actor.id": "string",
        "actor.role": "string",
        "actor.is_ai": "bool",
        "currency": "string",
        "rationale.reason": "string",
    }
)
"""Variables every expression may read besides the action's declared fields."""

AMOUNTS_PREFIX = "amounts."
"""The pack's named amounts are read in CEL under this prefix: `amounts.large_refund`."""

ARGS_PREFIX = "args."
"""The tool arguments an action declares are read in CEL under this prefix: `args.cabin`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """A compiled rule: a standard rule, a hard limit, or an exception reason."""

    id: str
    kind: str
    """`standard`, `hard_limit` or `exception`."""
    when: CelProgram
    max_amount: CelProgram | None
    message: str | None
    description: str
    granted_by: frozenset[str] | None = None
    precedent: PrecedentPolicy | None = None
    """For an exception reason: how its grants may become precedent; never when None."""
    evidence: Evidence | None = None
    """For an exception reason: what the rationale must carry; nothing beyond its claims when
    None."""
    judge: JudgeBand | None = None
    """For an exception reason: when the LLM judge reviews it; never when None."""
    grounds: tuple[Ground, ...] = ()
    """For an exception reason: its `when` split at the top-level `&&`, each part compiled on
    its own, so an explanation can name the part that failed; empty for other rules."""
    rests_on: tuple[str, ...] = ()
    """The asserted facts (`asserted.<name>`) its `when` or `max_amount` reads."""
    by: str | None = None
    """For a review: the human role that must decide the case; any covering person when None."""
    only: bool = False
    """For a review: `by` alone decides it, not the roles above it."""
    personal: bool = False
    """For a hard limit: it reads `actor.id`, so it may forbid one person what another may
    do (an approver the case is about)."""
    person: CelProgram | None = None
    """For a review: the one person of its `by` role who decides it (a string, the id an actor
    carries: `customer.account_manager`); any person of the role when None."""


ASSERTED = "asserted."
"""The prefix under which rules read the facts an agent asserts."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Asserted:
    """A fact the agent asserts from the conversation, as the pack declares it."""

    name: str
    """As rules read it: `asserted.customer.stated_reason`."""
    type: str
    """`string`, `int` or `bool`."""
    values: frozenset[str | int] | None
    """The values it may take; any of its type when None."""
    unlocks_minor: int | None
    """The most a rule resting on it may allow without a person; no cap when None."""
    description: str
    unit_unlocks: Mapping[str, int] = field(default_factory=dict)
    """The same for actions that count a unit, by unit, in its smallest steps."""
    counting: str | None = None
    """The total the cap is measured with, beside the call's amount (`unlocks.counting`)."""

    @property
    def capped(self) -> bool:
        """Whether the pack gives it `unlocks` at all (in money, in units or both)."""
        return self.unlocks_minor is not None or bool(self.unit_unlocks)

    def cap(self, unit: str | None) -> int | None:
        """What a rule resting on it may allow alone, in `unit` (money when None); None: no cap.

        A cap given in money only, or in other units only, caps an action of another kind at
        zero: what it unlocks is not known in that kind (fail closed).
        """
        if not self.capped:
            return None
        if unit is None:
            return self.unlocks_minor if self.unlocks_minor is not None else 0
        return self.unit_unlocks.get(unit, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ground:
    """One condition of an exception reason's `when`: a part its top-level `&&` joins."""

    source: str
    """The part as the pack writes it, on one line and without comments, such as
    `shipment.status == 'lost'`."""
    program: CelProgram
    reads: tuple[str, ...]
    """The action's context fields it reads, in the order it names them."""
    reads_amount: bool
    """Whether it reads the proposal's `amount` (quoted only when limits are not private)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PrecedentPolicy:
    """What the pack allows a precedent for one exception reason to be."""

    scope: tuple[str, ...]
    """The fields a precedent must fix at least."""
    max_expiry: timedelta
    max_citations: int | None
    ratio_of: str | None
    set_by: frozenset[str] | None
    cited_only: bool = False
    """Only the precedents the actor cites count; none is found by scope."""
    grants_up_to: str = "precedent_bound"
    """`precedent_bound`, `actor_standard_limit` or `grantor_exception_limit`: what caps the
    amount a precedent lets an actor grant."""
    bound: str = "grantor_limit"
    """`grantor_limit` or `granted_amount`: how high a precedent's `max_amount` may be set."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """What a rationale must carry for one exception reason."""

    claims: tuple[str, ...]
    """Context fields the rationale must state as structured claims."""
    min_text: int
    """The fewest characters its free text may have."""
    text_patterns: tuple[tuple[str, re.Pattern[str]], ...]
    """Named details the free text must match."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimsPolicy:
    """When an action's rationale claims are checked, and what a false one gets."""

    every_decision: bool
    """True: on every outcome; False: only on an exception the checks would allow."""
    on_contradiction: str
    """`route` (to the lowest person above the actor; denied when nobody is) or `deny`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgeBand:
    """The amounts, in minor units and inclusive, for which the LLM judge reviews a reason."""

    min_minor: int
    max_minor: int | None
    clause: str
    """The policy clause the judge reads."""

    def covers(self, amount_minor: int) -> bool:
        """Whether the judge reviews this amount."""
        return self.min_minor <= amount_minor and (
            self.max_minor is None or amount_minor <= self.max_minor
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgeSettings:
    """Pack-wide settings of the LLM judge."""

    daily_calls: int | None = None
    """Calls the LLM judge may make per UTC day; unlimited when None."""
    without_model: str = "route"
    """`route` or `skip`: what a case the judge should review gets when there is no judge."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionPolicy:
    """A compiled action."""

    name: str
    reads: tuple[str, ...]
    standard: tuple[Rule, ...]
    hard_limits: tuple[Rule, ...]
    exceptions: tuple[Rule, ...]
    env: Any = field(repr=False)
    approval_sla: timedelta | None = None
    """How soon a routed case of this action must be decided, when the action sets it."""
    cumulative: Cumulative | None = None
    """When set, the actor's authority covers the sum allowed on one record in a window."""
    two_approvals_minor: int | None = None
    """Above this amount, in minor units of the pack's (view's) currency, a case needs two
    approvers; one suffices when None."""
    provided: tuple[str, ...] = ()
    """The fields of `reads` a context provider answers: all but the ledger's totals."""
    claims: ClaimsPolicy | None = None
    """When its claims are checked and what a false one gets, when the pack says; otherwise
    only an allowed exception's claims are checked, and a false one routes."""
    args: Mapping[str, ArgSpec] = field(default_factory=dict)
    """The tool arguments its rules read, by name (`args.<name>` in CEL), with their types."""
    presence: tuple[tuple[str, str], ...] = ()
    """For each `has(name)` its rules test: the bool variable bound to it and the name (a fact,
    or `args.<name>`) whose presence it reports."""
    screens: Screens | None = field(default=None, repr=False, compare=False)
    """Its rules' `when`s compiled together, to skip at once those that do not hold; rule by
    rule when None. Built last, once its rules are final."""
    reviews: tuple[Rule, ...] = ()
    """Conditions under which a person (of a role, when the review names one) must decide."""
    unit: str | None = None
    """The unit it counts instead of money (`MILES`), when the pack declares one for it: its
    amounts, limits, budgets and totals are in that unit, never in a currency."""
    reads_actor: bool = False
    """Whether a standard rule or reason reads `actor.role` or `actor.is_ai`: it may then hold,
    or cover the amount, for a person where it does not for the actor."""

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every rule of the action: hard limits, standard rules, reasons and reviews."""
        return (*self.hard_limits, *self.standard, *self.exceptions, *self.reviews)

    @property
    def reads_ledger(self) -> bool:
        """Whether deciding it reads totals from the ledger (or measures authority on one)."""
        return self.cumulative is not None or len(self.provided) != len(self.reads)

    def with_exceptions(self, exceptions: tuple[Rule, ...]) -> ActionPolicy:
        """The action with its exception reasons carrying other evidence or judge bands.

        `exceptions` are its reasons, in order, with the same `when`s: its screens stand for
        them, so a view of the pack in another currency screens its reasons as the pack does.
        """
        screens = self.screens
        if screens is not None:
            screens = replace(screens, exceptions=screens.exceptions.over(exceptions))
        return replace(self, exceptions=exceptions, screens=screens)

    def reason(self, reason_id: str) -> Rule | None:
        """The exception reason with this id, if the action has it."""
        return next((r for r in self.exceptions if r.id == reason_id), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Authority:
    """A role's limits for one action, in minor units of the pack's currency."""

    standard_minor: int
    exception_minor: int
    reasons: frozenset[str] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Role:
    """A compiled rung of the authority ladder; `rank` 0 is the lowest."""

    id: str
    rank: int
    is_ai: bool
    authority: Mapping[str, Authority]
    approval_sla: timedelta | None = None
    """How soon a case routed to this role must be decided, when the role sets it."""
    beside: bool = False
    """A team beside the ladder: never a rung a case climbs to by authority or rank; it decides
    only what a review or a budget sends it, and only it decides that."""

    @property
    def on_ladder(self) -> bool:
        """Whether cases climb to it by authority and rank: a person's role not beside it."""
        return not self.is_ai and not self.beside

    def decides_for(self, other: Role) -> bool:
        """Whether a person of this role may decide a case routed to `other`.

        `other` itself, or a rung below it on the ladder. A role beside the ladder decides only
        what is routed to it, and only it decides that.
        """
        if self.is_ai:
            return False
        if self.id == other.id:
            return True
        return self.on_ladder and other.on_ladder and self.rank >= other.rank

    def holds(self, action: str) -> bool:
        """Whether this role holds any authority over `action` (standard or exception)."""
        auth = self.authority.get(action)
        return auth is not None and (auth.standard_minor > 0 or auth.exception_minor > 0)

    def covers(self, action: str, amount_minor: int) -> bool:
        """Whether its standard or its exception authority for `action` covers the amount."""
        auth = self.authority.get(action)
        return auth is not None and amount_minor <= max(auth.standard_minor, auth.exception_minor)

    def can_grant(self, action: str, reason: Rule) -> bool:
        """Whether this role may grant `reason` for `action` at all (amount aside)."""
        auth = self.authority.get(action)
        return auth is not None and auth.exception_minor > 0 and self.admitted(action, reason)

    def admitted(self, action: str, reason: Rule) -> bool:
        """Whether `reason` is one this role may grant (`granted_by`, the role's `reasons`).

        Whatever its exception authority: one of zero that a precedent extends (`grants_up_to`)
        still grants only the reasons its role is admitted to.
        """
        auth = self.authority.get(action)
        if auth is None:
            return False
        if auth.reasons is not None and reason.id not in auth.reasons:
            return False
        return reason.granted_by is None or self.id in reason.granted_by


@dataclass(frozen=True, slots=True)
class Calendar:
    """A calendar period in a time zone, as a window: what happened since the current one began.

    This month, in Europe/Berlin, runs from the 1st at 00:00 local time.
    """

    unit: str
    """`day`, `week` (from Monday), `month`, `quarter` or `year`."""
    zone: tzinfo

    def start(self, now: datetime) -> datetime:
        """When the period `now` is in began, in the calendar's time zone."""
        local = now.astimezone(self.zone)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
        if self.unit == "day":
            begun = day
        elif self.unit == "week":
            begun = day - timedelta(days=day.weekday())
        elif self.unit == "month":
            begun = day.replace(day=1)
        elif self.unit == "quarter":
            begun = day.replace(month=3 * ((day.month - 1) // 3) + 1, day=1)
        else:
            begun = day.replace(month=1, day=1)
        # Wall-clock arithmetic on the zone's datetimes: the offset is the one in force at the
        # period's start (a month begun before a daylight-saving change keeps its own).
        return begun

    @property
    def longest(self) -> timedelta:
        """The most a period of this unit runs, a daylight-saving hour included."""
        days = {"day": 1, "week": 7, "month": 31, "quarter": 92, "year": 366}[self.unit]
        return timedelta(days=days, hours=1)

    def since(self, now: datetime) -> datetime:
        """The moment the period `now` is in follows: it includes its start, `[start, now]`.

        A grant made at midnight exactly is the new day's, so the moment before it (the
        ledger keeps microseconds) is returned.
        """
        return self.start(now) - _TICK

    def __str__(self) -> str:
        return f"calendar {self.unit}"


@dataclass(frozen=True, slots=True)
class Months:
    """A rolling window of whole months (or years) on the calendar, in a time zone.

    "Once in any 12 months": what was granted after this day and time 12 months ago counts,
    whatever the months' lengths or a leap day between. The 31st of a month with fewer days
    is its last day.
    """

    count: int
    """How many months back (a year is 12)."""
    zone: tzinfo

    def since(self, now: datetime) -> datetime:
        """The same local day and time `count` months before `now`: `(then, now]` counts."""
        return shift_months(now, -self.count, self.zone)

    @property
    def longest(self) -> timedelta:
        """The most such a window runs, a daylight-saving hour included."""
        return timedelta(days=31 * self.count, hours=1)

    def __str__(self) -> str:
        if self.count % 12 == 0:
            years = self.count // 12
            return f"{years} year{'s' if years > 1 else ''}"
        return f"{self.count} month{'s' if self.count > 1 else ''}"


def zone_named(name: object) -> tzinfo | None:
    """The IANA time zone `name` names (`Asia/Tokyo`), or None for anything else."""
    if not isinstance(name, str) or not name or name != name.strip():
        return None
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, ZoneInfoNotFoundError):
        return None


_TICK = timedelta(microseconds=1)
"""The ledger's resolution: times are kept in whole microseconds."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Windowed:
    """What counts over a window: a budget, a total, cumulative authority."""

    window: timedelta
    """How far back it counts; for a calendar period, the longest such a period runs."""
    calendar: Calendar | Months | None = None
    """The calendar period it counts in, or its rolling months, when its window is one."""
    zone_fact: str | None = None
    """A string fact naming the time zone its calendar begins in, case by case (`timezone`)."""

    def since_in(self, now: datetime, facts: Mapping[str, Any]) -> datetime | None:
        """`since`, in the time zone the case's `zone_fact` names; None when it names none.

        A property's own month: what it granted since midnight on the 1st where it is.
        """
        if self.zone_fact is None or self.calendar is None:
            return self.since(now)
        zone = zone_named(facts.get(self.zone_fact))
        if zone is None:
            return None
        return replace(self.calendar, zone=zone).since(now)

    def since(self, now: datetime) -> datetime:
        """The moment its window, ending `now`, follows: what happened after it counts.

        A rolling window is `(now - window, now]`: a grant made exactly `window` ago is out,
        as one made exactly 12 months ago is for `12 months`. A calendar period includes its
        start (`Calendar.since`).
        """
        if self.calendar is not None:
            return self.calendar.since(now)
        return now - self.window


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget(Windowed):
    """A compiled budget."""

    id: str
    parts: tuple[str, ...]
    """Each of `customer`, `order`, `case` (resolved records), `actor`, `organisation`, a fact,
    or a declared argument (`args.<name>`): one budget per combination of their values."""
    limit_minor: int
    actions: frozenset[str] | None
    outcomes: frozenset[str]
    roles: frozenset[str] | None = None
    """The roles whose proposals it counts and caps; every role when None."""
    on_exceed: str
    route_to: str | None
    """A role id, or `next_above` (the lowest human role above the actor); None for the top
    human rung with authority over the action (`PolicyPack.top_for`)."""
    message: str | None
    description: str = ""
    """What it caps and why, for the people who read the pack."""
    limits: Mapping[str, int] = field(default_factory=dict)
    """Per role of the proposing actor, a limit in minor units instead of `limit_minor`."""
    together: bool = True
    """In a pack of several currencies, one cap across them (`currencies: together`)."""
    exempt: frozenset[str] = frozenset()
    """Roles whose proposals it counts but never caps."""
    unit: str | None = None
    """The unit its actions count (`MILES`); None for a budget of money."""

    @property
    def key(self) -> str:
        """What it is kept per, as the pack says it (`order, args.sku`)."""
        return ", ".join(self.parts)

    def applies(self, action: str, outcome: str, role: str) -> bool:
        """Whether a decision of `outcome` on `action`, proposed under `role`, counts here."""
        return (
            (self.actions is None or action in self.actions)
            and outcome in self.outcomes
            and (self.roles is None or role in self.roles)
        )

    def limit_for(self, role: str) -> int:
        """The limit, in minor units, for a decision proposed under `role`."""
        return self.limits.get(role, self.limit_minor)


NEXT_ABOVE = "next_above"
"""A budget's `route_to` that names the lowest human role above the proposing actor."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Entity:
    """A record a proposal may name, and the records it belongs to."""

    kind: str
    """`customer`, `order` or `case`."""
    belongs_to: tuple[str, ...]
    on_unknown: str
    """`route` or `deny`: what a proposal naming such a record the context lacks gets."""
    on_mismatch: str
    """`route` or `deny`: what a proposal whose ids disagree with the record gets."""
    required: bool = False
    """A proposal of an action must name one, or a record belonging to one."""

    @property
    def id_field(self) -> str:
        """The fact a provider answers when it holds the record (`order.id`)."""
        return f"{self.kind}.id"

    def link_field(self, parent: str) -> str:
        """The fact naming the record's `parent` (`order.customer_id`)."""
        return f"{self.kind}.{parent}_id"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cumulative(Windowed):
    """Authority measured on the sum allowed on one record within a window."""

    per: str
    among: str
    """`role`, `actor` or `everyone`: whose allowed amounts count."""
    actions: tuple[str, ...]
    """The actions whose allowed amounts count, this one first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Total(Windowed):
    """A running total from discretion's own ledger, read in CEL as the fact `name`."""

    name: str
    type: str
    """`money` (a sum of amounts) or `int` (a count of decisions)."""
    actions: frozenset[str] | None
    per: str
    """`customer`, `order`, `case` (the resolved record) or `actor`."""
    outcomes: frozenset[str]
    """Of `allow`, `allow_exception`, `pending` and `approved`."""
    reasons: frozenset[str] | None = None
    """Only exceptions made for these reasons; every decision when None."""
    args: tuple[str, ...] = ()
    """Only decisions whose declared arguments of these names had the call's values."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rates:
    """How a pack converts between its currencies: a fact giving the rate to `base`."""

    fact: str
    """The decimal context field: units of `base` one unit of the proposal's currency is worth."""
    base: str
    """The currency the pack's amounts are stated in."""
    currency: str | None = None
    """The string context field naming the currency `fact` is the rate of, when a pack gives
    one: a proposal in another currency is not priced at it."""


_RATED_VIEWS = 64
"""How many (currency, rate) views of a pack with rates are kept; rates change rarely."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyPack:
    """A loaded, compiled policy pack. Build it with `load_pack`."""

    name: str
    version: str
    """`sha256:` and the hash of the pack's canonical content."""
    currency: str
    private_limits: bool
    unknown_tools: str
    fields: Mapping[str, FieldSpec]
    roles: tuple[Role, ...]
    actions: Mapping[str, ActionPolicy]
    tools: Mapping[str, tuple[str, ToolSpec]]
    budgets: tuple[Budget, ...]
    sources: tuple[str, ...]
    approval_sla: timedelta = timedelta(hours=24)
    """How soon a routed case must be decided when neither its action nor its role says."""
    judge: JudgeSettings = JudgeSettings()
    """Settings of the LLM judge."""
    ungoverned_tools: tuple[str, ...] = ()
    """Read-only tools, by name or glob, that run without a decision."""
    unknown_route_to: str | None = None
    """The human role a call to a tool the pack does not map routes to; the highest when None."""
    entities: Mapping[str, Entity] = field(default_factory=dict)
    """The records a proposal names and how they relate; empty when the pack declares none."""
    totals: Mapping[str, Total] = field(default_factory=dict)
    """Running totals from the ledger, by the fact name CEL reads them under."""
    asserted: Mapping[str, Asserted] = field(default_factory=dict)
    """Facts the agent asserts, by the name rules read them under (`asserted.<name>`)."""
    currencies: tuple[str, ...] = ()
    """The currencies proposals may be in; `(currency,)` for a pack in one currency."""
    rates: Rates | None = None
    """How amounts in another currency than `currency` are converted; None without rates."""
    views: Mapping[str, PolicyPack] = field(default_factory=dict, repr=False, compare=False)
    """For a pack stating its amounts per currency: the pack in each currency it declares."""
    rated: dict[tuple[str, Decimal], PolicyPack] = field(
        default_factory=dict, repr=False, compare=False
    )
    """For a pack with rates: the views built so far, by currency and rate."""
    amounts: Mapping[str, int] = field(default_factory=dict)
    """The pack's named amounts as CEL reads them (`amounts.<name>`), in minor units of
    `currency`."""
    base: PolicyPack | None = field(default=None, repr=False, compare=False)
    """For a view of a pack with rates in another currency: the pack in its base."""
    to_base: Fraction | None = Fraction(1)
    """For such a view: minor units of the base one minor unit of `currency` is worth; None
    when the rate is not known."""
    units: Mapping[str, int] = field(default_factory=dict)
    """The units actions count instead of money, with their decimal places (`{"MILES": 0}`)."""
    unit_views: Mapping[str, PolicyPack] = field(default_factory=dict, repr=False, compare=False)
    """The pack as a proposal in each unit is decided on: `currency` is the unit, no rates. Its
    unit actions' amounts are the same in every view; the money amounts in it are never read."""
    money_view: PolicyPack | None = field(default=None, repr=False, compare=False)
    """For a unit's view: the pack in its own currency, which money is decided on."""
    memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    """What deciding derives from the pack alone (the fields an action asks a provider for,
    ...), worked out on first use and kept with this pack object; a view in another currency
    keeps its own."""

    def memoised(self, key: str, action: ActionPolicy, build: Callable[[], _T]) -> _T:
        """What `build` derives from this pack and `action` alone: built on first use, then kept.

        Kept in `memo` under `key` and the action's name, with the action it was built for: an
        action replaced since (a view's own) is built for anew.
        """
        memo = self.memo.get((key, action.name))
        if memo is None or memo[0] is not action:
            memo = self.memo[(key, action.name)] = (action, build())
        return memo[1]

    @property
    def accepts(self) -> tuple[str, ...]:
        """The currencies a proposal may be in."""
        return self.currencies or (self.currency,)

    def in_currency(self, currency: str, rate: Decimal | None = None) -> PolicyPack:
        """The pack with every amount (limits, budgets, bands, unlocks) in `currency`.

        A pack in one currency is itself. A pack stating amounts per currency has a view per
        currency. A pack with rates converts its base amounts at `rate` (units of the base one
        unit of `currency` is worth), rounding every limit down and every judge band outward:
        the same as rounding the converted amount up, so a limit is never passed by a fraction
        of a minor unit. Without a rate (not known yet, or not read) every limit of another
        currency is zero: nothing is allowed on it, and a route goes to the top.

        A unit an action counts instead of money (`MILES`) has a view of its own, whatever
        `rate` is: nothing converts into or out of it.

        Raises:
            ProposalError: `currency` is not one the pack declares.
        """
        if currency == self.currency and (self.rates is None or rate in (None, Decimal(1))):
            return self
        unit = self.unit_views.get(currency)
        if unit is not None:
            return unit
        if self.money_view is not None:
            return self.money_view.in_currency(currency, rate)
        if currency not in self.accepts:
            raise ProposalError(
                f"currency: {currency} is not a currency of pack {self.name!r}"
                f" ({', '.join(self.accepts)})",
                field="currency",
            )
        if self.rates is None:
            return self.views[currency]
        key = (currency, rate if rate is not None else Decimal(0))
        view = self.rated.get(key)
        if view is None:
            if len(self.rated) >= _RATED_VIEWS:
                self.rated.clear()
            view = self.rated[key] = _converted(self, currency, rate)
        return view

    def approval_sla_for(self, action: str, role: Role | None) -> timedelta:
        """How long an approval of `action` routed to `role` stays open before it expires.

        The shorter of the action's and the role's own `approval_sla`; the pack's when neither
        sets one.
        """
        policy = self.actions.get(action)
        found = (policy.approval_sla if policy else None, role.approval_sla if role else None)
        own = [sla for sla in found if sla is not None]
        return min(own) if own else self.approval_sla

    def governs(self, tool_name: str) -> bool:
        """Whether calls to `tool_name` must be decided.

        Every tool is, but those `ungoverned_tools` lists (read-only look-ups). A tool the pack
        does not map is decided too: it routes, or is denied (`unknown_tools`), and the
        integrations refuse to wrap it at all.
        """
        return tool_name in self.tools or not self.is_ungoverned(tool_name)

    def is_ungoverned(self, tool_name: str) -> bool:
        """Whether `ungoverned_tools` lists `tool_name` (by name or glob) and the pack maps none."""
        if tool_name in self.tools:
            return False
        return any(
            tool_name == pattern or fnmatch.fnmatchcase(tool_name, pattern)
            for pattern in self.ungoverned_tools
        )

    @property
    def highest_human(self) -> Role:
        """The top human rung: where a case goes when nothing lower can be named."""
        return highest_human(self.roles)

    def top_for(self, action: str) -> Role:
        """The top human rung with authority over `action`, where its cases go by default.

        Where a case of it goes when nothing lower can be named. A role above it without any
        (a compliance officer who grants no refunds) could only reject the case: its
        approval's re-check finds no authority. The top human rung when no human role holds
        any.
        """
        # A view at an unknown rate holds no authority at all: who holds some is the base's.
        source = self.base if self.base is not None else self
        held = [role for role in source.roles if role.on_ladder and role.holds(action)]
        top = max(held, key=lambda r: r.rank) if held else self.highest_human
        return self.role(top.id) or top

    @property
    def unknown_role(self) -> Role:
        """Where a call to a tool the pack does not map routes (`unknown_tools_route_to`)."""
        found = self.role(self.unknown_route_to) if self.unknown_route_to is not None else None
        return found or self.highest_human

    def role(self, role_id: str) -> Role | None:
        """The role with this id, if the pack defines it."""
        return next((r for r in self.roles if r.id == role_id), None)

    def rule_ids(self) -> list[str]:
        """Every rule id the pack defines: rules, hard limits, reasons and budgets.

        Each once: a rule of `every_action` is every action's under its one id.
        """
        ids = [rule.id for action in self.actions.values() for rule in action.rules]
        return list(dict.fromkeys([*ids, *(b.id for b in self.budgets)]))

    def money(self, minor: int) -> Money:
        """Minor units of the pack's currency as Money."""
        return Money.from_minor(minor, self.currency)

    def in_base(self, minor: int, *, up: bool = True) -> Money | None:
        """Minor units of the pack's currency in the base of its `rates`, at its rate.

        Rounded up (an amount measured against a limit), or down (a limit). None for a pack
        without rates, or a view whose rate is not known.
        """
        if self.rates is None or self.to_base is None:
            return None
        value = minor * self.to_base
        return Money.from_minor(math.ceil(value) if up else math.floor(value), self.rates.base)


def _converted(pack: PolicyPack, currency: str, rate: Decimal | None) -> PolicyPack:
    """`pack` (amounts in its base) with every amount converted to `currency` at `rate`."""
    if rate is None or not rate.is_finite() or rate <= 0:
        factor = Fraction(0)
    else:
        # Exact: a Fraction of the rate, so no rounding happens before the one we choose.
        shift = CURRENCY_EXPONENTS[currency] - CURRENCY_EXPONENTS[pack.currency]
        factor = Fraction(10) ** shift / Fraction(rate)

    def down(minor: int) -> int:
        return math.floor(minor * factor)

    def up(minor: int) -> int:
        return math.ceil(minor * factor)

    view = _scaled(pack, currency, down, up, open_bands=factor == 0)
    # Budgets kept in the base convert the proposal's amount back (`pipeline._budgets`).
    object.__setattr__(view, "base", pack)
    object.__setattr__(view, "to_base", 1 / factor if factor else None)
    return view


def _scaled(
    pack: PolicyPack,
    currency: str,
    down: Callable[[int], int],
    up: Callable[[int], int],
    *,
    open_bands: bool,
) -> PolicyPack:
    roles = tuple(
        replace(
            role,
            authority=MappingProxyType(
                {
                    action: replace(
                        auth,
                        standard_minor=down(auth.standard_minor),
                        exception_minor=down(auth.exception_minor),
                    )
                    for action, auth in role.authority.items()
                }
            ),
        )
        for role in pack.roles
    )
    budgets = tuple(
        replace(
            budget,
            limit_minor=down(budget.limit_minor),
            limits=MappingProxyType({r: down(v) for r, v in budget.limits.items()}),
        )
        for budget in pack.budgets
    )
    asserted = {
        name: replace(
            a, unlocks_minor=down(a.unlocks_minor) if a.unlocks_minor is not None else None
        )
        for name, a in pack.asserted.items()
    }

    def band(judge: JudgeBand | None) -> JudgeBand | None:
        # A band widens, never narrows: the judge reviews every amount it would have.
        if judge is None:
            return None
        if open_bands:
            return replace(judge, min_minor=0, max_minor=None)
        return replace(
            judge,
            min_minor=down(judge.min_minor),
            max_minor=up(judge.max_minor) if judge.max_minor is not None else None,
        )

    def two(minor: int | None) -> int | None:
        # Lowered, never raised: a case at the converted amount needs its second person.
        return down(minor) if minor is not None else None

    actions = {
        name: replace(
            action.with_exceptions(
                tuple(replace(r, judge=band(r.judge)) for r in action.exceptions)
            ),
            two_approvals_minor=two(action.two_approvals_minor),
        )
        for name, action in pack.actions.items()
    }
    return replace(
        pack,
        currency=currency,
        roles=roles,
        budgets=budgets,
        asserted=MappingProxyType(asserted),
        actions=MappingProxyType(actions),
        rated={},
        amounts=MappingProxyType({name: down(minor) for name, minor in pack.amounts.items()}),
    )


def highest_human(roles: tuple[Role, ...]) -> Role:
    """The top human rung of a ladder (a pack always has one), never a team beside it."""
    return next(r for r in reversed(roles) if r.on_ladder)
