"""What the money left can still do, and what the run's output is expected to score after each way of doing it.

A plan is ``k`` more batches of labels, then a distillation or not, all within the money left. The run's
output is the student :mod:`budget.shipped` picks: of the students scored on the run's last dev set, the
latest, unless an earlier one beats it there beyond the dev set's noise (a paired test). So a plan's value
is the expected score of that student, over draws from the belief about both curves
(:class:`budget.policy.curves.Curves`) and of the dev set's noise: a final distillation that is worse than
the label-only student beside it by less than the test can see ships, and costs the output what it lost.
The dev set grows with every batch, so after a batch only the plan's own students compete (the label-only
one at its labels, then its distilled one); without one, the students the run has on its current dev set
compete too. Labels bought after a distillation may instead fine-tune the distilled student (``refine``);
they are expected to add to it what they add to a label-only student.

A distillation now, before the labels are done, is a pilot: it is worth what it adds to the output itself
plus what its measurement of the margin changes in the plans after it (the expected value of sample
information, over the outcomes the belief predicts for it). :func:`pilot_value` is that expectation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from budget.policy.curves import Curves, Measurement
from budget.policy.state import PolicyState
from budget.shipped import SHIP_Z

__all__ = ["Plan", "Candidates", "best_plan", "outcomes", "plans", "pilot_value", "stop_value", "DRAWS"]

DRAWS = 4000  # draws from the belief: the plans' values carry an error of about 1% of their spread
_OUTCOMES = 8  # equal-probability outcomes of a pilot's measurement


@dataclass(frozen=True)
class Candidates:
    """The students the run has: labels of its latest label-only student and of its latest distilled one (0:
    none); ``both_current``: both were scored on the run's current dev set (they compete for shipping);
    ``latest_distilled``: the distilled one is the later; ``dev_se``: the paired standard error (points) of a
    difference of two students on that dev set."""

    label_only: int
    distilled: int = 0
    both_current: bool = False
    latest_distilled: bool = False
    dev_se: float = 10.0


@dataclass(frozen=True)
class Plan:
    """``batches`` more batches (to ``labels`` labels), then a distillation when ``distil``, for ``cost_micro``
    (``refine``: the batches fine-tune the latest distilled student); ``value`` the expected score of the
    student the run ships after it (points), ``low``/``high`` the 10% and 90%
    quantiles of what it adds to the output of stopping now, ``alone`` the label-only student's expected
    score at the end."""

    batches: int
    labels: int
    distil: bool
    cost_micro: int
    value: float
    low: float
    high: float
    alone: float
    refine: bool = False

    def net(self, price: float) -> float:
        """The expected output less the points the plan's money must buy at ``price`` points per micro-dollar."""
        return self.value - price * self.cost_micro

    def describe(self) -> str:
        """'4 more batches (160 labels) then a distillation, expected output 81.2'."""
        what = (f"{self.batches} more batch{'es' if self.batches != 1 else ''} ({self.labels} labels)"
                if self.batches else "no more labels")
        if self.distil:
            what += " then a distillation" if self.batches else ", a distillation"
        return f"{what}, expected output {self.value:.1f}"


def _label_steps(state: PolicyState, money: int) -> list[tuple[int, int]]:
    """(labels added, cost) after 0, 1, 2, ... batches that ``money`` buys."""
    steps, n, cost = [(0, 0)], 0, 0
    while b := state.batch(money - cost, state.n_available - n):
        n, cost = n + b, cost + b * state.label_cost_micro + state.retrain_cost_micro
        steps.append((n, cost))
    return steps


def distill_cost_at(state: PolicyState, labels: int, teachers: int) -> int:
    """A distillation over the whole pool once the labels are ``labels``: the teacher's fine-tune grows with
    the labels it learns from (its fixed part in proportion), the soft labels do not."""
    now = state.distill_cost(state.n_unlabeled, teachers)
    fixed = state.distill_fixed_cost_micro + (teachers - 1) * state.teacher_cost_micro
    grown = fixed * max(labels, 1) // max(state.n_labels, 1) - fixed if labels > state.n_labels else 0
    return now + grown


def _scores(theta: np.ndarray, row) -> np.ndarray:
    return np.clip(theta @ np.array(row), 0.0, 100.0)


def shipped(students: list[np.ndarray], noise: np.ndarray, se: float) -> np.ndarray:
    """The score, per draw, of the student :mod:`budget.shipped` ships of ``students`` (true scores per draw, the
    latest last): an earlier one only where its lead over the latest, as the dev set measures it (true lead +
    ``se`` x ``noise``), passes ``SHIP_Z`` x ``se``."""
    latest = students[-1]
    out, best_lead = latest.copy(), np.full(latest.shape, SHIP_Z * se)
    for i, earlier in enumerate(students[:-1]):
        lead = earlier - latest + se * noise[:, i]
        wins = lead > best_lead
        out[wins], best_lead[wins] = earlier[wins], lead[wins]
    return out


