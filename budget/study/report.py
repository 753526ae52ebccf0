"""The decision study's outputs: ``results.csv``, then ``summary.md`` and ``score_vs_budget.png`` read from it.

The summary and the plot are computed from the rows of ``results.csv`` only (read back from the file),
so every number a reader sees can be checked against it.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from budget.money import parse_usd
from budget.study.suite import suite_lines
from budget.study.version import UNRECORDED

__all__ = ["COLUMNS", "MixedVersionsError", "read_results", "summary_markdown", "write_outputs"]

COLUMNS = ("task", "regime", "budget", "seed", "policy", "spent_annotate_usd", "spent_distill_usd",
           "spent_baseline_usd", "unspent_usd", "rounds", "final_test", "picked_test", "wall_seconds", "flops",
           "flops_saved", "curve", "estimates", "final_tests", "version")


def _usd(micro: int) -> str:
    return f"{micro / 1e6:.6f}"


def write_outputs(results: Sequence, out: Path, scales: dict, *, mixed_versions: bool = False) -> dict[str, Path]:
    """Write ``results.csv`` from the cells' results, then the summary and the plot from that file.

    Raises
    ------
    MixedVersionsError
        If the cells ran at several code versions and ``mixed_versions`` is False; ``results.csv`` is written
        and ``summary.md`` says why it compares nothing.
    """
    out = Path(out)
    paths = {"csv": out / "results.csv", "summary": out / "summary.md", "plot": out / "score_vs_budget.png"}
    with open(paths["csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in results:
            d = asdict(r)
            w.writerow([r.task, r.regime, r.budget, r.seed, r.policy, _usd(r.spent_annotate_micro),
                        _usd(r.spent_distill_micro), _usd(r.spent_baseline_micro), _usd(r.unspent_micro), r.rounds,
                        "" if r.final_test is None else f"{r.final_test:.4f}",
                        "" if r.picked_test is None else f"{r.picked_test:.4f}", f"{r.wall_seconds:.1f}",
                        f"{r.flops:.4g}", f"{r.flops_saved:.4g}", json.dumps(d["curve"]), json.dumps(d["estimates"]),
                        json.dumps([round(t, 4) for t in r.final_tests]), r.version or UNRECORDED])
    rows = read_results(paths["csv"])
    try:
        paths["summary"].write_text(summary_markdown(rows, scales, mixed_versions=mixed_versions))
    except MixedVersionsError as exc:
        paths["summary"].write_text(f"# Decision study\n\nNot summarised: {exc}\n")
        raise
    if rows:
        plot(rows, paths["plot"])
    return paths


def read_results(path: Path) -> list[dict[str, Any]]:
    """The rows of ``results.csv`` with numbers parsed (scores 0-1, dollars as float for display only)."""
    rows = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            row: dict[str, Any] = dict(raw)
            row["seed"], row["rounds"] = int(raw["seed"]), int(raw["rounds"])
            for key in ("final_test", "picked_test"):
                row[key] = float(raw[key]) if raw[key] else None
            for key in ("spent_annotate_usd", "spent_distill_usd", "spent_baseline_usd", "unspent_usd", "wall_seconds",
                        "flops", "flops_saved"):
                row[key] = float(raw[key])
            row["curve"] = [tuple(p) for p in json.loads(raw["curve"])]
            row["estimates"] = [tuple(e) for e in json.loads(raw["estimates"])]
            row["final_tests"] = json.loads(raw.get("final_tests") or "[]")
            row["version"] = raw.get("version") or UNRECORDED
            rows.append(row)
    return rows


@dataclass(frozen=True)
class _Regret:
    """Adaptive's regret in one task x regime x budget: ``points`` behind the ``best`` fixed policy (mean over
    seeds), its paired standard error and seed count (``se``, None below two seeds), and the same regret on
    the runs' outputs (their best student on dev) and against the fixed policy picked on other seeds."""

    task: str
    regime: str
    budget: str
    best: str
    points: float
    se: tuple[float, int] | None
    on_output: float | None
    held_out: float | None = None


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fixed(policy: str) -> bool:
    return policy in {"annotate", "distill"} or policy.startswith("split:")


def _dollars_to_reach(curve: list[tuple[int, float]], target: float) -> float | None:
    return next((micro / 1e6 for micro, score in curve if score >= target - 1e-9), None)


class MixedVersionsError(ValueError):
    """The cells ran at more than one code version; a comparison of them would compare programs, not policies."""


