"""The YAML schema of a policy pack, validated by pydantic on load."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

__all__ = [
    "ActionAuthoritySpec",
    "ActionSpec",
    "Amount",
    "ArgSpec",
    "ArgType",
    "AssertedSpec",
    "BudgetSpec",
    "BusinessDaysSpec",
    "ClaimsSpec",
    "CumulativeSpec",
    "EntityKind",
    "EntitySpec",
    "EvidenceSpec",
    "FieldSpec",
    "HardLimitSpec",
    "JudgeBandSpec",
    "JudgeSpec",
    "MemberSpec",
    "PackSpec",
    "PrecedentPolicySpec",
    "RatesSpec",
    "ReasonSpec",
    "RecordRef",
    "RecordSpec",
    "ReviewSpec",
    "RoleSpec",
    "StandardRuleSpec",
    "ToolSpec",
    "TotalSpec",
    "UnlocksSpec",
]


def _cel_text(value: object) -> object:
    """A CEL expression as YAML may write a literal one: `true`, `5000`, `1.5` unquoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return value


Cel = Annotated[str, BeforeValidator(_cel_text)]
"""A CEL expression; an unquoted YAML literal (`when: true`, `max_amount: 5000`) is its text."""

_MODEL = ConfigDict(frozen=True, extra="forbid")

RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")]
FieldName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+$")]
AmountText = Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)?$")]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")]
Amount = AmountText | dict[CurrencyCode, AmountText]
"""An amount of money in a pack: one amount (`"100.00"`), in the pack's currency (or its rates'
base), or one per currency the pack declares (`{USD: "100.00", EUR: "90.00", JPY: "13000"}`)."""
FieldType = Literal[
    "string",
    "int",
    "bool",
    "money",
    "timestamp",
    "duration",
    "list[string]",
    "decimal",
    "list[int]",
]
Window = Annotated[str, StringConstraints(pattern=r"^\d+[smhd]$")]
CountingWindow = Annotated[
    str,
    StringConstraints(
        pattern=r"^(\d+[smhd]|\d+ (months?|years?)|calendar (day|week|month|quarter|year)|ever)$"
    ),
]
"""How far back a total, a budget or cumulative authority counts: a rolling span (`30d`),
rolling months or years on the calendar (`12 months`, `1 year`), the calendar period `now` is
in (`calendar month`), in the pack's `timezone`, or `ever`."""
RecordRef = Annotated[
    str, StringConstraints(pattern=r"^(list\[[a-z][a-z0-9_]*\]|[a-z][a-z0-9_]*)$")
]
"""A record type the pack declares under `records`, or a list of them: `item`, `list[item]`."""


class FieldSpec(BaseModel):
    """A context field the pack reads."""

    model_config = _MODEL

    type: FieldType | RecordRef
    """Its type; `money` is seen by CEL as an int of minor units in the proposal's currency. A
    record type the pack declares under `records` (`reservation`), or a list of them
    (`list[item]`), is a structured fact."""
    nullable: bool = False
    """Whether the fact may be absent (null). A null fact is left unbound in CEL: `&&` and `||`
    absorb it when their other side decides (`shipment.status == 'delivered' && now -
    order.delivered_at < duration('720h')` is false for an undelivered order), and an expression
    whose result depends on it cannot be decided, so the decision routes."""
    description: str = ""
    """What the field means."""
    optional: bool = False
    """Whether the record or value may not exist, and rules may decide on that: test it with
    `has(reservation.id)` (`!has(reservation.id)` in a hard limit denies when there is no such
    reservation). A provider that fails still routes; only a fact it does not answer is absent."""
    places: Annotated[int, Field(ge=0, le=9)] | None = None
    """For a `decimal`: its decimal places. CEL sees an int of that many places (1.5 with
    `places: 1` is 15); a value with more places is an error, never rounded."""
    signed: bool = False
    """For `money`: whether it may be below zero, such as a price difference."""


ArgName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")]
ArgType = Literal[
    "string", "int", "decimal", "money", "bool", "timestamp", "list[string]", "list[int]"
]


