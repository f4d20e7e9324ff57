from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from discretion.errors import ConfigurationError

__all__ = [
    "ChainedContext",
    "ContextProvider",
    "ContextRequest",
    "JsonContextProvider",
    "StaticContextProvider",
    "records_of",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextRequest:
    """What the guard asks a provider for."""

    fields: tuple[str, ...]
    """The field names wanted. Providers may answer fewer; anything extra is dropped."""
    action: str
    """The action being decided."""
    customer_id: str | None
    """The customer the action benefits."""
    case_id: str | None
    """The support case."""
    order_id: str | None
    """The order, when the proposal names one."""
    now: datetime
    """The guard's clock at the time of the decision."""
    currency: str | None = None
    """The currency of the proposal's amount; money facts must be in it."""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    """The tool's arguments, for providers that need them."""


@runtime_checkable
class ContextProvider(Protocol):
    """Answers a `ContextRequest` with the facts it knows, by field name.

    Raise `ContextError` (or any error: the guard maps it) when the source fails; the decision
    then routes with the cause recorded.

    A provider that answers from this process's memory or a local file, never the network, may
    say so with a class attribute `in_process = True`: the HTTP server then works on fewer
    decisions at once, which is faster when nothing waits (see `create_app(concurrency=)`).
    Without it a provider is taken to wait on the network.

    A provider that files facts under records with names of their own (`booking.fare` held
    for an order) may say so with a method `records_of(name)` returning the records (any of
    `customer`, `order`, `case`) the fact is held for: a proposal naming none of them cannot
    read it, optional or not, and routes, as for a fact named after its record (`order.total`).
    Without it, only a fact's name says whose it is.
    """

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        """Return the facts this provider knows among `request.fields`."""
        ...


class StaticContextProvider:
    """Serves fixed facts: per customer, per order, per case, and for everyone.

    A customer, order or case it holds is on record (it answers `customer.id`, `order.id`,
    `case.id` for a pack's `entities`); give each record's owner among its facts
    (`order.customer_id`, `case.customer_id`, `case.order_id`).

    Example:
        ```python
        StaticContextProvider(
            defaults={"incident.active": False},
            customers={"c-1": {"customer.tier": "gold"}},
            orders={
                "o-1": {
                    "order.customer_id": "c-1",
                    "order.total": {"amount": "120.00", "currency": "USD"},
                }
            },
            cases={"k-9": {"case.severity": "high", "case.customer_id": "c-1"}},
        )
        ```
    """

    in_process = True
    """It answers from memory."""

    def __init__(
        self,
        facts: Mapping[str, Any] | None = None,
        *,
        defaults: Mapping[str, Any] | None = None,
        customers: Mapping[str, Mapping[str, Any]] | None = None,
        cases: Mapping[str, Mapping[str, Any]] | None = None,
        orders: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self._defaults = {**(defaults or {}), **(facts or {})}
        self._customers = {key: dict(value) for key, value in (customers or {}).items()}
        self._orders = {key: dict(value) for key, value in (orders or {}).items()}
        self._cases = {key: dict(value) for key, value in (cases or {}).items()}
        filed: dict[str, set[str]] = {}
        for kind, held in (
            ("customer", self._customers),
            ("order", self._orders),
            ("case", self._cases),
        ):
            for facts_of_one in held.values():
                for name in facts_of_one:
                    filed.setdefault(name, set()).add(kind)
        self._filed = {
            name: frozenset(kinds) for name, kinds in filed.items() if name not in self._defaults
        }

    def records_of(self, name: str) -> frozenset[str]:
        """The records the fact `name` is held for here (none when it has a default)."""
        return self._filed.get(name, frozenset())

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        """Return the defaults, overlaid by the customer's facts, the order's, then the case's."""
        facts = dict(self._defaults)
        for kind, held, record in (
            ("customer", self._customers, request.customer_id),
            ("order", self._orders, request.order_id),
            ("case", self._cases, request.case_id),
        ):
            if record is not None and record in held:
                facts[f"{kind}.id"] = record
                facts.update(held[record])
        return facts


class JsonContextProvider(StaticContextProvider):
    """A `StaticContextProvider` read from JSON: `defaults`, `customers`, `orders`, `cases`."""

    def __init__(self, path: str | Path) -> None:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"{path}: cannot read context facts: {exc}") from exc
        if not isinstance(data, dict) or not set(data) <= {
            "defaults",
            "customers",
            "orders",
            "cases",
        }:
            raise ConfigurationError(
                f"{path}: context facts must be an object with 'defaults', 'customers', 'orders',"
                " 'cases'"
            )
        super().__init__(
            defaults=data.get("defaults"),
            customers=data.get("customers"),
            orders=data.get("orders"),
            cases=data.get("cases"),
        )


class ChainedContext:
    """Asks each provider in turn; the first to answer a field wins."""

    def __init__(self, providers: Sequence[ContextProvider]) -> None:
        self._providers = tuple(providers)

    @property
    def in_process(self) -> bool:
        """Whether every provider in the chain answers from this process."""
        return all(getattr(p, "in_process", False) for p in self._providers)

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        """Merge the providers' answers, earlier providers first."""
        facts: dict[str, Any] = {}
        for provider in self._providers:
            missing = tuple(name for name in request.fields if name not in facts)
            if not missing:
                break
            answer = provider.fetch(
                ContextRequest(
                    fields=missing,
                    action=request.action,
                    customer_id=request.customer_id,
                    case_id=request.case_id,
                    order_id=request.order_id,
                    now=request.now,
                    currency=request.currency,
                    arguments=request.arguments,
                )
            )
            for name in missing:
                if name in answer:
                    facts[name] = answer[name]
        return facts

    def records_of(self, name: str) -> frozenset[str]:
        """The records any of the providers holds the fact `name` for."""
        return frozenset().union(*(records_of(p, name) for p in self._providers))


def records_of(provider: object, name: str) -> frozenset[str]:
    """The records `provider` says the fact `name` is held for; none when it does not say."""
    say = getattr(provider, "records_of", None)
    return frozenset(say(name)) if say is not None else frozenset()
