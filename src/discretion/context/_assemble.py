from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from discretion.context._providers import ContextProvider, ContextRequest
from discretion.errors import ContextError, CurrencyMismatch, ProposalError
from discretion.lineage import canonical_json, is_text, text_digest
from discretion.money import Money, SignedMoney, parse_decimal, scaled
from discretion.policy._records import RecordError, RecordFieldSpec, Structured, read_structured
from discretion.policy._schema import FieldSpec

__all__ = ["Snapshot", "assemble"]


class Snapshot:
    """The frozen facts a decision is made on.

    Its JSON form and digest are made when first read: a snapshot that is only an intermediate
    (facts before the ledger's totals join them) never pays for them.
    """

    __slots__ = ("_canonical", "_data", "_digest", "values")

    values: Mapping[str, Any]
    """Field name to typed value (`Money`, aware `datetime`, ...); `None` for a null fact."""

    def __init__(self, *, values: Mapping[str, Any]) -> None:
        self.values = MappingProxyType(dict(values))
        self._data: Mapping[str, Any] | None = None
        self._digest: str | None = None
        self._canonical: str | None = None

    @property
    def data(self) -> Mapping[str, Any]:
        """The same facts in JSON form, as recorded in the lineage."""
        if self._data is None:
            data = {
                name: value if type(value) in _JSON_PLAIN else _json(value)
                for name, value in sorted(self.values.items())
            }
            self._data = MappingProxyType(data)
        return self._data

    @property
    def canonical(self) -> str:
        """The canonical JSON of `data`: what `digest` hashes and the lineage records."""
        if self._canonical is None:
            # Typed facts: a float is only ever a duration's seconds, finite.
            self._canonical = canonical_json(dict(self.data), finite=True)
        return self._canonical

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON of `data`."""
        if self._digest is None:
            self._digest = text_digest(self.canonical)
        return self._digest

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and self.data == other.data

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"Snapshot(values={dict(self.values)!r})"

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Snapshot:
        """Freeze typed values into a snapshot."""
        return cls(values=values)

    @classmethod
    def thaw(cls, data: Mapping[str, Any], fields: Mapping[str, FieldSpec]) -> Snapshot:
        """A snapshot back from the JSON the lineage recorded, typed as `fields` declare.

        Raises:
            ContextError: a recorded fact no longer fits the type a field now declares.
        """
        return cls.of(
            {
                name: value
                if value is None or name not in fields
                else _typed(name, fields[name], value, None)
                for name, value in data.items()
            }
        )

    def merged(self, values: Mapping[str, Any]) -> Snapshot:
        """This snapshot with `values` added (or replaced), frozen and digested anew."""
        return Snapshot.of({**self.values, **values})

    def cel_values(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """The facts as CEL sees them: money in minor units, nulls left unbound.

        `names`: only these facts (those an action's programs declare; the rest, such as the
        records' links, no expression can read), each left out when the snapshot lacks it.
        """
        out: dict[str, Any] = {}
        values = self.values
        pairs = (
            values.items()
            if names is None
            else ((name, values[name]) for name in names if name in values)
        )
        for name, value in pairs:
            if value is None:
                continue
            # Most facts are plain; an exact type check skips the rest (Money's isinstance goes
            # through pydantic's metaclass and costs several times more).
            out[name] = value if type(value) in _PLAIN else _cel_value(value)
        return out


_PLAIN = frozenset({str, bool, int, datetime, timedelta})
_JSON_PLAIN = frozenset({str, bool, int, type(None)})


def _cel_value(value: Any) -> Any:
    if isinstance(value, Money):
        return value.minor
    if isinstance(value, Structured):
        return value.to_cel()  # records as messages (a list of records is a tuple)
    if isinstance(value, tuple):
        return list(value)  # CEL takes lists, not tuples
    if isinstance(value, SignedMoney):
        return value.minor
    if isinstance(value, Decimal):
        return scaled(value)  # an int of the field's declared places
    return value


_JSON_EXACT: dict[type, Callable[[Any], Any]] = {
    Money: Money.to_json,
    datetime: datetime.isoformat,
}
"""The JSON form of a fact's value, by its exact type, for the common kinds (see `_json`)."""


def _json(value: Any) -> Any:
    # Money and timestamps by their exact type first: most facts that are not plain are one of
    # the two, and the isinstance tests below cost more than the conversion.
    convert = _JSON_EXACT.get(type(value))
    if convert is not None:
        return convert(value)
    if isinstance(value, (Money, SignedMoney, Structured)):
        return value.to_json()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, tuple):
        return list(value)
    return value


def _bad(name: str, value: Any, expected: str) -> ContextError:
    return ContextError(
        f"context field {name!r} should be {expected}, got {type(value).__name__} {value!r:.60}",
        field=name,
    )


