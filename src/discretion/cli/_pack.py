"""`discretion pack ...`: work with policy packs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from discretion.cli import _common
from discretion.errors import ConfigurationError, DiscretionError

if TYPE_CHECKING:
    from discretion.policy import PolicyPack

__all__ = ["pack_app"]

pack_app = typer.Typer(help="Work with policy packs.", no_args_is_help=True)


def _schema_of(item: Any) -> tuple[str, Mapping[str, Any]] | None:
    """A tool definition's name and JSON Schema, in OpenAI's, Anthropic's or MCP's form."""
    if not isinstance(item, Mapping):
        return None
    function = item.get("function")
    if isinstance(function, Mapping):  # OpenAI: {"type": "function", "function": {...}}
        item = function
    name = item.get("name")
    schema = item.get("parameters", item.get("input_schema", item.get("inputSchema")))
    if not isinstance(name, str) or not isinstance(schema, Mapping):
        return None
    return name, schema


def tool_schemas(path: Path) -> dict[str, frozenset[str]]:
    """The argument names of each tool defined in a JSON file of tool definitions.

    Raises:
        ConfigurationError: the file cannot be read, or holds something other than tools.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"--tool-schemas {path}: cannot read it as JSON: {exc}") from None
    items = data.get("tools", data) if isinstance(data, Mapping) else data
    if isinstance(items, Mapping):
        items = [items]
    found: dict[str, frozenset[str]] = {}
    for index, item in enumerate(items if isinstance(items, list) else [None]):
        schema = _schema_of(item)
        if schema is None:
            raise ConfigurationError(
                f"--tool-schemas {path}: item {index} is not a tool definition; give a list of"
                ' {"name": ..., "parameters": {JSON Schema}} (OpenAI\'s {"type": "function",'
                ' "function": {...}}, input_schema or MCP\'s inputSchema work too)'
            )
        name, parameters = schema
        properties = parameters.get("properties", {})
        found[name] = frozenset(properties if isinstance(properties, Mapping) else ())
    return found


def _unapprovable(policy: PolicyPack) -> list[str]:
    """What no one person could approve, one note each.

    A review only a role decides, past a budget whose `route_to` ranks above that role: the
    case stays with the review's role, which may not go beyond the budget. A review only one
    named person decides, on an action taking two approvals: no second person may give one.
    """
    from discretion.authority import rungs_above
    from discretion.pipeline import route_target
    from discretion.policy import NEXT_ABOVE

    notes = []
    for action in policy.actions.values():
        for review in action.reviews:
            named = policy.role(review.by) if review.by else None
            top = named is not None and not any(rungs_above(policy, named))
            alone = named is not None and (review.only or top)
            if alone and review.person is not None and action.two_approvals_minor is not None:
                notes.append(
                    f"review {review.id} ({action.name}) is decided only by the person"
                    f" {review.person.source} names, and {action.name} takes two approvals"
                    " above its two_approvals_above: no second person may approve such a case;"
                    + (
                        " drop only (a rank above then gives the second), or the two approvals"
                        if not top
                        else " no rank is above its role to give the second; drop the two"
                        " approvals, or leave the review to a role below the top"
                    )
                )
            reviewer = named if review.only else None
            if reviewer is None:
                continue
            for budget in policy.budgets:
                if budget.on_exceed != "route" or budget.route_to == NEXT_ABOVE:
                    continue
                if budget.actions is not None and action.name not in budget.actions:
                    continue
                # Not `next_above`: whose rung is next depends on who proposes.
                target = route_target(policy, budget, reviewer, action.name)
                if not reviewer.decides_for(target):
                    notes.append(
                        f"review {review.id} ({action.name}) is decided only by {reviewer.id},"
                        f" and budget {budget.id} lets only {target.id} or above go beyond it:"
                        " a case both hold cannot be approved by one person once the budget is"
                        f" spent; give {reviewer.id} the rank, or the budget a route_to it"
                        " reaches"
                    )
    return notes


