"""One cell of the decision study: a controller run of the grid, what it bought, and its ``cell.json``.

:func:`run_cell` runs (or resumes) a cell in its own run folder and reads its :class:`CellResult` from
the ledger; :func:`write_result` saves it as ``cell.json`` only once it is whole, and :func:`read_result`
reads it back, so a study run again skips finished cells. Both drivers use this module: the serial
one (:mod:`budget.study`) and the Ray one (:mod:`budget.study.ray_cells`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from budget.config import ProjectConfig
from budget.controller import Controller
from budget.costs import ComputePricer
from budget.ledger import Ledger
from budget.ledger.records import RoundRecord
from budget.money import parse_usd
from budget.round.compute_steps import compute_steps
from budget.shipped import best_round
from budget.study.phase_cache import PhaseCache
from budget.study.reseed import reseeded_tests
from budget.study.version import code_version

__all__ = [
    "Cell", "CellResult", "cell_result", "format_score", "phase_cache", "read_result", "run_cell", "write_result",
]


@dataclass(frozen=True)
class Cell:
    """One controller run of the grid."""

    task: str
    project: Path
    regime: str
    budget: str
    seed: int
    policy: str
    student_seeds: int = 1  # the final student trained with this many seeds (budget/study/reseed.py)

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
    picked_test: float | None  # the test score of the student the run ships (shipped.best_round)
    wall_seconds: float
    flops: float  # compute the cell was charged for, in FLOPs
    flops_saved: float  # of those, reused from another cell through the phase cache (not run again)
    curve: tuple[tuple[int, float], ...] = ()  # (cumulative micro-dollars, test score) after each round
    # (what: 'round:<arm>' or 'phase:<name>', estimated, actual) micro-dollars of each finished round
    estimates: tuple[tuple[str, int, int], ...] = field(default=())
    # (round, arm, labels, dev, dev items, the previous round's student on those dev items, test, dev items right as
    # hex bits) of each finished round: what the choice of the run's output (shipped.best_round) saw, so
    # that another choice can be replayed from cell.json alone (the ledger is not kept in git); empty in cells run
    # before 2026-11-30, seven fields (no item bits) in cells run before 2026-12-07
    scores: tuple[tuple[int, str, int, float | None, int | None, float | None, float | None, str | None], ...] = ()
    # the final student's test score trained with each of the study's student seeds, the run's own first
    # (budget/study/reseed.py); empty with one seed, or where the final student could not be trained again
    final_tests: tuple[float, ...] = ()
    # the code the cell ran (budget/study/version.py): the commit, whether the product's files were as
    # committed, and the label the summary compares ("<commit>" or "<commit>+<changes>"); empty before 2026-12-07
    commit: str = ""
    clean: bool | None = None
    version: str = ""

    @property
    def spent_micro(self) -> int:
        return self.spent_annotate_micro + self.spent_distill_micro + self.spent_baseline_micro


def _flops(ledger: Ledger, rnd: int) -> tuple[float, float]:
    """FLOPs a round's compute steps were charged for, and those of them reused from the study's cache."""
    steps = compute_steps(ledger, rnd)
    return sum(step.flops for step in steps), sum(step.reused_flops or 0.0 for step in steps)


def _estimates(r: RoundRecord, ledger: Ledger, pricer: ComputePricer) -> list[tuple[str, int, int]]:
    """(what, estimated, actual) micro-dollars of a finished round: the round's compute as the policy
    estimated it ('round:<arm>'), and each metered phase kind ('phase:<name>')."""
    out = []
    estimate, actual = r.plan.compute_estimate_micro, r.summary.compute_micro
    if estimate and actual:
        out.append((f"round:{r.arm}", int(estimate), int(actual)))
    spent: dict[str, int] = {}
    for step in compute_steps(ledger, r.round):
        for p in step.phases or ():
            spent[p.name] = spent.get(p.name, 0) + pricer.price(p)
    for phase, est in r.plan.compute_estimate_phases.items():
        if spent.get(phase) and est >= 1:
            out.append((f"phase:{phase}", round(est), spent[phase]))
    return out


def phase_cache(shared: Path) -> PhaseCache:
    """The finished compute steps the cells of the study folder ``shared`` share."""
    return PhaseCache(shared / "phase-cache")


def run_cell(cell: Cell, config: ProjectConfig, run_dir: Path, shared: Path) -> CellResult:
    """Run (or resume) one cell to the end of its budget and read what it bought from its ledger.

    With ``cell.student_seeds`` above one, the final student is then trained again with that many seeds
    (:func:`budget.study.reseed.reseeded_tests`, ``CellResult.final_tests``); the run keeps every model
    until then (``[models] keep = "all"``), so a student refined by labels after a distillation is trained
    again from the student it started from.
    ``shared`` holds what cells share: finished compute steps (``phase-cache``) and joined models. A
    finished cell keeps its ledger and report; its models and soft labels (hundreds of MB, never read
    again: the phase cache keeps what other cells reuse) are removed.
    """
    started = time.monotonic()
    if cell.student_seeds > 1:  # a refined final student is trained again from the one it was refined from
        config = config.replace(models={"keep": "all"})  # which pruning would remove (they go with the cell)
    controller = Controller(config, run_dir, seed=cell.seed, policy=cell.policy, progress=False, say=lambda _: None,
                            phase_cache=phase_cache(shared), model_cache_dir=shared / ".model-cache")
    try:
        controller.open()
        controller.set_budget(parse_usd(cell.budget, positive=True))
        controller.run()
        controller.report()
        reseeded = reseeded_tests(controller.ctx, cell.student_seeds) if cell.student_seeds > 1 else ()
        result = replace(cell_result(cell, controller.ledger, config, time.monotonic() - started),
                         final_tests=reseeded)
    finally:
        controller.close()
    for folder in (run_dir / "models", run_dir / "cache"):
        shutil.rmtree(folder, ignore_errors=True)
    return result


def cell_result(cell: Cell, ledger: Ledger, config: ProjectConfig, wall_seconds: float) -> CellResult:
    """What the finished run of ``cell`` bought, read from its ``ledger`` (``config`` prices its compute phases)."""
    rounds = [r for r in ledger.rounds() if r.state == "done"]
    by_arm, spent, totals = ledger.spent_by_arm(), ledger.spent_by_round(), ledger.totals()
    curve, total, estimates, scores = [], 0, [], []
    for r in rounds:
        scores.append((r.round, r.arm, r.summary.n_labels, r.summary.dev, r.summary.dev_items,
                       r.summary.prev_dev, r.summary.test, r.summary.dev_right))
        total += spent.get(r.round, 0)
        if r.summary.test is not None:
            curve.append((total, float(r.summary.test)))
        if not r.summary.cut_short:
            estimates += _estimates(r, ledger, ComputePricer(config))
    best = best_round(rounds)
    picked = next(r for r in rounds if r.round == best[0]) if best else None
    flops = [_flops(ledger, r.round) for r in rounds]
    code = code_version()
    return CellResult(cell.task, cell.regime, cell.budget, cell.seed, cell.policy,
                      by_arm.get("annotate", 0), by_arm.get("distill", 0), by_arm.get("baseline", 0),
                      totals.available, len(rounds), curve[-1][1] if curve else None,
                      picked.summary.test if picked else None, wall_seconds,
                      sum(f[0] for f in flops), sum(f[1] for f in flops), tuple(curve), tuple(estimates),
                      tuple(scores), commit=code.commit, clean=code.clean, version=code.label)


def read_result(path: Path) -> CellResult:
    """A finished cell's result, read back from its ``cell.json``."""
    raw = json.loads(path.read_text())
    raw["curve"] = tuple(tuple(p) for p in raw["curve"])
    raw["estimates"] = tuple(tuple(e) for e in raw["estimates"])
    raw["scores"] = tuple(tuple(s) for s in raw.get("scores", ()))
    raw["final_tests"] = tuple(raw.get("final_tests", ()))
    return CellResult(**raw)


def write_result(done: Path, result: CellResult) -> None:
    """Save ``result`` as ``done`` (a cell's ``cell.json``), whole or not at all."""
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(result)))
    os.replace(tmp, done)  # the cell counts as finished only once its result is whole


def format_score(score: float | None) -> str:
    """A 0-1 score in points with one decimal, or '-' for none."""
    return "-" if score is None or math.isnan(score) else f"{100 * score:.1f}"
