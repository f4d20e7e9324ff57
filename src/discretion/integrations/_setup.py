"""Fail closed on set-up: what an integration refuses to wrap, before any call is made.

A tool reaches an agent governed, or listed by the pack as read-only (`ungoverned_tools`); never
silently ungoverned. When a tool is wrapped (`Guard.wrap_tools`, `@guard.governed`,
`OpenAITools`, the middleware's `tools=`) each is checked against the pack:

- a tool the pack neither maps nor lists, with no `action=` given, is refused;
- an `action=` or `tool=` the pack does not define is refused (a typo would route every call);
- a mapping that names an argument the tool does not take is refused (the amount would never
  be read, and the call decided on nothing).

`discretion pack validate --tools module:attr` runs the same checks offline.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discretion.errors import ConfigurationError
from discretion.pipeline._normalise import currency_paths
from discretion.policy import CURRENCY_ARGUMENTS, PolicyPack, ToolSpec

__all__ = [
    "SchemaParameters",
    "check_tool",
    "check_tools",
    "declared_mapping",
    "parameters_of",
    "read_schema",
    "schema_parameters",
]

_MAX_DEPTH = 16
"""How deep nested objects of a schema are read; deeper ones are read no further."""
_MAX_NAMES = 5000
"""The most argument names, nested ones too, a tool's schema is read for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SchemaParameters:
    """The arguments a tool's JSON schema lists."""

    names: frozenset[str]
    """Every argument it names, those nested in an object dotted (`refund.amount`)."""
    is_closed: bool
    """Whether it takes no other top-level argument: `additionalProperties` absent or false
    (in every branch of a union)."""


class UnreadableSchema(ValueError):
    """A tool's schema is in a shape whose arguments cannot be listed."""


def _resolved(schema: Any, root: Mapping[str, Any], seen: tuple[str, ...]) -> Mapping[str, Any]:
    """`schema`, with a `$ref` into the root's `$defs` (or `definitions`) followed."""
    if not isinstance(schema, Mapping):
        raise UnreadableSchema(f"a schema is {type(schema).__name__}, not an object")
    ref = schema.get("$ref")
    if ref is None:
        return schema
    if not isinstance(ref, str) or ref in seen:
        raise UnreadableSchema(f"$ref {ref!r} cannot be followed")
    target: Any = root
    if not ref.startswith("#/"):
        raise UnreadableSchema(f"$ref {ref!r} points outside the schema")
    for part in ref[2:].split("/"):
        if not isinstance(target, Mapping) or part not in target:
            raise UnreadableSchema(f"$ref {ref!r} names nothing in the schema")
        target = target[part]
    # Keywords beside a $ref apply too (JSON Schema 2019-09 and later).
    extra = {key: value for key, value in schema.items() if key != "$ref"}
    resolved = _resolved(target, root, (*seen, ref))
    return {**resolved, **extra} if extra else resolved


def _object(
    schema: Any, root: Mapping[str, Any], seen: tuple[str, ...] = ()
) -> tuple[dict[str, Any], bool] | None:
    """The properties an object schema lists and whether it is closed; None for no object.

    `allOf` branches are merged; `anyOf` and `oneOf` give the union of their branches'
    properties, closed only when every branch is.

    Raises:
        UnreadableSchema: a `$ref` that cannot be followed, or a shape not read here.
    """
    schema = _resolved(schema, root, seen)
    properties: dict[str, Any] = {}
    found = False
    listed = schema.get("properties")
    if listed is not None:
        if not isinstance(listed, Mapping):
            raise UnreadableSchema("properties is not an object")
        properties.update(listed)
        found = True
    for keyword in _UNREAD_KEYWORDS:
        if keyword in schema:
            raise UnreadableSchema(f"{keyword} is not read (its arguments cannot be listed)")
    # An MCP tool's schema lists what its function takes: closed unless it says otherwise.
    is_closed = schema.get("additionalProperties", False) is False and not schema.get(
        "patternProperties"
    )
    for branch in _branches(schema, "allOf"):
        read = _object(branch, root, seen)
        if read is not None:
            properties.update(read[0])
            is_closed = is_closed or read[1]
            found = True
    for keyword in ("anyOf", "oneOf"):
        branches = _branches(schema, keyword)
        if not branches:
            continue
        read_all = [_object(branch, root, seen) for branch in branches]
        objects = [read for read in read_all if read is not None]
        if not objects:
            continue
        for read in objects:
            properties.update(read[0])
        found = True
        is_closed = is_closed or all(read[1] for read in objects)
    if not found:
        return None
    return properties, is_closed


