"""`discretion mcp`: the official MCP client, through the gateway, to a real upstream server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from typer.testing import CliRunner

from conftest import NOW, SHOP_PACK, good_facts
from discretion import Guard, SqlStore, load_pack
from discretion.cli import app
from discretion.context import JsonContextProvider

from ._integration_support import BOT, MARIA, refund_args

UPSTREAM = Path(__file__).parent / "mcp_shop_server.py"


class Shop:
    """The files the gateway and its upstream share with the test."""

    def __init__(self, folder: Path) -> None:
        self.db = f"sqlite:///{folder / 'ledger.db'}"
        self.facts = folder / "facts.json"
        self.runs = folder / "runs.jsonl"
        fraud = {"customer.fraud_flag": True}
        self.facts.write_text(
            json.dumps({"defaults": good_facts(), "customers": {"c-9": fraud}}), encoding="utf-8"
        )

    def gateway(self, *options: str) -> StdioServerParameters:
        command = [*("-m", "discretion.cli", "mcp", "--pack", str(SHOP_PACK), "--db", self.db)]
        command += ["--context", str(self.facts), "--now", NOW.isoformat(), *options]
        command += ["--", sys.executable, str(UPSTREAM), str(self.runs)]
        return StdioServerParameters(command=sys.executable, args=command)

    def ran(self) -> list[dict[str, Any]]:
        if not self.runs.exists():
            return []
        return [json.loads(line) for line in self.runs.read_text(encoding="utf-8").splitlines()]

    def guard(self) -> Guard:
        context = JsonContextProvider(self.facts)
        return Guard(
            load_pack(SHOP_PACK), store=SqlStore(self.db), context=context, clock=lambda: NOW
        )


def text(result: Any) -> str:
    return " ".join(block.text for block in result.content)


@pytest.mark.anyio
async def test_the_gateway_decides_each_call_and_runs_the_allowed_ones_once(tmp_path):
    shop = Shop(tmp_path)
    guard = shop.guard()
    with (tmp_path / "gateway.err").open("w") as errlog:
        async with (
            stdio_client(shop.gateway("--actor", "bot-1:ai_agent"), errlog=errlog) as streams,
            ClientSession(*streams) as agent,
        ):
            await agent.initialize()
            listed = await agent.list_tools()
            assert [t.name for t in listed.tools] == ["issue_refund", "give_credit", "lookup_order"]
            assert listed.tools[0].description == "Refund an order to the customer's card."
            assert set(listed.tools[0].input_schema["properties"]) == set(refund_args())

            allowed = await agent.call_tool("issue_refund", refund_args())
            assert not allowed.is_error
            assert text(allowed) == "refunded USD 40.00 on o-1"
            again = await agent.call_tool("issue_refund", refund_args())
            assert text(again) == "refunded USD 40.00 on o-1"

            routed = await agent.call_tool("issue_refund", refund_args("60.00", order_id="o-2"))
            assert routed.is_error
            [pending] = guard.approvals.list(status="pending")
            assert f"Approval id: {pending.id}" in text(routed)
            assert "do not call the tool again for it" in text(routed)
            assert "tier1" in text(routed)
            guard.approvals.approve(pending.id, approver=MARIA, note="photos show the damage")
            for _ in range(2):
                retried = await agent.call_tool(
                    "issue_refund", refund_args("60.00", order_id="o-2")
                )
                assert not retried.is_error
                assert text(retried) == "refunded USD 60.00 on o-2"

            denied = await agent.call_tool("issue_refund", refund_args(customer_id="c-9"))
            assert denied.is_error
            assert text(denied).startswith("Not permitted")

            invalid = await agent.call_tool("issue_refund", refund_args(currency="EUR"))
            assert invalid.is_error
            assert "EUR" in text(invalid)
            assert "Correct the arguments" in text(invalid)

            # An argument the upstream tool does not list: nothing decides it, and the upstream
            # may read it all the same, so it never gets there.
            smuggled = await agent.call_tool(
                "issue_refund", refund_args(amount_cents="999999", note="x")
            )
            assert smuggled.is_error
            assert "takes no argument 'amount_cents', 'note'" in text(smuggled)

            lookup = await agent.call_tool("lookup_order", {"order_id": "o-3"})
            assert text(lookup) == "order o-3: delivered"

    assert [(r["tool"], r.get("amount"), r.get("customer_id")) for r in shop.ran()] == [
        ("issue_refund", "40.00", "c-1"),
        ("issue_refund", "60.00", "c-1"),
        ("lookup_order", None, None),
    ]
    kinds = [r["kind"] for r in guard.store.export()]
    # Allowed, routed, denied; the EUR call and the one carrying more were never decided.
    assert kinds.count("decision") == 3
    assert kinds.count("execution.succeeded") == 2
    assert guard.store.verify() == len(kinds)


@pytest.mark.anyio
async def test_an_upstream_tool_that_takes_a_key_is_given_the_executions_on_every_run(tmp_path):
    shop = Shop(tmp_path)
    credit = {"value": "5.00", "customer": "c-1", "ticket": "case-1"}
    with (tmp_path / "gateway.err").open("w") as errlog:
        async with (
            stdio_client(shop.gateway("--actor", "bot-1:ai_agent"), errlog=errlog) as streams,
            ClientSession(*streams) as agent,
        ):
            await agent.initialize()
            failed = await agent.call_tool("give_credit", credit)
            assert failed.is_error
            retried = await agent.call_tool("give_credit", credit)
            assert text(retried) == "credited 5.00 to c-1"
    runs = [r for r in shop.ran() if r["tool"] == "give_credit"]
    assert len(runs) == 2
    # One decision, one key: the payment system deduplicates the second run on it.
    assert runs[0]["idempotency_key"] == runs[1]["idempotency_key"]
    assert runs[0]["idempotency_key"].startswith("bot-1:")


def run_gateway(shop: Shop, *options: str, pack: Path = SHOP_PACK) -> subprocess.CompletedProcess:
    parameters = shop.gateway(*options)
    arguments = [str(pack) if a == str(SHOP_PACK) else a for a in parameters.args]
    return subprocess.run(
        [parameters.command, *arguments],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_actor_without_a_role_is_refused_before_anything_starts(tmp_path):
    shop = Shop(tmp_path)
    arguments = shop.gateway("--actor", "bot-1").args[2:]
    done = CliRunner().invoke(app, arguments)
    assert done.exit_code == 2
    assert "--actor 'bot-1': write ID:ROLE" in done.stderr
    assert not (tmp_path / "ledger.db").exists()


def test_an_actor_whose_role_the_pack_does_not_give_an_ai_is_refused(tmp_path):
    shop = Shop(tmp_path)
    done = CliRunner().invoke(app, shop.gateway("--actor", "bot-1:tier1").args[2:])
    assert done.exit_code == 2
    said = " ".join(done.stderr.split())
    assert "'tier1' is not an AI role of pack 'test-shop'; its AI roles: ai_agent" in said


def test_an_upstream_tool_that_lacks_a_mapped_argument_is_refused_at_start(tmp_path):
    shop = Shop(tmp_path)
    pack = tmp_path / "pack.yaml"
    source = SHOP_PACK.read_text(encoding="utf-8")
    pack.write_text(source.replace("amount: amount\n", "amount: refund_amount\n", 1), "utf-8")
    done = run_gateway(shop, "--actor", "bot-1:ai_agent", pack=pack)
    assert done.returncode == 2
    assert "tool 'issue_refund'" in done.stderr
    assert "refund_amount" in done.stderr


class SchemaUpstream:
    """An upstream session listing one `issue_refund` tool with the given input schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.calls: list[dict[str, Any]] = []

    async def list_tools(self, params: Any = None) -> Any:
        import mcp.types as mcp_types

        tool = mcp_types.Tool(name="issue_refund", input_schema=self.schema)
        return mcp_types.ListToolsResult(tools=[tool])

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        import mcp.types as mcp_types

        self.calls.append(arguments)
        return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text="ok")])


