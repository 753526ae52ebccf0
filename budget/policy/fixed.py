"""The fixed rules a user could pick without the run's measurements: annotate, distill, split:F."""

from __future__ import annotations

from budget.decision import Decision
from budget.policy.base import Policy
from budget.policy.state import PolicyState

__all__ = ['AnnotateOnly', 'DistillOnly', 'FixedSplit']


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
