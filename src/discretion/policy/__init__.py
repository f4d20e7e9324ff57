"""Policy packs: YAML validated by pydantic, conditions in CEL compiled once at load.

`load_pack` reads a pack file or folder and returns the compiled `PolicyPack`: plain frozen
dataclasses every later step reads. Reading the YAML (with its line map), the schema,
compilation and CEL each live in a module of their own.
"""

from discretion.policy._cel import CelProgram, EvaluationError
from discretion.policy._load import load_pack
from discretion.policy._model import (
    ASSERTED,
    BUILTIN_VARIABLES,
    NEXT_ABOVE,
    ActionPolicy,
    Asserted,
    Authority,
    Budget,
    ClaimsPolicy,
    Cumulative,
    Entity,
    Evidence,
    Ground,
    JudgeBand,
    JudgeSettings,
    PolicyPack,
    PrecedentPolicy,
    Role,
    Rule,
    Total,
)
from discretion.policy._schema import FieldSpec, ToolSpec
from discretion.policy._system import SYSTEM_RULES

__all__ = [
    "ASSERTED",
    "BUILTIN_VARIABLES",
    "NEXT_ABOVE",
    "SYSTEM_RULES",
    "ActionPolicy",
    "Asserted",
    "Authority",
    "Budget",
    "CelProgram",
    "ClaimsPolicy",
    "Cumulative",
    "Entity",
    "EvaluationError",
    "Evidence",
    "FieldSpec",
    "Ground",
    "JudgeBand",
    "JudgeSettings",
    "PolicyPack",
    "PrecedentPolicy",
    "Role",
    "Rule",
    "ToolSpec",
    "Total",
    "load_pack",
]
