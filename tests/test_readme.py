"""The README's Python example runs as written (with an in-memory ledger)."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_readme_python_example_decides(capsys, monkeypatch):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    source = code.group(1).replace("sqlite:///discretion.db", "sqlite://")
    source = source.replace("    ...  # run the tool", "    print('allowed', decision.outcome)")
    monkeypatch.chdir(ROOT)
    exec(compile(source, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "allowed allow_exception"


def test_readme_names_exactly_two_setup_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Set up", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["bash scripts/example.sh", "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
