"""Policies on synthetic learning curves: who gets the next dollars, and when to stop."""

import math
import re
from dataclasses import replace

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


def test_adaptive_explores_labels_then_distillation():
    policy = Adaptive()
    first = policy.decide(state([RoundObservation(0, "baseline", 1000, 100, 0.6, dev_items=40)]))
    assert first.arm == "annotate" and "exploring" in first.reason
    second = policy.decide(state(plain_rounds([100, 150])))
    assert second.arm == "distill" and "exploring" in second.reason and second.n_items == 1000


def test_adaptive_pilots_a_distillation_on_part_of_the_pool_when_a_full_one_is_dear():
    # a full distillation costs $2 + $1 per 1000 items x 20,000 = $22, more than half of the $30 left
    d = Adaptive().decide(state(plain_rounds([100, 150]), n_unlabeled=20_000, available=30 * USD))
    assert d.arm == "distill" and "pilot" in d.reason
    assert d.amount_micro <= 15 * USD and 0 < d.n_items < 20_000


def test_adaptive_sends_money_to_labels_when_they_gain_more_per_dollar():
    rounds = plain_rounds([100, 150, 200]) + [distilled(3, 200, 0.002, curve(200))]
    d = Adaptive().decide(state(rounds, n_labels=200, available=500 * USD, granted=600 * USD))
    assert d.arm == "annotate" and d.reason.startswith("labels +")
    assert d.estimates["annotate"] > d.estimates["distill"]


def test_adaptive_sends_money_to_distillation_when_it_gains_more_per_dollar():
    rounds = plain_rounds([100, 150, 200]) + [distilled(3, 200, 0.05, curve(200), cost=6 * USD)]
    rounds.append(RoundObservation(4, "annotate", 25 * USD, 300, curve(300), curve(200) + 0.05, 0.05, 400))
    d = Adaptive().decide(state(rounds, n_labels=300))  # labels grew by half since the distillation
    assert d.arm == "distill"
    assert d.estimates["distill"] > d.estimates["annotate"]


def test_adaptive_distils_again_only_once_labels_have_grown_enough():
    rounds = plain_rounds([100, 150, 200]) + [distilled(3, 200, 0.05, curve(200), cost=6 * USD)]
    rounds.append(RoundObservation(4, "annotate", 25 * USD, 250, curve(250), curve(200) + 0.05, 0.05, 400))
    assert Adaptive().decide(state(rounds, n_labels=250)).arm == "annotate"  # only a quarter more labels
    assert Adaptive(redistill_growth=0.2).decide(state(rounds, n_labels=250)).arm == "distill"


def test_adaptive_runs_a_final_distillation_when_labels_stop_paying():
    # on 20000 dev items, labels confidently add nothing; the distillation after round 1 added 5 points
    flat = [RoundObservation(0, "baseline", 1000, 100, 0.80, dev_items=20000),
            RoundObservation(1, "annotate", 25 * USD, 150, 0.80, 0.80, 0.02, 20000),
            distilled(2, 150, 0.05, 0.80, dev_items=20000),
            RoundObservation(3, "annotate", 25 * USD, 200, 0.80, 0.85, 0.06, 20000)]
    d = Adaptive().decide(state(flat, n_labels=200))
    assert d.arm == "distill" and d.reason.startswith("final distillation")


def test_adaptive_keeps_money_for_a_final_distillation():
    rounds = plain_rounds([100, 150, 200]) + [distilled(3, 200, 0.01, curve(200))]
    # $30 left; a distillation over 1000 items costs $3: labels may use only $27 of it.
    d = Adaptive().decide(state(rounds, n_labels=200, available=30 * USD))
    assert d.arm == "annotate" and d.amount_micro <= 27 * USD


