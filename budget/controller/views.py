"""What the controller hands the policy: its rounds as observations, and the run's compute cost model."""

from __future__ import annotations

from budget.config import ProjectConfig
from budget.costs import ComputePricer, CostModel
from budget.ledger import Ledger, LedgerSnapshot
from budget.ledger.round_records import RunInit
from budget.policy import RoundObservation

__all__ = ["observations", "round_costs"]


def observations(money: LedgerSnapshot) -> tuple[RoundObservation, ...]:
    """Each finished round as the policy sees it: its cost, labels and paired dev measurements."""
    out = []
    for r in money.rounds:
        if r.state != "done" or not r.summary:
            continue
        s = r.summary
        out.append(RoundObservation(
            round=r.round, arm=r.arm, cost_micro=money.spent_by_round.get(r.round, 0), n_labels=s.n_labels,
            dev_score=s.dev, prev_dev=s.prev_dev, disagree=s.disagree, dev_items=s.dev_items or 0,
            arm_prev_dev=s.arm_prev_dev, arm_disagree=s.arm_disagree, arm_prev_labels=s.arm_prev_labels,
            refined=bool(s.refined), pilot_dev=s.pilot_dev, pilot_disagree=s.pilot_disagree,
            pilot_labels=s.pilot_labels))
    return tuple(out)


def _correction(raw: float, actual: float) -> float:
    """What finished rounds of one kind cost over their raw estimate, kept within 0.2-5x (one odd round
    does not swing later estimates)."""
    return min(5.0, max(0.2, actual / raw))


def round_costs(config: ProjectConfig, init: RunInit, ledger: Ledger, *, corrected: bool = True,
                pool: int = 0) -> CostModel:
    """FLOP estimates of the run's compute (see :meth:`budget.controller.Controller.cost_model`)."""
    m = config.models
    model = CostModel(ComputePricer(config), "cpu" if m.device == "auto" else m.device,
                      init.student_params, init.teacher_params, init.tokens_per_item,
                      m.student_epochs, m.teacher_epochs, m.distill_epochs, min_steps=m.min_steps,
                      batch_size=m.batch_size, pool=pool)
    if not corrected:
        return model
    sums = {"retrain": [0.0, 0.0], "distill": [0.0, 0.0]}
    for r in ledger.rounds():
        s, raw = r.summary, r.plan.compute_estimate_raw
        if r.state == "done" and s and s.compute_micro and raw and not s.cut_short:
            kind = sums["distill" if r.arm == "distill" else "retrain"]
            kind[0], kind[1] = kind[0] + raw, kind[1] + s.compute_micro
    if sums["retrain"][0]:
        model.correction = _correction(*sums["retrain"])
    if sums["distill"][0]:
        model.distill_correction = _correction(*sums["distill"])
    return model
