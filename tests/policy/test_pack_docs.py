"""docs/packs.md is the reference of every pack key: a key added to the schema needs its row."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from discretion.policy import _schema

DOCS = Path(__file__).resolve().parents[2] / "docs" / "packs.md"


def test_every_key_of_the_pack_schema_is_in_the_reference():
    text = DOCS.read_text(encoding="utf-8")
    models = [getattr(_schema, name) for name in _schema.__all__]
    specs = [m for m in models if isinstance(m, type) and issubclass(m, BaseModel)]
    assert len(specs) > 15
    missing = [
        f"{spec.__name__}.{key}"
        for spec in specs
        for key in spec.model_fields
        if f"`{key}`" not in text
    ]
    assert missing == []


def test_the_readme_points_to_the_reference():
    readme = (DOCS.parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Policy packs", 1)[1].split("\n## ", 1)[0]
    assert "docs/packs.md" in section
