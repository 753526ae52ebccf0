"""The decision study on a local Ray cluster: the same results as the serial study, resuming, thread counts."""

import os
from dataclasses import replace

import pytest

ray = pytest.importorskip("ray", reason="the study's --ray needs Ray: pip install -e '.[ray]'")

from budget.study.ray_cells import task_options  # noqa: E402
from budget.study.report import read_results  # noqa: E402
from budget.study.run import quick_study, run_study  # noqa: E402

KEYS = ("policy", "budget", "seed", "spent_annotate_usd", "spent_distill_usd", "spent_baseline_usd", "unspent_usd",
        "rounds", "final_test")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False)  # a local cluster: 2 cells at a time on 2 cores
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def studies(tmp_path_factory, cluster):
    """A sub-grid of the quick study (2 policies, 1 budget, 1 seed, 1 regime) run serially and through Ray."""
    base = tmp_path_factory.mktemp("study-ray")
    serial = replace(quick_study(base), policies=("annotate", "split:0.5"), budgets=("8",), seeds=(0,),
                     regimes=("cheap",), out=base / "serial")
    on_ray = replace(serial, out=base / "ray")
    run_study(serial, progress=False)
    run_study(on_ray, progress=False, ray_address="local")
    return serial, on_ray


def _rows(out):
    return sorted((tuple(r[k] for k in KEYS) for r in read_results(out / "results.csv")), key=str)


def test_a_study_through_ray_writes_the_same_results_as_the_serial_study(studies):
    serial, on_ray = (s.out for s in studies)
    assert len(_rows(on_ray)) == 2
    assert _rows(on_ray) == _rows(serial)
    for policy in ("annotate", "split-0.5"):
        cell = on_ray / "cells" / "keywords" / "cheap" / "usd8" / "seed0" / policy
        assert (cell / "cell.json").is_file() and (cell / "ledger.sqlite").is_file()  # its own run folder
    assert any((on_ray / "phase-cache").iterdir())  # the cells' steps went to the study's shared cache
    assert (on_ray / "summary.md").read_text().count("| annotate |") == 1


def test_a_ray_study_run_again_runs_only_the_unfinished_cells(studies):
    _, study = studies
    cells = study.out / "cells" / "keywords" / "cheap" / "usd8" / "seed0"
    kept = (cells / "split-0.5" / "cell.json").stat().st_mtime_ns
    (cells / "annotate" / "cell.json").unlink()  # as if the study was killed before this cell returned
    before = _rows(study.out)
    results = run_study(study, progress=False, ray_address="local")
    assert (cells / "split-0.5" / "cell.json").stat().st_mtime_ns == kept  # read back, not run again
    assert (cells / "annotate" / "cell.json").is_file()  # resumed from its ledger and saved again
    assert len(results) == 2 and _rows(study.out) == before


def test_a_cell_task_runs_with_as_many_threads_as_cpus_it_reserved(cluster):
    def threads():
        import torch

        return os.environ["OMP_NUM_THREADS"], torch.get_num_threads()

    assert ray.get(ray.remote(threads).options(**task_options(2)).remote()) == ("2", 2)


def test_a_failed_cell_is_named_once_the_others_are_saved(cluster, tmp_path):
    from budget.study.cells import Cell
    from budget.study.ray_cells import _collect

    def boom():
        raise ValueError("no labels left")

    cell = Cell("keywords", tmp_path / "project.toml", "cheap", "8", 0, "annotate")
    with pytest.raises(RuntimeError, match=r"1 of 1 cells failed \(first: keywords/cheap/usd8/seed0/annotate: "
                                           r"ValueError: no labels left\); .* run the study again"):
        _collect(ray, {ray.remote(boom).remote(): cell}, tmp_path, progress=False, total=1, finished=0)
