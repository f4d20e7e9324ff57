"""The lineage: canonical JSON, record hashes, and chain verification.

Every record's hash covers its sequence number, its kind, its canonical JSON body and the hash of
the record before it, so an edited body, a deleted record or two swapped records all break the
chain at a record `verify_chain` can name. A head row remembers the last sequence number and hash,
so a truncated tail is caught too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel

from discretion.errors import LedgerIntegrityError

__all__ = ["GENESIS", "LedgerRecord", "canonical_json", "digest", "record_hash", "verify_chain"]

GENESIS = "0" * 64
"""The previous-hash of the first record."""


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError(f"naive datetime {value!r} cannot be hashed; use an aware one")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def canonical_json(value: Any) -> str:
    """The one canonical JSON form every hash in discretion goes through.

    Keys sorted, no insignificant white space, UTF-8 kept, decimals as strings, datetimes in
    UTC ISO 8601. NaN and infinities are refused.
    """
    return json.dumps(
        value,
        default=_default,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def digest(value: Any) -> str:
    """SHA-256 hex digest of the canonical JSON of `value`."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def record_hash(*, seq: int, kind: str, body: str, prev_hash: str) -> str:
    """The hash of one lineage record."""
    material = f"{seq}\n{kind}\n{prev_hash}\n{body}".encode()
    return hashlib.sha256(material).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerRecord:
    """One lineage record as stored."""

    seq: int
    kind: str
    """`decision`, and later kinds for what people did with a decision."""
    subject_id: str
    """The decision (or approval, precedent) this record is about."""
    body: str
    """Canonical JSON."""
    prev_hash: str
    hash: str


def verify_chain(records: Iterable[LedgerRecord], *, head: tuple[int, str] | None) -> int:
    """Check a chain of records in sequence order and return how many verified.

    Raises:
        LedgerIntegrityError: naming the first record that was edited, deleted or reordered.
    """
    expected_prev = GENESIS
    expected_seq = 1
    count = 0
    for record in records:
        if record.seq != expected_seq:
            raise LedgerIntegrityError(
                f"record {expected_seq} is missing: the next record is {record.seq}"
                " (deleted or reordered)",
                seq=expected_seq,
            )
        if record.prev_hash != expected_prev:
            raise LedgerIntegrityError(
                f"record {record.seq} does not follow record {record.seq - 1}: its previous-hash"
                " does not match (deleted, inserted or reordered)",
                seq=record.seq,
            )
        actual = record_hash(
            seq=record.seq, kind=record.kind, body=record.body, prev_hash=record.prev_hash
        )
        if actual != record.hash:
            raise LedgerIntegrityError(
                f"record {record.seq} ({record.kind} {record.subject_id}) was edited:"
                " its content does not match its hash",
                seq=record.seq,
            )
        expected_prev = record.hash
        expected_seq += 1
        count += 1
    if head is not None:
        head_seq, head_hash = head
        if head_seq != count:
            raise LedgerIntegrityError(
                f"the ledger head names record {head_seq} but the chain ends at record {count}"
                " (records were removed from the end, or the head was altered)",
                seq=min(head_seq, count) + 1,
            )
        if head_hash != expected_prev:
            raise LedgerIntegrityError(
                f"record {count} does not match the hash the ledger head recorded for it"
                " (the last record was rewritten, or the head was altered)",
                seq=count,
            )
    return count
