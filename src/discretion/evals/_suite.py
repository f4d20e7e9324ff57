"""The eval suite format: YAML files of hand-written tickets and what discretion must decide.

A suite names its pack and its context fixtures, a clock, a default actor and thresholds; each
case is one support situation with its proposal, any history decided before it, paraphrased
rationales, a recorded judge verdict, and the expected outcome.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from discretion.errors import ConfigurationError

__all__ = [
    "Case",
    "Expectation",
    "HistoryItem",
    "PrecedentSetup",
    "RecordedVerdict",
    "Suite",
    "Thresholds",
    "find_suite_files",
    "load_suite",
    "load_suites",
    "resolve_time",
    "substitute",
]

_MODEL = ConfigDict(frozen=True, extra="forbid")
_OFFSET = re.compile(r"^(?P<sign>[+-])(?P<parts>(?:\d+[wdhms])+)$")
_PART = re.compile(r"(\d+)([wdhms])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}

CaseId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")]
ExpectedOutcome = Literal["allow", "allow_exception", "route", "deny", "error"]
TimeText = Annotated[str, StringConstraints(min_length=2, max_length=40)]


class Expectation(BaseModel):
    """What discretion must decide for a proposal."""

    model_config = _MODEL

    outcome: ExpectedOutcome
    """`allow`, `allow_exception`, `route`, `deny`, or `error` for a proposal discretion must
    refuse as malformed (nothing recorded)."""
    role: str | None = None
    """When routed: the lowest role that must decide."""
    rules: list[str] = []
    """Rule ids the decision must carry (others may be there too)."""
    error: str | None = None
    """For `error`: the name of the error class, such as `ProposalError`."""
    field: str | None = None
    """For `error`: the proposal field the error must name, such as `currency`."""


class RecordedVerdict(BaseModel):
    """A judge verdict recorded for a case, replayed by `--judge recorded`."""

    model_config = _MODEL

    justified: bool
    """Whether the rationale supports the exception."""
    clause: str | None = None
    """The policy clause the verdict relied on."""
    unsupported_claims: list[str] = []
    """Claims in the rationale the facts do not support."""
    reason: str = ""
    """The judge's short reason."""
    tokens: int = 0
    """Tokens the recorded call used, counted in the report."""


class PrecedentSetup(BaseModel):
    """A precedent set from a history decision, for a case to cite by `@name`."""

    model_config = _MODEL

    name: CaseId
    """What the case's rationale cites as `@name`."""
    grantor: dict[str, Any]
    """The person who sets it (an `Actor`)."""
    spec: dict[str, Any]
    """A `PrecedentSpec`; `expires_at` may be an offset from the case clock (`+7d`)."""
    revoke: str | None = None
    """Revoke it, with this reason, before the case is decided."""
    revoked_by: dict[str, Any] | None = None
    """Who revokes it; the grantor when absent."""


class ApprovalStep(BaseModel):
    """A person deciding a history item's routed case, as the approver desk would."""

    model_config = _MODEL

    by: dict[str, Any]
    """The person (an `Actor`: `id` and `role`; never an AI)."""
    note: str = "decided in the eval"
    """Why, as the desk requires one."""
    amount: str | None = None
    """Approve a lower amount than was asked, in the case's currency."""
    at: TimeText | None = None
    """When: an ISO 8601 time or an offset from the case clock; the item's time when absent."""
    refused: bool | Annotated[str, Field(pattern="^[A-Z][A-Za-z]*$")] = False
    """This person must be refused (`true`: as a person is refused, an `ApprovalError` of any
    kind), or refused with this error (`ApprovalError`, `StaleApproval`, `ApprovalConflict`,
    `ProposalError` for an amount above the one asked): the wrong person approving is a check
    too. The next step goes on as if they had not acted; a step not refused, or written as no
    person or amount the desk takes, fails the case."""


