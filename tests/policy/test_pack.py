from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from discretion import ConfigurationError, PolicyError, load_pack
from discretion.pipeline._budgets import route_target

SHOP_PACK = Path(__file__).parents[1] / "packs" / "shop.yaml"

# A small pack whose every line is known, so errors can be checked against the line they name.
HEAD = """\
pack: mini
currency: USD
context:
  order.total: money
  order.shipped_at: {type: timestamp, nullable: true}
  customer.tier: string
"""
ROLES = """\
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {standard: "50.00", exception: "20.00"}
  - id: tier1
    authority:
      refund: {standard: "200.00", exception: "100.00"}
"""
ACTIONS = """\
actions:
  refund:
    tools:
      - name: issue_refund
        amount: amount
    reads: [order.total, order.shipped_at]
    standard:
      - id: late-delivery
        when: now - order.shipped_at > duration('24h')
        max_amount: order.total
    exceptions:
      - id: goodwill
        when: "true"
        max_amount: order.total / 5
        granted_by: [tier1]
"""
BUDGETS = """\
budgets:
  - id: actor-daily
    key: actor
    window: 1d
    limit: "500.00"
"""
MINI = HEAD + ROLES + ACTIONS + BUDGETS
# ROLES cut in two for packs split over files: the `roles:` key with the AI role, then tier1's body.
AI_ROLES, TIER1_BODY = ROLES.split("  - id: tier1\n")
DECLARED_FOR_REFUND = (
    "actor.id, actor.is_ai, actor.role, amount, asked_at, currency, now, order.shipped_at,"
    " order.total, rationale.reason"
)