_UNREAD_KEYWORDS = ("if", "then", "else", "dependentSchemas", "dependencies")
"""Keywords that may list arguments conditionally: a schema using them is not read."""


def _branches(schema: Mapping[str, Any], keyword: str) -> list[Any]:
    branches = schema.get(keyword)
    if branches is None:
        return []
    if not isinstance(branches, list):
        raise UnreadableSchema(f"{keyword} is not a list")
    return branches


def _names(
    properties: Mapping[str, Any],
    root: Mapping[str, Any],
    depth: int,
    path: frozenset[str] = frozenset(),
) -> set[str]:
    """Every argument name `properties` lists, nested ones dotted (`refund.amount`).

    A `$ref` already followed on the way down (a tree of `Node`s) is not followed again: its
    names were listed above, and a schema referring to itself twice would list them without end.
    """
    names = set(properties)
    if depth >= _MAX_DEPTH:
        return names
    for name, schema in properties.items():
        ref = schema.get("$ref") if isinstance(schema, Mapping) else None
        if isinstance(ref, str) and ref in path:
            continue
        try:
            nested = _object(schema, root)
        except UnreadableSchema:
            continue  # a value the tool takes whole; its own keys are not arguments
        if nested is not None:
            inner = _names(nested[0], root, depth + 1, path | {ref} if ref else path)
            names |= {f"{name}.{each}" for each in inner}
        if len(names) > _MAX_NAMES:
            raise UnreadableSchema(f"it lists more than {_MAX_NAMES} arguments, nested ones too")
    return names


def schema_parameters(schema: Mapping[str, Any]) -> SchemaParameters | None:
    """The arguments a tool's JSON schema (an object schema) lists.

    Reads `properties`, follows `$ref`s into `$defs`, merges `allOf`, and takes the union of
    `anyOf` and `oneOf` branches. None when the schema lists no properties at all (it takes
    any arguments).

    Raises:
        UnreadableSchema: the schema lists arguments in a shape not read here (a `$ref` outside
            it, a union whose branches cannot be read).
    """
    read = _object(schema, schema)
    if read is None:
        return None
    properties, is_closed = read
    return SchemaParameters(names=frozenset(_names(properties, schema, 1)), is_closed=is_closed)


_DEFAULT_FIELDS = {
    "amount": "amount",
    "currency": "currency",
    "customer": "customer_id",
    "case": "case_id",
    "order": "order_id",
}


def _where(pack: PolicyPack) -> str:
    sources = [Path(source) for source in pack.sources]
    if len(sources) == 1:
        return str(sources[0])
    folders = {source.parent for source in sources}
    return str(folders.pop()) if len(folders) == 1 else ", ".join(map(str, sources))


def declared_mapping(tool: str, fields: Mapping[str, str] | None) -> ToolSpec:
    """The mapping an integration declares for a tool the pack does not map (`action=`)."""
    names = _DEFAULT_FIELDS | dict(fields or {})
    return ToolSpec(
        name=tool,
        amount=names["amount"],
        currency=names["currency"],
        customer=names["customer"],
        case=names["case"],
        order=names["order"],
    )


