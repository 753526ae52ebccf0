"""What a policy may look at: the rounds so far as it sees them, the money and the prices."""

from __future__ import annotations

from dataclasses import dataclass

from budget.policy.estimates import Measured, paired_se

__all__ = ['RoundObservation', 'PolicyState']


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
    ensembles: bool = True  # a distillation may average several teachers (not a prompted LLM: it answers alike)

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

    def affordable_labels(self, money_micro: int) -> int:
        """The most items one annotation batch (with its retrain) can buy for ``money_micro``."""
        return self.batch(money_micro, self.n_available)

    def batch(self, money_micro: int, items_left: int) -> int:
        """The items one batch (with its retrain) buys for ``money_micro`` with ``items_left`` items to label."""
        left = money_micro - self.retrain_cost_micro
        if left <= 0 or self.label_cost_micro <= 0:
            return 0
        n = int(min(self.batch_size, items_left, left // self.label_cost_micro))
        # a batch smaller than min_batch is not worth its retrain, unless it takes the last items
        return n if n >= min(self.min_batch, items_left) else 0
