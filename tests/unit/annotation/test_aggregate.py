"""Majority vote and agreement."""

from __future__ import annotations

import math

import pytest

from annotation.aggregate import Resolved, agreement_rate, majority_vote
from annotation.exceptions import UnknownLabelError
from annotation.records import Annotation

LABELS = ("neg", "neu", "pos")


def _a(eid, who, label):
    return Annotation(eid, who, label)


def test_majority_wins_with_agreement():
    [r] = majority_vote([_a("x", "a", "pos"), _a("x", "b", "pos"), _a("x", "c", "neg")], LABELS)
    assert r == Resolved("x", "pos", {"neg": 1, "pos": 2}, 2 / 3, False, 0)
    assert r.n_answers == 3


def test_skips_are_counted_not_voted():
    [r] = majority_vote([_a("x", "a", None), _a("x", "b", "neu")], LABELS)
    assert (r.label, r.n_skipped, r.agreement, r.votes) == ("neu", 1, 1.0, {"neu": 1})


def test_everyone_skipped_gives_no_label():
    [r] = majority_vote([_a("x", "a", None), _a("x", "b", None)], LABELS)
    assert r.label is None and r.n_skipped == 2 and r.agreement == 0.0 and not r.tie


def test_tie_is_broken_by_label_order_and_reported():
    [r] = majority_vote([_a("x", "a", "pos"), _a("x", "b", "neg")], LABELS)
    assert r.label == "neg" and r.tie and r.agreement == 0.5


def test_items_in_first_seen_order_and_last_answer_counts():
    answers = [_a("y", "a", "pos"), _a("x", "a", "neg"), _a("y", "a", "neu")]
    resolved = majority_vote(answers, LABELS)
    assert [r.external_id for r in resolved] == ["y", "x"]
    assert resolved[0].label == "neu" and resolved[0].votes == {"neu": 1}


def test_vote_with_a_label_outside_the_set():
    with pytest.raises(UnknownLabelError, match="Annotator 'a' answered 'maybe' for item 'x'"):
        majority_vote([_a("x", "a", "maybe")], LABELS)


def test_agreement_rate_is_pairwise():
    answers = [
        _a("x", "a", "pos"), _a("x", "b", "pos"), _a("x", "c", "neg"),  # 1 of 3 pairs agree
        _a("y", "a", "neu"), _a("y", "b", "neu"),  # 1 of 1
        _a("z", "a", "neu"), _a("z", "b", None),  # no pair
    ]
    assert agreement_rate(answers) == pytest.approx(2 / 4)
    assert math.isnan(agreement_rate([_a("x", "a", "pos")]))

