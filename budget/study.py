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
    regimes = ["cheap", "paper"]         # cheap | batch | several | paper (budget/regimes.py)

``python -m budget.study --quick`` needs no file: it writes a tiny task and tiny models into the
study folder and runs a small grid in a minute or two. ``--ray ADDRESS`` runs the cells as tasks on a
Ray cluster instead of one after another (``budget/study_ray.py``).

The cells share finished compute steps through ``<study folder>/phase-cache`` (:mod:`budget.phase_cache`);
at the end the study prints its size, and ``--prune-cache-gb N`` removes its least recently used steps
until it holds at most N GB (a removed step is computed again if a later cell needs it). A study stops
before a cell, with its finished cells summarised, when the disk has less room left than the last cell
took: a cell that fills the disk dies half-way.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import click
from tqdm.auto import tqdm

from budget.cli_errors import InputError
from budget.config import ConfigError, ProjectConfig, load_config
from budget.controller import Controller
from budget.costs import ComputePricer
from budget.exceptions import UsageError
from budget.ledger import Ledger
from budget.money import format_usd, parse_usd
from budget.phase_cache import PhaseCache
from budget.policy import make_policy
from budget.records import RoundRecord
from budget.regimes import REGIMES, regime_scale
from budget.round_records import best_round, compute_steps
from budget.runfolder import format_bytes
from budget.study_report import write_outputs
from modeling.meter import PhaseRecord

__all__ = ["Cell", "CellResult", "Study", "load_study", "quick_study", "run_study"]

FIXED_POLICIES = ("annotate", "distill", "split")  # what "best fixed policy in hindsight" chooses among


@dataclass(frozen=True)
class Study:
    """A grid of cells and the folder they run in."""

    projects: tuple[Path, ...]
    policies: tuple[str, ...]
    budgets: tuple[str, ...]
    seeds: tuple[int, ...]
    regimes: tuple[str, ...]
    out: Path

    def __post_init__(self) -> None:
        for name in self.policies:
            make_policy(name)  # ValueError naming the policy
        for name in self.regimes:
            if name not in REGIMES:
                raise ValueError(f"Unknown regime {name!r} in [study] regimes; choose {', '.join(REGIMES)}.")
        for budget in self.budgets:
            parse_usd(budget, positive=True)
        if not (self.projects and self.policies and self.budgets and self.seeds and self.regimes):
            raise ValueError("[study] needs at least one each of projects, policies, budgets, seeds and regimes.")

    def cells(self, tasks: dict[Path, str]) -> list[Cell]:
        """Every cell, in the order they run (all policies of a seed together, cheap budgets first)."""
        return [Cell(tasks[p], p, regime, budget, seed, policy)
                for p in self.projects for regime in self.regimes
                for budget in sorted(self.budgets, key=lambda b: parse_usd(b)) for seed in self.seeds
                for policy in self.policies]


@dataclass(frozen=True)
class Cell:
    """One controller run of the grid."""

    task: str
    project: Path
    regime: str
    budget: str
    seed: int
    policy: str

    @property
    def folder(self) -> str:
        return f"{self.task}/{self.regime}/usd{self.budget}/seed{self.seed}/{self.policy.replace(':', '-')}"


@dataclass(frozen=True)
class CellResult:
    """What one cell bought; money in micro-dollars, scores 0-1 on the simulated test set (reports only)."""

    task: str
    regime: str
    budget: str
    seed: int
    policy: str
    spent_annotate_micro: int
    spent_distill_micro: int
    spent_baseline_micro: int
    unspent_micro: int
    rounds: int
    final_test: float | None
    picked_test: float | None  # the test score of the student the report picks (best on dev)
    wall_seconds: float
    flops: float  # compute the cell was charged for, in FLOPs
    flops_saved: float  # of those, reused from another cell through the phase cache (not run again)
    curve: tuple[tuple[int, float], ...] = ()  # (cumulative micro-dollars, test score) after each round
    # (what: 'round:<arm>' or 'phase:<name>', estimated, actual) micro-dollars of each finished round
    estimates: tuple[tuple[str, int, int], ...] = field(default=())

    @property
    def spent_micro(self) -> int:
        return self.spent_annotate_micro + self.spent_distill_micro + self.spent_baseline_micro


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
    allowed = {"projects", "policies", "budgets", "seeds", "regimes", "out"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"Unknown key(s) {unknown} in [study] of {path}; allowed: {', '.join(sorted(allowed))}.")
    try:
        return Study(projects=tuple((path.parent / p).resolve() for p in raw.get("projects", [])),
                     policies=tuple(raw.get("policies", ["annotate", "distill", "split:0.5", "adaptive"])),
                     budgets=tuple(str(b) for b in raw.get("budgets", [])), seeds=tuple(raw.get("seeds", [0])),
                     regimes=tuple(raw.get("regimes", ["cheap"])),
                     out=Path(out or path.parent / raw.get("out", path.stem)))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{exc} ({path})") from exc


