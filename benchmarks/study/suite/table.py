"""The suite's compact table for benchmarks/README.md, from the study's ``results.csv``.

One row per task x regime x budget: every policy's final / shipped student (test, 0-100, mean over the seeds
finished), adaptive's regret against the best fixed policy in hindsight (final / shipped) and its unspent share;
then wall time per policy and regime. ``results/summary.md`` holds the headline and the per-cell tables.

    python benchmarks/study/suite/table.py [RESULTS_CSV]   # default: results/results.csv beside this file
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

POLICIES = ("annotate", "distill", "split:0.3", "split:0.6", "adaptive")


def main(csv: Path) -> None:
    rows = pl.read_csv(csv, columns=["task", "regime", "budget", "seed", "policy", "final_test", "picked_test",
                                     "unspent_usd", "wall_seconds"])
    means = (rows.group_by("task", "regime", "budget", "policy")
             .agg((100 * pl.col("final_test").mean()).alias("final"),
                  (100 * pl.col("picked_test").mean()).alias("shipped"),
                  (100 * pl.col("unspent_usd").mean() / pl.col("budget").first()).alias("unspent"),
                  pl.len().alias("seeds")))
    print("| task | regime | budget | " + " | ".join(POLICIES) + " | adaptive's regret (final / shipped) | "
          "adaptive unspent |")
    print("|---|---|---|" + "---|" * len(POLICIES) + "---|---|")
    for (task, regime, budget), group in sorted(means.group_by("task", "regime", "budget"), key=lambda g: g[0]):
        by = {r["policy"]: r for r in group.iter_rows(named=True)}
        cells = [f"{by[p]['final']:.1f} / {by[p]['shipped']:.1f}" if p in by else "" for p in POLICIES]
        regret = unspent = ""
        if all(p in by for p in POLICIES):
            fixed = [by[p] for p in POLICIES[:-1]]
            regret = (f"{max(r['final'] for r in fixed) - by['adaptive']['final']:+.1f} / "
                      f"{max(r['shipped'] for r in fixed) - by['adaptive']['shipped']:+.1f}")
        if "adaptive" in by:
            unspent = f"{by['adaptive']['unspent']:.1f}%"
        print(f"| {task} | {regime} | ${budget} | " + " | ".join(cells) + f" | {regret} | {unspent} |")
    print()
    print("| policy | regime | cells | median s | max s | total min |")
    print("|---|---|---|---|---|---|")
    wall = (rows.group_by("policy", "regime")
            .agg(pl.len().alias("n"), pl.col("wall_seconds").median().alias("median"),
                 pl.col("wall_seconds").max().alias("max"), pl.col("wall_seconds").sum().alias("sum"))
            .sort("policy", "regime"))
    for r in wall.iter_rows(named=True):
        print(f"| {r['policy']} | {r['regime']} | {r['n']} | {r['median']:.0f} | {r['max']:.0f} | "
              f"{r['sum'] / 60:.0f} |")
    print(f"\nAll cells: {rows.height}, {rows['wall_seconds'].sum() / 60:.0f} minutes of cell wall time.")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results" / "results.csv")
