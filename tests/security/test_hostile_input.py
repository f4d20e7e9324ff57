"""Hostile input: fuzzed proposals, tool arguments, facts and policy packs.

A proposal is either decided or refused with `ProposalError`; a broken pack is a
`ConfigurationError` with a message. Nothing else escapes, nothing hangs, and nothing the
fuzzer sends is ever allowed above the authority of the actor's role.
"""

from __future__ import annotations

import copy
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import NOW, SHOP_PACK, good_facts, refund
from discretion import (
    ConfigurationError,
    Guard,
    Outcome,
    PolicyError,
    ProposalError,
    SqlStore,
    load_pack,
)
from discretion.context import StaticContextProvider
from discretion.lineage import is_text

PACK = load_pack(SHOP_PACK)
SOURCE = SHOP_PACK.read_text(encoding="utf-8")
ALLOWING = (Outcome.ALLOW, Outcome.ALLOW_EXCEPTION)
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

strings = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\ud800",  # a lone surrogate: a model's "\\ud800", read by json.loads
            "a\udfffb",
            "refund",
            "issue_refund",
            "manager",
            "1e400",
            "-0",
            "0.001",
            "NaN",
            "١٢٣",  # Arabic-Indic digits
            "9" * 400,
            "1e9999",
            "'; DROP TABLE decisions; --",
            "{{ 7 * 7 }}",
            "<script>alert(1)</script>",
        ]
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    strings,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(strings, inner, max_size=4)
    ),
    max_leaves=12,
)
# Where a fuzzed value goes in an otherwise well-formed proposal.
PATHS = [
    ("actor",),
    ("actor", "id"),
    ("actor", "role"),
    ("actor", "is_ai"),
    ("tool",),
    ("tool", "name"),
    ("tool", "arguments"),
    ("tool", "arguments", "amount"),
    ("tool", "arguments", "currency"),
    ("tool", "arguments", "customer_id"),
    ("tool", "arguments", "case_id"),
    ("tool", "arguments", "order_id"),
    ("tool", "arguments", "note"),
    ("action",),
    ("amount",),
    ("customer_id",),
    ("rationale",),
    ("rationale", "reason"),
    ("rationale", "text"),
    ("rationale", "claims"),
    ("rationale", "precedents"),
    ("idempotency_key",),
    ("unexpected",),
]


def limit_of(role_id: str, action: str) -> int:
    """The most the role may allow for the action, standard or exception, in minor units."""
    role = PACK.role(role_id)
    assert role is not None
    authority = role.authority.get(action)
    return max(authority.standard_minor, authority.exception_minor) if authority else 0


