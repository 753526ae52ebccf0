"""What a policy decides for the next round: the record every policy returns and the ledger keeps."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Decision"]


@dataclass(frozen=True)
class Decision:
    """What to do next: ``arm`` is 'annotate', 'distill' or 'stop'.

    ``n_items`` is the batch size (annotate) or the unlabeled items to soft-label (distill);
    ``amount_micro`` the money to reserve; ``estimates`` the gain per $100 the policy expected
    from each arm (score points, 0-100 scale), kept in the ledger with the decision. ``teachers`` is
    how many teacher fine-tunes (different seeds) a distillation averages the soft labels of. ``refine``:
    no distillation can follow this batch's labels, so they fine-tune the latest distilled student (never
    ending worse on dev than it started) instead of a student trained on labels alone. ``pilot``: the
    round also trains a student on a random half of its labels, for the label-only learning curve.
    """

    arm: str
    n_items: int = 0
    amount_micro: int = 0
    reason: str = ""
    estimates: dict[str, float | None] = field(default_factory=dict)
    teachers: int = 1
    refine: bool = False
    pilot: bool = False
