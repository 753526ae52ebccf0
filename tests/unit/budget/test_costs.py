"""Compute estimates: a distillation is priced at the epochs the training loop will run."""

import math

from budget.config import load_config
from budget.costs import ComputePricer, CostModel
from tests.utils.projects import write_tiny_project


def _model(tmp_path, pool: int) -> CostModel:
    pricer = ComputePricer(load_config(write_tiny_project(tmp_path)))
    return CostModel(pricer, "cpu", student_params=22_700_000, teacher_params=109_500_000, tokens_per_item=40.0,
                     student_epochs=3, teacher_epochs=3, distill_epochs=3, min_steps=100, batch_size=16, pool=pool)


def _epochs(n_items: int) -> int:  # modeling.train: 3 epochs, more while they make under 100 steps of 16
    steps = math.ceil(n_items / 16)
    return max(3, math.ceil(100 / steps))


def test_the_student_of_a_distillation_is_priced_at_the_epochs_of_gold_and_soft_rows_together(tmp_path):
    # 60 gold labels and 200 soft ones train as one set of 260 rows: 17 steps an epoch, 6 epochs for 100 steps.
    # Each part floored alone (60 rows: 25 epochs; 200: 8) priced 3100 row-passes for the 1560 trained.
    costs = _model(tmp_path, pool=200)
    student = costs.phases("distill", 60, 20, 200)["student_distill"]
    row_pass = 6.0 * 22_700_000 * 40.0 * costs.padding_factor  # FLOPs of one row through the student, trained
    assert _epochs(260) == 6
    assert student == costs.pricer.estimate(260 * 6 * row_pass, "cpu", "student_distill")


def test_the_fixed_and_per_item_prices_add_up_to_a_distillation_of_the_whole_pool(tmp_path):
    # what the policy sees (fixed + per 1000 items) is what the round's plan prices, phase by phase
    for pool in (200, 3000):
        costs = _model(tmp_path, pool=pool)
        whole = sum(costs.phases("distill", 60, 20, pool).values())
        seen = costs.distill_fixed(60, 20) + costs.distill_per_1000(60) * pool / 1000
        assert math.isclose(seen, whole, rel_tol=1e-3)
