"""`discretion mcp --http`: the official MCP client over streamable HTTP, through the gateway.

The gateway runs as `discretion mcp --http 127.0.0.1:0` in a subprocess (port 0: it binds a
free port and prints its URL once it listens), in front of a real upstream MCP server: a
command it starts, or a streamable HTTP server given by `--upstream-url`. Each agent signs in
with its own discretion token.
"""

from __future__ import annotations

import re
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import httpx2
import pytest
from mcp import ClientSession, MCPError, stdio_client
from mcp.client.streamable_http import streamable_http_client
from typer.testing import CliRunner

from conftest import NOW, SHOP_PACK
from discretion.api import Tokens
from discretion.cli import app

from ._integration_support import MARIA, refund_args
from .test_mcp_gateway import UPSTREAM, Shop, text

READY_S = 120.0
"""How long a server subprocess may take to say it listens (imports are slow on a busy box)."""

PROTOCOL = "2025-06-18"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": PROTOCOL,
        "capabilities": {},
        "clientInfo": {"name": "probe", "version": "1"},
    },
}
UPSTREAM_URL = ["--upstream-url", "http://127.0.0.1:9/mcp"]
MCP_ACCEPT = {"Accept": "application/json, text/event-stream"}


class Served:
    """A server subprocess, and the lines it wrote after the one that named its URL."""

    def __init__(self, process: subprocess.Popen[str], url: str, stream: IO[str]) -> None:
        self.process = process
        self.url = url
        self.stream = stream
        self.lines: list[str] = []
        # Drained so the server never blocks on a full pipe; kept for the failure message.
        self._drain = threading.Thread(target=self.lines.extend, args=(stream,), daemon=True)
        self._drain.start()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self._drain.join(timeout=30)
        self.stream.close()


@contextmanager
def served(command: list[str], *, url_on: str, errlog: Path) -> Iterator[Served]:
    """Start `command` and wait, bounded, for the line naming its URL on stdout or stderr."""
    on_stdout = url_on == "stdout"
    with errlog.open("w") as other:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if on_stdout else other,
            stderr=other if on_stdout else subprocess.PIPE,
            text=True,
        )
    stream = process.stdout if on_stdout else process.stderr
    assert stream is not None
    seen: list[str] = []
    url = None
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        deadline = time.monotonic() + READY_S
        while url is None and time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                break
            line = stream.readline()
            if not line:
                break  # the server exited before it listened
            seen.append(line)
            found = re.search(r"http://127\.0\.0\.1:\d+/mcp", line)
            url = found.group(0) if found else None
    if url is None:
        process.kill()
        process.wait(timeout=30)
        stream.close()
        pytest.fail(f"{command[1:3]} did not start: {''.join(seen)}{_read(errlog)}")
    server = Served(process, url, stream)
    try:
        yield server
    finally:
        server.stop()


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


class HttpShop(Shop):
    """The shop of the stdio gateway tests, behind a gateway served over HTTP."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.folder = folder

    def command(self, *options: str, upstream_url: str | None = None) -> list[str]:
        command = [sys.executable, "-m", "discretion.cli", "mcp", "--pack", str(SHOP_PACK)]
        command += ["--db", self.db, "--context", str(self.facts), "--now", NOW.isoformat()]
        command += ["--http", "127.0.0.1:0", *options]
        if upstream_url is not None:
            return [*command, "--upstream-url", upstream_url]
        return [*command, "--", sys.executable, str(UPSTREAM), str(self.runs)]

    @contextmanager
    def http_gateway(self, *options: str, upstream_url: str | None = None) -> Iterator[Served]:
        command = self.command(*options, upstream_url=upstream_url)
        with served(command, url_on="stderr", errlog=self.folder / "gateway.err") as server:
            yield server

    @contextmanager
    def http_upstream(self) -> Iterator[Served]:
        command = [sys.executable, str(UPSTREAM), str(self.runs), "--http"]
        with served(command, url_on="stdout", errlog=self.folder / "upstream.err") as server:
            yield server

    def token(self, subject: str, role: str = "ai_agent", *, ai: bool = True) -> str:
        """A token made as an operator makes one: `discretion token create`."""
        options = ["token", "create", "--subject", subject, "--role", role]
        options += ["--pack", str(SHOP_PACK), "--db", self.db, *(["--ai"] if ai else [])]
        done = CliRunner().invoke(app, options)
        assert done.exit_code == 0, done.output
        return done.stdout.strip()

    def decided(self, guard: Any) -> list[tuple[str, str, str]]:
        """(actor id, order, outcome) of every decision on the ledger, in order."""
        return [
            (body["actor_id"], body["entities"]["order"], body["outcome"])
            for record in guard.store.export()
            if record["kind"] == "decision"
            for body in [record["body"]["decision"]]
        ]


@asynccontextmanager
async def agent(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    """An agent's MCP session to the gateway, signed in with its token."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(120.0)) as http,
        streamable_http_client(url, http_client=http) as streams,
        ClientSession(*streams) as session,
    ):
        await session.initialize()
        yield session


