"""Which arm gets the next dollars.

Every policy has one verb, :meth:`Policy.decide`, which reads a read-only :class:`PolicyState`
(money left, the rounds so far with their dev scores and measured costs, prices) and returns a
:class:`Decision`: annotate n items, distil over n unlabeled items, or stop. Policies keep no
state of their own between calls, so a resumed run decides exactly as an uninterrupted one.

The policies (after Kang, Xu and Ritter, ACL 2023):

- ``annotate``: all money on labels, the student retrained after each batch.
- ``distill``: the paper's distillation: no new labels; one teacher fine-tune + soft labels +
  student run over as much of the unlabeled pool as the money pays for.
- ``split:F``: fraction F of the budget on compute (one final distillation), the rest on labels.
- ``adaptive``: estimates the next dollar's gain on each arm from the run's own dev scores and
  measured costs, tries each arm before trusting its estimate, keeps money back for a final
  distillation after the last labels, and stops with money unspent when neither arm is worth it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

__all__ = ["RoundObservation", "PolicyState", "Decision", "Policy", "AnnotateOnly", "DistillOnly", "FixedSplit",
           "Adaptive", "fit_learning_curve", "make_policy"]


@dataclass(frozen=True)
class RoundObservation:
    """One finished round as the policy sees it: money in micro-dollars, dev score after the round.

    ``n_labels`` is the number of purchased gold labels (seed included) the round's student saw.
    """

    round: int
    arm: str
    cost_micro: int
    n_labels: int
    dev_score: float | None


@dataclass(frozen=True)
class PolicyState:
    """What a policy may look at. Money is integer micro-dollars; nothing here comes from a test set.

    A distillation's estimated cost is ``distill_fixed_cost_micro`` (teacher fine-tune, student on the
    gold labels) plus ``distill_cost_per_1000_micro`` per thousand unlabeled items (a per-item cost
    can be below a micro-dollar), from FLOPs or device time, corrected by the run's measured costs.
    """

    granted_micro: int
    available_micro: int
    spent_by_arm: dict[str, int]
    rounds: tuple[RoundObservation, ...]
    label_cost_micro: int  # one item: price per label x overlap
    retrain_cost_micro: int  # estimated cost of retraining the student after a batch
    distill_fixed_cost_micro: int  # teacher fine-tune + student training on the gold labels
    distill_cost_per_1000_micro: int  # soft-labelling + student training per 1000 unlabeled items
    n_labels: int
    n_available: int  # items that can still be sent for labelling
    n_unlabeled: int  # items available for soft labels
    batch_size: int

    def distill_cost(self, n_items: int) -> int:
        """Estimated cost of one distillation over ``n_items`` unlabeled items."""
        return self.distill_fixed_cost_micro + -(-n_items * self.distill_cost_per_1000_micro // 1000)

    def affordable_distill_items(self, money_micro: int) -> int:
        """The most unlabeled items one distillation can use for ``money_micro``."""
        left = money_micro - self.distill_fixed_cost_micro
        if left <= 0:
            return 0
        per_1000 = max(self.distill_cost_per_1000_micro, 1)
        return int(min(self.n_unlabeled, left * 1000 // per_1000))

    def affordable_labels(self, money_micro: int) -> int:
        """The most items one annotation batch (with its retrain) can buy for ``money_micro``."""
        left = money_micro - self.retrain_cost_micro
        if left <= 0 or self.label_cost_micro <= 0:
            return 0
        return int(min(self.batch_size, self.n_available, left // self.label_cost_micro))


@dataclass(frozen=True)
class Decision:
    """What to do next: ``arm`` is 'annotate', 'distill' or 'stop'.

    ``n_items`` is the batch size (annotate) or the unlabeled items to soft-label (distill);
    ``amount_micro`` the money to reserve; ``estimates`` the gain per $100 the policy expected
    from each arm (score points, 0-100 scale), kept in the ledger with the decision.
    """

    arm: str
    n_items: int = 0
    amount_micro: int = 0
    reason: str = ""
    estimates: dict[str, float | None] = field(default_factory=dict)


class Policy(ABC):
    """Picks an arm and an amount each round from a :class:`PolicyState`."""

    @abstractmethod
    def decide(self, state: PolicyState) -> Decision:
        """The next :class:`Decision`; never spends more than ``state.available_micro``."""
        raise NotImplementedError("The 'decide' method must be implemented.")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({params})"

    # shared helpers ----------------------------------------------------------------------------
    @staticmethod
    def _annotate(state: PolicyState, money: int, reason: str, estimates=None) -> Decision:
        n = state.affordable_labels(money)
        if n == 0:
            why = "no items left to label" if state.n_available == 0 else "money left does not pay for one label"
            return Decision("stop", reason=f"{reason}; {why}", estimates=estimates or {})
        amount = n * state.label_cost_micro + state.retrain_cost_micro
        return Decision("annotate", n, amount, reason, estimates or {})

    @staticmethod
    def _distill(state: PolicyState, money: int, reason: str, estimates=None) -> Decision:
        n = state.affordable_distill_items(money)
        if n == 0:
            why = "no unlabeled items" if state.n_unlabeled == 0 else "money left does not pay for a distillation"
            return Decision("stop", reason=f"{reason}; {why}", estimates=estimates or {})
        return Decision("distill", n, state.distill_cost(n), reason, estimates or {})

    @staticmethod
    def _distilled_since_last_labels(state: PolicyState) -> bool:
        for r in reversed(state.rounds):
            if r.arm == "distill":
                return True
            if r.arm == "annotate":
                return False
        return False


class AnnotateOnly(Policy):
    """All money on labels: a batch per round until the money or the pool runs out."""

    def decide(self, state: PolicyState) -> Decision:
        return self._annotate(state, state.available_micro, "annotate-only policy")


class DistillOnly(Policy):
    """The paper's distillation: no new labels, one distillation over as much unlabeled data as the money buys."""

    def decide(self, state: PolicyState) -> Decision:
        if any(r.arm == "distill" for r in state.rounds):
            return Decision("stop", reason="distill-only policy: distilled once over the unlabeled pool; "
                                           "another run on the same labels would buy nothing new")
        return self._distill(state, state.available_micro, "distill-only policy")


