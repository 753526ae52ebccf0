"""A compute phase that needs more than its estimate asks the ledger for more; at the cap it stops cleanly."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from budget.controller.cli import cli
from budget.costs import CostModel
from budget.ledger import Ledger
from tests.utils.projects import write_tiny_project

# Compute priced 100x the tiny project's usual reference so that a distillation costs cents.
DEAR = {"prices": {"reference_gpu_hour": "2000000.00"}}


@pytest.fixture
def underestimated(monkeypatch):
    """Every distillation estimated at a few micro-dollars, far below what it really costs."""
    monkeypatch.setattr(CostModel, "distill_fixed", lambda self, n_train, n_eval: 3)
    monkeypatch.setattr(CostModel, "distill_per_1000", lambda self, n_train: 1)


def _run(project, run_dir, spend):
    return CliRunner().invoke(cli, ["--spend", spend, "--config", str(project), "--run-dir", str(run_dir),
                                    "--policy", "distill", "--quiet"], catch_exceptions=False)


def test_a_distillation_that_needs_more_than_it_reserved_completes_on_extended_money(tmp_path, underestimated):
    project = write_tiny_project(tmp_path, overrides=DEAR)
    result = _run(project, tmp_path / "run", "40")
    assert result.exit_code == 0, result.output
    with Ledger(Path(tmp_path / "run") / "ledger.sqlite") as ledger:
        distill = ledger.rounds()[-1]
        (res,) = ledger.reservations(arm="distill")
        extensions = [e for e in ledger.entries(res.id) if e.kind == "reserve" and e.note.startswith("more for")]
        totals = ledger.totals()
    assert distill.arm == "distill" and distill.state == "done"
    assert not distill.summary.stopped_at_cap and distill.summary.dev is not None
    assert res.amount_micro < 10 < res.settled_micro  # reserved a few micro-dollars, spent far more
    assert extensions and res.settled_micro <= res.reserved_micro
    assert totals.reserved == 0 and totals.spent <= totals.granted


def test_at_the_cap_the_phase_stops_cleanly_keeps_its_model_and_the_run_exits_0(tmp_path, underestimated):
    project = write_tiny_project(tmp_path, overrides=DEAR)
    result = _run(project, tmp_path / "run", "0.03")
    assert result.exit_code == 0, result.output
    assert "stopped early at the cap" in result.output
    with Ledger(Path(tmp_path / "run") / "ledger.sqlite") as ledger:
        totals = ledger.totals()
        rounds = ledger.rounds()
        overruns = ledger.events("compute_overrun")
    assert totals.granted == 30_000 and totals.reserved == 0 and totals.spent <= totals.granted
    assert totals.available < 1_000  # the cap was truly reached
    assert all(r.state == "done" for r in rounds) and rounds[-1].summary.stopped_at_cap
    assert not overruns
    # resuming the finished run is a clean stop, not an error
    again = _run(project, tmp_path / "run", "0.03")
    assert again.exit_code == 0, again.output
