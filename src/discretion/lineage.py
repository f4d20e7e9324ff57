"""The lineage: canonical JSON, record hashes, partition chains and checkpoints.

The ledger is a fixed number of hash chains (partitions). A record belongs to the partition of
the decision it is about (`partition_of`), so replicas appending about different decisions lock
different head rows. Every record's hash covers its partition, its place in that chain, its kind,
its canonical JSON body and the hash of the record before it, so an edited body, a deleted record
or two swapped records all break a chain at a record `ChainVerifier` can name. Each partition's
head row remembers its last record, so a truncated tail is caught too; checkpoints bind every
head at one moment and may be signed with a key the database never holds, so a partition cut
back or rewritten consistently behind a checkpoint is caught as well.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import orjson
from pydantic import BaseModel

from discretion.errors import LedgerIntegrityError

__all__ = [
    "GENESIS",
    "ChainVerifier",
    "Checkpoint",
    "LedgerRecord",
    "canonical_json",
    "canonical_members",
    "checkpoint_hash",
    "digest",
    "is_text",
    "partition_of",
    "record_hash",
    "storable",
    "verify_checkpoints",
    "without_surrogates",
]

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


def canonical_json(value: Any, *, finite: bool = False) -> str:
    """The one canonical JSON form every hash in discretion goes through.

    Keys sorted, no insignificant white space, UTF-8 kept, decimals as strings, datetimes in
    UTC ISO 8601. NaN and infinities are refused.

    `finite`: the caller's value can hold no NaN or infinity, because what it was built from
    refused them (a parsed proposal, typed facts, a decision's model). It is then written by
    orjson, several times faster than the standard library, to the same text byte for byte:
    orjson writes a NaN as null where the standard encoder refuses it, which is why the caller
    must know there is none. Where the two could write a value differently (a float below
    1e-4, written with an exponent; anything orjson cannot write) the standard encoder writes
    it.
    """
    if finite:
        try:
            fast = orjson.dumps(value, default=_default, option=_FAST)
        except TypeError:  # orjson's JSONEncodeError too: the standard encoder says why
            return _ENCODER.encode(value)
        if not _floats_may_differ(fast):
            return fast.decode()
    return _ENCODER.encode(value)


_FAST = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
"""Sorted keys; datetimes and dataclasses go to `_default`, as the standard encoder sends them."""


def _floats_may_differ(text: bytes) -> bool:
    """Whether orjson's `text` may hold a float the standard encoder writes otherwise.

    The two write every finite float alike except those below 1e-4 in magnitude: Python writes
    `1.5e-07` and `1e-05`, orjson `1.5e-7` and `0.00001`. A negative exponent after a digit, or
    four zeros after a decimal point, sends the value to the standard encoder; in a string
    they only cost that.
    """
    if b"0.0000" in text:
        return True
    at = text.find(b"e-")
    while at > 0:
        if 48 <= text[at - 1] <= 57:  # a digit: "1.5e-7"; not "case-1"
            return True
        at = text.find(b"e-", at + 2)
    return False


_ENCODER = json.JSONEncoder(
    default=_default,
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=False,
)
"""One encoder for every canonical JSON: `json.dumps` with these options builds a new one on
each call. Encoding keeps no state on it, so threads share it."""


def canonical_members(members: Mapping[str, str]) -> str:
    """The canonical JSON of an object whose members' canonical JSON is already made.

    The same text `canonical_json` gives the object itself (keys sorted, no spaces): a part
    serialised once, for its own digest, is not serialised again inside a larger body.
    """
    return (
        "{"
        + ",".join(f"{_ENCODER.encode(name)}:{text}" for name, text in sorted(members.items()))
        + "}"
    )


def digest(value: Any, *, finite: bool = False) -> str:
    """SHA-256 hex digest of the canonical JSON of `value` (`finite`: see `canonical_json`)."""
    return text_digest(canonical_json(value, finite=finite))


_SURROGATE = re.compile("[\ud800-\udfff]")


def is_text(text: str) -> bool:
    """Whether `text` holds no lone UTF-16 surrogate (an unpaired escape read by `json.loads`).

    Such a value is not text: no digest, no JSON and no database can encode it, so it is refused
    (or replaced) where it enters.
    """
    return text.isascii() or _SURROGATE.search(text) is None


def storable(text: str) -> bool:
    """Whether a store can hold `text`: no NUL (PostgreSQL refuses it), no lone surrogate."""
    return "\x00" not in text and is_text(text)


def without_surrogates(text: str) -> str:
    """`text` with each lone surrogate as U+FFFD, the replacement character."""
    return _SURROGATE.sub("\ufffd", text)


def text_digest(text: str) -> str:
    """SHA-256 hex digest of a canonical JSON text already made (`digest` of its value)."""
    return hashlib.sha256(text.encode()).hexdigest()


def partition_of(chain_id: str, partitions: int) -> int:
    """The partition whose chain holds the records about `chain_id` (a decision's id).

    A fixed hash, so every replica agrees without asking the database.
    """
    value = int.from_bytes(hashlib.sha256(chain_id.encode()).digest()[:8], "big")
    return value % partitions


def record_hash(
    *,
    seq: int,
    kind: str,
    body: str,
    prev_hash: str,
    partition: int = 0,
    subject_id: str | None = None,
    recorded_us: int | None = None,
) -> str:
    """The hash of one lineage record: record `seq` of `partition`'s chain.

    The partition is part of the material, so a record cannot be moved to another chain.
    Partition 0 hashes as the single chain of earlier versions did, so a ledger written before
    partitions verifies unchanged. With `subject_id` and `recorded_us` (every record appended
    now), what the record is about and when it was recorded are in the material too: a record
    cannot be moved to another decision's history or back-dated. Records appended before them
    hash without (see `LedgerRecord.intact`).
    """
    place = f"{seq}" if partition == 0 else f"{partition}/{seq}"
    if subject_id is None or recorded_us is None:
        material = f"{place}\n{kind}\n{prev_hash}\n{body}"
    else:
        material = f"v2\n{place}\n{kind}\n{subject_id}\n{recorded_us}\n{prev_hash}\n{body}"
    return hashlib.sha256(material.encode()).hexdigest()


def is_genuine(
    *,
    seq: int,
    kind: str,
    body: str,
    prev_hash: str,
    partition: int,
    subject_id: str,
    recorded_us: int,
    hash: str,
) -> bool:
    """Whether a stored record's hash recomputes from its content.

    From all of it (`record_hash` with subject and time), or, for a record appended before
    those were hashed, from its place, kind, previous hash and body. An edited subject or time
    of a record that hashed them recomputes neither: the stored hash is the full one.
    """
    whole = record_hash(
        seq=seq,
        kind=kind,
        body=body,
        prev_hash=prev_hash,
        partition=partition,
        subject_id=subject_id,
        recorded_us=recorded_us,
    )
    if whole == hash:
        return True
    return record_hash(seq=seq, kind=kind, body=body, prev_hash=prev_hash, partition=partition) == (
        hash
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerRecord:
    """One lineage record as stored."""

    seq: int
    """The record's place in the whole ledger: the order records were appended in."""
    partition: int
    """The chain the record belongs to."""
    chain_seq: int
    """The record's place in its partition's chain, from 1 with no gaps."""
    kind: str
    """`decision`, and later kinds for what people did with a decision."""
    subject_id: str
    """The decision (or approval, precedent) this record is about."""
    body: str
    """Canonical JSON."""
    prev_hash: str
    hash: str
    recorded_us: int = 0
    """When it was recorded, in microseconds since the epoch."""

    @property
    def label(self) -> str:
        """How error messages name the record."""
        return f"record {self.seq} ({self.kind} {self.subject_id}, partition {self.partition})"

    @property
    def intact(self) -> bool:
        """Whether its hash recomputes from its content (see `is_genuine`)."""
        return is_genuine(
            seq=self.chain_seq,
            kind=self.kind,
            body=self.body,
            prev_hash=self.prev_hash,
            partition=self.partition,
            subject_id=self.subject_id,
            recorded_us=self.recorded_us,
            hash=self.hash,
        )


class ChainVerifier:
    """Checks every partition's chain from the records in ledger order, in one pass.

    Within a partition, records must follow each other from 1 with no gap, each naming the
    previous record's hash, each hash recomputing. `bound` holds the records signed checkpoints
    name, `(partition, chain_seq) -> hash`: each must exist with exactly that hash.

    Raises (from `add` and `finish`):
        LedgerIntegrityError: naming the first record that was edited, deleted or reordered.
    """

    def __init__(self, partitions: int, *, bound: dict[tuple[int, int], str] | None = None) -> None:
        self._next = [1] * partitions
        self._prev = [GENESIS] * partitions
        self._bound = dict(bound or {})
        self.count = 0

    def add(self, record: LedgerRecord) -> None:
        """Check the next record of its partition."""
        partition = record.partition
        if not 0 <= partition < len(self._next):
            raise LedgerIntegrityError(
                f"{record.label} names a partition the ledger does not have", seq=record.seq
            )
        expected = self._next[partition]
        if record.chain_seq != expected:
            raise LedgerIntegrityError(
                f"partition {partition} is missing its record {expected}: the next record in it,"
                f" {record.label}, is its record {record.chain_seq} (deleted or reordered)",
                seq=record.seq,
            )
        if record.prev_hash != self._prev[partition]:
            raise LedgerIntegrityError(
                f"{record.label} does not follow the record before it in partition {partition}:"
                " its previous-hash does not match (deleted, inserted or reordered)",
                seq=record.seq,
            )
        if not record.intact:
            raise LedgerIntegrityError(
                f"{record.label} was edited: its content does not match its hash", seq=record.seq
            )
        signed = self._bound.pop((partition, record.chain_seq), None)
        if signed is not None and signed != record.hash:
            raise LedgerIntegrityError(
                f"{record.label} is not the record a signed checkpoint bound at its place"
                f" (partition {partition} was rewritten)",
                seq=record.seq,
            )
        self._next[partition] = expected + 1
        self._prev[partition] = record.hash
        self.count += 1

    def finish(self, heads: dict[int, tuple[int, str]]) -> int:
        """Compare each chain's end with its head row and the checkpoints; return the count."""
        for partition, (head_seq, head_hash) in sorted(heads.items()):
            if not 0 <= partition < len(self._next):
                raise LedgerIntegrityError(
                    f"a head row names partition {partition}, which no chain has"
                )
            last = self._next[partition] - 1
            if head_seq != last:
                raise LedgerIntegrityError(
                    f"the head of partition {partition} names its record {head_seq} but the chain"
                    f" ends at record {last} (records were removed from the end, or the head was"
                    " altered)"
                )
            if head_hash != self._prev[partition]:
                raise LedgerIntegrityError(
                    f"the last record of partition {partition} does not match the hash its head"
                    " recorded (the last record was rewritten, or the head was altered)"
                )
        if len(heads) != len(self._next):
            raise LedgerIntegrityError(
                f"the ledger has {len(heads)} head rows for {len(self._next)} partitions"
                " (a head row was deleted or added)"
            )
        for (partition, chain_seq), signed in sorted(self._bound.items()):
            if chain_seq == 0 and signed == GENESIS:
                continue
            raise LedgerIntegrityError(
                f"a signed checkpoint binds record {chain_seq} of partition {partition}, which"
                " no longer exists (records were removed from the end of the partition)"
            )
        return self.count


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A record that binds the heads of every partition at one moment, optionally signed."""

    seq: int
    at_us: int
    heads: tuple[tuple[int, int, str], ...]
    """`(partition, chain_seq, hash)` of every partition's last record."""
    prev_hash: str
    hash: str
    key_id: str | None = None
    signature: str | None = None
    """Ed25519 over `hash`, hex; see `discretion.signing`."""


def checkpoint_hash(
    *, seq: int, at_us: int, heads: Iterable[tuple[int, int, str]], prev_hash: str
) -> str:
    """The hash of a checkpoint: its place, its moment, the heads it binds, the one before it."""
    material = {"at_us": at_us, "heads": [list(h) for h in heads], "prev": prev_hash, "seq": seq}
    return digest(material)


def verify_checkpoints(
    checkpoints: Iterable[Checkpoint],
    *,
    partitions: int,
    check_signature: Any = None,
) -> dict[tuple[int, int], str]:
    """Check the checkpoint chain; return the records it binds, `(partition, chain_seq) -> hash`.

    `check_signature(checkpoint)` raises `LedgerIntegrityError` when a signature does not verify;
    without it signatures are not checked.

    Raises:
        LedgerIntegrityError: a checkpoint was edited, deleted, reordered or forged.
    """
    bound: dict[tuple[int, int], str] = {}
    expected_prev = GENESIS
    reached = [0] * partitions
    for number, checkpoint in enumerate(checkpoints, start=1):
        if checkpoint.seq != number:
            raise LedgerIntegrityError(
                f"checkpoint {number} is missing: the next one is {checkpoint.seq}"
            )
        if checkpoint.prev_hash != expected_prev:
            raise LedgerIntegrityError(
                f"checkpoint {number} does not follow checkpoint {number - 1}: its previous-hash"
                " does not match"
            )
        actual = checkpoint_hash(
            seq=checkpoint.seq,
            at_us=checkpoint.at_us,
            heads=checkpoint.heads,
            prev_hash=checkpoint.prev_hash,
        )
        if actual != checkpoint.hash:
            raise LedgerIntegrityError(
                f"checkpoint {number} was edited: its content does not match its hash"
            )
        if sorted(p for p, _, _ in checkpoint.heads) != list(range(partitions)):
            raise LedgerIntegrityError(
                f"checkpoint {number} does not bind exactly the {partitions} partitions"
            )
        for partition, chain_seq, head_hash in checkpoint.heads:
            if chain_seq < reached[partition]:
                raise LedgerIntegrityError(
                    f"checkpoint {number} binds partition {partition} at record {chain_seq},"
                    f" behind the {reached[partition]} an earlier checkpoint bound"
                )
            reached[partition] = chain_seq
            known = bound.setdefault((partition, chain_seq), head_hash)
            if known != head_hash:
                raise LedgerIntegrityError(
                    f"checkpoints disagree on record {chain_seq} of partition {partition}"
                )
        if check_signature is not None:
            check_signature(checkpoint)
        expected_prev = checkpoint.hash
    return bound