class FixedSplit(Policy):
    """Fraction ``compute_share`` of the budget on one final distillation, the rest on labels first.

    Parameters
    ----------
    compute_share : float
        In [0.0, 1.0]; ``split:0.3`` puts 30% of the granted money on compute.
    """

    def __init__(self, compute_share: float) -> None:
        if not isinstance(compute_share, float | int) or not 0.0 <= compute_share <= 1.0:
            raise ValueError("The 'compute_share' parameter of FixedSplit must be a float in the range [0.0, 1.0]. "
                             f"Got {compute_share!r} instead.")
        self.compute_share = float(compute_share)

    def decide(self, state: PolicyState) -> Decision:
        compute_budget = int(state.granted_micro * self.compute_share)
        label_budget = state.granted_micro - compute_budget
        label_left = label_budget - state.spent_by_arm.get("annotate", 0)
        if label_left > 0 and state.affordable_labels(min(label_left, state.available_micro)) > 0:
            return self._annotate(state, min(label_left, state.available_micro),
                                  f"split policy: {1 - self.compute_share:.0%} of the budget on labels")
        if self._distilled_since_last_labels(state) or compute_budget == 0:
            return Decision("stop", reason="split policy: both shares spent")
        return self._distill(state, state.available_micro,
                             f"split policy: {self.compute_share:.0%} of the budget on a final distillation")


def fit_learning_curve(n_labels: np.ndarray, scores: np.ndarray) -> tuple[float, float] | None:
    """Fit ``error(n) = b * n**(-c)`` to dev scores (0-1) by least squares in log-log space.

    A two-parameter power law is what small data supports; returns ``(b, c)`` with ``c >= 0``
    (a curve never predicts that more labels hurt), or None with fewer than two distinct ``n``.
    """
    n = np.asarray(n_labels, dtype=float)
    err = np.clip(1.0 - np.asarray(scores, dtype=float), 1e-3, 1.0)
    if len(np.unique(n)) < 2:
        return None
    slope, intercept = np.polyfit(np.log(n), np.log(err), 1)
    return float(math.exp(intercept)), max(0.0, float(-slope))


