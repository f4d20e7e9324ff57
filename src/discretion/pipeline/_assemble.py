"""Step 3 of the pipeline: the facts a decision needs, and only those (invariant 6).

When the pack declares `entities`, the records the proposal names are checked against their own
records before any rule reads a fact: each named customer, order and case must be on record,
and a record's owner wins over the id the agent typed (an order names its customer; a case its
customer and its order). A customer or order the proposal leaves out is read from the record
that names it, and the facts are fetched for the records so resolved. Budgets, totals and
precedent then key on the resolved records, never on ids the agent typed.

The records named must also be tied to one another by their links, where the pack relates
them: a record whose links are null (a guest order, a case about no customer) ties nothing, so
a customer named beside it stands on the agent's word alone and the proposal routes
(`discretion.entity.unlinked`). A case about no order, beside an order of its own customer, is
tied to that order through the customer.

The contract for a context provider: answer `<entity>.id` for each record it holds among the
ids in the request, and `<entity>.<parent>_id` for each relation the pack declares (null when
the record has none, such as a case about no order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from discretion.context import ContextProvider, ContextRequest, Snapshot, assemble, records_of
from discretion.errors import ContextError
from discretion.pipeline._asserted import asserted_values
from discretion.pipeline._normalise import Normalised
from discretion.policy import ActionPolicy, Entity, FieldSpec, PolicyPack
from discretion.proposal import MAX_ID

__all__ = [
    "MISMATCH",
    "UNKNOWN",
    "UNLINKED",
    "EntityFault",
    "Facts",
    "Resolved",
    "assemble_facts",
    "named",
]

UNKNOWN = "discretion.entity.unknown"
MISMATCH = "discretion.entity.mismatch"
UNLINKED = "discretion.entity.unlinked"
_LINK = FieldSpec(type="string", nullable=True)
_ID_OF = {"customer": "customer_id", "order": "order_id", "case": "case_id"}


@dataclass(frozen=True, slots=True, kw_only=True)
class EntityFault:
    """A named record that is not on record, or ids that disagree with a record."""

    rule: str
    """`discretion.entity.unknown`, `discretion.entity.mismatch` or `...unlinked`."""
    cause: str
    deny: bool
    """Whether the pack denies it (`on_unknown` / `on_mismatch: deny`); else it routes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved:
    """The customer, order and case a decision is about, as their records say."""

    customer_id: str | None
    order_id: str | None
    case_id: str | None
    faults: tuple[EntityFault, ...] = ()

    def get(self, kind: str) -> str | None:
        """The resolved id of `customer`, `order` or `case`."""
        value: str | None = getattr(self, _ID_OF[kind])
        return value

    def ids(self) -> dict[str, str]:
        """The resolved ids as JSON, for the lineage."""
        found = {"customer": self.customer_id, "order": self.order_id, "case": self.case_id}
        return {kind: value for kind, value in found.items() if value is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """What step 3 found: the frozen facts and the records they are about."""

    snapshot: Snapshot
    resolved: Resolved
    faults: tuple[ContextError, ...] = ()
    """Why facts the rules read are not in `snapshot`: missing, or unreadable (`unreadable`)."""
    unreadable: tuple[str, ...] = ()
    """Facts on record whose value could not be read (ill-typed, money in another currency)."""
    unnamed: tuple[str, ...] = ()
    """Facts of records the proposal does not name: whether they are on record is not known."""

    def whole(self) -> Facts:
        """These facts, every one the rules read among them.

        Raises:
            ContextError: the first fact missing or unreadable (`faults`).
        """
        if self.faults:
            raise self.faults[0]
        return self


def named(item: Normalised) -> Resolved:
    """The records as the proposal names them."""
    return Resolved(customer_id=item.customer_id, order_id=item.order_id, case_id=item.case_id)


def _binding_fields(entities: Mapping[str, Entity]) -> dict[str, FieldSpec]:
    fields: dict[str, FieldSpec] = {}
    for entity in entities.values():
        fields[entity.id_field] = _LINK
        for parent in entity.belongs_to:
            fields[entity.link_field(parent)] = _LINK
    return fields


def _asked(pack: PolicyPack, action: ActionPolicy) -> tuple[dict[str, FieldSpec], tuple[str, ...]]:
    """The types of the facts and links asked for `action`, and their names, in order.

    Derived from the pack alone, so worked out once per pack and action.
    """

    def build() -> tuple[dict[str, FieldSpec], tuple[str, ...]]:
        binding = _binding_fields(pack.entities)
        return {**pack.fields, **binding}, tuple(dict.fromkeys([*action.provided, *binding]))

    return pack.memoised("assemble.asked", action, build)


def _resolve(
    entities: Mapping[str, Entity], named: Resolved, answer: Mapping[str, Any]
) -> Resolved:
    """Check each named record against the answer and fill in what the records name."""
    ids = {kind: named.get(kind) for kind in ("customer", "order", "case")}
    faults: list[tuple[str | None, EntityFault]] = []  # a mismatch with the record it names
    unknown: set[str] = set()
    # Children first: a case names its order and customer, an order its customer. Only records
    # the request named are checked; one a record names is asked for (and checked) next.
    for kind in ("case", "order", "customer"):
        entity = entities.get(kind)
        own = ids[kind]
        if entity is None or own is None or named.get(kind) is None:
            continue
        recorded = answer.get(entity.id_field)
        if recorded is None:
            unknown.add(kind)
            faults.append(
                (
                    None,
                    EntityFault(
                        rule=UNKNOWN,
                        cause=f"{kind} {own!r} is not on record",
                        deny=entity.on_unknown == "deny",
                    ),
                )
            )
            continue
        if str(recorded) != own:
            # The record's own id, not the agent's spelling of it: the case system found the
            # record for what was typed (`a-1`, `Á-1`, `#A1`, `01`, an alias), and totals,
            # budgets and precedent count it under the one key the record answers to.
            ids[kind] = own = _kept(recorded, entity.id_field)
        for parent in entity.belongs_to:
            field = entity.link_field(parent)
            if field not in answer:
                raise ContextError(
                    f"{kind} {own!r} is on record but the context did not say its {parent}"
                    f" ({field}); a provider answers it for every relation the pack declares",
                    field=field,
                )
            linked = answer[field]
            if linked is None:
                continue
            linked = _kept(linked, field)
            if ids[parent] is None:
                ids[parent] = linked
            elif ids[parent] != linked:
                faults.append(
                    (
                        parent,
                        EntityFault(
                            rule=MISMATCH,
                            cause=f"the proposal names {parent} {ids[parent]!r}, but {kind}"
                            f" {own!r} belongs to {parent} {linked!r}",
                            deny=entity.on_mismatch == "deny",
                        ),
                    )
                )
    # A record named that is not on record is unknown, not another record's: an id mistyped
    # (`ct-1` for `CT-1`) is what `on_unknown` says, not a mismatch with its child's link.
    return Resolved(
        customer_id=ids["customer"],
        order_id=ids["order"],
        case_id=ids["case"],
        faults=tuple(fault for named, fault in faults if named not in unknown),
    )


def _kept(value: Any, field: str) -> str:
    """A record's id as its provider answered it, once the store can keep it.

    Raises:
        ContextError: it is longer than a decision's record holds (`proposal.MAX_ID`).
    """
    text = str(value)
    if len(text) > MAX_ID:
        raise ContextError(
            f"context field {field!r} is an id of {len(text)} characters, more than the"
            f" {MAX_ID} a decision keeps; the case system's id cannot be recorded",
            field=field,
        )
    return text


def _tied(
    entities: Mapping[str, Entity], resolved: Resolved, answer: Mapping[str, Any]
) -> Resolved:
    """`resolved`, with a fault when the records it names are not tied together by their links.

    Every relation the pack declares between two of the records must be carried by a chain of
    links the records hold (`case -> customer <- order` ties a case about no order to the
    order). Links that disagree were faulted already; a null link ties nothing.
    """
    kinds = [
        kind
        for kind in ("case", "order", "customer")
        if kind in entities and resolved.get(kind) is not None
    ]
    declared = [
        (kind, parent, answer.get(entities[kind].link_field(parent)) is not None)
        for kind in kinds
        for parent in entities[kind].belongs_to
        if parent in kinds
    ]
    if all(linked for _, _, linked in declared):
        return resolved  # every relation carried by a link of its own: most decisions
    group = {kind: kind for kind in kinds}

    def root(kind: str) -> str:
        while group[kind] != kind:
            kind = group[kind]
        return kind

    for kind, parent, linked in declared:
        if linked:
            group[root(kind)] = root(parent)
    loose = [(kind, parent) for kind, parent, _ in declared if root(kind) != root(parent)]
    if not loose:
        return resolved
    kind, parent = loose[0]
    fault = EntityFault(
        rule=UNLINKED,
        cause=f"no record ties {kind} {resolved.get(kind)!r} to {parent}"
        f" {resolved.get(parent)!r} (their links are null), so the {parent} named stands on the"
        " proposal's word alone",
        deny=False,
    )
    return replace(resolved, faults=(fault,))


def _request(
    action: ActionPolicy,
    fields: tuple[str, ...],
    ids: Resolved,
    item: Normalised,
    now: datetime,
) -> ContextRequest:
    return ContextRequest(
        fields=fields,
        action=action.name,
        customer_id=ids.customer_id,
        case_id=ids.case_id,
        order_id=ids.order_id,
        now=now,
        currency=item.amount.currency if item.amount is not None else None,
        arguments=item.arguments,
    )


def assemble_facts(
    pack: PolicyPack,
    provider: ContextProvider,
    item: Normalised,
    action: ActionPolicy,
    now: datetime,
) -> Facts:
    """The facts `action` reads: from `provider`, and the agent's assertions it reads.

    Assertions are added under `asserted.<name>` (null when the agent left one out): the
    snapshot, and so the lineage, holds them apart from the facts a provider grounds.

    A fact the rules read that is missing or cannot be read is left out of the snapshot, its
    error in `faults`: the caller fails on it (`Facts.whole`), or asks what a hard limit says
    without it (`Pipeline.assess`).

    Raises:
        ContextError: the provider failed, or a record it answered does not say what it is
            linked to.
    """
    facts = _provided_facts(pack, provider, item, action, now)
    if len(action.provided) == len(action.reads) or not pack.asserted:
        return facts
    asserted = asserted_values(action, item.proposal.rationale)
    if not asserted:
        return facts
    return replace(facts, snapshot=facts.snapshot.merged(asserted))


def _provided_facts(
    pack: PolicyPack,
    provider: ContextProvider,
    item: Normalised,
    action: ActionPolicy,
    now: datetime,
) -> Facts:
    """Ask `provider` for exactly the fields `action` reads; check the records; freeze them.

    Raises:
        ContextError: the provider failed, or a record does not say what it is linked to.
    """
    reads = action.provided
    as_named = named(item)
    unreadable: list[ContextError] = []
    # Money facts are in the proposal's currency; beside an amount in a unit, in their own.
    currency = item.amount.currency if item.amount is not None and action.unit is None else None
    if not pack.entities:
        request = _request(action, reads, as_named, item, now)
        snapshot = assemble(
            provider, request, pack.fields, currency=currency, unreadable=unreadable
        )
        return _checked(pack, provider, reads, snapshot, as_named, unreadable)
    fields, wanted = _asked(pack, action)
    request = _request(action, wanted, as_named, item, now)
    snapshot = assemble(
        provider, request, fields, currency=currency, partial=True, unreadable=unreadable
    )
    resolved = _resolve(pack.entities, as_named, snapshot.values)
    if not resolved.faults and resolved != as_named:
        # A record named a customer or an order the proposal left out: the facts are theirs.
        request = _request(action, wanted, resolved, item, now)
        unreadable.clear()
        snapshot = assemble(
            provider,
            request,
            fields,
            currency=currency,
            partial=True,
            unreadable=unreadable,
        )
        again = _resolve(pack.entities, resolved, snapshot.values)
        resolved = again if again.faults else resolved
    if not resolved.faults:
        resolved = _tied(pack.entities, resolved, snapshot.values)
    if resolved.faults:
        # A record not on file, or not the proposal's: its facts are not asked for.
        return Facts(snapshot=snapshot, resolved=resolved)
    return _checked(pack, provider, reads, snapshot, resolved, unreadable)


def _unnamed(
    pack: PolicyPack,
    provider: ContextProvider,
    reads: tuple[str, ...],
    values: Mapping[str, Any],
    resolved: Resolved,
) -> dict[str, str]:
    """The facts `reads` asks of records the proposal does not name, and no named one links.

    By name to the record (one of them) it is held for: the one its name begins with
    (`order.total`), else those its provider files it under (`records_of`: `booking.fare`
    held for orders). A record the named ones say they have none of (a case about no order)
    is not among them: its facts are absent, not unknown.
    """
    unnamed: dict[str, frozenset[str]] = {}
    for name in reads:
        if name in values:
            continue
        kind = name.partition(".")[0]
        kinds = (
            frozenset((kind,))
            if kind in pack.entities
            else records_of(provider, name) & pack.entities.keys()
        )
        if kinds and all(resolved.get(k) is None for k in kinds):
            unnamed[name] = kinds
    if not unnamed:
        return {}
    none_of = {
        parent
        for entity in pack.entities.values()
        if resolved.get(entity.kind) is not None
        for parent in entity.belongs_to
        if entity.link_field(parent) in values and values[entity.link_field(parent)] is None
    }
    return {name: min(kinds) for name, kinds in unnamed.items() if not kinds & none_of}


def _checked(
    pack: PolicyPack,
    provider: ContextProvider,
    reads: tuple[str, ...],
    snapshot: Snapshot,
    resolved: Resolved,
    unreadable: list[ContextError],
) -> Facts:
    """The facts, with what is wrong with them: every fact the rules read must be there.

    A fact of a record the proposal does not name (an order's, when it names none and no record
    it names links one) is not absent but unknown, optional or not: it cannot be read.
    """
    values = snapshot.values
    unnamed = _unnamed(pack, provider, reads, values, resolved) if pack.entities else {}
    missing = [
        n for n in reads if n not in values and not pack.fields[n].nullable and n not in unnamed
    ]
    if not unreadable and not missing and not unnamed:
        return Facts(snapshot=snapshot, resolved=resolved)
    bad = {exc.field for exc in unreadable}
    faults = [
        *unreadable,
        *(
            ContextError(f"context field {name!r} is missing", field=name)
            for name in missing
            if name not in bad
        ),
        *(
            ContextError(
                f"context field {name!r} cannot be read: the proposal names no"
                f" {kind}, and no record it names links one",
                field=name,
            )
            for name, kind in unnamed.items()
            if name not in bad
        ),
    ]
    return Facts(
        snapshot=snapshot,
        resolved=resolved,
        faults=tuple(faults),
        unreadable=tuple(name for name in bad if name is not None),
        unnamed=tuple(unnamed),
    )
