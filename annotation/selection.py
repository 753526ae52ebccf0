"""Which unlabeled items to buy labels for (after small-text's ``QueryStrategy``).

A strategy gets everything it needs on every call (candidate pool indices and, for uncertainty
strategies, the student's class probabilities for those candidates) and returns pool indices. It keeps
only its hyperparameters and ``last_scores``; the caller owns the pool's item states.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from annotation.exceptions import PoolExhaustedError, SelectionError, UnknownStrategyError

__all__ = [
    "SelectionStrategy",
    "ScoreBasedSelection",
    "RandomSelection",
    "EntropySelection",
    "MarginSelection",
    "STRATEGIES",
    "make_strategy",
]


class SelectionStrategy(ABC):
    """Chooses ``n`` of the candidate items.

    Attributes
    ----------
    last_scores : np.ndarray or None
        Scores of the last call's candidates (aligned with ``candidates``; higher is picked first), or
        None before the first call.
    """

    #: whether ``select`` needs class probabilities
    needs_proba: bool = False

    def __init__(self) -> None:
        self.last_scores: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def select(self, n: int, *, candidates: np.ndarray, proba: np.ndarray | None = None,
               rng_seed: int | None = None) -> np.ndarray:
        """Choose up to ``n`` items.

        Parameters
        ----------
        n : int
            Number of items wanted (at least 1).
        candidates : np.ndarray of int
            Pool indices that may be chosen (the UNLABELED items).
        proba : np.ndarray of shape (len(candidates), n_classes), optional
            Class probabilities, row ``j`` for ``candidates[j]``. Required when ``needs_proba``.
        rng_seed : int, optional
            Seed for random choice and tie-breaking; the same seed gives the same picks.

        Returns
        -------
        np.ndarray of int
            Pool indices (a subset of ``candidates``), best first. When fewer than ``n`` candidates are
            left, all of them are returned: the last batch of a pool may be short.

        Raises
        ------
        PoolExhaustedError
            If there are no candidates at all.
        SelectionError
            If ``n`` is not positive or ``proba`` is missing or misaligned.
        """
        candidates = np.asarray(candidates, dtype=np.int64).reshape(-1)
        self._validate(n, candidates, proba)
        rng = np.random.default_rng(rng_seed)
        scores = np.asarray(self.score(candidates, proba, rng), dtype=np.float64)
        self.last_scores = scores
        # Highest score first; a random permutation first makes ties fall in a seeded random order.
        perm = rng.permutation(len(candidates))
        order = perm[np.argsort(-scores[perm], kind="stable")]
        return candidates[order[: min(n, len(candidates))]]

    def _validate(self, n: int, candidates: np.ndarray, proba: np.ndarray | None) -> None:
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise SelectionError(f"{self!r} was asked for {n!r} items; ask for at least 1.")
        if len(candidates) == 0:
            raise PoolExhaustedError(f"Pool exhausted: 0 available / {n} requested.")
        if self.needs_proba:
            if proba is None:
                raise SelectionError(f"{self!r} needs class probabilities for the candidates; pass proba=.")
            proba = np.asarray(proba)
            if proba.ndim != 2 or proba.shape[0] != len(candidates):
                raise SelectionError(
                    f"proba must have one row per candidate: got shape {proba.shape} for {len(candidates)} candidates."
                )

    @abstractmethod
    def score(self, candidates: np.ndarray, proba: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """One score per candidate; the highest are chosen."""
        raise NotImplementedError("The 'score' method must be implemented.")


class RandomSelection(SelectionStrategy):
    """Uniformly random items: the baseline every other strategy must beat."""

    def score(self, candidates: np.ndarray, proba: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        return rng.random(len(candidates))


class ScoreBasedSelection(SelectionStrategy):
    """Template for uncertainty strategies: subclasses turn class probabilities into scores."""

    needs_proba = True

    def score(self, candidates: np.ndarray, proba: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        assert proba is not None  # checked in _validate
        return self.uncertainty(np.asarray(proba, dtype=np.float64))

    @abstractmethod
    def uncertainty(self, proba: np.ndarray) -> np.ndarray:
        """Uncertainty of each row of ``proba`` (higher = less sure)."""
        raise NotImplementedError("The 'uncertainty' method must be implemented.")


class EntropySelection(ScoreBasedSelection):
    """Items whose predicted distribution has the highest entropy (prediction entropy; Settles and Craven, 2008)."""

    def uncertainty(self, proba: np.ndarray) -> np.ndarray:
        p = np.clip(proba, 1e-12, 1.0)
        return -(proba * np.log(p)).sum(axis=1)


class MarginSelection(ScoreBasedSelection):
    """Items with the smallest gap between the two most likely classes (breaking ties; Luo et al., 2005)."""

    def uncertainty(self, proba: np.ndarray) -> np.ndarray:
        if proba.shape[1] < 2:
            return np.zeros(len(proba))
        top2 = np.sort(proba, axis=1)[:, -2:]
        return -(top2[:, 1] - top2[:, 0])


STRATEGIES: dict[str, type[SelectionStrategy]] = {
    "random": RandomSelection,
    "entropy": EntropySelection,
    "margin": MarginSelection,
}


def make_strategy(name: str) -> SelectionStrategy:
    """The strategy called ``name``: one of ``'random'``, ``'entropy'``, ``'margin'``.

    Raises
    ------
    UnknownStrategyError
        If the name is not known; the message lists the known names.
    """
    try:
        return STRATEGIES[name]()
    except (KeyError, TypeError):
        raise UnknownStrategyError(
            f"Unknown selection strategy {name!r}; choose one of {', '.join(repr(k) for k in STRATEGIES)}."
        ) from None