def write(folder: Path, text: str, name: str = "pack.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def mutate(old: str, new: str, text: str = MINI) -> str:
    """`text` with `old` replaced by `new`; `old` must occur exactly once, so no test runs on the
    unmutated pack by accident."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line of the `nth` line of `text` that contains `needle`."""
    hits = [number for number, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) >= nth, f"{needle!r} is not in the text {nth} time(s)"
    return hits[nth - 1]


def pack_error(source: Path) -> PolicyError:
    """The error loading the pack file or folder `source` raises."""
    with pytest.raises(PolicyError) as info:
        load_pack(source)
    return info.value


def load_error(folder: Path, text: str) -> tuple[PolicyError, Path]:
    path = write(folder, text)
    return pack_error(path), path


# Loading


def test_shop_pack_loads_with_its_roles_actions_rules_and_budgets():
    pack = load_pack(SHOP_PACK)

    assert pack.name == "test-shop"
    assert pack.currency == "USD"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", pack.version)
    assert pack.sources == (str(SHOP_PACK),)
    assert [role.id for role in pack.roles] == ["ai_agent", "tier1", "tier2", "manager"]
    assert [role.rank for role in pack.roles] == [0, 1, 2, 3]
    assert [role.is_ai for role in pack.roles] == [True, False, False, False]
    ai_refund = pack.roles[0].authority["refund"]
    assert (ai_refund.standard_minor, ai_refund.exception_minor) == (5000, 2000)
    assert pack.role("manager").authority["refund"].reasons == frozenset(
        {"carrier-lost", "outage-goodwill", "manager-discretion"}
    )
    assert set(pack.actions) == {"refund", "credit"}
    assert pack.tools["issue_refund"][0] == "refund"
    assert pack.tools["give_credit"][0] == "credit"
    refund = pack.actions["refund"]
    assert [r.id for r in refund.hard_limits] == ["fraud-flag", "refund-above-order"]
    assert [r.id for r in refund.standard] == ["refund-within-30-days"]
    assert [r.id for r in refund.exceptions] == [
        "carrier-lost",
        "outage-goodwill",
        "manager-discretion",
    ]
    assert refund.reason("outage-goodwill").granted_by == frozenset({"tier1", "tier2", "manager"})
    assert pack.rule_ids() == [
        "fraud-flag",
        "refund-above-order",
        "refund-within-30-days",
        "carrier-lost",
        "outage-goodwill",
        "manager-discretion",
        "credit-gold",
        "customer-exceptions-30d",
        "actor-daily",
        "org-daily-deny",
    ]
    budget = pack.budgets[0]
    assert (budget.id, budget.key, budget.limit_minor) == (
        "customer-exceptions-30d",
        "customer",
        15000,
    )
    # Without route_to, the highest human role with authority over the action (the manager).
    assert budget.route_to is None
    assert route_target(pack, budget, pack.roles[0], "refund").id == "manager"
    assert pack.budgets[2].on_exceed == "deny"


def test_mini_pack_loads(tmp_path):
    pack = load_pack(write(tmp_path, MINI))

    assert pack.name == "mini"
    assert pack.rule_ids() == ["late-delivery", "goodwill", "actor-daily"]
    assert pack.actions["refund"].reads == ("order.total", "order.shipped_at")


def test_unquoted_yaml_literals_are_read_as_the_cel_they_spell(tmp_path):
    """`when: true` and `max_amount: 5000` are a YAML bool and int, not text: they are the CEL
    expressions `true` and `5000`, not a schema error."""
    text = mutate(
        "max_amount: order.total / 5", "max_amount: 2500", mutate('when: "true"', "when: true")
    )
    pack = load_pack(write(tmp_path, text))
    [goodwill] = [r for r in pack.actions["refund"].exceptions if r.id == "goodwill"]
    assert goodwill.when is not None
    assert goodwill.when.source == "true"
    assert goodwill.max_amount is not None
    assert goodwill.max_amount.source == "2500"


# Folders and versions


def split_into(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir()
    for name, text in files.items():
        write(folder, text, name)
    return folder


def test_a_pack_split_over_a_folder_merges_and_has_the_single_file_version(tmp_path):
    single = load_pack(write(tmp_path, MINI))
    folder = split_into(
        tmp_path / "pack",
        {"00-head.yaml": HEAD, "10-roles.yaml": ROLES, "20-actions.yaml": ACTIONS + BUDGETS},
    )

    split = load_pack(folder)

    assert split.version == single.version
    assert split.sources == tuple(
        str(folder / name) for name in ("00-head.yaml", "10-roles.yaml", "20-actions.yaml")
    )
    assert split.rule_ids() == single.rule_ids()
    assert [role.id for role in split.roles] == ["ai_agent", "tier1"]
    assert set(split.fields) == {"order.total", "order.shipped_at", "customer.tier"}


def test_lists_and_maps_split_across_files_are_concatenated_and_merged(tmp_path):
    folder = split_into(
        tmp_path / "pack",
        {
            "00-head.yaml": "pack: mini\ncurrency: USD\n",
            "01-context-a.yaml": "context:\n  order.total: money\n",
            "02-context-b.yaml": (
                "context:\n  order.shipped_at: {type: timestamp, nullable: true}\n"
                "  customer.tier: string\n"
            ),
            "10-roles-ai.yaml": AI_ROLES,
            "11-roles-human.yaml": "roles:\n  - id: tier1\n" + TIER1_BODY,
            "20-actions.yaml": ACTIONS,
            "30-budgets.yaml": BUDGETS,
        },
    )

    split = load_pack(folder)

    assert [role.id for role in split.roles] == ["ai_agent", "tier1"]
    assert split.version == load_pack(write(tmp_path, MINI)).version


def test_a_folder_with_different_content_has_a_different_version(tmp_path):
    single = load_pack(write(tmp_path, MINI))
    changed_roles = mutate('standard: "200.00"', 'standard: "250.00"', ROLES)
    folder = split_into(
        tmp_path / "pack",
        {
            "00-head.yaml": HEAD,
            "10-roles.yaml": changed_roles,
            "20-actions.yaml": ACTIONS + BUDGETS,
        },
    )

    assert load_pack(folder).version != single.version


def test_version_ignores_comments_white_space_and_key_order(tmp_path):
    original = load_pack(write(tmp_path, MINI, "original.yaml"))
    data = yaml.safe_load(MINI)
    # sort_keys reorders every mapping; the block style and indent change every line.
    restyled = "# the mini pack\n\n" + yaml.safe_dump(data, sort_keys=True, indent=4)
    assert restyled.index("actions:") < restyled.index("pack:")
    hand_written = mutate(
        "    reads: [order.total, order.shipped_at]\n",
        "    reads:    # what refund may see\n      - order.total\n      - order.shipped_at\n\n",
    )
    hand_written = mutate(
        "pack: mini\ncurrency: USD\n", "currency: USD  # ISO\npack: mini\n", hand_written
    )

    assert load_pack(write(tmp_path, restyled, "restyled.yaml")).version == original.version
    assert load_pack(write(tmp_path, hand_written, "hand.yaml")).version == original.version


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('standard: "50.00"', 'standard: "50.01"'),
        ("window: 1d", "window: 2d"),
        ("granted_by: [tier1]", "granted_by: [ai_agent, tier1]"),
        ("key: actor", "key: organisation"),
    ],
)
def test_version_changes_when_content_changes(tmp_path, old, new):
    original = load_pack(write(tmp_path, MINI, "original.yaml"))
    changed = load_pack(write(tmp_path, mutate(old, new), "changed.yaml"))

    assert changed.version != original.version


