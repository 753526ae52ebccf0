"""Several answers per item: majority vote and agreement.

Answers are :class:`annotation.records.Annotation` records as connectors pull them. When an annotator
answered the same item more than once, their last answer counts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from annotation.exceptions import UnknownLabelError
from annotation.records import Annotation

__all__ = ["Resolved", "majority_vote", "agreement_rate"]


@dataclass(frozen=True)
class Resolved:
    """The label an item gets from its answers.

    Attributes
    ----------
    external_id : str
        The item.
    label : str or None
        The winning label, or None when every annotator skipped.
    votes : dict of str to int
        Answers per label (skips not counted).
    agreement : float
        Fraction of the non-skipped answers that agree with ``label`` (0.0 when all skipped).
    tie : bool
        True when two or more labels had the most votes and a tie-break chose ``label``.
    n_skipped : int
        Annotators who skipped the item.
    """

    external_id: str
    label: str | None
    votes: dict[str, int] = field(default_factory=dict)
    agreement: float = 0.0
    tie: bool = False
    n_skipped: int = 0

    @property
    def n_answers(self) -> int:
        """Number of annotators who answered (labels and skips)."""
        return sum(self.votes.values()) + self.n_skipped


def _by_item(annotations: Iterable[Annotation]) -> dict[str, dict[str, str | None]]:
    """external id -> annotator -> label (the last answer of each annotator), items in first-seen order."""
    items: dict[str, dict[str, str | None]] = {}
    for a in annotations:
        items.setdefault(a.external_id, {})[a.annotator] = a.label
    return items


def majority_vote(annotations: Iterable[Annotation], labels: Sequence[str]) -> list[Resolved]:
    """Resolve each item's answers to one label by majority vote.

    Ties are broken deterministically, by the order of ``labels``.

    Parameters
    ----------
    annotations : iterable of Annotation
        Answers of any number of items; skips have ``label=None``.
    labels : sequence of str
        The label set; its order breaks ties.

    Returns
    -------
    list of Resolved
        One per external id, in the order items first appear in ``annotations``.

    Raises
    ------
    UnknownLabelError
        If an answer's label is not in ``labels``.
    """
    labels = tuple(labels)
    rank = {label: i for i, label in enumerate(labels)}
    out = []
    for eid, answers in _by_item(annotations).items():
        for who, label in answers.items():
            if label is not None and label not in rank:
                raise UnknownLabelError(
                    f"Annotator {who!r} answered {label!r} for item {eid!r}, which is not among the labels "
                    f"{list(labels)}."
                )
        given = [label for label in answers.values() if label is not None]
        n_skipped = len(answers) - len(given)
        if not given:
            out.append(Resolved(eid, None, {}, 0.0, False, n_skipped))
            continue
        votes = Counter(given)
        top = max(votes.values())
        tied = [label for label in votes if votes[label] == top]
        winner = min(tied, key=rank.__getitem__)
        ordered = {label: votes[label] for label in sorted(votes, key=rank.__getitem__)}
        out.append(Resolved(eid, winner, ordered, top / len(given), len(tied) > 1, n_skipped))
    return out


def agreement_rate(annotations: Iterable[Annotation]) -> float:
    """Observed pairwise agreement over all items with at least two non-skipped answers.

    Each item contributes its pairs of annotators; the rate is the fraction of all pairs whose labels
    are equal. Returns ``nan`` when no item has two answers.
    """
    agree = pairs = 0
    for answers in _by_item(annotations).values():
        given = [label for label in answers.values() if label is not None]
        counts = Counter(given)
        n = len(given)
        pairs += n * (n - 1) // 2
        agree += sum(c * (c - 1) // 2 for c in counts.values())
    return agree / pairs if pairs else math.nan

