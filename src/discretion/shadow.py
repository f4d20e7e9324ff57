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
from typing import Any

from discretion.context import ChainedContext, ContextProvider, Snapshot, StaticContextProvider
from discretion.decision import Decision
from discretion.errors import DiscretionError
from discretion.pipeline import Normalised, Pipeline, Review
from discretion.policy import PolicyPack, ToolSpec, load_pack
from discretion.precedent import Precedents
from discretion.proposal import Proposal
from discretion.store import SqlStore
from discretion.types import Clock

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
        store: the enforced guard's store: shadow records join its ledger.
        context: the enforced guard's context provider, for fields only the candidate reads.
        clock: the enforced guard's clock (the candidate decides at each decision's own time).
    """

    def __init__(
        self,
        pack: PolicyPack | str | Path,
        *,
        store: SqlStore,
        context: ContextProvider,
        clock: Clock,
    ) -> None:
        self.pack = pack if isinstance(pack, PolicyPack) else load_pack(pack)
        self._store = store
        self._context = context
        self.pipeline = Pipeline(
            self.pack,
            store=store,
            context=context,
            review=Review(self.pack, store=store, judge=None),
            precedents=Precedents(store, self.pack, clock=clock),
            clock=clock,
            ids=lambda: "shadow",
        )
        """Decides under the candidate pack; nothing it decides is recorded as a decision."""

    def decide(
        self,
        proposal: Proposal,
        snapshot: Snapshot,
        at: Decision,
        *,
        mapping: ToolSpec | None = None,
    ) -> Decision:
        """What the candidate would decide for `proposal` on `snapshot`, at `at`'s time.

        `mapping`: how the enforced decision read a tool neither pack maps (an integration's
        `action=`); the candidate's own mapping of the tool wins.
        """
        would = self.pipeline.preview(
            proposal,
            mapping=mapping,
            now=at.decided_at,
            # The enforced decision's frozen facts first, so both decide on the same facts.
            context=ChainedContext([StaticContextProvider(snapshot.values), self._context]),
            frozen=snapshot.values,
        )
        return would.model_copy(update={"id": f"shadow_{at.id}"[:64]})

    def observe(self, item: Normalised, snapshot: Snapshot, at: Decision) -> None:
        """Decide in shadow and append a `shadow.decision` record about `at`."""
        body: dict[str, Any] = {
            "decision_id": at.id,
            "pack": self.pack.name,
            "version": self.pack.version,
        }
        try:
            would = self.decide(item.proposal, snapshot, at, mapping=item.mapping)
            body["decision"] = would.model_dump(mode="json", exclude={"lineage_hash"})
        except DiscretionError as exc:
            body["error"] = f"{type(exc).__name__}: {exc}"
        try:
            with self._store.transaction() as tx:
                tx.record(SHADOW_RECORD, at.id, body, at=at.decided_at)
        except DiscretionError as exc:
            # The enforced decision is committed and stands; a lost shadow record only thins
            # the calibration sample.
            _log.warning("shadow decision for %s was not recorded: %s", at.id, exc)