def test_a_top_level_key_in_two_files_names_both_files(tmp_path):
    folder = split_into(
        tmp_path / "pack",
        {
            "00-head.yaml": HEAD,
            "10-roles.yaml": ROLES,
            "20-actions.yaml": "currency: EUR\n" + ACTIONS,
        },
    )

    error = pack_error(folder)

    first, second = str(folder / "00-head.yaml"), str(folder / "20-actions.yaml")
    assert str(error) == (
        f"{second}: top-level key 'currency' is defined twice: in {first} and here"
    )
    assert error.path == second


def test_an_action_in_two_files_names_both_files(tmp_path):
    folder = split_into(
        tmp_path / "pack",
        {
            "00-head.yaml": HEAD + ROLES,
            "10-refund.yaml": ACTIONS,
            "20-refund-again.yaml": ACTIONS.replace("late-delivery", "late").replace(
                "goodwill", "kind"
            ),
        },
    )

    error = pack_error(folder)

    first, second = str(folder / "10-refund.yaml"), str(folder / "20-refund-again.yaml")
    assert f"actions.refund is defined twice: in {first} and here" in str(error)
    assert error.path == second


def test_a_context_field_in_two_files_names_both_files(tmp_path):
    folder = split_into(
        tmp_path / "pack",
        {
            "00-head.yaml": HEAD,
            "05-more-context.yaml": "context:\n  customer.tier: string\n",
            "10-rest.yaml": ROLES + ACTIONS,
        },
    )

    error = pack_error(folder)

    first, second = str(folder / "00-head.yaml"), str(folder / "05-more-context.yaml")
    assert f"context.customer.tier is defined twice: in {first} and here" in str(error)
    assert error.path == second


def human_roles_file_error(folder: Path, human_file: str) -> tuple[PolicyError, str]:
    """Load MINI's head, roles and actions split over a folder, the human roles given as
    `human_file`; the error, and the path of that file."""
    folder = split_into(
        folder,
        {
            "00-head.yaml": HEAD,
            "10-roles-ai.yaml": AI_ROLES,
            "11-roles-human.yaml": human_file,
            "20-actions.yaml": ACTIONS,
        },
    )
    return pack_error(folder), str(folder / "11-roles-human.yaml")


def test_an_error_in_a_later_file_of_a_folder_names_that_file_and_its_line(tmp_path):
    human_file = "roles:\n  - id: tier1\n" + TIER1_BODY + '      credit: {standard: "5.00"}\n'

    error, path = human_roles_file_error(tmp_path / "pack", human_file)

    line = line_of(human_file, "credit:")
    assert str(error) == (
        f"{path}:{line}: role 'tier1' has authority over 'credit', which is not an action;"
        " actions: refund"
    )
    assert (error.path, error.line) == (path, line)


def test_a_schema_error_in_a_role_of_a_later_file_names_that_file_and_its_line(tmp_path):
    human_file = "roles:\n  - id: tier1\n    rank: 2\n" + TIER1_BODY

    error, path = human_roles_file_error(tmp_path / "pack", human_file)

    assert str(error) == (
        f"{path}:{line_of(human_file, 'rank:')}: roles[1].rank: unknown key 'rank';"
        " allowed here: ai, approval_sla, authority, beside, description, id"
    )


def test_a_folder_without_yaml_files_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not a pack")

    error = pack_error(tmp_path)

    assert str(error) == f"{tmp_path}: the folder holds no .yaml pack files"


def test_a_missing_pack_file_is_an_error(tmp_path):
    missing = tmp_path / "nope.yaml"

    error = pack_error(missing)

    assert str(error) == f"{missing}: no such pack file or folder"


# CEL


