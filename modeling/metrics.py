"""Scores for a classifier: accuracy, macro-F1, per-class F1 and the confusion matrix (via scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from annotation.records import METRICS

__all__ = ["Scores", "score", "METRICS"]


@dataclass(frozen=True)
class Scores:
    """Scores of predictions against gold labels; ``confusion[i][j]`` counts gold i predicted as j."""

    accuracy: float
    macro_f1: float
    per_class_f1: dict[str, float]
    confusion: list[list[int]]
    n: int

    def get(self, metric: str) -> float:
        """The score named ``metric`` ('accuracy' or 'macro_f1')."""
        if metric not in METRICS:
            raise ValueError(f"Unknown metric {metric!r}; choose one of {list(METRICS)}.")
        return getattr(self, metric)


def score(gold: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> Scores:
    """Score label ids ``predicted`` against ``gold`` (both relative to ``labels``).

    Macro-F1 averages over every declared label, so a class the model never predicts counts as 0.
    """
    gold = np.asarray(gold)
    predicted = np.asarray(predicted)
    if gold.shape != predicted.shape or gold.ndim != 1 or len(gold) == 0:
        raise ValueError(f"gold and predicted must be non-empty 1-d arrays of one length; got {gold.shape} and "
                         f"{predicted.shape}.")
    ids = list(range(len(labels)))
    f1 = f1_score(gold, predicted, labels=ids, average=None, zero_division=0)
    return Scores(
        accuracy=float(accuracy_score(gold, predicted)),
        macro_f1=float(np.mean(f1)),
        per_class_f1={label: float(v) for label, v in zip(labels, f1, strict=True)},
        confusion=confusion_matrix(gold, predicted, labels=ids).tolist(),
        n=len(gold),
    )
