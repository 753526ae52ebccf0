"""The decision study: ``python -m budget.study``, a grid of simulated controller runs and their summary.

Every cell of the grid (task x compute-price regime x budget x seed x policy) is a real controller
run: the same code path, ledger, simulated annotators and models as ``python -m budget.controller``,
in its own run folder under the study folder. A finished cell leaves ``cell.json``; running the study
again skips it, and a cell killed half-way resumes from its ledger. Then the study writes
``results.csv`` (a row per cell), ``summary.md`` (per task x regime x budget: each policy's mean and
spread over seeds, the best fixed policy in hindsight, adaptive's regret, the dollars each policy
needed to reach the best annotate-only score) and ``score_vs_budget.png``.

A study file (TOML) names the grid; project paths are taken from its folder::

    [study]
    projects = ["stanceosaurus.toml", "multipit.toml"]
    policies = ["annotate", "distill", "split:0.3", "split:0.6", "adaptive"]
    budgets = ["10", "25", "50"]        # dollars, as strings: money is never a binary float
    seeds = [0, 1]
    regimes = ["cheap", "paper"]         # cheap | batch | several | paper | llm | llm-local (regimes.py)
    student_seeds = 4                    # optional: each cell's final student trained with 4 seeds (default 1)

With ``student_seeds`` above one, each finished cell's final student is trained again with that many
training seeds on the same data (:mod:`budget.study.reseed`: a student on a hundred labels moves by 1-2
points with its seed alone), and the summary compares policies on the mean where every cell of a task x
regime x budget has one.

``python -m budget.study --quick`` needs no file: it writes a tiny task and tiny models into the
study folder and runs a small grid in a minute or two. ``--ray ADDRESS`` runs the cells as tasks on a
Ray cluster instead of one after another (``budget/study/ray_cells.py``). One cell's run and its ``cell.json``
are :mod:`budget.study.cells`.

The cells share finished compute steps through ``<study folder>/phase-cache`` (:mod:`budget.study.phase_cache`);
at the end the study prints its size, and ``--prune-cache-gb N`` removes its least recently used steps
until it holds at most N GB (a removed step is computed again if a later cell needs it). A study stops
before a cell, with its finished cells summarised, when the disk has less room left than the last cell
took: a cell that fills the disk dies half-way.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import click
from tqdm.auto import tqdm

from budget.cli_errors import InputError, OneLineCommand
from budget.config import ConfigError, ProjectConfig, load_config
from budget.controller import Controller
from budget.exceptions import UsageError
from budget.money import format_usd, parse_usd
from budget.policy import make_policy
from budget.runfolder import format_bytes
from budget.study.cells import Cell, CellResult, format_score, phase_cache, read_result, run_cell, write_result
from budget.study.regimes import REGIMES, in_regime, regime_scale
from budget.study.report import write_outputs

__all__ = ["Study", "load_study", "quick_study", "run_study"]


@dataclass(frozen=True)
class Study:
    """A grid of cells and the folder they run in."""

    projects: tuple[Path, ...]
    policies: tuple[str, ...]
    budgets: tuple[str, ...]
    seeds: tuple[int, ...]
    regimes: tuple[str, ...]
    out: Path
    student_seeds: int = 1

    def __post_init__(self) -> None:
        for name in self.policies:
            make_policy(name)  # ValueError naming the policy
        for name in self.regimes:
            if name not in REGIMES:
                raise ValueError(f"Unknown regime {name!r} in [study] regimes; choose {', '.join(REGIMES)}.")
        for budget in self.budgets:
            parse_usd(budget, positive=True)
        if isinstance(self.student_seeds, bool) or not isinstance(self.student_seeds, int) or self.student_seeds < 1:
            raise ValueError(f"[study] student_seeds must be an int >= 1 (training seeds of each cell's final "
                             f"student); got {self.student_seeds!r}.")
        if not (self.projects and self.policies and self.budgets and self.seeds and self.regimes):
            raise ValueError("[study] needs at least one each of projects, policies, budgets, seeds and regimes.")

    def cells(self, tasks: dict[Path, str]) -> list[Cell]:
        """Every cell, in the order they run: a whole pass of the first seed over every task before the next seed
        (a suite stopped part-way has whole seeds to compare), and within a seed all policies of a task, regime
        and budget together (they share the training steps of the labels they all buy), cheap budgets first."""
        return [Cell(tasks[p], p, regime, budget, seed, policy, self.student_seeds)
                for seed in self.seeds for p in self.projects for regime in self.regimes
                for budget in sorted(self.budgets, key=lambda b: parse_usd(b))
                for policy in self.policies]


def load_study(path: str | Path, out: str | Path | None = None) -> Study:
    """Read a study file; raise ConfigError with one line naming the key and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Study file '{path}' not found; pass an existing TOML file or --quick.")
    try:
        raw = tomllib.loads(path.read_text()).get("study")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Study file '{path}' is not valid TOML: {exc}.") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"Study file '{path}' has no [study] table.")
    allowed = {"projects", "policies", "budgets", "seeds", "regimes", "out", "student_seeds"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"Unknown key(s) {unknown} in [study] of {path}; allowed: {', '.join(sorted(allowed))}.")
    try:
        return Study(projects=tuple((path.parent / p).resolve() for p in raw.get("projects", [])),
                     policies=tuple(raw.get("policies", ["annotate", "distill", "split:0.5", "adaptive"])),
                     budgets=tuple(str(b) for b in raw.get("budgets", [])), seeds=tuple(raw.get("seeds", [0])),
                     regimes=tuple(raw.get("regimes", ["cheap"])),
                     out=Path(out or path.parent / raw.get("out", path.stem)),
                     student_seeds=raw.get("student_seeds", 1))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{exc} ({path})") from exc