class ArgSpec(BaseModel):
    """A tool argument an action's rules read, seen in CEL as `args.<name>`."""

    model_config = _MODEL

    type: ArgType | RecordRef
    """Its type; a value of another type is refused (a ProposalError), never coerced. A record
    type the pack declares, or a list of them, reads a JSON object (or a list of them)."""
    optional: bool = False
    """Whether a call may leave it out; test it with `has(args.<name>)`. A required argument a
    call leaves out is refused."""
    places: Annotated[int, Field(ge=0, le=9)] | None = None
    """For a `decimal`: its decimal places, as for a context field."""
    signed: bool = False
    """For `money`: whether it may be below zero."""
    values: Annotated[list[str | int], Field(min_length=1)] | None = None
    """For a `string` or `int`: the values it may take (a call with another is refused); any
    value of its type when absent."""
    description: str = ""


MemberName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*$")]
MemberType = Literal[
    "string",
    "int",
    "bool",
    "money",
    "decimal",
    "timestamp",
    "duration",
    "list[string]",
    "list[int]",
]


class MemberSpec(BaseModel):
    """One field of a record type."""

    model_config = _MODEL

    type: MemberType | RecordRef
    """Its type: a scalar, another record type of the pack, or a list of them."""
    places: Annotated[int, Field(ge=0, le=9)] | None = None
    """For a `decimal`: its decimal places."""
    signed: bool = False
    """For `money`: whether it may be below zero."""
    nullable: bool = False
    """Whether a record may leave it null or out (an item not yet delivered has no
    `delivered_at`); rules test it with `has()`. Not for a list: an empty list says none."""
    description: str = ""


class RecordSpec(BaseModel):
    """A record type: structured facts and arguments with typed fields, such as an order item."""

    model_config = _MODEL

    fields: Annotated[dict[MemberName, MemberSpec | MemberType | RecordRef], Field(min_length=1)]
    """Its fields and their types. Every field is required in every record, unless it is
    `nullable`."""
    description: str = ""


UnitName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{1,23}$")]
"""A unit's name: upper-case letters, digits and underscores (`MILES`, `DAYS`)."""


class UnlocksSpec(BaseModel):
    """What a rule resting on an asserted fact may allow without a person."""

    model_config = _MODEL

    max_amount: Amount | None = None
    """The largest amount a standard rule or exception reason that reads the assertion may
    allow; above it the case routes to a person. `"0"`: never without one."""
    units: dict[UnitName, AmountText] = {}
    """The same, for the actions that count a unit (`{MILES: "3000"}`), one amount per unit."""
    counting: str | None = None
    """A money total (under `totals`) the cap is measured with: the call's amount and what the
    total holds together, so calls split on one record do not each pass alone."""

    @model_validator(mode="after")
    def _caps_something(self) -> Self:
        if self.max_amount is None and not self.units:
            raise ValueError("unlocks needs max_amount, units or both: what it lets through")
        return self


class AssertedSpec(BaseModel):
    """A fact only the conversation holds, which the agent asserts (`rationale.asserted`)."""

    model_config = _MODEL

    type: Literal["string", "int", "bool"]
    """Its type; a value of another type is refused (a 422)."""
    values: list[str | int] | None = None
    """The values it may take; any value of its type when absent."""
    unlocks: UnlocksSpec | None = None
    """What a rule resting on it may allow without a person; no cap of its own when absent."""
    description: str = ""
    """What the agent asserts, in words the agent (and the approver) read."""


CURRENCY_ARGUMENTS = ("currency", "currency_code")
"""Argument names a tool pays in: one its mapping does not read must not name another currency."""


class UnitSpec(BaseModel):
    """Something other than money an action counts: miles, days, seats."""

    model_config = _MODEL

    places: Annotated[int, Field(ge=0, le=9)] = 0
    """How many decimal places an amount of it may have (`0`: whole miles)."""
    description: str = ""


class ToolSpec(BaseModel):
    """A tool that performs an action, and which of its arguments carry what."""

    model_config = _MODEL

    # As long as a proposal's tool name may be (`proposal.MAX_NAME`).
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    """The tool's name."""
    amount: str | None = None
    """The argument holding the amount (dotted for nested arguments)."""
    currency: str | None = None
    """The argument holding the currency; the pack's currency when absent."""
    customer: str | None = None
    """The argument holding the customer id."""
    case: str | None = None
    """The argument holding the case id."""
    order: str | None = None
    """The argument holding the order id."""
    args: dict[ArgName, ArgName] = {}
    """Where this tool carries each argument its action declares under `args`, as a dotted path
    (`booking.cabin`); an argument not listed is read at its own name."""
    extra_arguments: Literal["allow", "refuse"] = "allow"
    """`refuse`: a call carrying an argument this mapping does not read and its action does not
    declare is refused, so the tool receives nothing that was not governed."""


