"""Precedent: granted exceptions an approver made citable, inside a scope and bounds.

A precedent lets an actor whose own exception authority is too small grant the same exception
again, only where its scope matches the case's facts, within its bounds, before it expires,
while citations are left, and never past a hard limit or a budget.
"""

from discretion.precedent._applicability import PRECEDENT_RULES, Failure, check, matches
from discretion.precedent._model import Precedent, PrecedentSpec, Range, ScopeValue
from discretion.precedent._store import Precedents

__all__ = [
    "PRECEDENT_RULES",
    "Failure",
    "Precedent",
    "PrecedentSpec",
    "Precedents",
    "Range",
    "ScopeValue",
    "check",
    "matches",
]
