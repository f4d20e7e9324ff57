"""Facts the agent asserts from the conversation: validated, recorded, and capped.

The pack's `asserted` declares them (typed, with allowed values). A proposal carries them in
`rationale.asserted`; `check_asserted` refuses an undeclared name, a value of the wrong type or
one the pack does not allow (a `ProposalError`, nothing recorded). Rules read them as
`asserted.<name>`: the snapshot holds them under that prefix, so the lineage keeps them apart
from grounded facts, and the proposal it records carries them as asserted. One the agent leaves
out is null. A rule that reads one rests on it: `cap_assertions` sends a case it would allow
above the assertion's `unlocks.max_amount` to a person (`_unlocks.py`).
"""

from __future__ import annotations

from typing import Any

from discretion.errors import ProposalError
from discretion.policy import ASSERTED, ActionPolicy, PolicyPack
from discretion.proposal import Rationale

__all__ = ["asserted_values", "check_asserted"]


def check_asserted(pack: PolicyPack, action: ActionPolicy | None, rationale: Rationale) -> None:
    """Refuse assertions the pack does not declare for the action, or whose values do not fit.

    Raises:
        ProposalError: naming the assertion at fault and what the pack allows.
    """
    for name, value in rationale.asserted.items():
        field = f"rationale.asserted.{name}"
        declared = pack.asserted.get(ASSERTED + name)
        if declared is None:
            known = ", ".join(sorted(n.removeprefix(ASSERTED) for n in pack.asserted))
            raise ProposalError(
                f"{field}: pack {pack.name!r} declares no asserted fact {name!r};"
                f" declared: {known or '(none)'}",
                field=field,
            )
        if action is not None and declared.name not in action.reads:
            raise ProposalError(
                f"{field}: action {action.name!r} does not read {declared.name!r}; assert only"
                " what its rules read",
                field=field,
            )
        kind = "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else "string"
        if kind != declared.type:
            raise ProposalError(
                f"{field}: {value!r} is a {kind}; the pack declares a {declared.type}",
                field=field,
            )
        if declared.values is not None and value not in declared.values:
            allowed = ", ".join(sorted(repr(v) for v in declared.values))
            raise ProposalError(f"{field}: {value!r} is not allowed; one of {allowed}", field=field)


def asserted_values(action: ActionPolicy, rationale: Rationale) -> dict[str, Any]:
    """The assertions the action reads, by `asserted.<name>`; null for one left out."""
    return {
        name: rationale.asserted.get(name.removeprefix(ASSERTED))
        for name in action.reads
        if name.startswith(ASSERTED)
    }
