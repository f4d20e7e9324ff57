"""Records: structured facts and arguments with typed fields, seen by CEL as protobuf messages.

CEL type-checks field access only on message types, so each record type a pack declares is
compiled into a protobuf message (one descriptor pool per pack): `order.items.exists(i,
i.category == 'shoes')` fails at load when `category` is not a field of `item`, or when it is
compared with an int. A provider (or a tool call) gives a record as a JSON object; it is read
field by field into typed values (`Record`), which the snapshot records as canonical JSON and
CEL reads as a message: money and decimals as ints, timestamps and durations as such.

Every field of a record is required unless declared `nullable`: a member CEL reads as a
default (`""`, `0`, the epoch) when it is missing would decide on a value nobody gave, so a
missing or null member is an error. A nullable member is never read as a default either: a
string, int, bool, money or decimal one is a protobuf wrapper (CEL reads an unset one as
`null`, which compares unequal to any value and fails any other use), and a timestamp,
duration or record one is a `google.protobuf.Any` (an unset one fails every use). Either way
`has()` tests it, and a rule that reads one without a value cannot be decided, so it routes.
Fields a record does not declare are dropped (least context).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cel_expr_python import cel
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    message_factory,
    timestamp_pb2,
    wrappers_pb2,
)
from pydantic import ConfigDict, Field, ValidationError

from discretion.errors import ProposalError
from discretion.lineage import is_text
from discretion.money import Money, SignedMoney, parse_decimal, scaled
from discretion.policy._schema import ArgSpec, FieldSpec

__all__ = [
    "MEMBER_TYPES",
    "Record",
    "RecordArgSpec",
    "RecordError",
    "RecordFieldSpec",
    "RecordList",
    "RecordMember",
    "RecordType",
    "Structured",
    "build_records",
    "descriptor_pool_of",
    "read_structured",
    "record_name",
]

_PACKAGE = "discretion.records"
MEMBER_TYPES = (
    "string",
    "int",
    "bool",
    "money",
    "decimal",
    "timestamp",
    "duration",
    "list[string]",
    "list[int]",
)
"""The scalar types a record's field may have; besides, another record or a list of them."""