def quick_study(out: Path) -> Study:
    """A small grid on a tiny task with tiny models, written into ``out`` (no files needed)."""
    from budget.tiny import write_tiny_project

    project = write_tiny_project(out / "quick-task", n=500, models_dir=out / "quick-task" / "models",
                                 overrides={"split": {"seed_size": 60, "test_size": 120},
                                            "prices": {"per_label": "0.10"},
                                            "annotation": {"batch_size": 25},
                                            # one teacher per distillation: three doubled the grid's time
                                            "policy": {"teacher_ensemble": 1}})
    return Study(projects=(project,), policies=("annotate", "distill", "split:0.5", "adaptive"),
                 budgets=("8", "16"), seeds=(0, 1), regimes=("cheap", "batch"), out=out)


def _with_scale(config: ProjectConfig, scale: dict[str, float]) -> ProjectConfig:
    return config.replace(prices={"phase_scale": dict(scale)})


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


def _flops(ledger: Ledger, rnd: int) -> tuple[float, float]:
    """FLOPs a round's compute steps were charged for, and those of them reused from the study's cache."""
    steps = compute_steps(ledger, rnd)
    return (sum(p["flops"] for step in steps for p in step.get("phases", [])),
            sum(step.get("reused_flops", 0.0) for step in steps))


def _estimates(r: RoundRecord, ledger: Ledger, pricer: ComputePricer) -> list[tuple[str, int, int]]:
    """(what, estimated, actual) micro-dollars of a finished round: the round's compute as the policy
    estimated it ('round:<arm>'), and each metered phase kind ('phase:<name>')."""
    out = []
    estimate, actual = r.plan.compute_estimate_micro, r.summary.compute_micro
    if estimate and actual:
        out.append((f"round:{r.arm}", int(estimate), int(actual)))
    spent: dict[str, int] = {}
    for step in compute_steps(ledger, r.round):
        for p in step.get("phases", []):
            spent[p["name"]] = spent.get(p["name"], 0) + pricer.price(PhaseRecord(**p))
    for phase, est in r.plan.compute_estimate_phases.items():
        if spent.get(phase) and est >= 1:
            out.append((f"phase:{phase}", round(est), spent[phase]))
    return out


def phase_cache(shared: Path) -> PhaseCache:
    """The finished compute steps the cells of the study folder ``shared`` share."""
    return PhaseCache(shared / "phase-cache")


def run_cell(cell: Cell, config: ProjectConfig, run_dir: Path, shared: Path) -> CellResult:
    """Run (or resume) one cell to the end of its budget and read what it bought from its ledger.

    ``shared`` holds what cells share: finished compute steps (``phase-cache``) and joined models. A
    finished cell keeps its ledger and report; its models and soft labels (hundreds of MB, never read
    again: the phase cache keeps what other cells reuse) are removed.
    """
    started = time.monotonic()
    controller = Controller(config, run_dir, seed=cell.seed, policy=cell.policy, progress=False, say=lambda _: None,
                            phase_cache=phase_cache(shared), model_cache_dir=shared / ".model-cache")
    try:
        controller.open()
        controller.set_budget(parse_usd(cell.budget, positive=True))
        controller.run()
        controller.report()
        ledger = controller.ledger
        rounds = [r for r in ledger.rounds() if r.state == "done"]
        by_arm, spent, totals = ledger.spent_by_arm(), ledger.spent_by_round(), ledger.totals()
        curve, total, estimates = [], 0, []
        for r in rounds:
            total += spent.get(r.round, 0)
            if r.summary.test is not None:
                curve.append((total, float(r.summary.test)))
            if not r.summary.stopped_at_cap:
                estimates += _estimates(r, ledger, ComputePricer(config))
        best = best_round(rounds)
        picked = next(r for r in rounds if r.round == best[0]) if best else None
        for folder in (run_dir / "models", run_dir / "cache"):
            shutil.rmtree(folder, ignore_errors=True)
        return CellResult(cell.task, cell.regime, cell.budget, cell.seed, cell.policy,
                          by_arm.get("annotate", 0), by_arm.get("distill", 0), by_arm.get("baseline", 0),
                          totals.available, len(rounds), curve[-1][1] if curve else None,
                          picked.summary.test if picked else None, time.monotonic() - started,
                          sum(_flops(ledger, r.round)[0] for r in rounds),
                          sum(_flops(ledger, r.round)[1] for r in rounds), tuple(curve), tuple(estimates))
    finally:
        controller.close()