def refunds(shop: HttpShop) -> list[tuple[str, str, str]]:
    """(amount, customer, order) of every refund the upstream ran."""
    return [
        (r["amount"], r["customer_id"], r["order_id"])
        for r in shop.ran()
        if r["tool"] == "issue_refund"
    ]


@pytest.mark.anyio
async def test_over_http_each_agent_is_decided_as_its_tokens_actor_and_runs_once(tmp_path):
    shop = HttpShop(tmp_path)
    guard = shop.guard()
    bot1, bot2 = shop.token("bot-1"), shop.token("bot-2")
    with shop.http_gateway() as gateway:
        async with agent(gateway.url, bot1) as first, agent(gateway.url, bot2) as second:
            listed = await first.list_tools()
            assert [t.name for t in listed.tools] == ["issue_refund", "give_credit", "lookup_order"]
            assert listed.tools[0].description == "Refund an order to the customer's card."
            assert set(listed.tools[0].input_schema["properties"]) == set(refund_args())

            allowed = await first.call_tool("issue_refund", refund_args())
            assert not allowed.is_error
            assert text(allowed) == "refunded USD 40.00 on o-1"
            again = await first.call_tool("issue_refund", refund_args())
            assert text(again) == "refunded USD 40.00 on o-1"
            assert refunds(shop) == [("40.00", "c-1", "o-1")]

            routed = await first.call_tool("issue_refund", refund_args("60.00", order_id="o-2"))
            assert routed.is_error
            [pending] = guard.approvals.list(status="pending")
            assert f"Approval id: {pending.id}" in text(routed)
            assert "do not call the tool again for it" in text(routed)
            assert "tier1" in text(routed)
            assert len(refunds(shop)) == 1

            # Arguments naming another actor are no argument the tool takes: never decided on,
            # never forwarded. The second agent's call is its own.
            impostor = {"id": "boss", "role": "manager", "is_ai": False}
            smuggled = refund_args("100.00", order_id="o-3", actor=impostor)
            refused = await second.call_tool("issue_refund", smuggled)
            assert refused.is_error
            assert "takes no argument 'actor'" in text(refused)
            theirs = await second.call_tool("issue_refund", refund_args("100.00", order_id="o-3"))
            assert theirs.is_error
            assert "tier1" in text(theirs)  # a manager could refund it; the agent may not

            guard.approvals.approve(pending.id, approver=MARIA, note="photos show the damage")
            for _ in range(2):
                retried = await first.call_tool(
                    "issue_refund", refund_args("60.00", order_id="o-2")
                )
                assert not retried.is_error
                assert text(retried) == "refunded USD 60.00 on o-2"

            denied = await second.call_tool("issue_refund", refund_args(customer_id="c-9"))
            assert denied.is_error
            assert text(denied).startswith("Not permitted")

            lookup = await second.call_tool("lookup_order", {"order_id": "o-4"})
            assert text(lookup) == "order o-4: delivered"

    assert refunds(shop) == [("40.00", "c-1", "o-1"), ("60.00", "c-1", "o-2")]
    assert shop.decided(guard) == [
        ("bot-1", "o-1", "allow"),
        ("bot-1", "o-2", "route"),
        ("bot-2", "o-3", "route"),
        ("bot-2", "o-1", "deny"),
    ]
    kinds = [r["kind"] for r in guard.store.export()]
    assert kinds.count("execution.succeeded") == 2
    assert guard.store.verify() == len(kinds)


