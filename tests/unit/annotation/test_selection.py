"""Selection strategies: a shared contract (after small-text's SamplingStrategiesTests), then each one."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.exceptions import PoolExhaustedError, SelectionError, UnknownStrategyError
from annotation.selection import (
    EntropySelection,
    MarginSelection,
    RandomSelection,
    SelectionStrategy,
    make_strategy,
)


def _proba(n: int, k: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(k), size=n)


class SelectionStrategyTests:
    """Contract every strategy passes; subclasses give ``make``."""

    def make(self) -> SelectionStrategy:
        raise NotImplementedError

    def _select(self, n, candidates, seed=0):
        strategy = self.make()
        return strategy, strategy.select(n, candidates=candidates, proba=_proba(len(candidates)), rng_seed=seed)

    def test_select_returns_n_distinct_candidates(self):
        candidates = np.arange(100, 160)
        strategy, picked = self._select(10, candidates)
        assert len(picked) == 10 and len(set(picked.tolist())) == 10
        assert set(picked.tolist()) <= set(candidates.tolist())
        assert strategy.last_scores is not None and strategy.last_scores.shape == (60,)

    def test_select_is_deterministic_by_seed(self):
        candidates = np.arange(50)
        assert np.array_equal(self._select(5, candidates, seed=7)[1], self._select(5, candidates, seed=7)[1])

    def test_fewer_candidates_than_n_returns_them_all(self):
        candidates = np.array([3, 9, 4])
        assert sorted(self._select(10, candidates)[1].tolist()) == [3, 4, 9]

    def test_no_candidates_means_pool_exhausted(self):
        with pytest.raises(PoolExhaustedError, match="Pool exhausted: 0 available / 5 requested"):
            self.make().select(5, candidates=np.array([], dtype=np.int64), proba=np.empty((0, 3)))

    @pytest.mark.parametrize("n", [0, -1, 2.5, True])
    def test_n_must_be_positive_int(self, n):
        with pytest.raises(SelectionError, match="ask for at least 1"):
            self.make().select(n, candidates=np.arange(5), proba=_proba(5))

    def test_repr_shows_the_constructor_call(self):
        assert repr(self.make()) == f"{type(self.make()).__name__}()"

    def test_make_strategy_builds_it(self):
        name = {RandomSelection: "random", EntropySelection: "entropy", MarginSelection: "margin"}[type(self.make())]
        assert type(make_strategy(name)) is type(self.make())


class TestRandomSelection(SelectionStrategyTests):
    def make(self):
        return RandomSelection()

    def test_needs_no_probabilities(self):
        assert len(RandomSelection().select(3, candidates=np.arange(10), rng_seed=1)) == 3

    def test_different_seeds_pick_differently(self):
        a = RandomSelection().select(10, candidates=np.arange(1000), rng_seed=1)
        b = RandomSelection().select(10, candidates=np.arange(1000), rng_seed=2)
        assert not np.array_equal(a, b)


class UncertaintyTests(SelectionStrategyTests):
    def test_needs_probabilities(self):
        with pytest.raises(SelectionError, match="needs class probabilities"):
            self.make().select(2, candidates=np.arange(4))

    def test_probabilities_must_align_with_candidates(self):
        with pytest.raises(SelectionError, match=r"got shape \(3, 3\) for 4 candidates"):
            self.make().select(2, candidates=np.arange(4), proba=_proba(3))

    def test_most_uncertain_first(self):
        proba = np.array([[0.98, 0.01, 0.01], [0.34, 0.33, 0.33], [0.9, 0.05, 0.05], [0.5, 0.49, 0.01]])
        picked = self.make().select(2, candidates=np.array([10, 11, 12, 13]), proba=proba)
        assert set(picked.tolist()) == {11, 13}
        assert 10 not in self.make().select(3, candidates=np.array([10, 11, 12, 13]), proba=proba)


class TestEntropySelection(UncertaintyTests):
    def make(self):
        return EntropySelection()

    def test_scores_are_entropies(self):
        strategy = EntropySelection()
        strategy.select(1, candidates=np.array([0, 1]), proba=np.array([[0.5, 0.5], [1.0, 0.0]]))
        assert np.allclose(strategy.last_scores, [np.log(2), 0.0])


class TestMarginSelection(UncertaintyTests):
    def make(self):
        return MarginSelection()

    def test_smallest_margin_first(self):
        proba = np.array([[0.7, 0.2, 0.1], [0.45, 0.44, 0.11], [0.5, 0.1, 0.4]])
        picked = MarginSelection().select(3, candidates=np.array([0, 1, 2]), proba=proba)
        assert picked.tolist() == [1, 2, 0]


def test_ties_are_broken_by_seed_not_by_position():
    flat = np.full((100, 2), 0.5)
    a = EntropySelection().select(5, candidates=np.arange(100), proba=flat, rng_seed=1)
    b = EntropySelection().select(5, candidates=np.arange(100), proba=flat, rng_seed=2)
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, np.arange(5))


def test_unknown_strategy_names_the_known_ones():
    message = "Unknown selection strategy 'bald'; choose one of 'random', 'entropy', 'margin'"
    with pytest.raises(UnknownStrategyError, match=message):
        make_strategy("bald")
    with pytest.raises(ValueError):
        make_strategy("bald")


def test_disagreement_routes_to_people_the_items_teacher_and_student_disagree_on_or_the_teacher_doubts():
    candidates = np.array([10, 11, 12, 13])
    student = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.9, 0.1]])
    teacher = np.array([[0.95, 0.05], [0.2, 0.8], [0.97, 0.03], [np.nan, np.nan]])
    strategy = make_strategy("disagreement")
    chosen = strategy.select(2, candidates=candidates, proba=student, teacher_proba=teacher, rng_seed=0)
    # 11: the teacher says the other class; 13: the teacher never saw it, scored by the student's doubt
    assert list(chosen) == [11, 13]
    assert strategy.last_scores[1] > 1 > strategy.last_scores[0]
    # before any distillation it is the student's own uncertainty
    alone = make_strategy("disagreement").select(1, candidates=candidates, proba=student, rng_seed=0)
    assert list(alone) == [12]


def test_routing_data_is_passed_down_not_kept_on_the_strategy():
    candidates = np.array([10, 11, 12, 13])
    student = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.9, 0.1]])
    teacher = np.array([[0.95, 0.05], [0.2, 0.8], [0.97, 0.03], [np.nan, np.nan]])
    disagreement = make_strategy("disagreement")
    disagreement.select(2, candidates=candidates, proba=student, teacher_proba=teacher, rng_seed=0)
    assert set(vars(disagreement)) == {"last_scores"}
    # the same object, called again without a teacher, scores by the student alone
    assert list(disagreement.select(1, candidates=candidates, proba=student, rng_seed=0)) == [12]
    diversity = make_strategy("diversity")
    diversity.select(2, candidates=candidates, proba=student, texts=["a b", "c d", "e f", "g h"], rng_seed=0)
    assert set(vars(diversity)) == {"last_scores", "pool_factor"}


def test_diversity_does_not_fill_a_batch_with_near_duplicates():
    texts = ["refund my order now", "refund my order now please", "refund my order now!!",
             "the screen is cracked", "shipping to canada"]
    candidates = np.arange(len(texts))
    proba = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.6, 0.4], [0.65, 0.35]])
    chosen = make_strategy("diversity").select(3, candidates=candidates, proba=proba, texts=texts, rng_seed=0)
    refunds = sum(int(i) in {0, 1, 2} for i in chosen)
    assert len(chosen) == 3 and refunds == 1  # one refund question, then the two different ones
    plain = make_strategy("entropy").select(3, candidates=candidates, proba=proba, rng_seed=0)
    assert set(plain) == {0, 1, 2}  # uncertainty alone buys the same question three times
