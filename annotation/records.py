"""Plain records that travel between the controller, the ledger and the connectors.

They hold no behaviour and import nothing of ours, so every package may use them.
A ``Text`` is one string, or a pair of strings for pair tasks (paraphrase pairs, claim + tweet);
``METRICS`` names the dev scores a task may optimise (defined here once, for annotation and modeling).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["METRICS", "Text", "BatchItem", "Batch", "Receipt", "Annotation", "BatchStatus"]

Text = str | tuple[str, str]

#: metric names a task may pick as the one its decisions optimise (``[task] metric``)
METRICS = ("accuracy", "macro_f1")


@dataclass(frozen=True)
class BatchItem:
    """One pool item offered for annotation.

    Parameters
    ----------
    item_id : int
        Row index of the item in the task's pool.
    external_id : str
        Stable id on the platform: run id + hash of the item's content. Pushing the same
        external id twice must never create a second task.
    text : Text
        The text, or the (first, second) pair.
    suggestion : str or None
        The student's predicted label, shown as a pre-annotation when the platform supports it.
    suggestion_score : float or None
        The student's probability for ``suggestion``.
    """

    item_id: int
    external_id: str
    text: Text
    suggestion: str | None = None
    suggestion_score: float | None = None


@dataclass(frozen=True)
class Batch:
    """Items chosen for annotation in one round, as a connector receives them.

    ``overlap`` is the number of annotators wanted per item (the k that prices multiply by).
    ``approved`` must be True before a connector pushes it.
    """

    batch_id: str
    task: str
    labels: tuple[str, ...]
    items: tuple[BatchItem, ...]
    text_fields: tuple[str, ...] = ("text",)
    overlap: int = 1
    approved: bool = False
    guidelines: str = ""


@dataclass(frozen=True)
class Receipt:
    """What a push returns: enough to find the batch on the platform again.

    ``project_ref`` is the platform's project or dataset id; ``task_refs`` maps each external id to
    the platform's own task or record id.
    """

    batch_id: str
    platform: str
    project_ref: str
    external_ids: tuple[str, ...]
    task_refs: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Annotation:
    """One annotator's finished answer for one item.

    ``label`` is None when the annotator skipped (cancelled, discarded) the item.
    ``lead_time_s`` is the time the annotator spent, when the platform records it.
    """

    external_id: str
    annotator: str
    label: str | None
    lead_time_s: float | None = None

    @property
    def skipped(self) -> bool:
        """True when the annotator skipped the item instead of labelling it."""
        return self.label is None


@dataclass(frozen=True)
class BatchStatus:
    """Counts of a pushed batch's items: ``done`` have all wanted answers, ``skipped`` were skipped
    by everyone asked, ``waiting`` have not finished yet."""

    pushed: int
    done: int
    skipped: int
    waiting: int

    @property
    def finished(self) -> bool:
        """True when no item is still waiting for an annotator."""
        return self.waiting == 0