@pytest.mark.anyio
async def test_an_http_gateway_governs_an_upstream_served_over_http(tmp_path):
    shop = HttpShop(tmp_path)
    guard = shop.guard()
    bot1 = shop.token("bot-1")
    with shop.http_upstream() as upstream, shop.http_gateway(upstream_url=upstream.url) as gateway:
        async with agent(gateway.url, bot1) as bot:
            listed = await bot.list_tools()
            assert [t.name for t in listed.tools] == ["issue_refund", "give_credit", "lookup_order"]

            allowed = await bot.call_tool("issue_refund", refund_args())
            assert text(allowed) == "refunded USD 40.00 on o-1"
            await bot.call_tool("issue_refund", refund_args())

            routed = await bot.call_tool("issue_refund", refund_args("60.00", order_id="o-2"))
            assert routed.is_error
            [pending] = guard.approvals.list(status="pending")
            assert f"Approval id: {pending.id}" in text(routed)
            assert refunds(shop) == [("40.00", "c-1", "o-1")]

            guard.approvals.approve(pending.id, approver=MARIA, note="photos show the damage")
            for _ in range(2):
                retried = await bot.call_tool("issue_refund", refund_args("60.00", order_id="o-2"))
                assert text(retried) == "refunded USD 60.00 on o-2"

            denied = await bot.call_tool("issue_refund", refund_args(customer_id="c-9"))
            assert denied.is_error
            assert text(denied).startswith("Not permitted")

    assert refunds(shop) == [("40.00", "c-1", "o-1"), ("60.00", "c-1", "o-2")]
    assert [actor for actor, _, _ in shop.decided(guard)] == ["bot-1"] * 3


@pytest.mark.anyio
async def test_a_request_without_a_live_token_of_an_ai_agent_is_refused_before_any_mcp(tmp_path):
    shop = HttpShop(tmp_path)
    guard = shop.guard()
    bot1 = shop.token("bot-1")
    doomed = shop.token("bot-2")
    person = shop.token("maria", "tier1", ai=False)
    with shop.http_gateway() as gateway:
        async with httpx.AsyncClient(timeout=120.0) as http:

            async def post(token: str | None) -> httpx.Response:
                headers = {**MCP_ACCEPT}
                if token is not None:
                    headers["Authorization"] = f"Bearer {token}"
                return await http.post(gateway.url, json=INITIALIZE, headers=headers)

            missing = await post(None)
            assert missing.status_code == 401
            assert missing.json()["error"] == "invalid_token"
            assert "discretion token create --ai" in missing.json()["error_description"]
            assert missing.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
            assert (await post("dsc_not-a-token")).status_code == 401
            assert (await post(bot1[:-1])).status_code == 401

            forbidden = await post(person)
            assert forbidden.status_code == 403
            assert "'maria' (tier1) is not an AI agent" in forbidden.json()["error_description"]

            welcome = await post(bot1)
            assert welcome.status_code == 200
            # Another agent's token cannot ride the session bot-1's token opened.
            call = {"name": "issue_refund", "arguments": refund_args()}
            hijack = await http.post(
                gateway.url,
                json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call},
                headers={
                    **MCP_ACCEPT,
                    "Authorization": f"Bearer {doomed}",
                    "Mcp-Session-Id": welcome.headers["mcp-session-id"],
                    "Mcp-Protocol-Version": PROTOCOL,
                },
            )
            assert hijack.status_code == 404

        async with agent(gateway.url, doomed) as bot:
            tokens = Tokens(guard.store, clock=lambda: NOW)
            [doomed_id] = [t.token_id for t in tokens.list() if t.subject_id == "bot-2"]
            assert tokens.revoke(doomed_id)
            async with httpx.AsyncClient(timeout=120.0) as http:
                headers = {**MCP_ACCEPT, "Authorization": f"Bearer {doomed}"}
                revoked = await http.post(gateway.url, json=INITIALIZE, headers=headers)
                assert revoked.status_code == 401
            # The session it opened before is refused at its next request too.
            with pytest.raises(MCPError, match="Server returned an error response"):
                await bot.call_tool("issue_refund", refund_args())

        # The SDK's own client, with no token, cannot even initialize.
        with pytest.raises(ExceptionGroup) as raised:
            async with agent(gateway.url, None):
                pass
        assert raised.group_contains(MCPError, match="Server returned an error response")

    assert shop.ran() == []
    assert shop.decided(guard) == []


@pytest.mark.anyio
async def test_no_auth_serves_one_actor_on_loopback_without_tokens(tmp_path):
    shop = HttpShop(tmp_path)
    guard = shop.guard()
    with shop.http_gateway("--no-auth", "--actor", "bot-7:ai_agent") as gateway:
        async with agent(gateway.url, None) as bot:
            allowed = await bot.call_tool("issue_refund", refund_args())
            assert text(allowed) == "refunded USD 40.00 on o-1"
        # A web page the operator visits cannot reach it by rebinding a name to 127.0.0.1.
        async with httpx.AsyncClient(timeout=120.0) as http:
            rebound = {**MCP_ACCEPT, "Host": "attacker.example"}
            refused = await http.post(gateway.url, json=INITIALIZE, headers=rebound)
            assert refused.status_code == 421
            page = {**MCP_ACCEPT, "Origin": "http://attacker.example"}
            refused = await http.post(gateway.url, json=INITIALIZE, headers=page)
            assert refused.status_code == 403
    assert refunds(shop) == [("40.00", "c-1", "o-1")]
    assert shop.decided(guard) == [("bot-7", "o-1", "allow")]


