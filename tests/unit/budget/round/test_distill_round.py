"""A distillation whose teacher costs more than its estimate still gives a student trained to its end."""

from typing import NamedTuple

import pytest

from budget.config import load_config
from budget.controller import Controller
from budget.costs import CostModel, training_epochs
from budget.ledger.records import RoundRecord
from budget.policy import Decision, Policy, PolicyState
from budget.report import round_rows
from budget.round import distill as distill_round
from budget.study.tiny import write_tiny_project


class _DistillThePool(Policy):
    """The baseline, then one distillation of the whole pool given all the money left."""

    def decide(self, state: PolicyState) -> Decision:
        if [r.arm for r in state.rounds] == ["baseline"]:
            return Decision("distill", state.n_unlabeled, state.available_micro, "the whole pool")
        return Decision("stop", reason="done")


class _DistillWhatTheEstimateAffords(Policy):
    """The baseline, then one distillation over as many pool items as its estimate fits in 85% of the money left:
    the round holds the rest too, a slack smaller than the teacher's overrun."""

    def decide(self, state: PolicyState) -> Decision:
        if [r.arm for r in state.rounds] == ["baseline"]:
            n = state.affordable_distill_items(state.available_micro * 85 // 100)
            return Decision("distill", n, state.distill_cost(n), "what the money pays for")
        return Decision("stop", reason="done")


@pytest.fixture
def teacher_underestimated(monkeypatch):
    """Every estimate of the teacher's fine-tune is half what it costs (as when the run's correction came from an
    earlier teacher whose early stopping landed sooner); the other phases' estimates are as they were."""
    flops_train = CostModel._flops_train

    def low(self, params, *args, **kwargs):
        out = flops_train(self, params, *args, **kwargs)
        return out / 2 if params == self.teacher_params else out

    monkeypatch.setattr(CostModel, "_flops_train", low)


class _Distilled(NamedTuple):
    rnd: RoundRecord  # the distillation round
    steps: dict  # its teacher's, soft labels' and student's step results
    share: float  # the share of its planned epochs the student trained
    note: str  # what the report says of the round


def _distill(tmp_path, name, policy=_DistillThePool) -> _Distilled:
    # min_steps 0: the student's epochs do not grow as its rows shrink, so fewer soft rows cost less
    project = write_tiny_project(tmp_path / "task", overrides={
        "split": {"test_size": 120}, "policy": {"teacher_ensemble": 1}, "models": {"min_steps": 0}})
    config = load_config(project)
    with Controller(config, tmp_path / name, progress=False, say=lambda _: None) as run:
        run.policy = policy()
        run.fund(490)  # micro-dollars: the baseline, the teacher, and about half the soft labels and student
        run.run()
        rnd = run.ledger.rounds()[-1]
        steps = {k: run.ledger.step_result(f"round-{rnd.round}:{k}") for k in ("teacher", "soft_labels", "student")}
        n_gold = len(run.ctx.snapshot().train_dev()[0][1])
        totals = run.ledger.totals()
        note = round_rows(run.ledger)[-1].note
    m = config.models
    rows = n_gold + steps["soft_labels"]["n_items"]
    trained = next(p for p in steps["student"]["phases"] if p["name"] == "student_distill")["examples"]
    share = trained / (rows * training_epochs(rows, m.distill_epochs, m.min_steps, m.batch_size))
    assert totals.spent <= totals.granted and totals.reserved == 0
    return _Distilled(rnd, steps, share, note)


def test_a_teacher_over_its_estimate_stops_where_the_soft_labels_and_student_money_begins(tmp_path,
                                                                                         teacher_underestimated,
                                                                                         monkeypatch):
    rnd, steps, share, note = _distill(tmp_path, "run", _DistillWhatTheEstimateAffords)
    estimate, planned = rnd.plan.compute_estimate_phases["teacher_finetune"], rnd.plan.decision.n_items
    assert steps["teacher"]["stopped"] == "budget" and steps["teacher"]["teacher_dev"] is not None
    assert steps["teacher"]["cost_micro"] > 1.3 * estimate  # it ran past its estimate, into the round's slack...
    assert steps["soft_labels"]["n_items"] >= 0.95 * planned  # ...not into the soft labels' money (estimates
    assert share >= 0.9  # are rounded to a micro-dollar) nor the student's: it trains (nearly) to its end
    # the round records it (a teacher cut short then stays out of the cost correction: test_controller.py)
    assert rnd.summary.teacher_stopped == "budget" and "teacher stopped" in note

    # a teacher that takes what it needs leaves the soft labels (and the student) fewer rows
    monkeypatch.setattr(distill_round, "_held_back", lambda work, *hold: work)
    before_rnd, before, *_ = _distill(tmp_path, "before", _DistillWhatTheEstimateAffords)
    assert before["teacher"]["stopped"] != "budget" and before["teacher"]["cost_micro"] > steps["teacher"]["cost_micro"]
    assert before_rnd.summary.teacher_stopped is None
    assert before["soft_labels"]["n_items"] < 0.9 * planned


def test_soft_labels_leave_the_student_its_money_when_nothing_was_kept_from_the_teacher(tmp_path,
                                                                                      teacher_underestimated,
                                                                                      monkeypatch):
    # the teacher takes what it needs (as before the teacher's hold): the soft labels are what gives way
    monkeypatch.setattr(distill_round, "_held_back", lambda work, *hold: work)
    rnd, steps, share, *_ = _distill(tmp_path, "run")
    assert steps["teacher"]["cost_micro"] > rnd.plan.compute_estimate_phases["teacher_finetune"] * 1.5
    planned = rnd.plan.decision.n_items
    assert 0 < steps["soft_labels"]["n_items"] < planned  # fewer soft rows...
    assert share >= 0.9  # ...and the student trained through (nearly) all of its epochs on them

    # with nothing held back for the student either, the soft labels take the whole pool and the money cuts
    # the student's distillation off around half-way
    monkeypatch.setattr(distill_round, "_student_need", lambda *args: (lambda n: 0))
    _, before, before_share, *_ = _distill(tmp_path, "before")
    assert before["soft_labels"]["n_items"] == planned and before["student"]["stopped"] == "budget"
    assert before_share < 0.6
