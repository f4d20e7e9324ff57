"""Load a policy pack from YAML, validate it, compile its CEL, and hash its content.

A pack is one YAML file or a folder of them; the files are merged by their top-level keys and a
key defined twice is an error naming both files. Every error is a `PolicyError` naming the file,
the line, the rule and the expression.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import ValidationError

from discretion.errors import PolicyError, ProposalError
from discretion.lineage import canonical_json
from discretion.money import CURRENCY_EXPONENTS, Money
from discretion.policy._cel import CelProgram, new_env
from discretion.policy._schema import (
    ActionSpec,
    BudgetSpec,
    EvidenceSpec,
    FieldSpec,
    JudgeBandSpec,
    PackSpec,
    PrecedentPolicySpec,
    RoleSpec,
    ToolSpec,
)

__all__ = [
    "BUILTIN_VARIABLES",
    "ActionPolicy",
    "Authority",
    "Budget",
    "Evidence",
    "JudgeBand",
    "JudgeSettings",
    "PolicyPack",
    "PrecedentPolicy",
    "Role",
    "Rule",
    "load_pack",
]

BUILTIN_VARIABLES: Mapping[str, str] = MappingProxyType(
    {
        "amount": "money",
        "now": "timestamp",
        "actor.role": "string",
        "actor.is_ai": "bool",
    }
)
"""Variables every expression may read besides the action's declared fields."""

