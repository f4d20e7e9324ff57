"""The grounded judge: a rationale's claims checked against the facts, and its evidence.

Deterministic and always on (invariant 3, facts over claims). A claim that contradicts a fact, or
names a fact the context does not hold, makes the rationale unjustified, with a rule id per
claim; so does a rationale without the evidence its reason requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from discretion.context import Snapshot
from discretion.decision import ClaimCheck
from discretion.money import Money
from discretion.policy import ASSERTED, Record, Rule
from discretion.proposal import Claim, Rationale

__all__ = ["GROUNDED", "Fault", "Grounding", "ground"]

GROUNDED = "discretion.claim.grounded"
CONTRADICTS = "discretion.claim.contradicts-fact"
UNKNOWN = "discretion.claim.unknown-fact"
EVIDENCE_MISSING = "discretion.claim.evidence-missing"
TEXT_TOO_SHORT = "discretion.judge.text-too-short"
TEXT_MISSING_DETAIL = "discretion.judge.text-missing-detail"


@dataclass(frozen=True, slots=True)
class Fault:
    """Why a rationale is not grounded: a rule id and a sentence naming the part at fault."""

    rule: str
    cause: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Grounding:
    """What the grounded judge found."""

    claims: list[ClaimCheck]
    """Each claim and the rule its check produced."""
    faults: list[Fault]
    """Empty when the rationale is grounded."""


def _agrees(fact: Any, claimed: Any) -> bool:
    """Whether a claimed value states the typed fact. A value of the wrong type never agrees.

    Written as JSON text, a value states a fact as its number, money or time would be written:
    "150" states 150.00, and "false" (or "False") states false.
    """
    if isinstance(fact, bool):
        if isinstance(claimed, str):
            return claimed.strip().casefold() == ("true" if fact else "false")
        return isinstance(claimed, bool) and claimed is fact
    if isinstance(claimed, bool):
        return False
    if isinstance(fact, str):
        return isinstance(claimed, str) and claimed.strip().casefold() == fact.casefold()
    if isinstance(fact, int):
        return _number(claimed) == fact
    if isinstance(fact, Money):
        if isinstance(claimed, str) and " " in claimed.strip():
            # `USD 12.50`, as money is written: the currency must agree too.
            code, _, amount = claimed.strip().partition(" ")
            return code.upper() == fact.currency and _number(amount) == fact.amount
        return _number(claimed) == fact.amount
    if isinstance(fact, datetime):
        return _same_moment(fact, claimed)
    if isinstance(fact, timedelta):
        seconds = _number(claimed)
        return seconds is not None and seconds == Decimal(str(fact.total_seconds()))
    if isinstance(fact, Decimal):
        # A decimal fact ("99.50", 2 places): "99.5", "99.50" and 99.5 state it alike.
        return _number(claimed) == fact
    if isinstance(fact, tuple):
        return isinstance(claimed, str) and claimed.strip() in fact
    return bool(fact == claimed)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _same_moment(fact: datetime, claimed: Any) -> bool:
    if not isinstance(claimed, str):
        return False
    text = claimed.strip()
    try:
        if len(text) == 10:
            # A date alone states the day of the fact, in the fact's own offset.
            return date.fromisoformat(text) == fact.date()
        moment = datetime.fromisoformat(text)
    except ValueError:
        return False
    return moment.tzinfo is not None and moment == fact


def _fact(snapshot: Snapshot, name: str) -> tuple[bool, Any]:
    """The fact `name` names, or a member of a record fact (`line.device.liquid_damage`).

    A member of a list of records names no one value, so it is not found.
    """
    values = snapshot.values
    if name in values:
        return True, values[name]
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        if head not in values:
            continue
        value = values[head]
        for member in parts[cut:]:
            if not isinstance(value, Record) or member not in value.values:
                return False, None
            value = value.values[member]
        return True, value
    return False, None


def _check(claim: Claim, snapshot: Snapshot, action: str) -> tuple[str, str | None]:
    name, value = claim.field, claim.value
    if name.startswith(ASSERTED):
        # The agent's own assertion grounds nothing: a claim must name a grounded fact.
        return UNKNOWN, (
            f"claim {name}={value!r}: {name!r} is the agent's own assertion, not a fact the"
            " claim can be checked against"
        )
    found, fact = _fact(snapshot, name)
    if not found:
        held = ", ".join(sorted(snapshot.values)) or "(none)"
        return UNKNOWN, (
            f"claim {name}={value!r}: the facts of this {action} do not hold {name!r}, so it"
            f" cannot be checked; claims may name: {held}, or a member of a record among them"
        )
    if fact is None:
        return UNKNOWN, f"claim {name}={value!r}: the facts hold no value for {name!r}"
    if not _agrees(fact, value):
        # The fact's value stays in the lineage: the agent is told which claim, not the fact.
        return CONTRADICTS, f"claim {name}={value!r} contradicts the case facts for {name!r}"
    return GROUNDED, None


def ground(
    reason: Rule | None, rationale: Rationale, snapshot: Snapshot, *, action: str
) -> Grounding:
    """Check a rationale's claims against the snapshot, and its evidence against the reason."""
    checks: list[ClaimCheck] = []
    faults: list[Fault] = []
    for claim in rationale.claims:
        rule, cause = _check(claim, snapshot, action)
        checks.append(ClaimCheck(field=claim.field, value=claim.value, rule=rule))
        if cause is not None:
            faults.append(Fault(rule, cause))
    evidence = reason.evidence if reason is not None else None
    if reason is None or evidence is None:
        return Grounding(claims=checks, faults=faults)
    claimed = {claim.field for claim in rationale.claims}
    for name in evidence.claims:
        if name not in claimed:
            faults.append(
                Fault(
                    EVIDENCE_MISSING,
                    f"reason {reason.id!r} needs the rationale to claim {name!r} as evidence;"
                    " add it to the rationale's claims",
                )
            )
    text = rationale.text.strip()
    if len(text) < evidence.min_text:
        faults.append(
            Fault(
                TEXT_TOO_SHORT,
                f"reason {reason.id!r} needs at least {evidence.min_text} characters of rationale"
                f" text; it has {len(text)}",
            )
        )
    for name, pattern in evidence.text_patterns:
        if pattern.search(text) is None:
            faults.append(
                Fault(
                    TEXT_MISSING_DETAIL,
                    f"reason {reason.id!r} needs the rationale text to give the {name}",
                )
            )
    return Grounding(claims=checks, faults=faults)
