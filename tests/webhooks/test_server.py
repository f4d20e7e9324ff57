from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import SHOP_PACK, refund
from discretion import ConfigurationError, Guard, SqlStore, load_pack
from discretion.api import create_app
from discretion.cli import app as cli
from discretion.context import StaticContextProvider
from discretion.settings import Settings, build_deliverer, build_guard
from discretion.webhooks import EVENT_TYPES, SIGNATURE_HEADER, WebhookEndpoint, verify_signature

from .conftest import ENV, SECRET

HOOK = "https://hooks.test/desk events=approval.opened roles=tier1,tier2 name=desk"


def test_every_payload_is_in_the_openapi_document(guard):
    with TestClient(create_app(guard)) as client:
        document = client.get("/openapi.json").json()
    hooks = document["webhooks"]
    assert set(hooks) == {
        "decision.recorded",
        "approval.opened",
        "approval.changed",
        "execution.finished",
    }
    body = hooks["approval.opened"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ApprovalOpenedEvent"}
    opened = document["components"]["schemas"]["ApprovalOpened"]["properties"]
    assert {"approval_id", "role", "action", "amount", "case_id", "order_id", "link"} <= set(opened)
    changed = document["components"]["schemas"]["ApprovalChangedEvent"]["properties"]["type"]
    assert set(changed["enum"]) == {t for t in EVENT_TYPES if t.startswith("approval.")} - {
        "approval.opened"
    }
    assert "X-Discretion-Signature" in hooks["decision.recorded"]["post"]["description"]


def test_the_server_delivers_in_its_lifespan(store, guard, clock, client, inbox):
    from discretion.webhooks import Deliverer

    arrived = threading.Event()
    inbox.on_request = lambda _received: arrived.set()
    deliverer = Deliverer(
        store,
        [WebhookEndpoint.parse("https://hooks.test/a events=approval.opened")],
        environ=ENV,
        client=client,
        clock=clock,
    )
    with TestClient(create_app(guard, webhooks=deliverer, webhook_every_s=0.05)):
        decision = guard.decide(refund("80.00"))
        # Waits for the server's own loop; nothing in the test sleeps.
        assert arrived.wait(timeout=30)
    [event] = inbox.events()
    assert (event["type"], event["data"]["approval_id"]) == ("approval.opened", decision.id)


def test_overdue_approvals_expire_in_the_lifespan_without_webhooks(guard, clock, monkeypatch):
    decision = guard.decide(refund("80.00"))
    assert guard.approvals.get(decision.id).status == "pending"
    clock.advance(days=30)  # well past any approval SLA
    passes = threading.Event()
    expire_due = guard.approvals.expire_due

    def counted():
        expired = expire_due()
        passes.set()
        return expired

    monkeypatch.setattr(guard.approvals, "expire_due", counted)
    with TestClient(create_app(guard, webhook_every_s=0.05)):
        # Waits for the server's own loop; nothing in the test sleeps.
        assert passes.wait(timeout=30)
    assert guard.approvals.get(decision.id).status == "expired"
    [row] = guard.store.history(decision.id)[-1:]
    assert row.kind == "approval.expired"


def test_webhooks_reach_every_worker_through_the_environment_without_their_secret(tmp_path):
    settings = Settings(
        pack=SHOP_PACK,
        db=f"sqlite:///{tmp_path / 'ledger.db'}",
        webhooks=(
            WebhookEndpoint.parse(HOOK),
            WebhookEndpoint.parse("http://127.0.0.1:9/all secret-env=OTHER_SECRET"),
        ),
        public_url="https://discretion.acme.test",
        webhook_every_s=2.5,
    )
    environment = settings.to_environment()
    assert SECRET not in "".join(environment.values())
    again = Settings.from_environment(environment)
    assert again.webhooks == settings.webhooks
    assert again.public_url == "https://discretion.acme.test"
    assert again.webhook_every_s == 2.5
    assert again.webhooks[1].secret_env == "OTHER_SECRET"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("ftp://hooks.test/x", "write an http\\(s\\) URL"),
        ("https://hooks.test/x events=approval.openned", "unknown event type approval.openned"),
        ("https://hooks.test/x roles=", "roles= lists nothing"),
        ("https://hooks.test/x colour=blue", "'colour=blue' is not an option"),
        ("https://hooks.test/x secret-env=1BAD", "not an environment variable name"),
    ],
)
def test_a_malformed_webhook_is_a_configuration_error_naming_it(spec, match):
    with pytest.raises(ConfigurationError, match=match):
        WebhookEndpoint.parse(spec)


@pytest.mark.parametrize("role", ["tier3", "ai_agent"])
def test_a_role_filter_must_name_a_role_people_hold(tmp_path, monkeypatch, role):
    monkeypatch.setenv("DISCRETION_WEBHOOK_SECRET", SECRET)
    settings = Settings(
        pack=SHOP_PACK,
        db=f"sqlite:///{tmp_path / 'ledger.db'}",
        webhooks=(WebhookEndpoint.parse(f"https://hooks.test/x roles={role}"),),
    )
    guard = build_guard(settings)
    with pytest.raises(ConfigurationError, match=f"roles='{role}' is not a role people hold") as e:
        build_deliverer(settings, guard)
    assert str(e.value).endswith("roles: tier1, tier2, manager")  # people only, lowest first
    guard.store.close()


def test_serve_refuses_a_malformed_webhook_before_starting(tmp_path):
    result = CliRunner().invoke(
        cli,
        ["serve", "--pack", str(SHOP_PACK), "--webhook", "https://hooks.test/x events=nope"],
    )
    assert result.exit_code == 2
    assert "--webhook: webhook" in result.output
    assert "unknown event type nope" in result.output


def test_the_deliver_command_sends_one_pass_and_status_shows_it(
    tmp_path: Path, real_receiver, monkeypatch, clock
):
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = SqlStore(db)
    guard = Guard(load_pack(SHOP_PACK), store=store, context=StaticContextProvider({}), clock=clock)
    monkeypatch.setenv("DISCRETION_WEBHOOK_SECRET", SECRET)
    spec = f"{real_receiver.url} events=decision.recorded name=ops"
    arguments = ["webhooks", "deliver", "--pack", str(SHOP_PACK), "--db", db, "--webhook", spec]
    first = CliRunner().invoke(cli, arguments)
    assert first.exit_code == 0, first.output
    assert "ops: 0 sent" in first.output  # enrolled now: earlier records are history
    decision = guard.decide(refund("10.00"))
    second = CliRunner().invoke(cli, arguments)
    assert second.exit_code == 0, second.output
    assert "ops: 1 sent" in second.output
    [request] = real_receiver.inbox.got
    signed_at = request.headers[SIGNATURE_HEADER].split(",")[0].removeprefix("t=")
    verify_signature(
        SECRET, request.headers, request.body, now=datetime.fromtimestamp(int(signed_at), UTC)
    )
    assert request.event["data"]["decision_id"] == decision.id
    guard.decide(refund("11.00", key="k-2"))
    real_receiver.inbox.statuses = [404]
    refused = CliRunner().invoke(cli, arguments)
    assert refused.exit_code == 1
    assert "HTTP 404" in refused.output
    status = CliRunner().invoke(cli, ["webhooks", "status", "--db", db])
    assert status.exit_code == 0, status.output
    assert "ops" in status.output
    assert "HTTP 404" in status.output
    store.close()
