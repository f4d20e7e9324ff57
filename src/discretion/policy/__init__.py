"""Policy packs: YAML validated by pydantic, conditions in CEL compiled once at load.

`load_pack` reads a pack file or folder and returns the compiled `PolicyPack`: plain frozen
dataclasses every later step reads. Reading the YAML (with its line map), the schema,
compilation and CEL each live in a module of their own.
"""

from discretion.policy._cel import CelProgram, EvaluationError
from discretion.policy._load import load_pack
from discretion.policy._model import (
    ARGS_PREFIX,
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
    Rates,
    Role,
    Rule,
    Total,
)
from discretion.policy._records import (
    MEMBER_TYPES,
    Record,
    RecordArgSpec,
    RecordError,
    RecordFieldSpec,
    RecordList,
    RecordType,
    Structured,
    read_structured,
    record_name,
)
from discretion.policy._schema import CURRENCY_ARGUMENTS, ArgSpec, FieldSpec, ToolSpec
from discretion.policy._screen import Screen, Screens
from discretion.policy._system import SYSTEM_RULES, TWO_APPROVALS

__all__ = [
    "ARGS_PREFIX",
    "ASSERTED",
    "BUILTIN_VARIABLES",
    "CURRENCY_ARGUMENTS",
    "MEMBER_TYPES",
    "NEXT_ABOVE",
    "SYSTEM_RULES",
    "TWO_APPROVALS",
    "ActionPolicy",
    "ArgSpec",
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
    "Rates",
    "Record",
    "RecordArgSpec",
    "RecordError",
    "RecordFieldSpec",
    "RecordList",
    "RecordType",
    "Role",
    "Rule",
    "Screen",
    "Screens",
    "Structured",
    "ToolSpec",
    "Total",
    "load_pack",
    "read_structured",
    "record_name",
]
