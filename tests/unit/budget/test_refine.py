"""Labels that no distillation follows refine the distilled student: on tiny models, the annotation round
fine-tunes the latest distilled student on every label, never ends below it on the same dev items, and
counts as a distilled student for the rounds and the policy after it."""

from budget.config import load_config
from budget.controller import Controller
from budget.money import to_micro
from budget.policy import Decision, Policy, PolicyState
from tests.utils.projects import write_tiny_project


class _Script(Policy):
    """Labels, a distillation, then a batch of labels that refines it (what adaptive decides when the
    distilled student leads and the money left pays for labels but no further distillation)."""

    def decide(self, state: PolicyState) -> Decision:
        arms = [r.arm for r in state.rounds]
        if arms == ["baseline"]:
            return self._annotate(state, 8 * state.label_cost_micro + state.retrain_cost_micro, "labels")
        if arms == ["baseline", "annotate"]:
            return self._distill(state, state.available_micro, "a distillation")
        if len(arms) == 3:
            d = self._annotate(state, 12 * state.label_cost_micro + state.retrain_cost_micro, "labels after it")
            return Decision(d.arm, d.n_items, d.amount_micro, d.reason, d.estimates, refine=True)
        return Decision("stop", reason="done")


def test_labels_after_the_last_distillation_fine_tune_the_distilled_student(tmp_path):
    project = write_tiny_project(tmp_path, policy="adaptive")
    with Controller(load_config(project), tmp_path / "run", progress=False, say=lambda _: None) as run:
        run.policy = _Script()
        run.fund(to_micro("40"))
        run.run()
        rounds = [r for r in run.ledger.rounds() if r.state == "done"]
        steps = {r.round: run.ledger.step_result(f"round-{r.round}:student") for r in rounds}
        latest_distilled = run.ctx.latest_of_kind(distilled=True)
        latest_plain = run.ctx.latest_of_kind(distilled=False)
    assert [r.arm for r in rounds] == ["baseline", "annotate", "distill", "annotate"]
    distill, refined = rounds[2], rounds[3]
    assert refined.plan.decision.refine and refined.summary.refined and refined.distilled  # kept in the ledger
    assert not rounds[1].distilled and distill.distilled
    # compared with the distilled student it started from, on its own dev items: never below it
    assert refined.summary.prev_dev == refined.summary.arm_prev_dev is not None
    assert refined.summary.dev >= refined.summary.prev_dev
    assert refined.summary.arm_prev_labels == distill.summary.n_labels < refined.summary.n_labels
    # it saw the new labels, and it is the run's latest distilled student; the label-only one is round 1's
    assert steps[3]["n_labels"] == refined.summary.n_labels and steps[3]["refined_from"] == distill.summary.student
    assert latest_distilled == (refined.summary.student, refined.summary.n_labels)
    assert latest_plain == (rounds[1].summary.student, rounds[1].summary.n_labels)
    assert "labels after it" in refined.plan.decision.reason
