"""A study's final students trained again with other seeds: the run's own is reproduced, the summary uses the mean."""

import shutil
import statistics
from pathlib import Path

import pytest

from budget.config import ConfigError, load_config
from budget.controller import Controller
from budget.money import to_micro
from budget.policy import Decision, Policy, PolicyState
from budget.round.compute_steps import compute_steps
from budget.round.results import StudentResult
from budget.study import reseed as study_reseed
from budget.study.report import read_results
from budget.study.reseed import reseeded_tests
from budget.study.run import Study, load_study, run_study
from budget.study.tiny import write_tiny_project
from modeling.train import train
from tests.utils.scripted import RefineScript


@pytest.fixture(scope="module")
def reseeded(tmp_path_factory):
    root = tmp_path_factory.mktemp("reseed")
    project = write_tiny_project(root / "task", n=400, overrides={
        "split": {"seed_size": 60, "test_size": 120}, "prices": {"per_label": "0.10"},
        "annotation": {"batch_size": 25}, "policy": {"teacher_ensemble": 1}})
    study = Study(projects=(project,), policies=("annotate", "distill", "adaptive"), budgets=("8",), seeds=(0,),
                  regimes=("cheap",), out=root / "study", student_seeds=3)
    return study, run_study(study, progress=False)


def test_each_final_student_is_trained_with_every_seed_and_the_run_s_own_comes_first(reseeded):
    _, results = reseeded
    assert {r.policy for r in results} == {"annotate", "distill", "adaptive"}
    for r in results:
        assert len(r.final_tests) == 3, r.policy
        # the first is the run's own student trained again with the run's seed on the same data: the same model
        assert r.final_tests[0] == pytest.approx(r.final_test, abs=1e-9), r.policy
        assert all(0.0 <= t <= 1.0 for t in r.final_tests)


def test_the_summary_compares_policies_on_the_mean_over_training_seeds(reseeded):
    study, results = reseeded
    rows = read_results(study.out / "results.csv")
    assert {r["policy"]: r["final_tests"] for r in rows} == {
        r.policy: [round(t, 4) for t in r.final_tests] for r in results}
    summary = (study.out / "summary.md").read_text()
    assert "each the mean of 3 training seeds" in summary
    for r in results:  # one seed: the table's mean is that cell's mean over its training seeds
        assert f"| {r.policy} | {100 * statistics.fmean(r.final_tests):.1f} ± 0.0 |" in summary


def test_student_seeds_below_one_is_a_one_line_error_naming_the_key(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('[study]\nprojects = ["p.toml"]\nbudgets = ["10"]\nstudent_seeds = 0\n')
    with pytest.raises(ConfigError, match=r"^\[study\] student_seeds must be an int >= 1 .*got 0\."):
        load_study(path)


@pytest.mark.parametrize("keep", ["all", 1])
def test_a_refined_final_student_is_trained_again_from_the_student_it_started_from(tmp_path, keep):
    # labels, a distillation, labels that refine it: the final student started from the distilled one. A study
    # cell with student_seeds keeps every model (keep = "all") so that start is still there to train from;
    # with the default keep it is pruned (unless it is the run's best on dev, which the float sums of the tiny
    # run's trainings decide: it is with OMP_NUM_THREADS=2, not with 1) and the cell keeps its one training.
    project = write_tiny_project(tmp_path / "task", overrides={
        "split": {"test_size": 120}, "models": {"keep": keep}})
    with Controller(load_config(project), tmp_path / "run", progress=False, say=lambda _: None) as run:
        run.policy = RefineScript()
        run.fund(to_micro("40"))
        run.run()
        final = [r for r in run.ledger.rounds() if r.state == "done"][-1]
        assert final.summary.refined
        start = next(s.refined_from for s in compute_steps(run.ledger, final.round)
                     if isinstance(s, StudentResult) and s.refined_from)
        assert keep == 1 or Path(start).exists()  # a study cell's keep = "all" never prunes it
        if Path(start).exists():
            tests = reseeded_tests(run.ctx, 2)
            assert len(tests) == 2 and tests[0] == pytest.approx(final.summary.test, abs=1e-9)
        if keep == 1:
            shutil.rmtree(start, ignore_errors=True)  # what pruning does to a start that is not the best
            assert reseeded_tests(run.ctx, 2) == ()


class _DistillAllThatIsLeft(Policy):
    """The baseline, then one distillation given all the money left, which falls short of what it needs."""

    def decide(self, state: PolicyState) -> Decision:
        if [r.arm for r in state.rounds] == ["baseline"]:
            d = self._distill(state, state.available_micro, "a distillation")
            return Decision("distill", d.n_items, state.available_micro, d.reason, d.estimates, d.teachers)
        return Decision("stop", reason="done")


def test_a_final_student_the_money_cut_short_is_trained_again_with_the_same_money(tmp_path, monkeypatch):
    # the run's last distillation ran out of money part-way through the student's training: the run bought
    # that cut-short student, so each seed is stopped where the run's was, not trained to the end
    trainings = []

    def recorded(*args, **kwargs):
        trainings.append(train(*args, **kwargs))
        return trainings[-1]

    monkeypatch.setattr(study_reseed, "train", recorded)
    project = write_tiny_project(tmp_path / "task", overrides={
        "split": {"test_size": 120}, "policy": {"teacher_ensemble": 1}})
    with Controller(load_config(project), tmp_path / "run", progress=False, say=lambda _: None) as run:
        run.policy = _DistillAllThatIsLeft()
        run.fund(650)  # micro-dollars: the baseline and the teacher, and part of the student's distillation
        run.run()
        final = [r for r in run.ledger.rounds() if r.state == "done"][-1]
        student = run.ledger.step_result(f"round-{final.round}:student")
        assert final.arm == "distill" and student["stopped"] == "budget"
        tests = reseeded_tests(run.ctx, 2)
    assert len(tests) == 2 and tests[0] == pytest.approx(final.summary.test, abs=1e-9)
    assert [t.stopped for t in trainings] == ["budget", "budget"]
    ran = next(p for p in student["phases"] if p["name"] == "student_distill")
    assert trainings[0].phase.examples == ran["examples"]  # the run's own seed: the very same steps
