"""What the controller hands the policy and reads back from a round: the rounds as observations, the run's
compute cost model, the state a decision is made on, a decision's expected costs, and the check that a new
student did not fall below the one before it."""

from __future__ import annotations

from collections.abc import Callable

from budget.config import ProjectConfig
from budget.costs import ComputePricer, CostModel
from budget.ledger import Ledger, LedgerSnapshot
from budget.ledger.round_records import RoundPlan, RoundSummary, RunInit
from budget.policy import Decision, PolicyState, RoundObservation
from budget.policy.estimates import paired_se
from budget.round.snapshot import Snapshot

__all__ = ["check_regression", "observations", "policy_state", "round_costs", "round_plan", "train_dev_sizes"]


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


def _llm_per_item(config: ProjectConfig, init: RunInit) -> float:
    """Micro-dollars a prompted teacher's request costs on average (its input tokens and one output token)."""
    price = config.llm.token_price()
    return float(price.input_micro) * init.llm_tokens_per_item + float(price.output_micro)


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
                      batch_size=m.batch_size, pool=pool, prompted=config.prompted,
                      llm_micro_per_item=_llm_per_item(config, init))
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


def train_dev_sizes(config: ProjectConfig, n_labels: int) -> tuple[int, int]:
    """How ``n_labels`` purchased labels divide into training and dev items, for cost estimates."""
    n_dev = max(1, round(n_labels * config.split.dev_fraction))
    return max(1, n_labels - n_dev), n_dev


def policy_state(config: ProjectConfig, money: LedgerSnapshot, costs: CostModel, snap: Snapshot, *,
                 n_unlabeled: int, pilots: bool, extra_micro: int = 0) -> PolicyState:
    """The read-only state the policy decides on: the ledger's ``money`` (plus ``extra_micro`` about to be
    granted), its finished rounds, and what each arm would cost now (``costs`` over ``n_unlabeled`` items a
    distillation would soft-label; ``pilots``: the policy's retraining also trains its pilot)."""
    n_train, n_dev = train_dev_sizes(config, snap.n_labels)
    batch = config.annotation.batch_size
    return PolicyState(
        granted_micro=money.totals.granted + extra_micro, available_micro=money.totals.available + extra_micro,
        spent_by_arm=money.spent_by_arm, rounds=observations(money),
        label_cost_micro=config.label_cost_per_item(),
        retrain_cost_micro=costs.retrain(n_train + batch, n_dev, pilots),  # its pilot too
        distill_fixed_cost_micro=costs.distill_fixed(n_train, n_dev),
        distill_fixed_after_micro=tuple(costs.distill_fixed(*train_dev_sizes(config, snap.n_labels + b))
                                        for b in range(1, batch + 1)),
        distill_cost_per_1000_micro=costs.distill_per_1000(n_train),
        teacher_cost_micro=costs.teacher_fixed(n_train), teacher_per_1000_micro=costs.teacher_per_1000(),
        n_labels=snap.n_labels, n_available=len(snap.states.indices("unlabeled")),
        n_unlabeled=n_unlabeled, batch_size=batch, min_batch=config.annotation.min_batch_items,
        ensembles=not config.prompted)


def round_plan(config: ProjectConfig, cost_model: Callable[..., CostModel], decision: Decision,
               n_labels: int) -> RoundPlan:
    """``decision`` with what its compute is expected to cost (as the policy saw it), the raw FLOP estimate,
    and the estimate per metered phase; ``cost_model(corrected=..., pool=...)`` is the run's cost model and
    ``n_labels`` the labels before the round."""
    bought = decision.n_items if decision.arm == "annotate" else 0
    n_train, n_dev = train_dev_sizes(config, n_labels + bought)
    costs = cost_model(pool=decision.n_items if decision.arm == "distill" else 0)
    phases = costs.phases(decision.arm, n_train, n_dev, decision.n_items, decision.teachers, decision.pilot)
    if decision.arm == "distill":
        return RoundPlan(decision, decision.amount_micro, decision.amount_micro / costs.distill_correction, phases)
    raw = cost_model(corrected=False).retrain(n_train, n_dev, decision.pilot)
    return RoundPlan(decision, costs.retrain(n_train, n_dev, decision.pilot), float(raw), phases)


def check_regression(ledger: Ledger, rnd: int, decision: Decision, summary: RoundSummary) -> str | None:
    """A line for the user (and a ``student_regressed`` event) when round ``rnd``'s student is clearly worse
    than the one before it on the same dev items; None otherwise.

    More labels should not make a student worse; when they do (beyond two standard errors of the
    paired difference) the training recipe is wrong for this data (too few steps, a learning
    rate too high for small data), not the arm. The event is kept; the best student so far stays
    the run's output.
    """
    if summary.dev is None or summary.prev_dev is None or summary.disagree is None or decision.arm == "distill":
        return None
    before = [r for r in ledger.rounds() if r.state == "done" and r.round < rnd]
    if before and before[-1].distilled:  # a label-only student below a distilled one is expected
        return None
    drop = 100 * (summary.prev_dev - summary.dev)
    se = paired_se(summary.disagree, summary.dev_items or 0)
    if drop <= 2 * se:
        return None
    ledger.log_event("student_regressed", round=rnd, drop_points=drop, se_points=se)
    return (f"round {rnd}: the student scores {drop:.1f} dev points below the previous one on the same "
            f"{summary.dev_items} items (more than twice the {se:.1f}-point standard error): a training "
            "recipe problem ([models] student_epochs, student_lr, min_steps); the best student so far "
            "stays the run's output.")