EntityKind = Literal["customer", "order", "case"]
"""The records a proposal names: its `customer_id`, `order_id` and `case_id`."""


class EntitySpec(BaseModel):
    """How a record a proposal names relates to the others, and what an unknown one gets."""

    model_config = _MODEL

    belongs_to: list[EntityKind] = []
    """The records this one names as its own: an order belongs to a customer (its record holds
    `order.customer_id`), a case to a customer and maybe an order (`case.customer_id`,
    `case.order_id`). The record is authoritative: a proposal naming another customer for the
    order is never allowed, and a customer the proposal leaves out is read from it."""
    on_unknown: Literal["route", "deny"] = "route"
    """What a proposal naming such a record the context does not hold gets."""
    on_mismatch: Literal["route", "deny"] = "route"
    """What a proposal whose ids disagree with this record's own gets."""
    required: bool = False
    """Every proposal of an action names one (or a record it belongs to, which names it): one
    that names none is sent back (a `ProposalError`), never decided without it."""


class CumulativeSpec(BaseModel):
    """Authority measured on the whole: limits apply to the sum on one record in a window."""

    model_config = _MODEL

    per: EntityKind
    """The record the sum is kept for: a split refund on one order routes as the whole would."""
    window: CountingWindow
    """How far back allowed amounts count, such as `30d` or `calendar month`."""
    among: Literal["role", "actor", "everyone"] = "role"
    """Whose allowed amounts count besides the actor's own: those of every actor holding the
    same role (a fleet of agents splitting one refund between them), the actor's alone, or
    everyone's."""
    actions: list[str] = []
    """Other actions whose allowed amounts on the same record count with this one's (a limit
    per order across refunds, credits and fee refunds); this action's always count."""


class TotalSpec(BaseModel):
    """A running total discretion keeps from its own ledger, readable in CEL like a fact."""

    model_config = _MODEL

    type: Literal["money", "int"] = "money"
    """`money` sums amounts (minor units in CEL); `int` counts decisions."""
    actions: list[str] | None = None
    """The actions it counts; all when absent (for a money total in a pack with units, those
    that move money)."""
    per: EntityKind | Literal["actor", "organisation"]
    """The record (or the actor) it is kept for: the resolved one, never an id the agent typed;
    `organisation` for one total across everyone (three a day, across every customer)."""
    window: CountingWindow
    """How far back it counts, such as `90d` or `calendar year`."""
    timezone: FieldName | None = None
    """A string context field naming the time zone its calendar window begins in, case by
    case (a property's own month); the pack's `timezone` when absent."""
    outcomes: list[Literal["allow", "allow_exception", "pending", "approved"]] = [
        "allow",
        "allow_exception",
        "pending",
        "approved",
    ]
    """What counts: allowed decisions, routed cases still pending, and routed cases a person
    approved (at the approved amount)."""
    reasons: list[str] | None = None
    """Only exceptions made for these reasons (their ids); every decision when absent. What
    standard policy allowed has no reason, so a total with `reasons` never counts it."""
    args: list[MemberName] = []
    """Only decisions whose tool arguments of these names had the values this call's have
    (`[sku]`: what was refunded on this item of the order); every action it counts declares
    each as a string or int argument."""
    description: str = ""


class StandardRuleSpec(BaseModel):
    """A condition under which the action is inside standard policy, up to a maximum."""

    model_config = _MODEL

    id: RuleId
    when: Cel = "true"
    """CEL: the condition on context facts."""
    max_amount: Cel | None = None
    """CEL giving the largest amount, in minor units, this rule allows."""
    granted_by: list[str] | None = None
    """The only roles that may allow under it (each up to its standard authority); every role
    when absent. Another role's case under it routes to the lowest of them that covers it."""
    description: str = ""
    message: str | None = None
    """What the agent is told when this rule decides."""


