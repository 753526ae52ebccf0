"""A batch's items as the SDK connectors use them: each item's texts by field, the batch's counts.

:func:`texts_by_field` gives the text field(s) a platform record or task carries for one item, and
:func:`tally` turns each pushed item's answer counts into the batch's :class:`BatchStatus`, with the
same rule on every platform. Both need no SDK, no httpx and no server.
"""

from __future__ import annotations

from collections.abc import Iterable

from annotation.records import Batch, BatchItem, BatchStatus
from connectors.exceptions import ConnectorUsageError

__all__ = ["tally", "texts_by_field"]


def texts_by_field(batch: Batch, item: BatchItem) -> dict[str, str]:
    """The item's text(s) keyed by the batch's text field names (two for a pair task).

    Raises
    ------
    ConnectorUsageError
        If the item has more or fewer texts than the batch has text fields.
    """
    texts = (item.text,) if isinstance(item.text, str) else tuple(item.text)
    fields = batch.text_fields
    if len(texts) != len(fields):
        raise ConnectorUsageError(f"Batch {batch.batch_id} item {item.external_id} has {len(texts)} text(s) for "
                                  f"{len(fields)} text field(s) {fields!r}.")
    return dict(zip(fields, texts, strict=True))


def tally(items: Iterable[tuple[int, int, int]]) -> BatchStatus:
    """A batch's counts from each pushed item's ``(labels, skips, overlap)``.

    An item is finished once its answers (labels and skips together) reach its ``overlap``: *done*
    when at least one answer is a label, *skipped* when all are skips; otherwise it is *waiting*.
    """
    pushed = done = skipped = 0
    for labels, skips, overlap in items:
        pushed += 1
        if labels + skips >= overlap:
            if labels:
                done += 1
            else:
                skipped += 1
    return BatchStatus(pushed=pushed, done=done, skipped=skipped, waiting=pushed - done - skipped)