_F = descriptor_pb2.FieldDescriptorProto
_NULLABLE_PROTO = {
    "string": ".google.protobuf.StringValue",
    "int": ".google.protobuf.Int64Value",
    "bool": ".google.protobuf.BoolValue",
    "money": ".google.protobuf.Int64Value",
    "decimal": ".google.protobuf.Int64Value",
}
"""A nullable scalar member's wrapper type; any other nullable member is an `Any`."""
_SCALAR_PROTO = {
    "string": (_F.TYPE_STRING, None),
    "int": (_F.TYPE_INT64, None),
    "bool": (_F.TYPE_BOOL, None),
    "money": (_F.TYPE_INT64, None),
    "decimal": (_F.TYPE_INT64, None),
    "timestamp": (_F.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
    "duration": (_F.TYPE_MESSAGE, ".google.protobuf.Duration"),
    "list[string]": (_F.TYPE_STRING, None),
    "list[int]": (_F.TYPE_INT64, None),
}


class RecordError(ValueError):
    """A value does not fit its record type; the message names the member path."""

    def __init__(self, message: str, *, currency: str | None = None) -> None:
        super().__init__(message)
        self.currency = currency
        """The currency of money in another currency than the proposal's, when that is why."""


def record_name(kind: str) -> tuple[str, bool]:
    """The record type a field type names, and whether it is a list of them (`list[item]`)."""
    if kind.startswith("list[") and kind.endswith("]"):
        return kind[5:-1], True
    return kind, False


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordMember:
    """One field of a record type."""

    name: str
    type: str
    """A scalar of `MEMBER_TYPES`, a record type's name, or `list[<record>]`."""
    places: int | None = None
    signed: bool = False
    nullable: bool = False
    """A record may leave it null or out; CEL reads it as a wrapper or an `Any` (see above)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordType:
    """A compiled record type: its fields, and the message CEL sees it as."""

    name: str
    members: tuple[RecordMember, ...]
    message: Any = field(repr=False)
    """The generated protobuf message class."""
    cel_type: Any = field(repr=False)
    resolve: Callable[[str], RecordType] = field(repr=False)
    """The pack's other record types, by name, for nested members."""
    nullable: frozenset[str] = frozenset()
    """The names of its nullable members."""

    def read(self, value: Any, currency: str | None, where: str) -> Record:
        """Read a JSON object (or a `Record`) into typed members.

        Raises:
            RecordError: a member is missing, null or of another type; money in another
                currency than `currency`.
        """
        if isinstance(value, Record) and value.type is self:
            return value
        if not isinstance(value, Mapping):
            raise RecordError(f"{where}: {_kind(value)} where a {self.name} record belongs")
        members: dict[str, Any] = {}
        for member in self.members:
            path = f"{where}.{member.name}"
            raw = value.get(member.name)
            if raw is None:
                if member.nullable:
                    members[member.name] = None
                    continue
                raise RecordError(f"{path} is missing; every field of a {self.name} is required")
            members[member.name] = self._member(member, raw, currency, path)
        return Record(type=self, values=members)

    def _member(self, member: RecordMember, raw: Any, currency: str | None, path: str) -> Any:
        value = self._typed(member, raw, currency, path)
        # CEL holds numbers in 64 bits: one that does not fit is refused here, never wrapped
        # or left to fail while the rules run.
        for number in _numbers(value, member.places or 0):
            if not _INT64[0] <= number <= _INT64[1]:
                raise RecordError(f"{path}: {raw!r} is too large for a rule to compare")
        return value

    def _typed(self, member: RecordMember, raw: Any, currency: str | None, path: str) -> Any:
        kind = member.type
        if kind in ("string", "bool", "int"):
            expected = {"string": str, "bool": bool, "int": int}[kind]
            if (
                not isinstance(raw, expected)
                or (kind == "int" and isinstance(raw, bool))
                or (isinstance(raw, str) and not is_text(raw))
            ):
                raise RecordError(f"{path}: {_kind(raw)} where {_article(kind)} belongs")
            return raw
        if kind in ("list[string]", "list[int]"):
            element = str if kind == "list[string]" else int
            if not isinstance(raw, (list, tuple)) or not all(
                isinstance(v, element)
                and not isinstance(v, bool)
                and (not isinstance(v, str) or is_text(v))
                for v in raw
            ):
                raise RecordError(f"{path}: {_kind(raw)} where {_article(kind)} belongs")
            return tuple(raw)
        try:
            if kind == "money":
                return _money(raw, member.signed, currency, path)
            if kind == "decimal":
                if isinstance(raw, (bool, float, Mapping, list, tuple)):
                    raise RecordError(f"{path}: {_kind(raw)} where a decimal string belongs")
                return parse_decimal(raw, member.places or 0, field=path)
        except ProposalError as exc:
            raise RecordError(str(exc)) from None
        if kind == "timestamp":
            moment = raw
            if isinstance(raw, str):
                try:
                    moment = datetime.fromisoformat(raw)
                except ValueError:
                    moment = None
            if not isinstance(moment, datetime) or moment.tzinfo is None:
                raise RecordError(f"{path}: {_kind(raw)} where an aware ISO 8601 timestamp belongs")
            return moment
        if kind == "duration":
            if isinstance(raw, timedelta):
                return raw
            if isinstance(raw, int) and not isinstance(raw, bool):
                return timedelta(seconds=raw)
            if isinstance(raw, float) and raw.is_integer():
                return timedelta(seconds=int(raw))  # as a snapshot records it
            raise RecordError(f"{path}: {_kind(raw)} where a duration in whole seconds belongs")
        name, is_list = record_name(kind)
        nested = self.resolve(name)
        if not is_list:
            return nested.read(raw, currency, path)
        if not isinstance(raw, (list, tuple)):
            raise RecordError(f"{path}: {_kind(raw)} where a list of {name} records belongs")
        return RecordList(nested.read(item, currency, f"{path}[{i}]") for i, item in enumerate(raw))


_INT64 = (-(2**63), 2**63 - 1)


def _numbers(value: Any, places: int) -> list[int]:
    """The integers CEL would hold for a member's value (minor units, scaled decimals, ints)."""
    if isinstance(value, (Money, SignedMoney)):
        return [value.minor]
    if isinstance(value, Decimal):
        return [int(value.scaleb(places))]
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, tuple):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    return []


