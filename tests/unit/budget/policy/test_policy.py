"""Policies on synthetic learning curves: who gets the next dollars, and when to stop."""

import math

import pytest

from budget.policy import (
    Adaptive,
    AnnotateOnly,
    Decision,
    DistillOnly,
    FixedSplit,
    PolicyState,
    RoundObservation,
    make_policy,
)
from budget.policy.estimates import Gain

USD = 1_000_000


def state(rounds=(), *, available=100 * USD, granted=100 * USD, spent_by_arm=None, label=USD // 2, retrain=1000,
          distill_fixed=2 * USD, per_1000=USD, n_labels=100, n_available=1000, n_unlabeled=1000, batch=50,
          min_batch=1, teacher=USD, teacher_per_1000=USD // 2, distill_fixed_after=()):
    return PolicyState(granted_micro=granted, available_micro=available, spent_by_arm=spent_by_arm or {},
                       rounds=tuple(rounds), label_cost_micro=label, retrain_cost_micro=retrain,
                       distill_fixed_cost_micro=distill_fixed, distill_cost_per_1000_micro=per_1000,
                       n_labels=n_labels, n_available=n_available, n_unlabeled=n_unlabeled, batch_size=batch,
                       min_batch=min_batch, teacher_cost_micro=teacher, teacher_per_1000_micro=teacher_per_1000,
                       distill_fixed_after_micro=tuple(distill_fixed_after))


def curve(n, b=2.0, c=0.5):
    """Synthetic learning curve: score = 1 - b * n^-c."""
    return 1 - b * n ** (-c)


def plain_rounds(ns, b=2.0, c=0.5, cost=25 * USD, dev_items=400, disagree=0.05):
    """A baseline and annotation rounds on a power-law curve, each measured against the round before it
    on the same ``dev_items`` dev items."""
    rounds = [RoundObservation(0, "baseline", 1000, ns[0], curve(ns[0], b, c), dev_items=dev_items)]
    rounds += [RoundObservation(i, "annotate", cost, n, curve(n, b, c), curve(prev, b, c), disagree, dev_items)
               for i, (prev, n) in enumerate(zip(ns, ns[1:], strict=False), start=1)]
    return rounds


def distilled(rnd, n, gain, before, cost=2 * USD, dev_items=400, disagree=0.05):
    """A distillation at ``n`` labels that scored ``gain`` over the label-only student's ``before``."""
    return RoundObservation(rnd, "distill", cost, n, before + gain, before, disagree, dev_items)


def test_annotate_only_buys_a_batch_and_stops_when_money_runs_out():
    d = AnnotateOnly().decide(state())
    assert (d.arm, d.n_items, d.amount_micro) == ("annotate", 50, 50 * USD // 2 + 1000)
    assert AnnotateOnly().decide(state(available=10 * USD)).n_items == 19  # $10 - retrain buys 19 at $0.50
    stop = AnnotateOnly().decide(state(available=USD // 4))
    assert stop.arm == "stop" and "does not pay for a batch" in stop.reason


def test_no_batch_is_smaller_than_the_minimum_worth_its_retrain():
    # $2 buys 3 labels after the retrain; with a minimum batch of 10 that is not a round.
    assert AnnotateOnly().decide(state(available=2 * USD, min_batch=10)).arm == "stop"
    assert AnnotateOnly().decide(state(available=6 * USD, min_batch=10)).n_items == 11
    # the last few items of the pool are still bought
    assert AnnotateOnly().decide(state(available=6 * USD, min_batch=10, n_available=4)).n_items == 4


def test_distill_only_distils_once_over_what_the_money_buys():
    d = DistillOnly().decide(state(available=2 * USD + USD // 2))  # $0.50 past the fixed cost buys 500 items
    assert (d.arm, d.n_items) == ("distill", 500)
    assert d.amount_micro == 2 * USD + USD // 2
    done = [RoundObservation(1, "distill", 3 * USD, 100, 0.7)]
    assert DistillOnly().decide(state(done)).arm == "stop"


def test_split_spends_the_label_share_first_then_one_distillation():
    policy = FixedSplit(0.3)
    assert policy.decide(state()).arm == "annotate"
    after_labels = state(spent_by_arm={"annotate": 70 * USD}, available=30 * USD)
    d = policy.decide(after_labels)
    assert d.arm == "distill" and d.n_items == 1000
    distilled_once = state([RoundObservation(5, "distill", 3 * USD, 240, 0.8)], spent_by_arm={"annotate": 70 * USD},
                           available=27 * USD)
    assert policy.decide(distilled_once).arm == "stop"


def test_split_parameter_is_validated_with_sklearn_style_message():
    with pytest.raises(ValueError, match=r"The 'compute_share' parameter of FixedSplit must be a float in the range "
                                         r"\[0.0, 1.0\]. Got 1.5 instead."):
        FixedSplit(1.5)
    with pytest.raises(ValueError, match="Unknown policy 'greedy'"):
        make_policy("greedy")
    assert repr(make_policy("split:0.25")) == "FixedSplit(compute_share=0.25)"


def test_a_distillation_is_shown_as_points_for_its_price():
    # A paper-priced distillation on $10: -4.6 points for $0.31 would read as -1.48e+03 points per $100.
    cheap = Gain("distill", -4.6, 4.0, 310_000).describe(0.84, 0.8)
    assert cheap == "distillation -4.6 points for $0.31 (80% range -7.96 to -1.24)"
    dear = Gain("distill", 1.2, 1.0, 35 * USD).describe(0.84, 0.8)
    assert dear == "distillation +1.2 points for $35.00 (80% range +0.36 to +2.04)"


def test_no_gain_shown_passes_the_points_left_to_100():
    # A $3 batch measured at +4.5 points on a student at 57 read as "+151 points per $100 (80% range +82.7 to
    # +223)"; near the top of the scale the slope's upper bound would pass 100.
    cheap = Gain("annotate", 4.5, 2.0, 3 * USD, headroom=43.0).describe(0.84, 0.8)
    assert cheap == "labels +4.5 points for $3.00 (80% range +2.82 to +6.18)"
    top = Gain("annotate", 4.5, 2.0, 3 * USD, headroom=5.0).describe(0.84, 0.8)
    assert top == "labels +4.5 points for $3.00 (80% range +2.82 to +5)"
    # behind the best student by 1 point, with 2.5 left: at most 1.5 for the output
    behind = Gain("annotate", 4.5, 2.0, 3 * USD, behind=1.0, headroom=2.5)
    assert behind.shown(0.84) == 1.5


def test_adaptive_parameters_are_validated():
    with pytest.raises(ValueError, match="'min_points_per_100usd' parameter of Adaptive is out of range"):
        Adaptive(min_points_per_100usd=-1)
    with pytest.raises(ValueError, match="'stop_confidence' parameter of Adaptive is out of range"):
        Adaptive(stop_confidence=1.0)
    with pytest.raises(ValueError, match="'teacher_ensemble' parameter of Adaptive is out of range"):
        Adaptive(teacher_ensemble=0)


@pytest.mark.parametrize("name", ["annotate", "distill", "split:0.5", "adaptive"])
def test_no_policy_ever_asks_for_more_than_is_available(name):
    policy = make_policy(name)
    for available in (0, 1, USD // 3, 3 * USD, 40 * USD):
        d = policy.decide(state(plain_rounds([100, 150]), available=available))
        assert isinstance(d, Decision) and d.amount_micro <= available
        assert d.arm in {"annotate", "distill", "stop"}
        assert not math.isnan(d.amount_micro)