class HardLimitSpec(BaseModel):
    """A condition that forbids the action for everyone."""

    model_config = _MODEL

    id: RuleId
    when: Cel
    """CEL: when this holds, the action is denied."""
    description: str = ""
    message: str | None = None


class ReviewSpec(BaseModel):
    """A condition under which a person must decide the case, whatever else allows it."""

    model_config = _MODEL

    id: RuleId
    when: Cel
    """CEL: when this holds, the case is never allowed from code alone."""
    by: str | None = None
    """The human role that must decide it (or one above); any person whose authority covers
    it when absent."""
    only: bool = False
    """The `by` role alone is the review, not the roles above it: a team beside the ladder
    (fraud, trust and safety, the account's manager) whose say no rank stands in for."""
    person: Cel | None = None
    """CEL, a string: the id of the one person of the `by` role who decides it (the account's
    named manager: `customer.account_manager`); any person of the role when absent."""
    description: str = ""
    message: str | None = None


class EveryActionSpec(BaseModel):
    """Hard limits and reviews every action has (or those it names), written once."""

    model_config = _MODEL

    actions: Annotated[list[RuleId], Field(min_length=1)] | None = None
    """The actions they apply to; every action of the pack when absent."""
    reads: list[FieldName] = []
    """The context fields they read, added to each such action's `reads`."""
    hard_limits: list[HardLimitSpec] = []
    """Read before each action's own: when one holds, the action is denied."""
    reviews: list[ReviewSpec] = []
    """Read before each action's own: when one holds, a person must decide."""


class PrecedentPolicySpec(BaseModel):
    """Whether, and how, an exception granted for a reason may become citable precedent."""

    model_config = _MODEL

    scope: list[FieldName] = []
    """The context fields every precedent for this reason must fix at least (the action must read
    them)."""
    max_expiry: Window
    """The longest a precedent may stay citable, such as `90d`."""
    max_citations: Annotated[int, Field(ge=1)] | None = None
    """The largest citation cap a precedent may carry; unlimited when absent."""
    ratio_of: FieldName | None = None
    """A money field a precedent's bound may be a ratio of (such as `order.total`)."""
    set_by: list[str] | None = None
    """The roles that may set precedent directly from an exception they granted; approvers set
    it while approving. Every human role whose authority covers the exception when absent."""
    cited_only: bool = False
    """Count only the precedents the actor's rationale cites; none is found by its scope."""
    grants_up_to: Literal["precedent_bound", "actor_standard_limit", "grantor_exception_limit"] = (
        "precedent_bound"
    )
    """The most a precedent lets an actor grant: its own bounds (`max_amount`, `max_ratio`; the
    default); those and no more than the actor's own standard limit for the action; or its
    grantor's exception limit, its bounds aside. Never more than its grantor could grant."""
    bound: Literal["grantor_limit", "granted_amount"] = "grantor_limit"
    """How high a precedent's `max_amount` may be set: up to what its grantor may grant (the
    default), or up to the amount granted in the case it is set from (`granted_amount`: "reused
    for at most the same amount"; a ratio bound is then refused)."""


class EvidenceSpec(BaseModel):
    """What a rationale must carry before an exception for a reason is allowed."""

    model_config = _MODEL

    claims: list[FieldName] = []
    """Context fields the rationale must state as structured claims, such as a carrier tracking
    status; each claim is checked against the fact (the action must read them)."""
    min_text: Annotated[int, Field(ge=0, le=8000)] = 0
    """The fewest characters the rationale's free text may have."""
    text_must_match: dict[Annotated[str, StringConstraints(min_length=1, max_length=100)], str] = {}
    """Details the free text must carry, each named and given as a regular expression, such as
    `incident id: 'INC-[0-9]{4,}'`."""


class ClaimsSpec(BaseModel):
    """When the rationale's claims are checked against the facts, and what a false one gets."""

    model_config = _MODEL

    check: Literal["exceptions", "every_decision"] = "exceptions"
    """`exceptions`: only on an exception the checks would allow (the default); `every_decision`:
    on every outcome, so a false claim on an in-policy call is caught too."""
    on_contradiction: Literal["route", "deny"] = "route"
    """What a proposal with a claim the facts contradict gets: `route` to the lowest person
    ranking above the actor (denied when nobody ranks above it), or `deny`."""