def test_the_money_kept_for_a_distillation_still_pays_for_it_after_the_labels():
    # A dear distillation, untried and too dear to pilot on half the money, is kept for after the labels.
    # Its teacher learns from every label bought before it, and a minimum of 100 training steps makes its
    # cost jump up and down with how the labels fill an epoch's last batch (as the FLOP estimate does).
    # The run below follows the policy's decisions until it stops: it must reach that distillation, not buy
    # batches that shrink to keep a reserve sized for the labels it had, then find it unaffordable.
    label, batch = 364_000, 25

    def fixed(n):  # the teacher's and the student's gold epochs, at least 100 steps of 16
        n_train = n - round(0.3 * n)
        epochs = max(2, math.ceil(100 / math.ceil(n_train / 16)))
        return n_train * epochs * 25_000

    rounds = [RoundObservation(0, "baseline", 1000, 60, 0.30, dev_items=20)]
    n, available, arms = 60, 50 * USD, []
    policy = Adaptive()
    for rnd in range(1, 30):
        s = state(rounds, available=available, granted=50 * USD, label=label, retrain=50,
                  distill_fixed=fixed(n), distill_fixed_after=[fixed(n + b) for b in range(1, batch + 1)],
                  per_1000=USD // 10, n_unlabeled=200, n_labels=n, batch=batch, min_batch=6)
        d = policy.decide(s)
        if d.arm == "stop":
            break
        assert d.amount_micro <= available
        if d.arm == "distill":
            assert d.amount_micro == s.distill_cost(d.n_items)  # priced at the labels it really learns from
        arms.append(d.arm)
        available -= d.amount_micro
        if d.arm == "annotate" and "distill" not in arms:  # what is left still pays for it after these labels
            assert available >= s.distill_cost(s.n_unlabeled, after=d.n_items)
        n += d.n_items if d.arm == "annotate" else 0
        dev = rounds[-1].dev_score + 0.01
        rounds.append(RoundObservation(rnd, d.arm, d.amount_micro, n, dev, rounds[-1].dev_score, 0.15, 30))
    assert "distill" in arms and arms[0] == "annotate"
    assert available >= 0


def _flat(dev_items):
    """Labels add nothing and a distillation bought nothing, measured on ``dev_items`` dev items."""
    return [RoundObservation(0, "baseline", 1000, 100, 0.80, dev_items=dev_items),
            RoundObservation(1, "annotate", 25 * USD, 150, 0.80, 0.80, 0.02, dev_items),
            RoundObservation(2, "annotate", 25 * USD, 200, 0.80, 0.80, 0.02, dev_items),
            distilled(3, 200, -0.01, 0.80, dev_items=dev_items, disagree=0.02)]


def test_adaptive_stops_when_it_is_confident_neither_arm_is_worth_its_price():
    d = Adaptive(min_points_per_100usd=0.5).decide(state(_flat(5000), n_labels=200))
    assert d.arm == "stop" and d.amount_micro == 0
    assert "neither arm is expected to add 0.5 points per $100 it costs with 80% confidence" in d.reason
    assert re.search(r"labels \+0\.\d+ points for \$25\.00 \(80% range \+0\.\d+ to \+0\.\d+\)", d.reason)  # with range
    assert "every label bought is already distilled" in d.reason


def test_adaptive_keeps_buying_while_a_small_dev_set_cannot_tell():
    # The same flat curve on 20 dev items: the range is wide, so a gain above the bar is still likely.
    d = Adaptive(min_points_per_100usd=0.5).decide(state(_flat(20), n_labels=200))
    assert d.arm == "annotate"
    # ...and a stricter confidence asks for more evidence before stopping, never less
    assert Adaptive(stop_confidence=0.95).decide(state(_flat(20), n_labels=200)).arm == "annotate"


def test_adaptive_distils_whenever_labels_arrive_when_compute_is_nearly_free():
    rounds = plain_rounds([100, 150, 200]) + [distilled(3, 200, 0.0, curve(200), cost=10)]
    rounds.append(RoundObservation(4, "annotate", 25 * USD, 220, curve(220), curve(200), 0.05, 400))
    cheap = dict(distill_fixed=10, per_1000=1, n_labels=220)
    d = Adaptive().decide(state(rounds, **cheap))
    assert d.arm == "distill" and "compute is nearly free here" in d.reason
    assert "e+" not in d.reason  # no meaningless 1e+06 points per $100
    after = Adaptive().decide(state([*rounds, distilled(5, 220, 0.0, curve(220), cost=10)], **cheap))
    assert after.arm == "annotate" and "compute is nearly free here" in after.reason


def _losing_distillations(gains, dev_items=60, disagree=0.2):
    """Nearly-free distillations after each batch that scored ``gains`` over the label-only student before
    them (Stanceosaurus, cheap: each a few points under it on a small dev set), and a batch since the last."""
    ns = [40, 60, 85, 110, 135]
    rounds = [RoundObservation(0, "baseline", 1000, ns[0], curve(ns[0]), dev_items=dev_items)]
    for i, (prev, n) in enumerate(zip(ns, ns[1:], strict=False)):
        rounds.append(RoundObservation(2 * i + 1, "annotate", 5 * USD, n, curve(n), curve(prev), 0.1, dev_items))
        if i < len(gains):
            rounds.append(distilled(2 * i + 2, n, gains[i], curve(n), cost=10, dev_items=dev_items,
                                    disagree=disagree))
    return rounds, ns[len(gains) + 1]


def test_nearly_free_distillation_stops_once_the_pooled_gain_is_unlikely_to_be_positive():
    cheap = dict(distill_fixed=10, per_1000=1, available=40 * USD)
    # one distillation 4 points under the label-only student on 60 items: its range still reaches above
    # zero, so the next batch is distilled too (one unlucky teacher proves little)
    rounds, n = _losing_distillations([-0.04])
    d = Adaptive().decide(state(rounds, n_labels=n, **cheap))
    assert d.arm == "distill" and "distillation runs whenever new labels arrive" in d.reason
    # three of them: the pooled gain's 80% range is below zero; the new labels train the student alone
    # and the run buys labels instead of distilling them
    rounds, n = _losing_distillations([-0.04, -0.03, -0.05])
    policy = Adaptive()
    gain = policy.distill_gain(state(rounds, n_labels=n, **cheap))
    assert gain.points == pytest.approx(-4.0) and gain.quantile(0.84) < 0
    d = policy.decide(state(rounds, n_labels=n, **cheap))
    assert d.arm == "annotate" and not d.refine
    assert "distillation no longer runs: 3 so far, pooled, distillation -4 points" in d.reason
    # the same three measured at +-0: distilling goes on (nothing says it loses)
    rounds, n = _losing_distillations([0.0, 0.0, 0.0])
    assert Adaptive().decide(state(rounds, n_labels=n, **cheap)).arm == "distill"


def test_the_last_nearly_free_distillation_runs_only_when_its_pooled_gain_is_expected_not_to_lose():
    cheap = dict(distill_fixed=10, per_1000=1, available=40 * USD)
    # two distillations 3 and 2 points under the label-only student on 60 noisy items: the 80% range still
    # reaches above zero, so while batches follow, the next labels are distilled too (they may teach)
    rounds, n = _losing_distillations([-0.03, -0.02])
    assert Adaptive.distill_gain(state(rounds, n_labels=n, **cheap)).quantile(0.84) > 0
    assert Adaptive().decide(state(rounds, n_labels=n, **cheap)).arm == "distill"
    # the pool is all labelled: no batch follows, nothing later learns from this distillation, and it is
    # expected to lose: the student trained on the labels alone ends the run
    last = Adaptive().decide(state(rounds, n_labels=n, n_available=0, **cheap))
    assert last.arm == "stop" and "the last distillation does not run: 2 so far, pooled" in last.reason
    assert "which ends the run" in last.reason
    # ...the same when the money left buys no batch after it
    poor = Adaptive().decide(state(rounds, n_labels=n, **{**cheap, "available": USD // 4}))
    assert poor.arm == "stop" and "the last distillation does not run" in poor.reason
    # expected to win (or to tie), the last distillation runs
    for gains in ([0.04, -0.03], [0.0, 0.0]):
        rounds, n = _losing_distillations(gains)
        assert Adaptive().decide(state(rounds, n_labels=n, n_available=0, **cheap)).arm == "distill"


def test_the_distillation_gain_pools_every_distillation_not_only_the_last():
    # two distillations: +6 points on 400 dev items, then -2 on 100 noisy ones. The last alone would say
    # distilling loses; pooled by inverse variance, the precise +6 weighs most
    rounds = plain_rounds([100, 150, 200]) + [distilled(3, 200, 0.06, curve(200), dev_items=400, disagree=0.05)]
    rounds.append(RoundObservation(4, "annotate", 25 * USD, 300, curve(300), curve(200), 0.05, 400))
    rounds.append(distilled(5, 300, -0.02, curve(300), dev_items=100, disagree=0.2))
    gain = Adaptive.distill_gain(state(rounds, n_labels=300))
    se1, se2 = 100 * math.sqrt(0.05 / 400), 100 * math.sqrt(0.2 / 100)
    w1, w2 = 1 / se1**2, 1 / se2**2
    assert gain.points == pytest.approx((6 * w1 - 2 * w2) / (w1 + w2))
    assert gain.se == pytest.approx(math.sqrt(1 / (w1 + w2))) and gain.se < se1
    assert 4 < gain.points < 6


def _pending_labels():
    """Labels bought since the last distillation, on a curve whose labels still pay."""
    rounds = plain_rounds([100, 150, 200]) + [distilled(3, 200, 0.0, curve(200), cost=10)]
    return [*rounds, RoundObservation(4, "annotate", 25 * USD, 220, curve(220), curve(200), 0.05, 400)]


def test_nearly_free_compute_also_buys_a_teacher_ensemble_as_large_as_stays_nearly_free():
    cheap = dict(distill_fixed=10, per_1000=1, n_labels=220, teacher=10, teacher_per_1000=1)
    d = Adaptive().decide(state(_pending_labels(), **cheap))
    assert d.arm == "distill" and d.teachers == 3 and "the average of 3 teacher fine-tunes" in d.reason
    assert d.n_items == 1000 and d.amount_micro == 10 + 2 * 10 + 3  # each teacher's fine-tune and soft labels
    # a third teacher would take a distillation of the whole pool past 2% of the $100 budget: two
    pricier = dict(cheap, teacher=USD * 3 // 2)
    assert Adaptive().decide(state(_pending_labels(), **pricier)).teachers == 2
    assert Adaptive(teacher_ensemble=1).decide(state(_pending_labels(), **cheap)).teachers == 1
    # never more teachers at the price of unlabeled items: $0.000020 pays one teacher over the whole pool
    short = Adaptive().decide(state(_pending_labels(), available=20, **cheap))
    assert (short.arm, short.n_items, short.teachers) == ("distill", 1000, 1)


def test_a_distillation_that_costs_real_money_has_one_teacher():
    rounds = plain_rounds([100, 150, 200]) + [distilled(3, 200, 6.0 / 100, curve(200))]
    rounds.append(RoundObservation(4, "annotate", 25 * USD, 300, curve(300), curve(200), 0.05, 400))
    d = Adaptive().decide(state(rounds, n_labels=300))
    assert d.arm == "distill" and d.teachers == 1 and "teacher fine-tunes" not in d.reason
    for name in ("distill", "split:0.5"):
        assert make_policy(name).decide(state(plain_rounds([100, 150]), n_labels=150, spent_by_arm={
            "annotate": 50 * USD}, available=50 * USD)).teachers == 1


def test_gains_are_shown_as_points_for_their_price_with_a_range():
    labels = Adaptive.label_gain(state(plain_rounds([100, 150, 200]), n_labels=200))
    text = labels.describe(0.84, 0.8)
    assert re.fullmatch(r"labels \+[\d.]+ points for \$[\d.]+ \(80% range \+[\d.]+ to \+[\d.]+\)", text), text
    assert labels.per_100usd(-0.84) < labels.per_100usd() < labels.per_100usd(0.84)


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
    # the policy hands each gain the headroom of the student it raises
    rounds = plain_rounds([100, 150, 200])
    gain = Adaptive.label_gain(state(rounds, n_labels=200))
    assert gain.headroom == pytest.approx(100 * (1 - rounds[-1].dev_score))


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


def test_adaptive_does_not_starve_labels_to_keep_money_for_a_distillation_that_promises_less():
    # A $15 distillation measured -1 point on a small, noisy dev set: its upper bound still clears the bar,
    # but labels at $0.10 promise more per dollar. The $15 left buys labels, not a reserve for it.
    rounds = plain_rounds([100, 150, 200]) + [distilled(3, 200, -0.01, curve(200), cost=15 * USD, dev_items=100,
                                                        disagree=0.2)]
    rounds.append(RoundObservation(4, "annotate", 5 * USD, 250, curve(250), curve(200) - 0.01, 0.05, 400))
    policy = Adaptive()
    d = policy.decide(state(rounds, n_labels=250, available=15 * USD, distill_fixed=14 * USD, batch=25,
                            label=USD // 10))
    assert 0.5 < policy.distill_gain(state(rounds, distill_fixed=14 * USD)).per_100usd(0.84)  # "worth" it...
    assert d.arm == "annotate" and d.n_items == 25  # ...but labels come first


def _trailing():
    """Labels that keep paying, a distillation that lost to the label-only student before it (-6 points on
    its dev items), and a label-only student since that scores 3.7 below the distilled one on its own."""
    rounds = plain_rounds([40, 60, 85], dev_items=300, disagree=0.08)
    rounds.append(RoundObservation(3, "distill", 19 * USD, 85, 0.80, 0.86, 0.1, 300))
    rounds.append(RoundObservation(4, "annotate", 5 * USD, 110, 0.7627, 0.80, 0.1, 300))
    return rounds


def test_labels_behind_a_distilled_student_are_valued_over_every_batch_the_money_buys():
    # MultiPIT, several $50, seed 3: no batch alone lifts the label-only student past the distilled one, so
    # each batch was worth +0 to the output and the run stopped with 47% of its money. Four batches do lift it.
    policy = Adaptive()
    s = state(_trailing(), n_labels=110, available=23 * USD, label=USD // 5, retrain=1000, batch=25,
              distill_fixed=19 * USD)
    assert policy.distill_gain(s).per_100usd(0.84) < 0  # distilling again is not worth it
    assert policy.label_gain(s, 5 * USD).points < policy.behind(s)  # one batch stays behind ...
    d = policy.decide(s)
    assert d.arm == "annotate" and d.n_items == 25  # ... the money left does not
    gain = policy.label_gain(s)
    assert gain.items == 114 and gain.per_100usd() > 0.5  # 4 batches of 25 and one of 14
    assert "over the 114 labels the money left buys" in gain.describe(0.84, 0.8)
    # labels at $1: the money left buys 22, which stay behind; the stop says so with the numbers
    stop = policy.decide(state(_trailing(), n_labels=110, available=23 * USD, label=USD, retrain=1000, batch=25,
                               distill_fixed=19 * USD))
    assert stop.arm == "stop" and "trails by 3.73 points" in stop.reason


def test_one_retrain_that_scored_lower_does_not_make_labels_look_harmful():
    # the held-out failure: 51.6 then 50.0 on a small dev set. A learning curve does not fall in
    # expectation, so the drop is noise: labels keep a positive estimate and the run goes on buying.
    rounds = [RoundObservation(0, "baseline", 1000, 100, 0.516, dev_items=60),
              RoundObservation(1, "annotate", 25 * USD, 150, 0.500, 0.516, 0.10, 60)]
    labels = Adaptive.label_gain(state(rounds, n_labels=150))
    assert labels.per_100usd() > 0 and labels.per_100usd(-0.84) >= 0
    d = Adaptive().decide(state(rounds + [distilled(2, 150, -0.02, 0.50, dev_items=60)], n_labels=150))
    assert d.arm == "annotate"


def _kinds(distilled_gain: float):
    """Labels 100 -> 150 -> 250 with a distillation after each batch; the label-only curve is steep,
    and the distilled one gains ``distilled_gain`` points between its two distillations."""
    return [RoundObservation(0, "baseline", 1000, 100, 0.60, dev_items=4000),
            RoundObservation(1, "annotate", 25 * USD, 150, 0.66, 0.60, 0.08, 4000, 0.60, 0.08, 100),
            RoundObservation(2, "distill", 2 * USD, 150, 0.80, 0.66, 0.15, 4000),
            RoundObservation(3, "annotate", 50 * USD, 250, 0.72, 0.80, 0.15, 4000, 0.66, 0.08, 150),
            RoundObservation(4, "distill", 2 * USD, 250, 0.80 + distilled_gain, 0.72, 0.15, 4000,
                             0.80, 0.01, 150)]


def test_labels_are_valued_on_the_distilled_students_curve_when_the_output_will_be_distilled():
    # the distilled student did not move with 100 more labels: labels are worth little to it, though
    # the label-only student gained 6 points; with a distilled output the run stops buying labels
    flat = state(_kinds(0.0), n_labels=250)
    on_distilled, label_only = Adaptive.label_gain(flat, distilled=True), Adaptive.label_gain(flat)
    assert on_distilled.points < 1 < label_only.points
    assert Adaptive().decide(flat).arm != "annotate"
    # the same run where the distilled student rose with the labels keeps buying them
    rising = state(_kinds(0.04), n_labels=250)
    assert Adaptive.label_gain(rising, distilled=True).points > 1
    assert Adaptive().decide(rising).arm == "annotate"


def test_a_stop_forced_by_the_distillation_kept_for_the_labels_says_so():
    # labels are worth buying, a distillation promises more per dollar, every label is distilled; $26
    # pays for a full batch ($25) or for it less the $3 distillation kept for it, not both
    rounds = plain_rounds([100, 150, 200]) + [distilled(3, 200, 0.05, curve(200))]
    d = Adaptive().decide(state(rounds, n_labels=200, available=26 * USD, min_batch=50))
    assert d.arm == "stop"
    assert d.reason.startswith("the money left pays for a batch of labels or for distilling them, not both")
    assert "expected to add under" not in d.reason  # not the stop rule: labels were worth their price


def test_labels_get_all_the_money_when_it_cannot_pay_for_any_distillation():
    # a distillation's fixed cost alone ($20) is more than the $10 left: none will ever run, so none is
    # kept back (before: the $20 "kept" blocked every batch and the run stopped with all $10 unspent)
    first = Adaptive().decide(state([RoundObservation(0, "baseline", 1000, 100, 0.6, dev_items=40)],
                                    available=10 * USD, granted=10 * USD, distill_fixed=20 * USD))
    assert first.arm == "annotate" and first.n_items == 19  # $0.50 a label, $10 less the retrain
    later = Adaptive().decide(state(plain_rounds([100, 150]), available=9 * USD, granted=35 * USD,
                                    distill_fixed=20 * USD))
    assert later.arm == "annotate" and later.n_items == 17


def test_labels_no_distillation_will_follow_refine_the_distilled_student():
    # the distilled student leads the label-only one by 8 points; $6 left pays for labels, not for
    # another distillation. Trained alone, a batch would lift the label-only student about a point and
    # the output not at all (the run used to stop with the $6, or buy them and end on a student 8 points
    # behind its best); the labels fine-tune the distilled student instead, worth what they do to it
    rounds = plain_rounds([100, 150, 200]) + [distilled(3, 200, 0.08, curve(200))]
    s = state(rounds, n_labels=200, available=6 * USD, distill_fixed=20 * USD)
    assert Adaptive.label_gain(s).per_100usd() == 0.0  # alone: all of it lost behind the distilled student
    d = Adaptive().decide(s)
    assert d.arm == "annotate" and d.refine and d.n_items == 11
    assert d.reason.endswith("no distillation can follow: the labels fine-tune the latest distilled student")
    assert "trails" not in d.reason
    # before any distillation there is nothing to refine: the labels train the student alone
    level = Adaptive().decide(state(plain_rounds([100, 150, 200]), n_labels=200, available=6 * USD,
                                    distill_fixed=20 * USD))
    assert level.arm == "annotate" and not level.refine
    # nor where the distilled student trails the label-only one: labels then go to the better student
    worse = plain_rounds([100, 150, 200]) + [distilled(3, 200, -0.08, curve(200))]
    d = Adaptive().decide(state(worse, n_labels=200, available=6 * USD, distill_fixed=20 * USD))
    assert d.arm == "annotate" and not d.refine


def test_labels_a_distillation_can_still_follow_are_not_refined():
    # $60 pays for a batch and a $20 distillation after it: the labels wait for that distillation
    rounds = plain_rounds([100, 150, 200]) + [distilled(3, 200, 0.08, curve(200))]
    rounds.append(RoundObservation(4, "annotate", 25 * USD, 250, curve(250), curve(200) + 0.08, 0.05, 400,
                                   curve(200), 0.05, 200))
    d = Adaptive().decide(state(rounds, n_labels=250, available=60 * USD, distill_fixed=20 * USD))
    assert d.arm in {"annotate", "distill"} and not d.refine


def test_a_refined_student_counts_as_distilled():
    # after a refinement, the label-only student still trails: the refined round is on the distilled
    # curve (its gain over the distillation it started from), never a label-only measurement
    rounds = plain_rounds([100, 150, 200]) + [distilled(3, 200, 0.08, curve(200))]
    refined = RoundObservation(4, "annotate", 5 * USD, 211, curve(200) + 0.09, curve(200) + 0.08, 0.02, 400,
                               curve(200) + 0.08, 0.02, 200, refined=True)
    s = state([*rounds, refined], n_labels=211, available=USD, distill_fixed=20 * USD)
    assert refined.distilled and s.distilled_lead == pytest.approx(9.0)
    assert [m.arm for m in Adaptive.curves(s)][-1] == "distill"
    assert all(m.n_after != 211 for m in Adaptive.measurements(s))  # compared with a distilled student
    assert Adaptive.behind(s) == pytest.approx(9.0)  # the label-only student (200) against the refined one


def test_money_kept_for_the_final_distillation_is_not_spent_on_labels_that_would_trail_it():
    # the distilled student leads the label-only one by about 10 points; labels are cheap ($0.02) and the
    # distillation dear ($21): $21.50 pays for a full batch ($1) only by giving up the distillation,
    # and labels no distillation follows would not lift the best student, so the distillation is kept
    rounds = plain_rounds([100, 150, 200]) + [
        distilled(3, 200, 0.12, curve(200), cost=20 * USD),
        RoundObservation(4, "annotate", USD, 250, curve(250), curve(200) + 0.12, 0.05, 400, curve(200), 0.05, 200)]
    d = Adaptive().decide(state(rounds, n_labels=250, label=USD // 50, distill_fixed=20 * USD,
                                available=21_500_000, granted=60 * USD))
    assert d.arm == "annotate" and d.n_items == 24  # what the $0.50 beyond the $21 distillation buys, less the retrain


def test_a_stop_for_want_of_money_says_so_when_only_a_distillation_of_nothing_new_is_affordable():
    # labels pay well, but $3 does not buy the smallest batch worth its retrain (10 labels at $0.50 and the
    # retrain); it would pay for a small distillation, but every label bought is already distilled
    rounds = plain_rounds([100, 150, 200]) + [distilled(3, 200, 0.05, curve(200))]
    d = Adaptive().decide(state(rounds, n_labels=200, available=3 * USD, min_batch=10))
    assert d.arm == "stop"
    assert d.reason.startswith("the money left pays for neither a batch nor a distillation")
    assert "every label bought is already distilled" in d.reason


def pilot_round(rnd, n, gain, pilot_gain, *, dev_items=40, disagree=0.2, pilot_disagree=0.25, cost=25 * USD):
    """An annotation round from ``n`` to 1.5 n labels that gained ``gain`` points over the student before it,
    and ``pilot_gain`` over its pilot on half the labels (same dev items)."""
    after = int(n * 1.5)
    return RoundObservation(rnd, "annotate", cost, after, 0.7, 0.7 - gain / 100, disagree, dev_items,
                            0.7 - gain / 100, disagree, n, pilot_dev=0.7 - pilot_gain / 100,
                            pilot_disagree=pilot_disagree, pilot_labels=after // 2)


def test_a_pilot_on_half_the_labels_is_a_point_on_the_label_only_curve():
    s = state([RoundObservation(0, "baseline", 1000, 100, 0.6, dev_items=40), pilot_round(1, 100, 2.0, 6.0)],
              n_labels=150)
    points = [m for m in Adaptive.curves(s) if m.arm == "annotate"]
    assert [(m.n_before, m.n_after) for m in points] == [(100, 150), (75, 150)]
    assert points[1].gain == pytest.approx(6.0)
    # its span is ln 2, not ln 1.5: with it, the slope's range is narrower than from the batch alone
    without = state([RoundObservation(0, "baseline", 1000, 100, 0.6, dev_items=40),
                     replace(pilot_round(1, 100, 2.0, 6.0), pilot_dev=None)], n_labels=150)
    narrow, wide = Adaptive.label_gain(s), Adaptive.label_gain(without)
    assert narrow.se < wide.se


def test_a_flat_round_does_not_stop_a_run_whose_pilots_show_labels_still_pay():
    # the held-out failure: one batch measured no gain and the run stopped. The pilots on half the labels (same
    # dev items, a span of ln 2) show the curve still rising: the run buys labels.
    rounds = [RoundObservation(0, "baseline", 1000, 100, 0.52, dev_items=300, pilot_dev=0.45, pilot_disagree=0.1,
                               pilot_labels=50),
              pilot_round(1, 100, -1.5, 7.0, dev_items=300, disagree=0.08, pilot_disagree=0.1),
              distilled(2, 150, -3.0, 0.70, dev_items=300, disagree=0.08)]
    policy = Adaptive(min_points_per_100usd=5.0)
    stopped = policy.decide(state([replace(r, pilot_dev=None) for r in rounds], n_labels=150, available=40 * USD))
    assert stopped.arm == "stop" and "expected to add 5 points per $100" in stopped.reason
    d = policy.decide(state(rounds, n_labels=150, available=40 * USD))
    assert d.arm == "annotate" and d.pilot
    assert re.search(r"labels \+2\.\d+ points for \$25\.00", d.reason)


def test_only_adaptive_asks_for_pilots_and_never_on_a_refined_student():
    assert Adaptive.pilots and not AnnotateOnly.pilots and not FixedSplit(0.3).pilots
    assert not AnnotateOnly().decide(state()).pilot
    assert Adaptive().decide(state(plain_rounds([100]))).pilot  # exploring labels: a label-only student
    # labels no distillation can follow refine the distilled student that leads: it is not on the label-only curve
    s = state(plain_rounds([100, 150]) + [distilled(3, 150, 10.0, curve(150))], n_labels=150, available=2 * USD)
    d = Adaptive().decide(s)
    assert d.arm == "annotate" and d.refine and not d.pilot
