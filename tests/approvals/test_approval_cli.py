from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import CliRunner

from conftest import NOW, SHOP_PACK, good_facts, refund
from discretion import Guard, SqlStore, load_pack
from discretion.api import Tokens
from discretion.approvals import ApprovalStatus
from discretion.cli import _common, app
from discretion.context import StaticContextProvider

from .helpers import records

AT = NOW.isoformat()


@pytest.fixture(autouse=True)
def wide_plain_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "out", Console(width=250, color_system=None))
    monkeypatch.setattr(_common, "err", Console(stderr=True, width=250, color_system=None))


class Desk:
    """A database with routed cases, the facts to re-check them, and a CLI runner."""

    def __init__(self, root: Path) -> None:
        self.db = f"sqlite:///{root / 'ledger.db'}"
        self.context = root / "context.json"
        self.context.write_text(json.dumps({"defaults": good_facts()}), encoding="utf-8")
        self.store = SqlStore(self.db)
        self.guard = Guard(
            load_pack(SHOP_PACK),
            store=self.store,
            context=StaticContextProvider(good_facts()),
            clock=lambda: NOW,
        )
        self.runner = CliRunner()

    def invoke(self, *args: Any) -> Any:
        return self.runner.invoke(app, [str(a) for a in args])

    def token(self, subject: str, role: str) -> str:
        secret, _ = Tokens(self.store, clock=lambda: NOW).create(subject_id=subject, role=role)
        return secret


@pytest.fixture
def desk(tmp_path: Path) -> Any:
    made = Desk(tmp_path)
    yield made
    made.store.close()


def test_token_create_prints_a_token_that_authenticates(desk):
    result = desk.invoke(
        "token", "create", "--subject", "tina", "--role", "tier1", "--pack", SHOP_PACK,
        "--db", desk.db,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    found = Tokens(desk.store, clock=lambda: NOW).authenticate(secret)
    assert found is not None
    assert (found.subject_id, found.role, found.is_ai) == ("tina", "tier1", False)
    listed = desk.invoke("token", "list", "--db", desk.db)
    assert found.token_id in listed.stdout
    assert secret not in listed.stdout
    assert desk.invoke("token", "revoke", found.token_id, "--db", desk.db).exit_code == 0
    assert Tokens(desk.store, clock=lambda: NOW).authenticate(secret) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "ceo"], "role 'ceo' is not a role of pack"),
        (["--role", "manger"], "(did you mean 'manager'?); its roles: ai_agent, tier1"),
        (["--role", "ai_agent"], "pass --ai exactly for AI roles"),
        (["--role", "tier1", "--ai"], "pass --ai exactly for AI roles"),
    ],
)
def test_token_create_checks_the_role_against_the_pack(desk, args, message):
    result = desk.invoke(
        "token", "create", "--subject", "x", *args, "--pack", SHOP_PACK, "--db", desk.db
    )
    assert result.exit_code == 2
    assert message in result.stderr


def test_token_create_requires_the_pack_it_is_for(desk):
    result = desk.invoke("token", "create", "--subject", "x", "--role", "tier1", "--db", desk.db)
    assert result.exit_code == 2
    assert "--pack" in result.stderr
    assert desk.invoke("token", "list", "--db", desk.db).stdout.count("tok_") == 0


