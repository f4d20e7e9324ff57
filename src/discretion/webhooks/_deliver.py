"""Delivering events: read the ledger past each endpoint's cursor, POST, then move the cursor.

```
ledger ──records past the cursor──▶ events_of ──endpoint.wants──▶ POST (signed) ──2xx──▶ advance
                                                                      │ other
                                                                      ▼
                                           retried in this pass (tenacity), then next_attempt_at
```

At least once, never lost: an endpoint's cursor moves past a record only after every event the
record yields was answered with a 2xx, so a crash between the POST and the move sends the same
event (same id) again. Events about one case share a ledger partition and arrive in the order
they happened; the endpoint stops at the first event it cannot deliver and starts there again.

What is retried, and when:

- a network error, a timeout, 5xx, 408 or 429: again within the pass, `attempts` times in all,
  with exponential waits (`wait`, `sleep` injectable); then, like every failure, again once its
  durable backoff has passed (`backoff`, doubling per failed pass up to `max_backoff`);
- any other status (a 4xx such as 401 from a wrong secret, 404 from a wrong URL, or a 3xx):
  not within the pass, since the same request gets the same answer, but it is kept: the
  endpoint waits its backoff with the status as `last_error`, and is sent the same event when an
  operator has fixed the receiver. No event is dropped for a receiver's mistake.

One endpoint is delivered to by one process at a time: a pass claims the endpoint's lease (a
conditional `UPDATE` in `store.webhooks`) and every cursor move is conditional on still holding
it. A lease that lapses (its holder crashed) is taken over by the next pass.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from discretion import __version__
from discretion.decision import Decision
from discretion.errors import ConfigurationError, DiscretionError, LedgerIntegrityError
from discretion.lineage import LedgerRecord
from discretion.store import PendingRecord, SqlStore
from discretion.types import utc_now
from discretion.webhooks._endpoint import WebhookEndpoint
from discretion.webhooks._events import Event, events_of
from discretion.webhooks._mail import MailFailed, message_for, send_mail
from discretion.webhooks._signature import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    sign,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["Deliverer", "Delivery", "deliver_once"]

logger = logging.getLogger("discretion.webhooks")

_TRANSIENT = frozenset({408, 429})


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """What one pass did for one endpoint."""

    endpoint: str
    """The endpoint's id."""
    claimed: bool
    """Whether this pass delivered to it; False when another process holds it, or its
    backoff has not passed."""
    sent: int = 0
    """Events answered with a 2xx."""
    error: str | None = None
    """Why it stopped short, if it did; it is tried again at `next_attempt_at`."""
    next_attempt_at: datetime | None = None
    """When it is tried again after an error."""


class _Failed(Exception):
    """An attempt that did not get a 2xx."""

    def __init__(self, message: str, *, is_transient: bool) -> None:
        super().__init__(message)
        self.is_transient = is_transient


def _owner() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _Read:
    """One pass's reading of the ledger, shared by its endpoints.

    Each record's hash is checked and its events made once, however many endpoints it goes to;
    the last `keep` records' events are kept (endpoints that are up to date read the same
    ones), so a pass holds no more than a batch of them however far behind an endpoint is.
    """

    def __init__(self, store: SqlStore, link: Callable[[str], str], *, keep: int) -> None:
        self._store = store
        self._link = link
        self._keep = keep
        self._decisions: dict[str, Decision | None] = {}
        self._events: dict[int, tuple[PendingRecord, list[Event]]] = {}

    def decision(self, decision_id: str) -> Decision | None:
        if decision_id not in self._decisions:
            self._decisions[decision_id] = self._store.decision(decision_id)
        return self._decisions[decision_id]

    def events(self, item: PendingRecord) -> list[Event]:
        """The events of a record, once its hash recomputes: an edited record sends nothing."""
        seq = item.record.seq
        kept = self._events.get(seq)
        # Kept only for the very record checked: one read again after an edit is checked again.
        if kept is not None and kept[0] == item:
            return kept[1]
        found = self._check(item)
        self._events.pop(seq, None)
        self._events[seq] = (item, found)
        if len(self._events) > self._keep:
            del self._events[next(iter(self._events))]
        return found

    def _check(self, item: PendingRecord) -> list[Event]:
        record = item.record
        where = f"ledger record {record.seq} ({record.kind})"
        if not record.intact:
            raise LedgerIntegrityError(
                f"{where} was edited (its hash does not recompute); nothing is sent from it or"
                " after it. Run `discretion ledger verify`",
                seq=record.seq,
            )
        try:
            return events_of(item, decision_of=self.decision, link=self._link)
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerIntegrityError(
                f"{where} is malformed ({exc!r}); nothing is sent from it or after it. Run"
                " `discretion ledger verify`",
                seq=record.seq,
            ) from exc


