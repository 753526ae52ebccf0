"""Several answers per item: majority vote, agreement, and how often each annotator is right.

Answers are :class:`annotation.records.Annotation` records as connectors pull them. When an annotator
answered the same item more than once, their last answer counts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from annotation.exceptions import NotFittedError, UnknownLabelError
from annotation.records import Annotation

__all__ = ["Resolved", "majority_vote", "AnnotatorAccuracy", "agreement_rate"]


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


def majority_vote(
    annotations: Iterable[Annotation],
    labels: Sequence[str],
    *,
    annotator_accuracy: Mapping[str, float] | None = None,
) -> list[Resolved]:
    """Resolve each item's answers to one label by majority vote.

    Ties are broken deterministically: by the highest known accuracy among each tied label's voters
    (``annotator_accuracy``, e.g. :attr:`AnnotatorAccuracy.accuracy_`), then by the order of ``labels``.

    Parameters
    ----------
    annotations : iterable of Annotation
        Answers of any number of items; skips have ``label=None``.
    labels : sequence of str
        The label set; its order breaks the remaining ties.
    annotator_accuracy : mapping of str to float, optional
        Accuracy of each annotator, used to break ties.

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
    accuracy = annotator_accuracy or {}
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

        def strength(label: str, answers: dict[str, str | None] = answers) -> tuple[float, int]:
            best = max((accuracy.get(who, -math.inf) for who, x in answers.items() if x == label), default=-math.inf)
            return (-best, rank[label])

        winner = min(tied, key=strength)
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


class AnnotatorAccuracy:
    """How often each annotator gives the right label (sklearn-shaped).

    With a reference (gold labels, e.g. from seed items slipped into batches), an answer is right when
    it equals the reference. Without one, it is right when it equals the majority of the OTHER
    annotators' answers to the same item; items where the others are absent or tied are not scored.
    Skips are never scored.

    Attributes
    ----------
    accuracy_ : dict of str to float
        Accuracy of each annotator that had at least one scored answer.
    n_scored_ : dict of str to int
        Number of scored answers of each annotator.

    Examples
    --------
    >>> from annotation.records import Annotation
    >>> answers = [Annotation("x", who, "YES") for who in "abc"] + [Annotation("x", "d", "NO")]
    >>> AnnotatorAccuracy().fit(answers).accuracy_
    {'a': 1.0, 'b': 1.0, 'c': 1.0, 'd': 0.0}
    """

    def __repr__(self) -> str:
        return "AnnotatorAccuracy()"

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: learned attributes before fit.
        if name.endswith("_") and not name.startswith("__"):
            raise NotFittedError(
                "This AnnotatorAccuracy instance is not fitted yet. Call 'fit' with appropriate arguments "
                "before using this estimator."
            )
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def fit(self, annotations: Iterable[Annotation], reference: Mapping[str, str] | None = None) -> AnnotatorAccuracy:
        """Measure each annotator's accuracy.

        Parameters
        ----------
        annotations : iterable of Annotation
            Answers of any number of items and annotators.
        reference : mapping of str to str, optional
            The true label of some items, by external id. Answers to other items are not scored.

        Returns
        -------
        AnnotatorAccuracy
            ``self``, fitted.
        """
        right: Counter[str] = Counter()
        scored: Counter[str] = Counter()
        for eid, answers in _by_item(annotations).items():
            for who, label in answers.items():
                if label is None:
                    continue
                if reference is not None:
                    truth = reference.get(eid)
                else:
                    others = Counter(x for other, x in answers.items() if other != who and x is not None)
                    top = others.most_common(2)
                    truth = top[0][0] if top and (len(top) == 1 or top[0][1] > top[1][1]) else None
                if truth is None:
                    continue
                scored[who] += 1
                right[who] += int(label == truth)
        self.n_scored_ = dict(sorted(scored.items()))
        self.accuracy_ = {who: right[who] / n for who, n in self.n_scored_.items()}
        return self

    def accuracy_of(self, annotator: str, default: float | None = None) -> float | None:
        """The fitted accuracy of ``annotator``, or ``default`` when they had no scored answer."""
        return self.accuracy_.get(annotator, default)