def _value(curves: Curves, theta: np.ndarray, noise: np.ndarray, have: Candidates, labels: int, distil: bool,
           refine: bool) -> np.ndarray:
    """The shipped student's score per draw after a plan that ends with ``labels`` labels."""
    if labels > curves.n_now or not have.label_only:  # a batch: a new dev set, only the plan's students compete
        if refine:
            lift = theta @ np.array(curves.label_row(labels)) - theta @ np.array(curves.label_row(have.distilled))
            students = [np.clip(theta @ np.array(curves.distilled_row(have.distilled)) + lift, 0.0, 100.0)]
        else:
            students = [_scores(theta, curves.label_row(labels))]
    else:
        plain = _scores(theta, curves.label_row(have.label_only))
        students = [plain]
        if have.distilled and have.both_current:
            distilled = _scores(theta, curves.distilled_row(have.distilled))
            students = [plain, distilled] if have.latest_distilled else [distilled, plain]
        elif have.distilled and have.latest_distilled:
            students = [_scores(theta, curves.distilled_row(have.distilled))]
    if distil:
        students.append(_scores(theta, curves.distilled_row(labels)))
    return shipped(students, noise, have.dev_se)


def plans(state: PolicyState, curves: Curves, normals: np.ndarray, have: Candidates, money: int,
          teachers: int = 1) -> list[Plan]:
    """Every plan ``money`` pays for, valued under ``curves`` (draws from ``normals``)."""
    theta, noise = curves.draws(normals[:, :4]), normals[:, 4:]
    now = _value(curves, theta, noise, have, curves.n_now, False, False)  # stop_value's, on the same draws
    out = []
    can_distil = state.n_unlabeled > 0
    for k, (added, cost) in enumerate(_label_steps(state, money)):
        labels = state.n_labels + added
        alone = float(np.mean(_scores(theta, curves.label_row(labels))))
        options = [(False, False, cost)]
        if k > 0 and have.distilled:
            options.append((False, True, cost))
        if can_distil and not (k == 0 and have.distilled == state.n_labels):
            options.append((True, False, cost + distill_cost_at(state, labels, teachers)))
        for distil, refine, total in options:
            if total > money:
                continue
            v = _value(curves, theta, noise, have, labels, distil, refine)
            out.append(Plan(k, labels, distil, total, float(v.mean()), float(np.quantile(v - now, 0.1)),
                            float(np.quantile(v - now, 0.9)), alone, refine))
    return out


def best_plan(candidates: list[Plan], price: float = 0.0) -> Plan | None:
    """The plan of highest net value (:meth:`Plan.net` at ``price``); among plans within a hundredth of a point
    of it, the cheapest."""
    if not candidates:
        return None
    top = max(p.net(price) for p in candidates)
    return min((p for p in candidates if p.net(price) >= top - 0.01), key=lambda p: (p.cost_micro, p.batches))


def stop_value(curves: Curves, normals: np.ndarray, have: Candidates) -> tuple[float, np.ndarray]:
    """The output's expected score if the run stopped now, and its score per draw."""
    theta = curves.draws(normals[:, :4])
    v = _value(curves, theta, normals[:, 4:], have, curves.n_now, False, False)
    return float(v.mean()), v


def pilot_value(state: PolicyState, curves: Curves, normals: np.ndarray, have: Candidates, money: int,
                cost_micro: int, se: float, price: float = 0.0) -> float:
    """The expected net value (:meth:`Plan.net` at ``price``) of the run's output if it distils now (for
    ``cost_micro``) and then follows the best plan after seeing the distillation's margin, measured with error
    ``se``: the average over the outcomes the belief predicts for that measurement (equal-probability
    quantiles of its predictive normal)."""
    after = Candidates(have.label_only, state.n_labels, both_current=True, latest_distilled=True, dev_se=have.dev_se)
    zs = [NormalDist().inv_cdf(float(q)) for q in (np.arange(_OUTCOMES) + 0.5) / _OUTCOMES]
    values = []
    for seen in outcomes(curves, curves.margin_row(state.n_labels), se, zs, "pilot"):
        best = best_plan(plans(state, seen, normals, after, money - cost_micro), price)
        values.append(best.net(price) if best else stop_value(seen, normals, after)[0])
    return float(np.mean(values)) - price * cost_micro


def outcomes(curves: Curves, row: tuple[float, ...], se: float, zs: Sequence[float], what: str) -> list[Curves]:
    """The belief after each outcome of a measurement of ``row`` with error ``se``: the outcome ``z`` predictive
    standard deviations from the predicted mean, for each ``z`` in ``zs``."""
    mean, sd = curves.predict(row)
    spread = float(np.sqrt(sd ** 2 + se ** 2))
    return [curves.observe(Measurement(row, mean + z * spread, se, what)) for z in zs]
