"""The README's examples run as written (with an in-memory ledger and offline models)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
from pathlib import Path

from conftest import NOW

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


def integration_snippets() -> dict[str, str]:
    """Each `### ` section of "Agent integrations" with its first code block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    part = text.split("## Agent integrations", 1)[1].split("\n## ", 1)[0]
    found = {}
    for section in part.split("\n### ")[1:]:
        title = section.split("\n", 1)[0]
        code = re.search(r"```(?:python|sh)\n(.*?)```", section, re.S)
        if code is not None:
            found[title.split(" (", 1)[0]] = code.group(1)
    return found


ALLOWED = {  # a refund within acme's standard policy, as of NOW
    "amount": "64.99",
    "currency": "USD",
    "customer_id": "C-1003",
    "case_id": "K-70003",
    "order_id": "A-50003",
}


def acme_guard():
    from discretion import Guard, SqlStore, load_pack
    from discretion.context import SqliteCaseStore

    acme = ROOT / "examples" / "acme"
    context = SqliteCaseStore.from_sql(acme / "cases.sql")
    return Guard(
        load_pack(acme / "pack"), store=SqlStore("sqlite://"), context=context, clock=lambda: NOW
    )


def run_snippet(source: str, **names: object) -> dict[str, object]:
    namespace: dict[str, object] = {"guard": acme_guard(), **names}
    exec(compile(source, "README.md", "exec"), namespace)
    return namespace


def succeeded(namespace) -> int:
    return [r["kind"] for r in namespace["guard"].store.export()].count("execution.succeeded")


def test_every_integration_in_the_readme_has_a_snippet_of_ten_lines_or_fewer():
    snippets = integration_snippets()
    assert set(snippets) == {
        "LangChain",
        "OpenAI Agents SDK",
        "Pydantic AI",
        "MCP gateway",
        "Any Python function",
        "Agents over HTTP",
    }
    assert all(len(code.strip().splitlines()) <= 10 for code in snippets.values())


def test_readme_langchain_snippet_runs_an_allowed_call_once():
    from langchain_core.messages import HumanMessage

    from integrations._integration_support import calls, scripted

    model = scripted(calls(("issue_refund", ALLOWED, "call_1")), "Done.")
    source = integration_snippets()["LangChain"].replace('"openai:gpt-4.1-mini"', "model")
    namespace = run_snippet(source, model=model)
    result = namespace["agent"].invoke({"messages": [HumanMessage("refund K-70003")]})
    assert result["messages"][2].content == "refunded USD 64.99"
    assert succeeded(namespace) == 1


def test_readme_openai_agents_snippet_runs_an_allowed_call_once():
    from agents import RunConfig, Runner
    from agents.testing import ScriptedModel, assistant_message, function_call

    model = ScriptedModel(
        [[function_call("issue_refund", ALLOWED, call_id="call_1")], [assistant_message("Done.")]]
    )
    source = integration_snippets()["OpenAI Agents SDK"].replace('"gpt-4.1-mini"', "model")
    namespace = run_snippet(source, model=model)
    run = Runner.run(namespace["agent"], "refund", run_config=RunConfig(tracing_disabled=True))
    result = asyncio.run(run)
    assert result.final_output == "Done."
    assert succeeded(namespace) == 1


def test_readme_pydantic_ai_snippet_runs_an_allowed_call_once():
    from pydantic_ai import ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import FunctionModel

    replies = iter(
        [
            ModelResponse(parts=[ToolCallPart("issue_refund", ALLOWED, tool_call_id="c-1")]),
            ModelResponse(parts=[TextPart("Done.")]),
        ]
    )
    model = FunctionModel(lambda messages, info: next(replies))
    source = integration_snippets()["Pydantic AI"].replace('"openai:gpt-4.1-mini"', "model")
    namespace = run_snippet(source, model=model)
    assert asyncio.run(namespace["agent"].run("refund")).output == "Done."
    assert succeeded(namespace) == 1


def test_readme_decorator_snippet_decides_and_runs(capsys):
    namespace = run_snippet(integration_snippets()["Any Python function"])
    assert capsys.readouterr().out.strip() == "allow_exception refunded USD 89.99"
    assert succeeded(namespace) == 1


