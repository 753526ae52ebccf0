"""Simulated annotators: rates as configured, answers independent of call order."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.exceptions import InvalidParameterError
from annotation.simulated import SimulatedAnnotators

LABELS = ("a", "b", "c", "d")


def test_measured_rates_match_the_settings():
    crowd = SimulatedAnnotators(n_annotators=4, error_rate=0.2, skip_rate=0.1, latency_s=(30.0, 120.0), seed=5)
    skips = wrong = 0
    wrong_labels = []
    times = []
    n = 20_000
    for i in range(n):
        label, t = crowd.answer(f"run-{i}", "a", LABELS, i % 4)
        times.append(t)
        if label is None:
            skips += 1
        elif label != "a":
            wrong += 1
            wrong_labels.append(label)
    assert skips / n == pytest.approx(0.1, abs=0.01)
    assert wrong / (n - skips) == pytest.approx(0.2, abs=0.012)
    # wrong labels spread evenly over the other classes
    shares = np.unique(wrong_labels, return_counts=True)[1] / len(wrong_labels)
    assert np.allclose(shares, 1 / 3, atol=0.03)
    assert 30.0 <= min(times) and max(times) <= 120.0
    assert np.mean(times) == pytest.approx(75.0, abs=1.0)


def test_answers_do_not_depend_on_call_order():
    crowd = SimulatedAnnotators(error_rate=0.3, skip_rate=0.2, seed=1)
    keys = [(f"id-{i}", i % 3) for i in range(50)]
    forward = {k: crowd.answer(k[0], "b", LABELS, k[1]) for k in keys}
    backward = {k: SimulatedAnnotators(error_rate=0.3, skip_rate=0.2, seed=1).answer(k[0], "b", LABELS, k[1])
                for k in reversed(keys)}
    assert forward == backward


def test_seed_and_annotator_change_the_answers():
    ids = [f"id-{i}" for i in range(200)]

    def answers(seed, who):
        crowd = SimulatedAnnotators(error_rate=0.5, skip_rate=0.2, seed=seed)
        return [crowd.answer(x, "a", LABELS, who) for x in ids]

    assert answers(0, 0) == answers(0, 0)
    assert answers(0, 0) != answers(1, 0)
    assert answers(0, 0) != answers(0, 1)


def test_perfect_annotators_answer_gold():
    crowd = SimulatedAnnotators(error_rate=0.0, skip_rate=0.0, latency_s=(5.0, 5.0))
    assert all(crowd.answer(f"x{i}", "c", LABELS, 0) == ("c", 5.0) for i in range(100))


def test_one_label_task_cannot_be_wrong():
    crowd = SimulatedAnnotators(error_rate=0.9, skip_rate=0.0)
    assert {crowd.answer(f"x{i}", "only", ("only",), 0)[0] for i in range(50)} == {"only"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"error_rate": 1.5}, r"The 'error_rate' parameter of SimulatedAnnotators must be a float in the range "
                              r"\[0.0, 1.0\). Got 1.5 instead."),
        ({"error_rate": 1.0}, "'error_rate' parameter"),
        ({"skip_rate": -0.1}, r"'skip_rate' parameter .* Got -0.1 instead"),
        ({"n_annotators": 0}, r"'n_annotators' parameter .* an int in the range \[1, inf\)"),
        ({"n_annotators": 2.0}, "'n_annotators' parameter"),
        ({"latency_s": (10.0, 5.0)}, "'latency_s' parameter"),
        ({"latency_s": 5.0}, "'latency_s' parameter"),
        ({"seed": -1}, "'seed' parameter"),
    ],
)
def test_invalid_parameters(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        SimulatedAnnotators(**kwargs)


def test_answer_checks_its_inputs():
    crowd = SimulatedAnnotators(n_annotators=2)
    with pytest.raises(ValueError, match="Gold label 'z' of item 'x' is not among"):
        crowd.answer("x", "z", LABELS, 0)
    with pytest.raises(ValueError, match="Annotator index 2 is out of range: there are 2 annotators"):
        crowd.answer("x", "a", LABELS, 2)


def test_repr_and_names():
    crowd = SimulatedAnnotators(n_annotators=2, seed=3)
    assert repr(crowd) == ("SimulatedAnnotators(n_annotators=2, error_rate=0.1, skip_rate=0.05, "
                           "latency_s=(30.0, 120.0), seed=3)")
    assert crowd.names == ["sim-0", "sim-1"]
