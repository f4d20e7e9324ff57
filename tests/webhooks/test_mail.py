"""Email notices, sent to a real SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from conftest import good_facts, refund
from discretion import ConfigurationError
from discretion.webhooks import WebhookEndpoint


class Mailbox:
    """An SMTP server's handler: answers in turn from `replies` (then 250), keeps what it took."""

    def __init__(self) -> None:
        self.replies: list[str] = []
        self.tried = 0
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.tried += 1
        if self.replies:
            return self.replies.pop(0)
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, str]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield box, f"smtp://127.0.0.1:{controller.port}"
    controller.stop()


def test_a_case_arriving_for_a_role_is_mailed_to_that_role_only(
    make_deliverer, make_guard, mailbox
):
    box, smtp = mailbox
    guard = make_guard(good_facts(**{"shipment.status": "lost"}))
    deliverer = make_deliverer(
        f"{smtp} to=tier2-desk@acme.test from=discretion@acme.test roles=tier2",
        public_url="https://discretion.acme.test",
    )
    deliverer.enroll()
    guard.decide(refund("80.00", reason="carrier-lost"))  # tier1's: not mailed
    large = guard.decide(refund("125.00", key="k-2", reason="carrier-lost"))
    [delivery] = deliverer.deliver()
    assert (delivery.sent, delivery.error) == (1, None)
    [(recipients, message)] = box.messages
    assert recipients == ["tier2-desk@acme.test"]
    assert message["Subject"] == "[discretion] refund USD 125.00 waits for tier2: case case-1"
    assert message["From"] == "discretion@acme.test"
    assert message["Message-ID"].startswith("<evt_")
    text = message.get_payload(decode=True).decode()
    assert f"approval: {large.id}" in text
    assert "amount: USD 125.00" in text
    assert "order: o-1" in text
    assert f"Open the case: https://discretion.acme.test/ui/approvals/{large.id}" in text
    # Without events=, a mail endpoint is not sent every decision.
    assert deliverer.deliver()[0].sent == 0


def test_a_busy_mail_server_is_retried_and_a_refusal_backs_off(
    make_deliverer, guard, mailbox, clock
):
    box, smtp = mailbox
    deliverer = make_deliverer(f"{smtp} to=desk@acme.test from=d@acme.test")
    deliverer.enroll()
    guard.decide(refund("80.00"))
    box.replies = ["451 try again later"]
    assert deliverer.deliver()[0].sent == 1
    assert box.tried == 2
    guard.decide(refund("81.00", key="k-2"))
    box.replies = ["554 no thanks"]
    [refused] = deliverer.deliver()
    assert box.tried == 3  # a 5xx is not retried within the pass
    assert "SMTP 554" in (refused.error or "")
    clock.advance(seconds=10)
    assert deliverer.deliver()[0].sent == 1
    assert len(box.messages) == 2


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("smtp://mail.acme.test", "needs to=ADDRESS"),
        ("smtp://mail.acme.test to=nobody", "'nobody' is not an email address"),
        ("https://hooks.test/x to=a@acme.test", "are for smtp:// endpoints"),
    ],
)
def test_a_malformed_mail_endpoint_is_refused(spec, match):
    with pytest.raises(ConfigurationError, match=match):
        WebhookEndpoint.parse(spec)


def test_a_mail_login_needs_its_password():
    endpoint = WebhookEndpoint.parse("smtp://mail.acme.test to=a@acme.test user=bot")
    with pytest.raises(ConfigurationError, match="SMTP password of 'bot'"):
        endpoint.secret({})
    assert WebhookEndpoint.parse(endpoint.spec()) == endpoint


def test_a_line_break_in_a_value_never_reaches_a_header() -> None:
    from datetime import UTC, datetime

    from discretion.webhooks._events import Event, LedgerPlace
    from discretion.webhooks._mail import message_for

    event = Event(
        id="evt_1",
        type="approval.opened",
        created_at=datetime(2026, 11, 26, tzinfo=UTC),
        ledger=LedgerPlace(seq=1, partition=0, chain_seq=1, hash="0" * 64),
        data={"action": "refund", "role": "tier2", "case_id": "K-1\u2028\nBcc: someone@evil.test"},
    )

    message = message_for(event, sender="d@acme.test", to=["desk@acme.test"])

    assert (
        message["Subject"] == "[discretion] refund waits for tier2: case K-1 Bcc: someone@evil.test"
    )
    assert message["Bcc"] is None