def test_readme_mcp_command_serves_the_gateway(tmp_path):
    import anyio
    from mcp import ClientSession, StdioServerParameters, stdio_client

    words = shlex.split(integration_snippets()["MCP gateway"].replace("\\\n", " "))
    assert words[:2] == ["discretion", "mcp"]
    split = words.index("--")
    db = f"sqlite:///{tmp_path / 'gateway.db'}"
    options = [*words[2:split], "--db", db, "--now", NOW.isoformat()]
    upstream = [sys.executable if w == "python" else w for w in words[split + 1 :]]
    command = [*("-m", "discretion.cli", "mcp"), *options, "--", *upstream]
    server = StdioServerParameters(command=sys.executable, args=command, cwd=ROOT)

    async def call() -> str:
        with (tmp_path / "err.log").open("w") as errlog:
            async with (
                stdio_client(server, errlog=errlog) as streams,
                ClientSession(*streams) as agent,
            ):
                await agent.initialize()
                result = await agent.call_tool("issue_refund", ALLOWED)
                return " ".join(block.text for block in result.content)

    assert anyio.run(call) == "refunded USD 64.99 on A-50003"


def test_readme_http_snippet_claims_runs_and_reports_an_approved_call_once():
    from fastapi.testclient import TestClient

    from discretion import Actor, Proposal
    from discretion.api import Tokens, create_app

    guard = acme_guard()
    routed = ROOT / "examples" / "acme" / "proposals" / "02-refund-above-ai-standard-limit.json"
    decision = guard.decide(Proposal.model_validate(json.loads(routed.read_text())))
    sam = Actor(id="sam", role="tier2", is_ai=False)
    guard.approvals.approve(decision.id, approver=sam, note="the machine leaks")
    token, _ = Tokens(guard.store, clock=guard.now).create(
        subject_id="acme-assist", role="ai_agent", is_ai=True
    )
    ran: list[str] = []

    def issue_refund(key: str, **arguments: str) -> str:
        ran.append(key)
        return f"refunded {arguments['currency']} {arguments['amount']}"

    with TestClient(create_app(guard)) as client:

        def connect(base_url: str, headers: dict[str, str]) -> TestClient:
            client.headers.update(headers)
            return client

        source = integration_snippets()["Agents over HTTP"].replace("httpx.Client(", "Client(")
        source = source.replace("import httpx\n", "")
        namespace = {"Client": connect, "TOKEN": token, "issue_refund": issue_refund}
        exec(compile(source, "README.md", "exec"), namespace)
        exec(compile(source, "README.md", "exec"), namespace)  # nothing is left to run
    assert ran == [decision.execution_key]
    [done] = guard.executions.for_decision(decision.id)
    assert (done.status, done.result) == ("succeeded", "refunded USD 649.00")
    kinds = [r["kind"] for r in guard.store.export()]
    assert (kinds.count("execution.started"), kinds.count("execution.succeeded")) == (1, 1)


def test_readme_webhook_snippet_accepts_a_signed_event_once_and_refuses_a_forged_one():
    import pytest

    from discretion import WebhookSignatureError
    from discretion.webhooks import sign

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("#### Webhooks", 1)[1].split("\n### ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    assert len(code.group(1).strip().splitlines()) <= 10
    source = code.group(1).replace(
        "(SECRET, headers, raw_body)", "(SECRET, headers, raw_body, now=NOW)"
    )
    notified: list[tuple[str, dict[str, str]]] = []
    secret = "whsec-readme-0123456789"
    namespace = {
        "SECRET": secret,
        "NOW": NOW,
        "json": json,
        "seen": set(),
        "notify": lambda kind, data: notified.append((kind, data)),
    }
    exec(compile(source, "README.md", "exec"), namespace)
    body = json.dumps({"id": "evt_1", "type": "approval.opened", "data": {"role": "tier2"}})
    headers = {"X-Discretion-Signature": sign(secret, body.encode(), at=NOW)}
    namespace["receive"](headers, body.encode())
    namespace["receive"](headers, body.encode())  # redelivered: handled once
    assert notified == [("approval.opened", {"role": "tier2"})]
    with pytest.raises(WebhookSignatureError):
        namespace["receive"](headers, body.replace("tier2", "manager").encode())