class Deliverer:
    """Delivers the ledger's events to webhook endpoints, signed, at least once.

    Example:
        ```python
        endpoint = WebhookEndpoint.parse("https://hooks.acme.test/d events=approval.opened")
        deliverer = Deliverer(guard.store, [endpoint])   # secret: DISCRETION_WEBHOOK_SECRET
        deliverer.deliver()                              # one pass; serve runs it every few s
        ```

    Args:
        store: the store whose ledger is read and where the cursors are kept.
        endpoints: where events go.
        environ: where the endpoints' secrets are read (`os.environ` when absent).
        public_url: the server's address as people reach it, for links to the desk; links are
            paths (`/ui/approvals/<id>`) when absent.
        client: the HTTP client (a 10 s timeout by default); tests pass one over
            `httpx.MockTransport`.
        clock: the time, for signatures, leases and backoff.
        sleep: how the retries within a pass wait; tenacity's when absent.
        wait: a tenacity wait between those retries; exponential from 0.5 s to 8 s by default.
        attempts: tries per event within one pass.
        backoff: the wait after the first failed pass; doubled after each further one.
        max_backoff: the longest wait between passes.
        lease: how long a pass may hold an endpoint without moving its cursor.
        batch: ledger records read at a time.
        owner: this process's name on the leases it takes.

    Raises:
        ConfigurationError: an endpoint's secret is not set, two endpoints share an id, or the
            `webhooks` extra is not installed.
    """

    def __init__(
        self,
        store: SqlStore,
        endpoints: Sequence[WebhookEndpoint],
        *,
        environ: Mapping[str, str] | None = None,
        public_url: str | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
        wait: Any = None,
        attempts: int = 3,
        backoff: timedelta = timedelta(seconds=10),
        max_backoff: timedelta = timedelta(hours=1),
        lease: timedelta = timedelta(seconds=60),
        batch: int = 100,
        owner: str | None = None,
    ) -> None:
        try:
            import httpx
            import tenacity

            from discretion._retry import retrying
        except ImportError as exc:
            raise ConfigurationError(
                f"webhooks need the {exc.name} package: pip install 'discretion[webhooks]'"
            ) from exc
        if attempts < 1 or batch < 1:
            raise ConfigurationError("webhooks: attempts and batch must be at least 1")
        env = os.environ if environ is None else environ
        ids = [endpoint.id for endpoint in endpoints]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ConfigurationError(
                f"webhooks: two endpoints have the id {twice[0]!r}; give each its own name="
            )
        self._store = store
        self._endpoints = [(endpoint, endpoint.secret(env)) for endpoint in endpoints]
        self._public_url = public_url.rstrip("/") if public_url else ""
        self._client = client if client is not None else httpx.Client(timeout=10.0)
        self._owns_client = client is None
        self._clock = clock or utc_now
        self._retrying = retrying
        self._httpx = httpx
        self._sleep = sleep
        self._wait = wait if wait is not None else tenacity.wait_exponential(multiplier=0.5, max=8)
        self._attempts = attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._lease = lease
        self._batch = batch
        self.owner = owner or _owner()
        """This process's name on the leases it takes."""
        self._enrolled = False

    @property
    def endpoints(self) -> list[WebhookEndpoint]:
        """The endpoints it delivers to."""
        return [endpoint for endpoint, _ in self._endpoints]

    def close(self) -> None:
        """Close the HTTP client it made."""
        if self._owns_client:
            self._client.close()

    def enroll(self) -> None:
        """Give each new endpoint its place: the ledger's heads now.

        A new endpoint receives what is recorded from then on. `deliver` enrolls first; the
        server enrolls when it starts, so nothing recorded while it runs is missed.
        """
        now = self._clock()
        for endpoint, _ in self._endpoints:
            self._store.webhooks.enroll(endpoint.id, endpoint.url, at=now)
        self._enrolled = True

    def deliver(self) -> list[Delivery]:
        """One pass: every endpoint not held by another process, as far as it gets.

        Raises:
            StoreError: the database failed; what was delivered stays delivered.
        """
        if not self._enrolled:
            self.enroll()
        read = _Read(self._store, self._link, keep=self._batch)
        return [self._deliver_to(endpoint, secret, read) for endpoint, secret in self._endpoints]

    def _link(self, approval_id: str) -> str:
        return f"{self._public_url}/ui/approvals/{approval_id}"

    def _until(self) -> datetime:
        return self._clock() + self._lease

    def _deliver_to(self, endpoint: WebhookEndpoint, secret: str, read: _Read) -> Delivery:
        cursors = self._store.webhooks
        now = self._clock()
        row = cursors.claim(endpoint.id, owner=self.owner, now=now, until=now + self._lease)
        if row is None:
            return Delivery(endpoint=endpoint.id, claimed=False)
        positions = list(row.positions)
        sent = 0
        # The last record passed over without an event, not yet written to the cursor.
        unsaved: LedgerRecord | None = None
        try:
            while True:
                pending = cursors.pending(positions, limit=self._batch)
                for item in pending:
                    record = item.record
                    found = read.events(item)
                    wanted = [event for event in found if endpoint.wants(event)]
                    for event in wanted:
                        self._post(endpoint, secret, event)
                    positions[record.partition] = record.chain_seq
                    if not wanted:
                        unsaved = record
                        continue
                    sent += len(wanted)
                    unsaved = None
                    if not self._advance(endpoint, record, positions, len(wanted)):
                        return Delivery(endpoint=endpoint.id, claimed=True, sent=sent)
                if unsaved is not None:
                    if not self._advance(endpoint, unsaved, positions, 0):
                        return Delivery(endpoint=endpoint.id, claimed=True, sent=sent)
                    unsaved = None
                if len(pending) < self._batch:
                    break
        except (_Failed, DiscretionError) as exc:
            return self._failed(endpoint, row.attempts, str(exc), sent)
        except Exception as exc:  # noqa: BLE001 - one endpoint's fault stays its own
            # An event this endpoint cannot be sent (a notice that cannot be built) backs it
            # off as a failed post does; the other endpoints are still served in this pass.
            return self._failed(endpoint, row.attempts, f"{type(exc).__name__}: {exc}", sent)
        cursors.release(endpoint.id, owner=self.owner)
        return Delivery(endpoint=endpoint.id, claimed=True, sent=sent)

    def _advance(
        self, endpoint: WebhookEndpoint, record: LedgerRecord, positions: list[int], events: int
    ) -> bool:
        return self._store.webhooks.advance(
            endpoint.id,
            owner=self.owner,
            record=record,
            positions=positions,
            events=events,
            now=self._clock(),
            until=self._until(),
        )

    def _failed(self, endpoint: WebhookEndpoint, attempts: int, error: str, sent: int) -> Delivery:
        now = self._clock()
        # A pass that got some events through still failed at the next: the count goes on.
        failures = attempts + 1
        delay = min(self._backoff * 2 ** min(failures - 1, 30), self._max_backoff)
        self._store.webhooks.fail(
            endpoint.id,
            owner=self.owner,
            attempts=failures,
            next_attempt_at=now + delay,
            error=error,
            now=now,
        )
        return Delivery(
            endpoint=endpoint.id,
            claimed=True,
            sent=sent,
            error=error,
            next_attempt_at=now + delay,
        )

    def _post(self, endpoint: WebhookEndpoint, secret: str, event: Event) -> None:
        """POST one event, retrying what may pass on its own; raise `_Failed` if it never did."""
        # Not `lineage.canonical_json`: that keeps UTF-8, and bodies have always been sent with
        # non-ASCII escaped. Receivers see the same bytes for the same event.
        body = json.dumps(
            event.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode()
        retrying = self._retrying(
            attempts=self._attempts,
            wait=self._wait,
            transient=lambda exc: isinstance(exc, _Failed) and exc.is_transient,
            sleep=self._sleep,
        )
        for attempt in retrying:
            with attempt:
                if endpoint.is_mail:
                    self._mail(endpoint, secret, event)
                else:
                    self._send(endpoint, secret, event, body)

    def _mail(self, endpoint: WebhookEndpoint, password: str, event: Event) -> None:
        sender = endpoint.sender or f"discretion@{socket.gethostname()}"
        message = message_for(event, sender=sender, to=sorted(endpoint.to or ()))
        try:
            send_mail(endpoint.url, message, user=endpoint.user, password=password)
        except MailFailed as exc:
            raise _Failed(
                f"{event.type} {event.id} to {endpoint.url}: {exc}", is_transient=exc.is_transient
            ) from exc

    def _send(self, endpoint: WebhookEndpoint, secret: str, event: Event, body: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"discretion/{__version__}",
            # Signed at each attempt, so a retry is not refused as too old.
            SIGNATURE_HEADER: sign(secret, body, at=self._clock()),
            EVENT_ID_HEADER: event.id,
            EVENT_TYPE_HEADER: event.type,
        }
        try:
            response = self._client.post(endpoint.url, content=body, headers=headers)
        except self._httpx.TransportError as exc:
            raise _Failed(
                f"{event.type} {event.id} to {endpoint.url}: {type(exc).__name__}: {exc}",
                is_transient=True,
            ) from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        raise _Failed(
            f"{event.type} {event.id} to {endpoint.url}: HTTP {status}"
            f" {response.text[:200]!r}".rstrip(),
            is_transient=status >= 500 or status in _TRANSIENT,
        )


class _DueApprovals(Protocol):
    def expire_due(self) -> object: ...


class _WithApprovals(Protocol):
    """A guard, as far as a pass needs it: its approvals."""

    @property
    def approvals(self) -> _DueApprovals: ...


def deliver_once(guard: _WithApprovals, deliverer: Deliverer) -> list[Delivery]:
    """One pass: expire the approvals whose due time has come, then deliver.

    Expiring first makes an overdue case's `approval.expired` go out on time, rather than when
    someone next opens it. What could not be delivered is logged as a warning.

    Example:
        ```python
        deliveries = deliver_once(guard, build_deliverer(settings, guard))
        ```
    """
    guard.approvals.expire_due()
    deliveries = deliverer.deliver()
    for delivery in deliveries:
        if delivery.error is not None:
            logger.warning(
                "webhook %s: %s; next attempt at %s",
                delivery.endpoint,
                delivery.error,
                delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else "-",
            )
    return deliveries
