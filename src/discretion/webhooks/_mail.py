"""Email notices: an event as a short plain-text message, sent with the standard library.

An `smtp://` (or `smtp+starttls://`) endpoint is sent mail instead of a signed POST, through
the same cursor, lease and retries. The message's `Message-ID` is made from the event id, so a
redelivered notice is one message to a mail client that deduplicates on it.
"""

from __future__ import annotations

import re
import smtplib
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from discretion.proposal import CONTROL
from discretion.webhooks._events import Event

__all__ = ["MailFailed", "message_for", "send_mail"]

_BREAKS = re.compile(CONTROL.pattern + "+")
"""A run of the characters an id may not hold: one space in a header."""
_LABELS = (
    ("approval_id", "approval"),
    ("role", "role"),
    ("action", "action"),
    ("amount", "amount"),
    ("due_at", "due"),
    ("reason", "reason"),
    ("customer_id", "customer"),
    ("case_id", "case"),
    ("order_id", "order"),
    ("status", "status"),
    ("by", "by"),
    ("note", "note"),
    ("decision_id", "decision"),
    ("outcome", "outcome"),
    ("tool", "tool"),
)


class MailFailed(Exception):
    """The SMTP server did not take the message."""

    def __init__(self, message: str, *, is_transient: bool) -> None:
        super().__init__(message)
        self.is_transient = is_transient


def _text(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"amount", "currency"}:
        return f"{value['currency']} {value['amount']}"
    if isinstance(value, dict) and "id" in value:
        role = value.get("role")
        return f"{value['id']} ({role})" if role else str(value["id"])
    return str(value)


def _subject(event: Event) -> str:
    # A header is one line: a line break in a value (an id from an old record, say) would end
    # it and could start another header.
    return _BREAKS.sub(" ", _subject_text(event))


def _subject_text(event: Event) -> str:
    data = event.data
    what = " ".join(
        part
        for part in (
            str(data.get("action") or ""),
            _text(data["amount"]) if data.get("amount") else "",
        )
        if part
    )
    case = data.get("case_id") or data.get("approval_id") or data.get("decision_id") or ""
    if event.type == "approval.opened":
        return f"[discretion] {what} waits for {data.get('role')}: case {case}"
    if event.type == "approval.escalated":
        return f"[discretion] {what} escalated to {data.get('role')}: case {case}"
    if event.type == "approval.endorsed":
        return f"[discretion] {what} needs a second approver ({data.get('role')}): case {case}"
    return f"[discretion] {event.type}: {what} case {case}".replace("  ", " ")


def message_for(event: Event, *, sender: str, to: list[str]) -> EmailMessage:
    """The plain-text notice of an event."""
    data = event.data
    lines = [f"{label}: {_text(data[key])}" for key, label in _LABELS if data.get(key)]
    if data.get("link"):
        lines += ["", f"Open the case: {data['link']}"]
    lines += ["", f"event {event.id} ({event.type}), ledger record {event.ledger.seq}"]
    message = EmailMessage()
    message["Subject"] = _subject(event)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(event.created_at)
    message["Message-ID"] = f"<{event.id}@discretion>"
    message.set_content("\n".join(lines) + "\n")
    return message


def send_mail(
    url: str,
    message: EmailMessage,
    *,
    user: str | None,
    password: str,
    timeout_s: float = 10.0,
) -> None:
    """Send `message` through the SMTP server at `url` (`smtp://host:port`, `smtp+starttls://`).

    Raises:
        MailFailed: the server could not be reached or refused the message; a 4xx reply or a
            network error is transient, a 5xx is not.
    """
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 25
    try:
        with smtplib.SMTP(host, port, timeout=timeout_s) as smtp:
            if parts.scheme == "smtp+starttls":
                smtp.starttls()
            if user is not None:
                smtp.login(user, password)
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        raise MailFailed(
            f"SMTP {exc.smtp_code} from {host}:{port}: {exc.smtp_error!r}",
            is_transient=400 <= exc.smtp_code < 500,
        ) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailFailed(
            f"SMTP server {host}:{port} refused every recipient: {exc.recipients}",
            is_transient=False,
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:  # OSError: refused, unreachable, timeout
        raise MailFailed(
            f"SMTP server {host}:{port}: {type(exc).__name__}: {exc}", is_transient=True
        ) from exc
