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
from dataclasses import dataclass, replace

from budget.decision import Decision
from budget.estimates import Gain, Measured, label_slope, paired_se, pooled_gain, z_value

__all__ = ["RoundObservation", "PolicyState", "Decision", "Policy", "AnnotateOnly", "DistillOnly", "FixedSplit",
           "Adaptive", "make_policy"]


@dataclass(frozen=True)
class RoundObservation:
    """One finished round as the policy sees it: money in micro-dollars, dev score after the round.

    ``n_labels`` is the number of purchased gold labels (seed included) the round's student saw.
    ``prev_dev`` is the previous round's student on this round's dev set (``dev_items`` items) and
    ``disagree`` the share of those items on which exactly one of the two is right (a paired measure).
    ``arm_prev_dev`` and ``arm_disagree`` compare in the same way with the last student of the round's
    own kind (label-only or distilled), which saw ``arm_prev_labels`` labels. ``refined``: an annotation
    round whose labels fine-tuned the latest distilled student (no distillation followed them).
    ``pilot_dev`` and ``pilot_disagree`` compare in the same way with a student trained on a random half
    of the round's labels (``pilot_labels``): a subsample pilot, one more point on the label-only curve.
    """

    round: int
    arm: str
    cost_micro: int
    n_labels: int
    dev_score: float | None
    prev_dev: float | None = None
    disagree: float | None = None
    dev_items: int = 0
    arm_prev_dev: float | None = None
    arm_disagree: float | None = None
    arm_prev_labels: int | None = None
    refined: bool = False
    pilot_dev: float | None = None
    pilot_disagree: float | None = None
    pilot_labels: int | None = None

    @property
    def distilled(self) -> bool:
        """True when this round's student is a distilled one (a distillation's, or refined from one)."""
        return self.arm == "distill" or self.refined

    def along_kind(self) -> Measured | None:
        """This student's paired gain over the last student of its own kind, a point on the label-only
        ('annotate') or distilled ('distill') learning curve; None when not measured."""
        if self.dev_score is None or None in (self.arm_prev_dev, self.arm_disagree, self.arm_prev_labels):
            return None
        return Measured("distill" if self.distilled else "annotate", 100 * (self.dev_score - self.arm_prev_dev),
                        paired_se(self.arm_disagree, self.dev_items), self.arm_prev_labels, self.n_labels,
                        self.cost_micro)

    def pilot(self) -> Measured | None:
        """This label-only student's paired gain over the pilot trained on half its labels (a point on the
        label-only curve spanning ln 2 whatever the batch size), or None without a pilot."""
        if self.distilled or self.dev_score is None or None in (self.pilot_dev, self.pilot_disagree,
                                                                 self.pilot_labels):
            return None
        return Measured("annotate", 100 * (self.dev_score - self.pilot_dev),
                        paired_se(self.pilot_disagree, self.dev_items), self.pilot_labels, self.n_labels, 0)

    def measured(self, n_before: int) -> Measured | None:
        """This round's paired gain in points over the student before it, or None when not measured."""
        if self.dev_score is None or self.prev_dev is None or self.disagree is None:
            return None
        return Measured(self.arm, 100 * (self.dev_score - self.prev_dev), paired_se(self.disagree, self.dev_items),
                        n_before, self.n_labels, self.cost_micro)