class JudgeBandSpec(BaseModel):
    """When the LLM judge reviews an exception the deterministic checks allowed."""

    model_config = _MODEL

    min_amount: Amount = "0"
    """The smallest amount it reviews (inclusive)."""
    max_amount: Amount | None = None
    """The largest amount it reviews (inclusive); no upper bound when absent."""
    clause: str | None = None
    """The policy clause the judge reads; the reason's description when absent."""


class JudgeSpec(BaseModel):
    """Pack-wide settings of the LLM judge."""

    model_config = _MODEL

    daily_calls: Annotated[int, Field(ge=1)] | None = None
    """How many calls the LLM judge may make per UTC day, across processes sharing the store;
    a case that needs a call after that routes. Unlimited when absent."""
    without_model: Literal["route", "skip"] = "route"
    """What an exception the pack asks the LLM judge to review gets when the guard has no LLM
    judge: `route` (fail closed) or `skip` (the grounded checks alone)."""


class ReasonSpec(BaseModel):
    """A permitted exception reason."""

    model_config = _MODEL

    id: RuleId
    when: Cel = "true"
    """CEL: the preconditions on context facts (never the actor's claims)."""
    max_amount: Cel | None = None
    """CEL giving the largest amount, in minor units, this reason can justify."""
    granted_by: list[str] | None = None
    """The roles that may grant it; every role with exception authority when absent."""
    precedent: PrecedentPolicySpec | None = None
    """How a grant of this reason may become precedent; never when absent."""
    evidence: EvidenceSpec | None = None
    """What the rationale must carry: claims checked against the facts, and its free text."""
    judge: JudgeBandSpec | bool | None = None
    """When the LLM judge reviews an exception for this reason: an amount band, `true` for any
    amount, `false` never; the action's `judge` when absent."""
    description: str = ""
    message: str | None = None


class ActionSpec(BaseModel):
    """One governed action."""

    model_config = _MODEL

    description: str = ""
    unit: str | None = None
    """A unit the pack declares under `units` that this action counts instead of money (miles
    awarded, days a window is extended by): its amounts, limits and totals are in that unit."""
    tools: list[ToolSpec] = []
    """The tools that perform it."""
    reads: list[FieldName] = []
    """The context fields its rules read: the only facts assembled for it (least context)."""
    args: dict[ArgName, ArgSpec | ArgType | RecordRef] = {}
    """The tool arguments its rules read, with their types: `args.<name>` in CEL. Each is read
    from the call through the tool's mapping and checked against its type before any rule runs."""
    standard: list[StandardRuleSpec] = []
    hard_limits: list[HardLimitSpec] = []
    exceptions: list[ReasonSpec] = []
    reviews: list[ReviewSpec] = []
    """Conditions under which a person (of a given role) must decide the case: read after the
    hard limits, they turn what would be allowed into a route."""
    judge: JudgeBandSpec | bool | None = None
    """When the LLM judge reviews exceptions of this action whose reason does not say."""
    claims: ClaimsSpec | None = None
    """When its rationale's claims are checked, and what a false one gets; the keys it sets
    override the pack's `claims`."""
    approval_sla: Window | None = None
    """How soon a routed case of this action must be decided; see the pack's `approval_sla`."""
    cumulative: CumulativeSpec | None = None
    """Measure the actor's authority on the sum allowed on one record in a window, so that a
    split routes exactly as the whole would; each call alone when absent."""
    two_approvals_above: Amount | None = None
    """Above this amount (on the whole, with `cumulative`), a case needs two people: it is never
    allowed from code alone, and a routed one is approved by two approvers, neither its
    proposer, each of a role that covers it. One approval suffices when absent."""


class ActionAuthoritySpec(BaseModel):
    """What a role may do for one action."""

    model_config = _MODEL

    standard: Amount = "0"
    """The largest amount it may approve inside standard policy."""
    exception: Amount = "0"
    """The largest amount it may grant as an exception."""
    reasons: list[str] | None = None
    """The exception reasons it may grant; those whose `granted_by` admit it when absent."""