def test_unknown_field_in_an_expression_names_file_line_rule_and_declared_fields(tmp_path):
    text = mutate("when: now - order.shipped_at >", "when: now - order.shiped_at >")

    error, path = load_error(tmp_path, text)

    line = line_of(text, "order.shiped_at")
    expression = "now - order.shiped_at > duration('24h')"
    assert str(error) == (
        f"{path}:{line}, rule 'late-delivery': unknown field 'order.shiped_at' in"
        f' "{expression}"; declared: {DECLARED_FOR_REFUND}'
    )
    assert error.path == str(path)
    assert error.line == line
    assert error.rule_id == "late-delivery"
    assert error.expression == expression
    assert isinstance(error, ConfigurationError)


def test_a_declared_field_the_action_does_not_read_is_unknown_to_its_rules(tmp_path):
    # customer.tier is in the pack's context but refund does not list it in `reads`.
    text = mutate('when: "true"', "when: customer.tier == 'gold'")

    error, path = load_error(tmp_path, text)

    assert error.path == str(path)
    assert error.rule_id == "goodwill"
    assert error.line == line_of(text, "customer.tier ==")
    assert "field 'customer.tier' in" in str(error)
    assert str(error).endswith(
        "is declared by the pack, but this action does not read it; add it to the action's reads"
    )


def test_unknown_field_in_max_amount_names_its_line(tmp_path):
    text = mutate("max_amount: order.total / 5", "max_amount: order.totl / 5")

    error, path = load_error(tmp_path, text)

    assert error.path == str(path)
    assert error.line == line_of(text, "order.totl")
    assert error.rule_id == "goodwill"
    assert error.expression == "order.totl / 5"
    assert "unknown field 'order.totl'" in str(error)


def test_cel_syntax_error_names_the_rule_and_expression(tmp_path):
    text = mutate("when: now - order.shipped_at > duration('24h')", 'when: "order.total >"')

    error, path = load_error(tmp_path, text)

    line = line_of(text, 'when: "order.total >"')
    assert str(error).startswith(
        f"{path}:{line}, rule 'late-delivery': CEL expression 'order.total >' does not compile:"
    )
    assert "Syntax error" in str(error)
    assert (error.line, error.rule_id, error.expression) == (line, "late-delivery", "order.total >")


def test_cel_type_mismatch_is_a_compile_error(tmp_path):
    text = mutate("max_amount: order.total / 5", "max_amount: order.total / 'five'")

    error, _ = load_error(tmp_path, text)

    assert error.rule_id == "goodwill"
    assert "does not compile" in str(error)
    assert "no matching overload" in str(error)


def test_a_condition_that_is_not_bool_is_an_error(tmp_path):
    text = mutate("when: now - order.shipped_at > duration('24h')", "when: amount")

    error, path = load_error(tmp_path, text)

    line = line_of(text, "when: amount")
    assert str(error) == (
        f"{path}:{line}, rule 'late-delivery': CEL expression 'amount' gives INT, expected bool"
    )
    assert error.expression == "amount"


def test_a_max_amount_that_is_not_int_is_an_error(tmp_path):
    text = mutate("max_amount: order.total\n", "max_amount: order.total > 5\n")

    error, path = load_error(tmp_path, text)

    line = line_of(text, "max_amount: order.total > 5")
    assert str(error) == (
        f"{path}:{line}, rule 'late-delivery': CEL expression 'order.total > 5' gives BOOL,"
        " expected int (money is an int of minor units)"
    )
    assert error.expression == "order.total > 5"


# Rules, roles and budgets


def test_a_rule_id_used_twice_names_both_places(tmp_path):
    text = mutate("- id: goodwill", "- id: late-delivery")

    error, path = load_error(tmp_path, text)

    first, second = line_of(text, "- id: late-delivery"), line_of(text, "- id: late-delivery", 2)
    assert str(error) == (
        f"{path}:{second}, rule 'late-delivery': rule id is used twice; first at {path}:{first}"
    )
    assert (error.line, error.rule_id) == (second, "late-delivery")


def test_a_budget_may_not_reuse_a_rule_id(tmp_path):
    text = mutate("- id: actor-daily", "- id: goodwill")

    error, path = load_error(tmp_path, text)

    first = line_of(text, "- id: goodwill")
    assert error.rule_id == "goodwill"
    assert error.line == line_of(text, "- id: goodwill", 2)
    assert f"rule id is used twice; first at {path}:{first}" in str(error)


def test_granted_by_an_unknown_role_is_an_error(tmp_path):
    text = mutate("granted_by: [tier1]", "granted_by: [tier1, supervisor]")

    error, path = load_error(tmp_path, text)

    line = line_of(text, "granted_by:")
    assert str(error) == (
        f"{path}:{line}, rule 'goodwill': granted_by names role 'supervisor', which the pack"
        " does not define; roles: ai_agent, tier1"
    )
    assert (error.line, error.rule_id) == (line, "goodwill")