def read_schema(tool: str, schema: Any) -> SchemaParameters | None:
    """The arguments tool `tool`'s JSON schema lists (see `schema_parameters`).

    Raises:
        ConfigurationError: the schema lists its arguments in a shape that cannot be read, so
            the tool cannot be checked against the pack.
    """
    if not isinstance(schema, Mapping):
        raise ConfigurationError(
            f"tool {tool!r}: its argument schema is {type(schema).__name__}, not a JSON object"
            " schema, so what it takes cannot be checked against the pack; give it one"
        )
    try:
        return schema_parameters(schema)
    except UnreadableSchema as exc:
        raise ConfigurationError(
            f"tool {tool!r}: its argument schema cannot be read ({exc}), so a currency or an"
            " argument the pack does not read could reach it unchecked. Give the tool a schema"
            " with its arguments under properties (allOf, anyOf, oneOf and $ref into $defs"
            " are read), or leave it out"
        ) from None


def parameters_of(tool: object) -> frozenset[str] | None:
    """The argument names a tool takes, or None when it takes any (`**kwargs`) or cannot tell.

    Reads a langchain-core tool's argument schema, or a function's signature.
    """
    if hasattr(tool, "args_schema"):  # a langchain-core tool
        args = getattr(tool, "args", None)
        return frozenset(args) if isinstance(args, Mapping) else None
    if not callable(tool):
        return None
    try:
        signature = inspect.signature(tool)
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return frozenset(signature.parameters)


def _listed(parameters: Collection[str]) -> str:
    """The top-level arguments of `parameters`, for messages."""
    return ", ".join(sorted(name for name in parameters if "." not in name)) or "nothing"


def _missing(spec: ToolSpec, parameters: Collection[str], only: Collection[str]) -> list[str]:
    missing = []
    for part in only:
        path: str | None = getattr(spec, part)
        if path is not None and path.split(".", 1)[0] not in parameters:
            missing.append(f"{part} ({path!r})")
    return missing


def _unread(spec: ToolSpec, parameters: Collection[str]) -> tuple[str, str, str] | None:
    """An argument named as a currency or an id that `spec` reads from another argument.

    (what it names, the argument, the one read instead); None when there is none.
    """
    names = {
        "currency": currency_paths(spec.amount) if spec.amount else CURRENCY_ARGUMENTS,
        **{part: (part, f"{part}_id") for part in _ID_PARTS},
    }
    for part, candidates in names.items():
        path: str | None = getattr(spec, part)
        read = {path, path.split(".", 1)[0]} if path is not None else set()
        for name in candidates:
            if name in parameters and name not in read:
                return part, name, path or "-"
    return None