class RoleSpec(BaseModel):
    """A rung on the authority ladder. Roles are listed lowest first."""

    model_config = _MODEL

    id: RuleId
    ai: bool = False
    """Whether this role is held by AI agents. Cases are never routed to an AI role."""
    beside: bool = False
    """A team beside the ladder (fraud, trust and safety, legal): cases go to it only where a
    review or a budget names it, it decides only what is sent to it, and only it decides that.
    Its place in the list ranks it above or below no one."""
    description: str = ""
    authority: dict[str, ActionAuthoritySpec] = {}
    approval_sla: Window | None = None
    """How soon a case routed to this role must be decided (`4h`, `2d`); see the pack's."""


BudgetKeyPart = Literal["customer", "order", "case", "actor", "organisation"] | FieldName


class BudgetSpec(BaseModel):
    """A cap on exposure over a rolling window and key."""

    model_config = _MODEL

    id: RuleId
    key: BudgetKeyPart | Annotated[list[BudgetKeyPart], Field(min_length=1)]
    """What the budget is kept for: a resolved record (never an id the agent typed), the actor,
    the whole organisation, the value of a fact every action it counts reads (a string or int
    context field such as `incident.id`: one budget per incident), or of a tool argument every
    such action declares (`args.sku`); or a list of these, one budget per combination
    (`[order, args.sku]`: one per item of each order)."""
    window: CountingWindow
    """Rolling window such as `30d`, `24h`, or a calendar period such as `calendar day`."""
    timezone: FieldName | None = None
    """A string context field naming the time zone its calendar window begins in, case by
    case (a property's own month); the pack's `timezone` when absent."""
    limit: Amount | None = None
    """The cap; needed unless `roles` names the roles it counts and `limits` caps each."""
    limits: dict[str, Amount] = {}
    """Per role of the proposing actor, a limit instead of `limit`."""
    actions: list[str] | None = None
    """The actions it counts; all when absent (those that move money, in a pack with units)."""
    roles: Annotated[list[str], Field(min_length=1)] | None = None
    """The roles whose proposals it counts and caps; every role when absent."""
    exempt: list[str] = []
    """Roles whose proposals it counts but never caps: what a team lead grants uses up the
    customer's cap for everyone else, and the team lead may go beyond it."""
    outcomes: list[Literal["allow", "allow_exception", "route"]] = ["allow", "allow_exception"]
    """The outcomes whose amounts it counts."""
    on_exceed: Literal["route", "deny"] = "route"
    route_to: str | None = None
    """The role a case that would exceed it is routed to; `next_above` for the lowest human
    role above the actor; the highest human role when absent."""
    message: str | None = None
    description: str = ""
    """What it caps and why, for the people who read the pack."""
    currencies: Literal["together", "each"] = "together"
    """In a pack of several currencies: `together`, one cap whatever the currency (with
    `rates`, kept in the base; else each currency's spending counts as its share of that
    currency's limit); `each`, a cap per currency, never added."""


class RatesSpec(BaseModel):
    """How a multi-currency pack converts a proposal's amount to the currency of its limits."""

    model_config = _MODEL

    fact: FieldName
    """A context field of type `decimal` (declared under `context`): how many units of `base`
    one unit of the proposal's currency is worth (`fx.rate_to_usd`: 1.0850 for EUR). Every
    action reads it; a proposal in `base` does not need it."""
    base: CurrencyCode
    """The currency the pack's amounts are stated in; one of `currencies`."""
    currency: FieldName | None = None
    """A context field of type `string` naming the currency `fact` is the rate of (`booking.
    currency`), when the rate comes from a record that cannot know the currency the agent
    proposes in: a proposal in another currency is not priced at it, and routes."""


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class BusinessDaysSpec(BaseModel):
    """The pack's working days, which `businessDays()` counts in its rules."""

    model_config = _MODEL

    weekend: list[Weekday] = ["saturday", "sunday"]
    """The days of the week that are never business days."""
    holidays: list[date] = []
    """Further days that are not business days (`2026-12-25`), in the pack's `timezone`."""

    @field_validator("weekend")
    @classmethod
    def _some_day_works(cls, weekend: list[str]) -> list[str]:
        if len(set(weekend)) == 7:
            raise ValueError(
                "a weekend of every day of the week leaves no business days; name the days"
                " that are not worked"
            )
        return weekend


