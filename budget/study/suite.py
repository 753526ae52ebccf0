"""The decision study's headline: how adaptive does across the whole suite, against splits a user could pick.

Regret against the best fixed split in hindsight is a ceiling no user can reach: nobody knows beforehand
which split will win on their task. The split a user *could* have picked is the one that did best on the
other tasks of the suite, at the same compute-price regime and budget (leave one task out): a team that
read our study before starting would pick it. Adaptive's margin over that split, and its mean regret over
the suite with a bootstrap interval, are the numbers a policy change is judged on, beside the money left
unspent and how far each policy's shipped student falls below the best student its run trained.

Scores are test scores, 0-100: each cell's final student (the mean of its training seeds where every cell of
its group has several, as in the per-cell tables). Which split is "best on other tasks" is judged by its mean
regret against each task's own hindsight best, so tasks with high and low scores weigh alike.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SuiteHeadline", "suite_headline", "suite_lines", "BOOTSTRAP_RESAMPLES"]

BOOTSTRAP_RESAMPLES = 2000
_LEVEL = 0.90  # the interval's coverage

Group = tuple[str, str, str]  # (task, regime, budget)
Scores = dict[Group, dict[str, dict[int, float]]]  # group -> policy -> seed -> test score (0-100)


def _fixed(policy: str) -> bool:
    return policy in {"annotate", "distill"} or policy.startswith("split:")


@dataclass(frozen=True)
class SuiteHeadline:
    """The suite's numbers (points, 0-100 scale; positive regret means adaptive did worse)."""

    tasks: int
    groups: int
    regret: float  # mean over groups of (best fixed in hindsight - adaptive)
    regret_interval: tuple[float, float] | None  # bootstrap over tasks and seeds; None with one task and seed
    loto_margin: float | None  # mean over groups of (adaptive - the split best on the other tasks)
    loto_interval: tuple[float, float] | None
    loto_picks: tuple[tuple[Group, str, float], ...]  # (group, the split picked on other tasks, adaptive's margin)


def _score(row: dict[str, Any], reseeded: bool) -> float | None:
    if reseeded and row.get("final_tests"):
        return 100 * statistics.fmean(row["final_tests"])
    return None if row["final_test"] is None else 100 * row["final_test"]


def scores_of(rows: Iterable[dict[str, Any]]) -> Scores:
    """Each group's test scores by policy and seed, on the seeds every policy of the group finished."""
    by_group: dict[Group, list[dict]] = defaultdict(list)
    for r in rows:
        by_group[(r["task"], r["regime"], r["budget"])].append(r)
    out: Scores = {}
    for group, cells in by_group.items():
        reseeded = all(len(c.get("final_tests") or ()) >= 2 for c in cells)
        table: dict[str, dict[int, float]] = defaultdict(dict)
        for c in cells:
            s = _score(c, reseeded)
            if s is not None:
                table[c["policy"]][c["seed"]] = s
        common = set.intersection(*(set(v) for v in table.values())) if table else set()
        out[group] = {p: {s: v[s] for s in sorted(common)} for p, v in table.items() if common}
    return {g: t for g, t in out.items() if t}


def _means(scores: Scores) -> dict[Group, dict[str, float]]:
    return {g: {p: statistics.fmean(v.values()) for p, v in t.items()} for g, t in scores.items()}


def _regrets(means: dict[Group, dict[str, float]]) -> dict[Group, float]:
    """Best fixed policy's mean minus adaptive's, per group that has both."""
    out = {}
    for g, m in means.items():
        fixed = [v for p, v in m.items() if _fixed(p)]
        if fixed and "adaptive" in m:
            out[g] = max(fixed) - m["adaptive"]
    return out


def _behind(policy: str, groups: list[dict[str, float]]) -> float:
    """``policy``'s mean regret against each group's best fixed policy in hindsight."""
    return statistics.fmean(max(v for q, v in m.items() if _fixed(q)) - m[policy] for m in groups)


def _loto(means: dict[Group, dict[str, float]], task_of: Callable[[Group], str]) -> dict[Group, tuple[str, float]]:
    """For each group with adaptive: the fixed split with the least mean regret (against each task's hindsight
    best) on the *other* tasks at the same regime and budget, and adaptive's margin over it on this group."""
    out = {}
    for g, m in means.items():
        if "adaptive" not in m:
            continue
        others = [means[h] for h in means if task_of(h) != task_of(g) and h[1:] == g[1:]]
        candidates = [p for p in m if _fixed(p) and all(p in o for o in others)]
        if not others or not candidates:
            continue
        pick = min(sorted(candidates), key=lambda p, others=others: _behind(p, others))
        out[g] = (pick, m["adaptive"] - m[pick])
    return out


def _resample(scores: Scores, rng: np.random.Generator) -> tuple[Scores, dict[Group, str]]:
    """Tasks drawn with replacement, and within each drawn task its seeds drawn with replacement (the same draw
    for every policy: the comparison stays paired); returns the resampled scores and each new group's task."""
    tasks = sorted({g[0] for g in scores})
    out: Scores = {}
    task_of: dict[Group, str] = {}
    for k, task in enumerate(rng.choice(tasks, size=len(tasks), replace=True)):
        for g, table in scores.items():
            if g[0] != task:
                continue
            seeds = sorted(next(iter(table.values())))
            drawn = rng.choice(seeds, size=len(seeds), replace=True)
            new = (f"{task}#{k}", g[1], g[2])
            out[new] = {p: {i: v[int(s)] for i, s in enumerate(drawn)} for p, v in table.items()}
            task_of[new] = str(task)
    return out, task_of


