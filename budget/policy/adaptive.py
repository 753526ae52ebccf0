"""The adaptive policy: spends where the run's own paired measurements say the next dollar buys most."""

from __future__ import annotations

import math
from dataclasses import replace

from budget.decision import Decision
from budget.policy.base import Policy
from budget.policy.estimates import Gain, Measured, label_slope, pooled_gain, z_value
from budget.policy.state import PolicyState

__all__ = ['Adaptive']


class Adaptive(Policy):
    """Spend where the next dollar is expected to buy the most dev score, and stop when neither arm will.

    Each arm's value is measured, not assumed: every round's student is compared with the one before
    it on the same dev items (:mod:`budget.policy.estimates`), so an estimate carries an interval that is
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
        (:func:`budget.policy.estimates.pooled_gain`), expected again at the cost of distilling the whole pool now."""
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
