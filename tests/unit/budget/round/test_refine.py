"""Labels that no distillation follows refine the distilled student: on tiny models, the annotation round
fine-tunes the latest distilled student on every label, never ends below it on the same dev items, counts
as a distilled student for the rounds and the policy after it, and a run killed inside it resumes to the
same ledger as an uninterrupted one."""

import pytest

from budget.ledger import Ledger
from tests.utils.kills import KillPoint, fingerprint, killed_run, reference_run
from tests.utils.projects import write_tiny_project
from tests.utils.scripted import run_refine_script


@pytest.fixture(scope="module")
def refined_run(tmp_path_factory):
    """The scripted run (labels, a distillation, labels that refine it) once, uninterrupted."""
    root = tmp_path_factory.mktemp("refine")
    project = write_tiny_project(root, policy="adaptive")
    sequence = reference_run([str(project), str(root / "whole")], root / "points.log", target=run_refine_script)
    return project, root, sequence


def test_labels_after_the_last_distillation_fine_tune_the_distilled_student(refined_run):
    _, root, _ = refined_run
    with Ledger(root / "whole" / "ledger.sqlite") as ledger:
        rounds = [r for r in ledger.rounds() if r.state == "done"]
        step = ledger.step_result("round-3:student")
    assert [r.arm for r in rounds] == ["baseline", "annotate", "distill", "annotate"]
    distill, refined = rounds[2], rounds[3]
    assert refined.plan.decision.refine and refined.summary.refined and refined.distilled  # kept in the ledger
    assert not rounds[1].distilled and distill.distilled
    # it started from the distilled student and saw the new labels
    assert step["refined_from"] == distill.summary.student and step["n_labels"] == refined.summary.n_labels
    # compared with the distilled student it started from, on its own dev items: never below it
    assert refined.summary.prev_dev == refined.summary.arm_prev_dev is not None
    assert refined.summary.dev >= refined.summary.prev_dev
    assert refined.summary.arm_prev_labels == distill.summary.n_labels < refined.summary.n_labels
    assert "labels after it" in refined.plan.decision.reason


def test_a_run_killed_inside_the_refining_round_ends_like_the_uninterrupted_run(refined_run):
    project, root, sequence = refined_run
    plan = [KillPoint("compute", "3.student", 1), KillPoint("compute-done", "3.student", 1)]
    assert all(any((p.name, p.where) == s for s in sequence) for p in plan), sorted(set(sequence))
    fired = killed_run([str(project), str(root / "killed")], plan, target=run_refine_script)
    assert fired == plan
    assert fingerprint(root / "killed") == fingerprint(root / "whole")
