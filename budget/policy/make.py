"""A policy from its command-line name: 'annotate', 'distill', 'split:F' or 'adaptive'."""

from __future__ import annotations

from budget.policy.adaptive import Adaptive
from budget.policy.base import Policy
from budget.policy.fixed import AnnotateOnly, DistillOnly, FixedSplit

__all__ = ['make_policy']


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
