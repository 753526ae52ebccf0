"""The adaptive policy: the action that maximises the expected score of the run's output at the end of the budget."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from budget.decision import Decision
from budget.policy.base import Policy
from budget.policy.curves import CurvePrior, dev_paired_se, fit, typical_se
from budget.policy.estimates import Gain, z_value
from budget.policy.plans import (
    DRAWS,
    Candidates,
    Plan,
    best_plan,
    distill_cost_at,
    outcomes,
    pilot_value,
    plans,
    stop_value,
)
from budget.policy.state import PolicyState

__all__ = ['Adaptive']

_QUADRATURE_ERROR = 0.05  # points: a pilot's value, averaged over eight outcomes, is this close at best


class Adaptive(Policy):
    """Spend on the action that maximises the expected score of the run's output when the money is spent.

    The run's measurements are fitted to one model of both learning curves (:mod:`budget.policy.curves`:
    the label-only and the distilled student's score in ln(labels), the distillation's margin a function of
    labels, with uncertainty). Every plan the money left pays for (:mod:`budget.policy.plans`: ``k`` more
    batches, then a distillation or not) is valued by the expected score of the student the run will ship after
    it (:mod:`budget.shipped`: the latest on the last dev set unless an earlier one beats it beyond the dev
    set's noise, so a final distillation that loses by less than a small dev set can see ships).

    The best plan is the one of highest net value: its expected output less the points its money would have to
    buy at ``min_points_per_100usd`` (so a batch that adds less than that per dollar is not worth its price,
    while the one before it may be). Then

    1. a distillation runs now when distilling now and then following the best plan (a pilot: it measures the
       margin, which may change the plan) is worth more, net of its price, than the best plan without it (by
       over 0.05 points: the error of averaging over eight outcomes), or when the best plan is to distil now
       and buy nothing more;
    2. else a batch is bought when the best plan starts with one (the money for its final distillation kept);
    3. else the run stops: no plan is expected to add ``min_points_per_100usd`` points per $100 it costs.

    Exploration is paid for only by its value of information: where a distillation costs several batches, a
    pilot runs when the margin is uncertain enough that knowing it may move money between the arms; where
    compute is nearly free (a distillation under ``nearly_free_share`` of the budget), when the dev set is too
    small to undo a bad final distillation, so that knowing the margin decides whether to run it. Where
    compute is nearly free, a distillation averages up to ``teacher_ensemble`` teachers (a teacher fine-tuned
    on a few dozen labels varies from seed to seed).

    A label-only round also trains a student on half its labels (a subsample pilot: a second point on the
    label-only curve) when the slope it measures could change the plan (:func:`slope_matters`).

    Parameters
    ----------
    min_points_per_100usd : float
        Dev points (0-100) per $100 below which a plan is not worth its price.
    stop_confidence : float
        The confidence of the ranges the reasons show (0.8: 80% ranges).
    nearly_free_share : float
        Compute is nearly free when one distillation costs less than this share of the budget.
    teacher_ensemble : int
        While compute is nearly free, a distillation averages up to this many teachers (1: one teacher).
    prior : CurvePrior
        The belief about both curves before the run measures anything.
    """

    pilots = True  # label-only rounds train a student on half their labels too: a second point on that curve

    def __init__(self, *, min_points_per_100usd: float = 0.5, stop_confidence: float = 0.8,
                 nearly_free_share: float = 0.02, teacher_ensemble: int = 1, prior: CurvePrior | None = None) -> None:
        for name, value, ok in (("min_points_per_100usd", min_points_per_100usd, min_points_per_100usd >= 0),
                                ("stop_confidence", stop_confidence, 0.5 <= stop_confidence < 1),
                                ("nearly_free_share", nearly_free_share, 0 <= nearly_free_share < 1),
                                ("teacher_ensemble", teacher_ensemble,
                                 isinstance(teacher_ensemble, int) and teacher_ensemble >= 1)):
            if not isinstance(value, float | int) or isinstance(value, bool) or not ok:
                raise ValueError(f"The {name!r} parameter of Adaptive is out of range. Got {value!r} instead.")
        self.min_points_per_100usd = float(min_points_per_100usd)
        self.stop_confidence = float(stop_confidence)
        self.nearly_free_share = float(nearly_free_share)
        self.teacher_ensemble = int(teacher_ensemble)
        self.prior = prior or CurvePrior()

    def decide(self, state: PolicyState) -> Decision:
        curves = fit(state, self.prior)
        normals = np.random.default_rng(0).standard_normal((DRAWS, 8))  # 4 for the curves, 4 for dev noise
        have = _candidates(state)
        teachers = self.teachers(state)
        price = self.min_points_per_100usd / 1e8  # points a micro-dollar must buy
        now, _ = stop_value(curves, normals, have)
        options = plans(state, curves, normals, have, state.available_micro, teachers)
        best = best_plan(options, price)
        cost = distill_cost_at(state, state.n_labels, teachers)
        pilot = (pilot_value(state, curves, normals, have, state.available_micro, cost, typical_se(state, self.prior),
                             price) if have.distilled != state.n_labels and state.n_unlabeled
                 and cost <= state.available_micro else None)
        est = self._estimates(best, pilot, now, cost, price)
        if pilot is not None and best is not None and pilot - best.net(price) > _QUADRATURE_ERROR:
            why = (f"a pilot distillation: measuring the margin now is worth {pilot - best.net(price):+.2f} points to "
                   f"the run's output, net of prices, over the best plan without it ({best.describe()})")
            return self._distill(state, state.available_micro, why, est, teachers)
        if best is not None and best.batches == 0 and best.distil:
            return self._distill(state, state.available_micro, f"final: {self._say(best, now)}", est, teachers)
        if best is not None and best.batches > 0:
            keep = distill_cost_at(state, best.labels, teachers) if best.distil else 0
            money = state.labels_beside_distill(state.available_micro) if best.distil and best.batches == 1 \
                else state.available_micro - keep
            decision = self._annotate(state, money, self._say(best, now), est)
            if decision.arm == "annotate":
                refine = best.refine and not best.distil
                pilot = not refine and slope_matters(state, curves, normals, have, teachers, self.prior, price)
                return replace(decision, refine=refine, pilot=pilot)
        spending = best_plan([p for p in options if p.batches or p.distil])
        shown = self._say(spending, now) if spending else "the money left pays for neither a batch nor a distillation"
        return Decision("stop", reason=f"no plan is expected to add {self.min_points_per_100usd:g} points per $100 "
                        f"it costs ({shown})", estimates=est)

    def teachers(self, state: PolicyState) -> int:
        """How many teachers a distillation averages: up to ``teacher_ensemble``, as many as keep a distillation
        of the whole pool under ``nearly_free_share`` of the budget (one where the teacher is a prompted LLM, whose
        answers do not vary from seed to seed)."""
        if not state.ensembles:
            return 1
        free = self.nearly_free_share * state.granted_micro
        k = 1
        while k < self.teacher_ensemble and state.distill_cost(state.n_unlabeled, k + 1) <= free:
            k += 1
        return k

    def _say(self, plan: Plan, now: float) -> str:
        z = z_value(0.9)  # the plan's range is its 10% to 90% quantiles
        spread = max(plan.high - plan.low, 0.0) / (2 * z)
        gain = Gain("distill" if plan.distil and not plan.batches else "annotate", plan.value - now, spread,
                    plan.cost_micro, headroom=100.0 - now)
        return (f"{gain.describe(z, self.stop_confidence)} to the run's output; plan: {plan.describe()}, "
                f"labels alone {plan.alone:.1f}")

    @staticmethod
    def _estimates(best: Plan | None, pilot: float | None, now: float, cost: int,
                   price: float) -> dict[str, float | None]:
        """Points per $100 each arm's next spend is expected to add to the output (kept with the decision); None
        where it is not measured or costs under a cent (a rate per $100 of a free distillation means nothing)."""
        labels = (best.value - now) / (best.cost_micro / 1e8) if best and best.batches and best.cost_micro else None
        distill = (pilot + price * cost - now) / (cost / 1e8) if pilot is not None and cost >= 10_000 else None
        return {"annotate": labels, "distill": distill}


def slope_matters(state: PolicyState, curves, normals: np.ndarray, have: Candidates, teachers: int,
                  prior: CurvePrior, price: float = 0.0) -> bool:
    """True when a measurement of the label-only curve's slope (a subsample pilot's paired gain over ln 2) could
    change what the plan does: whether it ends with a distillation, and whether it buys labels at all. Where
    compute is nearly free the plan is labels and a final distillation (or not) whatever the slope, and no
    pilot trains."""
    se = typical_se(state, prior)
    if not np.isfinite(se) or state.n_unlabeled == 0:
        return False
    seen = set()
    for after in outcomes(curves, (0.0, 1.0, 0.0, 0.0), se / np.log(2), (-1.5, -0.5, 0.5, 1.5), "slope"):
        best = best_plan(plans(state, after, normals, have, state.available_micro, teachers), price)
        seen.add(None if best is None else (best.distil, best.batches > 0))
    return len(seen) > 1


def _candidates(state: PolicyState) -> Candidates:
    """The run's latest label-only and distilled students, and whether both compete on the current dev set."""
    scored = [r for r in state.rounds if r.dev_score is not None]
    plain = [r for r in scored if not r.distilled]
    distilled = [r for r in scored if r.distilled]
    dev = max((r.dev_items for r in scored), default=0)
    se = dev_paired_se(scored)
    return Candidates(plain[-1].n_labels if plain else 0, distilled[-1].n_labels if distilled else 0,
                      both_current=bool(plain and distilled) and plain[-1].dev_items == distilled[-1].dev_items == dev,
                      latest_distilled=bool(scored) and scored[-1].distilled, dev_se=10.0 if se is None else se)
