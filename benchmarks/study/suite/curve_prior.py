"""What the suite's fixed-policy runs say about the adaptive policy's prior over both learning curves.

The adaptive policy (``budget/policy/curves.py``) models the label-only student's score as ``level + slope x``
and the distilled student's as that plus ``margin + margin_slope x`` (``x`` = ln labels), with a Gaussian
prior (``CurvePrior``) and ``retrain_sd``, the points two students of the same data differ by beside dev noise.
A prior may be learned across the suite's tasks (never per task or cell). This script measures those numbers
on the finished cells of the fixed policies only (annotate, distill, split:F), so the policy under test
contributes nothing to its own prior:

- ``slope``: least squares of each annotate-only run's test scores on ln(labels);
- ``scatter``: the residual standard deviation of those scores around that line (retraining noise plus the
  test set's own, and whatever bends the curve), next to the binomial standard error of the test set;
- ``largest drop``: the most test points an annotate-only run's student lost to the one before it (more labels
  should not cost points; a large drop is the training recipe's noise, which the policy sees as ``retrain_sd``);
- ``margin``: each distillation of a fixed policy against the label-only student of the same run and labels
  (the round before it; distill-only: the seed-label student), and its trend in ln(labels) per task.

    python benchmarks/study/suite/curve_prior.py [RESULTS]   # default: results/ beside this file
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FIXED = ("annotate", "distill", "split:0.3", "split:0.6")


@dataclass(frozen=True)
class Run:
    """One finished fixed-policy cell: its rounds as (kind, labels, test points), in order."""

    task: str
    seed: int
    policy: str
    budget: str
    rounds: tuple[tuple[str, int, float], ...]
    test_items: int


def load_runs(results: Path) -> list[Run]:
    """Every finished fixed-policy cell under ``results/cells``."""
    runs = []
    for path in sorted(results.glob("cells/*/*/*/*/*/cell.json")):
        cell = json.loads(path.read_text())
        if cell["policy"] not in FIXED:
            continue
        project = json.loads((path.parent / "project.json").read_text())
        rounds = tuple((s[1], int(s[2]), 100.0 * s[6]) for s in cell["scores"] if s[6] is not None)
        runs.append(Run(cell["task"], cell["seed"], cell["policy"], cell["budget"], rounds,
                        int(project["split"]["test_size"])))
    return runs


def label_curve(run: Run) -> tuple[float, float, int]:
    """(slope per unit of ln labels, residual sd, points) of the run's label-only students."""
    pts = [(n, s) for kind, n, s in run.rounds if kind in ("baseline", "annotate")]
    x = np.log([n for n, _ in pts])
    y = np.array([s for _, s in pts])
    design = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    return float(coef[1]), float(math.sqrt(resid @ resid / max(1, len(y) - 2))), len(y)


def largest_drop(run: Run) -> float:
    """The most test points a label-only student lost to the label-only student of the round before it."""
    scores = [s for kind, _, s in run.rounds if kind in ("baseline", "annotate")]
    return max((a - b for a, b in zip(scores, scores[1:], strict=False)), default=0.0)


def margins(run: Run) -> list[tuple[int, float]]:
    """(labels, distilled minus label-only test points) for each distillation of the run."""
    out, plain = [], None
    for kind, n, score in run.rounds:
        if kind == "distill" and plain is not None and plain[0] == n:
            out.append((n, score - plain[1]))
        elif kind in ("baseline", "annotate"):
            plain = (n, score)
    return out


def main(results: Path) -> None:
    runs = load_runs(results)
    by_task: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        by_task[r.task].append(r)
    print("| task | seeds | slope (pts per ln labels) | scatter around the line | largest drop | test se "
          "| margins (labels: pts) | mean margin | margin trend (pts per ln labels) |")
    print("|---|---|---|---|---|---|---|---|---|")
    slopes, scatters, task_margins, trends = [], [], [], []
    for task, task_runs in sorted(by_task.items()):
        curves = {}  # one annotate-only curve per seed: the longest ($25) run
        for r in task_runs:
            if r.policy == "annotate" and len(r.rounds) > len(curves.get(r.seed, Run("", 0, "", "", (), 0)).rounds):
                curves[r.seed] = r
        fits = [label_curve(r) for r in curves.values()]
        seen = sorted({(r.seed, n, round(m, 3)) for r in task_runs for n, m in margins(r)})  # both regimes alike
        pts = [(n, m) for _, n, m in seen]
        s = statistics.mean(f[0] for f in fits) if fits else float("nan")
        sc = math.sqrt(statistics.mean(f[1] ** 2 for f in fits)) if fits else float("nan")
        top = max((r.rounds[-1][2] for r in curves.values()), default=50.0) / 100
        n_test = max((r.test_items for r in task_runs), default=1)
        test_se = 100 * math.sqrt(top * (1 - top) / n_test)
        mean_m = statistics.mean(m for _, m in pts) if pts else float("nan")
        trend = float("nan")
        if len({n for n, _ in pts}) > 1:
            trend = float(np.polyfit(np.log([n for n, _ in pts]), [m for _, m in pts], 1)[0])
            trends.append(trend)
        slopes.append(s)
        scatters.append(sc)
        if pts:
            task_margins.append(mean_m)
        shown = ", ".join(f"{n}: {m:+.1f}" for n, m in pts)
        drop = max((largest_drop(r) for r in curves.values()), default=0.0)
        print(f"| {task} | {len(curves)} | {s:+.1f} | {sc:.1f} | {drop:.1f} | {test_se:.1f} | {shown} | "
              f"{mean_m:+.1f} | {trend:+.1f} |")
    print()
    print(f"Across {len(slopes)} tasks: slope mean {statistics.mean(slopes):+.1f}, sd "
          f"{statistics.pstdev(slopes):.1f}; scatter (rms) {math.sqrt(statistics.mean(x * x for x in scatters)):.1f}; "
          f"margin mean {statistics.mean(task_margins):+.1f}, sd {statistics.pstdev(task_margins):.1f}; "
          f"margin trend mean {statistics.mean(trends) if trends else float('nan'):+.1f}, sd "
          f"{statistics.pstdev(trends) if len(trends) > 1 else float('nan'):.1f}.")
    print("CurvePrior today: slope 6 (sd 6), margin 0 (sd 6), margin_slope 0 (sd 3), retrain_sd 2.")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results")
