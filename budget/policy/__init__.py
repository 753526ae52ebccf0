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

from budget.decision import Decision
from budget.policy.adaptive import Adaptive
from budget.policy.base import Policy
from budget.policy.fixed import AnnotateOnly, DistillOnly, FixedSplit
from budget.policy.make import make_policy
from budget.policy.state import PolicyState, RoundObservation

__all__ = ["RoundObservation", "PolicyState", "Decision", "Policy", "AnnotateOnly", "DistillOnly", "FixedSplit",
           "Adaptive", "make_policy"]
