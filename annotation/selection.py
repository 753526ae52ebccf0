"""Which unlabeled items to buy labels for (after small-text's ``QueryStrategy``).

A strategy gets everything it needs on every call (candidate pool indices and, for uncertainty
strategies, the student's class probabilities for those candidates; for routing strategies the teacher's
probabilities or the candidates' texts) and returns pool indices. ``select`` passes these down to the
hooks that use them (``score`` and ``pick``) as arguments, so a strategy keeps only its hyperparameters
and ``last_scores``; the caller owns the pool's item states.
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
    "DisagreementSelection",
    "DiversitySelection",
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
    #: whether ``select`` uses the teacher's class probabilities (``teacher_proba``) when there are any
    uses_teacher: bool = False
    #: whether ``select`` uses the candidates' texts (``texts``)
    uses_texts: bool = False

    def __init__(self) -> None:
        self.last_scores: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def select(self, n: int, *, candidates: np.ndarray, proba: np.ndarray | None = None,
               rng_seed: int | None = None, teacher_proba: np.ndarray | None = None,
               texts: list | None = None) -> np.ndarray:
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
        teacher_proba : np.ndarray of shape (len(candidates), n_classes), optional
            The teacher's class probabilities, aligned like ``proba`` (rows of NaN where the teacher has
            not labelled a candidate). Used when ``uses_teacher``; otherwise ignored.
        texts : list, optional
            The candidates' texts, aligned with ``candidates``. Used when ``uses_texts``; otherwise ignored.

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
        scores = np.asarray(self.score(candidates, proba, rng, teacher_proba=teacher_proba), dtype=np.float64)
        self.last_scores = scores
        # Highest score first; a random permutation first makes ties fall in a seeded random order.
        perm = rng.permutation(len(candidates))
        order = perm[np.argsort(-scores[perm], kind="stable")]
        return candidates[self.pick(order, n, texts=texts)]

    def pick(self, order: np.ndarray, n: int, *, texts: list | None = None) -> np.ndarray:
        """Positions of the chosen candidates, given all positions best-scored first (the top ``n``).

        ``texts`` are the candidates' texts (aligned with the positions) when the caller passed them."""
        return order[: min(n, len(order))]

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
    def score(self, candidates: np.ndarray, proba: np.ndarray | None, rng: np.random.Generator, *,
              teacher_proba: np.ndarray | None = None) -> np.ndarray:
        """One score per candidate; the highest are chosen. ``teacher_proba`` is aligned with ``proba``
        when the caller passed it."""
        raise NotImplementedError("The 'score' method must be implemented.")


class RandomSelection(SelectionStrategy):
    """Uniformly random items: the baseline every other strategy must beat."""

    def score(self, candidates: np.ndarray, proba: np.ndarray | None, rng: np.random.Generator, *,
              teacher_proba: np.ndarray | None = None) -> np.ndarray:
        return rng.random(len(candidates))


class ScoreBasedSelection(SelectionStrategy):
    """Template for uncertainty strategies: subclasses turn class probabilities into scores."""

    needs_proba = True

    def score(self, candidates: np.ndarray, proba: np.ndarray | None, rng: np.random.Generator, *,
              teacher_proba: np.ndarray | None = None) -> np.ndarray:
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


def _entropy(proba: np.ndarray) -> np.ndarray:
    """Entropy of each row, divided by its maximum (log of the number of classes): 0 sure, 1 clueless."""
    p = np.clip(proba, 1e-12, 1.0)
    return -(proba * np.log(p)).sum(axis=1) / np.log(max(proba.shape[1], 2))


class DisagreementSelection(ScoreBasedSelection):
    """Routing between people and the teacher: people label the items where the teacher is least sure or
    disagrees with the student; the teacher's soft labels cover the rest.

    The score is 1 when the two models' top classes differ, plus the teacher's normalised entropy.
    Candidates the teacher has not labelled (``teacher_proba`` rows of NaN), and every candidate before
    the first distillation, are scored by the student's entropy alone, which keeps them comparable.
    """

    uses_teacher = True

    def score(self, candidates: np.ndarray, proba: np.ndarray | None, rng: np.random.Generator, *,
              teacher_proba: np.ndarray | None = None) -> np.ndarray:
        student = super().score(candidates, proba, rng)
        if teacher_proba is None:
            return student
        proba = np.asarray(proba, dtype=np.float64)
        teacher = np.asarray(teacher_proba, dtype=np.float64)
        known = ~np.isnan(teacher).any(axis=1)
        out = student.copy()
        t = teacher[known]
        out[known] = (t.argmax(axis=1) != proba[known].argmax(axis=1)) + _entropy(t)
        return out

    def uncertainty(self, proba: np.ndarray) -> np.ndarray:
        """The student's normalised entropy (what ``score`` uses where the teacher has no row)."""
        return _entropy(proba)


class DiversitySelection(ScoreBasedSelection):
    """Uncertain items that are not near-duplicates of each other: from the most uncertain ``pool_factor x n``
    candidates (student entropy), a greedy farthest-first walk over their TF-IDF vectors (cosine
    distance), so one batch does not spend its money on ten phrasings of the same question.
    """

    uses_texts = True

    def __init__(self, pool_factor: int = 4) -> None:
        super().__init__()
        self.pool_factor = pool_factor

    def uncertainty(self, proba: np.ndarray) -> np.ndarray:
        return _entropy(proba)

    def pick(self, order: np.ndarray, n: int, *, texts: list | None = None) -> np.ndarray:
        top = order[: min(len(order), self.pool_factor * n)]
        if texts is None or len(top) <= n:
            return order[: min(n, len(order))]
        from sklearn.feature_extraction.text import TfidfVectorizer

        docs = [t if isinstance(t, str) else " ".join(t) for t in (texts[i] for i in top)]
        try:
            vectors = TfidfVectorizer().fit_transform(docs)
        except ValueError:  # no word in any text (e.g. only punctuation): nothing to spread over
            return order[:n]
        similarity = (vectors @ vectors.T).toarray()
        chosen = [0]  # the most uncertain first
        nearest = similarity[0].copy()
        for _ in range(1, n):
            nearest[chosen] = np.inf
            nxt = int(np.argmin(nearest))  # the candidate least similar to everything chosen so far
            chosen.append(nxt)
            nearest = np.maximum(nearest, similarity[nxt])
        return top[chosen]


STRATEGIES: dict[str, type[SelectionStrategy]] = {
    "random": RandomSelection,
    "entropy": EntropySelection,
    "margin": MarginSelection,
    "disagreement": DisagreementSelection,
    "diversity": DiversitySelection,
}


def make_strategy(name: str) -> SelectionStrategy:
    """The strategy called ``name``: ``'random'``, ``'entropy'``, ``'margin'``, ``'disagreement'`` or
    ``'diversity'``.

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
