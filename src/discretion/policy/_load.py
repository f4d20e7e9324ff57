"""`load_pack`: read the YAML, validate it against the schema, compile it, hash its content."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from discretion.errors import PolicyError
from discretion.lineage import digest
from discretion.policy._compile import compile_pack
from discretion.policy._errors import schema_error, with_money_hint
from discretion.policy._model import PolicyPack
from discretion.policy._schema import PackSpec
from discretion.policy._yaml import read_pack

__all__ = ["load_pack"]


def load_pack(path: str | Path) -> PolicyPack:
    """Load, validate and compile a policy pack from a YAML file or a folder of YAML files.

    Raises:
        PolicyError: naming the file, line, rule id and expression of the first fault.
    """
    root = Path(path)
    raw, lines, files = read_pack(root)
    try:
        spec = PackSpec.model_validate(raw)
    except ValidationError as exc:
        raise schema_error(exc, raw, lines, root) from None
    version = "sha256:" + digest(raw)
    try:
        return compile_pack(
            spec, version=version, lines=lines, sources=tuple(str(f) for f in files)
        )
    except PolicyError as exc:
        raise with_money_hint(exc, spec) from None
