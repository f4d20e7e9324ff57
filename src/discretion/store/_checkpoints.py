"""Writing checkpoints while serving: every interval, and once more on the way out."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from discretion.errors import ConfigurationError, DiscretionError
from discretion.lineage import Checkpoint
from discretion.types import Clock, utc_now

if TYPE_CHECKING:
    from discretion.signing import Signer
    from discretion.store._sql import SqlStore

__all__ = ["CheckpointWriter"]

logger = logging.getLogger("discretion.ledger")


class CheckpointWriter:
    """Binds every partition's head in a checkpoint every `every`, from a daemon thread.

    Any number of replicas may run one: on PostgreSQL an advisory lock lets one write at a time,
    and a round with nothing new appended writes nothing. A failed round is logged and the next
    one tries again; the ledger itself never depends on a checkpoint being written.

    Example:
        ```python
        writer = CheckpointWriter(store, every=timedelta(minutes=1), signer=load_signer(path))
        writer.start()
        ...
        writer.stop()  # writes a last checkpoint
        ```
    """

    def __init__(
        self,
        store: SqlStore,
        *,
        every: timedelta,
        signer: Signer | None = None,
        clock: Clock | None = None,
    ) -> None:
        if every <= timedelta(0):
            raise ConfigurationError(f"checkpoints need a positive interval, not {every}")
        self._store = store
        self._every = every
        self._signer = signer
        self._clock = clock or utc_now
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def write(self) -> Checkpoint | None:
        """One round: the checkpoint written, or None (nothing new, another replica, a failure)."""
        try:
            made = self._store.checkpoint(at=self._clock(), signer=self._signer)
        except DiscretionError as exc:
            logger.warning("checkpoint failed, will try again: %s", exc)
            return None
        if made is not None:
            logger.info("checkpoint %d %s", made.seq, made.hash)
        return made

    def start(self) -> None:
        """Start writing in the background."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name="discretion-checkpoints", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self._every.total_seconds()):
            self.write()

    def stop(self) -> Checkpoint | None:
        """Stop the thread and bind the heads one last time."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        return self.write()