def _version_lines(rows: list[dict[str, Any]], mixed_versions: bool) -> list[str]:
    """Which code the cells ran; refuse several versions unless ``mixed_versions``.

    Raises
    ------
    MixedVersionsError
        With one line naming the versions and the way out.
    """
    counts = Counter(r["version"] for r in rows)
    named = ", ".join(f"{v}: {n} cells" for v, n in counts.most_common())
    if len(counts) > 1 and not mixed_versions:
        raise MixedVersionsError(f"The cells ran at {len(counts)} code versions ({named}); run the others again at "
                                 "one version (remove their cell.json), or pass --mixed-versions to compare them "
                                 "anyway, marked.")
    if len(counts) > 1:
        return [f"**Cells of {len(counts)} code versions compared on request (--mixed-versions)**: {named}. Each "
                "policy's row names the versions of its cells.", ""]
    (version,) = counts or ["-"]
    dirty = "+" in version
    return [f"Every cell ran at code version `{version}`" + (" (with uncommitted changes)." if dirty else ".")
            + (" Cells finished before versions were recorded." if version == UNRECORDED else ""), ""]


def summary_markdown(rows: list[dict[str, Any]], scales: dict, *, mixed_versions: bool = False) -> str:
    """The suite's headline, then per task x regime x budget: each policy's test score over seeds, the best
    fixed policy, adaptive's regret.

    Raises
    ------
    MixedVersionsError
        If the cells ran at several code versions and ``mixed_versions`` is False.
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["task"], r["regime"], r["budget"])].append(r)
    mixed = len({r["version"] for r in rows}) > 1
    lines = ["# Decision study", "", *_version_lines(rows, mixed_versions),
             f"{len(rows)} cells; test scores are the final student's, 0-100, mean ± standard deviation over seeds. "
             "Regret = best fixed policy in hindsight (mean) minus adaptive (mean); positive means adaptive did worse. "
             "'$ to annotate-only' = dollars a policy had spent when its student first reached the annotate-only "
             "student's final test score of the same seed (mean over the seeds where it did).", "",
             *suite_lines(rows)]
    regrets = []
    for (task, regime, budget), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                                parse_usd(kv[0][2]))):
        # the dollars to reach annotate-only's score read one training's curve: its target is one training's too
        targets = {r["seed"]: r["final_test"] for r in group
                   if r["policy"] == "annotate" and r["final_test"] is not None}
        group, reseeded = _reseeded(group)
        by_policy, note = _on_common_seeds(group)
        if reseeded:
            note += [f"Final students' test scores here are each the mean of {reseeded} training seeds (the run's "
                     "own and others on the same data: budget/study/reseed.py), not one training's.", ""]
        lines += [f"## {task}, {regime} compute, ${budget}", "", *note,
                  "| policy | test | picked by dev | spent on labels | on compute | unspent | rounds | "
                  "$ to annotate-only |", "|---|---|---|---|---|---|---|---|"]
        means, outputs = {}, {}
        for policy, cells in by_policy.items():
            tests = [100 * c["final_test"] for c in cells if c["final_test"] is not None]
            picked = [100 * c["picked_test"] for c in cells if c["picked_test"] is not None]
            if not tests:
                continue
            mean, sd = _mean_sd(tests)
            means[policy] = mean
            outputs[policy] = statistics.fmean(picked) if picked else None
            marked = f"{policy} [{', '.join(sorted({c['version'] for c in cells}))}]" if mixed else policy
            lines.append(_policy_row(marked, cells, mean, sd, picked, targets))
        fixed = {p: m for p, m in means.items() if _fixed(p)}
        lines.append("")
        if fixed:
            best = max(fixed, key=fixed.get)
            text = f"Best fixed policy in hindsight: **{best}** ({fixed[best]:.1f})."
            if "adaptive" in means:
                regret = fixed[best] - means["adaptive"]
                se = _paired_se(by_policy[best], by_policy["adaptive"])
                regrets.append(_Regret(task, regime, budget, best, regret, se, _output_regret(outputs),
                                       _held_out_regret(by_policy)))
                text += f" Adaptive: {means['adaptive']:.1f}; regret **{regret:+.1f}** points"
                text += f" (± {se[0]:.1f} paired over {se[1]} seeds)." if se else "."
            lines += [text, ""]
    lines += _regret_lines(regrets)
    lines += _estimate_lines(rows) + _cost_lines(rows, scales)
    return "\n".join(lines) + "\n"


def _policy_row(name: str, cells: list[dict], mean: float, sd: float, picked: list[float],
                targets: dict[int, float]) -> str:
    """One policy's row of a section: test mean ± sd, the picked student, money per arm, unspent, rounds, and
    the dollars it took to reach annotate-only's final score (``targets``, per seed)."""
    reach = [d for c in cells if c["seed"] in targets
             for d in [_dollars_to_reach(c["curve"], targets[c["seed"]])] if d is not None]
    return (f"| {name} | {mean:.1f} ± {sd:.1f} | {statistics.fmean(picked):.1f} | "
            f"${statistics.fmean(c['spent_annotate_usd'] for c in cells):.2f} | "
            f"${statistics.fmean(c['spent_distill_usd'] + c['spent_baseline_usd'] for c in cells):.4f} | "
            f"${statistics.fmean(c['unspent_usd'] for c in cells):.2f} | "
            f"{statistics.fmean(c['rounds'] for c in cells):.1f} | "
            + (f"${statistics.fmean(reach):.2f} ({len(reach)}/{len(cells)})" if reach else "never") + " |")