def check_tool(
    pack: PolicyPack,
    tool: str,
    parameters: Collection[str] | None,
    *,
    action: str | None = None,
    fields: Mapping[str, str] | None = None,
) -> bool:
    """Whether calls to `tool` are decided; refuse a tool that would run ungoverned or blind.

    Args:
        pack: the pack the tool is governed by.
        tool: the tool's name.
        parameters: the argument names it takes (nested ones dotted, `refund.amount`, when
            they are known), or None when it takes any.
        action: the action an integration governs the tool under, when the pack does not map it.
        fields: with `action`: which arguments carry the amount, currency and ids.

    Raises:
        ConfigurationError: naming the pack file and the fix.
    """
    where = f"pack {pack.name!r} ({_where(pack)})"
    mapped = pack.tools.get(tool)
    if action is not None and action not in pack.actions:
        raise ConfigurationError(
            f"tool {tool!r}: action {action!r} is not an action of {where}; actions:"
            f" {', '.join(pack.actions)}. Fix the action= you gave"
        )
    if mapped is not None:
        mapped_action, spec = mapped
        if action is not None and action != mapped_action:
            raise ConfigurationError(
                f"tool {tool!r}: {where} maps it to {mapped_action!r}, not {action!r};"
                " leave action= out, or give it the action the pack maps"
            )
        if spec.amount is None:
            # An integration's proposal is the call alone: with no amount to read, every call
            # would be refused ("moves money but no amount was given").
            raise ConfigurationError(
                f"tool {tool!r}: {where} maps it under {mapped_action!r} without an amount, so"
                " every call to it would be refused; add `amount: <the argument holding it>`"
                f" to its mapping under actions.{mapped_action}.tools"
            )
        if parameters is not None:
            missing = _missing(spec, parameters, ("amount", "currency", *_ID_PARTS))
            if missing:
                raise ConfigurationError(
                    f"tool {tool!r}: {where} reads its {', '.join(missing)}, which the tool does"
                    f" not take (it takes: {_listed(parameters)}); fix"
                    f" the mapping under actions.{mapped_action}.tools, or the tool"
                )
            # A currency beside the amount, at its level or one above (`refund.currency` by
            # `refund.amount`), is one the tool may pay in.
            unread = [
                name
                for name in currency_paths(spec.amount)
                if name in parameters and name != spec.currency
            ]
            unit = pack.actions[mapped_action].unit
            if unit is not None and unread:
                raise ConfigurationError(
                    f"tool {tool!r} takes a currency ({unread[0]!r}), but {where} maps it under"
                    f" {mapped_action!r}, which counts {unit}, not money: a currency its call"
                    " names would never have been decided. Govern a tool that takes none"
                )
            if spec.currency is None and unread:
                raise ConfigurationError(
                    f"tool {tool!r} takes a currency ({unread[0]!r}) that {where} does not read:"
                    " its amounts would be decided in the pack's currency and paid in the one"
                    f" the call names. Add `currency: {unread[0]}` to its mapping under"
                    f" actions.{mapped_action}.tools"
                )
        return True
    if action is not None:
        if parameters is not None:
            spec = declared_mapping(tool, fields)
            given = [part for part in (fields or {}) if part in _DEFAULT_FIELDS]
            missing = _missing(spec, parameters, dict.fromkeys(["amount", *given]))
            if missing:
                raise ConfigurationError(
                    f"tool {tool!r}: action {action!r} moves money, but the {', '.join(missing)}"
                    " you map is not an argument it takes (it takes:"
                    f" {_listed(parameters)}); pass fields= naming its"
                    " arguments"
                )
            elsewhere = _unread(spec, parameters)
            if elsewhere is not None:
                part, name, path = elsewhere
                raise ConfigurationError(
                    f"tool {tool!r} takes {name!r}, but action {action!r} is decided on the"
                    f" {part} its {path!r} argument names: the tool would run on one nobody"
                    f" decided. Pass fields={{{part!r}: {name!r}}}"
                )
        return True
    if pack.is_ungoverned(tool):
        return False
    raise ConfigurationError(
        f"tool {tool!r} is neither mapped by {where} nor listed in its ungoverned_tools, so"
        " every call would be refused. Map it under an action's tools if it moves money or bends"
        " a rule, list it in ungoverned_tools if it only reads, or give the action= it performs"
    )


_ID_PARTS = ("customer", "case", "order")


def _tools_of(found: object) -> Iterable[tuple[str, object]]:
    if isinstance(found, Mapping):
        return [(str(name), tool) for name, tool in found.items()]
    if isinstance(found, Iterable) and not isinstance(found, (str, bytes)):
        items = []
        for tool in found:
            name = getattr(tool, "name", None) or getattr(tool, "__name__", None)
            if not isinstance(name, str):
                raise ConfigurationError(f"{tool!r} has no name; give tools a name")
            items.append((name, tool))
        return items
    raise ConfigurationError(
        "tools must be a list of langchain tools or functions, or a mapping of name to tool;"
        f" got {type(found).__name__}"
    )


def check_tools(pack: PolicyPack, tools: object) -> list[tuple[str, bool]]:
    """Check each tool of `tools` as wrapping would; return each name and whether it is governed.

    Raises:
        ConfigurationError: the first tool that would run ungoverned or blind.
    """
    checked = []
    for name, tool in _tools_of(tools):
        checked.append((name, check_tool(pack, name, parameters_of(tool))))
    return checked
