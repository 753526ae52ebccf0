"""The adaptive policy on synthetic curves: what it learns of both curves, and what it then does with the money."""

import math
import re
from dataclasses import replace

import pytest

from budget.policy import Adaptive, PolicyState, RoundObservation
from budget.policy.curves import CurvePrior, fit

USD = 1_000_000
DEV = 2000  # dev items: a paired gain is then known to half a point, so the curves are what the rounds say


def label_only(n, slope=8.0, level=70.0, n0=60):
    """A label-only student's dev score (0-1) at ``n`` labels: ``level + slope ln(n / n0)`` points."""
    return (level + slope * math.log(n / n0)) / 100


def rounds(ns, *, slope=8.0, margins=(), disagree=0.05, dev=DEV):
    """A baseline at ns[0] (with its pilot on half the labels), a label-only round at each later n, and after the
    rounds at the labels of ``margins`` ((n, points) pairs) a distillation scoring ``points`` over the label-only
    student there. Every gain is measured on the same ``dev`` items as what it is compared with."""
    score = {n: label_only(n, slope) for n in ns}
    out = [RoundObservation(0, "baseline", 1000, ns[0], score[ns[0]], dev_items=dev,
                            pilot_dev=label_only(ns[0] // 2, slope), pilot_disagree=disagree, pilot_labels=ns[0] // 2)]
    last_distilled = None
    for prev, n in zip(ns, ns[1:], strict=False):
        out.append(RoundObservation(len(out), "annotate", 25 * USD, n, score[n], score[prev], disagree, dev,
                                    arm_prev_dev=score[prev], arm_disagree=disagree, arm_prev_labels=prev))
        for at, points in margins:
            if at == n:
                d = score[n] + points / 100
                along = {} if last_distilled is None else {"arm_prev_dev": last_distilled[1], "arm_disagree": disagree,
                                                           "arm_prev_labels": last_distilled[0]}
                out.append(RoundObservation(len(out), "distill", 3 * USD, n, d, score[n], disagree, dev, **along))
                last_distilled = (n, d)
    return out


def state(obs, *, n_labels, available=100 * USD, granted=200 * USD, distill=3 * USD, n_available=1000,
          label=USD // 2, batch=50):
    """Labels at $0.50, batches of 50 ($25), a distillation of the 1000-item pool for ``distill``."""
    return PolicyState(granted_micro=granted, available_micro=available, spent_by_arm={}, rounds=tuple(obs),
                       label_cost_micro=label, retrain_cost_micro=1000, distill_fixed_cost_micro=distill // 3,
                       distill_cost_per_1000_micro=distill - distill // 3, n_labels=n_labels,
                       n_available=n_available, n_unlabeled=1000, batch_size=batch)


CHEAP = 1000  # a distillation for a tenth of a cent: compute nearly free
DEAR = 40 * USD  # a distillation for the price of 80 labels


def test_the_label_only_curve_is_fitted_from_paired_gains():
    curves = fit(state(rounds([60, 110, 160, 210, 260], slope=8.0), n_labels=260), CurvePrior())
    level, slope = curves.mean[:2]
    assert slope == pytest.approx(8.0, abs=1.5)
    assert level == pytest.approx(100 * label_only(260), abs=1.0)  # the latest student on 2000 items
    assert curves.predict(curves.label_row(520))[0] == pytest.approx(100 * label_only(520), abs=1.5)


@pytest.mark.parametrize("margins, sign", [(((110, 9.0), (260, 1.0)), -1), (((110, 0.0), (260, 8.0)), +1)])
def test_the_distillations_margin_is_a_function_of_labels_that_may_shrink_or_grow(margins, sign):
    ns = [60, 110, 160, 210, 260]
    curves = fit(state(rounds(ns, margins=margins), n_labels=260), CurvePrior())
    assert math.copysign(1, curves.mean[3]) == sign  # margin_slope
    m110, m260 = (curves.predict(curves.margin_row(n))[0] for n in (110, 260))
    assert m110 == pytest.approx(margins[0][1], abs=2.0) and m260 == pytest.approx(margins[1][1], abs=2.0)
    # the margin expected after more labels follows the measured trend, not a constant pooled over the run
    m520 = curves.predict(curves.margin_row(520))[0]
    assert (m520 - m260) * sign > 1.0


def test_nearly_free_compute_buys_labels_then_one_final_distillation_and_no_pilot():
    obs = rounds([60, 110])
    d = Adaptive().decide(state(obs, n_labels=110, distill=CHEAP))
    assert d.arm == "annotate" and "then a distillation" in d.reason
    assert not d.pilot  # what a pilot would measure of the label-only curve changes nothing here
    last = Adaptive().decide(state(obs, n_labels=110, distill=CHEAP, n_available=0))
    assert last.arm == "distill" and last.reason.startswith("final")


def test_a_distillation_measured_to_lose_is_not_bought_where_it_costs_money():
    obs = rounds([60, 110, 160], margins=((110, -8.0), (160, -8.0)))
    d = Adaptive().decide(state(obs, n_labels=160, distill=DEAR))
    assert d.arm == "annotate" and "distillation" not in d.reason.split("plan:")[1]
    done = Adaptive().decide(state(obs, n_labels=160, distill=DEAR, n_available=0))
    assert done.arm == "stop"  # the labels are all bought; the distillation is not worth its price


@pytest.mark.parametrize("margin, arm", [(8.0, "distill"), (-8.0, "stop")])
def test_once_the_labels_are_bought_a_distillation_runs_only_where_it_is_expected_to_win(margin, arm):
    # a distillation at 110 labels measured `margin` points over the label-only student; now at 160 the pool
    # has no items left to label: distil the 160 labels, or keep what the run has
    obs = rounds([60, 110, 160], slope=6.0, margins=((110, margin),))
    d = Adaptive().decide(state(obs, n_labels=160, distill=DEAR, available=50 * USD, n_available=0))
    assert d.arm == arm
    assert d.amount_micro <= 50 * USD


@pytest.mark.parametrize("margins, ends_distilled", [(((110, 9.0), (260, 1.0)), False),
                                                    (((110, 1.0), (260, 9.0)), True)])
def test_whether_the_plan_ends_distilled_follows_the_margins_trend(margins, ends_distilled):
    # Shrinking: by the labels the money buys, the margin is gone and the distillation's price buys more labels.
    # Growing: the labels first, then the distillation, whose margin they raise.
    obs = rounds([60, 110, 160, 210, 260], slope=6.0, margins=margins)
    d = Adaptive().decide(state(obs, n_labels=260, distill=DEAR, available=150 * USD))
    assert d.arm == "annotate"
    assert ("then a distillation" in d.reason) == ends_distilled, d.reason


def test_exploring_is_paid_for_only_by_what_it_can_change():
    obs = rounds([60, 110])  # nothing measured of distillation yet
    dear = Adaptive().decide(state(obs, n_labels=110, distill=20 * USD, available=200 * USD))
    assert dear.arm == "distill" and dear.reason.startswith("a pilot distillation")
    # the same uncertainty where compute is nearly free: the plan distils at the end whatever a pilot says
    cheap = Adaptive().decide(state(obs, n_labels=110, distill=CHEAP, available=200 * USD))
    assert cheap.arm == "annotate"


def test_the_run_stops_with_its_numbers_when_nothing_is_worth_its_price():
    obs = rounds([60, 110, 160], slope=0.0, margins=((160, 0.0),))
    d = Adaptive(min_points_per_100usd=2.0).decide(state(obs, n_labels=160, distill=DEAR, available=60 * USD))
    assert d.arm == "stop"
    assert d.reason.startswith("no plan is expected to add 2 points per $100") and "expected output" in d.reason


def test_a_weak_teacher_is_left_unused_even_when_measured_on_a_small_dev_set():
    # one distillation 12 points below the label-only student, on 60 dev items: uncertain, but far below
    weak = [*rounds([60, 110])]
    weak.append(RoundObservation(2, "distill", 3 * USD, 110, label_only(110) - 0.12, label_only(110), 0.2, 60))
    d = Adaptive().decide(state(weak, n_labels=110, distill=DEAR, available=100 * USD))
    assert d.arm == "annotate" and "distillation" not in d.reason.split("plan:")[1]


def test_the_policy_never_plans_past_the_money_left():
    obs = rounds([60, 110], margins=((110, 5.0),))
    for available in (0, USD // 10, 5 * USD, 26 * USD, 41 * USD, 300 * USD):
        for distill in (CHEAP, DEAR):
            d = Adaptive().decide(state(obs, n_labels=110, distill=distill, available=available))
            assert d.amount_micro <= available and d.arm in {"annotate", "distill", "stop"}


def test_a_large_budget_buys_the_batches_worth_their_price_and_not_the_rest():
    # 10 points per $100: a $25 batch must add 2.5 points. The first ones do on a curve of 8 points per unit of
    # ln(labels); spending the whole $1,000 would not, and must not stop the batches that are worth it.
    obs = rounds([60, 110])
    d = Adaptive(min_points_per_100usd=10.0).decide(state(obs, n_labels=110, distill=DEAR, available=1000 * USD,
                                                          granted=1000 * USD))
    assert d.arm == "annotate"
    plan = d.reason.split("plan: ")[1]
    assert int(plan.split(" more batch")[0]) < 1000 * USD // (25 * USD + 1000)


def test_a_pilot_runs_where_compute_is_free_but_the_dev_set_cannot_undo_a_bad_final_distillation():
    # The run ships its latest student unless an earlier one beats it beyond the dev set's noise. On 30 dev items
    # a final distillation 6 points worse than the label-only student beside it would still ship: knowing the
    # margin first is worth a distillation that costs nothing. On 2,000 items the dev set would catch it.
    small = Adaptive().decide(state(rounds([60, 110], dev=30, disagree=0.2), n_labels=110, distill=CHEAP))
    assert small.arm == "distill" and small.reason.startswith("a pilot distillation")
    large = Adaptive().decide(state(rounds([60, 110], dev=2000, disagree=0.2), n_labels=110, distill=CHEAP))
    assert large.arm == "annotate"


def test_a_measurements_outcomes_are_spread_by_what_is_known_and_the_measurements_own_error():
    # the outcomes a pilot's value of information averages over sit around the predicted margin, wider when the
    # margin is unknown or the measurement noisy, and each leaves the belief where that outcome would put it
    from budget.policy.plans import outcomes

    curves = fit(state(rounds([60, 110]), n_labels=110), CurvePrior())
    row = curves.margin_row(110)
    mean, _ = curves.predict(row)
    moved = []
    for se in (1.0, 6.0):
        low, high = (c.predict(row)[0] for c in outcomes(curves, row, se, (-1.0, 1.0), "pilot"))
        assert low < mean < high and (low + high) / 2 == pytest.approx(mean, abs=1e-6)
        moved.append(high - low)
    assert moved[1] < moved[0]  # a noisy pilot moves the belief less


def test_the_dev_sets_paired_error_shrinks_with_its_size_and_is_none_without_one():
    from budget.policy.curves import dev_paired_se

    assert dev_paired_se([]) is None
    small, large = (dev_paired_se(rounds([60, 110], dev=d)) for d in (30, 2000))
    assert small > 4 * large > 0


@pytest.mark.parametrize(("margin", "used"), [(-12.0, False), (8.0, True)])
def test_a_prompted_llm_is_valued_by_its_students_dev_gain_like_any_teacher(margin, used):
    # a prompted LLM teaches for its tokens ($3 a pass over the pool) and answers alike every time: one
    # distillation measured it on 60 dev items; a weak one is left unused, a strong one carries the output
    obs = [*rounds([60, 110])]
    obs.append(RoundObservation(2, "distill", 3 * USD, 110, label_only(110) + margin / 100, label_only(110), 0.2, 60))
    llm = replace(state(obs, n_labels=110, distill=3 * USD, available=100 * USD), ensembles=False)
    policy = Adaptive(teacher_ensemble=4, nearly_free_share=0.5)  # would average four teachers were it allowed
    assert policy.teachers(llm) == 1
    d = policy.decide(llm)
    plan = d.reason.split("plan:")[1]
    output, alone = (float(x) for x in re.search(r"expected output ([\d.]+), labels alone ([\d.]+)", plan).groups())
    assert d.arm == "annotate" and "distillation" not in plan
    # what the LLM taught is counted in the run's output only where it won
    assert (output > alone + 2) == used and output >= alone - 0.5