class HistoryItem(BaseModel):
    """A proposal decided before the case, in the same ledger (budgets, repeats, precedent)."""

    model_config = _MODEL

    proposal: dict[str, Any]
    """A proposal; the suite's actor when it names none. `{n}` in any text is replaced by the
    repetition number."""
    at: TimeText | None = None
    """When it was decided: an ISO 8601 time or an offset from the case clock (`-2h`, `-31d`)."""
    facts: dict[str, Any] = {}
    """Facts that override the case's for this item only (another customer's tier, say)."""
    repeat: Annotated[int, Field(ge=1, le=500)] = 1
    """Decide it this many times, `{n}` in any of its text running from 1 (`at: "-{n}h"`)."""
    expect: Expectation | None = None
    """What each repetition must get; a mismatch fails the case."""
    precedent: PrecedentSetup | None = None
    """Set a precedent from the (last) decision of this item."""
    approve: list[ApprovalStep] = []
    """People approving each repetition's routed case, in order (two, above
    `two_approvals_above`); re-checked as at the desk, so a refusal fails the case unless the
    step says it must be refused (`refused`). One person may be written alone, not in a list."""
    reject: ApprovalStep | None = None
    """A person rejecting each repetition's routed case."""

    @field_validator("approve", mode="before")
    @classmethod
    def _one_or_a_list(cls, value: Any) -> Any:
        # One step alone reads as a list of one: its own errors are then named, not the union's.
        return [value] if isinstance(value, Mapping) else value

    @model_validator(mode="after")
    def _one_verdict(self) -> HistoryItem:
        if self.approve and self.reject is not None:
            raise ValueError("a history item is approved or rejected, not both")
        return self

    def nth(self, n: int) -> HistoryItem:
        """Its `n`th repetition: each `{n}` in its text (times, facts, notes too) made `n`."""
        return HistoryItem.model_validate(substitute(self.model_dump(exclude_unset=True), n))

    @property
    def verb(self) -> str:
        """What its people do: `approve` or `reject`."""
        return "reject" if self.reject is not None else "approve"

    def people(self) -> list[ApprovalStep]:
        """The people deciding its routed case, in order: the one rejecting it, or its approvals."""
        if self.reject is not None:
            return [self.reject]
        return self.approve


class Case(BaseModel):
    """One edge-case ticket and what discretion must decide for it."""

    model_config = _MODEL

    id: CaseId
    """Unique in its suite."""
    description: str = ""
    """The support situation in a sentence or two."""
    tags: list[str] = []
    """Edge-case categories, such as `at-limit` or `prompt-injection`."""
    now: AwareDatetime | None = None
    """Decide at this time instead of the suite's clock."""
    facts: dict[str, Any] = {}
    """Facts that override the suite's context for this case, in the JSON form of
    `StaticContextProvider` (money as `{amount, currency}`, times as ISO 8601)."""
    history: list[HistoryItem] = []
    """Proposals decided first, in order."""
    proposal: dict[str, Any]
    """The proposal under test; the suite's actor when it names none. `@name` in
    `rationale.precedents` cites a precedent set in the history."""
    paraphrases: list[str] = []
    """Other wordings of the rationale text; each must get the same outcome."""
    judge: RecordedVerdict | None = None
    """The verdict a judge gave this case, for offline runs."""
    expect: Expectation
    """What discretion must decide."""


class Thresholds(BaseModel):
    """The figures a suite must reach; a missed one fails the run."""

    model_config = _MODEL

    max_leakage: Decimal | dict[str, Decimal] | None = None
    """The most money that may move in cases expected to route, deny or be refused: one amount
    for each currency, or per currency (`{USD: "0.00", JPY: "500"}`; a currency it leaves out
    may leak nothing). Amounts in two currencies are never added."""
    min_accuracy: float | None = None
    """The least share of cases that must pass (outcome, role and rules)."""
    max_false_block_rate: float | None = None
    """The largest share of cases expected to be allowed that may be routed or denied."""
    max_over_escalation_rate: float | None = None
    """The largest share of routed cases that may go higher than needed."""
    min_consistency: float | None = None
    """The least share of cases whose repeat and paraphrases agree."""
    min_rule_coverage: float | None = None
    """The least share of the pack's rules the suite must exercise."""


class Suite(BaseModel):
    """A suite of cases against one pack and one set of context fixtures."""

    model_config = _MODEL

    suite: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    """The suite's name."""
    description: str = ""
    pack: str
    """The pack file or folder, relative to the suite file."""
    context: str | None = None
    """Facts: a `.sql` case script, a SQLite case database or a `.json` facts file, relative
    to the suite file."""
    facts: dict[str, Any] = {}
    """Facts that override the context for every case."""
    now: AwareDatetime
    """The clock every case is decided at, unless it names its own."""
    actor: dict[str, Any] = {"id": "acme-assist", "role": "ai_agent", "is_ai": True}
    """The actor of proposals that name none."""
    judge: Literal["off", "recorded"] = "off"
    """The LLM judge the expectations are written for: `recorded` when the cases carry the
    verdicts a judge gave and the pack asks for them."""

    @model_validator(mode="before")
    @classmethod
    def _without_extensions(cls, value: Any) -> Any:
        # `x-` keys hold what the suite's YAML anchors name (`x-actors: &tina {...}`): read
        # where the anchors are used, never as the suite's own fields.
        if isinstance(value, Mapping):
            return {k: v for k, v in value.items() if not str(k).startswith("x-")}
        return value

    @field_validator("judge", mode="before")
    @classmethod
    def _unquoted_off(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted `off` (or `no`, `false`) as false: it means "off".
        return "off" if value is False else value

    thresholds: Thresholds = Thresholds()
    cases: Annotated[list[Case], Field(min_length=1)]
    source: str = ""
    """The file the suite was read from (set on load)."""

    def path_of(self, relative: str) -> Path:
        """A path the suite names, relative to its file."""
        base = Path(self.source).parent if self.source else Path.cwd()
        return (base / relative).resolve()


def is_offset(text: str) -> bool:
    """Whether `text` is an offset such as `-2h` or `+7d`."""
    return _OFFSET.match(text) is not None


def resolve_time(text: str | None, now: datetime) -> datetime:
    """An ISO 8601 time, or an offset from `now` (`-2h`, `+7d`, `-29d23h59m`); `now` when None."""
    if text is None:
        return now
    match = _OFFSET.match(text)
    if match is not None:
        try:
            delta = timedelta()
            for number, unit in _PART.findall(match["parts"]):
                delta += timedelta(**{_UNITS[unit]: int(number)})
            return now + delta if match["sign"] == "+" else now - delta
        except OverflowError:
            raise ConfigurationError(
                f"time {text!r} is out of range: an offset reaches no further than year 9999"
            ) from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigurationError(
            f"time {text!r} is neither ISO 8601 nor an offset such as -2h, +7d or -29d23h59m"
        ) from exc
    if moment.tzinfo is None:
        raise ConfigurationError(f"time {text!r} needs a UTC offset, such as +00:00")
    return moment


def substitute(value: Any, n: int) -> Any:
    """`value` with every `{n}` in its text replaced by `n`."""
    if isinstance(value, str):
        return value.replace("{n}", str(n))
    if isinstance(value, dict):
        return {key: substitute(item, n) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, n) for item in value]
    return value


