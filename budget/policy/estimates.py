"""What the next dollars on each arm are expected to buy, with an interval, from paired measurements.

Every round's student is scored on the run's dev set together with the previous round's student
(:class:`budget.ledger.round_records.RoundSummary` ``dev`` and ``prev_dev``, same items), so each round
measures its own gain without comparing scores taken on different dev sets. Its standard error
comes from the items on which exactly one of the two students is right (a paired, McNemar-style
bound), so a small dev set gives a wide interval instead of a confident wrong number.

- Labels: an annotation round that took the labels from ``n`` to ``n + k`` and gained ``d`` points
  measures the slope ``b = d / ln((n + k) / n)`` of ``score = a + b ln(n)``; the slopes of all
  annotation rounds are pooled by inverse variance. The next batch of ``k'`` labels at ``n'`` is
  expected to add ``b ln((n' + k') / n')``: returns fall as labels grow, as learning curves do.
- Labels through the distilled student: a distillation after new labels is also scored against the
  previous distilled student (same items), a point on the distilled student's learning curve. When
  the run's output will be distilled, labels are worth what they do to that curve (the teacher learns
  from them too), once measured.
- Distillation: each distillation round's paired gain over the label-only student it followed, pooled
  by inverse variance over the run's distillations (one distillation's gain rests on one teacher and
  one student run, a few dozen dev items apart; several pooled are steadier). The labels bought since
  the last one have not been distilled, so the pooled gain is expected again.

Gains are in score points (0-100) and, for a decision, per $100 of the arm's cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from budget.money import format_usd

__all__ = ["Measured", "Gain", "paired_se", "label_slope", "pooled_gain", "z_value"]


def z_value(confidence: float) -> float:
    """The one-sided normal quantile of ``confidence`` (0.8 -> 0.84)."""
    return NormalDist().inv_cdf(confidence)


def paired_se(disagree: float, n_items: int) -> float:
    """Standard error (points) of a difference of two scores on the same ``n_items`` dev items, where
    ``disagree`` is the fraction of items on which exactly one of the two models is right."""
    if n_items <= 0:
        return math.inf
    # at least one item's worth of doubt: a dev set never proves two models equal
    d = max(disagree, 1.0 / n_items)
    return 100.0 * math.sqrt(d / n_items)


@dataclass(frozen=True)
class Measured:
    """One round's paired gain: ``gain`` points (this student minus the previous one, same dev items)
    with standard error ``se``, after the labels went from ``n_before`` to ``n_after``."""

    arm: str
    gain: float
    se: float
    n_before: int
    n_after: int
    cost_micro: int


@dataclass(frozen=True)
class Gain:
    """An arm's expected gain of its next spend: ``points`` with standard error ``se``, for ``cost_micro``.

    ``None`` points means not measured yet. ``floor`` is a gain the arm cannot fall below in
    expectation (labels: 0, a learning curve does not fall as labels are added; a measured drop is
    training and dev-set noise): the estimate is then a normal truncated at the floor, so one unlucky
    retrain reads as "little gain, maybe more", never as "labels hurt with 80% confidence".

    ``behind`` is how many points the student this gain raises trails the run's best student (its
    output): the output gains only what lifts it past, ``max(0, gain - behind)``. ``items``: the labels
    the gain is over, where that is more than one batch. ``headroom``: the points the student this gain
    raises has left to 100; what a lead is shown never exceeds it (a dev score cannot pass 100, whatever a
    slope measured on a few dozen items says).
    """

    arm: str
    points: float | None
    se: float
    cost_micro: int
    floor: float | None = None
    behind: float = 0.0
    items: int = 0
    headroom: float | None = None

    def quantile(self, z: float) -> float:
        """The gain (points) at standard-normal quantile ``z``: ``points + z se``, truncated at ``floor``,
        less ``behind`` (never below zero when something is behind)."""
        q = self._quantile(z)
        return max(0.0, q - self.behind) if self.behind > 0 else q

    def _quantile(self, z: float) -> float:
        if self.floor is None or not 0 < self.se < math.inf:
            return self.points + z * self.se
        nd = NormalDist()
        above = nd.cdf((self.points - self.floor) / self.se)  # the chance mass above the floor
        if above <= 0.0:
            return self.floor
        tail = min(max(above * (1.0 - nd.cdf(z)), 1e-300), 1.0 - 1e-16)  # upper tail of the truncated normal
        return max(self.floor, self.points - self.se * nd.inv_cdf(tail))

    def per_100usd(self, z: float = 0.0) -> float | None:
        """Points per $100: the estimate (``z=0``, the median), or its upper (``z>0``) / lower (``z<0``) bound."""
        if self.points is None or self.cost_micro <= 0:
            return None
        return self.quantile(z) / (self.cost_micro / 1e8)

    def shown(self, z: float) -> float:
        """The gain a lead is shown at quantile ``z``: :meth:`quantile`, never above the points left to 100
        (``headroom``, less ``behind`` when the output must first be caught up)."""
        q = self.quantile(z)
        if self.headroom is None:
            return q
        return min(q, max(0.0, self.headroom - self.behind))

    def describe(self, z: float, confidence: float) -> str:
        """The gain as a lead reads it: points for the arm's own price, with its range at ``confidence`` each side
        (at least 80%: a policy that stops on the estimate alone still shows how sure it is), never more than
        the points left to 100.

        'labels +2.1 points for $11.40 (80% range +0.4 to +4.6)', 'distillation +1.2 points for $35.00 (80%
        range -0.4 to +2.8)'. A rate per $100 scales a cheap spend past anything it can buy: a $3 batch adding 4.5
        points on a student at 57 reads as +151 points per $100; a $0.31 distillation's -4.6 points as -1.48e+03.
        """
        name = {"annotate": "labels", "distill": "distillation"}.get(self.arm, self.arm)
        if self.points is None or self.cost_micro <= 0:
            return f"{name} not measured yet"
        if confidence < 0.8:
            z, confidence = z_value(0.8), 0.8
        shown = (f"{name} {_pts(self.shown(0.0))} points for {format_usd(self.cost_micro)} "
                 f"({confidence:.0%} range {_pts(self.shown(-z))} to {_pts(self.shown(z))})")
        if self.behind > 0:
            shown += f" to the best student, which the label-only one trails by {self.behind:.3g} points"
            if self.items:
                shown += f", over the {self.items} labels the money left buys"
        return shown


def _pts(x: float) -> str:
    return f"{x:+.3g}" if abs(x) < 1e4 else f"{x:+.2e}"


def label_slope(rounds: list[Measured], arm: str = "annotate") -> tuple[float, float] | None:
    """Pooled slope ``b`` (points per unit of ln labels) and its standard error from the measurements of
    one curve (``arm``: 'annotate', the label-only student; 'distill', the distilled one) that added
    labels; None without one."""
    terms = []
    for r in rounds:
        if r.arm != arm or r.n_after <= r.n_before or r.n_before <= 0:
            continue
        span = math.log(r.n_after / r.n_before)
        terms.append((r.gain / span, r.se / span))
    return _inverse_variance(terms)


def pooled_gain(rounds: list[Measured], arm: str = "distill") -> tuple[float, float] | None:
    """The inverse-variance mean of the paired gains (points) of one arm's rounds and its standard error;
    None without one."""
    return _inverse_variance([(r.gain, r.se) for r in rounds if r.arm == arm])


def _inverse_variance(terms: list[tuple[float, float]]) -> tuple[float, float] | None:
    """The inverse-variance weighted mean of ``(value, se)`` terms and its standard error."""
    if not terms:
        return None
    weights = [1.0 / max(se, 1e-9) ** 2 for _, se in terms]
    b = sum(w * s for w, (s, _) in zip(weights, terms, strict=True)) / sum(weights)
    return b, math.sqrt(1.0 / sum(weights))