def test_approvals_list_show_approve_in_a_terminal(desk):
    routed = desk.guard.decide(refund("80.00"))
    listed = desk.invoke("approvals", "list", "--pack", SHOP_PACK, "--db", desk.db, "--now", AT)
    assert listed.exit_code == 0, listed.output
    assert routed.id in listed.stdout
    shown = desk.invoke("approvals", "show", routed.id, "--pack", SHOP_PACK, "--db", desk.db)
    assert "refund-within-30-days" in shown.stdout
    assert '"amount": "80.00"' in shown.stdout
    result = desk.invoke(
        "approvals", "approve", routed.id, "--pack", SHOP_PACK, "--db", desk.db,
        "--context", desk.context, "--token", desk.token("tina", "tier1"),
        "--note", "customer is right", "--amount", "60.00", "--now", AT,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{routed.id}: approved for USD 60.00" in result.stdout
    approval = desk.guard.approvals.get(routed.id)
    assert (approval.status, approval.decided_by) == (ApprovalStatus.APPROVED, "tina")
    assert str(approval.amount) == "USD 60.00"
    assert desk.guard.executions.pending()[0].arguments["amount"] == "60.00"
    [record] = records(desk.store, "approval.approved")
    assert json.loads(record.body)["note"] == "customer is right"
    shown = desk.invoke("approvals", "show", routed.id, "--pack", SHOP_PACK, "--db", desk.db)
    assert "approval.approved by tina (tier1): customer is right" in shown.stdout


def test_the_first_of_two_approvals_in_a_terminal_says_a_second_is_needed(tmp_path):
    source = SHOP_PACK.read_text(encoding="utf-8")
    pack = tmp_path / "dual.yaml"
    pack.write_text(
        source.replace(
            "actions:\n  refund:\n", 'actions:\n  refund:\n    two_approvals_above: "60.00"\n', 1
        ),
        encoding="utf-8",
    )
    desk = Desk(tmp_path)
    desk.guard = Guard(
        load_pack(pack),
        store=desk.store,
        context=StaticContextProvider(good_facts()),
        clock=lambda: NOW,
    )
    routed = desk.guard.decide(refund("80.00"))
    base = ["--pack", pack, "--db", desk.db, "--context", desk.context, "--now", AT]
    first = desk.invoke(
        "approvals", "approve", routed.id, *base, "--token", desk.token("tina", "tier1"),
        "--note", "receipt checked",
    )  # fmt: skip
    assert first.exit_code == 0, first.output
    assert f"{routed.id}: pending a second approval for USD 80.00" in first.stdout
    second = desk.invoke(
        "approvals", "approve", routed.id, *base, "--token", desk.token("tim", "tier1"),
        "--note", "agreed",
    )  # fmt: skip
    assert second.exit_code == 0, second.output
    assert f"{routed.id}: approved for USD 80.00" in second.stdout
    desk.store.close()


def test_approvals_reject_and_refusals_exit_1_with_the_reason(desk):
    routed = desk.guard.decide(refund("80.00"))
    base = ["--pack", SHOP_PACK, "--db", desk.db, "--now", AT]
    ai = Tokens(desk.store, clock=lambda: NOW).create(
        subject_id="bot-9", role="ai_agent", is_ai=True
    )[0]
    refused = desk.invoke("approvals", "reject", routed.id, *base, "--token", ai, "--note", "no")
    assert refused.exit_code == 1
    assert "AI actors never decide routed cases" in refused.stderr
    unknown = desk.invoke(
        "approvals", "reject", routed.id, *base, "--token", "dsc_nope", "--note", "no"
    )
    assert unknown.exit_code == 2
    assert "unknown or revoked" in unknown.stderr
    rejected = desk.invoke(
        "approvals", "reject", routed.id, *base, "--token", desk.token("tom", "tier2"),
        "--note", "not our fault",
    )  # fmt: skip
    assert rejected.exit_code == 0, rejected.output
    assert desk.guard.approvals.get(routed.id).status is ApprovalStatus.REJECTED
    again = desk.invoke(
        "approvals", "reject", routed.id, *base, "--token", desk.token("tim", "tier1"),
        "--note", "no",
    )  # fmt: skip
    assert again.exit_code == 1
    assert "already rejected by tom (tier2)" in again.stderr


def test_approvals_expire_from_a_scheduler(desk):
    routed = desk.guard.decide(refund("80.00"))
    later = "2026-11-27T12:00:01+00:00"  # a second past its due time
    result = desk.invoke(
        "approvals", "expire", "--pack", SHOP_PACK, "--db", desk.db, "--now", later
    )
    assert result.exit_code == 0, result.output
    assert "1 approval(s) expired" in result.stdout
    assert desk.guard.approvals.get(routed.id).status is ApprovalStatus.EXPIRED


def test_serve_builds_the_app_on_the_pack_and_database(desk, monkeypatch):
    import uvicorn

    served: dict[str, Any] = {}

    def fake_run(application: Any, **options: Any) -> None:
        served.update(options, app=application)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    result = desk.invoke(
        "serve", "--pack", SHOP_PACK, "--db", desk.db, "--host", "0.0.0.0", "--port", "9999"
    )
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("0.0.0.0", 9999)
    client = TestClient(served["app"])
    assert client.get("/health").json()["pack"] == "test-shop"
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {"/v1/decisions", "/v1/approvals/{approval_id}/approve", "/health"} <= paths


def test_every_approvals_command_takes_the_same_context_option(desk):
    # A script passes one set of options to each command: --context is read by approve's
    # re-check and accepted (and checked) by the rest alike.
    routed = desk.guard.decide(refund("80.00"))
    options = ["--pack", SHOP_PACK, "--db", desk.db, "--context", desk.context]
    listed = desk.invoke("approvals", "list", *options, "--now", AT, "--json")
    assert listed.exit_code == 0, listed.output
    assert [a["id"] for a in json.loads(listed.stdout)] == [routed.id]
    shown = desk.invoke("approvals", "show", routed.id, *options)
    assert shown.exit_code == 0, shown.output
    escalated = desk.invoke(
        "approvals", "escalate", routed.id, *options, "--now", AT,
        "--token", desk.token("tina", "tier1"), "--note", "above me",
    )  # fmt: skip
    assert escalated.exit_code == 0, escalated.output
    assert desk.guard.approvals.get(routed.id).required_role == "tier2"
    rejected = desk.invoke(
        "approvals", "reject", routed.id, *options, "--now", AT,
        "--token", desk.token("tom", "tier2"), "--note", "no",
    )  # fmt: skip
    assert rejected.exit_code == 0, rejected.output
    expired = desk.invoke("approvals", "expire", *options, "--now", AT)
    assert expired.exit_code == 0, expired.output
    missing = desk.invoke("approvals", "list", *options[:4], "--context", "nowhere.json")
    assert missing.exit_code != 0