def test_authority_over_an_unknown_action_is_an_error(tmp_path):
    text = mutate(
        '      refund: {standard: "200.00", exception: "100.00"}\n',
        '      refund: {standard: "200.00", exception: "100.00"}\n'
        '      credit: {standard: "5.00"}\n',
    )

    error, path = load_error(tmp_path, text)

    line = line_of(text, "credit:")
    assert str(error) == (
        f"{path}:{line}: role 'tier1' has authority over 'credit', which is not an action;"
        " actions: refund"
    )
    assert error.line == line


def test_authority_to_grant_an_unknown_reason_is_an_error(tmp_path):
    text = mutate(
        'refund: {standard: "200.00", exception: "100.00"}',
        'refund: {standard: "200.00", exception: "100.00", reasons: [goodwil]}',
    )

    error, path = load_error(tmp_path, text)

    assert str(error) == (
        f"{path}:{line_of(text, 'goodwil]')}: role 'tier1' may grant reason 'goodwil', which"
        " 'refund' does not define"
    )


def test_a_role_listing_a_reason_its_granted_by_leaves_out_is_an_error(tmp_path):
    # Read by the role's list alone, the AI would grant what the reason keeps for a person.
    text = mutate(
        'refund: {standard: "50.00", exception: "20.00"}',
        'refund: {standard: "50.00", exception: "20.00", reasons: [goodwill]}',
    )

    error, path = load_error(tmp_path, text)

    assert str(error) == (
        f"{path}:{line_of(text, 'reasons: [goodwill]')}: role 'ai_agent' lists reason"
        " 'goodwill' of 'refund', whose granted_by (tier1) leaves it out; add 'ai_agent' to the"
        " reason's granted_by or drop the reason from the role's reasons"
    )


@pytest.mark.parametrize("target", ["ai_agent", "supervisor"])
def test_a_budget_routing_to_an_ai_or_unknown_role_is_an_error(tmp_path, target):
    text = mutate('limit: "500.00"\n', f'limit: "500.00"\n    route_to: {target}\n')

    error, path = load_error(tmp_path, text)

    line = line_of(text, "- id: actor-daily")
    assert str(error) == (
        f"{path}:{line}, rule 'actor-daily': route_to {target!r} is not a human role of the pack"
        " (or `next_above`)"
    )
    assert (error.line, error.rule_id) == (line, "actor-daily")


def test_a_pack_of_only_ai_roles_is_an_error(tmp_path):
    text = mutate("  - id: tier1\n", "  - id: tier1\n    ai: true\n")

    error, path = load_error(tmp_path, text)

    assert str(error) == (
        f"{path}: the pack needs at least one human role on the ladder (not ai, not beside) to"
        " route cases to"
    )


def test_a_pack_whose_people_are_all_beside_the_ladder_is_an_error(tmp_path):
    text = mutate("  - id: tier1\n", "  - id: tier1\n    beside: true\n")

    error, _ = load_error(tmp_path, text)

    assert "needs at least one human role on the ladder" in str(error)


def test_an_ai_role_beside_the_ladder_is_an_error_naming_its_line(tmp_path):
    text = mutate("    ai: true\n", "    ai: true\n    beside: true\n")

    error, _ = load_error(tmp_path, text)

    assert "held by AI agents and beside the ladder" in str(error)
    assert error.line == line_of(text, "beside: true")


# YAML and schema


def test_invalid_yaml_names_the_line(tmp_path):
    text = mutate("max_amount: order.total\n", "max_amount: order.total: oops\n")

    error, path = load_error(tmp_path, text)

    line = line_of(text, "oops")
    assert str(error) == f"{path}:{line}: not valid YAML: mapping values are not allowed here"
    assert error.line == line


def test_a_pack_that_is_not_a_mapping_is_an_error(tmp_path):
    error, path = load_error(tmp_path, "- pack: mini\n")

    assert str(error) == f"{path}: a pack file must be a YAML mapping at the top level"


def test_an_unknown_top_level_key_is_an_error_with_its_line(tmp_path):
    text = mutate("currency: USD\n", "currency: USD\ncurency_symbol: $\n")

    error, path = load_error(tmp_path, text)

    assert str(error).startswith(
        f"{path}:3: curency_symbol: unknown key 'curency_symbol' (did you mean 'currency'?);"
        " allowed here: actions, amounts, approval_sla,"
    )
    assert error.line == 3