def _interval(values: list[float]) -> tuple[float, float] | None:
    if len(values) < 2:
        return None
    lo, hi = np.quantile(values, [(1 - _LEVEL) / 2, (1 + _LEVEL) / 2])
    return float(lo), float(hi)


def suite_headline(rows: Iterable[dict[str, Any]], *, resamples: int = BOOTSTRAP_RESAMPLES,
                   seed: int = 0) -> SuiteHeadline | None:
    """The suite's mean regret and leave-one-task-out margin, each with a bootstrap interval over tasks and
    seeds; None when no group has both adaptive and a fixed policy."""
    scores = scores_of(rows)
    means = _means(scores)
    regrets = _regrets(means)
    if not regrets:
        return None
    picks = _loto(means, lambda g: g[0])
    rng = np.random.default_rng(seed)
    boot_regret, boot_margin = [], []
    several = len({g[0] for g in scores}) > 1 or any(len(next(iter(t.values()))) > 1 for t in scores.values())
    for _ in range(resamples if several else 0):
        sample, task_of = _resample(scores, rng)
        m = _means(sample)
        r = _regrets(m)
        if r:
            boot_regret.append(statistics.fmean(r.values()))
        lo = _loto(m, task_of.__getitem__)
        if lo:
            boot_margin.append(statistics.fmean(v for _, v in lo.values()))
    return SuiteHeadline(
        tasks=len({g[0] for g in regrets}), groups=len(regrets), regret=statistics.fmean(regrets.values()),
        regret_interval=_interval(boot_regret),
        loto_margin=statistics.fmean(v for _, v in picks.values()) if picks else None,
        loto_interval=_interval(boot_margin) if picks else None,
        loto_picks=tuple((g, p, v) for g, (p, v) in sorted(picks.items())))


def _range(interval: tuple[float, float] | None) -> str:
    return f" ({_LEVEL:.0%} interval {interval[0]:+.1f} to {interval[1]:+.1f})" if interval else ""


def _budget_share(row: dict[str, Any]) -> float:
    total = row["spent_annotate_usd"] + row["spent_distill_usd"] + row["spent_baseline_usd"] + row["unspent_usd"]
    return row["unspent_usd"] / total if total > 0 else 0.0


def _policy_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Per policy over the whole suite: the shipped student, the final one and the run's best, and unspent money."""
    by_policy: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_policy[r["policy"]].append(r)
    lines = ["| policy | cells | final student | shipped student | best student of the run | shipped below best | "
             "unspent (mean, max) |", "|---|---|---|---|---|---|---|"]
    for policy, cells in sorted(by_policy.items()):
        final = [100 * c["final_test"] for c in cells if c["final_test"] is not None]
        shipped = [100 * c["picked_test"] for c in cells if c["picked_test"] is not None]
        best = [100 * max(s for _, s in c["curve"]) for c in cells if c["curve"]]
        gap = [100 * (max(s for _, s in c["curve"]) - c["picked_test"]) for c in cells
               if c["curve"] and c["picked_test"] is not None]
        unspent = [_budget_share(c) for c in cells]

        def mean(xs: list[float]) -> str:
            return f"{statistics.fmean(xs):.1f}" if xs else "-"

        lines.append(f"| {policy} | {len(cells)} | {mean(final)} | {mean(shipped)} | {mean(best)} | {mean(gap)} | "
                     f"{statistics.fmean(unspent):.1%}, {max(unspent):.1%} |")
    return lines


def suite_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The summary's headline section (Markdown lines)."""
    head = suite_headline(rows)
    lines = ["## The suite's headline", ""]
    if head is None:
        return lines + ["No task x regime x budget has both adaptive and a fixed split yet.", ""]
    lines += [f"Over {head.groups} task x regime x budget groups of {head.tasks} task(s):", "",
              f"- **Mean regret against the best fixed split in hindsight: {head.regret:+.1f} points**"
              f"{_range(head.regret_interval)} (a ceiling no user can pick; positive: adaptive did worse).",
              "- **Adaptive against the split a user could have picked (the one best on the other tasks): "
              + (f"{head.loto_margin:+.1f} points**{_range(head.loto_interval)} (positive: adaptive did better)."
                 if head.loto_margin is not None else "not defined** (it needs two tasks at the same regime and "
                 "budget).")]
    lines += ["", f"Intervals: {BOOTSTRAP_RESAMPLES} bootstrap resamples of the tasks and, within each, of its "
              "seeds (the same seeds for every policy).", ""]
    if head.loto_picks:
        lines += ["| task | regime | budget | split picked on the other tasks | adaptive's margin over it |",
                  "|---|---|---|---|---|"]
        lines += [f"| {g[0]} | {g[1]} | ${g[2]} | {p} | {v:+.1f} |" for g, p, v in head.loto_picks]
        lines.append("")
    lines += ["Every policy over the suite: test scores of the final student, of the student the run ships (its "
              "choice among the students it trained) and of the best student the run trained (known only in "
              "hindsight), and the budget share left unspent.", "", *_policy_lines(rows), ""]
    return lines
