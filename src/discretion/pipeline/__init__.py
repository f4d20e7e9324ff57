"""The decision pipeline: the steps in order, with no reference back to what built them.

`Pipeline.decide` orders the steps; each step is a module of its own. `normalise` is the one
reader of tool arguments (and `write_amount` the one writer of an edited amount): every entry
point reaches a tool call's arguments through it.
"""

from discretion.pipeline._budgets import route_target
from discretion.pipeline._evaluate import evaluate
from discretion.pipeline._normalise import (
    MappedArguments,
    Normalised,
    argument_at,
    normalise,
    read_arguments,
    recorded_mapping,
    write_amount,
)
from discretion.pipeline._pipeline import Governed, Pipeline, RecordHook
from discretion.pipeline._review import Review
from discretion.pipeline._state import Evaluation

__all__ = [
    "Evaluation",
    "Governed",
    "MappedArguments",
    "Normalised",
    "Pipeline",
    "RecordHook",
    "Review",
    "argument_at",
    "evaluate",
    "normalise",
    "read_arguments",
    "recorded_mapping",
    "route_target",
    "write_amount",
]
