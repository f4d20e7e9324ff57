"""The judge's optional dependencies stay optional: the core imports and decides without them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent

SCRIPT = textwrap.dedent(
    """
    import builtins

    real = builtins.__import__

    def without_extras(name, *args, **kwargs):
        if name.split(".")[0] in ("tenacity", "openai", "jinja2"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name.split(".")[0])
        return real(name, *args, **kwargs)

    builtins.__import__ = without_extras

    import discretion
    from discretion import ConfigurationError, Guard, Verdict, load_pack
    from discretion.judge import OpenAIJudge, StaticJudge

    pack = load_pack("tests/packs/shop.yaml")
    print(Guard(pack).decide({"actor": {"id": "b", "role": "ai_agent"}, "action": "credit",
                              "amount": {"amount": "1.00", "currency": "USD"}}).outcome)
    for build in (
        lambda: OpenAIJudge("m"),
        lambda: Guard(pack, judge=StaticJudge(
            Verdict(justified=True, clause="c", unsupported_claims=[], reason="")
        )),
    ):
        try:
            build()
        except ConfigurationError as exc:
            print(exc)
    """
)


def test_the_core_decides_without_the_openai_extra_and_names_it_when_needed():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "route",
        "the LLM judge needs the openai package: pip install 'discretion[openai]'",
        "the LLM judge renders its prompts with jinja2: pip install 'discretion[openai]'",
    ]
