"""The connector protocol: one way to push batches to people and pull back their answers.

A connector holds only its platform's URL and project configuration; everything else (the batch,
the receipt) is passed in on each call. ``push`` is idempotent on the items' external ids, so a
controller that crashed between a push and its ledger write may push again without creating a
second task. Retries live above the connectors, in :mod:`connectors.retry`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

from annotation.records import Annotation, Batch, BatchStatus, Receipt
from connectors.exceptions import UnapprovedBatchError

__all__ = ["Clock", "RealClock", "Connector"]


class Clock:
    """Time as the controller sees it while it waits for annotators."""

    def now(self) -> float:
        """Seconds since an arbitrary start."""
        raise NotImplementedError("The 'now' method must be implemented.")

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        raise NotImplementedError("The 'sleep' method must be implemented.")


class RealClock(Clock):
    """Wall-clock time; sleeping really sleeps."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class Connector(ABC):
    """Pushes approved batches to an annotation platform and pulls finished answers.

    Subclasses implement :meth:`push`, :meth:`pull` and :meth:`status`; :meth:`close` is optional.
    """

    #: short platform name recorded in receipts and the ledger
    platform: str = "base"

    def push(self, batch: Batch) -> Receipt:
        """Create one task per item of an approved batch; items already on the platform are skipped.

        Raises
        ------
        UnapprovedBatchError
            If ``batch.approved`` is False.
        """
        if not batch.approved:
            raise UnapprovedBatchError(f"Batch {batch.batch_id} is not approved; approve it before pushing.")
        return self._push(batch)

    @abstractmethod
    def _push(self, batch: Batch) -> Receipt:
        raise NotImplementedError("The '_push' method must be implemented.")

    @abstractmethod
    def pull(self, receipt: Receipt) -> list[Annotation]:
        """Every finished answer (labels and skips) for the receipt's items so far.

        Calling it again returns the same answers plus any new ones; the caller deduplicates on
        ``(external_id, annotator)``.
        """
        raise NotImplementedError("The 'pull' method must be implemented.")

    @abstractmethod
    def status(self, receipt: Receipt) -> BatchStatus:
        """Counts of pushed, done, skipped and waiting items for the receipt."""
        raise NotImplementedError("The 'status' method must be implemented.")

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op unless the platform holds resources
        """Release network resources. Safe to call twice."""

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