_MERGED_LISTS = ("roles", "budgets")
_MERGED_MAPS = ("context", "actions")
_WINDOW_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """A compiled rule: a standard rule, a hard limit, or an exception reason."""

    id: str
    kind: str
    """`standard`, `hard_limit` or `exception`."""
    when: CelProgram
    max_amount: CelProgram | None
    message: str | None
    description: str
    granted_by: frozenset[str] | None = None
    precedent: PrecedentPolicy | None = None
    """For an exception reason: how its grants may become precedent; never when None."""
    evidence: Evidence | None = None
    """For an exception reason: what the rationale must carry; nothing beyond its claims when
    None."""
    judge: JudgeBand | None = None
    """For an exception reason: when the LLM judge reviews it; never when None."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PrecedentPolicy:
    """What the pack allows a precedent for one exception reason to be."""

    scope: tuple[str, ...]
    """The fields a precedent must fix at least."""
    max_expiry: timedelta
    max_citations: int | None
    ratio_of: str | None
    set_by: frozenset[str] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """What a rationale must carry for one exception reason."""

    claims: tuple[str, ...]
    """Context fields the rationale must state as structured claims."""
    min_text: int
    """The fewest characters its free text may have."""
    text_patterns: tuple[tuple[str, re.Pattern[str]], ...]
    """Named details the free text must match."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgeBand:
    """The amounts, in minor units and inclusive, for which the LLM judge reviews a reason."""

    min_minor: int
    max_minor: int | None
    clause: str
    """The policy clause the judge reads."""

    def covers(self, amount_minor: int) -> bool:
        """Whether the judge reviews this amount."""
        return self.min_minor <= amount_minor and (
            self.max_minor is None or amount_minor <= self.max_minor
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgeSettings:
    """Pack-wide settings of the LLM judge."""

    daily_calls: int | None = None
    """Calls the LLM judge may make per UTC day; unlimited when None."""
    without_model: str = "route"
    """`route` or `skip`: what a case the judge should review gets when there is no judge."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionPolicy:
    """A compiled action."""

    name: str
    reads: tuple[str, ...]
    standard: tuple[Rule, ...]
    hard_limits: tuple[Rule, ...]
    exceptions: tuple[Rule, ...]
    env: Any = field(repr=False)
    approval_sla: timedelta | None = None
    """How soon a routed case of this action must be decided, when the action sets it."""

    def reason(self, reason_id: str) -> Rule | None:
        """The exception reason with this id, if the action has it."""
        return next((r for r in self.exceptions if r.id == reason_id), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Authority:
    """A role's limits for one action, in minor units of the pack's currency."""

    standard_minor: int
    exception_minor: int
    reasons: frozenset[str] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Role:
    """A compiled rung of the authority ladder; `rank` 0 is the lowest."""

    id: str
    rank: int
    is_ai: bool
    authority: Mapping[str, Authority]
    approval_sla: timedelta | None = None
    """How soon a case routed to this role must be decided, when the role sets it."""

    def can_grant(self, action: str, reason: Rule) -> bool:
        """Whether this role may grant `reason` for `action` at all (amount aside)."""
        auth = self.authority.get(action)
        if auth is None or auth.exception_minor <= 0:
            return False
        if auth.reasons is not None:
            return reason.id in auth.reasons
        return reason.granted_by is None or self.id in reason.granted_by


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """A compiled budget."""

    id: str
    key: str
    window: timedelta
    limit_minor: int
    actions: frozenset[str] | None
    outcomes: frozenset[str]
    on_exceed: str
    route_to: str
    message: str | None

    def applies(self, action: str, outcome: str) -> bool:
        """Whether a decision of `outcome` on `action` counts against this budget."""
        return (self.actions is None or action in self.actions) and outcome in self.outcomes


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyPack:
    """A loaded, compiled policy pack. Build it with `load_pack`."""

    name: str
    version: str
    """`sha256:` and the hash of the pack's canonical content."""
    currency: str
    private_limits: bool
    unknown_tools: str
    fields: Mapping[str, FieldSpec]
    roles: tuple[Role, ...]
    actions: Mapping[str, ActionPolicy]
    tools: Mapping[str, tuple[str, ToolSpec]]
    budgets: tuple[Budget, ...]
    sources: tuple[str, ...]
    approval_sla: timedelta = timedelta(hours=24)
    """How soon a routed case must be decided when neither its action nor its role says."""
    judge: JudgeSettings = JudgeSettings()
    """Settings of the LLM judge."""

    def approval_sla_for(self, action: str, role: Role | None) -> timedelta:
        """How long an approval of `action` routed to `role` stays open before it expires.

        The shorter of the action's and the role's own `approval_sla`; the pack's when neither
        sets one.
        """
        policy = self.actions.get(action)
        found = (policy.approval_sla if policy else None, role.approval_sla if role else None)
        own = [sla for sla in found if sla is not None]
        return min(own) if own else self.approval_sla

    def governs(self, tool_name: str) -> bool:
        """Whether calls to `tool_name` must be decided.

        Tools the pack maps are governed; others only when `unknown_tools` is `route`. Integrations
        let ungoverned tools through untouched; `Guard.decide` routes any proposal whose action
        the pack does not define, whatever this says (fail closed).
        """
        return tool_name in self.tools or self.unknown_tools == "route"

    @property
    def highest_human(self) -> Role:
        """The top human rung: where a case goes when nothing lower can be named."""
        return _highest_human(self.roles)

    def role(self, role_id: str) -> Role | None:
        """The role with this id, if the pack defines it."""
        return next((r for r in self.roles if r.id == role_id), None)

    def rule_ids(self) -> list[str]:
        """Every rule id the pack defines: rules, hard limits, reasons and budgets."""
        ids = [
            rule.id
            for action in self.actions.values()
            for rule in (*action.hard_limits, *action.standard, *action.exceptions)
        ]
        return ids + [b.id for b in self.budgets]

    def money(self, minor: int) -> Money:
        """Minor units of the pack's currency as Money."""
        return Money.from_minor(minor, self.currency)


class _Lines:
    """Remembers the file and line of every node of the YAML, by its path."""

    def __init__(self) -> None:
        self.where: dict[tuple[Any, ...], tuple[str, int]] = {}

    def add(self, node: yaml.Node, path: tuple[Any, ...], source: str) -> None:
        self.where[path] = (source, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            _check_unique_keys(node, source)
            for key, value in node.value:
                self.where[(*path, key.value)] = (source, key.start_mark.line + 1)
                self.add(value, (*path, key.value), source)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.add(item, (*path, index), source)

    def find(self, path: tuple[Any, ...]) -> tuple[str | None, int | None]:
        while path:
            if path in self.where:
                return self.where[path]
            path = path[:-1]
        return None, None


def _check_unique_keys(node: yaml.MappingNode, source: str) -> None:
    # PyYAML keeps the last of two equal keys silently; in a policy that hides a rule.
    seen: set[Any] = set()
    for key, _ in node.value:
        if key.value in seen:
            raise PolicyError(
                f"key {key.value!r} appears twice in the same mapping",
                path=source,
                line=key.start_mark.line + 1,
            )
        seen.add(key.value)


_MAX_NODES = 200_000
"""The most YAML nodes a pack file may expand to, aliases counted at each use."""


def _check_size(node: yaml.Node, source: str) -> None:
    # An alias is a reference: nine aliases of nine aliases of ... (a "billion laughs") are a
    # few lines of YAML that expand to billions of values and would hang everything after.
    count, pending = 0, [node]
    while pending:
        current = pending.pop()
        count += 1
        if count > _MAX_NODES:
            raise PolicyError(
                f"the pack expands to more than {_MAX_NODES} YAML values (aliases counted at"
                " each use); write the values out instead of repeating anchors",
                path=source,
                line=current.start_mark.line + 1,
            )
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                pending.extend((key, value))
        elif isinstance(current, yaml.SequenceNode):
            pending.extend(current.value)


def _read_file(path: Path, lines: _Lines) -> tuple[dict[str, Any], dict[str, yaml.Node]]:
    """Parse one pack file once; return its data and its top-level nodes by key."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read the pack file: {exc.strerror}", path=source) from exc
    try:
        # The reader refuses control characters as soon as it is made: inside the try.
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"not valid YAML: {exc}", path=source) from None
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_size(node, source)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PolicyError(
            f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
            path=source,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    finally:
        loader.dispose()
    if data is None:
        return {}, {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise PolicyError("a pack file must be a YAML mapping at the top level", path=source)
    _check_unique_keys(node, source)
    for key, value in node.value:
        # Positions in merged lists are only known once merged, so lists record them later.
        if key.value not in _MERGED_LISTS:
            lines.add(value, (key.value,), source)
        lines.where[(key.value,)] = (source, key.start_mark.line + 1)
    return data, {key.value: value for key, value in node.value}


def _merge(paths: list[Path], lines: _Lines) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    owner: dict[tuple[str, ...], str] = {}
    for path in paths:
        data, nodes = _read_file(path, lines)
        for key, value in data.items():
            if key in _MERGED_LISTS:
                if not isinstance(value, list):
                    raise PolicyError(f"{key!r} must be a list", path=str(path))
                start = len(merged.setdefault(key, []))
                for index, item in enumerate(nodes[key].value):
                    lines.add(item, (key, start + index), str(path))
                merged[key].extend(value)
            elif key in _MERGED_MAPS:
                if not isinstance(value, dict):
                    raise PolicyError(f"{key!r} must be a mapping", path=str(path))
                target = merged.setdefault(key, {})
                for name, item in value.items():
                    if name in target:
                        raise PolicyError(
                            f"{key}.{name} is defined twice: in {owner[(key, name)]} and here",
                            path=str(path),
                        )
                    owner[(key, name)] = str(path)
                    target[name] = item
            else:
                if key in merged:
                    raise PolicyError(
                        f"top-level key {key!r} is defined twice: in {owner[(key,)]} and here",
                        path=str(path),
                    )
                owner[(key,)] = str(path)
                merged[key] = value
    return merged


def _pack_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if not files:
            raise PolicyError("the folder holds no .yaml pack files", path=str(path))
        return files
    if not path.exists():
        raise PolicyError("no such pack file or folder", path=str(path))
    return [path]


def load_pack(path: str | Path) -> PolicyPack:
    """Load, validate and compile a policy pack from a YAML file or a folder of YAML files.

    Raises:
        PolicyError: naming the file, line, rule id and expression of the first fault.
    """
    root = Path(path)
    files = _pack_files(root)
    lines = _Lines()
    raw = _merge(files, lines)
    try:
        spec = PackSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = tuple(err["loc"])
        source, line = lines.find(loc)
        # A missing key has no line of its own: name the file (or folder) that lacks it.
        source = source or str(root)
        dotted = ".".join(str(p) for p in loc) or "<root>"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise PolicyError(f"{dotted}: {err['msg']}{more}", path=source, line=line) from None
    version = "sha256:" + hashlib.sha256(canonical_json(raw).encode()).hexdigest()
    return _compile(spec, version=version, lines=lines, sources=tuple(str(f) for f in files))


def _minor(text: str, currency: str, *, where: tuple[str | None, int | None], what: str) -> int:
    try:
        return Money(amount=Decimal(text), currency=currency).minor
    except ProposalError as exc:
        raise PolicyError(f"{what}: {exc}", path=where[0], line=where[1]) from None


def _compile(
    spec: PackSpec, *, version: str, lines: _Lines, sources: tuple[str, ...]
) -> PolicyPack:
    if spec.currency not in CURRENCY_EXPONENTS:
        source, line = lines.find(("currency",))
        raise PolicyError(
            f"currency {spec.currency!r} is not a supported ISO 4217 code", path=source, line=line
        )
    fields: dict[str, FieldSpec] = {
        name: item if isinstance(item, FieldSpec) else FieldSpec(type=item)
        for name, item in spec.context.items()
    }
    for name in fields:
        if name in BUILTIN_VARIABLES:
            source, line = lines.find(("context", name))
            raise PolicyError(f"context field {name!r} shadows a built-in", path=source, line=line)

    seen_rules: dict[str, tuple[str | None, int | None]] = {}

    def claim(rule_id: str, loc: tuple[Any, ...]) -> tuple[str | None, int | None]:
        where = lines.find(loc)
        if rule_id.startswith("discretion."):
            raise PolicyError(
                "rule ids starting with 'discretion.' are reserved",
                path=where[0],
                line=where[1],
                rule_id=rule_id,
            )
        if rule_id in seen_rules:
            first = seen_rules[rule_id]
            raise PolicyError(
                f"rule id is used twice; first at {first[0]}:{first[1]}",
                path=where[0],
                line=where[1],
                rule_id=rule_id,
            )
        seen_rules[rule_id] = where
        return where

    role_ids = [r.id for r in spec.roles]
    for index, role_id in enumerate(role_ids):
        if role_ids.index(role_id) != index:
            source, line = lines.find(("roles", index))
            raise PolicyError(f"role {role_id!r} is listed twice", path=source, line=line)

    actions: dict[str, ActionPolicy] = {}
    tools: dict[str, tuple[str, ToolSpec]] = {}
    for action_id, action in spec.actions.items():
        actions[action_id] = _compile_judging(
            _compile_action(action_id, action, fields, role_ids, lines, claim), action, spec, lines
        )
        for index, tool in enumerate(action.tools):
            if tool.name in tools:
                source, line = lines.find(("actions", action_id, "tools", index))
                raise PolicyError(
                    f"tool {tool.name!r} is mapped to both {tools[tool.name][0]!r} and"
                    f" {action_id!r}",
                    path=source,
                    line=line,
                )
            tools[tool.name] = (action_id, tool)

    roles = tuple(
        _compile_role(index, role, spec, actions, lines) for index, role in enumerate(spec.roles)
    )
    if all(role.is_ai for role in roles):
        raise PolicyError(
            "the pack needs at least one human role to route cases to", path=sources[0]
        )
    highest_human = _highest_human(roles).id
    budgets = tuple(
        _compile_budget(index, budget, spec, actions, roles, highest_human, lines, claim)
        for index, budget in enumerate(spec.budgets)
    )
    return PolicyPack(
        name=spec.pack,
        version=version,
        currency=spec.currency,
        private_limits=spec.private_limits,
        unknown_tools=spec.unknown_tools,
        fields=MappingProxyType(fields),
        roles=roles,
        actions=MappingProxyType(actions),
        tools=MappingProxyType(tools),
        budgets=budgets,
        sources=sources,
        approval_sla=_sla(spec.approval_sla, lines, ("approval_sla",)),
        judge=JudgeSettings(
            daily_calls=spec.judge.daily_calls, without_model=spec.judge.without_model
        ),
    )


def _compile_judging(
    compiled: ActionPolicy, action: ActionSpec, spec: PackSpec, lines: _Lines
) -> ActionPolicy:
    """Attach each exception reason's evidence and LLM judge band to the compiled action."""
    reasons = []
    pairs = zip(compiled.exceptions, action.exceptions, strict=True)
    for index, (rule, reason) in enumerate(pairs):
        loc = ("actions", compiled.name, "exceptions", index)
        evidence = (
            _compile_evidence(rule.id, reason.evidence, compiled, lines, loc)
            if reason.evidence is not None
            else None
        )
        band_spec = reason.judge
        band_loc: tuple[Any, ...] = (*loc, "judge")
        if band_spec is None:
            band_spec, band_loc = action.judge, ("actions", compiled.name, "judge")
        band = _compile_band(rule, band_spec, spec.currency, lines, band_loc)
        reasons.append(replace(rule, evidence=evidence, judge=band))
    return replace(compiled, exceptions=tuple(reasons))


def _compile_evidence(
    reason_id: str,
    spec: EvidenceSpec,
    action: ActionPolicy,
    lines: _Lines,
    loc: tuple[Any, ...],
) -> Evidence:
    def fail(message: str, at: tuple[Any, ...]) -> PolicyError:
        source, line = lines.find((*loc, "evidence", *at))
        return PolicyError(message, path=source, line=line, rule_id=reason_id)

    for index, name in enumerate(spec.claims):
        if name not in action.reads:
            raise fail(
                f"evidence claim {name!r} is not a field the action reads, so it could never be"
                f" checked against the facts; reads: {', '.join(action.reads) or '(none)'}",
                ("claims", index),
            )
    patterns = []
    for name, pattern in spec.text_must_match.items():
        try:
            patterns.append((name, re.compile(pattern)))
        except re.error as exc:
            raise fail(
                f"evidence text_must_match {name!r}: {pattern!r} is not a valid regular"
                f" expression ({exc}); write it as Python's re module reads it",
                ("text_must_match", name),
            ) from None
    return Evidence(
        claims=tuple(spec.claims), min_text=spec.min_text, text_patterns=tuple(patterns)
    )


def _compile_band(
    rule: Rule,
    spec: JudgeBandSpec | bool | None,
    currency: str,
    lines: _Lines,
    loc: tuple[Any, ...],
) -> JudgeBand | None:
    if spec is None or spec is False:
        return None
    clause = rule.description or rule.message or rule.id
    if spec is True:
        return JudgeBand(min_minor=0, max_minor=None, clause=clause)
    where = lines.find(loc)
    low = _minor(spec.min_amount, currency, where=where, what="judge min_amount")
    high = (
        _minor(spec.max_amount, currency, where=where, what="judge max_amount")
        if spec.max_amount is not None
        else None
    )
    if high is not None and high < low:
        raise PolicyError(
            f"judge max_amount {spec.max_amount} is below min_amount {spec.min_amount}: the band"
            " holds no amount",
            path=where[0],
            line=where[1],
            rule_id=rule.id,
        )
    return JudgeBand(min_minor=low, max_minor=high, clause=spec.clause or clause)


def _highest_human(roles: tuple[Role, ...]) -> Role:
    return next(r for r in reversed(roles) if not r.is_ai)


def _compile_action(
    action_id: str,
    action: ActionSpec,
    fields: Mapping[str, FieldSpec],
    role_ids: list[str],
    lines: _Lines,
    claim: Any,
) -> ActionPolicy:
    base = ("actions", action_id)
    for index, name in enumerate(action.reads):
        if name not in fields:
            source, line = lines.find((*base, "reads", index))
            raise PolicyError(
                f"action {action_id!r} reads {name!r}, which the pack's context does not declare;"
                f" declared: {', '.join(sorted(fields)) or '(none)'}",
                path=source,
                line=line,
            )
    variables = {**BUILTIN_VARIABLES, **{name: fields[name].type for name in action.reads}}
    env = new_env(variables)
    declared = list(variables)

    def program(source_text: str, result: str, loc: tuple[Any, ...], rule_id: str) -> CelProgram:
        path, line = lines.find(loc)
        return CelProgram.compile(
            env,
            source_text,
            result=result,
            declared=declared,
            path=path,
            line=line,
            rule_id=rule_id,
        )

    standard = []
    for index, rule in enumerate(action.standard):
        loc = (*base, "standard", index)
        claim(rule.id, loc)
        standard.append(
            Rule(
                id=rule.id,
                kind="standard",
                when=program(rule.when, "bool", (*loc, "when"), rule.id),
                max_amount=program(rule.max_amount, "int", (*loc, "max_amount"), rule.id)
                if rule.max_amount is not None
                else None,
                message=rule.message,
                description=rule.description,
            )
        )
    hard_limits = []
    for index, limit in enumerate(action.hard_limits):
        loc = (*base, "hard_limits", index)
        claim(limit.id, loc)
        hard_limits.append(
            Rule(
                id=limit.id,
                kind="hard_limit",
                when=program(limit.when, "bool", (*loc, "when"), limit.id),
                max_amount=None,
                message=limit.message,
                description=limit.description,
            )
        )
    exceptions = []
    for index, reason in enumerate(action.exceptions):
        loc = (*base, "exceptions", index)
        claim(reason.id, loc)
        for role_index, role_id in enumerate(reason.granted_by or []):
            if role_id not in role_ids:
                source, line = lines.find((*loc, "granted_by", role_index))
                raise PolicyError(
                    f"granted_by names role {role_id!r}, which the pack does not define;"
                    f" roles: {', '.join(role_ids)}",
                    path=source,
                    line=line,
                    rule_id=reason.id,
                )
        precedent = (
            _compile_precedent(reason.id, reason.precedent, action, fields, role_ids, lines, loc)
            if reason.precedent is not None
            else None
        )
        exceptions.append(
            Rule(
                id=reason.id,
                kind="exception",
                when=program(reason.when, "bool", (*loc, "when"), reason.id),
                max_amount=program(reason.max_amount, "int", (*loc, "max_amount"), reason.id)
                if reason.max_amount is not None
                else None,
                message=reason.message,
                description=reason.description,
                granted_by=frozenset(reason.granted_by) if reason.granted_by is not None else None,
                precedent=precedent,
            )
        )
    return ActionPolicy(
        name=action_id,
        reads=tuple(action.reads),
        standard=tuple(standard),
        hard_limits=tuple(hard_limits),
        exceptions=tuple(exceptions),
        env=env,
        approval_sla=_sla(action.approval_sla, lines, (*base, "approval_sla"))
        if action.approval_sla is not None
        else None,
    )


def _window(text: str) -> timedelta:
    """A duration written as a count and a unit: `30d`, `24h`, `15m`, `90s`."""
    return timedelta(**{_WINDOW_UNITS[text[-1]]: int(text[:-1])})


def _sla(text: str, lines: _Lines, loc: tuple[Any, ...]) -> timedelta:
    sla = _window(text)
    if sla <= timedelta(0):
        source, line = lines.find(loc)
        raise PolicyError("approval_sla must be longer than zero", path=source, line=line)
    return sla


def _compile_precedent(
    reason_id: str,
    spec: PrecedentPolicySpec,
    action: ActionSpec,
    fields: Mapping[str, FieldSpec],
    role_ids: list[str],
    lines: _Lines,
    loc: tuple[Any, ...],
) -> PrecedentPolicy:
    def fail(message: str, at: tuple[Any, ...]) -> PolicyError:
        source, line = lines.find((*loc, "precedent", *at))
        return PolicyError(message, path=source, line=line, rule_id=reason_id)

    for index, name in enumerate(spec.scope):
        if name not in action.reads:
            raise fail(
                f"precedent scope names {name!r}, which the action does not read;"
                f" reads: {', '.join(action.reads) or '(none)'}",
                ("scope", index),
            )
    if spec.ratio_of is not None and (
        spec.ratio_of not in action.reads or fields[spec.ratio_of].type != "money"
    ):
        raise fail(
            f"precedent ratio_of {spec.ratio_of!r} must be a money field the action reads",
            ("ratio_of",),
        )
    for index, role_id in enumerate(spec.set_by or []):
        if role_id not in role_ids:
            raise fail(
                f"precedent set_by names role {role_id!r}, which the pack does not define;"
                f" roles: {', '.join(role_ids)}",
                ("set_by", index),
            )
    if _window(spec.max_expiry) <= timedelta(0):
        raise fail("precedent max_expiry must be longer than zero", ("max_expiry",))
    return PrecedentPolicy(
        scope=tuple(spec.scope),
        max_expiry=_window(spec.max_expiry),
        max_citations=spec.max_citations,
        ratio_of=spec.ratio_of,
        set_by=frozenset(spec.set_by) if spec.set_by is not None else None,
    )


def _compile_role(
    index: int,
    role: RoleSpec,
    spec: PackSpec,
    actions: Mapping[str, ActionPolicy],
    lines: _Lines,
) -> Role:
    authority: dict[str, Authority] = {}
    for action_id, limits in role.authority.items():
        loc = ("roles", index, "authority", action_id)
        where = lines.find(loc)
        if action_id not in actions:
            raise PolicyError(
                f"role {role.id!r} has authority over {action_id!r}, which is not an action;"
                f" actions: {', '.join(actions)}",
                path=where[0],
                line=where[1],
            )
        for reason_id in limits.reasons or []:
            if actions[action_id].reason(reason_id) is None:
                raise PolicyError(
                    f"role {role.id!r} may grant reason {reason_id!r}, which {action_id!r} does"
                    " not define",
                    path=where[0],
                    line=where[1],
                )
        authority[action_id] = Authority(
            standard_minor=_minor(
                limits.standard, spec.currency, where=where, what=f"role {role.id!r} standard"
            ),
            exception_minor=_minor(
                limits.exception, spec.currency, where=where, what=f"role {role.id!r} exception"
            ),
            reasons=frozenset(limits.reasons) if limits.reasons is not None else None,
        )
    return Role(
        id=role.id,
        rank=index,
        is_ai=role.ai,
        authority=MappingProxyType(authority),
        approval_sla=_sla(role.approval_sla, lines, ("roles", index, "approval_sla"))
        if role.approval_sla is not None
        else None,
    )


def _compile_budget(
    index: int,
    budget: BudgetSpec,
    spec: PackSpec,
    actions: Mapping[str, ActionPolicy],
    roles: tuple[Role, ...],
    highest_human: str,
    lines: _Lines,
    claim: Any,
) -> Budget:
    loc = ("budgets", index)
    where = claim(budget.id, loc)
    for action_id in budget.actions or []:
        if action_id not in actions:
            raise PolicyError(
                f"budget counts action {action_id!r}, which is not an action",
                path=where[0],
                line=where[1],
                rule_id=budget.id,
            )
    route_to = budget.route_to or highest_human
    target = next((r for r in roles if r.id == route_to), None)
    if target is None or target.is_ai:
        raise PolicyError(
            f"route_to {route_to!r} is not a human role of the pack",
            path=where[0],
            line=where[1],
            rule_id=budget.id,
        )
    window = _window(budget.window)
    if window <= timedelta(0):
        raise PolicyError("window must be longer than zero", path=where[0], line=where[1])
    return Budget(
        id=budget.id,
        key=budget.key,
        window=window,
        limit_minor=_minor(budget.limit, spec.currency, where=where, what="limit"),
        actions=frozenset(budget.actions) if budget.actions is not None else None,
        outcomes=frozenset(budget.outcomes),
        on_exceed=budget.on_exceed,
        route_to=route_to,
        message=budget.message,
    )
