"""Decision amnesia, simulated: an agent that repeats past approvals, with and without discretion.

A stream of generated refund tickets is decided twice. The ungoverned agent knows the standard
30-day rule and escalates the rest to a person, who follows the policy; but once an exception has
been approved it also approves, on its own, any later ticket that *resembles* one approved before
(same shipment status, a little later, a little more money) and remembers that approval too, so
the frontier creeps. The governed agent proposes exactly the same things, and discretion decides:
within policy and authority it runs, otherwise a person decides by the policy, as before.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from discretion.context import StaticContextProvider
from discretion.decision import Outcome
from discretion.errors import ConfigurationError
from discretion.guard import Guard
from discretion.policy import PolicyPack
from discretion.store import SqlStore

__all__ = ["AmnesiaPoint", "AmnesiaResult", "simulate_amnesia"]

_START = datetime(2026, 11, 1, tzinfo=UTC)
_TIERS = (("standard", 50), ("silver", 25), ("gold", 15), ("platinum", 10))
_SITUATIONS = (("recent", 45), ("late", 30), ("lost", 10), ("damaged", 10), ("in_transit", 5))
_RESEMBLES_DAYS = 12
"""How many days later than a remembered approval still 'resembles' it to the ungoverned agent."""
_RESEMBLES_RATIO = Decimal("1.25")
"""How much more money than a remembered approval still 'resembles' it."""
_LOOKS_LIKE = {"in_transit": "lost"}
"""To the ungoverned agent, a parcel that has not arrived yet looks like one the carrier lost."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AmnesiaPoint:
    """The two agents' running totals after `ticket` tickets."""

    ticket: int
    ungoverned_money: Decimal
    """Cumulative exception money moved by the ungoverned agent and the people it escalated to."""
    governed_money: Decimal
    """The same behind discretion."""
    ungoverned_rate: float
    """The share of exceptions among the last window of tickets, ungoverned."""
    governed_rate: float
    """The same behind discretion."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AmnesiaResult:
    """What the simulation found."""

    tickets: int
    seed: int
    currency: str
    points: tuple[AmnesiaPoint, ...]
    ungoverned_total: Decimal
    governed_total: Decimal
    ungoverned_exceptions: int
    governed_exceptions: int
    self_approved: int
    """Exceptions the ungoverned agent granted on its own because a ticket resembled a past one."""
    outside_policy: int
    """Of those, how many no role could have granted under the pack."""
    routed: int
    """Governed proposals that went to a person."""

    def to_json(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "tickets": self.tickets,
            "seed": self.seed,
            "currency": self.currency,
            "ungoverned_total": str(self.ungoverned_total),
            "governed_total": str(self.governed_total),
            "ungoverned_exceptions": self.ungoverned_exceptions,
            "governed_exceptions": self.governed_exceptions,
            "self_approved": self.self_approved,
            "outside_policy": self.outside_policy,
            "routed": self.routed,
            "points": [
                {
                    "ticket": p.ticket,
                    "ungoverned_money": str(p.ungoverned_money),
                    "governed_money": str(p.governed_money),
                    "ungoverned_rate": p.ungoverned_rate,
                    "governed_rate": p.governed_rate,
                }
                for p in self.points
            ],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class _Ticket:
    number: int
    at: datetime
    case_id: str
    customer_id: str
    order_id: str
    situation: str
    days_since: int
    """Days since delivery (or since the carrier's last status)."""
    amount: Decimal
    facts: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Approval:
    """An exception the ungoverned agent remembers being approved."""

    situation: str
    days_since: int
    amount: Decimal
    reason: str | None


@dataclass(slots=True)
class _Agent:
    """The ungoverned agent's memory of approved exceptions."""

    remembered: list[_Approval] = field(default_factory=list)

    def resembles(self, ticket: _Ticket) -> _Approval | None:
        """A remembered approval this ticket looks like: a little later, a little more money."""
        looks_like = _LOOKS_LIKE.get(ticket.situation, ticket.situation)
        for past in self.remembered:
            if (
                past.situation == looks_like
                and ticket.days_since <= past.days_since + _RESEMBLES_DAYS
                and ticket.amount <= past.amount * _RESEMBLES_RATIO
            ):
                return past
        return None

    def remember(self, ticket: _Ticket, reason: str | None) -> None:
        self.remembered.append(
            _Approval(
                situation=_LOOKS_LIKE.get(ticket.situation, ticket.situation),
                days_since=ticket.days_since,
                amount=ticket.amount,
                reason=reason,
            )
        )


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    names = [name for name, _ in weighted]
    return rng.choices(names, weights=[weight for _, weight in weighted])[0]


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": str(amount), "currency": currency}


def _tickets(count: int, seed: int, currency: str) -> list[_Ticket]:
    rng = random.Random(seed)
    customers = max(count // 3, 1)
    out = []
    for number in range(1, count + 1):
        at = _START + timedelta(minutes=int(number * 30 * 24 * 60 / count))
        customer = rng.randrange(customers)
        crng = random.Random(seed * 1_000_003 + customer)
        tier = _pick(crng, _TIERS)
        situation = _pick(rng, _SITUATIONS)
        total = Decimal(rng.randrange(2000, 60000)) / 100
        shipping = Decimal(rng.choice((0, 599, 1299))) / 100
        days = {
            "recent": rng.randrange(1, 30),
            "late": rng.randrange(31, 120),
            "lost": rng.randrange(2, 20),
            "damaged": rng.randrange(1, 20),
            "in_transit": rng.randrange(1, 10),
        }[situation]
        status = {"recent": "delivered", "late": "delivered"}.get(situation, situation)
        delivered = at - timedelta(days=days) if status == "delivered" else None
        amount = total + shipping if situation == "lost" else total
        facts = {
            "customer.fraud_flag": crng.random() < 0.02,
            "customer.tier": tier,
            "customer.since": (at - timedelta(days=crng.randrange(200, 3000))).isoformat(),
            "customer.lifetime_value": _money(
                Decimal(crng.randrange(10000, 800000)) / 100, currency
            ),
            "order.total": _money(total, currency),
            "order.shipping_fee": _money(shipping, currency),
            "order.refunded": _money(Decimal(0), currency),
            "order.delivered_at": delivered.isoformat() if delivered else None,
            "shipment.status": status,
            "shipment.status_at": (at - timedelta(days=days)).isoformat(),
            "exposure.all_count_30d": rng.choice((0, 0, 0, 1, 1, 2)),
        }
        case_id, customer_id = f"SIM-{number:05d}", f"SIM-C{customer:05d}"
        order_id = f"SIM-O{number:05d}"
        # The records the ticket names, for a pack that checks them (`entities`).
        facts |= {
            "customer.id": customer_id,
            "order.id": order_id,
            "order.customer_id": customer_id,
            "case.id": case_id,
            "case.customer_id": customer_id,
            "case.order_id": order_id,
        }
        out.append(
            _Ticket(
                number=number,
                at=at,
                case_id=case_id,
                customer_id=customer_id,
                order_id=order_id,
                situation=situation,
                days_since=days,
                amount=amount,
                facts=facts,
            )
        )
    return out


def _proposal(ticket: _Ticket, currency: str, *, reason: str | None, role: str) -> dict[str, Any]:
    return {
        "actor": {"id": f"sim-{role}", "role": role, "is_ai": role == "ai_agent"},
        "action": "refund",
        "amount": _money(ticket.amount, currency),
        "customer_id": ticket.customer_id,
        "case_id": ticket.case_id,
        "order_id": ticket.order_id,
        "rationale": {"reason": reason, "text": f"ticket {ticket.number}: {ticket.situation}"},
    }


class _Policy:
    """What a person following the pack would do, decided without recording."""

    def __init__(self, pack: PolicyPack, context: StaticContextProvider, store: SqlStore) -> None:
        self._pack = pack
        self._now = _START
        # Previews never write: the store is only there because a Guard needs one.
        self._guard = Guard(pack, store=store, context=context, clock=lambda: self._now)
        self._reasons = [rule.id for rule in pack.actions["refund"].exceptions]

    def judge(self, ticket: _Ticket) -> tuple[Outcome, str | None]:
        """What a person would decide: ALLOW, ALLOW_EXCEPTION with its reason, or DENY.

        ALLOW inside standard policy; ALLOW_EXCEPTION when the top human role may grant it, with
        the first reason that lets it; DENY when nobody may.
        """
        self._now = ticket.at
        top = self._pack.highest_human.id
        best: tuple[Outcome, str | None] = (Outcome.DENY, None)
        for reason in [None, *self._reasons]:
            decision = self._guard.preview(
                _proposal(ticket, self._pack.currency, reason=reason, role=top)
            )
            if decision.outcome is Outcome.ALLOW:
                return Outcome.ALLOW, None
            if decision.outcome is Outcome.ALLOW_EXCEPTION and best[1] is None:
                best = (Outcome.ALLOW_EXCEPTION, reason)
        return best


def simulate_amnesia(pack: PolicyPack, *, tickets: int = 1000, seed: int = 7) -> AmnesiaResult:
    """Simulate `tickets` refund tickets decided by the ungoverned and the governed agent.

    The tickets fill the facts of the acme refund action (customer, order, shipment and
    exposure fields); the pack must govern a `refund` action that reads no others.

    Raises:
        ConfigurationError: the pack has no `refund` action, or it reads facts the simulated
            tickets do not carry.
    """
    action = pack.actions.get("refund")
    if action is None:
        raise ConfigurationError(f"pack {pack.name!r} has no 'refund' action to simulate")
    if tickets < 1:
        raise ConfigurationError("the simulation needs at least one ticket")
    stream = _tickets(tickets, seed, pack.currency)
    unknown = set(action.provided) - set(stream[0].facts)
    if unknown:
        raise ConfigurationError(
            f"pack {pack.name!r}'s refund reads {', '.join(sorted(unknown))}, which the simulated"
            " tickets do not carry"
        )
    context = StaticContextProvider(cases={t.case_id: t.facts for t in stream})
    clock_at = [stream[0].at]
    store = SqlStore("sqlite://")
    policy = _Policy(pack, context, store)
    guard = Guard(pack, store=store, context=context, clock=lambda: clock_at[0])
    agent = _Agent()
    window = max(tickets // 20, 10)
    ungoverned_flags: list[bool] = []
    governed_flags: list[bool] = []
    totals = {"ungoverned": Decimal(0), "governed": Decimal(0)}
    counts = {"self": 0, "outside": 0, "routed": 0}
    points: list[AmnesiaPoint] = []
    try:
        for ticket in stream:
            standard, reason = policy.judge(ticket)
            if standard is Outcome.ALLOW:
                ungoverned_flags.append(False)
                governed_flags.append(False)
            else:
                past = agent.resembles(ticket)
                # The agent cites what it remembers being approved, else what a person would.
                cited = past.reason if past is not None else reason
                # (a) ungoverned: approve what resembles a past approval, else ask a person.
                if past is not None:
                    counts["self"] += 1
                    counts["outside"] += standard is Outcome.DENY
                    totals["ungoverned"] += ticket.amount
                    agent.remember(ticket, cited)
                    ungoverned_flags.append(True)
                elif standard is Outcome.ALLOW_EXCEPTION:
                    totals["ungoverned"] += ticket.amount
                    agent.remember(ticket, reason)
                    ungoverned_flags.append(True)
                else:
                    ungoverned_flags.append(False)
                # (b) governed: the same proposal, decided by discretion.
                clock_at[0] = ticket.at
                decision = guard.decide(
                    {
                        **_proposal(
                            ticket,
                            pack.currency,
                            reason=cited,
                            role="ai_agent",
                        ),
                        "idempotency_key": ticket.case_id,
                    }
                )
                granted = decision.outcome is Outcome.ALLOW_EXCEPTION
                if decision.outcome is Outcome.ROUTE:
                    counts["routed"] += 1
                    granted = standard is Outcome.ALLOW_EXCEPTION
                if granted:
                    totals["governed"] += ticket.amount
                governed_flags.append(granted)
            if ticket.number % window == 0 or ticket.number == tickets:
                recent_u = ungoverned_flags[-window:]
                recent_g = governed_flags[-window:]
                points.append(
                    AmnesiaPoint(
                        ticket=ticket.number,
                        ungoverned_money=totals["ungoverned"],
                        governed_money=totals["governed"],
                        ungoverned_rate=sum(recent_u) / len(recent_u),
                        governed_rate=sum(recent_g) / len(recent_g),
                    )
                )
    finally:
        store.close()
    return AmnesiaResult(
        tickets=tickets,
        seed=seed,
        currency=pack.currency,
        points=tuple(points),
        ungoverned_total=totals["ungoverned"],
        governed_total=totals["governed"],
        ungoverned_exceptions=sum(ungoverned_flags),
        governed_exceptions=sum(governed_flags),
        self_approved=counts["self"],
        outside_policy=counts["outside"],
        routed=counts["routed"],
    )
