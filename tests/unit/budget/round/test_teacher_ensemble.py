"""Where compute is nearly free, a distillation averages several teachers: on tiny models, every teacher is
charged to the ledger, the student learns from their average, and a run killed inside the ensemble resumes
to the same ledger as an uninterrupted run."""

from pathlib import Path

import numpy as np
import pytest

from budget.ledger import Ledger
from budget.round.compute_steps import compute_steps
from budget.round.results import SoftLabelResult
from tests.utils.kills import KillPoint, fingerprint, killed_run, reference_run
from tests.utils.projects import write_tiny_project


@pytest.fixture(scope="module")
def nearly_free(tmp_path_factory):
    """A tiny adaptive run with $20 where compute costs next to nothing, run once uninterrupted."""
    root = tmp_path_factory.mktemp("ensemble")
    project = write_tiny_project(root, models_dir=root / "models", overrides={"prices": {"reference_gpu_hour": "0.02"},
                                                                    "policy": {"teacher_ensemble": 3}})
    sequence = reference_run(_args(project, root / "whole"), root / "points.log")
    return project, root, sequence


def _args(project: Path, run_dir: Path) -> list[str]:
    return ["--spend", "20", "--config", str(project), "--run-dir", str(run_dir), "--quiet"]


def test_each_distillation_pays_three_teachers_and_teaches_the_student_their_average(nearly_free):
    _, root, _ = nearly_free
    with Ledger(root / "whole" / "ledger.sqlite") as ledger:
        rounds = [r for r in ledger.rounds() if r.arm == "distill"]
        assert rounds, [r.arm for r in ledger.rounds()]
        spent = ledger.spent_by_round()
        for r in rounds:
            assert r.plan.decision.teachers == r.summary.teachers == 3
            assert "the average of 3 teacher fine-tunes" in r.plan.decision.reason
            steps = compute_steps(ledger, r.round)
            assert len(steps) == 7  # the student, and each teacher's fine-tune and soft labels
            assert spent[r.round] == sum(s.cost_micro for s in steps) == r.summary.compute_micro > 0
        # the latest teachers and their soft labels are kept ([models] keep = 1), three different ones
        last_steps = compute_steps(ledger, rounds[-1].round)
        soft = [np.load(s.soft_labels) for s in last_steps if isinstance(s, SoftLabelResult)]
        assert len(soft) == 3 and rounds[-1].summary.unlabeled_used == len(soft[0]) > 0
        assert not np.allclose(soft[0], soft[1]) and not np.allclose(soft[1], soft[2])  # three seeds
        last = root / "whole" / "models" / f"round-{rounds[-1].round:03d}"
        assert {p.name for p in last.glob("teacher*")} == {"teacher", "teacher-2", "teacher-3"}
        for r in rounds[:-1]:
            assert not list((root / "whole" / "models" / f"round-{r.round:03d}").glob("teacher*"))


def test_a_run_killed_inside_the_second_and_third_teacher_ends_like_the_uninterrupted_run(nearly_free):
    project, root, sequence = nearly_free
    first = next(w.split(".")[0] for name, w in sequence if w.endswith(".teacher-2"))
    plan = [KillPoint("compute", f"{first}.teacher-2", 2), KillPoint("compute-done", f"{first}.teacher-2", 1),
            KillPoint("compute-done", f"{first}.soft_labels-2", 1), KillPoint("compute", f"{first}.teacher-3", 1)]
    assert all(any((p.name, p.where) == s for s in sequence) for p in plan), plan
    fired = killed_run(_args(project, root / "killed"), plan)
    assert fired == plan
    assert fingerprint(root / "killed") == fingerprint(root / "whole")