@dataclass(frozen=True)
class PolicyState:
    """What a policy may look at. Money is integer micro-dollars; nothing here comes from a test set.

    A distillation's estimated cost is ``distill_fixed_cost_micro`` (teacher fine-tune, student on the
    gold labels) plus ``distill_cost_per_1000_micro`` per thousand unlabeled items (a per-item cost
    can be below a micro-dollar), from FLOPs or device time, corrected by the run's measured costs.
    Each more teacher of an ensemble adds ``teacher_cost_micro`` (its fine-tune) and
    ``teacher_per_1000_micro`` per thousand items (its soft labels). The fixed part changes with the gold
    labels the teacher learns from (it grows with them, and a minimum of training steps makes it jump
    up and down with how they fill the last batch of an epoch): ``distill_fixed_after_micro[b - 1]`` is
    its estimate after ``b`` more labels, for ``b`` up to ``batch_size`` (empty: as now). Money kept back
    for a distillation after a batch covers that distillation at the labels it will learn from.
    """

    granted_micro: int
    available_micro: int
    spent_by_arm: dict[str, int]
    rounds: tuple[RoundObservation, ...]
    label_cost_micro: int  # one item: price per label x overlap
    retrain_cost_micro: int  # estimated cost of retraining the student after a batch (and its pilot, if any)
    distill_fixed_cost_micro: int  # teacher fine-tune + student training on the gold labels
    distill_cost_per_1000_micro: int  # soft-labelling + student training per 1000 unlabeled items
    n_labels: int
    n_available: int  # items that can still be sent for labelling
    n_unlabeled: int  # items available for soft labels
    batch_size: int
    min_batch: int = 1  # the smallest batch worth its retrain
    teacher_cost_micro: int = 0  # one more teacher of an ensemble: its fine-tune
    teacher_per_1000_micro: int = 0  # ... and its soft labels per 1000 unlabeled items
    distill_fixed_after_micro: tuple[int, ...] = ()  # [b - 1]: the fixed part after b more labels

    def distill_cost(self, n_items: int, teachers: int = 1, *, after: int = 0) -> int:
        """Estimated cost of one distillation over ``n_items`` unlabeled items with ``teachers`` teachers;
        ``after``: of one that follows a batch of that many more labels (its teacher learns from them)."""
        fixed, per_1000 = self._distill_prices(teachers, after)
        return fixed + -(-n_items * per_1000 // 1000)

    def affordable_distill_items(self, money_micro: int, teachers: int = 1, *, after: int = 0) -> int:
        """The most unlabeled items one distillation (with ``teachers`` teachers) can use for ``money_micro``
        (``after``: one that follows a batch of that many more labels)."""
        fixed, per_1000 = self._distill_prices(teachers, after)
        left = money_micro - fixed
        if left <= 0:
            return 0
        return int(min(self.n_unlabeled, left * 1000 // max(per_1000, 1)))

    def _distill_prices(self, teachers: int, after: int = 0) -> tuple[int, int]:
        more = teachers - 1
        known = self.distill_fixed_after_micro
        fixed = known[min(after, len(known)) - 1] if after > 0 and known else self.distill_fixed_cost_micro
        return (fixed + more * self.teacher_cost_micro,
                self.distill_cost_per_1000_micro + more * self.teacher_per_1000_micro)

    def labels_beside_distill(self, money_micro: int) -> int:
        """The money for the largest batch that ``money_micro`` buys while what is left still pays for a
        distillation over the whole pool after it, priced at the labels it will learn from (0: none)."""
        for n in range(self.affordable_labels(money_micro), 0, -1):
            if n < min(self.min_batch, self.n_available):
                break
            amount = n * self.label_cost_micro + self.retrain_cost_micro
            if money_micro - amount >= self.distill_cost(self.n_unlabeled, after=n):
                return amount
        return 0

    @property
    def distilled_lead(self) -> float:
        """Dev points by which the best distilled student leads the latest label-only one (0 when it does
        not, or before both exist)."""
        plain = [r.dev_score for r in self.rounds if not r.distilled and r.dev_score is not None]
        distilled = [r.dev_score for r in self.rounds if r.distilled and r.dev_score is not None]
        if not plain or not distilled:
            return 0.0
        return max(0.0, 100 * (max(distilled) - plain[-1]))

    def headroom(self, distilled: bool) -> float | None:
        """Points the latest distilled (``distilled``) or label-only student has left to 100 on dev (the latest
        student of either kind where none of that kind is scored; None before any score)."""
        scored = [r for r in self.rounds if r.dev_score is not None]
        kind = [r for r in scored if r.distilled == distilled] or scored
        return 100.0 * (1.0 - kind[-1].dev_score) if kind else None

    @property
    def can_distill(self) -> bool:
        """True when the money left pays for a distillation of any size (money only shrinks: when it
        does not, no distillation will run in this run)."""
        return self.affordable_distill_items(self.available_micro) > 0

    def labels_for(self, money_micro: int) -> tuple[int, int]:
        """The labels ``money_micro`` buys in successive batches, each with its retrain, and what they cost."""
        n = cost = 0
        while b := self._batch(money_micro - cost, self.n_available - n):
            n, cost = n + b, cost + b * self.label_cost_micro + self.retrain_cost_micro
        return n, cost

    def affordable_labels(self, money_micro: int) -> int:
        """The most items one annotation batch (with its retrain) can buy for ``money_micro``."""
        return self._batch(money_micro, self.n_available)

    def _batch(self, money_micro: int, items_left: int) -> int:
        left = money_micro - self.retrain_cost_micro
        if left <= 0 or self.label_cost_micro <= 0:
            return 0
        n = int(min(self.batch_size, items_left, left // self.label_cost_micro))
        # a batch smaller than min_batch is not worth its retrain, unless it takes the last items
        return n if n >= min(self.min_batch, items_left) else 0


class Policy(ABC):
    """Picks an arm and an amount each round from a :class:`PolicyState`.

    ``pilots``: the policy reads the label-only curve's subsample pilots, so its label-only rounds (the
    baseline's too) train one (:attr:`Decision.pilot`).
    """

    pilots: bool = False

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
            why = ("no items left to label" if state.n_available == 0 else
                   f"money left does not pay for a batch of {state.min_batch} labels and its retrain")
            return Decision("stop", reason=f"{reason}; {why}", estimates=estimates or {})
        amount = n * state.label_cost_micro + state.retrain_cost_micro
        # labels that no distillation can follow improve the distilled student that leads the run, not a
        # student trained on them alone that would trail it
        refine = state.distilled_lead > 0 and state.affordable_distill_items(state.available_micro - amount,
                                                                              after=n) == 0
        if refine:
            reason = f"{reason}; no distillation can follow: the labels fine-tune the latest distilled student"
        return Decision("annotate", n, amount, reason, estimates or {}, refine=refine)

    @staticmethod
    def _distill(state: PolicyState, money: int, reason: str, estimates=None, teachers: int = 1) -> Decision:
        n = state.affordable_distill_items(money)
        if n == 0:
            why = "no unlabeled items" if state.n_unlabeled == 0 else "money left does not pay for a distillation"
            return Decision("stop", reason=f"{reason}; {why}", estimates=estimates or {})
        # more teachers never at the price of unlabeled items
        while teachers > 1 and state.affordable_distill_items(money, teachers) < n:
            teachers -= 1
        if teachers > 1:
            reason = f"{reason}; the soft labels are the average of {teachers} teacher fine-tunes"
        return Decision("distill", n, state.distill_cost(n, teachers), reason, estimates or {}, teachers)

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


class Adaptive(Policy):
    """Spend where the next dollar is expected to buy the most dev score, and stop when neither arm will.

    Each arm's value is measured, not assumed: every round's student is compared with the one before
    it on the same dev items (:mod:`budget.estimates`), so an estimate carries an interval that is
    wide while the dev set is small or the arm is barely tried.

    1. Explore: labels first (the cheapest arm to measure), then a distillation (over the part of the
       pool half the money pays for when a full one is dear: a pilot).
    2. Choose optimistically: the arm whose upper bound (at ``stop_confidence``) of points per $100
       is higher. An arm that looks bad only because of a noisy dev set still gets tried.
    3. Stop when $100 more is expected to add fewer than ``min_points_per_100usd`` points on either
       arm with ``stop_confidence`` confidence (both upper bounds below it). The reason says both
       estimates with their ranges; the money left is kept.

    When compute is nearly free (a distillation under ``nearly_free_share`` of the budget), its
    points per $100 mean nothing: distillation simply runs whenever new labels arrived, and the
    money decides only how many labels to buy. It stops running once the run's distillations, pooled,
    are unlikely (at ``stop_confidence``) to beat the label-only students they followed: the last
    student is then trained on the labels alone. The last distillation of a run (no batch follows it)
    runs only when that pooled gain is expected not to lose: optimism buys what later decisions learn,
    and the last one has none after it. The compute that is nearly free also buys steadiness:
    a distillation then averages the soft labels of up to ``teacher_ensemble`` teachers fine-tuned
    with different seeds (as many as keep it nearly free). A teacher fine-tuned on a few dozen labels
    varies from seed to seed, and the student distilled from it varies more.

    Parameters
    ----------
    min_points_per_100usd : float
        The stop rule's X: dev points (0-100) per $100 below which an arm is not worth its price.
    stop_confidence : float
        How sure the stop rule must be (0.8: stop when both arms' 80% upper bounds are below X).
    nearly_free_share : float
        Compute is nearly free when one distillation costs less than this share of the budget.
    keep_final_distill : bool
        Hold back the cost of one distillation so the last labels can still be distilled.
    redistill_growth : float
        While labels are still worth buying, distil again only once the labels have grown by this
        fraction since the last distillation (0.5: by half); the final distillation always runs.
    teacher_ensemble : int
        While compute is nearly free, a distillation averages up to this many teachers (1: one teacher).
    """

    def __init__(self, *, min_points_per_100usd: float = 0.5, stop_confidence: float = 0.8,
                 nearly_free_share: float = 0.02, keep_final_distill: bool = True,
                 redistill_growth: float = 0.5, teacher_ensemble: int = 3) -> None:
        for name, value, ok in (("min_points_per_100usd", min_points_per_100usd, min_points_per_100usd >= 0),
                                ("stop_confidence", stop_confidence, 0.5 <= stop_confidence < 1),
                                ("nearly_free_share", nearly_free_share, 0 <= nearly_free_share < 1),
                                ("redistill_growth", redistill_growth, redistill_growth >= 0),
                                ("teacher_ensemble", teacher_ensemble,
                                 isinstance(teacher_ensemble, int) and teacher_ensemble >= 1)):
            if not isinstance(value, float | int) or isinstance(value, bool) or not ok:
                raise ValueError(f"The {name!r} parameter of Adaptive is out of range. Got {value!r} instead.")
        self.min_points_per_100usd = float(min_points_per_100usd)
        self.stop_confidence = float(stop_confidence)
        self.nearly_free_share = float(nearly_free_share)
        self.keep_final_distill = keep_final_distill
        self.redistill_growth = float(redistill_growth)
        self.teacher_ensemble = int(teacher_ensemble)

    # estimates ------------------------------------------------------------------------------------
    @staticmethod
    def measurements(state: PolicyState) -> list[Measured]:
        """Each finished round's paired gain over the label-only student before it.

        A round that follows a distilled student is compared with it, which measures neither arm alone:
        it is left out.
        """
        out, before = [], None
        for r in state.rounds:
            m = r.measured(before.n_labels) if before is not None and not before.distilled else None
            if m is not None:
                out.append(m)
            if r.dev_score is not None:
                before = r
        return out

    @staticmethod
    def curves(state: PolicyState) -> list[Measured]:
        """Each round's paired gain over the last student of its own kind: points on the label-only curve
        (annotation rounds) and on the distilled curve (distillations after new labels); and each label-only
        student's gain over its subsample pilot (:meth:`RoundObservation.pilot`), on the label-only curve."""
        return [m for r in state.rounds for m in (r.along_kind(), r.pilot()) if m is not None]

    @classmethod
    def label_gain(cls, state: PolicyState, money: int | None = None, *, distilled: bool = False) -> Gain:
        """Expected points of the next batch (what ``money`` buys, a full batch by default) from the pooled
        slope of paired gains on ln(labels): on the distilled student's curve when ``distilled`` (the run's
        output will be distilled, or the labels refine a distilled student) and it is measured, else on the
        label-only student's, which adds to the run's output only what lifts it past a better distilled
        student (:meth:`behind`); that gain is then over every batch ``money`` buys, since one batch may
        fall short of the lead where several pass it."""
        money = state.available_micro if money is None else money
        n = state.affordable_labels(money) or min(state.batch_size, state.n_available)
        cost = n * state.label_cost_micro + state.retrain_cost_micro
        behind, horizon = (0.0 if distilled else cls.behind(state)), 0
        if behind > 0:
            # the output gains nothing until the labels lift their student past the best one: a batch too
            # small to do it alone is worth what every batch the money buys does together
            n_all, cost_all = state.labels_for(money)
            if n_all > n:
                n, cost, horizon = n_all, cost_all, n_all
        curves = cls.curves(state)
        slope = label_slope(curves, arm="distill") if distilled else None
        if slope is None:  # ledgers from before the per-kind comparison have only the paired gains
            slope = label_slope(curves) or label_slope(cls.measurements(state))
        if slope is None or n == 0 or state.n_labels <= 0:
            return Gain("annotate", None, math.inf, cost)
        span = math.log((state.n_labels + n) / state.n_labels)
        return Gain("annotate", slope[0] * span, slope[1] * span, cost, floor=0.0, behind=behind, items=horizon,
                    headroom=state.headroom(distilled))

    @staticmethod
    def behind(state: PolicyState) -> float:
        """Dev points by which the latest label-only student trails the best distilled one (0 when it does
        not): labels trained alone must lift it that far before the output gains."""
        return state.distilled_lead

    @classmethod
    def distill_gain(cls, state: PolicyState) -> Gain:
        """Every distillation's paired gain over the label-only student it followed, pooled by inverse variance
        (:func:`budget.estimates.pooled_gain`), expected again at the cost of distilling the whole pool now."""
        pooled = pooled_gain(cls.measurements(state), arm="distill")
        cost = state.distill_cost(state.n_unlabeled)
        if pooled is None:
            return Gain("distill", None, math.inf, cost)
        return Gain("distill", pooled[0], pooled[1], cost, headroom=state.headroom(False))

    # deciding ---------------------------------------------------------------------------------------
    pilots = True

    def decide(self, state: PolicyState) -> Decision:
        decision = self._decide(state)
        # a student trained on labels alone also trains a pilot on half of them, for the label-only curve
        return replace(decision, pilot=True) if decision.arm == "annotate" and not decision.refine else decision

    def _decide(self, state: PolicyState) -> Decision:
        z = z_value(self.stop_confidence)
        distill = self.distill_gain(state)
        free = distill.cost_micro <= self.nearly_free_share * state.granted_micro
        # a distillation the money left cannot pay for will never run: nothing is kept back for it, and
        # labels are worth what they do to the distilled student they refine where one leads the run
        # (else to the student trained on them alone)
        can_distill = state.can_distill
        # the output will be distilled when distilling has paid, or while compute is nearly free and it may
        # still pay: labels are then worth what they do to the distilled student
        paid = self._worth(distill, z) if free else (distill.points or 0) > 0
        labels = self.label_gain(state, distilled=can_distill and paid or not can_distill and state.distilled_lead > 0)
        est = {"annotate": labels.per_100usd(), "distill": distill.per_100usd()}
        tried = {r.arm for r in state.rounds if r.dev_score is not None}  # a round stopped early tells nothing
        pending = not self._distilled_since_last_labels(state) and "annotate" in tried
        reserve = self.keep_final_distill and can_distill
        # 1. explore: labels, then a distillation (a pilot over part of the pool when a full one is dear)
        if "annotate" not in tried:
            decision = self._annotate(state, self._label_money(state, reserve), "exploring: labels not tried yet",
                                      est)
            if decision.arm != "stop":
                return decision
        if "distill" not in tried:
            pilot = distill.cost_micro > state.available_micro // 2 and not free
            money = state.available_micro // 2 if pilot else state.available_micro
            what = "a pilot distillation over part of the pool" if pilot else "distillation not tried yet"
            decision = self._distill(state, money, f"exploring: {what}", est, self.teachers(state) if free else 1)
            if decision.arm != "stop":
                return decision
        # 2. compute nearly free: distil whenever labels arrived while it may pay; the money buys labels
        if free:
            return self._nearly_free(state, labels, distill, pending, z, est)
        # 3. choose optimistically; 4. stop when both upper bounds are below X
        return self._choose(state, labels, distill, pending, reserve, z, est)

    def teachers(self, state: PolicyState) -> int:
        """How many teachers a distillation averages while compute is nearly free: up to ``teacher_ensemble``,
        as many as keep a distillation of the whole pool under ``nearly_free_share`` of the budget."""
        free = self.nearly_free_share * state.granted_micro
        k = 1
        while k < self.teacher_ensemble and state.distill_cost(state.n_unlabeled, k + 1) <= free:
            k += 1
        return k

    @staticmethod
    def _label_money(state: PolicyState, keep: bool) -> int:
        """The money a batch may use: all that is left, or (``keep``) what leaves a distillation after it
        paid for. That distillation's teacher learns from the batch too: money kept at the price of
        today's would not pay for it once the batch is bought, and the labels it shrank would have been
        bought for a distillation that never runs."""
        return state.labels_beside_distill(state.available_micro) if keep else state.available_micro

    def _worth(self, gain: Gain, z: float) -> bool:
        upper = gain.per_100usd(z)
        return gain.points is None or (upper is not None and upper >= self.min_points_per_100usd)

    def _nearly_free(self, state: PolicyState, labels: Gain, distill: Gain, pending: bool, z: float,
                     est: dict) -> Decision:
        note = "compute is nearly free here: distillation runs whenever new labels arrive"
        runs = sum(m.arm == "distill" for m in self.measurements(state))
        last = False
        if not self._worth(distill, z):
            # nearly free in money, but the distillations so far, pooled, are unlikely to beat the label-only
            # student they followed: the labels train the student alone, and that student ends the run
            note = (f"compute is nearly free here, but distillation no longer runs: {runs} so far, pooled, "
                    f"{distill.describe(z, self.stop_confidence)} over the label-only student")
        elif pending:
            teachers = self.teachers(state)
            after = state.available_micro - state.distill_cost(state.n_unlabeled, teachers)
            # optimism (the upper bound) pays for what a later decision learns; the last distillation has no
            # later decision, so it runs only when the pooled gain is expected (its mean) not to lose
            last = not (self._worth(labels, z) and state.affordable_labels(after) > 0)
            if not last or distill.points is None or distill.points >= 0:
                return self._distill(state, state.available_micro, note, est, teachers)
            note = (f"compute is nearly free here, but the last distillation does not run: {runs} so far, pooled, "
                    f"{distill.describe(z, self.stop_confidence)} over the label-only student, which ends the run")
        if self._worth(labels, z):
            return self._annotate(state, state.available_micro, f"{labels.describe(z, self.stop_confidence)}; {note}",
                                  est)
        if last:
            return Decision("stop", reason=f"{labels.describe(z, self.stop_confidence)}; {note}", estimates=est)
        return self._stop(state, f"{labels.describe(z, self.stop_confidence)}; {note}", est)

    def _choose(self, state: PolicyState, labels: Gain, distill: Gain, pending: bool, reserve: bool, z: float,
                est: dict) -> Decision:
        conf = self.stop_confidence
        last = max((r.n_labels for r in state.rounds if r.arm == "distill"), default=0)
        grown = pending and state.n_labels >= last * (1 + self.redistill_growth)
        worth = {"annotate": self._worth(labels, z),
                 "distill": pending and state.can_distill and self._worth(distill, z)}
        upper = {g.arm: g.per_100usd(z) for g in (labels, distill)}
        if worth["distill"] and grown and (upper["distill"] or 0) > (upper["annotate"] or 0):
            return self._distill(state, state.available_micro, distill.describe(z, conf), est)
        if worth["annotate"]:
            # hold back a final distillation only while it promises as much per dollar as labels do; money
            # taken from it buys labels that no distillation will follow, valued (conservatively, though
            # they will refine the distilled student) at what they do alone
            alone = self.label_gain(state, distilled=False).per_100usd(z)
            keep = reserve and self._worth(distill, z) and (upper["distill"] is None or alone is None
                                                            or upper["distill"] >= alone)
            decision = self._annotate(state, self._label_money(state, keep), labels.describe(z, conf), est)
            if decision.arm != "stop":
                return decision
        if worth["distill"]:
            return self._distill(state, state.available_micro, f"final {distill.describe(z, conf)}", est)
        shown = f"{labels.describe(z, conf)}; {distill.describe(z, conf)}"
        if not pending and any(r.arm == "distill" for r in state.rounds):
            shown += " (every label bought is already distilled)"
        # labels worth buying, but the money left does not pay for a batch and the distillation kept for it
        blocked = worth["annotate"] and reserve and state.affordable_labels(state.available_micro) > 0
        return self._stop(state, shown, est, blocked=blocked, pending=pending)

    def _stop(self, state: PolicyState, shown: str, est: dict, *, blocked: bool = False,
              pending: bool = False) -> Decision:
        if blocked:
            return Decision("stop", reason="the money left pays for a batch of labels or for distilling them, not "
                            f"both, and labels promise less per dollar without it ({shown})", estimates=est)
        # a distillation with no new labels to distil is never run: it does not count as one the money pays for
        if state.affordable_labels(state.available_micro) == 0 and not (pending and state.can_distill):
            return Decision("stop", reason=f"the money left pays for neither a batch nor a distillation ({shown})",
                            estimates=est)
        return Decision("stop", reason=f"neither arm is expected to add {self.min_points_per_100usd:g} points per $100 "
                        f"it costs with {self.stop_confidence:.0%} confidence ({shown})", estimates=est)


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
        if not 0.0 <= share <= 1.0:  # nan fails too
            raise ValueError(f"Policy {name!r}: F in 'split:F' is the budget's share on compute, from 0 to 1, "
                             "like split:0.3.")
        return FixedSplit(share)
    if name == "adaptive":
        return Adaptive(**params)
    raise ValueError(f"Unknown policy {name!r}; choose annotate, distill, split:F (e.g. split:0.3) or adaptive.")
