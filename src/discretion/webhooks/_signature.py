"""Signing a webhook's body, and checking the signature where it is received.

```
X-Discretion-Signature: t=1764849600,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8...
```

`v1` is the hex HMAC-SHA256, under the endpoint's secret, of `f"{t}.{body}"`: the unix time the
request was signed at, a dot, and the raw body bytes. Signing the time with the body lets a
receiver refuse a request replayed later (`tolerance_s`). Several `v1` entries may be present
while a secret is rotated; one matching is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from discretion.errors import WebhookSignatureError

__all__ = [
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Discretion-Signature"
"""`t=<unix seconds>,v1=<hex HMAC-SHA256 of f"{t}.{body}">`."""
EVENT_ID_HEADER = "X-Discretion-Event-Id"
"""The event's id: the same on every delivery of the event; deduplicate on it."""
EVENT_TYPE_HEADER = "X-Discretion-Event-Type"
"""`decision.recorded`, `approval.opened`, ..."""


_SECONDS = re.compile("[0-9]{1,12}")


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, at: datetime) -> str:
    """The `X-Discretion-Signature` value of `body`, signed at `at`."""
    timestamp = int(at.timestamp())
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime | None = None,
    tolerance_s: float = 300,
) -> None:
    """Check a webhook request's signature; raise if it is not discretion's, or too old.

    Pass the raw body bytes as received, before any JSON parsing.

    Example:
        ```python
        from discretion.webhooks import verify_signature

        verify_signature(os.environ["DISCRETION_WEBHOOK_SECRET"], request.headers, raw_body)
        event = json.loads(raw_body)  # deduplicate on event["id"]
        ```

    Args:
        secret: the endpoint's shared secret.
        headers: the request's headers (any mapping; names are matched case-insensitively).
        body: the raw request body.
        now: the time to check against; the clock when absent.
        tolerance_s: how far the signed time may be from `now`, either way, in seconds.

    Raises:
        WebhookSignatureError: the header is missing or malformed, no `v1` matches, or the
            signed time is more than `tolerance_s` from `now`.
    """
    value = _header(headers, SIGNATURE_HEADER)
    if not value:
        raise WebhookSignatureError(f"the request has no {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            # Digits alone, of a time a clock may show: `int` also reads `+1`, `1_0` and
            # Arabic-Indic digits, and a time of 400 digits overflowed the comparison.
            if not _SECONDS.fullmatch(item):
                raise WebhookSignatureError(
                    f"{SIGNATURE_HEADER}: t={item[:40]!r} is not a unix time in seconds"
                )
            timestamp = int(item)
        elif key == "v1":
            candidates.append(item)
    if timestamp is None or not candidates:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER}: write t=<unix seconds>,v1=<hex digest>")
    moment = (now or datetime.now(UTC)).timestamp()
    if abs(moment - timestamp) > tolerance_s:
        raise WebhookSignatureError(
            f"{SIGNATURE_HEADER}: signed at t={timestamp}, more than {tolerance_s:g} s from now"
            f" ({int(moment)}); a replayed or delayed request, or a clock out of step"
        )
    expected = _digest(secret, timestamp, body)
    # Bytes: `compare_digest` refuses text that is not ASCII (`v1=é`) with a TypeError.
    wanted = expected.encode()
    if not any(
        hmac.compare_digest(wanted, candidate.encode("utf-8", "replace"))
        for candidate in candidates
    ):
        raise WebhookSignatureError(
            f"{SIGNATURE_HEADER}: no v1 signature matches the body under this secret (the body"
            " was changed, or the secret differs)"
        )
