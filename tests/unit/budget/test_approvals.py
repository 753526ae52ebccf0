"""A project lead approves or rejects each annotation batch before money is spent."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from budget.approvals import proposal_lines
from budget.controller.cli import cli
from budget.ledger import Ledger
from budget.ledger.records import BatchRecord
from budget.ledger.round_records import BatchPayload
from tests.utils.projects import write_tiny_project


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture
def project(tmp_path, models_dir):
    # Every batch needs a lead: nothing is cheaper than $0.
    return write_tiny_project(tmp_path, models_dir=models_dir, policy="annotate",
                              overrides={"annotation": {"auto_approve_under": "0"}})


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def platform_tasks(run_dir: Path) -> dict:
    path = run_dir / "simulated-platform.json"
    return json.loads(path.read_text())["tasks"] if path.exists() else {}


def test_nothing_is_pushed_before_approval_and_money_is_reserved(project, tmp_path):
    run_dir = tmp_path / "run"
    result = invoke("--spend", "40", "--config", project, "--run-dir", run_dir, "--quiet")
    assert result.exit_code == 0, result.output
    assert "waits for approval" in result.output and "python -m budget.controller approve" in result.output
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (batch,) = ledger.batches("proposed")
        assert ledger.totals().reserved >= batch.total_micro == 30 * 500_000
        assert ledger.events("pushed") == []
    assert platform_tasks(run_dir) == {}
    listing = invoke("proposals", "--run-dir", run_dir)
    assert f"{batch.batch_id} (round 1): 30 items x $0.50 x 1 annotators = $15.00" in listing.output
    assert "money left: $40.00 before, $25.00 after" in listing.output
    assert "why: annotate-only policy" in listing.output


def test_approval_given_while_not_running_is_honoured_once(project, tmp_path):
    run_dir = tmp_path / "run"
    invoke("--spend", "20", "--config", project, "--run-dir", run_dir, "--quiet")
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        batch_id = ledger.batches("proposed")[0].batch_id
    first = invoke("approve", batch_id, "--run-dir", run_dir, "--by", "alice")
    second = invoke("approve", batch_id, "--run-dir", run_dir, "--by", "bob")
    assert first.exit_code == 0 and "Approved" in first.output and "by alice" in first.output
    assert second.exit_code == 0 and "already approved; nothing changed" in second.output
    resumed = invoke("--run-dir", run_dir, "--quiet", "--max-rounds", "1")
    assert resumed.exit_code == 0, resumed.output
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (approval,) = ledger.approvals(batch_id)
        assert (approval.decision, approval.by) == ("approved", "alice") and approval.at
        assert ledger.batch(batch_id).state == "done"
        assert len(ledger.events("pushed")) == 1
    assert len(platform_tasks(run_dir)) == 30  # pushed once, every item once


def test_rejection_releases_the_money_and_is_recorded(project, tmp_path):
    run_dir = tmp_path / "run"
    invoke("--spend", "40", "--config", project, "--run-dir", run_dir, "--quiet")
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        rejected = ledger.batches("proposed")[0]
        before = ledger.totals()
    result = invoke("reject", rejected.batch_id, "--run-dir", run_dir, "--by", "carol", "--why", "off-topic items")
    assert result.exit_code == 0 and "Its $15.00 is released." in result.output
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        after = ledger.totals()
        (decision,) = ledger.approvals(rejected.batch_id)
    # The whole reservation comes back: the labels' $15.00 and the student retraining held with them.
    assert after.available - before.available == before.reserved >= rejected.total_micro
    assert after.reserved == 0 and after.spent == before.spent
    assert (decision.decision, decision.by, decision.why) == ("rejected", "carol", "off-topic items")
    # The next run proposes other items, not the rejected ones again at once.
    invoke("--run-dir", run_dir, "--quiet")
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (proposed,) = ledger.batches("proposed")
    assert not set(proposed.payload.item_ids) & set(rejected.payload.item_ids)
    assert platform_tasks(run_dir) == {}


def test_deciding_an_unknown_or_decided_batch_is_a_clear_error(project, tmp_path):
    run_dir = tmp_path / "run"
    invoke("--spend", "20", "--config", project, "--run-dir", run_dir, "--quiet")
    missing = invoke("approve", "nope", "--run-dir", run_dir)
    assert missing.exit_code == 2 and "Batch 'nope' not found" in missing.output
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        batch_id = ledger.batches("proposed")[0].batch_id
    invoke("reject", batch_id, "--run-dir", run_dir, "--why", "no")
    late = invoke("approve", batch_id, "--run-dir", run_dir)
    assert late.exit_code == 2 and f"Batch {batch_id} is already rejected" in late.output


def test_small_batches_pass_under_the_auto_approval_limit(project, tmp_path):
    run_dir = tmp_path / "run"
    result = invoke("--spend", "20", "--config", project, "--run-dir", run_dir, "--quiet", "--max-rounds", "2",
                    "--auto-approve-under", "100")
    assert result.exit_code == 0, result.output
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (batch,) = ledger.batches()
        assert batch.state == "done" and ledger.approvals(batch.batch_id)[0].by == "auto"


def test_compute_above_the_limit_waits_for_approval(tmp_path, models_dir):
    project = write_tiny_project(tmp_path, models_dir=models_dir, policy="distill",
                                 overrides={"policy": {"approve_compute_over": "0"}})
    run_dir = tmp_path / "run"
    result = invoke("--spend", "20", "--config", project, "--run-dir", run_dir, "--quiet")
    assert "waits for approval" in result.output
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (batch,) = ledger.batches("proposed")
    assert batch.payload.is_compute and batch.batch_id.endswith("-compute")
    invoke("approve", batch.batch_id, "--run-dir", run_dir, "--by", "dana")
    assert invoke("--run-dir", run_dir, "--quiet").exit_code == 0
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        assert ledger.batch(batch.batch_id).state == "done"
        assert [r.arm for r in ledger.rounds()] == ["baseline", "distill"]


def test_a_nearly_free_distillation_is_proposed_without_a_meaningless_rate():
    # The policy's estimate of a $0.0002 distillation is 1.19e+06 points per $100: the lead sees the reason.
    why = "compute is nearly free here: distillation runs whenever new labels arrive"
    payload = BatchPayload(item_ids=(), why=why, available_before_micro=20_000_000, available_after_micro=19_999_800,
                           estimates={"annotate": 3.2, "distill": 1.19e6}, kind="compute", purpose="distillation")
    rec = BatchRecord("r3-compute", 3, 7, "proposed", payload, 0, 1, 200, None, "", "")
    lines = proposal_lines(rec)
    assert lines[0] == "r3-compute (round 3): compute: distillation, $0.0002"
    assert lines[2] == f"  why: {why}" and not any("e+" in line for line in lines)
