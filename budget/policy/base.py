"""What every policy is: one verb, :meth:`Policy.decide`, and the helpers that size a batch or a distillation."""

from __future__ import annotations

from abc import ABC, abstractmethod

from budget.decision import Decision
from budget.policy.state import PolicyState

__all__ = ['Policy']


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