def _read_result(path: Path) -> CellResult:
    raw = json.loads(path.read_text())
    raw["curve"] = tuple(tuple(p) for p in raw["curve"])
    raw["estimates"] = tuple(tuple(e) for e in raw["estimates"])
    return CellResult(**raw)


def _write_result(done: Path, result: CellResult) -> None:
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(result)))
    os.replace(tmp, done)  # the cell counts as finished only once its result is whole


def run_study(study: Study, *, progress: bool = True, run: bool = True, selection: str | None = None,
              ray_address: str | None = None, ray_cpus_per_cell: int = 1) -> list[CellResult]:
    """Run every cell not finished yet, then write results.csv, summary.md and score_vs_budget.png.

    With ``run=False`` only the finished cells are summarised (a study still running, or stopped);
    ``selection`` overrides every project's ``[annotation] selection`` (to compare strategies at equal money).
    With ``ray_address`` ('auto', 'local' or a cluster's address) the unfinished cells run as Ray tasks of
    ``ray_cpus_per_cell`` CPUs each (:func:`budget.study_ray.run_cells`); the study folder must then be on
    storage every node of the cluster sees, at the same path.
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
        from budget.study_ray import run_cells

        jobs = [(c, _with_scale(configs[c.project], scales[c.task][c.regime])) for c in cells]
        results = run_cells(study.out, jobs, address=ray_address, cpus_per_cell=ray_cpus_per_cell, progress=progress)
        write_outputs(results, study.out, scales)
        return results
    results: list[CellResult] = []
    bar = tqdm(total=len(cells), desc="study cells", unit="cell", disable=not progress)
    taken = 0  # bytes of disk the last cell run took (its run folder and what it added to the phase cache)
    for cell in cells:
        folder = study.out / "cells" / cell.folder
        done = folder / "cell.json"
        if done.exists():
            results.append(_read_result(done))
        elif run:
            free = _free_bytes(study.out)
            if free < taken:  # the next cell is likely to fill the disk half-way: stop before it starts
                bar.close()
                write_outputs(results, study.out, scales)
                raise UsageError(f"Only {format_bytes(free)} of disk is free under {study.out}, and the last cell "
                                 f"took {format_bytes(taken)}: free space or prune the phase cache (--summary-only "
                                 "--prune-cache-gb N), then run the study again; its finished cells are kept.")
            config = _with_scale(configs[cell.project], scales[cell.task][cell.regime])
            result = run_cell(cell, config, folder, study.out)
            _write_result(done, result)
            results.append(result)
            taken = max(0, free - _free_bytes(study.out))
            bar.set_postfix_str(f"{cell.folder}: test {_pct(result.final_test)}")
        bar.update(1)
    bar.close()
    write_outputs(results, study.out, scales)
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


def _pct(score: float | None) -> str:
    return "-" if score is None or math.isnan(score) else f"{100 * score:.1f}"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--prune-cache-gb", type=click.FloatRange(min=0), metavar="FLOAT",
              help="At the end, remove the least recently used steps of the study's phase cache until it holds "
                   "at most this many GB (default: keep everything).")
def main(study_file: str | None, quick: bool, out: str | None, quiet: bool, summary_only: bool,
         selection: str | None, ray_address: str | None, ray_cpus_per_cell: int, prune_cache_gb: float | None) -> None:
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
                            ray_address=ray_address, ray_cpus_per_cell=ray_cpus_per_cell)
    except (ConfigError, ValueError) as exc:
        raise InputError(str(exc).splitlines()[0]) from exc
    spent = sum(r.spent_micro for r in results)
    click.echo(f"{len(results)} cells ({format_usd(spent)} of simulated money) in {time.monotonic() - started:.0f} s; "
               f"see {study.out / 'summary.md'}, {study.out / 'results.csv'} and {study.out / 'score_vs_budget.png'}.")
    click.echo(_cache_line(study.out, prune_cache_gb))


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="python -m budget.study")