def _regret_lines(regrets: list[_Regret]) -> list[str]:
    """The table of adaptive's regret per cell (final student, output, against a fixed policy picked on other
    seeds) and its means; nothing without adaptive cells."""
    if not regrets:
        return []
    lines = ["## Adaptive's regret per cell", "",
             "Regret on the final student (the table above), and on each run's output: its best student on "
             "its dev set, the model the run folder and report hand over ('picked by dev').", "",
             "'± se' is the standard error of the regret from its per-seed differences (the best fixed policy "
             "and adaptive run on the same seed labels, dev and test items): a regret within about two of them "
             "of zero is seed noise.", "",
             "The best of several fixed policies in hindsight is biased upwards: with noisy scores, the one "
             "that is best on these seeds was partly lucky on them. 'Picked on other seeds' is the regret "
             "against a fixed policy chosen without that luck: for each seed, the fixed policy best on the "
             "other seeds, scored on this one.", "",
             "| task | regime | budget | best fixed | regret (points) | ± se (seeds) | regret on the output | "
             "against the fixed policy picked on other seeds |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.task} | {r.regime} | ${r.budget} | {r.best} | {r.points:+.1f} | "
              + (f"{r.se[0]:.1f} ({r.se[1]})" if r.se else "") + f" | {_signed(r.on_output)} | "
              f"{_signed(r.held_out)} |" for r in regrets]
    lines += ["", f"Mean regret {statistics.fmean(r.points for r in regrets):+.1f} points, worst "
                  f"{max(r.points for r in regrets):+.1f}."]
    on_output = [r.on_output for r in regrets if r.on_output is not None]
    if on_output:
        lines += [f"On the output: mean {statistics.fmean(on_output):+.1f}, worst {max(on_output):+.1f}."]
    held_out = [r.held_out for r in regrets if r.held_out is not None]
    if held_out:
        lines += [f"Against the fixed policy picked on other seeds: mean {statistics.fmean(held_out):+.1f}, "
                  f"worst {max(held_out):+.1f}."]
    lines += [""]
    return lines


def _reseeded(group: list[dict]) -> tuple[list[dict], int]:
    """The cells of one task x regime x budget with each final test score replaced by the mean over its training
    seeds, and the fewest seeds a cell has, where every cell has at least two (policies are compared on the same
    footing); else the cells as they are and 0."""
    counts = [len(r.get("final_tests") or ()) for r in group]
    if not counts or min(counts) < 2:
        return group, 0
    return [{**r, "final_test": statistics.fmean(r["final_tests"])} for r in group], min(counts)


def _on_common_seeds(group: list[dict]) -> tuple[dict[str, list[dict]], list[str]]:
    """The cells of one task x regime x budget by policy, on the seeds every policy has finished (policies are
    compared on the same seeds), and a note naming the seeds left out, if any."""
    policies = {r["policy"] for r in group}
    every = sorted({r["seed"] for r in group})
    seeds = [s for s in every if {r["policy"] for r in group if r["seed"] == s} == policies]
    by_policy: dict[str, list[dict]] = defaultdict(list)
    for r in group:
        if r["seed"] in seeds:
            by_policy[r["policy"]].append(r)
    left_out = [s for s in every if s not in seeds]
    note = [f"Seeds {', '.join(map(str, left_out))} left out: not finished by every policy.", ""] if left_out else []
    return by_policy, note


def _by_seed(cells: list[dict]) -> dict[int, float]:
    """Each finished cell's final test score (0-100) by its seed."""
    return {c["seed"]: 100 * c["final_test"] for c in cells if c["final_test"] is not None}


def _paired_se(best: list[dict], adaptive: list[dict]) -> tuple[float, int] | None:
    """Standard error (points) of the best fixed policy's mean minus adaptive's, from their differences on the
    seeds both finished, and the number of those seeds; None below two seeds."""
    a, b = _by_seed(adaptive), _by_seed(best)
    diffs = [b[s] - a[s] for s in b if s in a]
    if len(diffs) < 2:
        return None
    return statistics.stdev(diffs) / len(diffs) ** 0.5, len(diffs)


