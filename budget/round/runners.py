"""What one round does, by arm: the baseline student, an annotation round, a distillation round.

A round is a list of steps recorded in the ledger before they start and marked done after they
end, so a killed run resumes where it was (see :mod:`budget.round.steps`). The arms live in their own
modules: :mod:`budget.round.annotate` and :mod:`budget.round.distill`.
"""

from __future__ import annotations

from collections.abc import Callable

from budget.decision import Decision
from budget.ledger.round_records import RoundSummary
from budget.round.annotate import run_annotate
from budget.round.context import RunContext
from budget.round.distill import run_distill
from budget.round.results import StudentResult
from budget.round.snapshot import Snapshot
from budget.round.steps import compute_step, finish_round, pilot_fields, student_step, student_summary

__all__ = ["RUNNERS", "run_baseline", "run_annotate", "run_distill"]


def run_baseline(ctx: RunContext, rnd: int, decision: Decision, snap: Snapshot) -> RoundSummary:
    """Round 0: the student fine-tuned on the seed labels, the point every arm is measured from."""
    res = ctx.ledger.reserve(decision.amount_micro, key=f"round-{rnd}:baseline", arm="baseline", round=rnd,
                             purpose="student on the seed labels", estimate_micro=decision.amount_micro)
    step = compute_step(ctx, rnd, f"round-{rnd}:student", res.id, student_step(ctx, rnd, snap), StudentResult)
    pilot, pilot_cost = pilot_fields(ctx, rnd, snap, res.id, decision.pilot, step)
    return finish_round(ctx, rnd, res.id, student_summary(step, compute_micro=step.cost_micro + pilot_cost, **pilot))


#: the round runner of each arm: ``runner(ctx, round, decision, snapshot) -> summary``
RUNNERS: dict[str, Callable[[RunContext, int, Decision, Snapshot], RoundSummary]] = {
    "baseline": run_baseline, "annotate": run_annotate, "distill": run_distill}