def _money(raw: Any, signed: bool, currency: str | None, path: str) -> Money | SignedMoney:
    if not isinstance(raw, Mapping):
        raise RecordError(f"{path}: money is {{'amount': '12.50', 'currency': 'USD'}}")
    money: Money | SignedMoney
    try:
        money = SignedMoney.of(dict(raw), "", field=path) if signed else Money.model_validate(raw)
    except ValidationError as exc:
        faults = "; ".join(str(error.get("msg")) for error in exc.errors())
        raise RecordError(
            f"{path}: money is {{'amount': '12.50', 'currency': 'USD'}} and nothing else ({faults})"
        ) from None
    if currency is not None and money.currency != currency:
        raise RecordError(
            f"currency mismatch: {path} is in {money.currency} but the proposal is in"
            f" {currency}; amounts in different currencies are never compared",
            currency=money.currency,
        )
    return money


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def _article(kind: str) -> str:
    return {
        "string": "a string",
        "bool": "true or false",
        "int": "a whole number",
        "list[string]": "a list of strings",
        "list[int]": "a list of whole numbers",
    }[kind]


class Structured(ABC):
    """A typed structured value: recorded as JSON, read by CEL as messages.

    `Record` and `RecordList` are the two kinds; code that meets a fact or argument asks
    `isinstance(value, Structured)` rather than naming both.
    """

    __slots__ = ()

    @abstractmethod
    def to_json(self) -> Any:
        """The value as canonical JSON (money as strings, timestamps in ISO 8601)."""

    @abstractmethod
    def to_cel(self) -> Any:
        """The value as CEL reads it."""


@dataclass(frozen=True, slots=True)
class Record(Structured):
    """One record, its members typed as its `RecordType` declares."""

    type: RecordType
    values: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The record as JSON."""
        return {name: _json(value) for name, value in self.values.items()}

    def to_cel(self) -> Any:
        """The record as its protobuf message."""
        message = self.type.message()
        nullable = self.type.nullable
        for name, value in self.values.items():
            if name in nullable:
                if value is not None:
                    _set_nullable(getattr(message, name), value)
                continue
            target = getattr(message, name)
            if isinstance(value, (Money, SignedMoney)):
                setattr(message, name, value.minor)
            elif isinstance(value, Decimal):
                setattr(message, name, scaled(value))
            elif isinstance(value, datetime):
                target.FromDatetime(value)
            elif isinstance(value, timedelta):
                target.FromTimedelta(value)
            elif isinstance(value, Record):
                target.CopyFrom(value.to_cel())
            elif isinstance(value, RecordList):
                target.extend(item.to_cel() for item in value)
            elif isinstance(value, tuple):
                target.extend(value)
            else:
                setattr(message, name, value)
        return message


def _set_nullable(target: Any, value: Any) -> None:
    """Set a nullable member's wrapper (scalars) or `Any` (timestamps, durations, records)."""
    if isinstance(value, (Money, SignedMoney)):
        target.value = value.minor
    elif isinstance(value, Decimal):
        target.value = scaled(value)
    elif isinstance(value, datetime):
        moment = timestamp_pb2.Timestamp()
        moment.FromDatetime(value)
        target.Pack(moment)
    elif isinstance(value, timedelta):
        span = duration_pb2.Duration()
        span.FromTimedelta(value)
        target.Pack(span)
    elif isinstance(value, Record):
        target.Pack(value.to_cel())
    else:
        target.value = value


