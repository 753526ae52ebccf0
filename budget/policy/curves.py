"""One model of both learning curves, fitted to the run's own paired measurements.

The student trained on labels alone and the student distilled from a teacher fine-tuned on the same
labels both improve as labels grow; over the few-fold growth of labels a run's budget buys, both are close
to straight lines in ln(labels) (learning curves are power laws in the error, and a power law is
nearly straight in ln(n) over a short span), and neither passes 100. With ``x = ln(n / n_now)``::

    label-only(n) = level + slope x
    distilled(n)  = label-only(n) + margin + margin_slope x       (then both clipped to [0, 100])

so the distillation's margin over labels alone is a function of labels: it may shrink as labels grow
(the teacher adds less once the student has data) or grow (a teacher needs labels before it teaches).
The four numbers ``(level, slope, margin, margin_slope)`` have a Gaussian prior (:class:`CurvePrior`) and
every measurement of the run is a linear function of them with a Gaussian error, so the posterior is
Gaussian and exact (a Kalman update per measurement); no fitting loop, no optimiser.

The measurements (:func:`measurements`), each on one dev set for both students it compares:

- a label-only student's paired gain over the last label-only student (``n1`` to ``n2`` labels) or over
  its subsample pilot (half the labels): ``slope (x2 - x1)``;
- a distillation's paired gain over the label-only student it followed (same labels): ``margin +
  margin_slope x``; a distilled student's gain over the last distilled one: ``(slope + margin_slope)(x2 - x1)``;
- the latest label-only student's dev score: ``level + slope x``, the level the headroom is taken from.

Each error is the paired standard error on the dev items (:func:`budget.policy.estimates.paired_se`)
plus ``retrain_sd``: two students differ by their training seed as well as by what they learned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from budget.policy.estimates import paired_se
from budget.policy.state import PolicyState, RoundObservation

__all__ = ["CurvePrior", "Curves", "Measurement", "dev_paired_se", "fit", "measurements", "typical_se"]

PARAMS = ("level", "slope", "margin", "margin_slope")


@dataclass(frozen=True)
class CurvePrior:
    """The belief about both curves before a run measures anything (points, and points per unit of ln labels).

    Set before any run of the task suite, from what learning curves of fine-tuned classifiers look like
    rather than from any cell: a label-only student gains a few points each time its labels double (``slope``
    6 per unit of ln, about 4 a doubling, sd 6: flat and steep curves are both plausible); whether
    distillation helps is not assumed either way (``margin`` 0, sd 6: Kang et al. found it helping by
    several points on their tasks, and it loses on a stance task of ours), nor whether its help grows or
    shrinks with labels (``margin_slope`` 0, sd 3). The level is vague (sd 30): the run's own score sets it.
    ``retrain_sd``: points two students trained on the same data with other seeds differ by, beside dev noise.
    """

    slope: float = 6.0
    slope_sd: float = 6.0
    margin: float = 0.0
    margin_sd: float = 6.0
    margin_slope: float = 0.0
    margin_slope_sd: float = 3.0
    level_sd: float = 30.0
    retrain_sd: float = 2.0

    def __post_init__(self) -> None:
        for name in ("slope_sd", "margin_sd", "margin_slope_sd", "level_sd"):
            if not getattr(self, name) > 0:
                raise ValueError(f"The {name!r} of a CurvePrior must be > 0. Got {getattr(self, name)!r} instead.")


@dataclass(frozen=True)
class Measurement:
    """One measurement: ``value`` (points) = ``row`` . (level, slope, margin, margin_slope), give or take ``se``."""

    row: tuple[float, float, float, float]
    value: float
    se: float
    what: str


@dataclass(frozen=True)
class Curves:
    """The Gaussian belief about both curves, relative to ``n_now`` labels (x = ln(n / n_now))."""

    n_now: int
    mean: tuple[float, ...]
    cov: tuple[tuple[float, ...], ...]

    @classmethod
    def from_prior(cls, prior: CurvePrior, n_now: int, level: float = 50.0) -> Curves:
        """The prior, centred on ``level`` points for the label-only student now."""
        sds = (prior.level_sd, prior.slope_sd, prior.margin_sd, prior.margin_slope_sd)
        return cls(n_now, (level, prior.slope, prior.margin, prior.margin_slope),
                   tuple(tuple(float(sds[i] ** 2 if i == j else 0.0) for j in range(4)) for i in range(4)))

    def x(self, n: float) -> float:
        """ln(n / n_now)."""
        return math.log(max(n, 1) / max(self.n_now, 1))

    def observe(self, m: Measurement) -> Curves:
        """The belief after measurement ``m`` (a Kalman update: exact for a linear Gaussian model)."""
        mu, cov, h = np.array(self.mean), np.array(self.cov), np.array(m.row)
        s = float(h @ cov @ h) + m.se ** 2
        k = cov @ h / s
        mu = mu + k * (m.value - float(h @ mu))
        cov = cov - np.outer(k, h @ cov)
        cov = (cov + cov.T) / 2
        return replace(self, mean=tuple(float(v) for v in mu), cov=tuple(tuple(float(v) for v in r) for r in cov))

    def label_row(self, n: float) -> tuple[float, float, float, float]:
        """The row that gives the label-only student's score at ``n`` labels."""
        return (1.0, self.x(n), 0.0, 0.0)

    def distilled_row(self, n: float) -> tuple[float, float, float, float]:
        """The row that gives the distilled student's score at ``n`` labels."""
        x = self.x(n)
        return (1.0, x, 1.0, x)

    def margin_row(self, n: float) -> tuple[float, float, float, float]:
        """The row that gives the distillation's margin over the label-only student at ``n`` labels."""
        return (0.0, 0.0, 1.0, self.x(n))

    def predict(self, row: tuple[float, ...]) -> tuple[float, float]:
        """Mean and standard deviation (points) of ``row`` . parameters."""
        h, cov = np.array(row), np.array(self.cov)
        return float(h @ np.array(self.mean)), math.sqrt(max(0.0, float(h @ cov @ h)))

    def draws(self, normals: np.ndarray) -> np.ndarray:
        """Parameter draws (one row each) from standard normals of shape (draws, 4): the same normals give
        every belief's draws, so plans compared under two beliefs differ by the beliefs, not by chance.

        Neither curve falls as labels are added (a measured drop is training and dev-set noise): a draw's
        slopes are held at zero or above, the label-only one (``slope``) and the distilled one (``slope +
        margin_slope``)."""
        chol = np.linalg.cholesky(np.array(self.cov) + 1e-9 * np.eye(4))
        theta = np.array(self.mean) + normals @ chol.T
        theta[:, 1] = np.maximum(theta[:, 1], 0.0)
        theta[:, 3] = np.maximum(theta[:, 3], -theta[:, 1])
        return theta


