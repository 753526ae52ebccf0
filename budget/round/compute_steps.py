"""A round's compute steps in the ledger: their names, and the results of those that finished."""

from __future__ import annotations

from itertools import count

from budget.ledger import Ledger
from budget.round.results import PilotResult, SoftLabelResult, StepResult, StudentResult, TeacherResult

__all__ = ["teacher_suffix", "compute_steps"]


def teacher_suffix(member: int) -> str:
    """The step and folder suffix of a distillation's teacher ``member``: '' for the first (and for every
    single-teacher round: ``round-N:teacher``, ``round-N:soft_labels``), '-2', '-3', ... for an ensemble's others."""
    return f"-{member + 1}" if member else ""


def compute_steps(ledger: Ledger, rnd: int) -> list[StepResult]:
    """The results of round ``rnd``'s finished compute steps: its student, its subsample pilot (a label-only
    student's, when the policy asked for one), and each teacher's fine-tune and soft labels (none for a
    retraining round), each as its kind of result."""
    steps = [(StudentResult, ledger.step_result(f"round-{rnd}:student")),
             (PilotResult, ledger.step_result(f"round-{rnd}:pilot"))]
    for member in count():
        teacher = ledger.step_result(f"round-{rnd}:teacher{teacher_suffix(member)}")
        if teacher is None:
            break
        steps += [(TeacherResult, teacher),
                  (SoftLabelResult, ledger.step_result(f"round-{rnd}:soft_labels{teacher_suffix(member)}"))]
    return [kind.from_json(raw) for kind, raw in steps if raw is not None]
