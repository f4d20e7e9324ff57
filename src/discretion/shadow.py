"""Shadow mode: a candidate pack decides beside the enforced one, and only its answer is recorded.

`Guard(pack, shadow=candidate)` decides every proposal under `pack` as usual; after each new
decision is committed, the candidate re-decides the same proposal at the same time on the same
frozen facts (plus any field only the candidate reads, from the guard's context providers) and a
`shadow.decision` lineage record keeps what it would have decided. The enforced decision never
waits on, or changes with, the candidate: a shadow that fails is logged and skipped.
`discretion replay --shadow` reports what would change.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from discretion.context import ChainedContext, Snapshot, StaticContextProvider
from discretion.decision import Decision
from discretion.errors import DiscretionError
from discretion.policy import PolicyPack, load_pack
from discretion.proposal import Proposal

if TYPE_CHECKING:
    from discretion.guard import Guard

__all__ = ["SHADOW_RECORD", "Shadow"]

SHADOW_RECORD = "shadow.decision"
"""The lineage record kind a shadow decision is kept under; its subject is the real decision."""

_log = logging.getLogger("discretion.shadow")


class Shadow:
    """A candidate pack decided in shadow beside the enforced one.

    Decisions in shadow are made before budgets (nothing is reserved for them) and without an
    LLM judge; precedents on record are read but never consumed.

    Args:
        pack: the candidate pack, or its path.
    """

    def __init__(self, pack: PolicyPack | str | Path) -> None:
        self.pack = pack if isinstance(pack, PolicyPack) else load_pack(pack)

    def decide(
        self, guard: Guard, proposal: Proposal, snapshot: Snapshot, at: Decision
    ) -> Decision:
        """What the candidate would decide for `proposal` on `snapshot`, at `at`'s time."""
        from discretion.guard import Guard  # the guard module imports this one

        candidate = Guard(
            self.pack,
            store=guard.store,
            # The enforced decision's frozen facts first, so both decide on the same facts.
            context=ChainedContext([StaticContextProvider(snapshot.values), guard.context]),
            clock=lambda: at.decided_at,
            ids=lambda: f"shadow_{at.id}"[:64],
        )
        return candidate.preview(proposal)

    def observe(self, guard: Guard, proposal: Proposal, snapshot: Snapshot, at: Decision) -> None:
        """Decide in shadow and append a `shadow.decision` record about `at`."""
        body: dict[str, Any] = {
            "decision_id": at.id,
            "pack": self.pack.name,
            "version": self.pack.version,
        }
        try:
            would = self.decide(guard, proposal, snapshot, at)
            body["decision"] = would.model_dump(mode="json", exclude={"lineage_hash"})
        except DiscretionError as exc:
            body["error"] = f"{type(exc).__name__}: {exc}"
        try:
            with guard.store.transaction() as tx:
                tx.record(SHADOW_RECORD, at.id, body, at=at.decided_at)
        except DiscretionError as exc:
            # The enforced decision is committed and stands; a lost shadow record only thins
            # the calibration sample.
            _log.warning("shadow decision for %s was not recorded: %s", at.id, exc)