def _typed(name: str, spec: FieldSpec, value: Any, currency: str | None) -> Any:
    kind = spec.type
    if kind == "string":
        if not isinstance(value, str) or not is_text(value):
            raise _bad(name, value, "a string")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(name, value, "an int")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad(name, value, "a bool")
        return value
    if kind == "money" and not spec.signed:
        try:
            money = Money.read(value)
        except ProposalError as exc:
            # The shape is money; its amount is not (too many places, not a number): say so.
            why = str(exc).removeprefix("amount: ")
            raise ContextError(
                f"context field {name!r} is not money it can hold: {why}", field=name
            ) from None
        except ValueError:
            example = f"{{'amount': '12.50', 'currency': '{currency or 'USD'}'}}"
            raise _bad(name, value, f"money ({example})") from None
        if currency is not None and money.currency != currency:
            raise CurrencyMismatch(
                f"currency mismatch: context field {name!r} is in {money.currency} but the"
                f" proposal is in {currency};"
                " amounts in different currencies are never compared",
                field=name,
                currency=money.currency,
            )
        return money
    if kind == "timestamp":
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise _bad(name, value, "an ISO 8601 timestamp") from None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise _bad(name, value, "an aware timestamp (with a UTC offset)")
        return value
    if kind == "duration":
        if isinstance(value, timedelta):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return timedelta(seconds=value)
        raise _bad(name, value, "a duration (seconds or timedelta)")
    if kind == "list[string]":
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, str) and is_text(v) for v in value
        ):
            raise _bad(name, value, "a list of strings")
        return tuple(value)
    if kind == "money":
        try:
            signed = SignedMoney.of(value if isinstance(value, (dict, SignedMoney)) else {}, "")
        except (ProposalError, ValueError):
            raise _bad(name, value, "money ({'amount': '-12.50', 'currency': 'USD'})") from None
        if currency is not None and signed.currency != currency:
            raise CurrencyMismatch(
                f"currency mismatch: context field {name!r} is in {signed.currency} but the"
                f" proposal is in {currency}; amounts in different currencies are never compared",
                field=name,
                currency=signed.currency,
            )
        return signed
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise _bad(name, value, 'a decimal number written as a string ("1.5") or an int')
        try:
            return parse_decimal(value, spec.places or 0, field=name)
        except ProposalError as exc:
            raise ContextError(f"context field {exc}", field=name) from None
    if kind == "list[int]":
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise _bad(name, value, "a list of ints")
        return tuple(value)
    if isinstance(spec, RecordFieldSpec):
        try:
            return read_structured(spec.record, spec.is_list, value, currency, name)
        except RecordError as exc:
            if exc.currency is not None:
                raise CurrencyMismatch(
                    f"context field {exc}", field=name, currency=exc.currency
                ) from None
            raise ContextError(f"context field {exc}", field=name) from None
    raise ContextError(f"context field {name!r} has unknown type {kind!r}", field=name)


def assemble(
    provider: ContextProvider,
    request: ContextRequest,
    fields: Mapping[str, FieldSpec],
    *,
    currency: str | None,
    partial: bool = False,
    unreadable: list[ContextError] | None = None,
) -> Snapshot:
    """Fetch exactly `request.fields`, type-check each, and freeze them.

    Args:
        provider: where the facts come from.
        request: what to ask for.
        fields: the type of every requested field.
        currency: the proposal's currency; money facts must be in it.
        partial: leave a missing fact out of the snapshot instead of failing (the caller
            decides what a missing fact means, as a check that a record exists does).
        unreadable: when given, a fact that cannot be read (ill-typed, money in another
            currency) is left out and its error added here instead of raised, and a missing
            one that may not be null is left out: what the facts that can be read still
            decide is for the caller to say.

    Raises:
        ContextError: the provider failed, or a non-nullable fact is missing or ill-typed; the
            error names the field.
    """
    try:
        answer = provider.fetch(request)
    except ContextError:
        raise
    except Exception as exc:
        # Whatever else a provider raises, one of discretion's own errors included, is a fact
        # that could not be read: the decision routes, with the cause on record.
        raise ContextError(f"context provider failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(answer, Mapping):
        raise ContextError(
            f"context provider answered {type(answer).__name__}, not a mapping of field names"
            " to values; its fetch must return one"
        )
    values: dict[str, Any] = {}
    for name in request.fields:
        spec = fields[name]
        value = answer.get(name)
        if value is None:
            if partial and name not in answer:
                continue
            if not spec.nullable:
                if unreadable is not None:
                    continue
                raise ContextError(f"context field {name!r} is missing", field=name)
            values[name] = None
            continue
        try:
            values[name] = _typed(name, spec, value, currency)
        except ContextError as exc:
            if unreadable is None:
                raise
            unreadable.append(exc)
    return Snapshot.of(values)