class PackSpec(BaseModel):
    """A whole policy pack, after its files are merged."""

    model_config = _MODEL

    pack: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    """The pack's name."""
    description: str = ""
    currency: str | None = None
    """The currency of every limit in the pack, and of every proposal; give it or
    `currencies`, not both."""
    currencies: Annotated[list[CurrencyCode], Field(min_length=1)] | None = None
    """The currencies proposals may be in (`[USD, EUR, JPY]`); every amount in the pack is then
    given per currency (`{USD: "100.00", EUR: "90.00", JPY: "13000"}`), unless `rates` says how
    to convert."""
    rates: RatesSpec | None = None
    """Convert instead of stating every limit per currency: a fact giving the proposal's
    currency's rate to `base`, in which the pack's amounts are stated once."""
    units: dict[UnitName, UnitSpec] = {}
    """What actions that move no money count (`MILES: {places: 0}`); an action names its own
    with `unit:`, and every amount of that action is one amount in it."""
    amounts: dict[MemberName, Amount] = {}
    """Named amounts every rule may read as `amounts.<name>`: minor units of the proposal's
    currency, so `amount > amounts.large_refund` means the same in every currency (an int
    literal such as `5000` is 50.00 USD but 5000 JPY). With `rates`, converted rounded down."""
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "UTC"
    """The IANA time zone (`Europe/Berlin`) where a `calendar day` (week, month, ...) of a
    total, a budget or cumulative authority begins."""
    business_days: BusinessDaysSpec = BusinessDaysSpec()
    """The working days `businessDays(from, to)` counts: every day but the weekend and the
    holidays, in the pack's `timezone`."""
    private_limits: bool = True
    """When true, explanations never quote limits to the agent."""
    unknown_tools: Literal["route", "deny"] = "route"
    """What a call to a tool the pack neither maps nor lists in `ungoverned_tools` gets. The
    integrations also refuse to wrap such a tool."""
    unknown_tools_route_to: str | None = None
    """The human role such a call routes to; the highest human role when absent."""
    ungoverned_tools: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = []
    """Read-only tools that run without a decision, by name or glob (`search_*`)."""
    entities: dict[EntityKind, EntitySpec] = {}
    """How the customer, order and case a proposal names relate; each named one is checked
    against its record, and budgets, totals and precedent key on the resolved records."""
    records: dict[MemberName, RecordSpec] = {}
    """Record types, by name, that context fields and arguments may have (`list[item]`)."""
    totals: dict[FieldName, TotalSpec] = {}
    """Running totals from discretion's own ledger, read in the decision's transaction."""
    context: dict[FieldName, FieldSpec | FieldType | RecordRef] = {}
    roles: Annotated[list[RoleSpec], Field(min_length=1)]
    actions: Annotated[dict[RuleId, ActionSpec], Field(min_length=1)]
    every_action: EveryActionSpec | Annotated[list[EveryActionSpec], Field(min_length=1)] | None = (
        None
    )
    """Hard limits and reviews shared by every action (or those named): the account's standing,
    a fraud review. Each action reads and decides them as its own, under their one rule id."""
    budgets: list[BudgetSpec] = []
    judge: JudgeSpec = JudgeSpec()
    """Settings of the LLM judge: its daily call budget and what happens without one."""
    claims: ClaimsSpec | None = None
    """The default, for every action, of when claims are checked and what a false one gets."""
    asserted: dict[FieldName, AssertedSpec] = {}
    """Facts the agent asserts from the conversation (the reason the customer gave, whether they
    confirmed), by name; rules read them as `asserted.<name>` once the action lists that in
    `reads`. They are recorded as assertions, never as grounded facts."""
    approval_sla: Window = "24h"
    """How soon a routed case must be decided before its approval expires. An action's or the
    required role's own `approval_sla` applies instead when set; the shorter when both are."""

    @property
    def declared_currencies(self) -> list[str]:
        """The currencies the pack declares: `currencies`, or its one `currency`.

        Empty when it gives neither (a pack split over files may give it in another).
        """
        if self.currencies is not None:
            return list(self.currencies)
        return [self.currency] if self.currency is not None else []
