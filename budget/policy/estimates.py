"""Paired measurements and how a gain is shown: each with an interval, in points for its own price.

Every round's student is scored on the run's dev set together with the previous round's student
(:class:`budget.ledger.round_records.RoundSummary` ``dev`` and ``prev_dev``, same items), so each round
measures its own gain without comparing scores taken on different dev sets. Its standard error
comes from the items on which exactly one of the two students is right (a paired, McNemar-style
bound), so a small dev set gives a wide interval instead of a confident wrong number. The adaptive
policy fits these measurements to one model of both learning curves (:mod:`budget.policy.curves`).

Gains are in score points (0-100) and, for a decision, per $100 of the arm's cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from budget.money import format_usd

__all__ = ["Measured", "Gain", "paired_se", "z_value"]


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