class RecordList(tuple[Record, ...], Structured):
    """A list of records of one type."""

    __slots__ = ()

    def to_json(self) -> list[Any]:
        """The records as a JSON list."""
        return [item.to_json() for item in self]

    def to_cel(self) -> list[Any]:
        """The records as a list of messages."""
        return [item.to_cel() for item in self]


def _json(value: Any) -> Any:
    if isinstance(value, (Money, SignedMoney)):
        return value.to_json()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Structured):
        return value.to_json()
    if isinstance(value, tuple):
        return list(value)
    return value


def build_records(declared: Mapping[str, tuple[RecordMember, ...]]) -> dict[str, RecordType]:
    """Compile record types (their names and members already checked) into messages.

    One descriptor pool per call: two packs may each declare an `item` of their own.
    """
    pool = descriptor_pool.DescriptorPool()
    files = (timestamp_pb2, duration_pb2, wrappers_pb2, any_pb2)
    for file in files:
        pool.AddSerializedFile(file.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
        name="discretion_records.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=[file.DESCRIPTOR.name for file in files],
    )
    for name, members in declared.items():
        message = proto.message_type.add(name=name)
        for number, member in enumerate(members, start=1):
            if member.nullable:
                message.field.add(
                    name=member.name,
                    number=number,
                    type=_F.TYPE_MESSAGE,
                    type_name=_NULLABLE_PROTO.get(member.type, ".google.protobuf.Any"),
                    label=_F.LABEL_OPTIONAL,
                )
                continue
            if member.type in _SCALAR_PROTO:
                kind, type_name = _SCALAR_PROTO[member.type]
                repeated = member.type.startswith("list[")
            else:
                nested, repeated = record_name(member.type)
                kind, type_name = _F.TYPE_MESSAGE, f".{_PACKAGE}.{nested}"
            added = message.field.add(
                name=member.name,
                number=number,
                type=kind,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if type_name is not None:
                added.type_name = type_name
            elif not repeated:
                # Explicit presence: every member is set, so `has(item.quantity)` holds for a
                # quantity of 0 as for 3 (proto3 alone would call a zero value absent).
                added.proto3_optional = True
                added.oneof_index = len(message.oneof_decl)
                message.oneof_decl.add(name=f"_{member.name}")
    pool.Add(proto)
    types: dict[str, RecordType] = {}
    for name, members in declared.items():
        descriptor = pool.FindMessageTypeByName(f"{_PACKAGE}.{name}")
        types[name] = RecordType(
            name=name,
            members=members,
            message=message_factory.GetMessageClass(descriptor),
            cel_type=cel.Type(f"{_PACKAGE}.{name}"),
            resolve=types.__getitem__,
            nullable=frozenset(member.name for member in members if member.nullable),
        )
    return types


def descriptor_pool_of(types: Mapping[str, RecordType]) -> Any:
    """The descriptor pool the record types were built in (None without records)."""
    for record in types.values():
        return record.message.DESCRIPTOR.file.pool
    return None


def read_structured(
    record: RecordType, is_list: bool, value: Any, currency: str | None, where: str
) -> Record | RecordList:
    """Read a record, or a list of them, from JSON.

    Raises:
        RecordError: naming the member at fault.
    """
    if not is_list:
        return record.read(value, currency, where)
    if isinstance(value, RecordList):
        return value
    if not isinstance(value, (list, tuple)):
        raise RecordError(f"{where}: {_kind(value)} where a list of {record.name} records belongs")
    return RecordList(record.read(item, currency, f"{where}[{i}]") for i, item in enumerate(value))


_COMPILED = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class RecordFieldSpec(FieldSpec):
    """A context field of a record type, with the compiled type attached."""

    model_config = _COMPILED

    record: RecordType = Field(exclude=True)
    is_list: bool = Field(default=False, exclude=True)


class RecordArgSpec(ArgSpec):
    """A tool argument of a record type, with the compiled type attached."""

    model_config = _COMPILED

    record: RecordType = Field(exclude=True)
    is_list: bool = Field(default=False, exclude=True)