def _held_out_regret(by_policy: dict[str, list[dict]]) -> float | None:
    """Adaptive's regret against a fixed policy chosen without hindsight on the seed it is scored on: for each
    seed, the fixed policy with the best mean on the other seeds, scored on this seed; mean over seeds, minus
    adaptive's mean on the same seeds. None below two seeds."""
    scores = {p: _by_seed(cells) for p, cells in by_policy.items() if _fixed(p) or p == "adaptive"}
    adaptive = scores.pop("adaptive", {})
    seeds = sorted(s for s in adaptive if all(s in per_seed for per_seed in scores.values()))
    if len(seeds) < 2 or not scores:
        return None
    gaps = []
    for s in seeds:
        others = [o for o in seeds if o != s]
        pick = max(sorted(scores), key=lambda p: statistics.fmean(scores[p][o] for o in others))
        gaps.append(scores[pick][s] - adaptive[s])
    return statistics.fmean(gaps)


def _output_regret(outputs: dict[str, float | None]) -> float | None:
    """The best fixed policy's output (best student on dev) minus adaptive's, by their test scores."""
    fixed = [v for p, v in outputs.items() if _fixed(p) and v is not None]
    if not fixed or outputs.get("adaptive") is None:
        return None
    return max(fixed) - outputs["adaptive"]


def _signed(x: float | None) -> str:
    return "" if x is None else f"{x:+.1f}"


def _estimate_lines(rows: list[dict[str, Any]]) -> list[str]:
    ratios: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        for what, estimate, actual in r["estimates"]:
            what = what if ":" in what else f"round:{what}"  # cells finished before phases were recorded
            ratios[(r["regime"], what)].append(actual / estimate)
    if not ratios:
        return []
    lines = ["## Compute estimates against what was spent", "",
             "Per round (the estimate the policy decided on) and per metered phase kind; a ratio of 1.00 is exact.",
             "", "| regime | round or phase | n | median actual/estimate | within ±25% |", "|---|---|---|---|---|"]
    for (regime, what), values in sorted(ratios.items()):
        within = sum(0.75 <= v <= 1.25 for v in values)
        lines.append(f"| {regime} | {what} | {len(values)} | {statistics.median(values):.2f} | "
                     f"{within}/{len(values)} |")
    return lines + [""]


def _cost_lines(rows: list[dict[str, Any]], scales: dict) -> list[str]:
    charged, saved = sum(r["flops"] for r in rows), sum(r["flops_saved"] for r in rows)
    lines = ["## What the study cost", "",
             f"{len(rows)} cells, {sum(r['wall_seconds'] for r in rows) / 60:.1f} min of cell wall time. The cells "
             f"were charged for {charged:.3g} FLOPs of compute; {saved:.3g} of them ({saved / max(charged, 1):.0%}) "
             "were reused from other cells through the phase cache instead of run again.", "",
             "Compute-price regimes ([prices] phase_scale):", ""]
    for task, regimes in sorted(scales.items()):
        for regime, scale in sorted(regimes.items()):
            shown = ", ".join(f"{k} x{v:g}" for k, v in sorted(scale.items())) or "nothing scaled"
            lines.append(f"- {task}, {regime}: {shown}")
    return lines


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Test score against budget, a line per policy with a band over seeds, a panel per task and regime."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["task"], r["regime"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), dpi=110, squeeze=False)
    for ax, (task, regime) in zip(axes[0], panels, strict=True):
        cells = [r for r in rows if (r["task"], r["regime"]) == (task, regime) and r["final_test"] is not None]
        for policy in sorted({r["policy"] for r in cells}):
            pts: dict[float, list[float]] = defaultdict(list)
            for r in cells:
                if r["policy"] == policy:
                    pts[float(r["budget"])].append(100 * r["final_test"])
            xs = sorted(pts)
            mean = [statistics.fmean(pts[x]) for x in xs]
            (line,) = ax.plot(xs, mean, marker="o", lw=2.2 if policy == "adaptive" else 1.4, label=policy,
                              color="black" if policy == "adaptive" else None)
            ax.fill_between(xs, [min(pts[x]) for x in xs], [max(pts[x]) for x in xs], alpha=0.12,
                            color=line.get_color())  # the band: lowest to highest seed
        ax.set_title(f"{task}, {regime} compute", fontsize=10)
        ax.set_xlabel("budget ($)")
        ax.set_ylabel("test score (0-100)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
