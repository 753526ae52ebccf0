import numpy as np
import pytest

from modeling.metrics import score


def test_scores_count_every_declared_class_in_macro_f1():
    gold = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 0, 0])
    s = score(gold, pred, ["a", "b", "c"])
    assert s.accuracy == pytest.approx(0.6)
    assert s.per_class_f1["c"] == 0.0  # never predicted, still averaged in
    assert s.macro_f1 == pytest.approx(np.mean(list(s.per_class_f1.values())))
    assert s.confusion == [[2, 0, 0], [1, 1, 0], [1, 0, 0]]
    assert s.get("macro_f1") == s.macro_f1


def test_mismatched_or_unknown_inputs_are_refused():
    with pytest.raises(ValueError, match="one length"):
        score(np.array([0, 1]), np.array([0]), ["a", "b"])
    with pytest.raises(ValueError, match="Unknown metric 'f2'"):
        score(np.array([0]), np.array([0]), ["a", "b"]).get("f2")