def quick_study(out: Path) -> Study:
    """A small grid on a tiny task with tiny models, written into ``out`` (no files needed)."""
    from budget.study.tiny import write_tiny_project

    project = write_tiny_project(out / "quick-task", n=500, models_dir=out / "quick-task" / "models",
                                 overrides={"split": {"seed_size": 60, "test_size": 120},
                                            "prices": {"per_label": "0.10"},
                                            "annotation": {"batch_size": 25},
                                            # one teacher per distillation: three doubled the grid's time
                                            "policy": {"teacher_ensemble": 1}})
    return Study(projects=(project,), policies=("annotate", "distill", "split:0.5", "adaptive"),
                 budgets=("8", "16"), seeds=(0, 1), regimes=("cheap", "batch"), out=out)


def _scales(study: Study, configs: dict[Path, ProjectConfig]) -> dict[str, dict[str, dict[str, float]]]:
    """Each task's phase scale per regime, measured once on a probe run folder and kept in regimes.json."""
    path = study.out / "regimes.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    for config in configs.values():
        task = config.task.name
        missing = [r for r in study.regimes if r not in known.get(task, {})]
        if not missing:
            continue
        probe = Controller(config, study.out / "probes" / task, seed=0, policy="annotate", progress=False,
                           say=lambda _: None, model_cache_dir=study.out / ".model-cache").open()
        try:
            state = probe.policy_state(probe.ctx.snapshot())
            m = config.models
            for regime in missing:
                known.setdefault(task, {})[regime] = regime_scale(
                    regime, teacher_epochs=m.teacher_epochs, distill_epochs=m.distill_epochs,
                    distill_cost_micro=state.distill_cost(state.n_unlabeled),
                    batch_cost_micro=state.batch_size * state.label_cost_micro)
        finally:
            probe.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=1, sort_keys=True))
    return known


def run_study(study: Study, *, progress: bool = True, run: bool = True, selection: str | None = None,
              ray_address: str | None = None, ray_cpus_per_cell: int = 1,
              mixed_versions: bool = False) -> list[CellResult]:
    """Run every cell not finished yet, then write results.csv, summary.md and score_vs_budget.png.

    With ``run=False`` only the finished cells are summarised (a study still running, or stopped);
    ``selection`` overrides every project's ``[annotation] selection`` (to compare strategies at equal money).
    With ``ray_address`` ('auto', 'local' or a cluster's address) the unfinished cells run as Ray tasks of
    ``ray_cpus_per_cell`` CPUs each (:func:`budget.study.ray_cells.run_cells`); the study folder must then be on
    storage every node of the cluster sees, at the same path. The summary compares cells of one code version
    only, unless ``mixed_versions`` (:class:`budget.study.report.MixedVersionsError`).
    """
    if ray_address is not None and run:  # the cells run elsewhere: every path must mean the same there
        study = replace(study, out=study.out.resolve(), projects=tuple(p.resolve() for p in study.projects))
    configs = {p: load_config(p) for p in study.projects}
    if selection is not None:
        configs = {p: c.replace(annotation={"selection": selection}) for p, c in configs.items()}
    tasks = {p: c.task.name for p, c in configs.items()}
    scales = _scales(study, configs)
    cells = study.cells(tasks)
    if ray_address is not None and run:
        from budget.study.ray_cells import run_cells

        jobs = [(c, in_regime(configs[c.project], c.regime, scales[c.task][c.regime])) for c in cells]
        results = run_cells(study.out, jobs, address=ray_address, cpus_per_cell=ray_cpus_per_cell, progress=progress)
        write_outputs(results, study.out, scales, mixed_versions=mixed_versions)
        return results
    results: list[CellResult] = []
    bar = tqdm(total=len(cells), desc="study cells", unit="cell", disable=not progress)
    taken = 0  # bytes of disk the last cell run took (its run folder and what it added to the phase cache)
    for cell in cells:
        folder = study.out / "cells" / cell.folder
        done = folder / "cell.json"
        if done.exists():
            results.append(read_result(done))
        elif run:
            free = _free_bytes(study.out)
            if free < taken:  # the next cell is likely to fill the disk half-way: stop before it starts
                bar.close()
                write_outputs(results, study.out, scales, mixed_versions=mixed_versions)
                raise UsageError(f"Only {format_bytes(free)} of disk is free under {study.out}, and the last cell "
                                 f"took {format_bytes(taken)}: free space or prune the phase cache (--summary-only "
                                 "--prune-cache-gb N), then run the study again; its finished cells are kept.")
            config = in_regime(configs[cell.project], cell.regime, scales[cell.task][cell.regime])
            result = run_cell(cell, config, folder, study.out)
            write_result(done, result)
            results.append(result)
            taken = max(0, free - _free_bytes(study.out))
            bar.set_postfix_str(f"{cell.folder}: test {format_score(result.final_test)}")
        bar.update(1)
    bar.close()
    write_outputs(results, study.out, scales, mixed_versions=mixed_versions)
    return results


