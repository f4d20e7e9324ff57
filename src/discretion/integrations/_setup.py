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
from pathlib import Path

from discretion.errors import ConfigurationError
from discretion.policy import CURRENCY_ARGUMENTS, PolicyPack, ToolSpec

__all__ = ["check_tool", "check_tools", "declared_mapping", "parameters_of"]

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
        "currency": CURRENCY_ARGUMENTS,
        **{part: (part, f"{part}_id") for part in _ID_PARTS},
    }
    for part, candidates in names.items():
        path: str | None = getattr(spec, part)
        read = path.split(".", 1)[0] if path is not None else None
        for name in candidates:
            if name in parameters and name != read:
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
        parameters: the argument names it takes, or None when it takes any.
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
                    f" not take (it takes: {', '.join(sorted(parameters)) or 'nothing'}); fix"
                    f" the mapping under actions.{mapped_action}.tools, or the tool"
                )
            unread = [name for name in CURRENCY_ARGUMENTS if name in parameters]
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
                    f" {', '.join(sorted(parameters)) or 'nothing'}); pass fields= naming its"
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
