"""Rationale judges: grounded claims, and an LLM judge that can only say "not justified".

The grounded judge always runs when an exception is allowed: each structured claim of the
rationale is checked against the assembled context, and the rationale must carry the evidence
its reason requires. The LLM judge runs when the pack asks for it (per action or reason and
amount band) and the guard has one: `Guard(pack, judge=OpenAIJudge(...))`. Either can only turn
`allow_exception` into `route`; neither is consulted for anything else (invariant 2).

`Judge` is the seam: one `model` and one `assess` method. We ship `OpenAIJudge` (any
OpenAI-compatible endpoint), `StaticJudge` (a fixed verdict), and `RecordingJudge` /
`ReplayJudge` to run eval suites offline with the verdicts a real model gave.
"""

from discretion.decision import ClaimCheck, JudgeRecord, Verdict
from discretion.judge._openai import OpenAIJudge
from discretion.judge._prompt import PROMPT_FILES, prompt_version
from discretion.judge._replay import RecordingJudge, ReplayJudge, StaticJudge
from discretion.judge._request import Assessment, Judge, JudgeRequest, Prompt, verdict_key

__all__ = [
    "PROMPT_FILES",
    "Assessment",
    "ClaimCheck",
    "Judge",
    "JudgeRecord",
    "JudgeRequest",
    "OpenAIJudge",
    "Prompt",
    "RecordingJudge",
    "ReplayJudge",
    "StaticJudge",
    "Verdict",
    "prompt_version",
    "verdict_key",
]
