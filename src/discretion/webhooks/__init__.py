"""Signed webhooks: the ledger's decisions and approvals, sent to the systems that act on them.

Events are derived from the hash-chained ledger, the one source of truth: a `Deliverer` reads
the records past each endpoint's cursor, turns them into events (`decision.recorded`,
`approval.opened`, `approval.approved`, ...; see `EVENT_TYPES`), POSTs them signed, and moves
the cursor only after a 2xx. Delivery is at least once; each event's id is stable, so receivers
deduplicate on it. An endpoint filtered by `roles` is told when a case arrives for those roles.

A receiver checks each request with `verify_signature` before trusting it:

```python
from discretion.webhooks import verify_signature

verify_signature(secret, request.headers, raw_body)   # raises WebhookSignatureError
```

`discretion serve --webhook URL` delivers every few seconds; `discretion webhooks deliver`
runs one pass (`deliver_once`: cron, tests). The `webhooks` extra (httpx, tenacity) is needed
to deliver, not to verify.
"""

from discretion.errors import WebhookSignatureError
from discretion.webhooks._deliver import Deliverer, Delivery, deliver_once
from discretion.webhooks._endpoint import DEFAULT_SECRET_ENV, MIN_SECRET_LENGTH, WebhookEndpoint
from discretion.webhooks._events import (
    EVENT_TYPES,
    ROLE_EVENTS,
    ApprovalChanged,
    ApprovalChangedEvent,
    ApprovalOpened,
    ApprovalOpenedEvent,
    DecisionRecorded,
    DecisionRecordedEvent,
    Event,
    ExecutionFinished,
    ExecutionFinishedEvent,
    events_of,
)
from discretion.webhooks._signature import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    sign,
    verify_signature,
)

__all__ = [
    "DEFAULT_SECRET_ENV",
    "EVENT_ID_HEADER",
    "EVENT_TYPES",
    "EVENT_TYPE_HEADER",
    "MIN_SECRET_LENGTH",
    "ROLE_EVENTS",
    "SIGNATURE_HEADER",
    "ApprovalChanged",
    "ApprovalChangedEvent",
    "ApprovalOpened",
    "ApprovalOpenedEvent",
    "DecisionRecorded",
    "DecisionRecordedEvent",
    "Deliverer",
    "Delivery",
    "Event",
    "ExecutionFinished",
    "ExecutionFinishedEvent",
    "WebhookEndpoint",
    "WebhookSignatureError",
    "deliver_once",
    "events_of",
    "sign",
    "verify_signature",
]
