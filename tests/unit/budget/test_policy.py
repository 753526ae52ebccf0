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
    fit_learning_curve,
    make_policy,
)

USD = 1_000_000


def state(rounds=(), *, available=100 * USD, granted=100 * USD, spent_by_arm=None, label=USD // 2, retrain=1000,
          distill_fixed=2 * USD, per_1000=USD, n_labels=100, n_available=1000, n_unlabeled=1000, batch=50):
    return PolicyState(granted_micro=granted, available_micro=available, spent_by_arm=spent_by_arm or {},
                       rounds=tuple(rounds), label_cost_micro=label, retrain_cost_micro=retrain,
                       distill_fixed_cost_micro=distill_fixed, distill_cost_per_1000_micro=per_1000,
                       n_labels=n_labels, n_available=n_available, n_unlabeled=n_unlabeled, batch_size=batch)


def curve(n, b=2.0, c=0.5):
    """Synthetic learning curve: score = 1 - b * n^-c."""
    return 1 - b * n ** (-c)


def plain_rounds(ns, b=2.0, c=0.5, cost=25 * USD):
    rounds = [RoundObservation(0, "baseline", 1000, ns[0], curve(ns[0], b, c))]
    rounds += [RoundObservation(i, "annotate", cost, n, curve(n, b, c)) for i, n in enumerate(ns[1:], start=1)]
    return rounds


def test_learning_curve_fit_recovers_a_power_law():
    b, c = fit_learning_curve([50, 100, 200, 400], [curve(n) for n in (50, 100, 200, 400)])
    assert b == pytest.approx(2.0, rel=1e-6) and c == pytest.approx(0.5, rel=1e-6)
    assert fit_learning_curve([100, 100], [0.5, 0.6]) is None


def test_annotate_only_buys_a_batch_and_stops_when_money_runs_out():
    d = AnnotateOnly().decide(state())
    assert (d.arm, d.n_items, d.amount_micro) == ("annotate", 50, 50 * USD // 2 + 1000)
    assert AnnotateOnly().decide(state(available=10 * USD)).n_items == 19  # $10 - retrain buys 19 at $0.50
    stop = AnnotateOnly().decide(state(available=USD // 4))
    assert stop.arm == "stop" and "does not pay for one label" in stop.reason


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
    distilled = state([RoundObservation(5, "distill", 3 * USD, 240, 0.8)], spent_by_arm={"annotate": 70 * USD},
                      available=27 * USD)
    assert policy.decide(distilled).arm == "stop"


def test_split_parameter_is_validated_with_sklearn_style_message():
    with pytest.raises(ValueError, match=r"The 'compute_share' parameter of FixedSplit must be a float in the range "
                                         r"\[0.0, 1.0\]. Got 1.5 instead."):
        FixedSplit(1.5)
    with pytest.raises(ValueError, match="Unknown policy 'greedy'"):
        make_policy("greedy")
    assert repr(make_policy("split:0.25")) == "FixedSplit(compute_share=0.25)"


def test_adaptive_tries_labels_then_distillation_before_trusting_estimates():
    policy = Adaptive()
    first = policy.decide(state([RoundObservation(0, "baseline", 1000, 100, 0.6)]))
    assert first.arm == "annotate" and "exploring" in first.reason
    second = policy.decide(state(plain_rounds([100, 150])))
    assert second.arm == "distill" and "exploring" in second.reason


def test_adaptive_sends_money_to_labels_when_they_gain_more_per_dollar():
    rounds = plain_rounds([100, 150, 200]) + [RoundObservation(3, "distill", 50 * USD, 200, curve(200) + 0.002)]
    d = Adaptive().decide(state(rounds, n_labels=200, available=500 * USD, granted=600 * USD))
    assert d.arm == "annotate"
    assert d.estimates["annotate"] > d.estimates["distill"]


def test_adaptive_sends_money_to_distillation_when_it_gains_more_per_dollar():
    rounds = plain_rounds([100, 150, 200]) + [RoundObservation(3, "distill", 2 * USD, 200, curve(200) + 0.05)]
    rounds.append(RoundObservation(4, "annotate", 25 * USD, 300, curve(300)))  # labels grew by half since then
    d = Adaptive().decide(state(rounds, n_labels=300))
    assert d.arm == "distill"
    assert d.estimates["distill"] > d.estimates["annotate"]


def test_adaptive_distils_again_only_once_labels_have_grown_enough():
    rounds = plain_rounds([100, 150, 200]) + [RoundObservation(3, "distill", 2 * USD, 200, curve(200) + 0.05)]
    rounds.append(RoundObservation(4, "annotate", 25 * USD, 250, curve(250)))  # only a quarter more labels
    assert Adaptive().decide(state(rounds, n_labels=250)).arm == "annotate"
    assert Adaptive(redistill_growth=0.2).decide(state(rounds, n_labels=250)).arm == "distill"


def test_adaptive_runs_a_final_distillation_when_labels_stop_paying():
    flat = [RoundObservation(0, "baseline", 1000, 100, 0.80), RoundObservation(1, "annotate", 25 * USD, 150, 0.80),
            RoundObservation(2, "distill", 2 * USD, 150, 0.85), RoundObservation(3, "annotate", 25 * USD, 200, 0.80)]
    d = Adaptive().decide(state(flat, n_labels=200))
    assert d.arm == "distill" and d.reason.startswith("final distillation")


def test_adaptive_keeps_money_for_a_final_distillation():
    rounds = plain_rounds([100, 150, 200]) + [RoundObservation(3, "distill", 2 * USD, 200, curve(200) + 0.01)]
    # $30 left; a distillation over 1000 items costs $3: labels may use only $27 of it.
    d = Adaptive().decide(state(rounds, n_labels=200, available=30 * USD))
    assert d.arm == "annotate" and d.amount_micro <= 27 * USD


def test_adaptive_stops_with_money_unspent_when_no_arm_is_worth_its_price():
    # A flat curve (labels add nothing) and a distillation that bought nothing.
    rounds = [RoundObservation(0, "baseline", 1000, 100, 0.80), RoundObservation(1, "annotate", 25 * USD, 150, 0.80),
              RoundObservation(2, "annotate", 25 * USD, 200, 0.80), RoundObservation(3, "distill", 2 * USD, 200, 0.79)]
    d = Adaptive(min_points_per_100usd=0.5).decide(state(rounds, n_labels=200))
    assert d.arm == "stop" and d.amount_micro == 0
    assert "no arm is worth its price" in d.reason and "threshold 0.50" in d.reason


def test_adaptive_threshold_is_validated():
    with pytest.raises(ValueError, match="min_points_per_100usd' parameter of Adaptive must be a float >= 0"):
        Adaptive(min_points_per_100usd=-1)


@pytest.mark.parametrize("name", ["annotate", "distill", "split:0.5", "adaptive"])
def test_no_policy_ever_asks_for_more_than_is_available(name):
    policy = make_policy(name)
    for available in (0, 1, USD // 3, 3 * USD, 40 * USD):
        d = policy.decide(state(plain_rounds([100, 150]), available=available))
        assert isinstance(d, Decision) and d.amount_micro <= available
        assert d.arm in {"annotate", "distill", "stop"}
        assert not math.isnan(d.amount_micro)