@pytest.mark.anyio
async def test_a_stdio_gateway_governs_an_upstream_served_over_http(tmp_path):
    shop = HttpShop(tmp_path)
    guard = shop.guard()
    with shop.http_upstream() as upstream:
        gateway = shop.gateway("--actor", "bot-1:ai_agent")
        gateway.args[gateway.args.index("--") :] = ["--upstream-url", upstream.url]
        with (tmp_path / "gateway.err").open("w") as errlog:
            async with (
                stdio_client(gateway, errlog=errlog) as streams,
                ClientSession(*streams) as bot,
            ):
                await bot.initialize()
                allowed = await bot.call_tool("issue_refund", refund_args())
                assert text(allowed) == "refunded USD 40.00 on o-1"
                routed = await bot.call_tool("issue_refund", refund_args("60.00", order_id="o-2"))
                assert routed.is_error
    assert refunds(shop) == [("40.00", "c-1", "o-1")]
    assert shop.decided(guard) == [("bot-1", "o-1", "allow"), ("bot-1", "o-2", "route")]


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (
            ["--http", "127.0.0.1:0", *UPSTREAM_URL, "--", "python", "up.py"],
            "give the upstream MCP server once: its command after --, or --upstream-url URL"
            " (both given)",
        ),
        (["--http", "127.0.0.1:0"], "(neither given)"),
        (
            [
                "--http",
                "127.0.0.1:0",
                "--actor",
                "bot-1:ai_agent",
                "--upstream-url",
                "http://127.0.0.1:9/mcp",
            ],
            "--actor with --http: over HTTP each request's token names its actor",
        ),
        (
            ["--http", "0.0.0.0:8765", "--no-auth", "--actor", "bot-1:ai_agent", *UPSTREAM_URL],
            "--no-auth on '0.0.0.0': without tokens the gateway serves a loopback address only",
        ),
        (
            ["--http", "127.0.0.1:0", "--no-auth", "--upstream-url", "http://127.0.0.1:9/mcp"],
            "--no-auth needs --actor ID:ROLE",
        ),
        (
            ["--no-auth", "--actor", "bot-1:ai_agent", "--upstream-url", "http://127.0.0.1:9/mcp"],
            "--no-auth is for --http",
        ),
        (["--upstream-url", "http://127.0.0.1:9/mcp"], "--actor ID:ROLE is required on stdio"),
        (
            ["--http", "8765", "--upstream-url", "http://127.0.0.1:9/mcp"],
            "--http '8765': write HOST:PORT",
        ),
    ],
)
def test_a_gateway_given_contradictory_options_is_refused_before_anything_starts(
    tmp_path, options, said
):
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    done = CliRunner().invoke(app, ["mcp", "--pack", str(SHOP_PACK), "--db", db, *options])
    assert done.exit_code == 2
    assert said in " ".join(done.stderr.split())
    assert not (tmp_path / "ledger.db").exists()


def test_an_upstream_url_that_is_not_http_is_refused(tmp_path):
    shop = HttpShop(tmp_path)
    options = ["mcp", "--pack", str(SHOP_PACK), "--db", shop.db, "--context", str(shop.facts)]
    options += ["--actor", "bot-1:ai_agent", "--upstream-url", "ftp://example.test/mcp"]
    done = CliRunner().invoke(app, options)
    assert done.exit_code == 2
    said = " ".join(done.stderr.split())
    assert "upstream URL 'ftp://example.test/mcp' is not an http:// or https:// URL" in said


def test_an_upstream_url_where_nothing_serves_is_refused_with_what_to_check(tmp_path):
    shop = HttpShop(tmp_path)
    options = ["mcp", "--pack", str(SHOP_PACK), "--db", shop.db, "--context", str(shop.facts)]
    options += ["--actor", "bot-1:ai_agent", *UPSTREAM_URL]
    done = CliRunner().invoke(app, options)
    assert done.exit_code == 2
    said = " ".join(done.stderr.split())
    assert "cannot connect to the upstream at 'http://127.0.0.1:9/mcp'" in said
    assert "check the URL" in said