def put(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target: Any = document
    for part in path[:-1]:
        if not isinstance(target, dict):
            return
        target = target.setdefault(part, {})
    if isinstance(target, dict):
        target[path[-1]] = value


def guard_on(facts: dict[str, Any]) -> Guard:
    return Guard(
        PACK, store=SqlStore("sqlite://"), context=StaticContextProvider(facts), clock=lambda: NOW
    )


def assert_decided_within_authority(guard: Guard, proposal: Any) -> None:
    try:
        decision = guard.decide(proposal)
    except ProposalError as exc:
        message = str(exc)
    else:
        message = None
    if message is not None:
        assert message, "a refusal says what is wrong"
        return
    if decision.outcome in ALLOWING:
        assert decision.amount is not None, "an allowed action always names its amount"
        assert decision.amount.minor <= limit_of(decision.actor_role, decision.action)


@FUZZ
@given(
    cents=st.integers(0, 10**9),
    role=st.sampled_from([r.id for r in PACK.roles]),
    faults=st.lists(st.tuples(st.sampled_from(PATHS), json_values), max_size=4),
)
def test_fuzzed_proposals_are_decided_or_refused_never_allowed_above_authority(cents, role, faults):
    proposal = refund(str(Decimal(cents) / 100), role=role, actor="a", reason="carrier-lost")
    for path, value in faults:
        put(proposal, path, copy.deepcopy(value))
    assert_decided_within_authority(guard_on(good_facts(**{"shipment.status": "lost"})), proposal)


@FUZZ
@given(document=json_values)
def test_any_json_document_as_a_proposal_is_refused_or_decided(document):
    assert_decided_within_authority(guard_on(good_facts()), document)


@FUZZ
@given(
    cents=st.integers(0, 10**7),
    facts=st.dictionaries(
        st.sampled_from(sorted(PACK.fields)), json_values, min_size=1, max_size=6
    ),
)
def test_facts_of_any_shape_from_the_case_system_never_allow_above_authority(cents, facts):
    proposal = refund(str(Decimal(cents) / 100), reason="carrier-lost")
    assert_decided_within_authority(guard_on(good_facts(**facts)), proposal)


def test_tool_arguments_nested_too_deep_are_a_proposal_error_not_a_crash():
    nested: dict[str, Any] = {}
    cursor = nested
    for _ in range(5000):
        cursor["a"] = {}
        cursor = cursor["a"]
    proposal = refund("10.00")
    proposal["tool"]["arguments"]["metadata"] = nested
    guard = guard_on(good_facts())
    with pytest.raises(ProposalError, match="nested more than 32 levels") as raised:
        guard.decide(proposal)
    assert raised.value.field == "tool.arguments"
    assert guard.store.find_decision("bot-1", "k-1") is None


@pytest.mark.parametrize(
    "spelt", ["case-1\nBcc: x@evil.test", "case\r1", "case\t1", "case\x001", "case\u20281"]
)
@pytest.mark.parametrize("where", ["argument", "proposal"])
def test_an_id_with_a_control_character_is_refused(spelt, where):
    # Carried into a mail notice's subject, a line break ended the header and the next
    # delivery pass with it.
    proposal = refund("10.00")
    if where == "argument":
        proposal["tool"]["arguments"]["case_id"] = spelt
        field = "tool.arguments.case_id"
    else:
        del proposal["tool"]["arguments"]["case_id"]
        proposal["case_id"] = spelt
        field = "case_id"
    guard = guard_on(good_facts())
    refused = "an id holds no control characters|holds a NUL character"
    with pytest.raises(ProposalError, match=refused) as raised:
        guard.decide(proposal)
    assert raised.value.field == field
    assert guard.store.find_decision("bot-1", "k-1") is None


@pytest.mark.parametrize(
    ("where", "field"),
    [
        (("tool", "arguments", "note"), "tool.arguments.note"),
        (("tool", "arguments", "meta", "lines", 0), "tool.arguments.meta.lines.0"),
        (("tool", "arguments", "meta", "\ud800"), "tool.arguments.meta"),  # a name
        (("rationale", "claims", 0, "value"), "rationale.claims.0.value"),
    ],
)
def test_a_lone_surrogate_in_a_call_is_a_proposal_error_naming_it(where, field):
    # A model's `"\\ud800"` read by json.loads: not text, so no digest could encode it and the
    # agent's run crashed instead of being told to correct the call.
    proposal = refund("10.00")
    proposal["tool"]["arguments"]["meta"] = {"lines": ["x"]}
    proposal["rationale"]["claims"] = [{"field": "shipment.status", "value": "lost"}]
    node = proposal
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = "a\ud800b"
    guard = guard_on(good_facts())
    with pytest.raises(ProposalError, match="surrogate") as raised:
        guard.decide(proposal)
    assert raised.value.field == field
    assert is_text(str(raised.value))  # the message itself can be shown and sent
    assert guard.store.find_decision("bot-1", "k-1") is None


def test_a_fact_holding_a_lone_surrogate_is_context_unavailable():
    # CEL cannot hold it either: a rule reading it crashed the decision.
    decision = guard_on(good_facts(**{"shipment.status": "lo\udc80st"})).decide(
        refund("10.00", reason="carrier-lost")
    )
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.context-unavailable"]


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("1e9999", "not a decimal amount"),  # no exponents in the amount grammar
        ("1E+400", "not a decimal amount"),
        ("9" * 400, "too large"),
        (10**40, "too large"),
        (1e300, "too large"),
        # 18 digits before the point fit the amount grammar; in cents they overflow an int64.
        ("92233720368547758.08", "in minor units an amount has at most 18 digits"),
        ("10000000000000000.00", "in minor units"),
    ],
)
def test_astronomical_amounts_are_a_proposal_error_not_a_crash(amount, message):
    guard = guard_on(good_facts())
    with pytest.raises(ProposalError, match=message) as raised:
        guard.decide(refund(amount))
    assert raised.value.field == "amount"


def test_rationale_and_claims_over_their_limits_are_refused():
    guard = guard_on(good_facts())
    long_text = refund("10.00")
    long_text["rationale"]["text"] = "a" * 8001
    with pytest.raises(ProposalError, match=r"rationale\.text"):
        guard.decide(long_text)
    many_claims = refund("10.00")
    many_claims["rationale"]["claims"] = [{"field": "shipment.status", "value": "lost"}] * 51
    with pytest.raises(ProposalError, match=r"rationale\.claims"):
        guard.decide(many_claims)


# Policy packs --------------------------------------------------------------------------------