def test_an_unknown_key_in_a_rule_is_an_error_with_its_line(tmp_path):
    text = mutate("max_amount: order.total\n", "max_amount: order.total\n        priority: 3\n")

    error, path = load_error(tmp_path, text)

    line = line_of(text, "priority: 3")
    assert str(error) == (
        f"{path}:{line}: actions.refund.standard[0].priority: unknown key 'priority';"
        " allowed here: description, granted_by, id, max_amount, message, when"
    )


def test_a_missing_required_key_is_an_error(tmp_path):
    text = mutate("currency: USD\n", "")

    error, path = load_error(tmp_path, text)

    # The pack is one file, so the error can name it even though no line holds the fault.
    assert error.path == str(path)
    assert str(error) == f"{path}: currency: required here, and missing"


def test_too_many_decimals_for_the_currency_in_a_role_limit_is_an_error(tmp_path):
    text = mutate('standard: "50.00"', 'standard: "50.005"')

    error, path = load_error(tmp_path, text)

    line = line_of(text, '"50.005"')
    assert str(error) == (
        f"{path}:{line}: role 'ai_agent' standard: amount: 50.005 has more decimal places"
        " than USD allows (2)"
    )
    assert error.line == line


def test_too_many_decimals_in_a_budget_limit_is_an_error(tmp_path):
    text = mutate('limit: "500.00"', 'limit: "500.001"')

    error, path = load_error(tmp_path, text)

    assert error.path == str(path)
    assert error.line == line_of(text, "- id: actor-daily")
    assert "limit: amount: 500.001 has more decimal places than USD allows (2)" in str(error)


def test_an_unsupported_currency_is_an_error(tmp_path):
    text = mutate("currency: USD", "currency: XYZ")

    error, path = load_error(tmp_path, text)

    assert str(error) == f"{path}:2: currency 'XYZ' is not a supported ISO 4217 code"
    assert error.line == 2


def test_reads_naming_an_undeclared_field_is_an_error(tmp_path):
    text = mutate(
        "reads: [order.total, order.shipped_at]",
        "reads: [order.total, order.shipped_at, order.vip]",
    )

    error, path = load_error(tmp_path, text)

    line = line_of(text, "reads:")
    assert str(error) == (
        f"{path}:{line}: action 'refund' reads 'order.vip', which the pack's context does not"
        " declare; declared: customer.tier, order.shipped_at, order.total"
    )
    assert error.line == line


def test_a_context_field_may_not_shadow_a_built_in(tmp_path):
    text = mutate("  customer.tier: string\n", "  customer.tier: string\n  actor.role: string\n")

    error, path = load_error(tmp_path, text)

    assert (
        str(error)
        == f"{path}:{line_of(text, 'actor.role')}: context field 'actor.role' shadows a built-in"
    )


def test_a_key_repeated_inside_one_mapping_is_an_error(tmp_path):
    # PyYAML alone would keep the second value and silently drop the first.
    text = mutate("currency: USD\n", "currency: USD\nprivate_limits: true\nprivate_limits: false\n")

    error, path = load_error(tmp_path, text)

    assert error.path == str(path)
    assert error.line == line_of(text, "private_limits", nth=2)
    assert "key 'private_limits' appears twice in the same mapping" in str(error)


def test_a_nested_key_repeated_is_an_error(tmp_path):
    text = mutate("  order.total: money\n", "  order.total: money\n  order.total: int\n")

    error, _ = load_error(tmp_path, text)

    assert error.line == line_of(text, "order.total: int")
    assert "key 'order.total' appears twice" in str(error)


def test_what_is_derived_from_a_pack_is_built_once_per_action_object(tmp_path):
    from dataclasses import replace

    pack = load_pack(write(tmp_path, MINI))
    action = next(iter(pack.actions.values()))
    built: list[str] = []

    def build() -> str:
        built.append(action.name)
        return f"derived from {action.name}"

    first = pack.memoised("test.derived", action, build)
    assert pack.memoised("test.derived", action, build) is first
    assert built == [action.name]
    # Another key, or the action replaced (as a view replaces it), is built anew.
    assert pack.memoised("test.other", action, build) == first
    replaced = replace(action, approval_sla=None)
    pack.memoised("test.derived", replaced, build)
    assert len(built) == 3