def _free_bytes(out: Path) -> int:
    """Free bytes on the disk that holds the study folder."""
    out.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(out).free


def _cache_line(out: Path, prune_gb: float | None) -> str:
    """One line on the study's phase cache: its size and folder, after pruning it to ``prune_gb`` GB if given."""
    cache = phase_cache(out)
    size = cache.size_bytes()
    if prune_gb is None:
        return f"Phase cache: {format_bytes(size)} in {cache.root} (--prune-cache-gb N keeps it to N GB)."
    freed = cache.prune(int(prune_gb * 1e9))
    return (f"Phase cache: {format_bytes(size - freed)} in {cache.root} "
            f"(pruned to {prune_gb:g} GB: {format_bytes(freed)} freed).")


@click.command(cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("study_file", required=False, type=click.Path(dir_okay=False))
@click.option("--quick", is_flag=True, help="A small grid on a tiny task and tiny models built here (no files).")
@click.option("--out", help="Study folder (default: the study file's [study] out, or study-quick with --quick).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--summary-only", is_flag=True, help="Summarise the finished cells; run nothing.")
@click.option("--selection", help="Override every project's [annotation] selection (e.g. disagreement).")
@click.option("--ray", "ray_address", metavar="ADDRESS",
              help="Run the cells as Ray tasks: 'auto' (the cluster this machine is in), 'local' (start one here) "
                   "or a cluster's address. The study folder must be on storage every node sees.")
@click.option("--ray-cpus-per-cell", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPUs a cell reserves on the cluster (its OMP_NUM_THREADS too).")
@click.option("--mixed-versions", is_flag=True,
              help="Summarise cells that ran at different code versions side by side (each row marked with its "
                   "versions); without it such a summary is refused.")
@click.option("--prune-cache-gb", type=click.FloatRange(min=0), metavar="FLOAT",
              help="At the end, remove the least recently used steps of the study's phase cache until it holds "
                   "at most this many GB (default: keep everything).")
def main(study_file: str | None, quick: bool, out: str | None, quiet: bool, summary_only: bool,
         selection: str | None, ray_address: str | None, ray_cpus_per_cell: int, mixed_versions: bool,
         prune_cache_gb: float | None) -> None:
    """Run a grid of simulated controller runs and measure every policy against the best fixed split.

    Example: python -m budget.study --quick
    """
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"
    if quick == bool(study_file):
        raise InputError("Give a study file or --quick (not both).")
    try:
        study = quick_study(Path(out or "study-quick")) if quick else load_study(study_file, out)
        started = time.monotonic()
        results = run_study(study, progress=not quiet, run=not summary_only, selection=selection,
                            ray_address=ray_address, ray_cpus_per_cell=ray_cpus_per_cell,
                            mixed_versions=mixed_versions)
    except (ConfigError, ValueError) as exc:
        raise InputError(str(exc).splitlines()[0]) from exc
    spent = sum(r.spent_micro for r in results)
    click.echo(f"{len(results)} cells ({format_usd(spent)} of simulated money) in {time.monotonic() - started:.0f} s; "
               f"see {study.out / 'summary.md'}, {study.out / 'results.csv'} and {study.out / 'score_vs_budget.png'}.")
    click.echo(_cache_line(study.out, prune_cache_gb))