class Adaptive(Policy):
    """Spend where the next dollar is expected to buy the most dev score.

    Parameters
    ----------
    min_points_per_100usd : float
        Stop when neither arm is expected to add this many points of dev score (0-100 scale)
        per $100; the money stays unspent.
    keep_final_distill : bool
        Hold back the cost of one distillation so the last labels can still be distilled.
    redistill_growth : float
        While labels are still worth buying, distil again only once the labels have grown by this
        fraction since the last distillation (0.5: by half). The final distillation after the last
        labels always runs when distillation has paid off.
    """

    def __init__(self, *, min_points_per_100usd: float = 0.5, keep_final_distill: bool = True,
                 redistill_growth: float = 0.5) -> None:
        if not isinstance(min_points_per_100usd, float | int) or min_points_per_100usd < 0:
            raise ValueError("The 'min_points_per_100usd' parameter of Adaptive must be a float >= 0. "
                             f"Got {min_points_per_100usd!r} instead.")
        if not isinstance(redistill_growth, float | int) or redistill_growth < 0:
            raise ValueError("The 'redistill_growth' parameter of Adaptive must be a float >= 0. "
                             f"Got {redistill_growth!r} instead.")
        self.min_points_per_100usd = float(min_points_per_100usd)
        self.keep_final_distill = keep_final_distill
        self.redistill_growth = float(redistill_growth)

    # estimates, in dev-score points (0-100) per $100 ---------------------------------------------
    @staticmethod
    def annotate_gain(state: PolicyState) -> float | None:
        """Expected points per $100 of the next batch, from the learning curve of label-only rounds."""
        points = [(r.n_labels, r.dev_score) for r in state.rounds
                  if r.arm in {"baseline", "annotate"} and r.dev_score is not None]
        fit = fit_learning_curve(*map(np.array, zip(*points, strict=True))) if len(points) >= 2 else None
        n = state.affordable_labels(state.available_micro)
        if fit is None or n == 0:
            return None
        b, c = fit
        now, after = 1 - b * state.n_labels ** (-c), 1 - b * (state.n_labels + n) ** (-c)
        cost = n * state.label_cost_micro + state.retrain_cost_micro
        return 100 * (after - now) / (cost / 1e8)

    @staticmethod
    def distill_gain(state: PolicyState) -> float | None:
        """Measured points per $100 of the last distillation over the label-only student it followed.

        Refreshed each time a distillation runs; the labels bought since then are not distilled yet,
        so the same gain is expected again at today's cost.
        """
        last_plain, measured = None, None
        for r in state.rounds:
            if r.arm in {"baseline", "annotate"} and r.dev_score is not None:
                last_plain = r
            if r.arm == "distill" and r.dev_score is not None and last_plain is not None:
                measured = 100 * (r.dev_score - last_plain.dev_score) / (max(r.cost_micro, 1) / 1e8)
        return measured

    def decide(self, state: PolicyState) -> Decision:
        tried = {r.arm for r in state.rounds if r.dev_score is not None}  # a round stopped early tells nothing
        est = {"annotate": self.annotate_gain(state), "distill": self.distill_gain(state)}
        distill_all = state.distill_cost(state.n_unlabeled)
        reserve = distill_all if self.keep_final_distill else 0
        # 1. explore: each arm once before its estimate is trusted (labels need two points for a curve)
        n_plain = sum(r.arm in {"baseline", "annotate"} for r in state.rounds)
        if "annotate" not in tried or (n_plain < 2 and est["annotate"] is None):
            decision = self._annotate(state, state.available_micro - reserve, "exploring: labels not tried yet",
                                      est)
            if decision.arm != "stop":
                return decision
        if "distill" not in tried:
            return self._distill(state, state.available_micro, "exploring: distillation not tried yet", est)
        # 2. exploit: the arm with more points per $100, if it is worth its price. Distilling again
        #    is worth it only for labels it has not seen: once they have grown enough, or at the end.
        worth = {arm: g for arm, g in est.items() if g is not None and g >= self.min_points_per_100usd}
        last = max((r.n_labels for r in state.rounds if r.arm == "distill"), default=0)
        pending_distill = not self._distilled_since_last_labels(state)
        grown = pending_distill and state.n_labels >= last * (1 + self.redistill_growth)
        labels_first = "annotate" in worth and (worth["annotate"] >= worth.get("distill", -math.inf) or not grown)
        if labels_first:
            decision = self._annotate(state, state.available_micro - reserve,
                                      f"labels: {worth['annotate']:.3g} points per $100 expected", est)
            if decision.arm != "stop":
                return decision
        if "distill" in worth and pending_distill:
            final = "" if grown and not labels_first else "final "
            return self._distill(state, state.available_micro,
                                 f"{final}distillation: {worth['distill']:.3g} points per $100 measured", est)
        if state.affordable_labels(state.available_micro) == 0 and state.affordable_distill_items(
                state.available_micro) == 0:
            return Decision("stop", reason="the money left pays for neither a label nor a distillation",
                            estimates=est)
        shown = ", ".join(f"{arm} {'unknown' if g is None else f'{g:.3g}'}" for arm, g in est.items())
        why = f"expected dev points per $100: {shown}; threshold {self.min_points_per_100usd:.2f}"
        if "distill" in worth:
            why += "; every label bought is already distilled"
        return Decision("stop", reason=f"no arm is worth its price ({why})", estimates=est)


def make_policy(name: str, **params) -> Policy:
    """Build a policy from its CLI name: 'annotate', 'distill', 'split:F' or 'adaptive'."""
    if name == "annotate":
        return AnnotateOnly()
    if name == "distill":
        return DistillOnly()
    if name.startswith("split:"):
        try:
            share = float(name.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"Policy {name!r}: F in 'split:F' must be a number like split:0.3.") from None
        return FixedSplit(share)
    if name == "adaptive":
        return Adaptive(**params)
    raise ValueError(f"Unknown policy {name!r}; choose annotate, distill, split:F (e.g. split:0.3) or adaptive.")
