"""A distillation whose teacher costs more than its estimate leaves the student money to train to its end."""

import pytest

from budget import distill_round
from budget.config import load_config
from budget.controller import Controller
from budget.costs import CostModel, training_epochs
from budget.policy import Decision, Policy, PolicyState
from budget.tiny import write_tiny_project


class _DistillThePool(Policy):
    """The baseline, then one distillation of the whole pool given all the money left."""

    def decide(self, state: PolicyState) -> Decision:
        if [r.arm for r in state.rounds] == ["baseline"]:
            return Decision("distill", state.n_unlabeled, state.available_micro, "the whole pool")
        return Decision("stop", reason="done")


@pytest.fixture
def teacher_underestimated(monkeypatch):
    """The plan expects the teacher's fine-tune to cost half what it does (as when the run's correction came
    from an earlier teacher whose early stopping landed sooner); the other phases' estimates are as they were."""
    phases = CostModel.phases

    def low(self, arm, *args, **kwargs):
        out = phases(self, arm, *args, **kwargs)
        return {**out, "teacher_finetune": out["teacher_finetune"] / 2} if arm == "distill" else out

    monkeypatch.setattr(CostModel, "phases", low)


def _distill(tmp_path, name):
    # min_steps 0: the student's epochs do not grow as its rows shrink, so fewer soft rows cost less
    project = write_tiny_project(tmp_path / "task", overrides={
        "split": {"test_size": 120}, "policy": {"teacher_ensemble": 1}, "models": {"min_steps": 0}})
    config = load_config(project)
    with Controller(config, tmp_path / name, progress=False, say=lambda _: None) as run:
        run.policy = _DistillThePool()
        run.fund(490)  # micro-dollars: the baseline, the teacher, and about half the soft labels and student
        run.run()
        rnd = run.ledger.rounds()[-1]
        steps = {k: run.ledger.step_result(f"round-{rnd.round}:{k}") for k in ("teacher", "soft_labels", "student")}
        n_gold = len(run.ctx.snapshot().train_dev()[0][1])
        totals = run.ledger.totals()
    m = config.models
    rows = n_gold + steps["soft_labels"]["n_items"]
    trained = next(p for p in steps["student"]["phases"] if p["name"] == "student_distill")["examples"]
    share = trained / (rows * training_epochs(rows, m.distill_epochs, m.min_steps, m.batch_size))
    assert totals.spent <= totals.granted and totals.reserved == 0
    return rnd, steps, share


def test_the_student_trains_to_its_end_on_fewer_soft_labels_when_the_teacher_ran_over(tmp_path, teacher_underestimated,
                                                                                     monkeypatch):
    rnd, steps, share = _distill(tmp_path, "run")
    assert steps["teacher"]["cost_micro"] > rnd.plan.compute_estimate_phases["teacher_finetune"] * 1.5
    planned = rnd.plan.decision.n_items
    assert 0 < steps["soft_labels"]["n_items"] < planned  # fewer soft rows...
    assert share >= 0.9  # ...and the student trained through (nearly) all of its epochs on them

    # without the student's money held back, the soft labels take the whole pool and the money cuts the
    # student's distillation off around half-way
    monkeypatch.setattr(distill_round, "_student_need", lambda *args: (lambda n: 0))
    _, before, before_share = _distill(tmp_path, "before")
    assert before["soft_labels"]["n_items"] == planned and before["student"]["stopped"] == "budget"
    assert before_share < 0.6
