from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SHOP_PACK
from discretion.cli import app

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def importable(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    yield
    sys.modules.pop("_agent_tools", None)


def validate(tools: str):
    return CliRunner().invoke(app, ["pack", "validate", str(SHOP_PACK), "--tools", tools])


def test_tools_checked_as_wrapping_checks_them_are_listed():
    result = validate("_agent_tools:GOOD")
    assert result.exit_code == 0, result.output
    assert "tool issue_refund: governed" in result.stdout
    assert "tool lookup_order: read-only (ungoverned_tools)" in result.stdout


def test_a_tool_neither_mapped_nor_listed_fails_validation_naming_the_pack():
    result = validate("_agent_tools:WITH_AN_UNMAPPED_TOOL")
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "tool 'wire_money' is neither mapped by pack 'test-shop'" in message
    assert str(SHOP_PACK) in message


def test_a_mapping_naming_an_argument_the_tool_lacks_fails_validation():
    result = validate("_agent_tools:BY_NAME")
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "reads its amount ('amount'), which the tool does not take" in message


def test_a_tools_spec_that_names_nothing_is_a_clear_error():
    result = validate("_agent_tools:MISSING")
    assert result.exit_code == 1
    assert "module '_agent_tools' has no 'MISSING'" in " ".join(result.stderr.split())


def validate_schemas(tmp_path: Path, tools: object):
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(tools), encoding="utf-8")
    return CliRunner().invoke(
        app, ["pack", "validate", str(SHOP_PACK), "--tool-schemas", str(path)]
    )


def openai_tool(name: str, *arguments: str) -> dict:
    properties = {argument: {"type": "string"} for argument in arguments}
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": properties}},
    }


REFUND_ARGUMENTS = ("order_id", "customer_id", "case_id", "amount", "currency")


def test_tool_schemas_that_take_what_the_pack_reads_validate(tmp_path):
    result = validate_schemas(
        tmp_path,
        [
            openai_tool("issue_refund", *REFUND_ARGUMENTS),
            {"name": "lookup_order", "input_schema": {"properties": {"order_id": {}}}},
        ],
    )
    assert result.exit_code == 0, result.output
    assert "tool issue_refund: governed" in result.stdout
    assert "tool lookup_order: read-only (ungoverned_tools)" in result.stdout


def test_a_mapping_to_an_argument_the_tool_schema_lacks_fails_validation(tmp_path):
    arguments = tuple("amt" if a == "amount" else a for a in REFUND_ARGUMENTS)
    result = validate_schemas(tmp_path, [openai_tool("issue_refund", *arguments)])
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "tool 'issue_refund': pack 'test-shop'" in message
    assert "reads its amount ('amount'), which the tool does not take (it takes: amt," in message


def test_a_tool_schemas_file_that_is_not_tools_is_a_clear_error(tmp_path):
    result = validate_schemas(tmp_path, [{"description": "no name"}])
    assert result.exit_code == 1
    assert "item 0 is not a tool definition" in result.stderr