REFUND_PROPERTIES = {name: {"type": "string"} for name in refund_args()}


def unmapped_currency_pack(tmp_path: Path) -> Any:
    path = tmp_path / "pack.yaml"
    source = SHOP_PACK.read_text(encoding="utf-8")
    path.write_text(source.replace("        currency: currency\n", "", 1), "utf-8")
    return load_pack(path)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "anyOf": [{"type": "object", "properties": REFUND_PROPERTIES}]},
        {"oneOf": [{"properties": REFUND_PROPERTIES}, {"properties": {"amount": {}}}]},
        {"allOf": [{"properties": {"amount": {}}}, {"properties": REFUND_PROPERTIES}]},
        {"$ref": "#/$defs/Refund", "$defs": {"Refund": {"properties": REFUND_PROPERTIES}}},
    ],
    ids=["anyOf", "oneOf", "allOf", "$ref"],
)
@pytest.mark.anyio
async def test_a_currency_listed_outside_top_level_properties_is_checked_at_start(
    make_guard, tmp_path, schema
):
    from discretion.errors import ConfigurationError
    from discretion.integrations._mcp import MCPGateway

    guard = make_guard(policy=unmapped_currency_pack(tmp_path))
    gateway = MCPGateway(guard, SchemaUpstream(schema), actor=BOT)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"takes a currency \('currency'\)"):
        await gateway.check()


@pytest.mark.anyio
async def test_an_upstream_schema_that_cannot_be_read_is_refused_at_start(guard):
    from discretion.errors import ConfigurationError
    from discretion.integrations._mcp import MCPGateway

    schema = {"$ref": "https://example.com/refund.json"}
    gateway = MCPGateway(guard, SchemaUpstream(schema), actor=BOT)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="its argument schema cannot be read"):
        await gateway.check()


@pytest.mark.anyio
async def test_an_argument_no_branch_of_a_closed_union_lists_is_refused(guard):
    from discretion.integrations._mcp import MCPGateway

    schema = {"anyOf": [{"properties": REFUND_PROPERTIES, "additionalProperties": False}]}
    upstream = SchemaUpstream(schema)
    gateway = MCPGateway(guard, upstream, actor=BOT)  # type: ignore[arg-type]
    await gateway.check()
    result = await gateway.decide_and_call("issue_refund", refund_args(speed="express"))
    assert result.is_error
    assert "takes no argument 'speed'" in text(result)
    assert upstream.calls == []