def measurements(state: PolicyState, n_now: int, prior: CurvePrior) -> list[Measurement]:
    """The run's measurements of both curves (see the module's docstring), oldest first."""
    def x(n: float) -> float:
        return math.log(max(n, 1) / max(n_now, 1))

    def err(se: float) -> float:
        return math.sqrt(se ** 2 + prior.retrain_sd ** 2)

    out: list[Measurement] = []
    before = None  # the last scored student
    for r in state.rounds:
        for m in (r.along_kind(), r.pilot()):
            if m is None or m.n_after <= m.n_before or m.n_before <= 0:
                continue
            span = x(m.n_after) - x(m.n_before)
            row = (0.0, span, 0.0, span if m.arm == "distill" else 0.0)
            out.append(Measurement(row, m.gain, err(m.se), f"{m.arm} curve {m.n_before}->{m.n_after}"))
        if r.arm == "distill" and before is not None and not before.distilled:
            m = r.measured(before.n_labels)
            if m is not None:
                xa = x(m.n_after)
                out.append(Measurement((0.0, xa - x(m.n_before), 1.0, xa), m.gain, err(m.se),
                                       f"distillation over labels alone at {m.n_after}"))
        if r.dev_score is not None:
            before = r
    plain = [r for r in state.rounds if r.dev_score is not None and not r.distilled]
    if plain:
        last = plain[-1]
        p, d = last.dev_score, max(last.dev_items, 1)
        se = 100.0 * math.sqrt(max(p * (1 - p), 1.0 / d) / d)
        out.append(Measurement((1.0, x(last.n_labels), 0.0, 0.0), 100.0 * p, se,
                               f"label-only student at {last.n_labels}"))
    return out


def fit(state: PolicyState, prior: CurvePrior) -> Curves:
    """The belief about both curves after the run's measurements, relative to the labels bought so far."""
    n_now = max(state.n_labels, 1)
    scored = [r for r in state.rounds if r.dev_score is not None]
    level = 100.0 * scored[-1].dev_score if scored else 50.0
    curves = Curves.from_prior(prior, n_now, level)
    for m in measurements(state, n_now, prior):
        curves = curves.observe(m)
    return curves


def dev_paired_se(rounds: Sequence[RoundObservation]) -> float | None:
    """The paired standard error (points) of a difference of two students on the largest dev set of ``rounds``,
    at their mean disagreement (0.15 before any is measured); None when no round has dev items."""
    dev = max((r.dev_items for r in rounds), default=0)
    if not dev:
        return None
    seen = [r.disagree for r in rounds if r.disagree is not None]
    return paired_se(sum(seen) / len(seen) if seen else 0.15, dev)


def typical_se(state: PolicyState, prior: CurvePrior) -> float:
    """The error a new paired measurement on the current dev set is expected to have (points)."""
    se = dev_paired_se(state.rounds)
    return math.inf if se is None else math.sqrt(se ** 2 + prior.retrain_sd ** 2)