def test_a_mapped_tool_without_an_amount_is_noted(tmp_path):
    source = SHOP_PACK.read_text(encoding="utf-8").replace("        amount: value\n", "")
    path = tmp_path / "pack.yaml"
    path.write_text(source, encoding="utf-8")
    result = CliRunner().invoke(app, ["pack", "validate", str(path)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.stdout.split())
    assert "note tool give_credit (credit) maps no amount" in output
    assert "issue_refund" not in output
    # The shipped pack maps an amount for every tool: nothing to note.
    shipped = CliRunner().invoke(app, ["pack", "validate", str(SHOP_PACK)])
    assert "maps no amount" not in shipped.stdout


def test_a_review_only_a_role_below_a_budgets_route_to_decides_is_noted(tmp_path):
    # The shop's exceptions budget sends what it stops to the top rung (manager); a review only
    # tier1 decides keeps such a case with tier1, who may not go beyond the budget.
    source = SHOP_PACK.read_text(encoding="utf-8").replace(
        '        when: "true"\n        granted_by: [manager]\n',
        '        when: "true"\n        granted_by: [manager]\n    reviews:\n'
        "      - {id: outage-desk, when: incident.active, by: tier1, only: true}\n",
    )
    path = tmp_path / "pack.yaml"
    path.write_text(source, encoding="utf-8")
    result = CliRunner().invoke(app, ["pack", "validate", str(path)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.stdout.split())
    assert (
        "note review outage-desk (refund) is decided only by tier1, and budget"
        " customer-exceptions-30d lets only manager or above go beyond it"
    ) in output
    # The deny budget stops a case for everyone: nothing to note of it.
    assert "org-daily-deny" not in output
    shipped = CliRunner().invoke(app, ["pack", "validate", str(SHOP_PACK)])
    assert "decided only by" not in shipped.stdout


def test_a_role_of_no_exception_authority_a_reason_admits_by_default_is_noted():
    # The marketplace's assistant may follow a team lead's exchange precedent ("zero is an
    # amount"); an author writing exception "0" to mean "none" learns it here.
    marketplace = Path(__file__).parents[2] / "examples" / "marketplace" / "pack"
    result = CliRunner().invoke(app, ["pack", "validate", str(marketplace)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.stdout.split())
    assert (
        "note ai_agent has no exception authority for exchange, yet may follow a precedent for"
        " exch.other-product-same-category (no granted_by: zero is an amount)"
    ) in output
    shipped = CliRunner().invoke(app, ["pack", "validate", str(SHOP_PACK)])
    assert "no exception authority" not in shipped.stdout


def test_an_action_not_cumulative_resting_on_a_capped_assertion_is_noted(tmp_path):
    # Two 300.00 vouchers on one booking each pass under the 300.00 the customer's word unlocks.
    travel = Path(__file__).parents[2] / "examples" / "travel" / "pack"
    for source in travel.glob("*.yaml"):
        text = source.read_text(encoding="utf-8")
        (tmp_path / source.name).write_text(
            text.replace(", counting: booking.vouchers_on_word}", "}"), encoding="utf-8"
        )
    result = CliRunner().invoke(app, ["pack", "validate", str(tmp_path)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.stdout.split())
    assert (
        "note disruption_compensation is not cumulative: what"
        " asserted.customer.accepted_voucher unlocks is capped per call"
    ) in output
    # The cancellation refund is cumulative per booking: its cap counts the whole.
    assert "note cancellation is not cumulative" not in output
    # The shipped pack's cap counts the vouchers already paid on the booking's word.
    shipped = CliRunner().invoke(app, ["pack", "validate", str(travel)])
    assert "is not cumulative" not in shipped.stdout


NAMED = """
pack: named
currency: USD
context:
  customer.account_manager: string
roles:
  - id: ai_agent
    ai: true
    authority: {credit: {standard: "50.00"}}
  - id: account_manager
    authority: {credit: {standard: "500.00"}}
  - id: director
    authority: {credit: {standard: "5000.00"}}
actions:
  credit:
    two_approvals_above: "100.00"
    tools: [{name: credit_account, amount: amount, customer: customer_id}]
    reads: [customer.account_manager]
    standard: [{id: any-credit, when: "true"}]
    reviews:
      - {id: own-manager, when: "true", by: account_manager, person: customer.account_manager,
         only: true}
"""


@pytest.mark.parametrize(
    ("before", "after", "noted"),
    [
        ("", "", True),
        ("         only: true}", "         only: false}", False),  # a director gives the second
        ('    two_approvals_above: "100.00"\n', "", False),
        # On the top rung no rank above may give the second, only or not.
        ("by: account_manager, person", "by: director, person", True),
        (
            "by: account_manager, person: customer.account_manager,\n         only: true}",
            "by: director, person: customer.account_manager,\n         only: false}",
            True,
        ),
    ],
)
def test_a_review_only_one_person_decides_on_an_action_of_two_approvals_is_noted(
    tmp_path, before, after, noted
):
    path = tmp_path / "pack.yaml"
    path.write_text(NAMED.replace(before, after) if before else NAMED, encoding="utf-8")
    result = CliRunner().invoke(app, ["pack", "validate", str(path)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.stdout.split())
    note = (
        "note review own-manager (credit) is decided only by the person customer.account_manager"
        " names, and credit takes two approvals above its two_approvals_above"
    )
    assert (note in output) is noted


def test_an_action_measured_call_by_call_is_noted():
    # Two calls of 45.00 pass an assistant allowed 50.00 where one of 90.00 would route.
    minimal = Path(__file__).parents[2] / "benchmarks" / "packs" / "minimal.yaml"
    result = CliRunner().invoke(app, ["pack", "validate", str(minimal)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.stdout.split())
    assert (
        "note refund is measured call by call: neither cumulative nor reading a total of what"
        " was granted"
    ) in output
    # Cumulative, or reading a total: nothing to note (acme's refunds are cumulative; its
    # store credit reads what was credited on the order).
    acme = Path(__file__).parents[2] / "examples" / "acme" / "pack"
    shipped = " ".join(CliRunner().invoke(app, ["pack", "validate", str(acme)]).stdout.split())
    assert "call by call" not in shipped