def find_suite_files(paths: Iterable[str | Path]) -> list[Path]:
    """The suite files among `paths`: files as given, folders searched for YAML with `suite:`."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for candidate in sorted([*path.rglob("*.yaml"), *path.rglob("*.yml")]):
                if _is_suite(candidate):
                    found.append(candidate)
        elif path.exists():
            found.append(path)
        else:
            raise ConfigurationError(f"{path}: no such suite file or folder")
    if not found:
        joined = ", ".join(str(p) for p in paths)
        raise ConfigurationError(f"no eval suites (YAML with a top-level 'suite:') in {joined}")
    return found


def _is_suite(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as stream:
            head = stream.read(4096)
    except OSError:
        return False
    return re.search(r"^suite:", head, flags=re.MULTILINE) is not None


def load_suite(path: str | Path) -> Suite:
    """Read and validate one suite file.

    Raises:
        ConfigurationError: naming the file and the case at fault.
    """
    source = Path(path)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"{source}: cannot read the suite: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}: a suite must be a YAML mapping")
    try:
        suite = Suite.model_validate({**data, "source": str(source)})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise ConfigurationError(
            f"{source}: {_where(data, err['loc'])}: {err['msg']}"
            + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")
        ) from exc
    _check(suite)
    return suite


def load_suites(paths: Iterable[str | Path]) -> list[Suite]:
    """Load every suite among `paths` (files, or folders searched for suites)."""
    return [load_suite(path) for path in find_suite_files(paths)]


def _where(data: dict[str, Any], loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    # Name the case by its id, not its index, so the author can find it.
    if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
        cases = data.get("cases") or []
        if loc[1] < len(cases) and isinstance(cases[loc[1]], dict):
            parts[1] = repr(cases[loc[1]].get("id", loc[1]))
    return ".".join(parts) or "<root>"


def _check(suite: Suite) -> None:
    seen: set[str] = set()
    for case in suite.cases:
        where = f"{suite.source}: case {case.id!r}"
        if case.id in seen:
            raise ConfigurationError(f"{where}: the id is used twice in the suite")
        seen.add(case.id)
        if case.expect.outcome == "route" and case.expect.role is None:
            raise ConfigurationError(f"{where}: expect.role is needed when the outcome is route")
        if case.expect.outcome != "route" and case.expect.role is not None:
            raise ConfigurationError(f"{where}: expect.role is only for routed outcomes")
        # A proposal discretion refuses is not the suite's mistake but the case's result: the
        # runner decides it, and a case that expected an outcome fails alone, naming the field.
        names = {item.precedent.name for item in case.history if item.precedent is not None}
        rationale = case.proposal.get("rationale")
        cited = rationale.get("precedents") if isinstance(rationale, dict) else None
        for ref in map(str, cited if isinstance(cited, list) else []):
            if ref.startswith("@") and ref[1:] not in names:
                raise ConfigurationError(
                    f"{where}: cites {ref!r} but no history item sets a precedent named {ref[1:]!r}"
                )
        for index, repeated in enumerate(case.history):
            # The first and the last repetition: `{n}` may make a time in either out of range.
            for n in sorted({1, repeated.repeat}):
                item = repeated.nth(n)
                try:
                    resolve_time(item.at, case.now or suite.now)
                except ConfigurationError as exc:
                    raise ConfigurationError(f"{where}: history[{index}].at: {exc}") from exc
                for step in item.people():
                    try:
                        resolve_time(step.at, case.now or suite.now)
                    except ConfigurationError as exc:
                        raise ConfigurationError(
                            f"{where}: history[{index}].{item.verb}.at: {exc}"
                        ) from exc
