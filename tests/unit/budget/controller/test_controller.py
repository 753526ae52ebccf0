"""The controller end to end on tiny models: each policy, resuming after SIGKILL, and bad input."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from budget.config import load_config
from budget.controller import Controller
from budget.controller.cli import cli
from budget.controller.views import train_dev_sizes
from budget.decision import Decision
from budget.ledger import Ledger
from budget.ledger.round_records import RoundPlan, RoundSummary
from budget.money import to_micro
from budget.runfolder import best_student_round
from tests.utils.projects import write_tiny_project
from tests.utils.tiny_models import LABELS


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-models")


def run(args):
    result = CliRunner().invoke(cli, [*args, "--quiet"], catch_exceptions=False)
    return result


def ledger_of(run_dir) -> Ledger:
    return Ledger(Path(run_dir) / "ledger.sqlite")


@pytest.mark.parametrize("policy", ["annotate", "distill", "split:0.5", "adaptive"])
def test_each_policy_spends_within_the_cap_and_reports(policy, tmp_path, models_dir):
    project = write_tiny_project(tmp_path, models_dir=models_dir)
    result = run(["--spend", "40", "--config", str(project), "--run-dir", str(tmp_path / "run"), "--policy", policy])
    assert result.exit_code == 0, result.output
    assert "Report:" in result.output
    with ledger_of(tmp_path / "run") as ledger:
        totals = ledger.totals()
        arms = [r.arm for r in ledger.rounds()]
        by_arm = ledger.spent_by_arm()
    assert totals.granted == 40_000_000 and totals.reserved == 0
    assert 0 < totals.spent <= totals.granted
    assert arms[0] == "baseline"
    if policy == "annotate":
        assert set(arms[1:]) == {"annotate"} and by_arm["annotate"] > 35_000_000
    elif policy == "distill":
        assert arms[1:] == ["distill"] and "annotate" not in by_arm
    else:
        assert {"annotate", "distill"} <= set(arms)
    report = tmp_path / "run" / "report"
    assert (report / "score_vs_dollars.png").stat().st_size > 10_000
    assert "| round | arm | spent |" in (report / "report.md").read_text()


def test_simulated_annotators_error_and_skip_rates_match_their_settings(tmp_path, models_dir):
    noisy = {"prices": {"overlap": 3}, "annotation": {"batch_size": 60},
             "annotators": {"error_rate": 0.2, "skip_rate": 0.1}}
    project = write_tiny_project(tmp_path, models_dir=models_dir, n=900, overrides=noisy)
    result = run(["--spend", "300", "--config", str(project), "--run-dir", str(tmp_path / "run"),
                  "--policy", "annotate", "--max-rounds", "5"])
    assert result.exit_code == 0, result.output
    data = [json.loads(line) for line in (tmp_path / "data.jsonl").read_text().splitlines()]
    from annotation.pool import TaskSpec, load_pool

    pool = load_pool(TaskSpec(name="k", data=tmp_path / "data.jsonl", labels=LABELS))
    gold = {pool.item_hash(i): data[i]["label"] for i in range(len(pool))}
    with ledger_of(tmp_path / "run") as ledger:
        rows = ledger.labels()
    answered = [r for r in rows if r.label is not None]
    skip_rate = 1 - len(answered) / len(rows)
    error_rate = sum(r.label != gold[r.external_id.rsplit("-", 1)[-1]] for r in answered) / len(answered)
    assert len(rows) >= 600  # 4 batches x 60 items x 3 annotators, minus the last short one
    assert abs(error_rate - 0.2) < 0.05, error_rate  # 4 standard errors at n ~ 600
    assert abs(skip_rate - 0.1) < 0.04, skip_rate


def _summary(run_dir):
    with ledger_of(run_dir) as ledger:
        t = ledger.totals()
        batches = [(b.state, b.payload.item_ids) for b in ledger.batches()]
        return (t.granted, t.spent, t.reserved), batches, [r.arm for r in ledger.rounds()]


def test_run_killed_mid_round_resumes_to_the_same_ledger_and_batches(adaptive_reference, tmp_path):
    # the uninterrupted run of the same command is the shared reference (tests/unit/budget/conftest.py)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[4])}
    command = [sys.executable, "-m", "budget.controller", *adaptive_reference.command(tmp_path / "killed")]

    # Kill the run with SIGKILL from outside as soon as round 2 has started (inside the round).
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("round 2:"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with ledger_of(tmp_path / "killed") as ledger:
        assert ledger.rounds()[-1].state == "started"  # it died inside the round
    spend = command.index("--spend")
    resume = command[:spend] + command[spend + 2:]  # as a person resumes: the same command, no new grant
    resumed = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    whole = _summary(adaptive_reference.run_dir)
    assert _summary(tmp_path / "killed") == whole
    platform = json.loads((tmp_path / "killed" / "simulated-platform.json").read_text())
    assert len(platform["tasks"]) == sum(len(ids) for _, ids in whole[1])  # none pushed twice


@pytest.mark.parametrize(("args", "message"), [
    (["--spend", "-5"], "Error: --spend '-5': The amount must be more than $0"),
    (["--spend", "lots"], "Error: --spend 'lots': Not a dollar amount: 'lots'"),
    (["--spend", "0.10"], "Error: Budget $0.10 is too small for one label ($0.50 per item with overlap 1); "
                          "spend at least $0.50."),
    (["--spend", "10", "--policy", "greedy"], "Error: Unknown policy 'greedy'"),
    (["--spend", "0.0000001"], "Error: --spend '0.0000001': '0.0000001' is less than one micro-dollar ($0.000001), "
                               "the smallest amount the ledger keeps; give at least 0.000001."),
    (["--spend", "10", "--add", "5"], "Error: Give --spend (the run's budget) or --add (more money), not both."),
])
def test_bad_spend_or_policy_is_one_line_exit_2_and_writes_nothing(args, message, tmp_path, models_dir):
    project = write_tiny_project(tmp_path, models_dir=models_dir)
    result = run([*args, "--config", str(project), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.output.startswith(message) and result.output.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace('data = "data.jsonl"', 'data = "missing.jsonl"'), "Data file"),
    (lambda t: t.replace('[task]', '[task]\ntext_fields = ["body"]'), "'body'"),
    (lambda t: t.replace('labels = ["sports", "music", "weather"]', 'labels = ["sports", "music"]'), "'weather'"),
    (lambda t: t.replace('per_label = "0.50"', 'per_label = 0.5'), "money is never a binary float"),
    (lambda t: t.replace("[annotation]", "[annotation]\ncolour = 1"), "Unknown key(s) ['colour'] in [annotation]"),
])
def test_bad_project_file_is_one_line_exit_2_and_writes_nothing(edit, message, tmp_path, models_dir):
    project = write_tiny_project(tmp_path, models_dir=models_dir)
    project.write_text(edit(project.read_text()))
    result = run(["--spend", "10", "--config", str(project), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and message in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_missing_project_file_is_named(tmp_path):
    result = run(["--spend", "10", "--config", str(tmp_path / "nope.toml"), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.output == f"Error: Project file '{tmp_path / 'nope.toml'}' not found; pass --config with an " \
                            "existing TOML file.\n"


def test_dry_run_prints_both_arms_and_spends_nothing(tmp_path, models_dir):
    project = write_tiny_project(tmp_path, models_dir=models_dir)
    result = run(["--spend", "40", "--config", str(project), "--run-dir", str(tmp_path / "run"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "annotate: a batch of 30 items costs $15.00" in result.output
    assert "distill: teacher + soft labels on" in result.output and "Dry run: nothing was spent." in result.output
    assert not (tmp_path / "run").exists()


def test_status_and_report_read_an_existing_run(tmp_path, models_dir):
    project = write_tiny_project(tmp_path, models_dir=models_dir)
    run(["--spend", "20", "--config", str(project), "--run-dir", str(tmp_path / "run"), "--policy", "annotate"])
    status = CliRunner().invoke(cli, ["status", "--run-dir", str(tmp_path / "run")])
    assert status.exit_code == 0 and status.output.startswith("granted $20.00")
    assert "round 0: baseline done" in status.output
    report = CliRunner().invoke(cli, ["report", "--run-dir", str(tmp_path / "run")])
    assert report.exit_code == 0 and "# What the money bought (accuracy, 0-100)" in report.output
    missing = CliRunner().invoke(cli, ["status", "--run-dir", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "No run in" in missing.output


def _granted(run_dir) -> int:
    with ledger_of(run_dir) as ledger:
        return ledger.totals().granted


def test_the_same_spend_command_after_a_crash_resumes_without_granting_again(tmp_path, models_dir):
    project = write_tiny_project(tmp_path, models_dir=models_dir)
    args = ["--spend", "40", "--config", str(project), "--run-dir", str(tmp_path / "run"), "--policy", "annotate"]
    # the first process ended after one round (the kill-resume test kills for real); the same command again
    assert run([*args, "--max-rounds", "1"]).exit_code == 0
    again = run(args)
    assert again.exit_code == 0, again.output
    assert _granted(tmp_path / "run") == 40_000_000
    assert "Stopped" in again.output
    # a third time, after the run ended: nothing added, nothing run, still exit 0
    third = run(args)
    assert third.exit_code == 0 and _granted(tmp_path / "run") == 40_000_000
    # a bigger budget raises it to that total; --add adds; a smaller budget adds nothing and says so
    assert run([*args[2:], "--spend", "45", "--max-rounds", "0"]).exit_code == 0
    assert _granted(tmp_path / "run") == 45_000_000
    assert run([*args[2:], "--add", "5", "--max-rounds", "0"]).exit_code == 0
    assert _granted(tmp_path / "run") == 50_000_000
    lower = run([*args[2:], "--spend", "20", "--max-rounds", "0"])
    assert lower.exit_code == 0 and "already has a budget of $50.00, more than --spend $20.00" in lower.output
    assert _granted(tmp_path / "run") == 50_000_000


def test_a_finished_run_with_too_little_left_for_a_batch_resumes_to_a_clean_stop(tmp_path, models_dir):
    project = write_tiny_project(tmp_path, models_dir=models_dir)
    args = ["--config", str(project), "--run-dir", str(tmp_path / "run"), "--policy", "annotate"]
    assert run([*args, "--spend", "40.25"]).exit_code == 0
    with ledger_of(tmp_path / "run") as ledger:
        assert ledger.totals().available < 7 * 500_000  # less than the smallest batch (7 labels at $0.50)
    resumed = run(args)
    assert resumed.exit_code == 0, resumed.output
    assert "Stopped" in resumed.output


def test_run_folder_keeps_the_best_and_latest_models_and_prune_shrinks_an_old_one(tmp_path, models_dir):
    project = write_tiny_project(tmp_path, models_dir=models_dir, overrides={"models": {"keep": "all"}})
    run_dir = tmp_path / "run"
    assert run(["--spend", "40", "--config", str(project), "--run-dir", str(run_dir), "--policy", "adaptive"]
               ).exit_code == 0
    assert not list(run_dir.rglob("ckpt.pt"))  # no finished phase keeps its resume checkpoint
    with ledger_of(run_dir) as ledger:
        rounds = [r for r in ledger.rounds() if r.summary.student]
        best = best_student_round(ledger.rounds())  # best on the run's current dev set
        teachers = [r.round for r in ledger.rounds() if r.arm == "distill"]
    students = sorted(p.parent.name for p in run_dir.glob("models/*/student"))
    assert len(students) == len(rounds) >= 4  # keep = "all"

    status = CliRunner().invoke(cli, ["status", "--run-dir", str(run_dir)])
    assert status.exit_code == 0 and "run folder: " in status.output and " MB in " in status.output
    pruned = CliRunner().invoke(cli, ["prune", str(run_dir)])
    assert pruned.exit_code == 0 and "freed" in pruned.output, pruned.output
    kept = sorted(p.parent.name for p in run_dir.glob("models/*/student"))
    # the best, the latest, and the latest of each kind (the next round of that kind is compared with it): a
    # label-only student, or one descending from a distillation (a distilled student refined on labels is one)
    latest_of_kind = {[r.round for r in rounds if r.distilled == d][-1] for d in (False, True)}
    assert kept == sorted({f"round-{n:03d}" for n in {best, rounds[-1].round, *latest_of_kind}})
    assert [p.parent.name for p in run_dir.glob("models/*/teacher")] == [f"round-{teachers[-1]:03d}"]
    # the pruned run still resumes and reports
    assert run(["--run-dir", str(run_dir), "--config", str(project), "--policy", "adaptive"]).exit_code == 0
    bad = CliRunner().invoke(cli, ["prune", str(run_dir), "--keep", "0"])
    assert bad.exit_code == 2 and "--keep '0': it must be an int >= 1" in bad.output


@pytest.mark.parametrize("kind", ["corrupt", "foreign"])
def test_a_corrupt_or_foreign_ledger_is_one_line_exit_2_and_left_as_it_was(kind, tmp_path, models_dir):
    import sqlite3

    project = write_tiny_project(tmp_path, models_dir=models_dir)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = run_dir / "ledger.sqlite"
    if kind == "corrupt":
        path.write_bytes(b"this is not an sqlite file at all" * 100)
    else:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    before = path.read_bytes()
    for args in (["--spend", "10", "--config", str(project), "--run-dir", str(run_dir)],
                 ["status", "--run-dir", str(run_dir)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert result.output.startswith(f"Error: '{path}' is ") and result.output.count("\n") == 1
        assert "move it away or point --run-dir at another folder" in result.output
    assert path.read_bytes() == before


def test_the_policy_sees_what_a_distillation_would_cost_after_each_size_of_the_next_batch(tmp_path, models_dir):
    # the fixed part of a distillation jumps up and down with the labels (a minimum of training steps over
    # epochs whose last batch is part full): the policy keeps back what it costs after the batch it buys
    project = write_tiny_project(tmp_path, policy="adaptive", overrides={"models": {"min_steps": 40}})
    with Controller(load_config(project), tmp_path / "run", progress=False, say=lambda _: None) as run:
        run.fund(to_micro("5"))
        run.run(max_rounds=1)
        snap = run.ctx.snapshot()
        state = run.policy_state(snap)
        costs = run.cost_model(pool=state.n_unlabeled)
        after = [costs.distill_fixed(*train_dev_sizes(run.config, snap.n_labels + b))
                 for b in range(state.batch_size + 1)]
    assert state.distill_fixed_cost_micro == after[0]
    assert state.distill_fixed_after_micro == tuple(after[1:])
    assert len(set(after)) > 1  # the estimate moves with the labels, so the look-ahead matters
    b = state.batch_size
    assert state.distill_cost(100, after=b) == after[b] + state.distill_cost(100) - after[0]


def test_a_distillation_cut_short_by_money_does_not_correct_the_next_estimate(tmp_path, models_dir):
    # the next distillation's estimate is scaled by what finished ones cost against their raw estimates; one whose
    # teacher stopped where its soft labels' and student's money began cost what the money allowed, not what its
    # training needed, and would pull the correction down
    project = write_tiny_project(tmp_path, policy="adaptive", models_dir=models_dir)
    with Controller(load_config(project), tmp_path / "run", progress=False, say=lambda _: None) as run:
        run.fund(to_micro("5"))
        run.run(max_rounds=1)  # the baseline
        for rnd, cost, summary in ((1, 2000, {}), (2, 1100, {"teacher_stopped": "budget"}),
                                   (3, 900, {"stopped": "budget"})):
            run.ledger.start_round(rnd, "distill", RoundPlan(Decision("distill", 10, 1000), 1000, 1000.0))
            run.ledger.finish_round(rnd, RoundSummary(n_labels=40, compute_micro=cost, **summary))
        correction = run.cost_model().distill_correction
    assert correction == pytest.approx(2.0)  # the one distillation that ran to its end: twice its estimate


def test_a_run_started_with_a_relative_run_dir_resumes_from_another_working_directory(tmp_path, models_dir,
                                                                                      monkeypatch):
    # the ledger names the run's models by path: a run started as `--run-dir run` in one folder and resumed by its
    # full path from another finds its students (the next round compares its student with the last one)
    project = write_tiny_project(tmp_path, policy="annotate", models_dir=models_dir)
    monkeypatch.chdir(tmp_path)
    with Controller(load_config(project), Path("run"), progress=False, say=lambda _: None) as first:
        first.fund(to_micro("40"))
        first.run(max_rounds=2)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with Controller(load_config(project), tmp_path / "run", progress=False, say=lambda _: None) as resumed:
        outcome = resumed.run(max_rounds=1)
        rounds = [r for r in resumed.ledger.rounds() if r.state == "done"]
    assert len(rounds) == 3, outcome and rounds[-1].summary.prev_dev is not None  # compared with the student before it
    assert all(Path(r.summary.student).is_absolute() for r in rounds)