def _followers(policy: PolicyPack) -> list[str]:
    """Roles of no exception authority that a reason admits by default, one note each.

    Zero is an amount: such a role may follow a colleague's precedent for the reason, which an
    author writing `exception: "0"` to mean "grants no exceptions" may not expect.
    """
    notes = []
    for action in policy.actions.values():
        for role in policy.roles:
            auth = role.authority.get(action.name)
            if auth is None or auth.exception_minor > 0:
                continue
            reasons = [
                reason.id
                for reason in action.exceptions
                if reason.granted_by is None and role.admitted(action.name, reason)
            ]
            if reasons:
                notes.append(
                    f"{role.id} has no exception authority for {action.name}, yet may follow a"
                    f" precedent for {', '.join(reasons)} (no granted_by: zero is an amount);"
                    " list the reasons' granted_by, or the role's reasons, to keep it out"
                )
    return notes


def _split_unlocks(policy: PolicyPack) -> list[str]:
    """Actions not `cumulative` whose rules rest on an assertion with a cap, one note each."""
    notes = []
    for action in policy.actions.values():
        if action.cumulative is not None:
            continue
        capped = sorted(
            {
                name
                for rule in (*action.standard, *action.exceptions)
                for name in rule.rests_on
                if policy.asserted[name].capped and policy.asserted[name].counting is None
            }
        )
        if capped:
            notes.append(
                f"{action.name} is not cumulative: what {', '.join(capped)} unlocks is capped per"
                " call, and two calls on one record each under the cap pass alone; give the"
                " unlocks a total it counts (counting:), or make the action cumulative"
            )
    return notes


def _splittable(policy: PolicyPack) -> list[str]:
    """Actions measured call by call, reading nothing of what was granted before: one note each.

    An amount above an actor's authority, asked for in pieces each within it, passes piece by
    piece: authority is measured on the whole only with `cumulative`, and a rule's maximum
    only with a total it subtracts.
    """
    return [
        f"{action.name} is measured call by call: neither cumulative nor reading a total of what"
        " was granted, so an amount above a role's authority asked for in pieces passes piece by"
        f" piece; give it cumulative: {{per: order, window: 365d}}, or a total its rules read"
        for action in policy.actions.values()
        if action.cumulative is None and not action.reads_ledger
    ]


@pack_app.command("validate")
def pack_validate(
    path: Annotated[Path, typer.Argument(help="Pack file or folder.")],
    tools: Annotated[
        str | None,
        typer.Option(
            "--tools",
            help="module:attribute naming the agent's tools (langchain tools, functions, or a"
            " mapping of name to function): each is checked as wrapping would check it.",
        ),
    ] = None,
    schemas: Annotated[
        Path | None,
        typer.Option(
            "--tool-schemas",
            help="A JSON file of the agent's tool definitions (name and JSON Schema parameters,"
            " as sent to the model): each is checked as wrapping would check it, and so is"
            " every argument the pack's tool mappings read.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Load a pack, compile every CEL expression, and print its version."""
    from discretion.integrations import check_tool, check_tools
    from discretion.policy import load_pack
    from discretion.settings import load_object

    try:
        policy = load_pack(path)
        checked = check_tools(policy, load_object(tools, what="tools")) if tools else []
        if schemas is not None:
            checked += [
                (name, check_tool(policy, name, parameters))
                for name, parameters in tool_schemas(schemas).items()
            ]
    except DiscretionError as exc:
        raise _common.fail(str(exc), 1) from None
    _common.out.print(
        f"[green]valid[/green] {escape(policy.name)} {policy.version}", highlight=False
    )
    _common.out.print(
        f"{len(policy.actions)} actions, {len(policy.roles)} roles, {len(policy.rule_ids())} rules,"
        f" {len(policy.budgets)} budgets, from {len(policy.sources)} file(s)",
        highlight=False,
    )
    for name, (action, spec) in sorted(policy.tools.items()):
        if spec.amount is None:
            # It loads (a proposal may carry its amount apart), but a call alone cannot be
            # decided: say so before an agent first finds it.
            _common.out.print(
                f"[yellow]note[/yellow] tool {escape(name)} ({escape(action)}) maps no amount:"
                " a call to it is decided only on an amount its proposal carries apart, and the"
                " integrations refuse to wrap it; add `amount: <argument>` to its mapping",
                highlight=False,
            )
    notes = [*_unapprovable(policy), *_followers(policy), *_split_unlocks(policy)]
    for note in [*notes, *_splittable(policy)]:
        _common.out.print(f"[yellow]note[/yellow] {escape(note)}", highlight=False)
    for name, is_governed in checked:
        kind = "governed" if is_governed else "read-only (ungoverned_tools)"
        _common.out.print(f"tool {escape(name)}: {kind}", highlight=False)
