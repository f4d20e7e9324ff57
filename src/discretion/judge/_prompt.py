"""Render the LLM judge's prompt from the jinja2 templates in the repository's `prompts/`.

The wheel ships them inside the package (`discretion/prompts`), where an installed judge reads
them; an editable install of a checkout reads the top-level folder itself.

The instructions and the policy clause go in the system message; the exception, the facts, the
claims and the rationale text go in the user message as JSON inside delimited blocks. JSON
encoding escapes `<`, `>`, `&` and `'`, so text in a rationale can never close its block and pose
as instructions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from discretion.errors import ConfigurationError
from discretion.judge._request import Prompt
from discretion.lineage import digest
from discretion.money import Money
from discretion.proposal import Claim

if TYPE_CHECKING:
    import jinja2

__all__ = ["PROMPT_FILES", "prompt_version", "prompts_folder", "render", "require_jinja"]

PROMPT_FILES = ("judge_system.j2", "judge_request.j2", "verdict.schema.json")
"""The files under `prompts/` that make up the judge's prompt."""


def require_jinja() -> None:
    """Check that jinja2, which renders the prompts, is installed.

    Raises:
        ConfigurationError: naming the pip extra to install.
    """
    try:
        import jinja2  # noqa: F401
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            "the LLM judge renders its prompts with jinja2: pip install 'discretion[openai]'"
        ) from exc


def prompts_folder() -> Traversable:
    """Where the prompt files are read from: inside the installed package, else the checkout's.

    Raises:
        ConfigurationError: neither holds them (a broken install).
    """
    installed = resources.files("discretion").joinpath("prompts")
    if installed.is_dir():
        return installed
    # An editable install puts src/ on the path; the templates stay at the checkout's top.
    checkout = Path(__file__).resolve().parents[3] / "prompts"
    if checkout.is_dir():
        return checkout
    raise ConfigurationError(
        f"the judge's prompt templates are missing: neither {installed} nor {checkout} exists;"
        " reinstall discretion"
    )


@cache
def _sources() -> Mapping[str, str]:
    folder = prompts_folder()
    return {name: folder.joinpath(name).read_text(encoding="utf-8") for name in PROMPT_FILES}


@cache
def prompt_version() -> str:
    """`sha256:` and the hash of the prompt templates and the output schema."""
    return "sha256:" + digest(dict(_sources()))


@cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    # `tojson` escapes <, >, & and ' as \u003c and so on; sorted keys keep the prompt, and so
    # its hash and the verdict cache, stable.
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False, "indent": 2}
    return env


@cache
def _templates() -> tuple[jinja2.Template, jinja2.Template, dict[str, Any]]:
    sources = _sources()
    env = _environment()
    schema: dict[str, Any] = json.loads(sources["verdict.schema.json"])
    return (
        env.from_string(sources["judge_system.j2"]),
        env.from_string(sources["judge_request.j2"]),
        schema,
    )


def render(
    *,
    clause_id: str,
    clause: str,
    action: str,
    amount: Money | None,
    actor_role: str,
    actor_is_ai: bool,
    facts: Mapping[str, Any],
    claims: tuple[Claim, ...],
    text: str,
) -> Prompt:
    """Render the judge's messages and output schema for one exception."""
    system, user, base_schema = _templates()
    # The answer may only name the clause it was given.
    schema = json.loads(json.dumps(base_schema))
    schema["properties"]["clause"]["enum"] = [clause_id]
    exception = {
        "action": action,
        "amount": f"{amount.amount} {amount.currency}" if amount is not None else None,
        "clause": clause_id,
        "agent": {"role": actor_role, "is_ai": actor_is_ai},
    }
    system_text = system.render(clause_id=clause_id, clause=clause.strip())
    user_text = user.render(
        clause_id=clause_id,
        exception=exception,
        facts=dict(facts),
        claims=[claim.model_dump(mode="json") for claim in claims],
        text=text,
    )
    rendered = {"system": system_text, "user": user_text, "schema": schema}
    return Prompt(
        system=system_text,
        user=user_text,
        schema=schema,
        version=prompt_version(),
        hash=digest(rendered),
    )