def mapping_keys(node: Any, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(str(key))
            mapping_keys(value, found)
    elif isinstance(node, list):
        for item in node:
            mapping_keys(item, found)
    return found


# Keys of the schema (not names the pack chooses, like field or rule ids).
SCHEMA_KEYS = sorted(
    {
        "pack",
        "currency",
        "context",
        "roles",
        "ai",
        "authority",
        "standard",
        "exception",
        "reasons",
        "actions",
        "tools",
        "amount",
        "customer",
        "case",
        "order",
        "reads",
        "hard_limits",
        "when",
        "message",
        "exceptions",
        "max_amount",
        "granted_by",
        "budgets",
        "key",
        "window",
        "limit",
        "outcomes",
        "on_exceed",
        "type",
        "nullable",
    }
    & mapping_keys(yaml.safe_load(SOURCE), set())
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fuzzed.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load_or_refuse(path: Path) -> Any:
    """Load a pack; a refusal must be a ConfigurationError with a message naming the file."""
    try:
        return load_pack(path)
    except ConfigurationError as exc:
        refusal = exc
    assert str(refusal)
    assert str(path) in str(refusal) or isinstance(refusal, PolicyError)
    return None


@FUZZ
@given(key=st.sampled_from(SCHEMA_KEYS), typo=st.sampled_from(["drop", "double", "swap", "case"]))
def test_a_misspelt_schema_key_is_refused_never_ignored(tmp_path, key, typo):
    misspelt = {
        "drop": key[:-1],
        "double": key + key[-1],
        "swap": key[1] + key[0] + key[2:] if len(key) > 2 else key + "_",
        "case": key.upper(),
    }[typo]
    if misspelt == key:
        misspelt = key + "_"
    lines = SOURCE.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if f"{key}:" in line.split("#")[0])
    lines[at] = lines[at].replace(f"{key}:", f"{misspelt}:", 1)
    with pytest.raises(ConfigurationError) as raised:
        load_pack(write(tmp_path, "".join(lines)))
    assert str(raised.value)


@FUZZ
@given(seed=st.integers(0, 2**32 - 1), edits=st.integers(1, 4))
def test_a_mangled_pack_is_refused_or_loads_as_a_different_version(tmp_path, seed, edits):
    rng = random.Random(seed)
    text = SOURCE
    for _ in range(edits):
        if not text:
            break  # truncated away: nothing left to mangle
        cut = rng.randrange(len(text))
        kind = rng.choice(["delete-line", "truncate", "insert", "replace"])
        if kind == "delete-line":
            lines = text.splitlines(keepends=True)
            del lines[rng.randrange(len(lines))]
            text = "".join(lines)
        elif kind == "truncate":
            text = text[:cut]
        elif kind == "insert":
            text = (
                text[:cut] + rng.choice(["&a ", "*a", ":", "- ", "{", "]", "\t", "'"]) + text[cut:]
            )
        else:
            text = text[:cut] + rng.choice(["0", "9", "x", " ", "\n", "&&", "||"]) + text[cut + 1 :]
    loaded = load_or_refuse(write(tmp_path, text))
    if loaded is not None:
        try:
            same = yaml.safe_load(text) == yaml.safe_load(SOURCE)
        except yaml.YAMLError:
            same = False
        # A pack that changed is never mistaken for the one reviewed: its version differs.
        assert same or loaded.version != PACK.version


BILLION_LAUGHS = "".join(
    f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9) if i else ', '.join(['lol'] * 9)}]\n"
    for i in range(9)
)


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(lambda bomb: SOURCE + bomb, id="top-level"),
        pytest.param(
            lambda bomb: (
                bomb.replace("x", "y")
                + SOURCE.replace("  credit:\n", "  credit:\n    description: *a8\n", 1)
            ),
            id="inside-an-action",
        ),
    ],
)
def test_a_yaml_alias_bomb_is_refused_instead_of_hanging(tmp_path, where):
    with pytest.raises(PolicyError, match="expands to more than 200000 YAML values"):
        load_pack(write(tmp_path, where(BILLION_LAUGHS)))


@pytest.mark.parametrize("depth", [65, 3000])
def test_values_nested_too_deeply_are_refused_naming_the_file_and_line(tmp_path, depth):
    # 3,000 levels overflowed the YAML reader's recursion: a bare RecursionError, not an error
    # naming the file.
    nested = "[" * depth + "]" * depth
    path = write(tmp_path, SOURCE + f"description: {nested}\n")
    with pytest.raises(PolicyError, match="nested more than 64 levels deep") as caught:
        load_pack(path)
    assert caught.value.path == str(path)


@pytest.mark.parametrize(
    "text",
    [
        "!!python/object/apply:os.system ['true']\n",
        "pack: x\ncurrency: !!python/name:os.system\n",
        "\x00\x01\x02",
        "pack: [" * 200,
        "",
        "- just\n- a list\n",
    ],
    ids=["python-object", "python-name", "binary", "unclosed", "empty", "list"],
)
def test_hostile_pack_files_are_configuration_errors(tmp_path, text):
    with pytest.raises(ConfigurationError) as raised:
        load_pack(write(tmp_path, text))
    assert str(raised.value)
